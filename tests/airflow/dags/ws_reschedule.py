"""A sensor in reschedule mode that is ready on its third poke: two task_reschedule rows, then success.
The poke count is kept in a file next to this one, per run, so it survives the process each poke runs in.
poke_interval 10 s: with 2 s, Airflow 3.1's LocalExecutor reported a poke's end after the scheduler had queued the
next one, and the scheduler failed the task ("finished with state success, but the task instance's state attribute
is queued")."""
import os

try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.sensors.python import PythonSensor
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.sensors.python import PythonSensor
import pendulum

START = pendulum.datetime(2024, 1, 1, tz="UTC")
READY_ON_POKE = 3


def _ready(run_id, **_):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), f".pokes-{run_id}".replace(":", "_"))
    pokes = int(open(path).read()) + 1 if os.path.exists(path) else 1
    with open(path, "w") as f:
        f.write(str(pokes))
    return pokes >= READY_ON_POKE


with DAG(
    dag_id="ws_reschedule",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    PythonSensor(task_id="poke_thrice", python_callable=_ready, mode="reschedule", poke_interval=10, timeout=600)
