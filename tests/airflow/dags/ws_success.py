"""Always succeeds: two chained tasks. Daily schedule (catchup off) so it also gets a 'scheduled' run."""
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
    dag_id="ws_success",
    schedule="@daily",
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    first = BashOperator(task_id="hello", bash_command="echo hello")
    second = BashOperator(task_id="world", bash_command="echo world", execution_timeout=timedelta(minutes=5))
    first >> second
