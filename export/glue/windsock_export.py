"""windsock export job: copy Airflow metadata tables to S3 (or a local directory).

AWS Glue (5.0: Spark 3.5, Python 3.11) runs this script when windsock triggers an
export; plain Spark runs it too (spark-submit), which is how it is tested. See
export/glue/README.md for the full description.

What it does, in order:

1. Parses and strictly validates its arguments (the contract with the Rust side, below).
   Nothing touches the database or the output before the arguments are valid.
2. Deletes the manifest of this export_date, if there is one, so that a run that dies
   half way never leaves an old "complete" manifest next to half-rewritten data.
3. Asks the database catalog (information_schema, one pushed-down query) which of the
   requested tables exist and what their columns are.
4. Exports each table with Spark's JDBC source. The window predicate and the
   partitioning ranges are part of the SQL sent to the database (JDBC `predicates`),
   nothing is filtered after the read, and no data row is collected to the driver.
   Each table replaces <output>/<environment>/<table>/export_date=YYYY-MM-DD/.
5. Writes <output>/<environment>/_manifests/export_date=YYYY-MM-DD/_manifest.json last.

Arguments (all `--name value`; Glue passes its job arguments the same way):

  --environment      windsock environment name (a path segment)
  --output           s3://bucket/prefix, file:///dir or a local directory
  --export_date      YYYY-MM-DD, the partition written
  --window_start     ISO 8601 with offset, e.g. 2026-11-24T00:00:00Z (inclusive)
  --window_end       same format (exclusive): rows with start <= col < end
  --tables           JSON list of {"table": ..., "window_column": col|null,
                     "key_column": col|null}; window_column null exports the whole table
  --format           parquet (default) | csv (gzip, header) | jsonl (gzip)
  --airflow_version  recorded in the manifest
  --run_id           recorded in the manifest
  --partitions       parallel JDBC reads per table (default 8)
  --connection_name  Glue only: Glue connection holding url/user/password
  --jdbc_url         plain Spark only; --jdbc_user likewise; the password comes from
                     the environment variable WINDSOCK_JDBC_PASSWORD, never an argument

Excluded tables. These are never exported, even when requested; the manifest lists them
with status "excluded" and the reason:

  connection               passwords and extras of every Airflow connection (Fernet-
                           encrypted with the deployment's key, which may leak or be weak)
  variable                 Variable values, commonly used for secrets (encrypted or not)
  trigger                  deferred-task kwargs, encrypted because they carry credentials
  ab_user                  Flask-AppBuilder users: password hashes and e-mail addresses
  ab_register_user         pending FAB self-registrations: password hashes, reset hashes
  session                  web server sessions (FAB / Airflow 3): replayable session data
  xcom                     arbitrary task return values; may hold tokens or personal data
  connection_test_request  Airflow 3.3+: connection test payloads with password and extra

Column policy (export/glue/policy.json, the one definition the direct export shares):
some columns are never read (task_instance.executor_config, pickled; serialized_dag.
data_compressed), others are masked the way Airflow's secrets masker does (values under
sensitive JSON keys) plus URL passwords, secret CLI flags and `variables set` values in
text (log.extra, dag_run.conf, serialized_dag.data, ...). windsock embeds the policy into
the script it uploads (POLICY_JSON below); run from the repository, the script reads the
file beside it. A --tables entry may carry "columns": [...], an allowlist (the key and
window columns are always kept).

Exit status: 0 when the manifest says "complete"; 1 when a table failed (the manifest is
written with status "partial") or the job died before writing a manifest; 2 on invalid
arguments. Under Glue a failure raises, so the job run is marked FAILED.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import sys
import time
from dataclasses import dataclass
from typing import Any

MANIFEST_VERSION = 1
FORMATS = ("parquet", "csv", "jsonl")
DEFAULT_PARTITIONS = 8
MAX_PARTITIONS = 256
FETCH_SIZE = "1000"
PASSWORD_ENV = "WINDSOCK_JDBC_PASSWORD"

# Written with microseconds and an explicit offset ("Z" in UTC) in csv and jsonl;
# Spark's default keeps only milliseconds.
TEXT_TIMESTAMP_FORMAT = "yyyy-MM-dd'T'HH:mm:ss.SSSSSSXXX"

EXCLUDED_TABLES = {
    "connection": "connection passwords and extras (secrets, Fernet-encrypted)",
    "variable": "variable values are commonly secrets",
    "trigger": "trigger kwargs are encrypted because they carry credentials",
    "ab_user": "user password hashes and e-mail addresses",
    "ab_register_user": "registration password hashes",
    "session": "web server session data (replayable sessions)",
    "xcom": "arbitrary task payloads that may hold secrets",
    "connection_test_request": "connection test payloads with passwords and extras",
}

REQUIRED_ARGS = ("environment", "output", "export_date", "window_start", "window_end",
                 "tables", "run_id")
OPTIONAL_ARGS = {"format": "parquet", "airflow_version": None, "partitions": None,
                 "connection_name": None, "jdbc_url": None, "jdbc_user": None}

IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
ENVIRONMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
TIMESTAMP_RE = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})$")
URI_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")

# information_schema.columns.data_type values (PostgreSQL and MySQL/MariaDB spellings).
INTEGER_TYPES = {"smallint", "integer", "bigint", "int", "tinyint", "mediumint"}
TIMESTAMP_TYPES = {"timestamp with time zone", "timestamp without time zone",
                   "timestamp", "datetime", "date"}


# The column policy, embedded by windsock when it uploads this script (the line is
# replaced verbatim); None: read policy.json beside the script.
POLICY_JSON = None


def load_policy() -> dict[str, Any]:
    text = POLICY_JSON
    if text is None:
        with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "policy.json"),
                  encoding="utf-8") as f:
            text = f.read()
    return json.loads(text)


class Masker:
    """export/glue/policy.json applied to values; the same rules as src/export/mask.rs."""

    def __init__(self, policy: dict[str, Any]):
        self.replacement = policy["replacement"]
        self.sensitive = [k.lower() for k in policy["sensitive_keys"]]
        keys = "|".join(policy["sensitive_keys"])
        self.rules = [(re.compile(r["pattern"].replace("{keys}", keys)), r["replace"])
                      for r in policy["text_rules"]]
        self.columns = policy["columns"]

    def action(self, table: str, column: str, binary: bool = False) -> str | None:
        """The policy's action; a binary column it masks (Airflow 2 keeps dag_run.conf
        as a pickle) cannot be masked, so it is dropped."""
        action = self.columns.get(table, {}).get(column)
        return "drop" if binary and action in ("mask_json", "mask_text") else action

    def _expand(self, template: str, m: re.Match) -> str:
        return re.sub(r"\{(\d+|R)\}",
                      lambda x: self.replacement if x.group(1) == "R"
                      else (m.group(int(x.group(1))) or ""), template)

    def mask_text(self, text: str) -> str:
        for rx, template in self.rules:
            text = rx.sub(lambda m: self._expand(template, m), text)
        return text

    def _walk(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: (self.replacement if any(w in k.lower() for w in self.sensitive)
                        else self._walk(v)) for k, v in value.items()}
        if isinstance(value, list):
            return [self._walk(v) for v in value]
        if isinstance(value, str):
            return self.mask_text(value)
        return value

    def mask_json(self, text: str) -> str:
        try:
            value = json.loads(text)
        except ValueError:
            return self.mask_text(text)
        return json.dumps(self._walk(value), separators=(",", ":"), ensure_ascii=False)

    def apply(self, action: str, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, (bytes, bytearray)):
            value = value.decode("utf-8", "replace")
        return self.mask_json(value) if action == "mask_json" else self.mask_text(str(value))


class ArgumentError(ValueError):
    """An argument breaks the contract; the job stops before touching anything."""


def log(message: str) -> None:
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(f"windsock-export {now} {message}", flush=True)


def utc_iso(value: dt.datetime) -> str:
    """2026-11-24T00:00:00Z, with .ffffff only when there are microseconds."""
    text = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if value.microsecond:
        text += f".{value.microsecond:06d}"
    return text + "Z"


# ----------------------------------------------------------------------------------------
# Arguments


@dataclass(frozen=True)
class TableSpec:
    table: str
    window_column: str | None
    key_column: str | None
    columns: tuple[str, ...] | None = None  # allowlist; None: all

    @property
    def mode(self) -> str:
        return "window" if self.window_column else "full"


@dataclass(frozen=True)
class Config:
    environment: str
    output: str  # URI without a trailing slash
    export_date: str
    window_start: dt.datetime  # aware, UTC
    window_end: dt.datetime
    tables: tuple[TableSpec, ...]
    format: str
    airflow_version: str | None
    run_id: str
    partitions: int
    connection_name: str | None
    jdbc_url: str | None
    jdbc_user: str | None

    def table_dir(self, table: str) -> str:
        """<environment>/<table>/export_date=D: the manifest's path, relative to output."""
        return f"{self.environment}/{table}/export_date={self.export_date}"

    def table_path(self, table: str) -> str:
        return f"{self.output}/{self.table_dir(table)}"

    @property
    def manifest_path(self) -> str:
        return (f"{self.output}/{self.environment}/_manifests/"
                f"export_date={self.export_date}/_manifest.json")


