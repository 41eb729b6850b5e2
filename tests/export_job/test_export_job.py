"""Tests of export/glue/windsock_export.py with local PySpark against real PostgreSQL.

    python3 tests/export_job/test_export_job.py        # from the repository root

Needs: pyspark 3.5 (pip install pyspark==3.5.4), Java 17, the PostgreSQL JDBC driver
(apt-get install -y --no-install-recommends libpostgresql-jdbc-java, or point
WINDSOCK_PG_JDBC_JAR at a jar), psql and a PostgreSQL server (WINDSOCK_TEST_PG_URL, as
for the Rust tests; default postgres@127.0.0.1:5432). The MariaDB test also needs the
MariaDB JDBC driver (libmariadb-java, or WINDSOCK_MARIADB_JDBC_JAR), the mariadb client
and a server (WINDSOCK_TEST_MYSQL_URL; default root@127.0.0.1:3306); without the jar it
is skipped, and says so. Spark runs offline: the driver jars come from spark.jars,
nothing is downloaded.

For each Airflow version (3.1.8 and 2.10.5), a fresh database ws_t_export_* gets the
real PostgreSQL schema and the rows real Airflow schedulers wrote (load_fixture.py); it
is dropped at the end, also on failure. The job runs through spark-submit exactly as on
a Spark cluster, and its output is read back (Parquet with PySpark, csv/jsonl as plain
gzip files) and compared, row by row and column by column, with what PostgreSQL returns
for the same window.
"""

from __future__ import annotations

import atexit
import base64
import collections
import csv
import datetime as dt
import gzip
import importlib.util
import json
import os
import re
import secrets
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import unittest
import warnings
from pathlib import Path

sys.dont_write_bytecode = True  # no __pycache__ next to the script or this file

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SCRIPT = REPO / "export" / "glue" / "windsock_export.py"
JDBC_JAR = Path(os.environ.get("WINDSOCK_PG_JDBC_JAR", "/usr/share/java/postgresql.jar"))
MARIADB_JAR = Path(os.environ.get("WINDSOCK_MARIADB_JDBC_JAR",
                                  "/usr/share/java/mariadb-java-client.jar"))
PYSPARK_REQUIRED = "3.5."

sys.path.insert(0, str(HERE))
import load_fixture  # noqa: E402  (next to this file)

ENVIRONMENT = "ws-test"
EXPORT_DATE = "2026-11-25"
PG = load_fixture.pg_settings()
# Given to the job as WINDSOCK_JDBC_PASSWORD (trust auth ignores it) unless the server
# has a real one; it must never show up in anything the job prints.
PASSWORD = PG["password"] or "ws-sentinel-" + secrets.token_hex(8)

SENSITIVE = ["connection", "variable", "trigger", "ab_user", "session", "xcom"]
MANIFEST_KEYS = {"manifest_version", "environment", "export_date", "window",
                 "airflow_version", "format", "status", "engine", "run_id", "started_at",
                 "finished_at", "tables"}
ENTRY_KEYS = {
    "exported": {"table", "status", "window_column", "mode", "path", "rows", "bytes"},
    "missing": {"table", "status", "window_column", "mode", "path"},
    "excluded": {"table", "status", "window_column", "mode", "path", "reason"},
    "failed": {"table", "status", "window_column", "mode", "path", "error"},
}
# How each PostgreSQL type must arrive in Parquet.
SPARK_TYPES = {"integer": "int", "bigint": "bigint", "smallint": "smallint",
               "boolean": "boolean", "double precision": "double", "bytea": "binary",
               "timestamp with time zone": "timestamp",
               "timestamp without time zone": "timestamp"}


def t(table, window_column=None, key_column=None):
    return {"table": table, "window_column": window_column, "key_column": key_column}


# ----------------------------------------------------------------------------------------
# Prerequisites


def prerequisite_problems() -> list[str]:
    problems = []
    try:
        import pyspark
        if not pyspark.__version__.startswith(PYSPARK_REQUIRED):
            problems.append(f"pyspark {pyspark.__version__} found, need 3.5.x "
                            "(pip install pyspark==3.5.4)")
    except ImportError:
        problems.append("pyspark is not installed (pip install pyspark==3.5.4)")
    if not JDBC_JAR.is_file():
        problems.append(f"PostgreSQL JDBC driver {JDBC_JAR} not found (apt-get install -y "
                        "--no-install-recommends libpostgresql-jdbc-java, or set "
                        "WINDSOCK_PG_JDBC_JAR)")
    if not shutil.which("java"):
        problems.append("java is not on PATH (Spark 3.5 needs Java 8/11/17)")
    if not shutil.which("psql"):
        problems.append("psql is not on PATH (apt-get install postgresql-client)")
    else:
        try:
            load_fixture.psql("postgres", "SELECT 1")
        except RuntimeError as err:
            problems.append(f"PostgreSQL is not reachable: {err}")
    return problems


def setUpModule():
    problems = prerequisite_problems()
    if problems:
        raise RuntimeError("export job tests cannot run:\n  " + "\n  ".join(problems))
    # py4j leaves sockets to the garbage collector.
    warnings.filterwarnings("ignore", category=ResourceWarning)


def tearDownModule():
    global _SPARK
    if _SPARK is not None:
        _SPARK.stop()
        _SPARK = None


# ----------------------------------------------------------------------------------------
# Running the job


_WORK = Path(tempfile.mkdtemp(prefix="ws_t_export_"))
atexit.register(shutil.rmtree, _WORK, True)
_LOG4J = _WORK / "log4j2.properties"
_LOG4J.write_text("rootLogger.level = warn\n"
                  "rootLogger.appenderRef.stderr.ref = console\n"
                  "appender.console.type = Console\n"
                  "appender.console.name = console\n"
                  "appender.console.target = SYSTEM_ERR\n"
                  "appender.console.layout.type = PatternLayout\n"
                  "appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n\n"
                  "logger.native.name = org.apache.hadoop.util.NativeCodeLoader\n"
                  "logger.native.level = error\n")
JAVA_OPTIONS = f"-Duser.timezone=UTC -Dlog4j2.configurationFile=file:{_LOG4J}"


def spark_env() -> dict[str, str]:
    import pyspark
    env = dict(os.environ)
    env.update(SPARK_HOME=os.path.dirname(pyspark.__file__), SPARK_LOCAL_IP="127.0.0.1",
               PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)
    return env


