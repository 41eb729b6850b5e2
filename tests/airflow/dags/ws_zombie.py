"""Hourly, catchup on, max_active_runs=1, start date ~3 h before generation: one run is created and then blocks the next ones.
'hang' (sleep 3600, priority 100) holds the single slot of pool 'ws_starved'; starved_0..2 (same pool, no upstream) stay scheduled.
make-data-fixture.sh SIGKILLs the scheduler and the task's processes while 'hang' runs (a zombie candidate),
after a manual run was triggered: it stays queued behind max_active_runs=1.
On Airflow 3.1+ a Deadline Alert one day after a run is queued gives each run a pending deadline row."""
import os
from datetime import timedelta

try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator
import pendulum

try:  # Airflow 3.1+: Deadline Alerts (the callback is never reached: the deadline is a day out)
    from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference

    DEADLINE = {
        "deadline": DeadlineAlert(
            reference=DeadlineReference.DAGRUN_QUEUED_AT,
            interval=timedelta(days=1),
            callback=AsyncCallback("ws_deadline_callbacks.succeed", kwargs={"alert": "zombie"}),
        )
    }
except ImportError:  # 2.x, 3.0
    DEADLINE = {}

# The generator exports WS_ZOMBIE_START once per database so that every parse
# sees the same start date (a moving start date would change the serialized
# DAG's hash on every parse). Fallback: the start of the hour 3 h ago.
if os.environ.get("WS_ZOMBIE_START"):
    START = pendulum.parse(os.environ["WS_ZOMBIE_START"])
else:
    START = pendulum.now("UTC").start_of("hour").subtract(hours=3)

with DAG(
    dag_id="ws_zombie",
    schedule="@hourly",
    start_date=START,
    catchup=True,
    max_active_runs=1,
    tags=["windsock"],
    default_args={"owner": "windsock", "pool": "ws_starved", "weight_rule": "absolute"},
    **DEADLINE,
) as dag:
    BashOperator(task_id="hang", bash_command="sleep 3600", priority_weight=100)
    for i in range(3):
        BashOperator(task_id=f"starved_{i}", bash_command="echo got the slot", priority_weight=1)