def identifier(value: Any, what: str) -> str:
    """Table and column names go into SQL, so they must be plain identifiers."""
    if not isinstance(value, str) or not IDENT_RE.match(value):
        raise ArgumentError(f"{what} must match {IDENT_RE.pattern}, got {value!r}")
    return value


def parse_timestamp(value: str, what: str) -> dt.datetime:
    if not TIMESTAMP_RE.match(value or ""):
        raise ArgumentError(
            f"--{what} must be ISO 8601 with an offset, like 2026-11-24T00:00:00Z; "
            f"got {value!r}")
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as err:
        raise ArgumentError(f"--{what}: {err}") from None
    return parsed.astimezone(dt.timezone.utc)


def parse_tables(text: str) -> tuple[TableSpec, ...]:
    try:
        items = json.loads(text)
    except (TypeError, json.JSONDecodeError) as err:
        raise ArgumentError(f"--tables is not valid JSON: {err}") from None
    if not isinstance(items, list) or not items:
        raise ArgumentError("--tables must be a non-empty JSON list")
    specs, seen = [], set()
    for item in items:
        if not isinstance(item, dict):
            raise ArgumentError(f"--tables: each entry must be an object, got {item!r}")
        unknown = set(item) - {"table", "window_column", "key_column", "columns"}
        if unknown:
            raise ArgumentError(f"--tables: unknown keys {sorted(unknown)} in {item!r}")
        table = identifier(item.get("table"), "--tables table")
        if table in seen:
            raise ArgumentError(f"--tables: {table} is listed twice")
        seen.add(table)
        window = item.get("window_column")
        key = item.get("key_column")
        columns = item.get("columns")
        if columns is not None and (not isinstance(columns, list) or not columns):
            raise ArgumentError(f"--tables: {table} columns must be a non-empty list")
        specs.append(TableSpec(
            table=table,
            window_column=None if window is None else identifier(window, f"{table} window_column"),
            key_column=None if key is None else identifier(key, f"{table} key_column"),
            columns=None if columns is None else tuple(
                identifier(c, f"{table} column") for c in columns),
        ))
    return tuple(specs)


