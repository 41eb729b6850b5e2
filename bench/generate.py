#!/usr/bin/env python3
"""Fill a real Airflow metadata schema with a large, realistic, reproducible history.

Benchmark data generator for windsock (issue 7). It creates a database, loads one of
the committed schema fixtures (tests/fixtures/schema/<version>/{postgres,mysql}.sql,
i.e. Airflow's own tables, keys and indexes) and fills it with generated history:

  size  DAGs   dag_run    task_instance  log      (other tables scale alike)
  S       60     10 k       ~100 k         ~50 k
  M      400    100 k         ~1 M        ~0.5 M
  L    2 000      1 M        ~10 M          ~5 M

Dependencies (a venv keeps the system Python clean):

    python3 -m venv /tmp/bench-venv
    /tmp/bench-venv/bin/pip install psycopg2-binary pymysql
    /tmp/bench-venv/bin/python bench/generate.py --size S

Examples:

    bench/generate.py --size L                               # PostgreSQL, Airflow 2.10.5
    bench/generate.py --size M --dialect mariadb             # MariaDB
    bench/generate.py --size S --version 3.1.8               # Airflow 3 schema
    bench/generate.py --size L --steady 1000                 # append ~1000 TIs to windsock_bench_l

How it is fast: all rows except the DAG definitions are produced inside the database
server by INSERT ... SELECT over generate_series (PostgreSQL) or the SEQUENCE engine's
seq_0_to_N tables (MariaDB). On PostgreSQL the keys and indexes of the big tables are
dropped before the load and rebuilt (two at a time) afterwards, exactly as the fixture
defined them, then everything is ANALYZEd. On MariaDB the secondary indexes of the big
tables are dropped and re-added the same way (the clustered primary key stays).

Reproducible: every random choice is a hash of (--seed, row key), computed by
hashint8extended() on PostgreSQL and crc32() on MariaDB, and the DAG definitions come
from Python's random.Random(seed). The same seed, size, version and --now give the same
rows on the same dialect (the two dialects use different hash functions, so their
data differ in detail but not in shape). --now defaults to the current time, so that
"running", "queued" and heartbeats are current; pass --now to pin it.

Helper tables (the DAG specs and the per-run plan that --steady extends) live outside
Airflow's tables: schema `windsock_bench` on PostgreSQL, tables `windsock_bench_*` on
MariaDB.
"""
from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import random
import struct
import sys
import threading
import time
import uuid
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FIXTURES = REPO / "tests" / "fixtures" / "schema"

SIZES = {
    # dags, dag runs, fraction of dags that carry a queued backlog, import errors
    "S": dict(dags=60, runs=10_000, imp_errors=2, max_sd_mb=3.0),
    "M": dict(dags=400, runs=100_000, imp_errors=5, max_sd_mb=6.0),
    "L": dict(dags=2_000, runs=1_000_000, imp_errors=12, max_sd_mb=13.5),
}
SPAN_DAYS = 365          # history spans about a year, ending at --now
RECENT_JOB_DAYS = 18     # LocalTaskJob rows (2.x) exist for TIs of the last N days
MAX_TASKS = 64           # task index t < 64, so (run id * 64 + t) is a unique TI key
TASK_KINDS = ["extract", "transform", "load", "check", "notify"]
OPERATORS = ["PythonOperator", "BashOperator", "SQLExecuteQueryOperator",
             "KubernetesPodOperator", "EmptyOperator"]
OPERATOR_MODULES = ["airflow.operators.python", "airflow.operators.bash",
                    "airflow.providers.common.sql.operators.sql",
                    "airflow.providers.cncf.kubernetes.operators.pod",
                    "airflow.operators.empty"]
# the big tables: their keys/indexes are dropped before the load and rebuilt after
BIG = ["dag_run", "task_instance", "task_instance_history", "log", "job", "xcom",
       "task_fail", "sla_miss"]


def task_id(t: int) -> str:
    return f"{TASK_KINDS[t % 5]}_{t:02d}"


# --------------------------------------------------------------------------- dialects
class Dialect:
    name = ""
    B = ""  # prefix of helper tables

    def __init__(self, seed: int, now: dt.datetime):
        self.seed = seed
        self.now = now

    def NOW(self) -> str:
        return self.ts_lit(self.now)


class Postgres(Dialect):
    name = "postgres"
    B = "windsock_bench."

    def ts_lit(self, t: dt.datetime) -> str:
        return f"timestamptz '{t.strftime('%Y-%m-%d %H:%M:%S.%f')}+00'"

    def H(self, key: str, salt: int) -> str:
        return (f"((hashint8extended(({key})::bigint, {self.seed * 1000 + salt}) & 2147483647)"
                f"::float8 / 2147483648.0)")

    def ADDS(self, ts: str, secs: str) -> str:
        return f"({ts} + ({secs}) * interval '1 second')"

    def EPOCH(self, ts: str) -> str:
        return f"extract(epoch from {ts})::float8"

    def SERIES(self, alias: str, lo: str, hi_excl: str, maxn: int = 0) -> str:
        return f"CROSS JOIN LATERAL generate_series({lo}, ({hi_excl}) - 1) AS {alias}(seq)"

    def INT(self, x: str) -> str:
        return f"(({x})::bigint)"

    def TXT(self, x: str) -> str:
        return f"(({x})::text)"

    def RUNTS(self, ts: str) -> str:
        return f"to_char(({ts}) at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS+00:00')"

    def UUID7(self, ts: str, key: str, tag: str) -> str:
        # time-ordered like Airflow 3's uuid7: 48-bit ms timestamp, version 7, variant 8..b
        return (f"(lpad(to_hex(({self.EPOCH(ts)} * 1000)::bigint), 12, '0') || '7' || "
                f"lpad(to_hex((({key}) % 4096)::int), 3, '0') || '{tag}' || "
                f"lpad(to_hex(({key})::bigint), 15, '0'))::uuid")

    def BLOB(self, text_expr: str) -> str:
        return f"convert_to({text_expr}, 'UTF8')"


class MariaDB(Dialect):
    name = "mariadb"
    B = "windsock_bench_"

    def ts_lit(self, t: dt.datetime) -> str:
        return f"TIMESTAMP'{t.strftime('%Y-%m-%d %H:%M:%S.%f')}'"

    def H(self, key: str, salt: int) -> str:
        return f"(crc32(concat({key}, ':', {self.seed * 1000 + salt})) / 4294967296.0)"

    def ADDS(self, ts: str, secs: str) -> str:
        return f"({ts} + INTERVAL CAST(({secs}) * 1000000 AS SIGNED) MICROSECOND)"

    def EPOCH(self, ts: str) -> str:
        return f"unix_timestamp({ts})"

    def SERIES(self, alias: str, lo: str, hi_excl: str, maxn: int = 0) -> str:
        # the SEQUENCE engine's virtual table; MariaDB joins it by block nested loop, so
        # keep it as small as the largest value needed (maxn)
        return f"JOIN seq_0_to_{maxn} AS {alias} ON {alias}.seq >= ({lo}) AND {alias}.seq < ({hi_excl})"

    def INT(self, x: str) -> str:
        return f"CAST(({x}) AS SIGNED)"

    def TXT(self, x: str) -> str:
        return f"CAST(({x}) AS CHAR)"

    def RUNTS(self, ts: str) -> str:
        return f"date_format({ts}, '%Y-%m-%dT%H:%i:%s+00:00')"

    def UUID7(self, ts: str, key: str, tag: str) -> str:
        h = (f"concat(lpad(hex(CAST({self.EPOCH(ts)} * 1000 AS UNSIGNED)), 12, '0'), '7', "
             f"lpad(hex(({key}) % 4096), 3, '0'), '{tag}', lpad(hex({key}), 15, '0'))")
        return (f"lower(concat(substr({h},1,8),'-',substr({h},9,4),'-',substr({h},13,4),'-',"
                f"substr({h},17,4),'-',substr({h},21,12)))")

    def BLOB(self, text_expr: str) -> str:
        return text_expr