class Run:
    def __init__(self, proc: subprocess.CompletedProcess, output: Path, seconds: float):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.output = output
        self.seconds = seconds

    @property
    def env_dir(self) -> Path:
        return self.output / ENVIRONMENT

    @property
    def manifest_file(self) -> Path:
        return self.env_dir / "_manifests" / f"export_date={EXPORT_DATE}" / "_manifest.json"

    def manifest(self) -> dict:
        return json.loads(self.manifest_file.read_text())

    def table_dir(self, table: str) -> Path:
        return self.env_dir / table / f"export_date={EXPORT_DATE}"

    def describe(self) -> str:
        return (f"exit {self.rc}\n--- stdout\n{self.stdout[-4000:]}\n"
                f"--- stderr\n{self.stderr[-4000:]}")


def pg_jdbc_url(database: str) -> str:
    return f"jdbc:postgresql://{PG['host']}:{PG['port']}/{database}"


def run_export(database: str, output: Path, tables: list[dict], window: tuple[str, str], *,
               fmt: str | None = "parquet", partitions: int | None = 4,
               airflow_version: str = "", run_id: str = "run-1",
               jdbc_url: str | None = None, user: str = PG["user"],
               password: str | None = PASSWORD, jar: Path = JDBC_JAR,
               glue: dict | None = None) -> Run:
    """spark-submit the job. With `glue`, under a stand-in for the awsglue library:
    a Glue connection instead of --jdbc_url, and the Glue job arguments."""
    import pyspark
    spark_submit = os.path.join(os.path.dirname(pyspark.__file__), "bin", "spark-submit")
    args = {
        "environment": ENVIRONMENT, "output": str(output), "export_date": EXPORT_DATE,
        "window_start": window[0], "window_end": window[1], "tables": json.dumps(tables),
        "format": fmt, "airflow_version": airflow_version, "run_id": run_id,
        "partitions": None if partitions is None else str(partitions),
        "jdbc_url": jdbc_url or pg_jdbc_url(database), "jdbc_user": user,
    }
    if glue:
        del args["jdbc_url"], args["jdbc_user"]
        args.update(glue["args"])
    cmd = [spark_submit, "--master", "local[2]",
           "--conf", f"spark.jars={jar}",
           "--conf", "spark.ui.enabled=false",
           "--conf", "spark.sql.shuffle.partitions=2",
           "--conf", f"spark.driver.extraJavaOptions={JAVA_OPTIONS}",
           str(SCRIPT)]
    for name, value in args.items():
        if value is not None:
            cmd += [f"--{name}", value]
    env = spark_env()
    env.pop("WINDSOCK_JDBC_PASSWORD", None)
    if password and not glue:
        env["WINDSOCK_JDBC_PASSWORD"] = password
    if glue:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(FAKE_GLUE),
                                                          env.get("PYTHONPATH")]))
        env.update(glue["env"])
    begun = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    return Run(proc, output, time.monotonic() - begun)


# A stand-in for the awsglue library (not on PyPI): what the script uses of it, with
# Glue's behaviour (getResolvedOptions: required --name value options, others ignored;
# extract_jdbc_conf: "url" without the database, "fullUrl" with it).
FAKE_GLUE = _WORK / "fake_glue"
FAKE_GLUE_FILES = {
    "__init__.py": "",
    "utils.py": """
import argparse

def getResolvedOptions(args, options):
    parser = argparse.ArgumentParser()
    for name in options:
        parser.add_argument("--" + name, required=True)
    known, _ = parser.parse_known_args(args[1:])
    return vars(known)
""",
    "context.py": """
import json, os
from pyspark.sql import SparkSession

class GlueContext:
    def __init__(self, sc):
        self.spark_session = SparkSession(sc)

    def extract_jdbc_conf(self, connection_name, catalog_id=None):
        return dict(json.loads(os.environ["FAKE_GLUE_CONNECTIONS"])[connection_name])
""",
    "job.py": """
import json, os

class Job:
    def __init__(self, glue_context):
        self.name = None

    def init(self, name, args):
        self.name = name

    def commit(self):
        with open(os.environ["FAKE_GLUE_COMMIT_FILE"], "w") as f:
            f.write(self.name)
""",
}
for _name, _text in FAKE_GLUE_FILES.items():
    (FAKE_GLUE / "awsglue").mkdir(parents=True, exist_ok=True)
    (FAKE_GLUE / "awsglue" / _name).write_text(_text.lstrip())


def seed_stale(output: Path, table: str) -> None:
    """What an earlier run left: a complete-looking manifest, old data, another date."""
    manifest = output / ENVIRONMENT / "_manifests" / f"export_date={EXPORT_DATE}"
    manifest.mkdir(parents=True)
    (manifest / "_manifest.json").write_text(json.dumps({"status": "complete",
                                                         "run_id": "stale"}))
    data = output / ENVIRONMENT / table / f"export_date={EXPORT_DATE}"
    data.mkdir(parents=True)
    (data / "part-99999-stale.snappy.parquet").write_bytes(b"stale")
    other = output / ENVIRONMENT / table / "export_date=2000-01-01"
    other.mkdir(parents=True)
    (other / "keep.txt").write_text("another export date")


# ----------------------------------------------------------------------------------------
# Reading what was written, and what the database holds


_SPARK = None


def spark():
    global _SPARK
    if _SPARK is None:
        os.environ.update({k: v for k, v in spark_env().items()
                           if k in ("SPARK_HOME", "SPARK_LOCAL_IP", "PYSPARK_PYTHON")})
        from pyspark.sql import SparkSession
        _SPARK = (SparkSession.builder.master("local[1]").appName("windsock-export-test")
                  .config("spark.ui.enabled", "false")
                  .config("spark.sql.shuffle.partitions", "2")
                  .config("spark.sql.session.timeZone", "UTC")
                  .config("spark.driver.extraJavaOptions", JAVA_OPTIONS)
                  .getOrCreate())
    return _SPARK


def data_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.name.startswith("part-"))


def read_parquet(directory: Path) -> tuple[list[dict], dict[str, str]]:
    from pyspark.sql import functions as F
    from pyspark.sql.types import BinaryType, TimestampType
    df = spark().read.parquet(str(directory))
    types = {f.name: f.dataType.simpleString() for f in df.schema.fields}
    columns = []
    for f in df.schema.fields:
        if isinstance(f.dataType, TimestampType):
            columns.append(F.date_format(f.name, "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX").alias(f.name))
        elif isinstance(f.dataType, BinaryType):
            columns.append(F.base64(f.name).alias(f.name))
        else:
            columns.append(F.col(f.name))
    return [r.asDict() for r in df.select(columns).collect()], types


