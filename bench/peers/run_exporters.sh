#!/usr/bin/env bash
# Start the two Debian peers against a bench database on loopback ports, scrape each a few
# times (wall time of a scrape with curl), print their series counts, and stop them again.
#
#   bench/peers/run_exporters.sh windsock_bench_m [scrapes]
#
# Needs: apt-get install -y prometheus-sql-exporter prometheus-postgres-exporter curl
# sql_exporter (justwatchcom, Debian 0.4.5) runs its queries in the background every
# `interval`, so its scrapes are cheap; its DB cost per cycle is what
# run_sql_timing.py --set sql_exporter measures. We wait for its first pass to finish
# (every query reported) and print how long that pass took from its own log.
set -euo pipefail
DB=${1:?usage: run_exporters.sh <database> [scrapes]}
N=${2:-5}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
WORK=$(mktemp -d /tmp/windsock-bench-peers.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

sed "s#/windsock_bench_l?#/$DB?#" "$HERE/sql_exporter.yml" > "$WORK/sql_exporter.yml"
LOGLEVEL=debug /usr/bin/prometheus-sql-exporter -config.file "$WORK/sql_exporter.yml" \
  -web.listen-address 127.0.0.1:19237 > "$WORK/sql_exporter.log" 2>&1 &
PIDS+=($!)
set -a; . "$HERE/postgres_exporter/env"; set +a
DATA_SOURCE_NAME=${DATA_SOURCE_NAME/dbname=windsock_bench_l/dbname=$DB}
(cd "$ROOT" && exec /usr/bin/prometheus-postgres-exporter $ARGS) > "$WORK/postgres_exporter.log" 2>&1 &
PIDS+=($!)

nq=$(grep -c '^      - name:' "$HERE/sql_exporter.yml")
t0=$(date +%s.%N)
for _ in $(seq 1 1800); do   # first sql_exporter pass: wait up to 30 min
  done_q=$(grep -c '"msg":"Query finished"' "$WORK/sql_exporter.log" || true)
  [ "$done_q" -ge "$nq" ] && break
  sleep 1
done
t1=$(date +%s.%N)
echo "sql_exporter: first pass over $nq queries finished after $(echo "$t1 - $t0" | bc) s (includes start-up)"
echo "sql_exporter: warnings+errors in log: $(grep -c '"level":"error"\|"level":"warn"' "$WORK/sql_exporter.log" || true)"

for name in sql_exporter:19237 postgres_exporter:19187; do
  port=${name#*:}
  for i in $(seq 1 "$N"); do
    /usr/bin/curl -s -o "$WORK/${name%%:*}.prom" -w "%{time_total}\n" "http://127.0.0.1:$port/metrics"
  done | sort -n | awk -v n="${name%%:*}" '{a[NR]=$1} END {printf "%s: %d scrapes, median %.3f s, max %.3f s\n", n, NR, a[int((NR+1)/2)], a[NR]}'
  echo "${name%%:*}: $(grep -vc '^#' "$WORK/${name%%:*}.prom") series"
done
echo "logs and scrapes in $WORK"