def normalize_output(value: str) -> str:
    value = (value or "").strip()
    if not value:
        raise ArgumentError("--output is empty")
    if not URI_RE.match(value):
        # A plain local path: make it absolute so Hadoop does not resolve it against
        # some other default file system.
        value = "file://" + os.path.abspath(value)
    return value.rstrip("/")


def build_config(args: dict[str, Any]) -> Config:
    missing = [name for name in REQUIRED_ARGS if not args.get(name)]
    if missing:
        raise ArgumentError("missing arguments: " + ", ".join("--" + m for m in missing))

    environment = args["environment"]
    if not ENVIRONMENT_RE.match(environment):
        raise ArgumentError(f"--environment must match {ENVIRONMENT_RE.pattern}")

    export_date = args["export_date"]
    try:
        if not DATE_RE.match(export_date):
            raise ValueError("not YYYY-MM-DD")
        dt.date.fromisoformat(export_date)
    except ValueError as err:
        raise ArgumentError(f"--export_date {export_date!r}: {err}") from None

    start = parse_timestamp(args["window_start"], "window_start")
    end = parse_timestamp(args["window_end"], "window_end")
    if start >= end:
        raise ArgumentError("--window_start must be before --window_end")

    fmt = args.get("format") or "parquet"
    if fmt not in FORMATS:
        raise ArgumentError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")

    raw_partitions = args.get("partitions")
    try:
        partitions = DEFAULT_PARTITIONS if raw_partitions in (None, "") else int(raw_partitions)
    except ValueError:
        raise ArgumentError(f"--partitions must be an integer, got {raw_partitions!r}") from None
    if not 1 <= partitions <= MAX_PARTITIONS:
        raise ArgumentError(f"--partitions must be between 1 and {MAX_PARTITIONS}")

    return Config(
        environment=environment,
        output=normalize_output(args["output"]),
        export_date=export_date,
        window_start=start,
        window_end=end,
        tables=parse_tables(args["tables"]),
        format=fmt,
        airflow_version=args.get("airflow_version") or None,
        run_id=args["run_id"],
        partitions=partitions,
        connection_name=args.get("connection_name") or None,
        jdbc_url=args.get("jdbc_url") or None,
        jdbc_user=args.get("jdbc_user") or None,
    )


