"""Always fails: 'boom' exits 1 with no retries, so 'after_boom' ends upstream_failed."""
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
    dag_id="ws_fail",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock", "retries": 0},
) as dag:
    ok = BashOperator(task_id="before_boom", bash_command="echo fine")
    boom = BashOperator(task_id="boom", bash_command="echo failing on purpose; exit 1")
    after = BashOperator(task_id="after_boom", bash_command="echo never runs")
    ok >> boom >> after
