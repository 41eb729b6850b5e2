#!/usr/bin/env bash
# The whole benchmark for one size, in one command:
#   bench/run.sh S|M|L [postgres|mariadb]
# 1. generates windsock_bench_<size> unless it exists (bench/generate.py),
# 2. times the peers' SQL on it in the same run (PostgreSQL: the original
#    toolbox's 38 queries, epoch8's scrape, the sql_exporter config),
# 3. runs `windsock bench cycle` (cold, then 12 steady cycles after ~1000 new
#    task instances), `bench scrape` at 10k and 100k series and `bench startup`,
# 4. writes every JSON result to bench/results/<size>-<dialect>-<UTC time>/
#    and prints the ratios peers / windsock.
# Needs: the Python venv of docs/benchmarks.md (BENCH_PY, default
# /tmp/bench-venv/bin/python), a release build (built here if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
size=${1:?usage: bench/run.sh S|M|L [postgres|mariadb]}
dialect=${2:-postgres}
py=${BENCH_PY:-/tmp/bench-venv/bin/python}
lower=$(printf '%s' "$size" | tr 'A-Z' 'a-z')
db=windsock_bench_$lower
out=bench/results/$lower-$dialect-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$out"
[ -x "$py" ] || { echo "bench/run.sh: $py missing; see docs/benchmarks.md step 0" >&2; exit 2; }

case $dialect in
  postgres)
    url=postgres://postgres@127.0.0.1:5432/$db
    exists=$(psql -h 127.0.0.1 -U postgres -Atc "SELECT 1 FROM pg_database WHERE datname = '$db'" postgres)
    ;;
  mariadb)
    url=mysql://root@127.0.0.1:3306/$db
    exists=$(mysql -h 127.0.0.1 -u root -N -e "SELECT 1 FROM information_schema.schemata WHERE schema_name = '$db'")
    ;;
  *) echo "bench/run.sh: dialect is postgres or mariadb" >&2; exit 2 ;;
esac

if [ -z "$exists" ]; then
  echo "==> generating $db ($dialect)"
  "$py" bench/generate.py --size "$size" --dialect "$dialect"
fi

cargo build --release --no-default-features --quiet
ws=target/release/windsock

if [ "$dialect" = postgres ]; then
  echo "==> peers' SQL on $db"
  "$py" bench/peers/run_sql_timing.py --db "$db" --set original --set epoch8 --set sql_exporter \
    --timeout 120 --json "$out/peers.json" | tee "$out/peers.txt"
fi

echo "==> windsock bench cycle"
"$ws" bench cycle --db-url "$url" --cycles 12 \
  --between "$py bench/generate.py --size $size --dialect $dialect --steady 1000 >/dev/null" \
  > "$out/cycle.json" 2> "$out/cycle.log"
grep "cycle:" "$out/cycle.log"
echo "==> windsock bench scrape"
for n in 10000 100000; do
  "$ws" bench scrape --series "$n" --concurrency 100 --duration 10s > "$out/scrape-$n.json" 2>/dev/null
done
echo "==> windsock bench startup"
"$ws" bench startup --db-url "$url" --runs 3 > "$out/startup.json" 2>/dev/null

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
cycles = json.load(open(os.path.join(out, "cycle.json")))["cycles"]
cold, steady = cycles[0], cycles[-1]
print(f"windsock cold cycle: {cold['wall_ms']:.0f} ms wall, {cold['db_wait_ms']:.0f} ms DB wait")
print(f"windsock steady cycle: {steady['wall_ms']:.0f} ms wall, {steady['db_wait_ms']:.1f} ms DB wait")
for n in (10000, 100000):
    s = json.load(open(os.path.join(out, f"scrape-{n}.json")))
    print(f"/metrics {n} series, 100 scrapers: p50 {s['latency_ms']['p50']:.1f} ms, "
          f"p99 {s['latency_ms']['p99']:.1f} ms, peak RSS {s['rss_kb']['peak'] / 1024:.0f} MB")
peers = os.path.join(out, "peers.json")
if os.path.exists(peers):
    for name, runs in json.load(open(peers))["sets"].items():
        total = runs[-1]["total_ms"]
        ratio = total / max(steady["db_wait_ms"], 1e-9)
        print(f"{name}: {total / 1000:.2f} s of DB time per cycle = {ratio:,.0f}x windsock's steady cycle")
print(f"results in {out}")
PY