def read_csv(directory: Path) -> tuple[list[dict], list[str]]:
    rows, header = [], None
    for path in data_files(directory):
        assert path.name.endswith(".csv.gz"), path
        with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
            reader = csv.DictReader(f)
            rows += list(reader)
            header = header or reader.fieldnames
    return rows, header or []


def read_jsonl(directory: Path) -> list[dict]:
    rows = []
    for path in data_files(directory):
        assert path.name.endswith(".json.gz"), path
        with gzip.open(path, "rt", encoding="utf-8") as f:
            rows += [json.loads(line) for line in f if line.strip()]
    return rows


def db_rows(database: str, table: str, where: str | None) -> list[dict]:
    sql = f'SELECT row_to_json(t)::text FROM (SELECT * FROM public."{table}"'
    sql += f" WHERE {where}) t" if where else ") t"
    return [json.loads(line) for line in load_fixture.psql(database, sql).splitlines()]


def canonical(value, pg_type: str, source: str):
    """One comparable value whatever the source: database, parquet, csv or jsonl."""
    if value is None or value == "":  # csv cannot tell NULL from an empty string
        return None
    if pg_type in ("integer", "bigint", "smallint"):
        return int(value)
    if pg_type in ("double precision", "real", "numeric"):
        return float(value)
    if pg_type == "boolean":
        return {"true": True, "false": False}[value] if isinstance(value, str) else bool(value)
    if pg_type.startswith("timestamp"):
        parsed = dt.datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=dt.timezone.utc)
        return parsed.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")
    if pg_type == "bytea":
        if source == "db":
            assert value.startswith("\\x"), value
            return value[2:]
        return base64.b64decode(value).hex()
    if pg_type in ("json", "jsonb"):
        parsed = value if source == "db" else json.loads(value)
        return None if parsed is None else json.dumps(parsed, sort_keys=True)
    return str(value)


def canonical_rows(rows: list[dict], types: dict[str, str], source: str) -> collections.Counter:
    return collections.Counter(
        json.dumps({c: canonical(v, types[c], source) for c, v in row.items()}, sort_keys=True)
        for row in rows)


def utc_text(sql_value_expr: str) -> str:
    return f"""to_char({sql_value_expr} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""


def quietly(function, *args) -> None:
    try:
        function(*args)
    except Exception as err:  # at exit, after a failure: report, do not raise
        print(f"cleanup {function.__name__}{args}: {err}", file=sys.stderr)


# What real Airflow CLIs wrote into log.extra (recorded from pip-installed Airflow):
# 2.10.5 keeps a --conn-uri password in clear, 3.1.8 a --conn-extra token. The same
# strings are in tests/export.rs.
REAL_LEAKS = [
    """{"host_name": "vm", "full_command": "['/venv/bin/airflow', 'connections', 'add', """
    """'ws_pg', '--conn-uri', 'postgres://u:PWsecret1@h:5432/db']"}""",
    """{"host_name": "vm", "full_command": "['/venv/bin/airflow', 'connections', 'add', """
    """'ws_pw', '--conn-type', 'postgres', '--conn-password', '********', '--conn-host', """
    """'h', '--conn-extra', '{\\"token\\": \\"PWsecret4\\"}']"}""",
]


def policy_rows(masker, table: str, rows: list[dict], binary=lambda column: False) -> list[dict]:
    """Database rows as the column policy exports them: dropped columns gone, masked
    ones through the script's own masker (tested against the policy's examples)."""
    out = []
    for row in rows:
        new = {}
        for c, v in row.items():
            action = masker.action(table, c, binary(c))
            if action == "drop":
                continue
            if action in ("mask_json", "mask_text") and v is not None:
                text = v if isinstance(v, str) else json.dumps(v)
                masked = masker.apply(action, text)
                try:  # json columns come back parsed from row_to_json
                    v = masked if isinstance(row[c], str) else json.loads(masked)
                except ValueError:
                    v = masked
            new[c] = v
        out.append(new)
    return out


