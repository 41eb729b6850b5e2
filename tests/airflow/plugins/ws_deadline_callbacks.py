"""Deadline-alert callbacks for the 3.1+ fixture DAGs (ws_deadline, ws_zombie). The triggerer imports them by
dotted path, so they live in $AIRFLOW_HOME/plugins (on sys.path), not in a DAG file. Airflow calls them as
callback(**kwargs, context={...})."""


async def succeed(context, **kwargs):
    return "windsock: deadline noted"


async def fail(context, **kwargs):
    raise RuntimeError("windsock: this deadline callback fails on purpose")
