#!/usr/bin/env python3
"""Read an Airflow metadata DB that make-data-fixture.sh populated; print or check facts.

Usage (run with an Airflow venv's python, which has SQLAlchemy and the drivers):
  data_facts.py counts  URL                 row count of every table ("table<TAB>count", sorted)
  data_facts.py summary URL VERSION         human-readable row counts (<dialect>.summary.txt)
  data_facts.py facts   URL VERSION DIALECT OUT.json [--killed-scheduler-job ID]
                        [--generated-at EPOCH] [--zombie-start ISO] [--timings JSON]
        computes the scenario facts (see tests/fixtures/data/README.md), checks
        each scenario against its design and writes OUT.json. If any check
        fails, the facts go to OUT.json.failed instead, every failed check is
        printed, and the exit status is 1.

URL is a SQLAlchemy URL (sqlite:///path, postgresql+psycopg2://..., mysql+pymysql://...
or mysql+mysqldb://...). The same SQL runs on all three dialects; timestamps are
reported as UTC ISO-8601 strings whatever the driver returns.
"""
import argparse
import datetime as dt
import json
import sys
import zlib
from collections import Counter, OrderedDict

from sqlalchemy import create_engine, inspect, text

UTC = dt.timezone.utc

# Every ws_* DAG that the generator parses (ws_late only in the last phase).
ALL_DAGS = ["ws_deferred", "ws_fail", "ws_late", "ws_long", "ws_mapped", "ws_pool", "ws_reschedule",
            "ws_retry", "ws_success", "ws_zombie"]
# Parsed only in phase C (compressed), ws_deadline only on 3.1+.
LATE_DAGS = ["ws_late"]
LATE_DAGS_DEADLINES = ["ws_deadline", "ws_late"]
# (dag_id, run_type, state) -> count, by design.
EXPECTED_RUNS = {
    ("ws_deferred", "manual", "running"): 1,
    ("ws_fail", "manual", "failed"): 1,
    ("ws_long", "manual", "success"): 1,
    ("ws_mapped", "scheduled", "failed"): 1,
    ("ws_pool", "manual", "success"): 1,
    ("ws_retry", "manual", "success"): 1,
    ("ws_success", "manual", "success"): 1,
    ("ws_success", "scheduled", "success"): 1,
    ("ws_zombie", "scheduled", "running"): 1,
    ("ws_zombie", "manual", "queued"): 1,
    ("ws_reschedule", "manual", "success"): 1,
}
# Only where Deadline Alerts run (3.1+).
EXPECTED_RUNS_DEADLINES = {("ws_deadline", "manual", "success"): 1}
# The reschedule-mode sensor is ready on its third poke: two reschedules.
RESCHEDULES = 2
# map_index -> (final state, try_number, failed tries), by design.
MAPPED_DESIGN = {0: ("success", 2, 1), 1: ("success", 2, 1), 2: ("success", 2, 1),
                 3: ("success", 1, 0), 4: ("failed", 2, 2)}
EXPECTED_USERS = {"admin": ["Admin"], "domain/alice": ["Viewer"],
                  "assumed-role/WindsockRole/session-1": ["User"]}
FAILED_TRY_STATES = ("failed", "up_for_retry")


# ----------------------------------------------------------------------------
class DB:
    def __init__(self, url):
        kw = {}
        if url.startswith("mysql"):
            # Airflow stores UTC; read it back without any session offset.
            kw["connect_args"] = {"init_command": "SET time_zone = '+00:00'"}
        self.engine = create_engine(url, **kw)
        self.dialect = self.engine.dialect.name  # sqlite | postgresql | mysql
        self.conn = self.engine.connect()
        insp = inspect(self.engine)
        self.tables = sorted(insp.get_table_names())
        self._insp = insp
        self._cols = {}

    def columns(self, table):
        if table not in self._cols:
            self._cols[table] = {c["name"] for c in self._insp.get_columns(table)}
        return self._cols[table]

    def has(self, table):
        return table in self.tables

    def quote(self, name):
        return self.engine.dialect.identifier_preparer.quote(name)

    def rows(self, sql, **params):
        return [dict(r._mapping) for r in self.conn.execute(text(sql), params)]

    def one(self, sql, **params):
        rows = self.rows(sql, **params)
        return rows[0] if rows else None

    def scalar(self, sql, **params):
        return self.conn.execute(text(sql), params).scalar()

    def server_version(self):
        if self.dialect == "sqlite":
            return "SQLite " + self.scalar("SELECT sqlite_version()")
        if self.dialect == "postgresql":
            return "PostgreSQL " + self.scalar("SHOW server_version")
        return self.scalar("SELECT version()")


def ts(value):
    """Timestamp as UTC ISO-8601 (naive values are UTC, as Airflow writes them)."""
    if value is None:
        return None
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return str(value)