# --------------------------------------------------------------------------- connections
class DB:
    """Thin wrapper: one autocommit connection, timed execute, column introspection."""

    def __init__(self, d: Dialect, args, dbname: str | None):
        self.d, self.args, self.dbname = d, args, dbname
        if d.name == "postgres":
            import psycopg2
            self.conn = psycopg2.connect(host=args.host or "127.0.0.1", port=args.port or 5432,
                                         user=args.user or "postgres", dbname=dbname or "postgres")
            self.conn.autocommit = True
            # the generator's expressions are huge: JIT would spend seconds compiling them
            self.conn.cursor().execute("SET jit = off")
        else:
            import pymysql
            from pymysql.constants import CLIENT
            self.conn = pymysql.connect(host=args.host or "127.0.0.1", port=args.port or 3306,
                                        user=args.user or "root", password=args.password or "",
                                        database=dbname, autocommit=True, local_infile=True,
                                        client_flag=CLIENT.MULTI_STATEMENTS, charset="utf8mb4")
        self.cur = self.conn.cursor()
        if d.name == "mariadb":
            self.x("SET SESSION time_zone = '+00:00'")

    def x(self, sql: str, params=None, label: str | None = None, quiet: bool = False):
        t0 = time.time()
        self.cur.execute(sql, params)
        n = self.cur.rowcount
        if label and not quiet:
            log(f"  {label}: {n:,} rows in {time.time() - t0:.1f}s")
        return n

    def q(self, sql: str, params=None):
        self.cur.execute(sql, params)
        return self.cur.fetchall()

    def columns(self, table: str) -> dict[str, tuple[str, bool]]:
        """column -> (data type, nullable-or-defaulted)"""
        if self.d.name == "postgres":
            rows = self.q("SELECT column_name, data_type, is_nullable = 'YES' OR column_default IS NOT NULL "
                          "FROM information_schema.columns WHERE table_schema='public' AND table_name=%s "
                          "ORDER BY ordinal_position", (table,))
        else:
            rows = self.q("SELECT column_name, data_type, is_nullable = 'YES' OR column_default IS NOT NULL "
                          "OR extra LIKE '%%auto_increment%%' FROM information_schema.columns "
                          "WHERE table_schema=DATABASE() AND table_name=%s ORDER BY ordinal_position", (table,))
        return {r[0]: (r[1], bool(r[2])) for r in rows}

    def has_table(self, table: str) -> bool:
        return bool(self.columns(table))


T0 = time.time()


def log(msg: str):
    print(f"[{time.time() - T0:7.1f}s] {msg}", flush=True)


def insert_select(db: DB, table: str, exprs: dict[str, str], from_sql: str, label: str | None = None):
    """INSERT INTO table(<cols present in this schema>) SELECT <exprs> <from_sql>.

    exprs maps column names to SQL expressions; columns that this Airflow version lacks
    are skipped, and a NOT NULL column without default and without expression fails loudly.
    """
    cols = db.columns(table)
    if not cols:
        return 0
    missing = [c for c, (_, ok) in cols.items() if not ok and c not in exprs]
    if missing:
        raise SystemExit(f"{table}: no generator expression for NOT NULL column(s) {missing}")
    use = [c for c in cols if c in exprs]
    q = '"' if db.d.name == "postgres" else "`"
    def cast(c):
        t = cols[c][0]
        if db.d.name == "postgres" and t in ("uuid", "jsonb", "json"):
            return f"({exprs[c]})::{t}"
        return exprs[c]
    sql = (f"INSERT INTO {table} ({', '.join(q + c + q for c in use)}) "
           f"SELECT {', '.join(cast(c) for c in use)} {from_sql}")
    return db.x(sql, label=label or table)


def insert_rows(db: DB, table: str, rows: list[dict], batch: int = 200):
    """Parameterized multi-row insert of Python-made rows (small tables, serialized DAGs)."""
    cols = db.columns(table)
    if not cols or not rows:
        return
    use = [c for c in cols if c in rows[0]]
    missing = [c for c, (_, ok) in cols.items() if not ok and c not in rows[0]]
    if missing:
        raise SystemExit(f"{table}: no value for NOT NULL column(s) {missing}")
    q = '"' if db.d.name == "postgres" else "`"
    ph = "(" + ", ".join(["%s"] * len(use)) + ")"
    i = 0
    while i < len(rows):
        chunk, size = [], 0
        while i < len(rows) and len(chunk) < batch and (size < 8_000_000 or not chunk):
            r = rows[i]
            size += sum(len(v) for v in r.values() if isinstance(v, (str, bytes)))
            chunk.append(r)
            i += 1
        sql = f"INSERT INTO {table} ({', '.join(q + c + q for c in use)}) VALUES " + ", ".join([ph] * len(chunk))
        db.cur.execute(sql, [wrap(db, r[c]) for r in chunk for c in use])


def wrap(db: DB, v):
    if db.d.name == "postgres" and isinstance(v, bytes):
        import psycopg2
        return psycopg2.Binary(v)
    return v


# --------------------------------------------------------------------------- DAG specs (Python)
def fileloc_hash(path: str) -> int:
    # airflow.models.dagcode.DagCode.dag_fileloc_hash
    return struct.unpack(">Q", hashlib.sha1(path.encode("utf-8")).digest()[-8:])[0] >> 8


