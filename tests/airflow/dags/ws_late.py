"""Appears only in the last phase of make-data-fixture.sh, after [core] compress_serialized_dags was turned on,
so its serialized_dag row is the one with data_compressed set. Never run (schedule None, stays paused)."""
try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator
import pendulum

START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG(
    dag_id="ws_late",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    BashOperator(task_id="late_task", bash_command="echo late")