def load_script_module():
    spec = importlib.util.spec_from_file_location("windsock_export", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------
# The tests, once per Airflow version


class ExportCase:
    """The tests for one Airflow version on PostgreSQL; the exports run once, in
    setUpClass, and the tests look at what they left."""

    VERSION: str
    DAG_RUN_WINDOW: str  # dag_run's window column
    TABLES: list[dict]
    WINDOWED_WITH_EXCLUSIONS = ("dag_run", "log", "task_instance")
    FORMATS: tuple[str, ...]
    MISSING: tuple[str, ...]
    PARTITIONED: dict[str, str]  # table -> mode, read with a key: expect >1 partition

    @classmethod
    def setUpClass(cls):
        cls.database = f"ws_t_export_{cls.VERSION.replace('.', '_')}_{secrets.token_hex(4)}"
        cls.addClassCleanup(load_fixture.drop_database, cls.database)
        atexit.register(quietly, load_fixture.drop_database, cls.database)  # e.g. Ctrl-C
        load_fixture.load(cls.VERSION, cls.database)
        # A view whose rows fail while being read: a table that breaks mid-export.
        load_fixture.psql(cls.database, "CREATE VIEW ws_t_broken AS "
                                        "SELECT id, dttm, 1 / (id - id) AS boom FROM log")

        cls.columns = {}
        for line in load_fixture.psql(cls.database, (
                "SELECT table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_schema = 'public'")).splitlines():
            table, column, data_type = line.split("\t")
            cls.columns.setdefault(table, {})[column] = data_type
        cls.primary_keys = collections.defaultdict(list)
        for line in load_fixture.psql(cls.database, (
                "SELECT k.table_name, k.column_name FROM information_schema.table_constraints c "
                "JOIN information_schema.key_column_usage k "
                "ON k.constraint_name = c.constraint_name AND k.table_schema = c.table_schema "
                "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = 'public' "
                "ORDER BY k.table_name, k.ordinal_position")).splitlines():
            table, column = line.split("\t")
            cls.primary_keys[table].append(column)

        # The window: from the 2nd distinct dag_run time (inclusive, exactly on a row;
        # scheduled runs of several DAGs share a time) to the median task start
        # (exclusive, exactly on a row), so rows fall on both sides of it.
        runs = sorted(set(load_fixture.psql(cls.database, (
            f"SELECT {utc_text(cls.DAG_RUN_WINDOW)} FROM dag_run "
            f"WHERE {cls.DAG_RUN_WINDOW} IS NOT NULL ORDER BY 1")).split()))
        starts = load_fixture.psql(cls.database, (
            f"SELECT {utc_text('start_date')} FROM task_instance "
            "WHERE start_date IS NOT NULL ORDER BY 1")).split()
        cls.window = (runs[1], starts[len(starts) // 2])
        assert cls.window[0] < cls.window[1], cls.window
        # The secrets real Airflow left in the log, inside the window.
        for extra in REAL_LEAKS:
            load_fixture.psql(cls.database, (
                "INSERT INTO log (dttm, event, extra) VALUES "
                f"('{cls.window[0]}', 'cli_connections_add', '{extra.replace(chr(39), chr(39) * 2)}')"))
        cls.masker = load_script_module().Masker(load_script_module().load_policy())
        # The columns as exported: all but those the column policy drops.
        cls.all_columns = cls.columns
        cls.columns = {table: {c: ty for c, ty in cols.items()
                               if cls.masker.action(table, c, ty == "bytea") != "drop"}
                       for table, cols in cls.all_columns.items()}

        cls.out = _WORK / cls.VERSION
        cls.runs = {}
        for fmt in cls.FORMATS:
            output = cls.out / fmt
            seed_stale(output, "dag_run")
            cls.runs[fmt] = run_export(cls.database, output, cls.TABLES, cls.window, fmt=fmt,
                                       airflow_version=cls.VERSION, run_id=f"run-{fmt}")
            print(f"\n[{cls.VERSION}] {fmt} export: exit {cls.runs[fmt].rc}, "
                  f"{cls.runs[fmt].seconds:.1f}s", file=sys.stderr)

    # -- helpers --------------------------------------------------------------------

    def where(self, table: str) -> str | None:
        spec = next(s for s in self.TABLES if s["table"] == table)
        if not spec["window_column"]:
            return None
        col = f'"{spec["window_column"]}"'
        return (f"{col} >= '{self.window[0]}'::timestamptz "
                f"AND {col} < '{self.window[1]}'::timestamptz")

    def exported(self, run: Run) -> list[str]:
        return [e["table"] for e in run.manifest()["tables"] if e["status"] == "exported"]

    def assertRunOk(self, run: Run):
        self.assertEqual(run.rc, 0, run.describe())
        self.assertNotIn(PASSWORD, run.stdout + run.stderr)

    def read_export(self, run: Run, table: str, fmt: str) -> list[dict]:
        directory = run.table_dir(table)
        types = self.columns[table]
        if fmt == "parquet":
            rows, spark_types = read_parquet(directory)
            for column, pg_type in types.items():
                self.assertEqual(spark_types[column], SPARK_TYPES.get(pg_type, "string"),
                                 f"{table}.{column} ({pg_type}) in parquet")
            return rows
        if fmt == "csv":
            rows, header = read_csv(directory)
            self.assertEqual(sorted(header), sorted(types), f"{table}: csv header")
            return rows
        rows = read_jsonl(directory)
        for row in rows:  # null fields are written, not dropped
            self.assertEqual(sorted(row), sorted(types), f"{table}: jsonl keys")
        return rows

    # -- tests ----------------------------------------------------------------------

    def test_secrets_never_exported(self):
        """The column policy: the real Airflow leaks in log.extra are masked, the
        pickled task_instance.executor_config is not exported, in every format."""
        for fmt, run in self.runs.items():
            with self.subTest(fmt=fmt):
                self.assertRunOk(run)
                logs = self.read_export(run, "log", fmt)
                extras = [r.get("extra") or "" for r in logs]
                self.assertTrue(any("--conn-uri', '***'" in e for e in extras), extras[-3:])
                self.assertTrue(any("--conn-extra', '***'" in e for e in extras))
                for table in self.exported(run):
                    rows = self.read_export(run, table, fmt)
                    self.assertNotIn("PWsecret", json.dumps(rows, default=str), table)
                    if table == "task_instance" and rows:
                        self.assertNotIn("executor_config", rows[0])

    def test_runs_succeed_without_leaking_the_password(self):
        for fmt, run in self.runs.items():
            with self.subTest(fmt=fmt):
                self.assertRunOk(run)

    def test_window_is_selective(self):
        """The window excludes rows on both sides, and is half-open: the dag_run exactly
        on its start is exported, the task instance exactly on its end is not."""
        before = after = 0
        for table in self.WINDOWED_WITH_EXCLUSIONS:
            inside = len(db_rows(self.database, table, self.where(table)))
            self.assertGreater(inside, 0, table)
            col = next(s["window_column"] for s in self.TABLES if s["table"] == table)
            before += len(db_rows(self.database, table, f"\"{col}\" < '{self.window[0]}'"))
            after += len(db_rows(self.database, table, f"\"{col}\" >= '{self.window[1]}'"))
        self.assertGreater(before, 0)
        self.assertGreater(after, 0)

        run = self.runs["parquet"]
        self.assertRunOk(run)
        on_start = {r["id"] for r in db_rows(self.database, "dag_run",
                                             f"{self.DAG_RUN_WINDOW} = '{self.window[0]}'")}
        self.assertTrue(on_start)
        exported = {r["id"] for r in read_parquet(run.table_dir("dag_run"))[0]}
        self.assertLessEqual(on_start, exported)
        on_end = db_rows(self.database, "task_instance", f"start_date = '{self.window[1]}'")
        self.assertTrue(on_end)
        starts = {r["start_date"] for r in read_parquet(run.table_dir("task_instance"))[0]}
        self.assertNotIn(self.window[1], starts)
        self.assertTrue(starts)

    def test_rows_equal_database_rows_in_every_format(self):
        for fmt, run in self.runs.items():
            self.assertRunOk(run)
            manifest = run.manifest()
            for entry in manifest["tables"]:
                if entry["status"] != "exported":
                    continue
                table = entry["table"]
                with self.subTest(fmt=fmt, table=table):
                    expected = policy_rows(
                        self.masker, table, db_rows(self.database, table, self.where(table)),
                        lambda c, t=table: self.all_columns[t][c] == "bytea")
                    got = self.read_export(run, table, fmt)
                    self.assertEqual(entry["rows"], len(expected))
                    key = self.primary_keys[table]
                    self.assertTrue(key, f"{table} has no primary key")
                    got_keys = [tuple(str(r[k]) for k in key) for r in got]
                    want_keys = [tuple(str(r[k]) for k in key) for r in expected]
                    self.assertEqual(len(got_keys), len(set(got_keys)), "duplicate rows")
                    self.assertEqual(set(got_keys), set(want_keys))
                    types = self.columns[table]
                    self.assertEqual(canonical_rows(got, types, fmt),
                                     canonical_rows(expected, types, "db"))

    def test_formats_agree(self):
        if len(self.runs) < 2:
            self.skipTest("one format only")
        seen = {}
        for fmt, run in self.runs.items():
            self.assertRunOk(run)
            for table in self.exported(run):
                seen.setdefault(table, {})[fmt] = canonical_rows(
                    self.read_export(run, table, fmt), self.columns[table], fmt)
        for table, by_format in seen.items():
            self.assertEqual(set(by_format), set(self.runs), table)
            first, *others = by_format.values()
            for other in others:
                self.assertEqual(first, other, table)

    def test_full_mode_exports_every_row(self):
        run = self.runs["parquet"]
        self.assertRunOk(run)
        full = [s["table"] for s in self.TABLES if s["window_column"] is None
                and s["table"] not in SENSITIVE and s["table"] in self.columns]
        self.assertTrue(full)
        entries = {e["table"]: e for e in run.manifest()["tables"]}
        for table in full:
            total = len(db_rows(self.database, table, None))
            self.assertGreater(total, 0, table)
            self.assertEqual(entries[table]["mode"], "full")
            self.assertEqual(entries[table]["rows"], total, table)

    def test_manifest(self):
        for fmt, run in self.runs.items():
            with self.subTest(fmt=fmt):
                self.assertRunOk(run)
                m = run.manifest()
                self.assertEqual(set(m), MANIFEST_KEYS)
                self.assertEqual(m["manifest_version"], 1)
                self.assertEqual(m["environment"], ENVIRONMENT)
                self.assertEqual(m["export_date"], EXPORT_DATE)
                self.assertEqual(set(m["window"]), {"start", "end"})
                for bound, given in zip((m["window"]["start"], m["window"]["end"]), self.window):
                    self.assertRegex(bound, r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?Z$")
                    self.assertEqual(dt.datetime.fromisoformat(bound),
                                     dt.datetime.fromisoformat(given))
                self.assertEqual(m["airflow_version"], self.VERSION)
                self.assertEqual(m["format"], fmt)
                self.assertEqual(m["status"], "complete")
                self.assertEqual(m["engine"], "spark")
                self.assertEqual(m["run_id"], f"run-{fmt}")
                started = dt.datetime.fromisoformat(m["started_at"])
                finished = dt.datetime.fromisoformat(m["finished_at"])
                self.assertEqual(started.utcoffset(), dt.timedelta(0))
                self.assertLessEqual(started, finished)
                self.assertEqual([e["table"] for e in m["tables"]],
                                 [s["table"] for s in self.TABLES])
                for entry, spec in zip(m["tables"], self.TABLES):
                    self.assertEqual(set(entry), ENTRY_KEYS[entry["status"]], entry)
                    self.assertEqual(entry["window_column"], spec["window_column"])
                    self.assertEqual(entry["mode"], "window" if spec["window_column"] else "full")
                    if entry["status"] == "exported":
                        # Relative to --output, as in windsock's direct exports.
                        self.assertEqual(entry["path"], f"{ENVIRONMENT}/{entry['table']}/"
                                                        f"export_date={EXPORT_DATE}")
                        self.assertTrue((run.output / entry["path"]).is_dir())
                        self.assertIsInstance(entry["rows"], int)
                        self.assertEqual(entry["bytes"], sum(
                            p.stat().st_size for p in data_files(run.table_dir(entry["table"]))))
                    else:
                        self.assertIsNone(entry["path"])

    def test_missing_tables_are_listed_as_missing(self):
        entries = {e["table"]: e for e in self.runs["parquet"].manifest()["tables"]}
        for table in self.MISSING:
            self.assertNotIn(table, self.columns)
            self.assertEqual(entries[table]["status"], "missing", table)
            self.assertNotIn("rows", entries[table])
            self.assertFalse((self.runs["parquet"].env_dir / table).exists())

    def test_sensitive_tables_are_excluded(self):
        for fmt, run in self.runs.items():
            entries = {e["table"]: e for e in run.manifest()["tables"]}
            for table in SENSITIVE:
                with self.subTest(fmt=fmt, table=table):
                    self.assertEqual(entries[table]["status"], "excluded")
                    self.assertTrue(entries[table]["reason"])
            # Only exported tables (and the manifests) have directories.
            self.assertEqual(sorted(p.name for p in run.env_dir.iterdir()),
                             sorted(self.exported(run) + ["_manifests"]))

    def test_manifest_written_last_and_stale_output_replaced(self):
        for fmt, run in self.runs.items():
            with self.subTest(fmt=fmt):
                self.assertRunOk(run)
                data = [p for table in self.exported(run)
                        for p in run.table_dir(table).iterdir()]
                self.assertTrue(data)
                newest = max(p.stat().st_mtime_ns for p in data)
                self.assertGreaterEqual(run.manifest_file.stat().st_mtime_ns, newest)
                lines = run.stdout.splitlines()
                wrote = [i for i, line in enumerate(lines) if ": wrote " in line]
                self.assertEqual(len(wrote), len(self.exported(run)))
                written = [i for i, line in enumerate(lines) if "manifest written" in line]
                self.assertEqual(len(written), 1)
                self.assertGreater(written[0], max(wrote))
                self.assertIn("removed previous manifest", run.stdout)
                # This export_date was replaced; another one was left alone.
                self.assertFalse((run.table_dir("dag_run") / "part-99999-stale.snappy.parquet")
                                 .exists())
                self.assertTrue((run.env_dir / "dag_run" / "export_date=2000-01-01" /
                                 "keep.txt").exists())

    def test_partitioned_reads(self):
        run = self.runs["parquet"]
        self.assertRunOk(run)
        for table, mode in self.PARTITIONED.items():
            with self.subTest(table=table):
                match = re.search(rf"^.* {table}: {mode} read, (\d+) partitions on ",
                                  run.stdout, re.M)
                self.assertTrue(match, run.stdout)
                self.assertGreater(int(match.group(1)), 1)
                self.assertGreater(len(data_files(run.table_dir(table))), 1)


class Airflow318(ExportCase, unittest.TestCase):
    VERSION = "3.1.8"
    # Airflow 3 manual runs have no logical_date; run_after is set on every run.
    DAG_RUN_WINDOW = "run_after"
    FORMATS = ("parquet", "csv", "jsonl")
    MISSING = ("task_fail", "ws_no_such_table")
    PARTITIONED = {"dag_run": "window", "log": "window", "slot_pool": "full"}
    TABLES = [
        t("dag_run", "run_after", "id"),
        t("task_instance", "start_date", "id"),  # id is a uuid: one partition
        t("log", "dttm", "id"),
        t("job", "start_date", "id"),
        t("task_instance_history", "start_date"),
        t("dag"),
        t("slot_pool", None, "id"),
        t("serialized_dag"),  # jsonb + zlib bytea
        t("dag_code"),  # multi-line source with quotes
        t("task_fail", "start_date", "id"),  # dropped in Airflow 3
        t("ws_no_such_table", "start_date"),
        *(t(name) for name in SENSITIVE),
    ]

    def test_failed_table_gives_partial_manifest(self):
        """A table that fails is listed as failed with its error, the others are
        exported, the manifest says "partial" and the job exits 1."""
        output = self.out / "failure"
        seed_stale(output, "dag_run")
        tables = [t("dag_run", "no_such_column", "id"),  # caught by the catalog check
                  t("ws_t_broken", "dttm", "id"),  # fails inside the database, mid-read
                  t("log", "dttm", "id")]
        run = run_export(self.database, output, tables, self.window)
        self.assertEqual(run.rc, 1, run.describe())
        self.assertNotIn(PASSWORD, run.stdout + run.stderr)
        m = run.manifest()
        self.assertEqual(m["status"], "partial")
        self.assertNotEqual(m["run_id"], "stale")
        entries = {e["table"]: e for e in m["tables"]}
        self.assertEqual(entries["dag_run"]["status"], "failed")
        self.assertIn("no_such_column", entries["dag_run"]["error"])
        self.assertEqual(entries["ws_t_broken"]["status"], "failed")
        self.assertIn("division by zero", entries["ws_t_broken"]["error"])
        self.assertEqual(set(entries["ws_t_broken"]), ENTRY_KEYS["failed"])
        self.assertEqual(entries["log"]["status"], "exported")
        self.assertEqual(entries["log"]["rows"],
                         len(db_rows(self.database, "log", self.where("log"))))
        # No data of a failed table is left for this date: neither old nor partial.
        self.assertFalse(run.table_dir("dag_run").exists())
        self.assertFalse(run.table_dir("ws_t_broken").exists())
        self.assertTrue((run.env_dir / "dag_run" / "export_date=2000-01-01").exists())

    def test_crash_leaves_no_manifest(self):
        """A job that dies (here: the database does not exist) after it started leaves no
        manifest for the date, not the stale "complete" one."""
        output = self.out / "crash"
        seed_stale(output, "dag_run")
        run = run_export(self.database + "_absent", output, [t("log", "dttm", "id")],
                         self.window)
        self.assertNotEqual(run.rc, 0, run.describe())
        self.assertNotIn(PASSWORD, run.stdout + run.stderr)
        self.assertFalse(run.manifest_file.exists(), run.describe())
        self.assertFalse((run.env_dir / "log").exists())

    def test_glue_runtime(self):
        """Under Glue: arguments through getResolvedOptions (Glue's own extra arguments
        ignored), credentials from the Glue connection's fullUrl, engine "glue",
        job.commit() on success; a failed table raises after the manifest, no commit."""
        connection = {"url": f"jdbc:postgresql://{PG['host']}:{PG['port']}",
                      "fullUrl": pg_jdbc_url(self.database), "user": PG["user"],
                      "password": PASSWORD, "vendor": "postgresql"}
        for name, tables, ok in (("glue-ok", [t("log", "dttm", "id"), t("variable")], True),
                                 ("glue-fail", [t("log", "no_such_column")], False)):
            with self.subTest(name):
                commit = self.out / f"{name}.commit"
                run = run_export(self.database, self.out / name, tables, self.window,
                                 glue={"args": {"JOB_NAME": "windsock-export-test",
                                                "connection_name": "airflow-db",
                                                "job-bookmark-option": "job-bookmark-disable",
                                                "TempDir": "s3://unused/tmp/"},
                                       "env": {"FAKE_GLUE_CONNECTIONS":
                                               json.dumps({"airflow-db": connection}),
                                               "FAKE_GLUE_COMMIT_FILE": str(commit)}})
                self.assertNotIn(PASSWORD, run.stdout + run.stderr)
                m = run.manifest()
                self.assertEqual(m["engine"], "glue")
                if ok:
                    self.assertEqual(run.rc, 0, run.describe())
                    self.assertEqual(m["status"], "complete")
                    self.assertEqual(m["tables"][0]["rows"],
                                     len(db_rows(self.database, "log", self.where("log"))))
                    self.assertEqual(m["tables"][1]["status"], "excluded")
                    self.assertEqual(commit.read_text(), "windsock-export-test")
                else:
                    self.assertNotEqual(run.rc, 0, run.describe())
                    self.assertEqual(m["status"], "partial")
                    # spark-submit merges the Python stderr into its stdout
                    self.assertIn("RuntimeError: 1 table(s) failed: log",
                                  run.stdout + run.stderr)
                    self.assertFalse(commit.exists())

    def test_bad_arguments_touch_nothing(self):
        """Invalid arguments stop the job with exit 2 before Spark or the output."""
        output = self.out / "bad-args"
        seed_stale(output, "dag_run")
        env = spark_env()
        env["WINDSOCK_JDBC_PASSWORD"] = PASSWORD
        base = ["--environment", ENVIRONMENT, "--output", str(output),
                "--export_date", EXPORT_DATE, "--run_id", "r",
                "--jdbc_url", pg_jdbc_url(self.database)]
        cases = {
            "naive window": ["--window_start", "2026-11-24T00:00:00", "--window_end",
                             "2026-11-25T00:00:00Z", "--tables", json.dumps([t("log", "dttm")])],
            "injection": ["--window_start", self.window[0], "--window_end", self.window[1],
                          "--tables", json.dumps([t("log", "dttm >= now() OR 1=1 --")])],
        }
        for name, extra in cases.items():
            with self.subTest(name):
                proc = subprocess.run([sys.executable, str(SCRIPT), *base, *extra],
                                      capture_output=True, text=True, env=env, timeout=120)
                self.assertEqual(proc.returncode, 2, proc.stderr)
                self.assertIn("windsock-export: error:", proc.stderr)
        self.assertEqual(json.loads((output / ENVIRONMENT / "_manifests" /
                                     f"export_date={EXPORT_DATE}" / "_manifest.json")
                                    .read_text())["run_id"], "stale")


class Airflow2105(ExportCase, unittest.TestCase):
    VERSION = "2.10.5"
    DAG_RUN_WINDOW = "execution_date"  # logical_date before Airflow 3
    FORMATS = ("parquet", "csv")
    MISSING = ("dag_version", "ws_no_such_table")
    PARTITIONED = {"dag_run": "window", "log": "window", "job": "window"}
    TABLES = [
        t("dag_run", "execution_date", "id"),  # conf is a pickle (bytea)
        t("task_instance", "start_date"),  # no id column before Airflow 3
        t("log", "dttm", "id"),
        t("job", "start_date", "id"),
        t("task_fail", "start_date", "id"),
        t("dag"),
        t("slot_pool", None, "id"),
        t("serialized_dag"),
        t("dag_code"),
        t("dag_version", "created_at", "id"),  # Airflow 3 only
        t("ws_no_such_table"),
        *(t(name) for name in SENSITIVE),
    ]


def mariadb_problem() -> str | None:
    if not MARIADB_JAR.is_file():
        return (f"MariaDB JDBC driver {MARIADB_JAR} not found (apt-get install -y "
                "--no-install-recommends libmariadb-java, or set WINDSOCK_MARIADB_JDBC_JAR)")
    if not shutil.which("mariadb"):
        return "the mariadb client is not on PATH"
    try:
        load_fixture.mariadb(None, "SELECT 1")
    except RuntimeError as err:
        return f"MariaDB is not reachable: {err}"
    return None


def sqlite_fixture(version: str):
    import sqlite3
    db = sqlite3.connect(":memory:")
    db.executescript((REPO / "tests/fixtures/data" / version / "sqlite.sql").read_text())
    return db


def utc(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text)
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


class MariaDB318(unittest.TestCase):
    """The MySQL-family path (backtick quoting, ANSI_QUOTES for Spark's generic dialect,
    UTC sessions, TIMESTAMP literals, DATABASE() catalog) on MariaDB with a jdbc:mariadb:
    URL. The expected rows come straight from the SQLite fixture."""

    VERSION = "3.1.8"
    TABLES = [t("dag_run", "run_after", "id"), t("task_instance", "start_date", "id"),
              t("log", "dttm", "id"), t("slot_pool", None, "id"), t("serialized_dag"),
              t("dag_code"), t("task_fail", "start_date", "id"), t("variable"),
              t("connection")]

    @classmethod
    def setUpClass(cls):
        problem = mariadb_problem()
        if problem:
            raise unittest.SkipTest(problem)
        settings = load_fixture.mysql_settings()
        cls.database = f"ws_t_export_m{cls.VERSION.replace('.', '_')}_{secrets.token_hex(4)}"
        cls.addClassCleanup(load_fixture.drop_mariadb, cls.database)
        atexit.register(quietly, load_fixture.drop_mariadb, cls.database)
        load_fixture.load_mariadb(cls.VERSION, cls.database)
        cls.types = {}
        for line in load_fixture.mariadb(cls.database, (
                "SELECT table_name, column_name, column_type FROM information_schema.columns "
                "WHERE table_schema = DATABASE()")).splitlines():
            table, column, column_type = line.split("\t")
            cls.types.setdefault(table, {})[column] = column_type.lower()

        cls.lite = sqlite_fixture(cls.VERSION)
        runs = sorted(utc(v) for (v,) in cls.lite.execute(
            "SELECT run_after FROM dag_run WHERE run_after IS NOT NULL"))
        starts = sorted(utc(v) for (v,) in cls.lite.execute(
            "SELECT start_date FROM task_instance WHERE start_date IS NOT NULL"))
        cls.window = (runs[1], starts[len(starts) // 2])
        iso = tuple(w.strftime("%Y-%m-%dT%H:%M:%S.%fZ") for w in cls.window)
        cls.export = run_export(
            cls.database, _WORK / "mariadb", cls.TABLES, iso, fmt="jsonl",
            airflow_version=cls.VERSION, jar=MARIADB_JAR, user=settings["user"],
            password=settings["password"] or None,
            jdbc_url=f"jdbc:mariadb://{settings['host']}:{settings['port']}/{cls.database}")
        print(f"\n[mariadb {cls.VERSION}] jsonl export: exit {cls.export.rc}, "
              f"{cls.export.seconds:.1f}s", file=sys.stderr)

    def canonical(self, value, column_type: str, exported: bool):
        if value is None or value == "":
            return None
        if column_type.startswith("tinyint(1)"):
            return int(value)  # booleans: true/false exported, 0/1 in the fixture
        if re.match(r"(tiny|small|medium|big)?int", column_type):
            return int(value)
        if column_type.startswith("float"):  # single precision (task_instance.duration)
            return struct.unpack("f", struct.pack("f", float(value)))[0]
        if column_type.startswith(("double", "decimal")):
            return float(value)
        if column_type.startswith(("timestamp", "datetime")):
            return utc(value).isoformat(timespec="microseconds")
        if "blob" in column_type or "binary" in column_type:
            return base64.b64decode(value).hex() if exported else bytes(value).hex()
        return str(value)

    def test_export(self):
        run = self.export
        self.assertEqual(run.rc, 0, run.describe())
        m = run.manifest()
        self.assertEqual(m["status"], "complete")
        status = {e["table"]: e["status"] for e in m["tables"]}
        self.assertEqual(status, {"dag_run": "exported", "task_instance": "exported",
                                  "log": "exported", "slot_pool": "exported",
                                  "serialized_dag": "exported", "dag_code": "exported",
                                  "task_fail": "missing", "variable": "excluded",
                                  "connection": "excluded"})
        rows_in_manifest = {e["table"]: e.get("rows") for e in m["tables"]}
        self.assertRegex(run.stdout, r"log: window read, [2-9] partitions on id")
        self.assertGreater(len(data_files(run.table_dir("log"))), 1)
        for spec in self.TABLES:
            table = spec["table"]
            if status[table] != "exported":
                continue
            with self.subTest(table=table):
                types = self.types[table]
                cursor = self.lite.execute(f'SELECT * FROM "{table}"')
                names = [d[0] for d in cursor.description]
                expected = [dict(zip(names, r)) for r in cursor.fetchall()]
                if spec["window_column"]:
                    col = spec["window_column"]
                    expected = [r for r in expected if r[col] is not None
                                and self.window[0] <= utc(r[col]) < self.window[1]]
                    total = self.lite.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                    self.assertLess(len(expected), total)
                self.assertTrue(expected)
                got = read_jsonl(run.table_dir(table))
                self.assertEqual(rows_in_manifest[table], len(expected))
                masker = load_script_module().Masker(load_script_module().load_policy())
                expected = policy_rows(masker, table, expected,
                                       lambda c: "blob" in types[c] or "binary" in types[c])

                def canon(rows, exported):
                    return collections.Counter(json.dumps(
                        {c: self.canonical(v, types[c], exported) for c, v in r.items()},
                        sort_keys=True) for r in rows)
                self.assertEqual(canon(got, True), canon(expected, False))


class ArgumentValidation(unittest.TestCase):
    """The script's validation, in-process (no Spark needed)."""

    @classmethod
    def setUpClass(cls):
        cls.m = load_script_module()
        cls.good = {"environment": "prod", "output": "s3://bucket/prefix/",
                    "export_date": "2026-11-24", "window_start": "2026-11-24T00:00:00Z",
                    "window_end": "2026-11-25T00:00:00+00:00", "run_id": "r",
                    "tables": json.dumps([t("dag_run", "logical_date", "id"), t("dag")])}

    def config(self, **changes):
        return self.m.build_config({**self.good, **changes})

    def test_policy_examples(self):
        """The masker runs the policy file's examples, as src/export/mask.rs does."""
        policy = self.m.load_policy()
        masker = self.m.Masker(policy)
        self.assertGreaterEqual(len(policy["examples"]), 10)
        for e in policy["examples"]:
            fn = masker.mask_json if e["action"] == "mask_json" else masker.mask_text
            self.assertEqual(fn(e["in"]), e["out"], e["in"])
        self.assertEqual(masker.action("task_instance", "executor_config"), "drop")

    def test_embedded_policy_wins(self):
        """Uploaded by windsock, the script carries the policy in POLICY_JSON."""
        saved = self.m.POLICY_JSON
        try:
            self.m.POLICY_JSON = json.dumps({"replacement": "#", "sensitive_keys": ["k"],
                                             "text_rules": [], "columns": {}})
            masker = self.m.Masker(self.m.load_policy())
            self.assertEqual(masker.mask_json('{"k": 1}'), '{"k":"#"}')
        finally:
            self.m.POLICY_JSON = saved

    def test_column_allowlists(self):
        c = self.config(tables=json.dumps([{**t("log", "dttm", "id"), "columns": ["id", "event"]}]))
        self.assertEqual(c.tables[0].columns, ("id", "event"))
        for bad in ([], "id", ["id; DROP"]):
            with self.assertRaises(self.m.ArgumentError):
                self.config(tables=json.dumps([{**t("log", "dttm", "id"), "columns": bad}]))

    def test_good_arguments(self):
        c = self.config()
        self.assertEqual(c.output, "s3://bucket/prefix")
        self.assertEqual(c.format, "parquet")
        self.assertEqual(c.partitions, 8)
        self.assertEqual(c.window_end - c.window_start, dt.timedelta(days=1))
        self.assertEqual(c.table_path("dag_run"),
                         "s3://bucket/prefix/prod/dag_run/export_date=2026-11-24")
        self.assertEqual(c.manifest_path,
                         "s3://bucket/prefix/prod/_manifests/export_date=2026-11-24/_manifest.json")
        self.assertEqual([s.mode for s in c.tables], ["window", "full"])
        self.assertTrue(self.config(output="relative/dir").output.startswith("file:///"))
        # Offsets are converted to UTC.
        self.assertEqual(self.m.utc_iso(self.config(window_start="2026-11-24T02:00:00+02:00")
                                        .window_start), "2026-11-24T00:00:00Z")

    def test_bad_arguments(self):
        bad = {
            "window_start": ["2026-11-24", "2026-11-24T00:00:00", "2026-11-24 00:00:00Z",
                             "2026-13-01T00:00:00Z", "2026-11-24T00:00:00Z' OR '1'='1",
                             "2026-11-25T00:00:00Z"],  # not before window_end
            "export_date": ["2026-02-30", "20261124", "2026-11-24/.."],
            "environment": ["../x", "", "a/b", ".hidden"],
            "format": ["orc"],
            "partitions": ["0", "x", "100000"],
            "tables": ["", "{}", "[]", "not json", json.dumps([t("dag_run; DROP TABLE x")]),
                       json.dumps([t("dag_run", "a b")]), json.dumps([t("dag_run", None, "1id")]),
                       json.dumps([t("dag"), t("dag")]),
                       json.dumps([{"table": "dag", "extra": 1}])],
        }
        for name, values in bad.items():
            for value in values:
                with self.subTest(name=name, value=value):
                    with self.assertRaises(self.m.ArgumentError):
                        self.config(**{name: value})

    def test_sql_literals_and_identifiers(self):
        c = self.config()
        pg, my = self.m.POSTGRES, self.m.MYSQL
        self.assertEqual(pg.timestamp(c.window_start),
                         "TIMESTAMP WITH TIME ZONE '2026-11-24 00:00:00.000000+00:00'")
        self.assertEqual(my.timestamp(c.window_start), "TIMESTAMP '2026-11-24 00:00:00.000000'")
        self.assertEqual(pg.ident("dag_run"), '"dag_run"')
        self.assertEqual(my.ident("dag_run"), "`dag_run`")
        with self.assertRaises(self.m.ArgumentError):
            pg.ident('x"; DROP TABLE dag_run; --')
        self.assertIs(self.m.dialect_for("jdbc:postgresql://h/db"), pg)
        self.assertEqual(self.m.dialect_for("jdbc:mysql://h/db").driver, "com.mysql.cj.jdbc.Driver")
        self.assertEqual(self.m.dialect_for("jdbc:mariadb://h/db").driver,
                         "org.mariadb.jdbc.Driver")
        self.assertEqual(self.m.redact_url("jdbc:postgresql://u:pw@h:5432/db?password=pw&ssl=1"),
                         "jdbc:postgresql://h:5432/db")
        self.assertNotIn("pw", repr(self.m.JdbcTarget("jdbc:postgresql://h/db", "u", "pw")))

    def test_excluded_tables(self):
        for table in SENSITIVE:
            self.assertIn(table, self.m.EXCLUDED_TABLES)


if __name__ == "__main__":
    problems = prerequisite_problems()
    if problems:
        print("export job tests cannot run:\n  " + "\n  ".join(problems), file=sys.stderr)
        sys.exit(2)
    unittest.main(verbosity=2)
