"""'flaky' fails on its first try and succeeds on the retry (retries=1)."""
from datetime import timedelta

try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator
import pendulum

# Fixed start date in the past; catchup is off everywhere.
START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG(
    dag_id="ws_retry",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    BashOperator(
        task_id="flaky",
        retries=1,
        retry_delay=timedelta(seconds=3),
        bash_command='echo "try {{ ti.try_number }}"; [ "{{ ti.try_number }}" -ge 2 ] || exit 1',
    )
