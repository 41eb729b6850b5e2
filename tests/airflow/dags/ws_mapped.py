"""Dynamically mapped task, 5 map indexes, retries=1: indexes 0-2 fail on try 1 and succeed on try 2, 3 succeeds at once, 4 fails on both tries. Daily schedule (catchup off) so unpausing gives exactly one scheduled run; that run ends failed."""
from datetime import timedelta

try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator
import pendulum

# Fixed start date in the past; catchup is off.
START = pendulum.datetime(2024, 1, 1, tz="UTC")

RETRY_THEN_OK = 'echo "map {{ ti.map_index }} try {{ ti.try_number }}"; [ "{{ ti.try_number }}" -ge 2 ] || exit 1'
COMMANDS = [
    RETRY_THEN_OK,  # map_index 0: fails try 1, succeeds try 2
    RETRY_THEN_OK,  # 1
    RETRY_THEN_OK,  # 2
    'echo "map {{ ti.map_index }} succeeds at once"',  # 3
    'echo "map {{ ti.map_index }} try {{ ti.try_number }} fails for good"; exit 1',  # 4
]

with DAG(
    dag_id="ws_mapped",
    schedule="@daily",
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    BashOperator.partial(
        task_id="flaky_map",
        retries=1,
        retry_delay=timedelta(seconds=3),
    ).expand(bash_command=COMMANDS)