# ----------------------------------------------------------------------------------------
# Runtimes: the only place that knows about Glue.

try:  # Present only inside AWS Glue.
    from awsglue.context import GlueContext
    from awsglue.job import Job
    from awsglue.utils import getResolvedOptions
    HAVE_GLUE = True
except ImportError:
    HAVE_GLUE = False


@dataclass
class JdbcTarget:
    url: str
    user: str | None
    password: str | None = None

    def __repr__(self) -> str:  # never show the password, even by accident
        return f"JdbcTarget(url={redact_url(self.url)!r}, user={self.user!r})"


class GlueRuntime:
    """Glue: arguments via getResolvedOptions, credentials from a Glue connection."""

    engine = "glue"

    def __init__(self, argv: list[str]):
        # getResolvedOptions only knows required names; ask for optional ones when given.
        present = [name for name in OPTIONAL_ARGS
                   if any(a == f"--{name}" or a.startswith(f"--{name}=") for a in argv)]
        self.args = getResolvedOptions(argv, ["JOB_NAME", *REQUIRED_ARGS, *present])
        self.glue_context = None
        self.job = None

    def validate(self, config: Config) -> None:
        if not config.connection_name:
            raise ArgumentError("--connection_name is required under Glue")
        if config.jdbc_url or config.jdbc_user:
            raise ArgumentError("--jdbc_url/--jdbc_user are for plain Spark; "
                                "Glue takes --connection_name")

    def start_spark(self):
        from pyspark.context import SparkContext

        self.glue_context = GlueContext(SparkContext.getOrCreate())
        self.job = Job(self.glue_context)
        self.job.init(self.args["JOB_NAME"], self.args)
        return self.glue_context.spark_session

    def jdbc_target(self, config: Config) -> JdbcTarget:
        conf = self.glue_context.extract_jdbc_conf(config.connection_name)
        # "url" lacks the database name; "fullUrl" has it.
        url = conf.get("fullUrl") or conf.get("url")
        return JdbcTarget(url=url, user=conf.get("user"), password=conf.get("password"))

    def succeed(self) -> None:
        self.job.commit()

    def fail(self, message: str) -> int:
        raise RuntimeError(message)  # marks the Glue job run FAILED with this message

    def stop(self) -> None:
        pass  # Glue owns the SparkContext


class SparkRuntime:
    """Plain Spark (spark-submit, tests): argparse, password from the environment."""

    engine = "spark"

    def __init__(self, argv: list[str]):
        parser = argparse.ArgumentParser(
            prog=os.path.basename(argv[0]) if argv else "windsock_export.py",
            description="windsock export job (plain Spark)")
        for name in REQUIRED_ARGS:
            parser.add_argument(f"--{name}", required=True)
        for name, default in OPTIONAL_ARGS.items():
            parser.add_argument(f"--{name}", default=default)
        self.args = vars(parser.parse_args(argv[1:]))
        self.spark = None

    def validate(self, config: Config) -> None:
        if config.connection_name:
            raise ArgumentError("--connection_name needs AWS Glue; use --jdbc_url here")
        if not config.jdbc_url:
            raise ArgumentError("--jdbc_url is required outside Glue")
        dialect_for(config.jdbc_url)

    def start_spark(self):
        from pyspark.sql import SparkSession

        self.spark = SparkSession.builder.appName("windsock-export").getOrCreate()
        return self.spark

    def jdbc_target(self, config: Config) -> JdbcTarget:
        return JdbcTarget(url=config.jdbc_url, user=config.jdbc_user,
                          password=os.environ.get(PASSWORD_ENV) or None)

    def succeed(self) -> None:
        pass

    def fail(self, message: str) -> int:
        log(f"FAILED: {message}")
        return 1

    def stop(self) -> None:
        if self.spark is not None:
            self.spark.stop()


# ----------------------------------------------------------------------------------------
# SQL dialects