def epoch(iso):
    return None if iso is None else dt.datetime.fromisoformat(iso).timestamp()


def as_bool(value):
    return None if value is None else bool(value)


def as_bytes(value):
    if value is None:
        return None
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, str):  # should not happen; be lenient
        return value.encode("latin-1")
    return bytes(value)


# ----------------------------------------------------------------------------
def cmd_counts(db):
    for t in db.tables:
        print(f"{t}\t{db.scalar(f'SELECT count(*) FROM {db.quote(t)}')}")


def cmd_summary(db, version):
    out = []
    p = out.append
    p(f"# Airflow {version} data fixture on {db.dialect}: row counts (generated by make-data-fixture.sh)")
    p("alembic_version: " + ",".join(r["version_num"] for r in db.rows("SELECT version_num FROM alembic_version")))
    if db.has("alembic_version_fab"):
        p("alembic_version_fab: " + ",".join(
            r["version_num"] for r in db.rows("SELECT version_num FROM alembic_version_fab")))
    n_dags = db.scalar("SELECT count(*) FROM dag WHERE dag_id LIKE 'ws%'")
    p(f"dag (ws_*): {n_dags}")
    p("dag_run by dag_id/run_type/state:")
    for r in db.rows("SELECT dag_id, run_type, state, count(*) AS n FROM dag_run "
                     "GROUP BY dag_id, run_type, state ORDER BY dag_id, run_type, state"):
        p(f"  {r['dag_id']} {r['run_type']} {r['state']} {r['n']}")
    p("dag_run by state:")
    for r in db.rows("SELECT state, count(*) AS n FROM dag_run GROUP BY state ORDER BY state"):
        p(f"  {r['state']} {r['n']}")
    p("task_instance by state:")
    for state, n in sorted(Counter(
            r["state"] or "NULL" for r in db.rows("SELECT state FROM task_instance")).items()):
        p(f"  {state} {n}")
    p("task_instance (dag_id.task_id[map_index] state try_number/max_tries pool):")
    for r in db.rows("SELECT dag_id, task_id, map_index, state, try_number, max_tries, pool, run_id "
                     "FROM task_instance ORDER BY dag_id, task_id, run_id, map_index"):
        mi = f"[{r['map_index']}]" if r["map_index"] != -1 else ""
        p(f"  {r['dag_id']}.{r['task_id']}{mi} {r['state'] or 'NULL'} {r['try_number']}/{r['max_tries']} {r['pool']}")
    if db.has("task_fail"):
        p(f"task_fail rows: {db.scalar('SELECT count(*) FROM task_fail')}")
        for r in db.rows("SELECT dag_id, task_id, map_index, count(*) AS n FROM task_fail "
                         "GROUP BY dag_id, task_id, map_index ORDER BY dag_id, task_id, map_index"):
            mi = f"[{r['map_index']}]" if r["map_index"] != -1 else ""
            p(f"  {r['dag_id']}.{r['task_id']}{mi} {r['n']}")
    if db.has("task_instance_history"):
        p(f"task_instance_history rows: {db.scalar('SELECT count(*) FROM task_instance_history')}")
        for r in db.rows("SELECT dag_id, task_id, map_index, try_number, state FROM task_instance_history "
                         "ORDER BY dag_id, task_id, run_id, map_index, try_number"):
            mi = f"[{r['map_index']}]" if r["map_index"] != -1 else ""
            p(f"  {r['dag_id']}.{r['task_id']}{mi} try {r['try_number']} {r['state']}")
    p("job by job_type/state:")
    for r in db.rows("SELECT job_type, state, count(*) AS n FROM job GROUP BY job_type, state "
                     "ORDER BY job_type, state"):
        p(f"  {r['job_type']} {r['state']} {r['n']}")
    p(f"serialized_dag rows: {db.scalar('SELECT count(*) FROM serialized_dag')}, with data_compressed: "
      f"{db.scalar('SELECT count(*) FROM serialized_dag WHERE data_compressed IS NOT NULL')}")
    p(f"dag_code rows: {db.scalar('SELECT count(*) FROM dag_code')}")
    if db.has("dag_version"):
        p(f"dag_version rows: {db.scalar('SELECT count(*) FROM dag_version')}")
    p(f"import_error rows: {db.scalar('SELECT count(*) FROM import_error')}")
    p("slot_pool: " + ", ".join(f"{r['pool']}={r['slots']}"
                                for r in db.rows("SELECT pool, slots FROM slot_pool ORDER BY pool")))
    p("ab_user: " + ", ".join(r["username"] for r in db.rows("SELECT username FROM ab_user ORDER BY id")))
    p("ab_user_role: " + ", ".join(
        f"{r['username']}={r['name']}" for r in db.rows(
            "SELECT u.username, r.name FROM ab_user_role ur JOIN ab_user u ON u.id = ur.user_id "
            "JOIN ab_role r ON r.id = ur.role_id ORDER BY u.id, r.name")))
    p(f"ab_role rows: {db.scalar('SELECT count(*) FROM ab_role')}")
    p(f"log (audit) rows: {db.scalar('SELECT count(*) FROM log')}")
    p(f"trigger rows: {db.scalar('SELECT count(*) FROM ' + db.quote('trigger'))}")
    if db.has("sla_miss"):
        p(f"sla_miss rows: {db.scalar('SELECT count(*) FROM sla_miss')}")
    print("\n".join(out))


