#!/usr/bin/env bash
# make-data-fixture.sh: build SQLite metadata DBs *populated by real Airflow*
# and dump them to tests/fixtures/data/<version>/sqlite.sql.
#
# Usage: tests/airflow/make-data-fixture.sh [AIRFLOW_VERSION ...]
#        (default: 2.10.5 3.1.8; other 2.x / 3.x versions should work too)
#
# Prerequisite: the venv $WORK/venv-<version> created by make-fixtures.sh
# (run `tests/airflow/make-fixtures.sh <version>` first).
#
# What happens per version (all on a fresh SQLite file, nothing upgraded):
#   1. `airflow db migrate`, FAB users `admin` (Admin) and `domain/alice`
#      (Viewer) after `airflow sync-perm`, pool `ws_small_pool` (1 slot);
#   2. the DAGs in tests/airflow/dags/ (copied to a scratch dags folder) are
#      parsed, unpaused and triggered once each; ws_success is @daily with
#      catchup off, so it also gets one scheduled run;
#   3. 2.x: the scheduler (SequentialExecutor, the SQLite default) runs them;
#      3.x: api-server + dag-processor + triggerer run in the background (the
#      Task SDK needs the Execution API), then the scheduler (LocalExecutor);
#   4. once every dag_run is finished, all Airflow processes are stopped
#      (a trap also stops them on any error) and the DB is dumped with
#      `sqlite3 .dump`, plus a summary of row counts next to it.
# Every Airflow process is bounded by `timeout`.
#
# 3.x DBs are built with [core] compress_serialized_dags=True so that
# serialized_dag.data_compressed is populated; 2.x keeps plain JSON in data.
#
# Environment: WORK (default /tmp/windsock-airflow), API_PORT (default 28793),
#              RUN_TIMEOUT seconds for the scheduler phase (default 420).
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO_ROOT/tests/airflow"
OUT_ROOT="$REPO_ROOT/tests/fixtures/data"
WORK=${WORK:-/tmp/windsock-airflow}
API_PORT=${API_PORT:-28793}
RUN_TIMEOUT=${RUN_TIMEOUT:-420}

VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(2.10.5 3.1.8)

# DAG ids from tests/airflow/dags/ that get triggered, and how many runs we
# expect in total (one manual run each + one scheduled run of ws_success).
DAGS=(ws_success ws_fail ws_retry ws_long ws_pool)
EXPECTED_RUNS=6

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

# ----------------------------------------------------------------------------
# Background process bookkeeping. Each Airflow daemon is started with setsid
# so it leads its own process group; stopping it signals that group, which
# also reaches its workers / task subprocesses. Only PIDs started here are
# ever signalled.
# ----------------------------------------------------------------------------
BG_PIDS=()
start_bg() { # name cmd...
    local name=$1; shift
    setsid "$@" >"$RUN/logs/$name.log" 2>&1 &
    BG_PIDS+=("$!")
    echo "    started $name (pid $!)" >&2
}
stop_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 1 30); do kill -0 "$pid" 2>/dev/null || return 0; sleep 1; done
    echo "    pid $pid ignored SIGTERM for 30 s; sending SIGKILL" >&2
    kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