@dataclass(frozen=True)
class Dialect:
    name: str
    driver: str
    quote: str
    current_schema: str
    text_type: str
    # Runs on every JDBC connection Spark opens: compare timestamps in UTC (and, on
    # PostgreSQL, refuse writes).
    session_init: str

    def ident(self, name: str) -> str:
        identifier(name, "identifier")  # defence in depth: never quote anything else
        return f"{self.quote}{name}{self.quote}"

    def timestamp(self, value: dt.datetime) -> str:
        # Built from a parsed datetime, never from the argument text.
        text = value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")
        if self.name == "postgresql":
            return f"TIMESTAMP WITH TIME ZONE '{text}+00:00'"
        # MySQL/MariaDB TIMESTAMP literals are read in the session time zone: UTC, above.
        return f"TIMESTAMP '{text}'"


POSTGRES = Dialect(
    name="postgresql", driver="org.postgresql.Driver", quote='"',
    current_schema="current_schema()", text_type="TEXT",
    session_init="SELECT set_config('TimeZone', 'UTC', false), "
                 "set_config('default_transaction_read_only', 'on', false)",
)
MYSQL = Dialect(
    name="mysql", driver="com.mysql.cj.jdbc.Driver", quote="`",
    current_schema="DATABASE()", text_type="CHAR",
    session_init="SET time_zone = '+00:00'",
)
# Spark 3.5 has no dialect for jdbc:mariadb: URLs: its generic one quotes the column
# names it selects with double quotes, which MariaDB reads as string literals unless
# ANSI_QUOTES is on. (Our own SQL quotes with backticks, valid either way.)
MARIADB = Dialect(
    name="mariadb", driver="org.mariadb.jdbc.Driver", quote="`",
    current_schema="DATABASE()", text_type="CHAR",
    session_init="SET time_zone = '+00:00', sql_mode = CONCAT(@@sql_mode, ',ANSI_QUOTES')",
)


def dialect_for(url: str) -> Dialect:
    lower = (url or "").lower()
    for prefix, dialect in (("jdbc:postgresql:", POSTGRES), ("jdbc:mysql:", MYSQL),
                            ("jdbc:mariadb:", MARIADB)):
        if lower.startswith(prefix):
            return dialect
    raise ArgumentError(
        f"unsupported JDBC URL {redact_url(url)!r}: need jdbc:postgresql:, jdbc:mysql: "
        "or jdbc:mariadb:")


def redact_url(url: str | None) -> str:
    """jdbc:postgresql://host:5432/db without user info or parameters (may hold secrets)."""
    if not url:
        return ""
    url = re.split(r"[?;]", url, maxsplit=1)[0]
    return re.sub(r"//[^/@]*@", "//", url)


# ----------------------------------------------------------------------------------------
# Output storage through Hadoop's FileSystem API: s3:// in Glue, file:// locally.


