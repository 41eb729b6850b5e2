"""Tests of publish_windsock_connection.py against moto's Secrets Manager
(in-process, `moto[server]` from PyPI); run by tests/aws.rs."""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")

import boto3  # noqa: E402
from moto import mock_aws  # noqa: E402

import publish_windsock_connection as p  # noqa: E402


def test_connection_secret():
    s = p.connection_secret("postgresql+psycopg2://adm%40in:p%2Fw%40@db.internal:5433/airflow?sslmode=require")
    assert s == {"conn_type": "postgres", "host": "db.internal", "port": 5433, "login": "adm@in",
                 "password": "p/w@", "schema": "airflow", "extra": {"sslmode": "require"}}, s
    assert p.connection_secret("mysql+mysqldb://u:pw@h/airflow")["port"] == 3306
    try:
        p.connection_secret("sqlite:////tmp/airflow.db")
    except ValueError:
        pass
    else:
        raise AssertionError("sqlite accepted")


@mock_aws
def test_publish_creates_then_updates():
    client = boto3.client("secretsmanager")
    arn = p.publish(client, "windsock/prod/metadata-db", {"password": "one"})
    again = p.publish(client, "windsock/prod/metadata-db", {"password": "two"})
    assert arn == again
    value = client.get_secret_value(SecretId="windsock/prod/metadata-db")["SecretString"]
    assert json.loads(value) == {"password": "two"}
    tags = client.describe_secret(SecretId=arn)["Tags"]
    assert {"Key": "managed-by", "Value": "windsock_publish_connection"} in tags


if __name__ == "__main__":
    test_connection_secret()
    test_publish_creates_then_updates()
    print("ok")
