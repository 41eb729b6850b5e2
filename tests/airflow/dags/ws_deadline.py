"""Airflow 3.1+ only (make-data-fixture.sh copies it in phase C on 3.1+): two Deadline Alerts 3 s after the run is
queued, one whose callback succeeds and one whose callback fails, on a run that takes 15 s. Both are missed, the
triggerer runs both callbacks, and the deadline rows keep callback_state 'success' and 'failed'."""
from datetime import timedelta

from airflow.providers.standard.operators.bash import BashOperator
from airflow.sdk import DAG
from airflow.sdk.definitions.deadline import AsyncCallback, DeadlineAlert, DeadlineReference
import pendulum

START = pendulum.datetime(2024, 1, 1, tz="UTC")


def alert(seconds, callback):
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=seconds),
        callback=AsyncCallback(f"ws_deadline_callbacks.{callback}", kwargs={"alert": callback}),
    )


with DAG(
    dag_id="ws_deadline",
    schedule=None,
    start_date=START,
    catchup=False,
    tags=["windsock"],
    default_args={"owner": "windsock"},
    deadline=[alert(3, "succeed"), alert(3, "fail")],
) as dag:
    BashOperator(task_id="sleep_15", bash_command="sleep 15")
