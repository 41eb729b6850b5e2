"""Publishes this Amazon MWAA environment's metadata DB connection to AWS
Secrets Manager, for windsock.

MWAA's metadata database is reachable only from inside the environment's
network, and its credentials only from inside Airflow. Put this file into the
environment's DAGs folder, trigger the DAG `windsock_publish_connection` once
(and again after MWAA rotates its credentials: it is safe to re-run), then
point windsock at the secret:

    [[targets]]
    environment = "mwaa-prod"
    url = "postgresql://<login>@<host>:<port>/<schema>"   # from the secret
    password_secret_id = "windsock/<environment name>/metadata-db"

The secret holds an Airflow connection's JSON form (conn_type, host, port,
login, password, schema). Nothing is logged but the secret's name. The
execution role of the environment needs secretsmanager:CreateSecret,
PutSecretValue and DescribeSecret on `windsock/*`; windsock's role needs
secretsmanager:GetSecretValue on the secret. See docs/deploy.md.

Settings (environment variables of the MWAA environment, all optional):
  WINDSOCK_SECRET_ID   secret name (default windsock/<AIRFLOW_ENV_NAME>/metadata-db)
  WINDSOCK_KMS_KEY_ID  KMS key for the secret (default: the account's default key)
"""
from __future__ import annotations

import json
import os
from urllib.parse import unquote, urlsplit


def connection_secret(sql_alchemy_conn: str) -> dict:
    """The connection JSON of a SQLAlchemy URL such as
    `postgresql+psycopg2://user:pass@host:5432/airflow?sslmode=require`."""
    parts = urlsplit(sql_alchemy_conn)
    scheme = parts.scheme.split("+", 1)[0]
    conn_type = {"postgresql": "postgres", "postgres": "postgres", "mysql": "mysql"}.get(scheme)
    if conn_type is None:
        raise ValueError(f"not a PostgreSQL or MySQL URL (scheme {scheme!r})")
    secret = {
        "conn_type": conn_type,
        "host": parts.hostname or "",
        "port": parts.port or (5432 if conn_type == "postgres" else 3306),
        "login": unquote(parts.username or ""),
        "password": unquote(parts.password or ""),
        "schema": parts.path.lstrip("/"),
    }
    if parts.query:
        secret["extra"] = dict(p.split("=", 1) for p in parts.query.split("&") if "=" in p)
    return secret


def publish(client, secret_id: str, secret: dict, kms_key_id: str | None = None) -> str:
    """Creates the secret, or stores a new version of it; returns its ARN."""
    body = json.dumps(secret, sort_keys=True)
    try:
        arn = client.describe_secret(SecretId=secret_id)["ARN"]
    except client.exceptions.ResourceNotFoundException:
        args = {
            "Name": secret_id,
            "SecretString": body,
            "Description": "Airflow metadata DB connection, published for windsock",
            "Tags": [{"Key": "managed-by", "Value": "windsock_publish_connection"}],
        }
        if kms_key_id:
            args["KmsKeyId"] = kms_key_id
        return client.create_secret(**args)["ARN"]
    client.put_secret_value(SecretId=secret_id, SecretString=body)
    return arn


def _publish_from_airflow() -> None:
    import boto3
    from airflow.configuration import conf

    secret_id = os.environ.get("WINDSOCK_SECRET_ID") or (
        f"windsock/{os.environ.get('AIRFLOW_ENV_NAME', 'airflow')}/metadata-db"
    )
    secret = connection_secret(conf.get("database", "sql_alchemy_conn"))
    arn = publish(boto3.client("secretsmanager"), secret_id, secret, os.environ.get("WINDSOCK_KMS_KEY_ID"))
    # Only the name and ARN: never the connection.
    print(f"Published the metadata DB connection to {secret_id} ({arn}).")


try:
    import pendulum
    from airflow import DAG

    try:  # Airflow 3: the standard provider.
        from airflow.providers.standard.operators.python import PythonOperator
    except ImportError:  # Airflow 2
        from airflow.operators.python import PythonOperator

    with DAG(
        dag_id="windsock_publish_connection",
        schedule=None,
        start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
        catchup=False,
        tags=["windsock"],
        doc_md=__doc__,
    ) as dag:
        PythonOperator(task_id="publish", python_callable=_publish_from_airflow)
except ImportError:  # imported outside Airflow (tests)
    pass
