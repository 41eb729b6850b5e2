#!/usr/bin/env python3
"""Time one "cycle" of a peer's SQL against a benchmark database (PostgreSQL).

Sets:
  original      bench/peers/original_queries.sql  (the original toolbox's 38 queries)
  epoch8        bench/peers/epoch8.sql            (epoch8 airflow-exporter, one scrape)
  sql_exporter  bench/peers/sql_exporter.yml      (the generic sql_exporter config, one pass)
  <path>.sql    any file in the same "-- name:" format

DB time is measured with pg_stat_statements when the extension is loaded
(shared_preload_libraries) and created in the database: the sum of total_exec_time of
the cycle's statements. Otherwise (the default on this machine) it falls back to
client-side wall time per statement over a loopback connection, which adds well under a
millisecond per statement. --explain also saves EXPLAIN (ANALYZE, BUFFERS) of each
statement. A statement_timeout (default 60 s) guards every statement; statements that hit
it are reported as TIMEOUT and counted at the timeout value (a lower bound).

Deps: /tmp/bench-venv/bin/pip install psycopg2-binary pyyaml

    bench/peers/run_sql_timing.py --db windsock_bench_m --set original --set epoch8 --set sql_exporter
    bench/peers/run_sql_timing.py --db windsock_bench_l --set original --timeout 300 --json /tmp/orig_l.json
"""
from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import psycopg2

HERE = Path(__file__).resolve().parent
SETS = {"original": HERE / "original_queries.sql", "epoch8": HERE / "epoch8.sql",
        "sql_exporter": HERE / "sql_exporter.yml"}


def load_set(name: str, days: int):
    path = SETS.get(name, Path(name))
    if path.suffix in (".yml", ".yaml"):
        import yaml
        cfg = yaml.safe_load(path.read_text())
        return [(q["name"], q["query"], None) for job in cfg["jobs"] for q in job["queries"]]
    text = path.read_text()
    out = []
    for chunk in re.split(r"^-- name: *", text, flags=re.M)[1:]:
        name, _, body = chunk.partition("\n")
        foreach = None
        m = re.search(r"^-- foreach: *(.+)$", body, flags=re.M)
        if m:
            foreach = m.group(1)
        sql = "\n".join(l for l in body.splitlines() if not l.startswith("--")).strip().rstrip(";")
        sql = sql.replace("{days}", str(days)).replace("{half}", str(days // 2))
        out.append((name.strip(), sql, foreach))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", required=True)
    ap.add_argument("--dsn", default="host=127.0.0.1 port=5432 user=postgres")
    ap.add_argument("--set", action="append", required=True, dest="sets")
    ap.add_argument("--days", type=int, default=7, help="analysis window of the original's queries")
    ap.add_argument("--timeout", type=float, default=60, help="statement_timeout in seconds")
    ap.add_argument("--repeat", type=int, default=1, help="cycles per set (the report shows each)")
    ap.add_argument("--explain", metavar="DIR", help="also write EXPLAIN (ANALYZE, BUFFERS) per statement here")
    ap.add_argument("--json", help="write results as JSON here")
    args = ap.parse_args()

    conn = psycopg2.connect(f"{args.dsn} dbname={args.db} application_name=windsock-bench-peers")
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute(f"SET statement_timeout = {int(args.timeout * 1000)}")
    cur.execute("SELECT current_setting('shared_preload_libraries'), "
                "EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements')")
    spl, ext = cur.fetchone()
    pgss = "pg_stat_statements" in spl and ext
    method = "pg_stat_statements total_exec_time" if pgss else "client-side wall time (pg_stat_statements not loaded)"
    print(f"# database {args.db}; timing: {method}; statement_timeout {args.timeout:g}s; "
          f"{time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    results = {"db": args.db, "method": method, "timeout_s": args.timeout, "sets": {}}

    for set_name in args.sets:
        stmts = load_set(set_name, args.days)
        for cycle in range(args.repeat):
            rows, total, t_cycle = [], 0.0, time.time()
            for name, sql, foreach in stmts:
                if pgss:
                    cur.execute("SELECT pg_stat_statements_reset()")
                calls, status, t0 = 1, "ok", time.time()
                try:
                    if foreach:
                        cur.execute(foreach)
                        params = [dict(dag_id=r[0]) for r in cur.fetchall()]
                        calls = len(params)
                        for p in params:
                            cur.execute(sql, p)
                            cur.fetchall()
                    else:
                        cur.execute(sql.replace("%", "%%") if "%(" not in sql else sql)
                        if cur.description:
                            cur.fetchall()
                except psycopg2.errors.QueryCanceled:
                    status = "TIMEOUT"
                except psycopg2.Error as e:
                    status = "ERROR: " + str(e).splitlines()[0][:80]
                ms = (time.time() - t0) * 1000
                if pgss and status == "ok":
                    cur.execute("SELECT COALESCE(SUM(total_exec_time), 0) FROM pg_stat_statements "
                                "WHERE query NOT ILIKE '%pg_stat_statements%'")
                    ms = float(cur.fetchone()[0])
                if args.explain and not foreach and status == "ok":
                    d = Path(args.explain) / set_name.replace("/", "_")
                    d.mkdir(parents=True, exist_ok=True)
                    cur.execute("EXPLAIN (ANALYZE, BUFFERS) " + (sql.replace("%", "%%")))
                    (d / f"{name}.txt").write_text("\n".join(r[0] for r in cur.fetchall()) + "\n")
                total += ms if status in ("ok", "TIMEOUT") else 0
                rows.append(dict(name=name, ms=round(ms, 1), status=status, calls=calls))
            print(f"\n## {set_name} (cycle {cycle + 1}/{args.repeat})")
            print(f"{'statement':48} {'ms':>10}  status")
            for r in rows:
                extra = f" ({r['calls']} calls)" if r["calls"] > 1 else ""
                print(f"{r['name'][:48]:48} {r['ms']:10.1f}  {r['status']}{extra}")
            n_to = sum(r["status"] == "TIMEOUT" for r in rows)
            n_err = sum(r["status"].startswith("ERROR") for r in rows)
            print(f"{'TOTAL DB time per cycle':48} {total:10.1f}  "
                  f"({len(rows)} statements, {n_to} timed out (counted at the timeout), {n_err} failed; "
                  f"wall {time.time() - t_cycle:.1f}s)")
            results["sets"].setdefault(set_name, []).append(dict(total_ms=round(total, 1), statements=rows))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    sys.exit(main())
