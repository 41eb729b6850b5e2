"""Three independent tasks in the 1-slot pool 'ws_small_pool' (created by make-data-fixture.sh), so they queue behind each other."""
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
    dag_id="ws_pool",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock", "pool": "ws_small_pool"},
) as dag:
    for i in range(3):
        BashOperator(task_id=f"pooled_{i}", bash_command="sleep 2")