stop_all() {
    local i
    # newest first: scheduler before the services it talks to
    for ((i = ${#BG_PIDS[@]} - 1; i >= 0; i--)); do stop_pid "${BG_PIDS[$i]}"; done
    BG_PIDS=()
}
trap stop_all EXIT
trap 'exit 130' INT TERM

# sqlite3 read while Airflow writes: wait for locks instead of failing.
q() { sqlite3 -batch -cmd '.timeout 5000' "$DB" "$1"; }

af() { timeout 300 "$VENV/bin/airflow" "$@"; }

wait_for() { # description timeout_s condition-command...
    local what=$1 limit=$2 t=0; shift 2
    until "$@"; do
        ((t += 2)); ((t <= limit)) || die "timed out after ${limit}s waiting for $what"
        sleep 2
    done
    echo "    ready: $what (${t}s)" >&2
}
dags_parsed() { [[ $(q "SELECT count(*) FROM dag WHERE dag_id LIKE 'ws_%'") -ge ${#DAGS[@]} ]]; }
import_error_seen() { [[ $(q "SELECT count(*) FROM import_error") -ge 1 ]]; }
api_up() { curl -fs -o /dev/null "http://127.0.0.1:$API_PORT/api/v2/monitor/health"; }
runs_done() {
    local done pending
    done=$(q "SELECT count(*) FROM dag_run WHERE state IN ('success','failed')")
    pending=$(q "SELECT count(*) FROM dag_run WHERE state NOT IN ('success','failed')")
    echo "    dag_run finished=$done pending=$pending" >&2
    [[ $done -ge $EXPECTED_RUNS && $pending -eq 0 ]]
}
scheduler_alive() { kill -0 "${BG_PIDS[-1]}" 2>/dev/null || die "scheduler exited early (see $RUN/logs/scheduler.log)"; }
runs_done_or_dead() { scheduler_alive; runs_done; }

# ----------------------------------------------------------------------------
build() {
    local ver=$1 major=${1%%.*}
    VENV="$WORK/venv-$ver"
    [[ -x "$VENV/bin/airflow" ]] || die "no venv for $ver: run tests/airflow/make-fixtures.sh $ver first"
    RUN="$WORK/data-$ver"
    DB="$RUN/airflow.db"
    rm -rf "$RUN" && mkdir -p "$RUN/home" "$RUN/dags" "$RUN/logs"
    cp "$HERE"/dags/ws_*.py "$RUN/dags/"

    # Clean, explicit Airflow environment (no inherited AIRFLOW__* settings).
    local v
    for v in $(env | awk -F= '/^AIRFLOW/{print $1}'); do unset "$v"; done
    export PYTHONHASHSEED=0
    # Executors spawn `airflow tasks run ...` by name, so the venv must be on PATH.
    export PATH="$VENV/bin:$PATH"
    export AIRFLOW_HOME="$RUN/home"
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///$DB"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__DAGS_FOLDER="$RUN/dags"
    export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
    export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=30
    if ((major >= 3)); then
        export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
        export AIRFLOW__API_AUTH__JWT_SECRET=windsock-fixture-jwt-secret
        export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
        export AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT"
        export AIRFLOW__CORE__COMPRESS_SERIALIZED_DAGS=True
        export AIRFLOW__CORE__PARALLELISM=4
    fi

    log "[$ver] migrate, users, pool"
    af db migrate >"$RUN/logs/migrate.log" 2>&1
    af sync-perm >"$RUN/logs/sync-perm.log" 2>&1
    af users create --username admin --password admin --firstname Ada --lastname Admin \
        --role Admin --email admin@example.com >"$RUN/logs/users.log" 2>&1
    # A username with a slash (as LDAP/AD "DOMAIN/user" logins look).
    if ! af users create --username 'domain/alice' --password alice --firstname Alice --lastname Slash \
            --role Viewer --email alice@example.com >>"$RUN/logs/users.log" 2>&1; then
        echo "    NOTE: 'airflow users create' rejected username domain/alice" >&2
    fi
    af pools set ws_small_pool 1 "windsock fixture: one slot" >"$RUN/logs/pools.log" 2>&1

    if ((major >= 3)); then
        log "[$ver] starting api-server, dag-processor, triggerer"
        start_bg api-server timeout "$RUN_TIMEOUT" "$VENV/bin/airflow" api-server -H 127.0.0.1 -p "$API_PORT" -w 1
        start_bg dag-processor timeout "$RUN_TIMEOUT" "$VENV/bin/airflow" dag-processor
        start_bg triggerer timeout "$RUN_TIMEOUT" "$VENV/bin/airflow" triggerer
        wait_for "api-server health" 120 api_up
        wait_for "DAGs parsed by dag-processor" 120 dags_parsed
    else
        log "[$ver] serializing DAGs"
        af dags reserialize >"$RUN/logs/reserialize.log" 2>&1
        dags_parsed || die "DAGs not in the dag table after reserialize"
    fi

    log "[$ver] unpause + trigger ${DAGS[*]}"
    local d
    for d in "${DAGS[@]}"; do
        af dags unpause "$d" >>"$RUN/logs/trigger.log" 2>&1
        af dags trigger "$d" >>"$RUN/logs/trigger.log" 2>&1
    done

    log "[$ver] scheduler (bounded by ${RUN_TIMEOUT}s and -n 5000 loops)"
    start_bg scheduler timeout "$RUN_TIMEOUT" "$VENV/bin/airflow" scheduler -n 5000
    wait_for "all $EXPECTED_RUNS dag runs finished" "$RUN_TIMEOUT" runs_done_or_dead
    # 2.x: the scheduler's own DAG processor records ws_broken.py; give it a moment.
    wait_for "import_error row" 90 import_error_seen
    sleep 5 # let the last heartbeats / state updates land
    log "[$ver] stopping Airflow processes"
    stop_all

    local out="$OUT_ROOT/$ver"
    mkdir -p "$out"
    sqlite3 -batch "$DB" .dump >"$out/sqlite.sql"
    summarize "$ver" >"$out/summary.txt"
    "$VENV/bin/pip" freeze | grep -iE '^(apache-airflow|flask-appbuilder|sqlalchemy|werkzeug)' >"$out/versions.txt"
    # The dump must load into an empty DB and give the same counts back.
    local scratch="$RUN/reload.db"
    rm -f "$scratch"; sqlite3 -batch -bail "$scratch" <"$out/sqlite.sql"
    diff <(DB=$DB summarize "$ver") <(DB=$scratch summarize "$ver") >&2 \
        || die "[$ver] reloaded dump differs from the source DB (sqlite3 CLI)"
    # ... and as one script through Python's executescript (like sqlx raw_sql).
    rm -f "$scratch"; "$VENV/bin/python" "$HERE/load_script.py" sqlite "$scratch" "$out/sqlite.sql"
    diff <(DB=$DB summarize "$ver") <(DB=$scratch summarize "$ver") >&2 \
        || die "[$ver] reloaded dump differs from the source DB (executescript)"
    rm -f "$scratch"
    log "[$ver] wrote $out/sqlite.sql ($(wc -c <"$out/sqlite.sql") bytes)"
    cat "$out/summary.txt" >&2
}

# Row counts a test can assert on (also written to summary.txt).
summarize() {
    local ver=$1
    has() { [[ -n $(q "SELECT 1 FROM sqlite_master WHERE type='table' AND name='$1'") ]]; }
    echo "# Airflow $ver data fixture: row counts (generated by make-data-fixture.sh)"
    echo "alembic_version: $(q 'SELECT group_concat(version_num) FROM alembic_version')"
    has alembic_version_fab && echo "alembic_version_fab: $(q 'SELECT group_concat(version_num) FROM alembic_version_fab')"
    echo "dag (ws_*): $(q "SELECT count(*) FROM dag WHERE dag_id LIKE 'ws_%'")"
    echo "dag_run by dag_id/run_type/state:"
    q "SELECT '  '||dag_id||' '||run_type||' '||state||' '||count(*) FROM dag_run GROUP BY dag_id, run_type, state ORDER BY dag_id, run_type, state"
    echo "dag_run by state:"
    q "SELECT '  '||state||' '||count(*) FROM dag_run GROUP BY state ORDER BY state"
    echo "task_instance by state:"
    q "SELECT '  '||coalesce(state,'NULL')||' '||count(*) FROM task_instance GROUP BY state ORDER BY state"
    echo "task_instance (dag_id.task_id state try_number/max_tries pool):"
    q "SELECT '  '||dag_id||'.'||task_id||' '||coalesce(state,'NULL')||' '||try_number||'/'||max_tries||' '||pool
       FROM task_instance ORDER BY dag_id, task_id, run_id"
    if has task_fail; then
        echo "task_fail rows: $(q 'SELECT count(*) FROM task_fail')"
        q "SELECT '  '||dag_id||'.'||task_id||' '||count(*) FROM task_fail GROUP BY dag_id, task_id ORDER BY dag_id, task_id"
    fi
    if has task_instance_history; then
        echo "task_instance_history rows: $(q 'SELECT count(*) FROM task_instance_history')"
        q "SELECT '  '||dag_id||'.'||task_id||' try '||try_number||' '||state FROM task_instance_history ORDER BY dag_id, task_id, try_number"
    fi
    echo "job by job_type/state:"
    q "SELECT '  '||job_type||' '||state||' '||count(*) FROM job GROUP BY job_type, state ORDER BY job_type, state"
    echo "serialized_dag rows: $(q 'SELECT count(*) FROM serialized_dag'), with data_compressed: $(q 'SELECT count(*) FROM serialized_dag WHERE data_compressed IS NOT NULL')"
    echo "dag_code rows: $(q 'SELECT count(*) FROM dag_code')"
    has dag_version && echo "dag_version rows: $(q 'SELECT count(*) FROM dag_version')"
    echo "import_error rows: $(q 'SELECT count(*) FROM import_error')"
    echo "slot_pool: $(q "SELECT group_concat(pool||'='||slots, ', ') FROM (SELECT pool, slots FROM slot_pool ORDER BY pool)")"
    echo "ab_user: $(q "SELECT group_concat(username, ', ') FROM (SELECT username FROM ab_user ORDER BY id)")"
    echo "ab_user_role: $(q "SELECT group_concat(u.username||'='||r.name, ', ') FROM ab_user_role ur JOIN ab_user u ON u.id=ur.user_id JOIN ab_role r ON r.id=ur.role_id")"
    echo "ab_role rows: $(q 'SELECT count(*) FROM ab_role')"
    echo "log (audit) rows: $(q 'SELECT count(*) FROM log')"
    echo "trigger rows: $(q 'SELECT count(*) FROM "trigger"')"
}

for ver in "${VERSIONS[@]}"; do
    build "$ver"
done
