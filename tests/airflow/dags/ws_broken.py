"""Deliberately broken DAG file: parsing it raises, which gives an import_error row."""
try:  # Airflow 3.x: Task SDK + standard provider
    from airflow.providers.standard.operators.bash import BashOperator
    from airflow.sdk import DAG
except ImportError:  # Airflow 2.x
    from airflow import DAG
    from airflow.operators.bash import BashOperator
import pendulum

# Fixed start date in the past; catchup is off everywhere.
START = pendulum.datetime(2024, 1, 1, tz="UTC")

raise RuntimeError("ws_broken: deliberately broken DAG file (windsock import_error fixture)")
