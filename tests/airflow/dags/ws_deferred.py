"""One deferrable sensor that waits two days, so its task instance sits in state 'deferred' with a trigger row the triggerer picked up."""
from datetime import timedelta

try:  # Airflow 3.x: Task SDK + standard provider (TimeDeltaSensor counts from run_after when a manual run has no data interval)
    from airflow.providers.standard.sensors.time_delta import TimeDeltaSensor
    from airflow.sdk import DAG

    def wait_sensor(**kwargs):
        return TimeDeltaSensor(deferrable=True, **kwargs)

except ImportError:  # Airflow 2.x (counts from data_interval_end = the manual run's logical date)
    from airflow import DAG
    from airflow.sensors.time_delta import TimeDeltaSensorAsync as wait_sensor
import pendulum

START = pendulum.datetime(2024, 1, 1, tz="UTC")

with DAG(
    dag_id="ws_deferred",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
) as dag:
    wait_sensor(task_id="wait_two_days", delta=timedelta(days=2))