def make_dag_specs(size: str, seed: int, now: dt.datetime, is3: bool):
    cfg = SIZES[size]
    rng = random.Random(f"{seed}:{size}:dags")
    n = cfg["dags"]
    owners = ["data-eng", "analytics", "ml-platform", "finance", "growth", "ops", "search",
              "payments", "risk", "crm", "marketing", "infra", "bi", "sre", "security", "ads"]
    domains = ["etl", "report", "sync", "ml", "export", "ingest", "quality", "billing", "audit", "feed"]
    task_choices = [1, 2, 3, 5, 8, 10, 15, 25, 40]
    task_weights = [10, 8, 8, 15, 18, 18, 12, 7, 4]
    specs = []
    weights = [rng.lognormvariate(0, 1.1) for _ in range(n)]
    wsum = sum(weights)
    for i in range(n):
        dag_id = f"{domains[i % len(domains)]}_{i:04d}_{rng.choice(['orders', 'users', 'events', 'ledger', 'clicks', 'stock', 'metrics', 'sessions'])}"
        n_tasks = rng.choices(task_choices, task_weights)[0]
        if i < max(2, n // 400):           # a few very wide DAGs with large serialized payloads
            n_tasks = MAX_TASKS - 4
        paused = rng.random() < 0.08
        stale = (not paused) and rng.random() < 0.03
        end_offset = rng.uniform(10, 300) * 86400 if (paused or stale) else 0.0
        span = SPAN_DAYS * 86400 - end_offset
        n_runs = max(1, round(cfg["runs"] * weights[i] / wsum))
        n_runs = min(n_runs, 199_000)
        interval = max(60.0, span / n_runs)
        n_runs = max(1, int(span // interval))
        # task duration: lognormal around 60 s, capped so a run takes at most ~70% of the interval
        task_dur = min(max(2.0, rng.lognormvariate(math.log(60), 1.0)), 1800.0)
        task_dur = max(1.0, min(task_dur, 0.7 * interval / n_tasks))
        phase = 120.0 if interval <= 240 else rng.uniform(120, interval)
        if end_offset == 0 and rng.random() < 0.25:
            # about a quarter of the active DAGs have their newest run in flight right now
            phase = min(max(120.0, interval - 1), 120.0 + rng.uniform(0.05, 0.9) * n_tasks * task_dur)
        r = rng.random()
        fail_rate = rng.uniform(0.005, 0.03) if r < 0.7 else rng.uniform(0.05, 0.12) if r < 0.95 else rng.uniform(0.2, 0.5)
        retries = rng.choices([0, 1, 2, 3], [30, 40, 25, 5])[0]
        pool = "default_pool" if rng.random() < 0.85 else f"pool_{rng.randrange(10)}"
        backlog = rng.randrange(5, 60) if (not paused and not stale and rng.random() < 0.015) else 0
        sla = 1 if rng.random() < 0.10 else 0
        sched = (f"\"@hourly\"" if abs(interval - 3600) < 1 else
                 json.dumps({"type": "timedelta", "attrs": {"days": 0, "seconds": int(interval), "microseconds": 0}}))
        fileloc = f"/opt/airflow/dags/{dag_id.split('_')[0]}/{dag_id}.py"
        specs.append(dict(didx=i, dag_id=dag_id, n_tasks=n_tasks, n_runs=n_runs, interval_s=interval,
                          end_offset_s=end_offset, phase_s=phase, fail_rate=fail_rate, task_dur_s=task_dur,
                          retries=retries, pool=pool, backlog=backlog, sla=sla, paused=int(paused),
                          stale=int(stale), owner=rng.choice(owners), sched=sched, fileloc=fileloc,
                          version_id=str(uuid.UUID(int=rng.getrandbits(128), version=4))))
    # hit the task-instance target (about 10 per run): rescale the run counts
    exp_ti = sum(s["n_runs"] * s["n_tasks"] for s in specs)
    f = min(1.4, max(0.7, cfg["runs"] * 10 / exp_ti))
    for s in specs:
        span = SPAN_DAYS * 86400 - s["end_offset_s"]
        s["n_runs"] = max(1, min(199_000, round(s["n_runs"] * f)))
        s["interval_s"] = max(60.0, span / s["n_runs"])
        s["n_runs"] = max(1, int(span // s["interval_s"]))
        s["task_dur_s"] = max(1.0, min(s["task_dur_s"], 0.7 * s["interval_s"] / s["n_tasks"]))
        s["phase_s"] = min(s["phase_s"], max(120.0, s["interval_s"] - 1))
    return specs


_PAD = []


def _pad_block() -> str:
    if not _PAD:
        r = random.Random(12345)
        vocab = ["select", "from", "where", "join", "ledger", "orders", "region", "amount", "sum", "group",
                 "by", "day", "customer", "partition", "load", "s3://bucket/", "{{ ds }}", "retry", "sla",
                 "owner", "table", "schema", "merge", "into", "values", "eu", "us", "apac", "null", "and"]
        vocab += ["".join(r.choice("abcdefghijklmnopqrstuvwxyz_0123456789") for _ in range(r.randrange(3, 12)))
                  for _ in range(3000)]
        _PAD.append(" ".join(r.choice(vocab) for _ in range(300_000)))
    return _PAD[0]


def serialized_payload(spec: dict, target_bytes: int, rng: random.Random) -> str:
    tasks = []
    n = spec["n_tasks"]
    for t in range(n):
        k = (t + spec["didx"]) % 5
        tasks.append({"__var": {
            "task_id": task_id(t), "_task_type": OPERATORS[k], "_task_module": OPERATOR_MODULES[k],
            "pool": spec["pool"], "retries": spec["retries"], "owner": spec["owner"],
            "ui_color": "#ffefeb", "ui_fgcolor": "#000", "template_fields": ["templates_dict", "op_args"],
            "downstream_task_ids": [task_id(t + 1)] if t + 1 < n else [],
            "start_date": 1704067200.0, "weight_rule": "downstream", "is_setup": False, "is_teardown": False,
        }, "__type": "operator"})
    dag = {"__version": 1, "dag": {
        "_dag_id": spec["dag_id"], "fileloc": spec["fileloc"], "timezone": "UTC", "catchup": False,
        "schedule_interval": json.loads(spec["sched"]), "_description": f"bench DAG {spec['dag_id']}",
        "default_args": {"__var": {"owner": spec["owner"], "retries": spec["retries"]}, "__type": "dict"},
        "tags": [spec["dag_id"].split("_")[0]], "edge_info": {}, "dag_dependencies": [], "params": [],
        "tasks": tasks,
        "_task_group": {"_group_id": None, "prefix_group_id": True, "children": {task_id(t): ["operator", task_id(t)] for t in range(n)}},
    }}
    base = len(json.dumps(dag))
    if target_bytes > base:
        # big DAGs in the wild carry large doc_md / rendered params / inline SQL per task
        # text from a 2 MB block of random words: compresses like prose (zlib/pglz about
        # 2-3x), not like a repeated string
        per_task = (target_bytes - base) // n
        block = _pad_block()
        for t in tasks:
            off = rng.randrange(0, len(block) - per_task) if per_task < len(block) else 0
            pad = (block * (per_task // len(block) + 1))[off:off + per_task] if per_task >= len(block) else block[off:off + per_task]
            t["__var"]["doc_md"] = pad[: max(0, per_task - 12)]
    return json.dumps(dag, separators=(",", ":"))


# --------------------------------------------------------------------------- schema / indexes
def load_schema(args, d: Dialect, dbname: str):
    fx = FIXTURES / args.version / ("postgres.sql" if d.name == "postgres" else "mysql.sql")
    if not fx.exists():
        raise SystemExit(f"no fixture {fx}")
    admin = DB(d, args, None)
    if d.name == "postgres":
        admin.x(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        admin.x(f"CREATE DATABASE \"{dbname}\" ENCODING 'UTF8' TEMPLATE template0")
    else:
        admin.x(f"DROP DATABASE IF EXISTS `{dbname}`")
        admin.x(f"CREATE DATABASE `{dbname}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    admin.conn.close()
    db = DB(d, args, dbname)
    db.x(fx.read_text(encoding="utf-8"))
    if d.name == "mariadb":
        while db.cur.nextset():
            pass
    log(f"schema {fx.relative_to(REPO)} loaded into {dbname}")
    return db


def pg_drop_keys(db: DB) -> list[list[str]]:
    """Drop FKs touching the big tables, their PK/unique constraints and indexes. Returns
    the DDL to rebuild them in three phases: [keys, indexes, foreign keys]."""
    big = [t for t in BIG if db.has_table(t)]
    bigset = "(" + ",".join(f"'public.{t}'::regclass" for t in big) + ")"
    fks = db.q(f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
               f"WHERE contype='f' AND (conrelid IN {bigset} OR confrelid IN {bigset})")
    keys = db.q(f"SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint "
                f"WHERE contype IN ('p','u') AND conrelid IN {bigset}")
    idx = db.q(f"SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid) FROM pg_index i "
               f"WHERE i.indrelid IN {bigset} AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.contype IN ('p','u'))")
    for rel, name, _ in fks:
        db.x(f'ALTER TABLE {rel} DROP CONSTRAINT "{name}"')
    for rel, name, _ in keys:
        db.x(f'ALTER TABLE {rel} DROP CONSTRAINT "{name}"')
    for name, _ in idx:
        db.x(f"DROP INDEX {name}")
    log(f"dropped {len(fks)} foreign keys, {len(keys)} keys, {len(idx)} indexes on {', '.join(big)}")
    return [[f'ALTER TABLE {r} ADD CONSTRAINT "{n}" {dd}' for r, n, dd in keys],
            [dd for _, dd in idx],
            [f'ALTER TABLE {r} ADD CONSTRAINT "{n}" {dd}' for r, n, dd in fks]]


def my_drop_keys(db: DB) -> list[list[str]]:
    """MariaDB: drop secondary (non-PK) indexes of the big tables that no FK needs."""
    rebuild = []
    for t in BIG:
        if not db.has_table(t):
            continue
        rows = db.q("SELECT index_name, non_unique, column_name, sub_part FROM information_schema.statistics "
                    "WHERE table_schema=DATABASE() AND table_name=%s AND index_name <> 'PRIMARY' "
                    "ORDER BY index_name, seq_in_index", (t,))
        defs: dict[str, list] = {}
        for name, nonu, col, sub in rows:
            defs.setdefault(name, [nonu, []])[1].append(f"`{col}`" + (f"({sub})" if sub else ""))
        for name, (nonu, cols) in defs.items():
            try:
                db.x(f"ALTER TABLE `{t}` DROP INDEX `{name}`")
            except Exception:
                continue  # needed by a foreign key: keep it
            kind = "INDEX" if nonu else "UNIQUE INDEX"
            rebuild.append(f"ALTER TABLE `{t}` ADD {kind} `{name}` ({', '.join(cols)})")
    log(f"dropped {len(rebuild)} secondary indexes")
    return [[], rebuild, []]


def rebuild_keys(args, d: Dialect, dbname: str, phases: list[list[str]], workers: int = 2):
    for phase, stmts in zip(["keys", "indexes", "foreign keys"], phases):
        if not stmts:
            continue
        t0 = time.time()
        todo = list(stmts)
        lock = threading.Lock()
        errors = []

        def work():
            db = DB(d, args, dbname)
            if d.name == "postgres":
                db.x("SET maintenance_work_mem = '1GB'")
                db.x("SET max_parallel_maintenance_workers = 0")
            while True:
                with lock:
                    if not todo:
                        break
                    s = todo.pop(0)
                try:
                    db.x(s)
                except Exception as e:  # report, keep going
                    errors.append(f"{s}: {e}")
            db.conn.close()

        ths = [threading.Thread(target=work) for _ in range(workers)]
        for th in ths:
            th.start()
        for th in ths:
            th.join()
        log(f"rebuilt {len(stmts)} {phase} in {time.time() - t0:.1f}s")
        for e in errors:
            log(f"  ERROR {e}")
        if errors:
            raise SystemExit("rebuilding keys failed")


# --------------------------------------------------------------------------- generation SQL
def run_plan_sql(d: Dialect, base_id: int, k_lo: str, k_hi: str, dag_filter: str = "1=1", max_runs: int = 199_999) -> str:
    """INSERT into the helper run table: one row per DAG run with all its derived facts.

    k = 0 is the newest run of a DAG; k < 0 (used by --steady) are runs after the newest.
    """
    B, N = d.B, d.NOW()
    H = d.H
    key = "(x.didx * 1000003 + x.k + 500000)"
    return f"""
INSERT INTO {B}run (rid, didx, dag_id, k, n_tasks, slot_s, retries, pool, sla, version_id,
                    die, dis, start_date, end_date, state, run_type, run_id, f, progress, gen_now)
SELECT {base_id} + row_number() OVER (ORDER BY z.die, z.didx), z.didx, z.dag_id, z.k, z.n_tasks, z.slot_s,
       z.retries, z.pool, z.sla, z.version_id, z.die, z.dis, z.start_date,
       CASE WHEN z.state IN ('success','failed') THEN z.nominal_end END,
       z.state, z.run_type, concat(z.run_type, '__', {d.RUNTS('z.dis')}),
       z.f,
       CASE WHEN z.state = 'running' THEN LEAST(z.n_tasks - 1, {d.INT(f"floor(({d.EPOCH(N)} - {d.EPOCH('z.start_date')}) / z.slot_s)")}) END,
       {N}
FROM (
  SELECT y.*,
         CASE WHEN y.backlog_q = 1 THEN 'queued'
              WHEN y.nominal_end > {N} THEN 'running'
              WHEN y.f >= 0 THEN 'failed' ELSE 'success' END AS state
  FROM (
    SELECT x.*,
           {d.ADDS('x.start_date', 'x.slot_s * (CASE WHEN x.f >= 0 THEN x.f + 1 ELSE x.n_tasks END)')} AS nominal_end
    FROM (
      SELECT w.*,
             CASE WHEN w.backlog_q = 1 THEN NULL ELSE {d.ADDS('w.die', '2 + w.rh1 * 60')} END AS start_date
      FROM (
        SELECT x.didx, x.dag_id, x.k, x.n_tasks, x.retries, x.pool, x.sla, x.version_id,
               x.task_dur_s * (0.8 + 0.4 * {H(key, 22)}) AS slot_s,
               {d.ADDS(N, '-(x.end_offset_s + x.phase_s + x.k * x.interval_s)')} AS die,
               {d.ADDS(N, '-(x.end_offset_s + x.phase_s + (x.k + 1) * x.interval_s)')} AS dis,
               CASE WHEN x.k < x.backlog THEN 1 ELSE 0 END AS backlog_q,
               {H(key, 21)} AS rh1,
               CASE WHEN {H(key, 23)} < x.fail_rate THEN {d.INT(f"floor({H(key, 24)} * x.n_tasks)")} ELSE -1 END AS f,
               CASE WHEN {H(key, 25)} < 0.02 THEN 'manual' ELSE 'scheduled' END AS run_type
        FROM (SELECT dd.*, {d.INT('s.seq')} + ({k_lo}) AS k FROM {B}dag dd {d.SERIES('s', '0', f'({k_hi}) - ({k_lo})', max_runs)}
              WHERE {dag_filter}) x
      ) w
    ) x
  ) y
) z"""


def ti_select_sql(d: Dialect, run_filter: str = "1=1") -> str:
    """One row per task instance of the runs in the helper run table, with final columns
    named as in Airflow's task_instance (plus helper columns h*, rid, t, sla, version_id)."""
    B = d.B
    H = d.H
    key = "(r.rid * 64 + t.seq)"
    recent = d.ADDS("r.gen_now", f"-{RECENT_JOB_DAYS} * 86400")
    return f"""
FROM (
  SELECT v.*,
    CASE WHEN v.state IN ('success','failed','running','up_for_retry','skipped') THEN v.ts END AS start_date,
    CASE WHEN v.state IN ('success','failed') THEN {d.ADDS('v.ts', 'v.slot_s * (0.5 + 0.45 * v.h1)')}
         WHEN v.state = 'up_for_retry' THEN {d.ADDS('v.ts', 'v.slot_s * 0.2')}
         WHEN v.state = 'skipped' THEN v.ts END AS end_date,
    CASE WHEN v.state IN ('success','failed') THEN v.slot_s * (0.5 + 0.45 * v.h1)
         WHEN v.state = 'up_for_retry' THEN v.slot_s * 0.2
         WHEN v.state = 'skipped' THEN 0 END AS duration,
    CASE WHEN v.state IS NULL OR v.state IN ('upstream_failed','skipped') THEN 0
         WHEN v.state = 'failed' THEN v.retries + 1
         WHEN v.state IN ('success','running') THEN 1 + (CASE WHEN v.retries >= 1 AND v.h2 < 0.05 THEN 1 ELSE 0 END)
                                                  + (CASE WHEN v.retries >= 2 AND v.h2 < 0.012 THEN 1 ELSE 0 END)
         ELSE 1 END AS try_number,
    CASE WHEN v.state = 'queued' THEN {d.ADDS('v.gen_now', '-(30 + v.h2 * 7200)')}
         WHEN v.state IN ('success','failed','running','up_for_retry') THEN {d.ADDS('v.ts', '-(1 + v.h2 * 20)')} END AS queued_dttm,
    CASE WHEN v.state IN ('success','failed','running','up_for_retry') AND v.ts > {recent.replace('r.gen_now', 'v.gen_now')}
         THEN 1000 + v.rid * 64 + v.t END AS job_id
  FROM (
    SELECT r.rid, r.didx, r.dag_id, r.run_id, r.sla, r.version_id, r.retries, r.pool, r.slot_s, r.n_tasks,
           r.gen_now, r.dis, r.die, r.state AS rstate, t.seq AS t,
           concat(CASE MOD(t.seq, 5) WHEN 0 THEN 'extract' WHEN 1 THEN 'transform' WHEN 2 THEN 'load'
                  WHEN 3 THEN 'check' ELSE 'notify' END, '_', lpad({d.TXT('t.seq')}, 2, '0')) AS task_id,
           CASE MOD(t.seq + r.didx, 5) WHEN 0 THEN 'PythonOperator' WHEN 1 THEN 'BashOperator'
                WHEN 2 THEN 'SQLExecuteQueryOperator' WHEN 3 THEN 'KubernetesPodOperator' ELSE 'EmptyOperator' END AS operator,
           {key} AS tkey,
           {H(key, 31)} AS h1, {H(key, 32)} AS h2, {H(key, 33)} AS h3, {H(key, 34)} AS h4,
           COALESCE({d.ADDS('r.start_date', 'r.slot_s * t.seq')}, r.die) AS ts,
           CASE
             WHEN r.state = 'queued' THEN NULL
             WHEN r.state = 'success' THEN CASE WHEN t.seq > 0 AND {H(key, 35)} < 0.02 THEN 'skipped' ELSE 'success' END
             WHEN r.state = 'failed' THEN CASE WHEN t.seq < r.f THEN 'success' WHEN t.seq = r.f THEN 'failed' ELSE 'upstream_failed' END
             WHEN t.seq < r.progress THEN 'success'
             WHEN t.seq = r.progress THEN CASE WHEN {H(key, 35)} < 0.08 THEN 'up_for_retry'
                                              WHEN {H(key, 35)} < 0.12 THEN 'queued' ELSE 'running' END
             WHEN t.seq = r.progress + 1 THEN CASE WHEN {H(key, 35)} < 0.3 THEN 'queued' ELSE 'scheduled' END
             ELSE NULL END AS state
    FROM {B}run r {d.SERIES('t', '0', 'r.n_tasks', MAX_TASKS - 1)}
    WHERE {run_filter}
  ) v
) ti"""


def ti_exprs(d: Dialect, coltypes: dict) -> dict[str, str]:
    N = "ti.gen_now"
    e = {
        "task_id": "ti.task_id", "dag_id": "ti.dag_id", "run_id": "ti.run_id", "map_index": "-1",
        "start_date": "ti.start_date", "end_date": "ti.end_date", "duration": "ti.duration",
        "state": "ti.state", "try_number": "ti.try_number", "max_tries": "ti.retries",
        "hostname": "CASE WHEN ti.start_date IS NOT NULL THEN concat('worker-', MOD(ti.tkey, 16), '.bench.internal') ELSE '' END",
        "unixname": "'airflow'", "job_id": "ti.job_id", "pool": "ti.pool", "pool_slots": "1",
        "queue": "'default'", "priority_weight": "ti.n_tasks - ti.t", "operator": "ti.operator",
        "queued_dttm": "ti.queued_dttm", "queued_by_job_id": "CASE WHEN ti.queued_dttm IS NOT NULL THEN 1 END",
        "pid": "CASE WHEN ti.state = 'running' THEN 1000 + MOD(ti.tkey, 60000) END",
        "executor_config": "NULL",
        "updated_at": f"COALESCE(ti.end_date, CASE WHEN ti.state IS NOT NULL THEN {N} END, ti.die)",
        "custom_operator_name": "NULL", "task_display_name": "ti.task_id",
        # Airflow 3
        "id": d.UUID7("ti.die", "ti.tkey", "8"),
        "dag_version_id": "ti.version_id",
        "scheduled_dttm": f"CASE WHEN ti.state IS NOT NULL THEN {d.ADDS('ti.ts', '-(2 + ti.h2 * 30)')} END",
        # zombies: 10 % of running TIs stopped heartbeating 20 minutes ago
        "last_heartbeat_at": f"CASE WHEN ti.state = 'running' THEN {d.ADDS(N, '-(CASE WHEN ti.h4 < 0.1 THEN 1200 ELSE 3 END)')} END",
        "span_status": "'ended'",
    }
    if "job_id" not in coltypes:
        e.pop("job_id")
    return e


# --------------------------------------------------------------------------- fill
def dag_definitions(args, specs: list[dict], now: dt.datetime, pg: bool):
    """Rows for dag, serialized_dag, dag_code and dag_version (Python-made, seeded)."""
    rng = random.Random(f"{args.seed}:{args.size}:payload")
    dag_rows, sd_rows, code_rows, ver_rows = [], [], [], []
    max_bytes = int(SIZES[args.size]["max_sd_mb"] * 1024 * 1024)
    if not pg:
        max_bytes = min(max_bytes, 10 * 1024 * 1024)  # max_allowed_packet is 16 MB and values are sent escaped
    for s in specs:
        last_parsed = now - dt.timedelta(seconds=s["end_offset_s"] + rng.uniform(5, 600))
        dag_rows.append(dict(
            dag_id=s["dag_id"], root_dag_id=None, is_paused=bool(s["paused"]), is_subdag=False,
            is_active=not s["stale"], is_stale=bool(s["stale"]), last_parsed_time=last_parsed,
            last_pickled=None, last_expired=None, scheduler_lock=None, pickle_id=None,
            fileloc=s["fileloc"], relative_fileloc=s["fileloc"].split("/dags/")[1], bundle_name="dags-folder",
            processor_subdir="/opt/airflow/dags", owners=s["owner"], dag_display_name=s["dag_id"],
            description=f"bench DAG {s['dag_id']}", default_view="grid", schedule_interval=s["sched"],
            timetable_summary=s["sched"].strip('"') if s["sched"].startswith('"') else f"every {int(s['interval_s'])}s",
            timetable_description="generated", max_active_tasks=16, max_active_runs=16,
            max_consecutive_failed_dag_runs=0, has_task_concurrency_limits=False, has_import_errors=False,
            next_dagrun=now, next_dagrun_data_interval_start=now,
            next_dagrun_data_interval_end=now + dt.timedelta(seconds=s["interval_s"]),
            next_dagrun_create_after=now + dt.timedelta(seconds=s["interval_s"]),
            last_parse_duration=rng.uniform(0.05, 3.0)))
        # serialized DAG sizes: lognormal, median ~49 KB; the first DAG is the biggest (max_sd_mb)
        target = int(min(max_bytes, rng.lognormvariate(math.log(49_000), 1.2)))
        if s["didx"] == 0:
            target = max_bytes
        elif s["didx"] < len(specs) // 200 + 1:
            target = int(max_bytes * rng.uniform(0.2, 0.6))
        payload = serialized_payload(s, target, rng)
        compressed = rng.random() < 0.16
        if compressed and not pg and len(zlib.compress(payload.encode())) > 65535:
            compressed = False  # MySQL/MariaDB: data_compressed is a BLOB (64 KB), as Airflow declares it
        dag_hash = hashlib.md5(payload.encode()).hexdigest()
        s["dag_hash"] = dag_hash
        sd = dict(dag_id=s["dag_id"], fileloc=s["fileloc"], fileloc_hash=fileloc_hash(s["fileloc"]),
                  data=None if compressed else payload,
                  data_compressed=zlib.compress(payload.encode()) if compressed else None,
                  last_updated=last_parsed, created_at=last_parsed, dag_hash=dag_hash,
                  processor_subdir="/opt/airflow/dags", id=s["version_id"], dag_version_id=s["version_id"])
        sd_rows.append(sd)
        src = f"# bench DAG {s['dag_id']}\nfrom airflow import DAG\n" + "\n".join(
            f"t{t} = PythonOperator(task_id='{task_id(t)}', python_callable=lambda: None)" for t in range(s["n_tasks"]))
        code_rows.append(dict(fileloc_hash=fileloc_hash(s["fileloc"]), fileloc=s["fileloc"], last_updated=last_parsed,
                              source_code=src, id=s["version_id"], dag_id=s["dag_id"], created_at=last_parsed,
                              source_code_hash=hashlib.md5(src.encode()).hexdigest(), dag_version_id=s["version_id"]))
        ver_rows.append(dict(id=s["version_id"], version_number=1, dag_id=s["dag_id"], bundle_name="dags-folder",
                             bundle_version=None, created_at=last_parsed, last_updated=last_parsed))
    return dag_rows, sd_rows, code_rows, ver_rows


def fill(args, d: Dialect, dbname: str, db: DB, specs: list[dict], is3: bool):
    B, N = d.B, d.NOW()
    pg = d.name == "postgres"
    rng = random.Random(f"{args.seed}:{args.size}:payload")
    now = d.now

    # ---- helper tables
    if pg:
        db.x("DROP SCHEMA IF EXISTS windsock_bench CASCADE; CREATE SCHEMA windsock_bench")
        db.x("SET synchronize_seqscans = off; SET work_mem = '256MB'; SET jit = off")
        txt, flt, ts = "text", "float8", "timestamptz"
        unlogged = "UNLOGGED"
    else:
        db.x("DROP TABLE IF EXISTS windsock_bench_dag, windsock_bench_run")
        db.x("SET SESSION foreign_key_checks = 0, unique_checks = 0")
        txt, flt, ts = "varchar(250)", "double", "timestamp(6) NULL"
        unlogged = ""
    db.x(f"CREATE TABLE {B}dag (didx int PRIMARY KEY, dag_id {txt}, n_tasks int, n_runs int, interval_s {flt}, "
         f"end_offset_s {flt}, phase_s {flt}, fail_rate {flt}, task_dur_s {flt}, retries int, pool {txt}, "
         f"backlog int, sla int, version_id {txt}, dag_hash {txt})")
    db.x(f"CREATE {unlogged} TABLE {B}run (rid bigint PRIMARY KEY, didx int, dag_id {txt}, k int, n_tasks int, "
         f"slot_s {flt}, retries int, pool {txt}, sla int, version_id {txt}, die {ts}, dis {ts}, "
         f"start_date {ts}, end_date {ts}, state {txt}, run_type {txt}, run_id {txt}, f int, progress int, gen_now {ts})")

    # ---- small tables made in Python
    t0 = time.time()
    if db.has_table("dag_bundle"):
        insert_rows(db, "dag_bundle", [dict(name="dags-folder", active=True, version=None, last_refreshed=now)])
    insert_rows(db, "log_template", [dict(id=1, filename="dag_id={{ ti.dag_id }}/run_id={{ ti.run_id }}/task_id={{ ti.task_id }}/attempt={{ try_number }}.log",
                                          elasticsearch_id="{dag_id}-{task_id}-{run_id}-{map_index}-{try_number}", created_at=now)])
    pools = [dict(id=1, pool="default_pool", slots=128, description="Default pool", include_deferred=False)]
    pools += [dict(id=2 + k, pool=f"pool_{k}", slots=[4, 8, 16, 32, 2][k % 5], description=f"bench pool {k}",
                   include_deferred=False, team_name=None) for k in range(10)]
    insert_rows(db, "slot_pool", pools)
    dag_rows, sd_rows, code_rows, ver_rows = dag_definitions(args, specs, now, pg)
    hcols = ["didx", "dag_id", "n_tasks", "n_runs", "interval_s", "end_offset_s", "phase_s", "fail_rate",
             "task_dur_s", "retries", "pool", "backlog", "sla", "version_id", "dag_hash"]
    ph = "(" + ",".join(["%s"] * len(hcols)) + ")"
    for i in range(0, len(specs), 500):
        chunk = specs[i:i + 500]
        db.cur.execute(f"INSERT INTO {B}dag ({','.join(hcols)}) VALUES " + ",".join([ph] * len(chunk)),
                       [s[c] for s in chunk for c in hcols])
    insert_rows(db, "dag", dag_rows, batch=500)
    if db.has_table("dag_version"):
        insert_rows(db, "dag_version", ver_rows, batch=500)
    insert_rows(db, "serialized_dag", sd_rows, batch=50)
    insert_rows(db, "dag_code", code_rows, batch=200)
    ie = [dict(id=i + 1, timestamp=now - dt.timedelta(hours=i * 7 + 1), filename=f"/opt/airflow/dags/broken/broken_{i}.py",
               stacktrace=f"Traceback (most recent call last):\n  File \"broken_{i}.py\", line {i + 3}\nModuleNotFoundError: No module named 'pkg{i}'",
               processor_subdir="/opt/airflow/dags", bundle_name="dags-folder")
          for i in range(SIZES[args.size]["imp_errors"])]
    insert_rows(db, "import_error", ie)
    # scheduler / triggerer / dag processor jobs: two live schedulers, a triggerer, old restarts
    jobs = []
    jid = 1
    for h, kind in [(2, "SchedulerJob"), (4, "SchedulerJob"), (3, "TriggererJob")] + ([(5, "DagProcessorJob")] if is3 else []):
        jobs.append(dict(id=jid, dag_id=None, state="running", job_type=kind, start_date=now - dt.timedelta(days=3, hours=jid),
                         end_date=None, latest_heartbeat=now - dt.timedelta(seconds=h), executor_class="CeleryExecutor",
                         hostname=f"{kind.lower().replace('job', '')}-{jid}.bench.internal", unixname="airflow"))
        jid += 1
    for i in range(40):  # restarts over the year
        st = now - dt.timedelta(days=SPAN_DAYS * (i + 1) / 41)
        jobs.append(dict(id=jid, dag_id=None, state=rng.choice(["success", "failed", "success"]),
                         job_type=rng.choice(["SchedulerJob", "SchedulerJob", "TriggererJob"]), start_date=st,
                         end_date=st + dt.timedelta(days=8), latest_heartbeat=st + dt.timedelta(days=8),
                         executor_class="CeleryExecutor", hostname=f"scheduler-old-{i}.bench.internal", unixname="airflow"))
        jid += 1
    insert_rows(db, "job", jobs)
    log(f"small tables (dag, serialized_dag {sum(len(r['data'] or r['data_compressed']) for r in sd_rows) / 1e6:.0f} MB, "
        f"dag_code, pools, jobs, import errors) in {time.time() - t0:.1f}s")

    # ---- big tables: drop keys/indexes, load, rebuild
    phases = pg_drop_keys(db) if pg else my_drop_keys(db)
    generate_history(args, d, db, is3=is3, base_id=0, plan_sql=run_plan_sql(d, 0, "0", "dd.n_runs", max_runs=max(s["n_runs"] for s in specs)))
    rebuild_keys(args, d, dbname, phases)
    fix_sequences(db)
    t0 = time.time()
    if pg:
        db.x("ANALYZE")
    else:
        for (t,) in db.q("SELECT table_name FROM information_schema.tables WHERE table_schema=DATABASE() AND table_type='BASE TABLE'"):
            db.q(f"ANALYZE TABLE `{t}`")
    log(f"ANALYZE in {time.time() - t0:.1f}s")


def generate_history(args, d: Dialect, db: DB, is3: bool, base_id: int, plan_sql: str | None):
    """Plan runs (unless already planned) and write every table's rows for helper runs rid > base_id."""
    B = d.B
    pg = d.name == "postgres"
    if plan_sql:
        db.x(plan_sql, label="run plan (helper)")
    rf = f"r.rid > {base_id}"
    # dag_run
    dr_cols = db.columns("dag_run")
    conf = "'{}'" if dr_cols.get("conf", ("",))[0] in ("jsonb", "json", "longtext") else "NULL"
    insert_select(db, "dag_run", {
        "id": "r.rid", "dag_id": "r.dag_id", "queued_at": d.ADDS("COALESCE(r.start_date, r.die)", "-1"),
        "execution_date": "r.dis",
        "logical_date": "CASE WHEN r.run_type = 'manual' THEN NULL ELSE r.dis END",
        "start_date": "r.start_date", "end_date": "r.end_date", "state": "r.state", "run_id": "r.run_id",
        "creating_job_id": "1", "external_trigger": "r.run_type = 'manual'", "run_type": "r.run_type",
        "conf": conf, "data_interval_start": "r.dis", "data_interval_end": "r.die",
        "run_after": "r.die", "triggered_by": "CASE WHEN r.run_type = 'manual' THEN 'rest_api' ELSE 'timetable' END",
        "last_scheduling_decision": "COALESCE(r.end_date, r.gen_now)", "dag_hash": "dd.dag_hash", "log_template_id": "1",
        "updated_at": "COALESCE(r.end_date, r.gen_now)", "clear_number": "0",
        "created_dag_version_id": "r.version_id", "span_status": "'ended'",
    }, f"FROM {B}run r JOIN {B}dag dd ON dd.didx = r.didx WHERE {rf} ORDER BY r.rid")

    ti_cols = db.columns("task_instance")
    src = ti_select_sql(d, rf)
    # task_instance
    insert_select(db, "task_instance", ti_exprs(d, ti_cols), src)
    # task_instance_history: the earlier tries of TIs with try_number > 1 (2.10+, 3.x)
    if not pg:
        # materialize the generated TIs (only those with retries: the filter is pushed
        # down) before joining the tries; merged, MariaDB re-evaluates the generator per try
        db.x("SET SESSION optimizer_switch = 'derived_merge=off'")
    if db.has_table("task_instance_history"):
        he = ti_exprs(d, ti_cols)
        back = "(ti.try_number - tr.seq) * (COALESCE(ti.duration, 0) + 300)"
        he.update({
            "try_number": "tr.seq", "state": "'failed'",
            "start_date": d.ADDS("ti.start_date", f"-{back}"),
            "end_date": d.ADDS("ti.start_date", f"-{back} + COALESCE(ti.duration, 0) * 0.7"),
            "duration": "COALESCE(ti.duration, 0) * 0.7",
            "queued_dttm": d.ADDS("ti.start_date", f"-{back} - 5"),
            "updated_at": d.ADDS("ti.start_date", f"-{back} + COALESCE(ti.duration, 0) * 0.7"),
            "task_instance_id": d.UUID7("ti.die", "(ti.tkey * 8 + tr.seq)", "9"),
            "last_heartbeat_at": "NULL", "pid": "NULL",
        })
        he.pop("id", None)
        insert_select(db, "task_instance_history", he,
                      src + f" {d.SERIES('tr', '1', 'ti.try_number', 7)} WHERE ti.try_number > 1")
    # task_fail (2.x): each failed try (history) plus the final failures
    if db.has_table("task_fail"):
        back = "(ti.try_number - tr.seq) * (COALESCE(ti.duration, 0) + 300)"
        insert_select(db, "task_fail", {
            "task_id": "ti.task_id", "dag_id": "ti.dag_id", "run_id": "ti.run_id", "map_index": "-1",
            "start_date": d.ADDS("ti.start_date", f"-{back}"),
            "end_date": d.ADDS("ti.start_date", f"-{back} + COALESCE(ti.duration, 0) * 0.7"),
            "duration": d.INT("COALESCE(ti.duration, 0) * 0.7"),
        }, src + f" {d.SERIES('tr', '1', 'ti.try_number + (CASE WHEN ti.state = ' + chr(39) + 'failed' + chr(39) + ' THEN 1 ELSE 0 END)', 7)} "
                 f"WHERE (ti.try_number > 1 OR ti.state = 'failed') AND ti.start_date IS NOT NULL", label="task_fail")
    if not pg:
        db.x("SET SESSION optimizer_switch = 'derived_merge=default'")
    # log: about one row per two started TIs (its final state), plus CLI/UI events for some
    lc = db.columns("log")
    insert_select(db, "log", {
        "dttm": "COALESCE(ti.end_date, ti.start_date)", "dag_id": "ti.dag_id", "task_id": "ti.task_id",
        "map_index": "-1",
        "event": "CASE WHEN ti.h3 < 0.04 THEN 'cli_task_run' WHEN ti.h3 < 0.05 THEN 'clear' ELSE ti.state END",
        "execution_date": "ti.dis", "logical_date": "ti.dis", "run_id": "ti.run_id",
        "owner": "'airflow'", "owner_display_name": "'airflow'",
        "extra": "CASE WHEN ti.h3 < 0.05 THEN concat('{\"host_name\": \"worker-', MOD(ti.tkey, 16), '\", \"full_command\": \"airflow tasks run\"}') END",
        "try_number": "ti.try_number",
    }, src + " WHERE ti.h3 < 0.5 AND ti.start_date IS NOT NULL AND ti.state IS NOT NULL"
            + (" ORDER BY ti.tkey" if not pg else ""))
    # xcom: return_value of ~9% of successful TIs
    xc = db.columns("xcom")
    if xc:
        val = "concat('{\"rows\": ', MOD(ti.tkey, 100000), ', \"path\": \"s3://bench/', ti.dag_id, '/', ti.task_id, '\"}')"
        vt = xc.get("value", ("",))[0]
        insert_select(db, "xcom", {
            "dag_run_id": "ti.rid", "task_id": "ti.task_id", "map_index": "-1", "key": "'return_value'",
            "dag_id": "ti.dag_id", "run_id": "ti.run_id",
            "value": (f"({val})::jsonb" if vt == "jsonb" else d.BLOB(val) if pg else val),
            "timestamp": "ti.end_date",
        }, src + " WHERE ti.state = 'success' AND ti.h3 > 0.91")
    # sla_miss (2.x): DAGs with an SLA miss it on ~5% of their task instances
    if db.has_table("sla_miss"):
        insert_select(db, "sla_miss", {
            "task_id": "ti.task_id", "dag_id": "ti.dag_id", "execution_date": "ti.dis", "email_sent": "false",
            "timestamp": d.ADDS("ti.die", "3600"), "description": "NULL", "notification_sent": "true",
        }, src + " WHERE ti.sla = 1 AND ti.h4 < 0.05 AND ti.state IS NOT NULL")
    # LocalTaskJob (2.x): one job per recent started TI, heartbeating for running ones
    if "job_id" in ti_cols:
        insert_select(db, "job", {
            "id": "ti.job_id", "dag_id": "ti.dag_id",
            "state": "CASE WHEN ti.state IN ('running') THEN 'running' WHEN ti.state = 'up_for_retry' THEN 'failed' ELSE 'success' END",
            "job_type": "'LocalTaskJob'", "start_date": "ti.start_date", "end_date": "ti.end_date",
            "latest_heartbeat": f"CASE WHEN ti.state = 'running' THEN {d.ADDS('ti.gen_now', '-(CASE WHEN ti.h4 < 0.1 THEN 1200 ELSE 3 END)')} "
                                f"ELSE COALESCE(ti.end_date, ti.start_date) END",
            "executor_class": "'CeleryExecutor'", "hostname": "concat('worker-', MOD(ti.tkey, 16), '.bench.internal')",
            "unixname": "'airflow'",
        }, src + " WHERE ti.job_id IS NOT NULL", label="job (LocalTaskJob)")


def fix_sequences(db: DB):
    if db.d.name != "postgres":
        return  # AUTO_INCREMENT follows max(id) by itself
    for seq, tbl, col in db.q("SELECT s.relname, t.relname, a.attname FROM pg_class s "
                              "JOIN pg_depend dep ON dep.objid = s.oid AND dep.deptype IN ('a', 'i') "
                              "JOIN pg_class t ON t.oid = dep.refobjid "
                              "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = dep.refobjsubid "
                              "WHERE s.relkind = 'S'"):
        db.x(f'SELECT setval(\'"{seq}"\', GREATEST(1, (SELECT COALESCE(max("{col}"), 0) FROM "{tbl}")))')


# --------------------------------------------------------------------------- steady mode
def steady(args, d: Dialect, dbname: str, n_ti: int):
    """Append about n_ti new task instances: the next run of some DAGs (running, first task
    done, one running/queued, the rest not started yet, with their log/job/xcom rows), finish
    a few running runs, refresh the live heartbeats. Mimics what a scheduler writes between
    two cycles of an exporter."""
    db = DB(d, args, dbname)
    B, N = d.B, d.NOW()
    is3 = db.has_table("dag_version")
    t0 = time.time()
    (base,) = db.q("SELECT COALESCE(MAX(id), 0) FROM dag_run")[0]
    (hbase,) = db.q(f"SELECT COALESCE(MAX(rid), 0) FROM {B}run")[0]
    base = max(base, hbase)
    rng = random.Random(f"{args.seed}:steady:{base}")
    dags = [tuple(r) for r in db.q(f"SELECT didx, n_tasks FROM {B}dag WHERE end_offset_s = 0 ORDER BY didx")]
    # rounds: each round plans the next run of some DAGs; small databases need more than
    # one round (one new run per DAG per round) to reach n_ti
    rounds, total = [], 0
    while total < n_ti and dags:
        rng.shuffle(dags)
        pick = []
        for didx, nt in dags:
            if total >= n_ti:
                break
            pick.append(didx)
            total += nt
        rounds.append(pick)
    n_runs = 0
    for i, pick in enumerate(rounds):
        (rb,) = db.q(f"SELECT COALESCE(MAX(rid), 0) FROM {B}run")[0]
        rb = max(rb, base)
        db.x(run_plan_sql(d, rb, "-1", "0", f"dd.didx IN ({','.join(map(str, pick))})", max_runs=1), quiet=True)
        # start now; logical dates a second apart per round so (dag_id, logical date) stays unique
        db.x(f"UPDATE {B}run SET dis = {d.ADDS(N, f'-60 - {i}')}, die = {d.ADDS(N, f'-{i}')}, "
             f"start_date = {d.ADDS(N, f'-(slot_s * 1.5) - {i}')}, "
             f"state = 'running', end_date = NULL, f = -1, progress = 1, gen_now = {N}, run_type = 'scheduled', "
             f"run_id = concat('scheduled__', {d.RUNTS(N)}, '_', rid) WHERE rid > {rb}", quiet=True)
        n_runs += len(pick)
    t1 = time.time()
    generate_history(args, d, db, is3=is3, base_id=base, plan_sql=None)
    t2 = time.time()
    # finish a few running runs (oldest first): their unfinished TIs succeed now
    done = db.q(f"SELECT id, dag_id, run_id FROM dag_run WHERE state = 'running' AND id <= {base} "
                f"ORDER BY id LIMIT {max(1, n_runs // 3)}")
    for rid, dag_id, run_id in done:
        db.x(f"UPDATE task_instance SET state = 'success', end_date = {N}, updated_at = {N}, "
             f"start_date = COALESCE(start_date, {d.ADDS(N, '-10')}), duration = 10, try_number = GREATEST(try_number, 1) "
             f"WHERE dag_id = %s AND run_id = %s AND (state IS NULL OR state NOT IN ('success', 'skipped'))",
             (dag_id, run_id))
        db.x(f"UPDATE dag_run SET state = 'success', end_date = {N}, updated_at = {N} WHERE id = %s", (rid,))
        db.x(f"UPDATE {B}run SET state = 'success', end_date = {N} WHERE rid = %s", (rid,))
    db.x(f"UPDATE job SET latest_heartbeat = {N} WHERE state = 'running' "
         f"AND job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob')")
    (nti,) = db.q(f"SELECT COUNT(*) FROM task_instance ti JOIN dag_run r ON r.dag_id = ti.dag_id AND r.run_id = ti.run_id "
                  f"WHERE r.id > {base}")[0]
    log(f"steady: {n_runs} new runs with {nti} task instances (writes {t2 - t1:.2f}s), "
        f"{len(done)} running runs finished; total {time.time() - t0:.2f}s")


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--size", choices=list(SIZES), default="S")
    ap.add_argument("--dialect", choices=["postgres", "mariadb"], default="postgres")
    ap.add_argument("--version", default="2.10.5", help="schema fixture version (default 2.10.5)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--db", help="database name (default windsock_bench_<size>, plus _<version> if not 2.10.5)")
    ap.add_argument("--now", help="anchor time, UTC, e.g. 2026-12-01T12:00:00 (default: now)")
    ap.add_argument("--steady", type=int, metavar="N", help="append ~N task instances to an existing database")
    ap.add_argument("--reserialize", action="store_true",
                    help="only rewrite the serialized_dag payloads of an existing database (same seed/size)")
    ap.add_argument("--host"), ap.add_argument("--port", type=int), ap.add_argument("--user"), ap.add_argument("--password")
    args = ap.parse_args()
    now = (dt.datetime.fromisoformat(args.now) if args.now else dt.datetime.now(dt.timezone.utc)).replace(tzinfo=None)
    if not args.steady:
        now = now.replace(microsecond=0)
    d = (Postgres if args.dialect == "postgres" else MariaDB)(args.seed, now)
    dbname = args.db or f"windsock_bench_{args.size.lower()}" + ("" if args.version == "2.10.5" else "_" + args.version.replace(".", ""))
    if args.steady:
        d.now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) if not args.now else d.now
        steady(args, d, dbname, args.steady)
        return
    is3 = args.version.startswith("3")
    if args.reserialize:
        db = DB(d, args, dbname)
        specs = make_dag_specs(args.size, args.seed, now, is3)
        _, sd_rows, _, _ = dag_definitions(args, specs, now, d.name == "postgres")
        for r in sd_rows:
            db.x("UPDATE serialized_dag SET data = %s, data_compressed = %s, dag_hash = %s WHERE dag_id = %s",
                 (r["data"], wrap(db, r["data_compressed"]), r["dag_hash"], r["dag_id"]))
            db.x(f"UPDATE {d.B}dag SET dag_hash = %s WHERE dag_id = %s", (r["dag_hash"], r["dag_id"]))
        db.x("VACUUM ANALYZE serialized_dag" if d.name == "postgres" else "ANALYZE TABLE serialized_dag")
        log(f"rewrote {len(sd_rows)} serialized DAGs")
        return
    log(f"generating size {args.size} (seed {args.seed}, now {now} UTC) on {d.name} into {dbname}, Airflow {args.version}")
    specs = make_dag_specs(args.size, args.seed, now, is3)
    db = load_schema(args, d, dbname)
    fill(args, d, dbname, db, specs, is3)
    counts = {}
    for t in ["dag", "serialized_dag", "dag_run", "task_instance", "task_instance_history", "task_fail", "log",
              "job", "xcom", "sla_miss", "slot_pool", "import_error"]:
        if db.has_table(t):
            counts[t] = db.q(f"SELECT COUNT(*) FROM {t}")[0][0]
    if d.name == "postgres":
        size = db.q("SELECT pg_size_pretty(pg_database_size(current_database()))")[0][0]
        states = db.q("SELECT COALESCE(state, 'none'), COUNT(*) FROM task_instance GROUP BY 1 ORDER BY 2 DESC")
    else:
        size = "%.2f GB" % (float(db.q("SELECT SUM(data_length + index_length) FROM information_schema.tables WHERE table_schema = DATABASE()")[0][0]) / 1e9)
        states = db.q("SELECT COALESCE(state, 'none'), COUNT(*) FROM task_instance GROUP BY 1 ORDER BY 2 DESC")
    log("done: " + ", ".join(f"{k} {v:,}" for k, v in counts.items()) + f"; database size {size}")
    log("task_instance states: " + ", ".join(f"{s} {n:,}" for s, n in states))


if __name__ == "__main__":
    main()