class Store:
    def __init__(self, spark):
        self._jvm = spark._jvm
        self._conf = spark._jsc.hadoopConfiguration()

    def _resolve(self, uri: str):
        path = self._jvm.org.apache.hadoop.fs.Path(uri)
        return path.getFileSystem(self._conf), path

    def delete(self, uri: str, recursive: bool) -> bool:
        fs, path = self._resolve(uri)
        return bool(fs.exists(path)) and bool(fs.delete(path, recursive))

    def data_bytes(self, uri: str) -> int:
        """Total size of the part-* files in a directory."""
        fs, path = self._resolve(uri)
        return sum(int(status.getLen()) for status in fs.listStatus(path)
                   if status.isFile() and status.getPath().getName().startswith("part-"))

    def write_text(self, uri: str, text: str) -> None:
        fs, path = self._resolve(uri)
        stream = fs.create(path, True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()


# ----------------------------------------------------------------------------------------
# The export


class Exporter:
    def __init__(self, config: Config, engine: str, spark, target: JdbcTarget):
        self.config = config
        self.engine = engine
        self.spark = spark
        self.target = target
        self.dialect = dialect_for(target.url)
        self.store = Store(spark)
        self.started_at = dt.datetime.now(dt.timezone.utc)
        self.masker = Masker(load_policy())

    # -- JDBC -------------------------------------------------------------------------

    def _properties(self) -> dict[str, str]:
        props = {
            "driver": self.dialect.driver,
            "fetchsize": FETCH_SIZE,  # stream rows instead of buffering a partition
            "sessionInitStatement": self.dialect.session_init,
        }
        if self.target.user:
            props["user"] = self.target.user
        if self.target.password:
            props["password"] = self.target.password
        return props

    def _query(self, sql: str):
        """A DataFrame over one SQL query, executed by the database."""
        reader = self.spark.read.format("jdbc").option("url", self.target.url)
        for key, value in self._properties().items():
            reader = reader.option(key, value)
        return reader.option("query", sql).load()

    def _redact(self, text: str) -> str:
        if self.target.password:
            text = text.replace(self.target.password, "***")
        return text

    def check_time_zone(self) -> None:
        """JDBC drivers turn the database's zone-less timestamps (all of them on MySQL/
        MariaDB, `timestamp without time zone` on PostgreSQL) into instants with the
        JVM's default zone; the sessions are in UTC, so the JVMs must be too. Glue's are.
        """
        zone = self.spark._jvm.java.util.TimeZone.getDefault()
        if zone.getRawOffset() == 0 and not zone.useDaylightTime():
            return
        message = (f"the JVM time zone is {zone.getID()}, not UTC; run Spark with "
                   "-Duser.timezone=UTC (spark.driver.extraJavaOptions and "
                   "spark.executor.extraJavaOptions)")
        if self.dialect.name == "postgresql":
            log(f"WARNING: {message}: timestamp without time zone columns would be shifted")
        else:
            raise RuntimeError(f"{message}: {self.dialect.name} timestamps would be shifted")

    # -- Catalog ----------------------------------------------------------------------

    def catalog(self, tables: list[str]) -> dict[str, dict[str, str]]:
        """{table: {column: data_type}} for the requested tables that exist.

        One query against information_schema for the current schema (PostgreSQL) or
        database (MySQL); only catalog metadata comes back to the driver.
        """
        if not tables:
            return {}
        d = self.dialect
        names = ", ".join(f"'{identifier(t, 'table')}'" for t in tables)
        sql = (
            f"SELECT CAST(t.table_name AS {d.text_type}) AS table_name, "
            f"CAST(c.column_name AS {d.text_type}) AS column_name, "
            f"CAST(c.data_type AS {d.text_type}) AS data_type "
            "FROM information_schema.tables t "
            "LEFT JOIN information_schema.columns c "
            "ON c.table_schema = t.table_schema AND c.table_name = t.table_name "
            # The same constant filters on both sides: without them MariaDB reads the
            # columns of every database for each table (a minute on a small server).
            f"AND c.table_schema = {d.current_schema} AND c.table_name IN ({names}) "
            f"WHERE t.table_schema = {d.current_schema} AND t.table_name IN ({names})"
        )
        found: dict[str, dict[str, str]] = {}
        for row in self._query(sql).collect():
            columns = found.setdefault(row["table_name"], {})
            if row["column_name"] is not None:
                columns[row["column_name"]] = (row["data_type"] or "").lower()
        return found

    # -- One table --------------------------------------------------------------------

    def window_predicate(self, spec: TableSpec) -> str | None:
        if not spec.window_column:
            return None
        d, c = self.dialect, self.config
        column = d.ident(spec.window_column)
        # Half-open [start, end): a row on the boundary belongs to exactly one window.
        return (f"{column} >= {d.timestamp(c.window_start)} "
                f"AND {column} < {d.timestamp(c.window_end)}")

    def key_ranges(self, spec: TableSpec, columns: dict[str, str],
                   where: str | None) -> tuple[list[str], str]:
        """WHERE clauses, one per Spark partition, and a description for the log.

        Like Spark's partitionColumn/lowerBound/upperBound/numPartitions, with the
        bounds from a pushed-down MIN/MAX over the window, but the ranges are built here
        and passed as JDBC predicates, so the SQL (and the quoting of the key for the
        dialect) is ours. The first range is open below (and takes NULL keys), the last
        open above, so rows are never lost, even if the table grows after the MIN/MAX
        query.
        """
        base = f"({where})" if where else "1=1"
        key = spec.key_column
        if not key:
            return [base], "1 partition (no key column)"
        key_type = columns.get(key)
        if key_type is None:
            return [base], f"1 partition (key {key} not found)"
        if key_type not in INTEGER_TYPES:
            return [base], f"1 partition (key {key} is {key_type})"

        d = self.dialect
        k = d.ident(key)
        sql = f"SELECT MIN({k}) AS lo, MAX({k}) AS hi FROM {d.ident(spec.table)}"
        if where:
            sql += f" WHERE {where}"
        bounds = self._query(sql).collect()[0]  # one aggregated row
        lo, hi = bounds["lo"], bounds["hi"]
        if lo is None:
            return [base], "1 partition (no rows)"
        lo, hi = int(lo), int(hi)
        n = max(1, min(self.config.partitions, hi - lo + 1))
        if n == 1:
            return [base], f"1 partition ({key} in [{lo}, {hi}])"
        cuts = [lo + (hi - lo + 1) * i // n for i in range(1, n)]
        ranges = [f"({k} < {cuts[0]} OR {k} IS NULL)"]
        ranges += [f"{k} >= {a} AND {k} < {b}" for a, b in zip(cuts, cuts[1:])]
        ranges.append(f"{k} >= {cuts[-1]}")
        return ([f"{base} AND ({r})" for r in ranges],
                f"{n} partitions on {key} in [{lo}, {hi}]")

    def export_table(self, spec: TableSpec, columns: dict[str, str]) -> tuple[int, int]:
        """Writes one table; returns (rows, bytes)."""
        from pyspark.sql import functions as F
        from pyspark.sql import Observation
        from pyspark.sql.types import BinaryType

        if spec.window_column:
            window_type = columns.get(spec.window_column)
            if window_type is None:
                raise ValueError(f"window column {spec.window_column} not found in {spec.table}")
            if window_type not in TIMESTAMP_TYPES:
                raise ValueError(f"window column {spec.window_column} is {window_type}, "
                                 "not a timestamp")
        where = self.window_predicate(spec)
        predicates, how = self.key_ranges(spec, columns, where)
        path = self.config.table_path(spec.table)
        log(f"{spec.table}: {spec.mode} read, {how}")

        df = self.spark.read.jdbc(self.target.url, self.dialect.ident(spec.table),
                                  predicates=predicates, properties=self._properties())
        df = self.apply_policy(df, spec)
        if self.config.format != "parquet":
            # Text formats carry binary (bytea/blob) columns as base64.
            df = df.select([F.base64(F.col(f.name)).alias(f.name)
                            if isinstance(f.dataType, BinaryType) else F.col(f.name)
                            for f in df.schema.fields])
        # Count the rows in the same pass that writes them (no second read, no collect).
        observation = Observation(f"windsock_rows_{spec.table}")
        df = df.observe(observation, F.count(F.lit(1)).alias("rows"))

        writer = df.write.mode("overwrite")  # replaces just this export_date directory
        if self.config.format == "parquet":
            writer.parquet(path)
        elif self.config.format == "csv":
            (writer.option("header", True).option("compression", "gzip")
             .option("escape", '"')  # RFC 4180: a quote inside a field is doubled
             # Spark trims values when writing csv by default; keep them byte for byte.
             .option("ignoreLeadingWhiteSpace", False)
             .option("ignoreTrailingWhiteSpace", False)
             .option("timestampFormat", TEXT_TIMESTAMP_FORMAT)
             .csv(path))
        else:
            (writer.option("compression", "gzip").option("ignoreNullFields", False)
             .option("timestampFormat", TEXT_TIMESTAMP_FORMAT)
             .json(path))
        rows = int(observation.get["rows"])
        size = self.store.data_bytes(path)
        log(f"{spec.table}: wrote {rows} rows, {size} bytes to {path}/")
        return rows, size

    def apply_policy(self, df, spec: TableSpec):
        """The column policy: dropped and non-allowlisted columns leave the plan (the
        JDBC read then does not fetch them), masked ones go through the masker."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import BinaryType, StringType

        masker = self.masker
        needed = {spec.key_column, spec.window_column}

        def action(f):
            return masker.action(spec.table, f.name, isinstance(f.dataType, BinaryType))
        keep = [f for f in df.schema.fields
                if f.name in needed or (action(f) != "drop"
                                        and (spec.columns is None or f.name in spec.columns))]
        columns = []
        for f in keep:
            act = action(f)
            if act in ("mask_json", "mask_text"):
                udf = F.udf(lambda v, a=act: masker.apply(a, v), StringType())
                columns.append(udf(F.col(f.name)).alias(f.name))
            else:
                columns.append(F.col(f.name))
        return df.select(columns)

    # -- The run ----------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        c = self.config
        log(f"export {c.environment} {c.export_date} window [{utc_iso(c.window_start)}, "
            f"{utc_iso(c.window_end)}) format={c.format} engine={self.engine} "
            f"db={redact_url(self.target.url)} run_id={c.run_id}")

        # A re-run starts by removing the old manifest: until the new one is written,
        # this export_date has none, so nobody takes half-rewritten data for complete.
        if self.store.delete(c.manifest_path, recursive=False):
            log(f"removed previous manifest {c.manifest_path}")

        wanted = [s.table for s in c.tables if s.table not in EXCLUDED_TABLES]
        catalog = self.catalog(wanted)

        entries = []
        for spec in c.tables:
            entry: dict[str, Any] = {"table": spec.table, "status": None,
                                     "window_column": spec.window_column,
                                     "mode": spec.mode, "path": None}
            if spec.table in EXCLUDED_TABLES:
                entry.update(status="excluded", reason=EXCLUDED_TABLES[spec.table])
                log(f"{spec.table}: excluded ({EXCLUDED_TABLES[spec.table]})")
            elif spec.table not in catalog:
                entry["status"] = "missing"
                log(f"{spec.table}: not in the database schema")
            else:
                try:
                    rows, size = self.export_table(spec, catalog[spec.table])
                    entry.update(status="exported", rows=rows, bytes=size,
                                 path=c.table_dir(spec.table))
                except Exception as err:  # one bad table must not hide the others
                    message = self._redact(error_summary(err))
                    entry.update(status="failed", error=message)
                    log(f"{spec.table}: FAILED: {message}")
                    # Leave no data without a manifest entry vouching for it.
                    try:
                        self.store.delete(c.table_path(spec.table), recursive=True)
                    except Exception as cleanup:
                        log(f"{spec.table}: could not remove partial output: "
                            f"{self._redact(error_summary(cleanup))}")
            entries.append(entry)

        failed = [e["table"] for e in entries if e["status"] == "failed"]
        manifest = {
            "manifest_version": MANIFEST_VERSION,
            "environment": c.environment,
            "export_date": c.export_date,
            "window": {"start": utc_iso(c.window_start), "end": utc_iso(c.window_end)},
            "airflow_version": c.airflow_version,
            "format": c.format,
            "status": "partial" if failed else "complete",
            "engine": self.engine,
            "run_id": c.run_id,
            "started_at": utc_iso(self.started_at.replace(microsecond=0)),
            "finished_at": utc_iso(dt.datetime.now(dt.timezone.utc).replace(microsecond=0)),
            "tables": entries,
        }
        # Last: the manifest vouches for everything written before it.
        self.store.write_text(c.manifest_path, json.dumps(manifest, indent=2) + "\n")
        log(f"manifest written: {c.manifest_path} status={manifest['status']}")
        return manifest


def error_summary(err: BaseException) -> str:
    """One line for the manifest: the error and its root cause, no Java stack trace."""
    def first_line(text: str) -> str:
        lines = [line.strip() for line in str(text).strip().splitlines() if line.strip()]
        return lines[0][:400] if lines else ""

    # Py4JJavaError carries the Java throwable as java_exception, PySpark's converted
    # exceptions as _origin.
    java = getattr(err, "java_exception", None) or getattr(err, "_origin", None)
    if java is None:
        return first_line(str(err)) or type(err).__name__
    summary = first_line(java.toString())
    root, depth = java, 0
    while root.getCause() is not None and depth < 32:
        root, depth = root.getCause(), depth + 1
    if depth:
        summary += " | caused by: " + first_line(root.toString())
    return summary[:1000]


# ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv if argv is None else argv)
    runtime = GlueRuntime(argv) if HAVE_GLUE else SparkRuntime(argv)
    try:
        config = build_config(runtime.args)
        runtime.validate(config)
    except ArgumentError as err:
        print(f"windsock-export: error: {err}", file=sys.stderr)
        return 2

    begun = time.monotonic()
    spark = runtime.start_spark()
    try:
        # Timestamps in csv/jsonl and any session-local conversion: UTC.
        spark.conf.set("spark.sql.session.timeZone", "UTC")
        target = runtime.jdbc_target(config)
        exporter = Exporter(config, runtime.engine, spark, target)
        exporter.check_time_zone()
        manifest = exporter.run()
        log(f"done in {time.monotonic() - begun:.1f}s")
        failed = [t["table"] for t in manifest["tables"] if t["status"] == "failed"]
        if failed:
            return runtime.fail(f"{len(failed)} table(s) failed: {', '.join(failed)}; "
                                "manifest status is partial")
        runtime.succeed()
        return 0
    finally:
        runtime.stop()


if __name__ == "__main__":
    sys.exit(main())