# ----------------------------------------------------------------------------
class Checks:
    def __init__(self):
        self.failures = []

    def eq(self, what, got, want):
        if got != want:
            self.failures.append(f"{what}: got {got!r}, want {want!r}")

    def true(self, what, cond, detail=""):
        if not cond:
            self.failures.append(f"{what}{': ' + detail if detail else ''}")


def hist_rows(db, dag_id, task_id, run_id=None):
    if not db.has("task_instance_history"):
        return []
    sql = ("SELECT run_id, map_index, try_number, state, start_date, end_date FROM task_instance_history "
           "WHERE dag_id = :d AND task_id = :t")
    if run_id is not None:
        sql += " AND run_id = :r"
    return db.rows(sql + " ORDER BY run_id, map_index, try_number", d=dag_id, t=task_id, r=run_id)


def cmd_facts(db, args):
    c = Checks()
    ti_cols = db.columns("task_instance")
    date_col = "logical_date" if "logical_date" in db.columns("dag_run") else "execution_date"
    v3 = "job_id" not in ti_cols
    gen_epoch = args.generated_at if args.generated_at is not None else dt.datetime.now(UTC).timestamp()
    gen_iso = dt.datetime.fromtimestamp(gen_epoch, UTC).isoformat()
    f = OrderedDict()
    f["airflow_version"] = args.version
    f["dialect"] = args.dialect
    f["server_version"] = db.server_version()
    f["alembic_version"] = db.scalar("SELECT version_num FROM alembic_version")
    f["generated_at"] = {"utc": gen_iso, "epoch": round(gen_epoch, 3)}
    if args.timings:
        f["timings_s"] = json.loads(args.timings)

    # -- all dag runs, by design ------------------------------------------------
    runs = Counter((r["dag_id"], r["run_type"], r["state"]) for r in db.rows(
        "SELECT dag_id, run_type, state FROM dag_run"))
    f["dag_runs"] = [{"dag_id": d, "run_type": t, "state": s, "count": n}
                     for (d, t, s), n in sorted(runs.items())]
    deadlines = db.has("deadline") and "callback_state" in db.columns("deadline")
    c.eq("dag_run (dag_id, run_type, state) counts", dict(runs),
         {**EXPECTED_RUNS, **(EXPECTED_RUNS_DEADLINES if deadlines else {})})
    for dag_id, task_id, state, tries in [("ws_fail", "boom", "failed", 1),
                                          ("ws_fail", "after_boom", "upstream_failed", 0),
                                          ("ws_retry", "flaky", "success", 2),
                                          ("ws_long", "sleep_15", "success", 1)]:
        r = db.one("SELECT state, try_number FROM task_instance WHERE dag_id = :d AND task_id = :t",
                   d=dag_id, t=task_id)
        c.eq(f"{dag_id}.{task_id} state/try_number", r and (r["state"], r["try_number"]), (state, tries))
    pooled = Counter(r["state"] for r in db.rows(
        "SELECT state FROM task_instance WHERE pool = 'ws_small_pool'"))
    c.eq("ws_small_pool TIs", dict(pooled), {"success": 3})

    # -- 1. mapped task -----------------------------------------------------------
    mrun = db.rows(f"SELECT run_id, run_type, state FROM dag_run WHERE dag_id = 'ws_mapped'")
    c.eq("ws_mapped runs", len(mrun), 1)
    mrun = mrun[0] if mrun else {"run_id": None, "run_type": None, "state": None}
    tis = db.rows("SELECT map_index, state, try_number, max_tries FROM task_instance "
                  "WHERE dag_id = 'ws_mapped' AND task_id = 'flaky_map' ORDER BY map_index")
    hist = hist_rows(db, "ws_mapped", "flaky_map")
    tf = Counter()
    if db.has("task_fail"):
        tf = Counter(r["map_index"] for r in db.rows(
            "SELECT map_index FROM task_fail WHERE dag_id = 'ws_mapped' AND task_id = 'flaky_map'"))
    per_index = OrderedDict()
    for ti in tis:
        mi = ti["map_index"]
        h = [{"try_number": r["try_number"], "state": r["state"]} for r in hist if r["map_index"] == mi]
        failed = sum(1 for r in h if r["state"] in FAILED_TRY_STATES) + (1 if ti["state"] == "failed" else 0)
        entry = OrderedDict(state=ti["state"], try_number=ti["try_number"], max_tries=ti["max_tries"],
                            failed_tries=failed, task_instance_history=h)
        if db.has("task_fail"):
            entry["task_fail_rows"] = tf.get(mi, 0)
        per_index[str(mi)] = entry
        want = MAPPED_DESIGN.get(mi)
        c.true(f"ws_mapped unexpected map_index {mi}", want is not None)
        if want:
            c.eq(f"ws_mapped[{mi}] (state, try_number, failed_tries)",
                 (ti["state"], ti["try_number"], failed), want)
            if db.has("task_fail"):
                c.eq(f"ws_mapped[{mi}] task_fail rows", tf.get(mi, 0), want[2])
    c.eq("ws_mapped map indexes", sorted(int(k) for k in per_index), sorted(MAPPED_DESIGN))
    c.eq("ws_mapped run (run_type, state)", (mrun["run_type"], mrun["state"]), ("scheduled", "failed"))
    total = sum(e["failed_tries"] for e in per_index.values())
    c.eq("ws_mapped failed_tries_total", total, 5)
    records = OrderedDict()
    records["task_instance_history"] = OrderedDict(
        rows=len(hist),
        by_state=dict(Counter(r["state"] for r in hist)),
        per_map_index={str(k): v for k, v in sorted(Counter(r["map_index"] for r in hist).items())},
        note="one row per earlier try of a TI; the current (last) try is only in task_instance")
    if db.has("task_fail"):
        records["task_fail"] = OrderedDict(
            rows=sum(tf.values()),
            per_map_index={str(k): v for k, v in sorted(tf.items())},
            note="one row per failed try, including the last one")
    else:
        records["task_fail"] = None
    f["mapped"] = OrderedDict(dag_id="ws_mapped", task_id="flaky_map", run_id=mrun["run_id"],
                              run_type=mrun["run_type"], run_state=mrun["state"],
                              map_indexes=per_index, failed_tries_total=total,
                              failed_tries_recorded_in=records)

    # -- 2. cleared task in the scheduled run ------------------------------------
    def run_of(dag_id, run_type):
        return db.one(f"SELECT run_id, state, clear_number, {date_col} AS logical_date, start_date, end_date "
                      "FROM dag_run WHERE dag_id = :d AND run_type = :t", d=dag_id, t=run_type)

    def ti_of(dag_id, task_id, run_id):
        return db.one("SELECT state, try_number, max_tries, start_date, end_date, duration FROM task_instance "
                      "WHERE dag_id = :d AND task_id = :t AND run_id = :r", d=dag_id, t=task_id, r=run_id)

    sched, manual = run_of("ws_success", "scheduled"), run_of("ws_success", "manual")
    cleared = OrderedDict(dag_id="ws_success", task_id="world")
    if sched and manual:
        w = ti_of("ws_success", "world", sched["run_id"])
        h = hist_rows(db, "ws_success", "world", sched["run_id"])
        cleared.update(
            run_id=sched["run_id"], run_state=sched["state"], clear_number=sched["clear_number"],
            logical_date=ts(sched["logical_date"]), run_start_date=ts(sched["start_date"]),
            run_end_date=ts(sched["end_date"]),
            task_state=w and w["state"], try_number=w and w["try_number"], max_tries=w and w["max_tries"],
            task_start_date=w and ts(w["start_date"]), task_end_date=w and ts(w["end_date"]),
            history=[{"try_number": r["try_number"], "state": r["state"], "start_date": ts(r["start_date"]),
                      "end_date": ts(r["end_date"])} for r in h])
        hello = ti_of("ws_success", "hello", sched["run_id"])
        mw = ti_of("ws_success", "world", manual["run_id"])
        cleared["untouched"] = OrderedDict(
            same_run_hello=OrderedDict(state=hello and hello["state"], try_number=hello and hello["try_number"],
                                       history_rows=len(hist_rows(db, "ws_success", "hello", sched["run_id"]))),
            manual_run=OrderedDict(run_id=manual["run_id"], clear_number=manual["clear_number"],
                                   world_state=mw and mw["state"], world_try_number=mw and mw["try_number"],
                                   world_history_rows=len(hist_rows(db, "ws_success", "world", manual["run_id"]))))
        c.eq("cleared run clear_number", sched["clear_number"], 1)
        c.eq("cleared run state", sched["state"], "success")
        c.eq("cleared TI state", w and w["state"], "success")
        c.true("cleared TI has a task_instance_history row", len(h) >= 1, f"{len(h)} rows")
        c.eq("manual ws_success run clear_number", manual["clear_number"], 0)
        c.eq("manual ws_success.world (state, try_number)", mw and (mw["state"], mw["try_number"]),
             ("success", 1))
        c.eq("manual ws_success.world history rows", cleared["untouched"]["manual_run"]["world_history_rows"], 0)
        c.eq("scheduled ws_success.hello (state, try_number)", hello and (hello["state"], hello["try_number"]),
             ("success", 1))
    else:
        c.true("ws_success has a scheduled and a manual run", False)
    f["cleared"] = cleared

    # -- 3. deferred task with a trigger -----------------------------------------
    trig = db.quote("trigger")
    dti = db.one("SELECT run_id, state, try_number, trigger_id, trigger_timeout, next_method FROM task_instance "
                 "WHERE dag_id = 'ws_deferred' AND task_id = 'wait_two_days'")
    deferred = OrderedDict(dag_id="ws_deferred", task_id="wait_two_days")
    c.true("ws_deferred.wait_two_days exists", dti is not None)
    if dti:
        tr = db.one(f"SELECT id, classpath, triggerer_id, created_date FROM {trig} WHERE id = :i",
                    i=dti["trigger_id"]) if dti["trigger_id"] is not None else None
        tj = db.one("SELECT id, job_type, state, latest_heartbeat FROM job WHERE id = :i",
                    i=tr["triggerer_id"]) if tr and tr["triggerer_id"] is not None else None
        deferred.update(run_id=dti["run_id"], state=dti["state"], try_number=dti["try_number"],
                        next_method=dti["next_method"], trigger_timeout=ts(dti["trigger_timeout"]),
                        trigger_id=dti["trigger_id"], trigger_classpath=tr and tr["classpath"],
                        trigger_created_date=tr and ts(tr["created_date"]),
                        triggerer_id=tr and tr["triggerer_id"],
                        triggerer_job_type=tj and tj["job_type"], triggerer_job_state=tj and tj["state"],
                        triggerer_latest_heartbeat=tj and ts(tj["latest_heartbeat"]))
        c.eq("ws_deferred TI state", dti["state"], "deferred")
        c.true("ws_deferred trigger row", tr is not None)
        c.true("trigger.triggerer_id set", tr is not None and tr["triggerer_id"] is not None)
        c.eq("triggerer job type", tj and tj["job_type"], "TriggererJob")
        c.eq("triggerer job final state", tj and tj["state"], "success")
    f["deferred"] = deferred

    # -- 5. zombie candidate ----------------------------------------------------
    hb_col = "last_heartbeat_at" if "last_heartbeat_at" in ti_cols else "job_id"
    zti = db.one(f"SELECT run_id, state, start_date, pid, hostname, queued_by_job_id, {hb_col} AS hb "
                 "FROM task_instance WHERE dag_id = 'ws_zombie' AND task_id = 'hang' AND state IS NOT NULL")
    zombie = OrderedDict(dag_id="ws_zombie", task_id="hang")
    c.true("ws_zombie.hang exists", zti is not None)
    if zti:
        zombie.update(run_id=zti["run_id"], state=zti["state"], start_date=ts(zti["start_date"]),
                      pid=zti["pid"], hostname=zti["hostname"], queued_by_job_id=zti["queued_by_job_id"])
        c.eq("ws_zombie.hang state", zti["state"], "running")
        c.eq("ws_zombie.hang queued_by_job_id = the killed scheduler", zti["queued_by_job_id"],
             args.killed_scheduler_job)
        if v3:
            hb = ts(zti["hb"])
            zombie["heartbeat_column"] = "task_instance.last_heartbeat_at"
            zombie["last_heartbeat_at"] = hb
            c.true("ws_zombie.hang last_heartbeat_at set", hb is not None)
        else:
            job = db.one("SELECT id, job_type, state, start_date, end_date, latest_heartbeat FROM job WHERE id = :i",
                         i=zti["hb"]) if zti["hb"] is not None else None
            hb = job and ts(job["latest_heartbeat"])
            zombie["heartbeat_column"] = "job.latest_heartbeat via task_instance.job_id"
            zombie["job_id"] = zti["hb"]
            zombie["job_type"] = job and job["job_type"]
            zombie["job_state"] = job and job["state"]
            zombie["job_start_date"] = job and ts(job["start_date"])
            zombie["job_end_date"] = job and ts(job["end_date"])
            zombie["latest_heartbeat"] = hb
            c.eq("ws_zombie.hang LocalTaskJob (type, state)", job and (job["job_type"], job["state"]),
                 ("LocalTaskJob", "running"))
            c.true("ws_zombie.hang job latest_heartbeat set", hb is not None)
        zombie["heartbeat_age_at_generation_s"] = (round(gen_epoch - epoch(hb), 3) if hb else None)
        if hb:
            c.true("zombie heartbeat is not in the future", gen_epoch - epoch(hb) >= -1,
                   f"generated {gen_iso}, heartbeat {hb}")
    f["zombie"] = zombie

    # -- 6. starved pool ----------------------------------------------------------
    pool = db.one("SELECT pool, slots, include_deferred FROM slot_pool WHERE pool = 'ws_starved'")
    ptis = db.rows("SELECT dag_id, task_id, run_id, state, priority_weight, pool_slots FROM task_instance "
                   "WHERE pool = 'ws_starved' ORDER BY priority_weight DESC, task_id")
    by_state = dict(sorted(Counter(r["state"] for r in ptis if r["state"] is not None).items()))
    f["starved_pool"] = OrderedDict(
        pool="ws_starved", slots=pool and pool["slots"], include_deferred=pool and as_bool(pool["include_deferred"]),
        tis_by_state=by_state, tis_without_state=sum(1 for r in ptis if r["state"] is None),
        tis=[{"dag_id": r["dag_id"], "task_id": r["task_id"], "state": r["state"],
              "priority_weight": r["priority_weight"], "pool_slots": r["pool_slots"]} for r in ptis])
    c.eq("ws_starved slots", pool and pool["slots"], 1)
    c.eq("ws_starved TIs by state", by_state, {"running": 1, "scheduled": 3})
    c.eq("ws_starved running TI", [r["task_id"] for r in ptis if r["state"] == "running"], ["hang"])

    # -- 7. DAG blocked at max_active_runs ------------------------------------------
    dag = db.one("SELECT is_paused, max_active_runs, next_dagrun, next_dagrun_data_interval_start, "
                 "next_dagrun_data_interval_end, next_dagrun_create_after FROM dag WHERE dag_id = 'ws_zombie'")
    zruns = db.rows(f"SELECT run_id, run_type, state, {date_col} AS logical_date, data_interval_start, "
                    "data_interval_end FROM dag_run WHERE dag_id = 'ws_zombie' ORDER BY id")
    blocked = OrderedDict(dag_id="ws_zombie", start_date=args.zombie_start)
    if dag:
        blocked.update(
            is_paused=as_bool(dag["is_paused"]), max_active_runs=dag["max_active_runs"],
            running_runs=sum(1 for r in zruns if r["state"] == "running"),
            runs=[{"run_id": r["run_id"], "run_type": r["run_type"], "state": r["state"],
                   "logical_date": ts(r["logical_date"]), "data_interval_start": ts(r["data_interval_start"]),
                   "data_interval_end": ts(r["data_interval_end"])} for r in zruns],
            next_dagrun=ts(dag["next_dagrun"]),
            next_dagrun_data_interval_start=ts(dag["next_dagrun_data_interval_start"]),
            next_dagrun_data_interval_end=ts(dag["next_dagrun_data_interval_end"]),
            next_dagrun_create_after=ts(dag["next_dagrun_create_after"]))
        c.eq("ws_zombie max_active_runs", dag["max_active_runs"], 1)
        c.eq("ws_zombie is_paused", as_bool(dag["is_paused"]), False)
        c.eq("ws_zombie runs (run_type, state)", [(r["run_type"], r["state"]) for r in zruns],
             [("scheduled", "running"), ("manual", "queued")])
        c.eq("ws_zombie next_dagrun_create_after", dag["next_dagrun_create_after"], None)
        c.true("ws_zombie next_dagrun_data_interval_end set", dag["next_dagrun_data_interval_end"] is not None)
        if args.zombie_start and zruns:
            c.eq("ws_zombie first run data_interval_start = start_date",
                 ts(zruns[0]["data_interval_start"]), ts(dt.datetime.fromisoformat(args.zombie_start)))
    else:
        c.true("ws_zombie in dag table", False)
    f["blocked_dag"] = blocked

    # -- 4. components ---------------------------------------------------------------
    jobs = db.rows("SELECT id, job_type, state, hostname, start_date, end_date, latest_heartbeat, executor_class "
                   "FROM job WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob') ORDER BY id")
    f["components"] = OrderedDict(
        jobs=[OrderedDict(id=j["id"], job_type=j["job_type"], state=j["state"], hostname=j["hostname"],
                          start_date=ts(j["start_date"]), end_date=ts(j["end_date"]),
                          latest_heartbeat=ts(j["latest_heartbeat"]), executor_class=j["executor_class"])
              for j in jobs],
        killed=OrderedDict(job_id=args.killed_scheduler_job, job_type="SchedulerJob",
                           how="SIGKILL to every process in its session and below it, incl. the running task"),
        stopped_cleanly="every other job above: SIGTERM, waited for exit")
    if not v3:
        f["components"]["local_task_jobs_by_state"] = dict(sorted(Counter(
            r["state"] for r in db.rows("SELECT state FROM job WHERE job_type = 'LocalTaskJob'")).items()))
    sched_states = [(j["id"], j["state"]) for j in jobs if j["job_type"] == "SchedulerJob"]
    c.eq("SchedulerJob states (phases A, B, C)", [s for _, s in sched_states], ["success", "success", "running"])
    c.eq("killed SchedulerJob is the last one", sched_states and sched_states[-1][0], args.killed_scheduler_job)
    c.eq("TriggererJob states", [j["state"] for j in jobs if j["job_type"] == "TriggererJob"], ["success"])
    c.eq("DagProcessorJob states", [j["state"] for j in jobs if j["job_type"] == "DagProcessorJob"],
         ["success", "success"] if v3 else [])
    killed = [j for j in jobs if j["id"] == args.killed_scheduler_job]
    if killed:
        c.eq("killed scheduler end_date", killed[0]["end_date"], None)

    # -- 8. import errors -----------------------------------------------------------------
    ie_cols = db.columns("import_error")
    bundle = ", bundle_name" if "bundle_name" in ie_cols else ""
    ies = db.rows(f"SELECT filename{bundle} FROM import_error ORDER BY filename")
    f["import_errors"] = [OrderedDict((k, r[k]) for k in r) for r in ies]
    c.eq("import_error files", [r["filename"].rsplit("/", 1)[-1] for r in ies], ["ws_broken.py"])

    # -- 9. serialized DAGs: compressed vs plain ----------------------------------------
    # Classify `data` in SQL: drivers decode a JSON null to None (psycopg2).
    as_text = "CHAR" if db.dialect == "mysql" else "TEXT"
    kind = (f"CASE WHEN s.data IS NULL THEN 'SQL NULL' WHEN CAST(s.data AS {as_text}) = 'null' "
            "THEN 'JSON null' ELSE 'json' END AS data_kind")
    if db.has("dag_version"):
        sd = db.rows(f"SELECT s.dag_id, v.version_number, {kind}, s.data_compressed FROM serialized_dag s "
                     "JOIN dag_version v ON v.id = s.dag_version_id ORDER BY s.dag_id, v.version_number")
    else:
        sd = db.rows(f"SELECT s.dag_id, NULL AS version_number, {kind}, s.data_compressed FROM serialized_dag s "
                     "ORDER BY s.dag_id")
    comp, plain, detail = [], [], []
    for r in sd:
        blob = as_bytes(r["data_compressed"])
        data_kind = r["data_kind"]
        d = OrderedDict(dag_id=r["dag_id"], version_number=r["version_number"], data=data_kind,
                        data_compressed_bytes=len(blob) if blob is not None else None)
        if blob is not None:
            comp.append(r["dag_id"])
            d["zlib_header"] = blob[:2].hex()
            try:
                payload = json.loads(zlib.decompress(blob))
                dag_json = payload.get("dag", {})
                # 2.x serializes the id as "_dag_id", 3.x as "dag_id".
                d["inflated_dag_id"] = dag_json.get("dag_id", dag_json.get("_dag_id"))
                d["inflated_version"] = payload.get("__version")
                c.eq(f"inflated serialized {r['dag_id']} dag_id", d["inflated_dag_id"], r["dag_id"])
            except Exception as exc:  # noqa: BLE001 - record and fail
                c.true(f"inflate serialized {r['dag_id']}", False, repr(exc))
            c.true(f"compressed {r['dag_id']} has no JSON in data", data_kind != "json", data_kind)
        else:
            plain.append(r["dag_id"])
            c.eq(f"plain {r['dag_id']} has JSON in data", data_kind, "json")
        detail.append(d)
    f["serialized"] = OrderedDict(compressed=sorted(set(comp)), uncompressed=sorted(set(plain)), rows=detail)
    late = LATE_DAGS_DEADLINES if deadlines else LATE_DAGS
    c.eq("compressed serialized DAGs", sorted(set(comp)), late)
    c.eq("uncompressed serialized DAGs", sorted(set(plain)), sorted(d for d in ALL_DAGS if d not in late))

    # -- 10. users -------------------------------------------------------------------
    users = OrderedDict()
    for r in db.rows("SELECT u.username, r.name FROM ab_user u LEFT JOIN ab_user_role ur ON ur.user_id = u.id "
                     "LEFT JOIN ab_role r ON r.id = ur.role_id ORDER BY u.id, r.name"):
        users.setdefault(r["username"], [])
        if r["name"]:
            users[r["username"]].append(r["name"])
    f["users"] = [{"username": u, "roles": roles} for u, roles in users.items()]
    c.eq("users and roles", dict(users), EXPECTED_USERS)

    # -- informational: durations Airflow wrote vs end_date - start_date -------------------
    dur = OrderedDict()
    for table in ("task_instance", "task_instance_history"):
        if not db.has(table):
            continue
        rows = db.rows(f"SELECT dag_id, task_id, run_id, map_index, try_number, state, start_date, end_date, "
                       f"duration FROM {table} WHERE duration IS NOT NULL ORDER BY dag_id, task_id, run_id, map_index")
        off = []
        for r in rows:
            s_, e_ = ts(r["start_date"]), ts(r["end_date"])
            span = (epoch(e_) - epoch(s_)) if s_ and e_ else None
            if span is None or abs(float(r["duration"]) - span) > 1.0:
                off.append(OrderedDict(dag_id=r["dag_id"], task_id=r["task_id"], map_index=r["map_index"],
                                       try_number=r["try_number"], state=r["state"],
                                       duration=round(float(r["duration"]), 3),
                                       end_minus_start=None if span is None else round(span, 3)))
        dur[table] = OrderedDict(rows_with_duration=len(rows), off_by_more_than_1s=off)
    f["durations"] = dur

    # -- optional: SLA misses (2.x only, not generated) ----------------------------------
    # -- 11. sensor reschedules -----------------------------------------------------------
    if "ti_id" in db.columns("task_reschedule"):  # 3.x: rows name the try's TI id
        resch = db.rows("SELECT ti.dag_id, ti.task_id, tr.reschedule_date FROM task_reschedule tr "
                        "JOIN task_instance ti ON ti.id = tr.ti_id ORDER BY tr.id")
    else:
        resch = db.rows("SELECT dag_id, task_id, reschedule_date FROM task_reschedule ORDER BY id")
    f["reschedules"] = OrderedDict(
        rows=len(resch), by_task=dict(Counter(f"{r['dag_id']}.{r['task_id']}" for r in resch)))
    c.eq("task_reschedule rows of ws_reschedule.poke_thrice", f["reschedules"]["by_task"],
         {"ws_reschedule.poke_thrice": RESCHEDULES})

    # -- 12. deadline alerts (3.1+) -------------------------------------------------------
    if deadlines:
        drows = db.rows("SELECT r.dag_id, r.run_type, r.state AS run_state, d.deadline_time, d.callback_state, "
                        "d.trigger_id FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id "
                        "ORDER BY r.dag_id, r.id, d.deadline_time, d.callback_state")
        f["deadlines"] = [OrderedDict(dag_id=r["dag_id"], run_type=r["run_type"], run_state=r["run_state"],
                                      deadline_time=ts(r["deadline_time"]), callback_state=r["callback_state"],
                                      trigger_id=r["trigger_id"]) for r in drows]
        c.eq("deadline (dag_id, callback_state) counts",
             dict(Counter((r["dag_id"], r["callback_state"]) for r in drows)),
             {("ws_deadline", "success"): 1, ("ws_deadline", "failed"): 1, ("ws_zombie", None): 2})
        c.true("ws_zombie deadlines pending (in the future)",
               all(epoch(ts(r["deadline_time"])) > gen_epoch for r in drows if r["dag_id"] == "ws_zombie"))
    else:
        f["deadlines"] = None

    f["sla_miss_rows"] = db.scalar("SELECT count(*) FROM sla_miss") if db.has("sla_miss") else None

    f["checks"] = {"passed": not c.failures, "failures": c.failures}
    out = args.out if not c.failures else args.out + ".failed"
    with open(out, "w", encoding="utf-8") as fh:
        json.dump(f, fh, indent=2)
        fh.write("\n")
    if c.failures:
        print(f"FACT CHECKS FAILED ({len(c.failures)}), facts written to {out}:", file=sys.stderr)
        for msg in c.failures:
            print(f"  - {msg}", file=sys.stderr)
        return 1
    print(f"all fact checks passed; wrote {out}", file=sys.stderr)
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["counts", "summary", "facts"])
    ap.add_argument("url")
    ap.add_argument("version", nargs="?")
    ap.add_argument("dialect", nargs="?")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--killed-scheduler-job", type=int)
    ap.add_argument("--generated-at", type=float)
    ap.add_argument("--zombie-start")
    ap.add_argument("--timings")
    args = ap.parse_args()
    db = DB(args.url)
    try:
        if args.mode == "counts":
            cmd_counts(db)
        elif args.mode == "summary":
            cmd_summary(db, args.version)
        else:
            if not (args.version and args.dialect and args.out):
                ap.error("facts needs VERSION DIALECT OUT")
            return cmd_facts(db, args)
    finally:
        db.conn.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
