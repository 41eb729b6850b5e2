#!/usr/bin/env bash
# make-data-fixture.sh: build Airflow metadata DBs *populated by real Airflow*
# on SQLite, PostgreSQL and MariaDB, check what Airflow wrote, and dump them to
#   tests/fixtures/data/<version>/<dialect>.sql           schema + all rows
#   tests/fixtures/data/<version>/<dialect>.facts.json    scenario facts (checked)
#   tests/fixtures/data/<version>/<dialect>.summary.txt   row counts
#   tests/fixtures/data/<version>/versions.txt            resolved packages
# (<dialect> = sqlite | postgres | mysql). See tests/fixtures/data/README.md.
#
# Usage: tests/airflow/make-data-fixture.sh [AIRFLOW_VERSION ...]
#        (default: 2.10.5 3.1.8; other 2.x / 3.x versions may work too)
#        DIALECTS="postgres mysql" tests/airflow/make-data-fixture.sh 3.1.8
#
# Prerequisite: the venv $WORK/venv-<version> created by make-fixtures.sh
# (`tests/airflow/make-fixtures.sh <version>`), and the local servers.
#
# Every database is created fresh (dropped first if it exists, never
# upgraded). Airflow runs against it in three phases:
#   A. `airflow db migrate`, `sync-perm`, FAB users admin (Admin), domain/alice
#      (Viewer) and assumed-role/WindsockRole/session-1 (User); pools
#      ws_small_pool and ws_starved (1 slot each); the DAGs of
#      tests/airflow/dags/ (minus ws_late.py and ws_deadline.py) are parsed
#      with [core] compress_serialized_dags=False, tests/airflow/plugins/ is
#      the plugins folder; ws_success, ws_fail, ws_retry, ws_long, ws_pool,
#      ws_reschedule (a reschedule-mode sensor: two task_reschedule rows) are
#      unpaused and triggered, ws_mapped only unpaused (it gets one scheduled
#      run). The scheduler runs until all 8 runs finished,
#      then stops on SIGTERM (its SchedulerJob ends `success`).
#   B. `airflow tasks clear` of ws_success.world in the *scheduled* run only
#      (clear_number becomes 1); a new scheduler re-runs it, then SIGTERM.
#      ws_success and ws_mapped are paused afterwards (no new daily runs
#      if the generation crosses midnight UTC).
#   C. compress_serialized_dags=True and ws_late.py added (and on 3.1+
#      ws_deadline.py); a triggerer (and on 3.x a fresh dag-processor) starts;
#      3.1+: ws_deadline is triggered, misses its two Deadline Alerts, and the
#      triggerer runs their callbacks (one succeeds, one fails); ws_deferred is triggered and
#      waits until its TI is `deferred` with trigger.triggerer_id set; then
#      ws_zombie (hourly, catchup, max_active_runs=1, pool ws_starved) is
#      unpaused: its task `hang` runs and sends heartbeats, starved_0..2 stay
#      `scheduled`, dag.next_dagrun_create_after goes NULL; a manual ws_zombie
#      run is triggered and stays queued (3.1+: both ws_zombie runs have a
#      pending deadline a day out). Then the scheduler
#      is SIGKILLed with every process below it (incl. the running task), so
#      its SchedulerJob stays `running` and `hang` stays `running` with a
#      stale heartbeat; the triggerer, dag-processor, api-server get SIGTERM.
# Executors: 2.x SequentialExecutor on SQLite, LocalExecutor on PostgreSQL and
# MariaDB; 3.x LocalExecutor everywhere, with api-server + dag-processor (the
# Task SDK needs the Execution API; the 3.x scheduler parses nothing).
#
# Then tests/airflow/data_facts.py computes <dialect>.facts.json from the
# source DB and checks every scenario against its design: the script FAILS
# (and writes nothing into tests/fixtures/data) if one did not happen. Each
# dump is reloaded twice into an empty scratch DB, with the dialect's CLI and
# as one multi-statement script (load_script.py), and the row counts of every
# table must equal the source DB's.
#
# Every Airflow process is bounded by `timeout`; each daemon runs in its own
# session (setsid). A clean stop is SIGTERM to the Airflow process (which
# stops its own workers); the kill is SIGKILL to every process of that
# session and below it (found through /proc, nothing else is signalled). A
# trap stops everything on error and drops the server databases
# (af_data_<ver>_<dialect>[_load]).
#
# Environment:
#   DIALECTS       dialects to build (default "sqlite postgres mysql")
#   WORK           scratch dir with the venvs, runs, logs (default /tmp/windsock-airflow)
#   API_PORT       3.x api-server port (default 28793)
#   PHASE_TIMEOUT  seconds to wait for a phase's end state (default 600)
#   PROC_TIMEOUT   `timeout` for every Airflow daemon (default 1800)
#   PGHOST PGPORT PGUSER / MYHOST MYPORT MYUSER   servers (see dumplib.sh)
#   KEEP_DBS=1     keep the PostgreSQL / MariaDB databases afterwards
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
PHASE_TIMEOUT=${PHASE_TIMEOUT:-600}
PROC_TIMEOUT=${PROC_TIMEOUT:-1800}
read -r -a DIALECT_LIST <<<"${DIALECTS:-sqlite postgres mysql}"
# shellcheck source=dumplib.sh
source "$HERE/dumplib.sh"

VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=(2.10.5 3.1.8)

# Phase A: DAGs unpaused + triggered, and unpaused only (scheduled run).
TRIGGERED=(ws_success ws_fail ws_retry ws_long ws_pool ws_reschedule)
SCHEDULED_ONLY=(ws_mapped)
RUNS_PHASE_A=8     # 6 manual + scheduled ws_success + scheduled ws_mapped
DAGS_PHASE_A=9     # every ws_* DAG but ws_late and ws_deadline (ws_broken.py has none)

log() { printf '\n==> %s\n' "$*" >&2; }
note() { printf '    %s\n' "$*" >&2; }
die() {
    printf 'ERROR: %s\n' "$*" >&2
    if [[ -n "${RUN:-}" && -d "$RUN/logs" ]]; then
        printf 'logs: %s\n' "$RUN/logs" >&2
    fi
    exit 1
}

# ----------------------------------------------------------------------------
# Processes. Each daemon is started with setsid, so it leads a session of its
# own; everything it spawns stays in that session (or at least below it in
# the process tree), even task runners that make their own process group.
# Only processes found that way are ever signalled.
# ----------------------------------------------------------------------------
declare -A BG_PID=()   # name -> pid (running daemons)
BG_ORDER=()            # start order
ALL_ROOTS=()           # every session leader ever started (final sweep)

start_bg() { # name cmd...
    local name=$1; shift
    setsid timeout "$PROC_TIMEOUT" "$@" >"$RUN/logs/$name.log" 2>&1 &
    BG_PID[$name]=$!
    BG_ORDER+=("$name")
    ALL_ROOTS+=("$!")
    note "started $name (pid $!)"
}
# Every live pid in the sessions of the given session leaders, plus all their
# descendants (by parent pid), from /proc via ps. No environment is read.
# Defunct (Z) entries are walked through but not printed: they are already
# dead and only wait to be reaped.
proc_tree() { # root-pid...
    ps -e -o pid=,ppid=,sid=,stat= | awk -v roots="$*" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) { want[r[i]] = 1; sess[r[i]] = 1 } }
        { pid[NR] = $1; ppid[NR] = $2; sid[NR] = $3; st[NR] = $4 }
        END {
            for (i = 1; i <= NR; i++) if (sid[i] in sess) want[pid[i]] = 1
            do { changed = 0
                 for (i = 1; i <= NR; i++) if ((ppid[i] in want) && !(pid[i] in want)) { want[pid[i]] = 1; changed = 1 }
            } while (changed)
            for (i = 1; i <= NR; i++) if ((pid[i] in want) && st[i] !~ /^Z/) print pid[i]
        }'
}
forget_bg() { unset "BG_PID[$1]"; }
pid_live() { local st; st=$(ps -o stat= -p "$1" 2>/dev/null) && [[ -n "$st" && $st != Z* ]]; }
# Clean stop: SIGTERM to the Airflow process itself (timeout's child), which
# shuts its own workers / task supervisors down, as on a real `kill <pid>`.
# 3.1's LocalExecutor sometimes stays in "waiting for running tasks to finish.
# Signal again if you don't want to wait" with nothing running (its job row
# is already `success` then): after 45 s it gets the second SIGTERM it asks
# for; after 30 s more, SIGTERM to the whole tree, then SIGKILL.
stop_bg() { # name
    local name=$1 pid=${BG_PID[$1]:-} i pids main
    [[ -n "$pid" ]] || return 0
    main=$(ps -o pid= --ppid "$pid" 2>/dev/null | head -1 | tr -d ' ')
    kill -TERM "${main:-$pid}" 2>/dev/null || true
    for i in $(seq 1 45); do pid_live "$pid" || break; sleep 1; done
    if pid_live "$pid"; then
        note "$name: still running 45 s after SIGTERM; second SIGTERM"
        kill -TERM "${main:-$pid}" 2>/dev/null || true
        for i in $(seq 1 30); do pid_live "$pid" || break; sleep 1; done
    fi
    pids=$(proc_tree "$pid")
    if [[ -n "$pids" ]]; then
        note "$name: still running after two SIGTERMs (pids ${pids//$'\n'/ }); SIGTERM to all of them"
        # shellcheck disable=SC2086
        kill -TERM $pids 2>/dev/null || true
        for i in $(seq 1 15); do [[ -n "$(proc_tree "$pid")" ]] || break; sleep 1; done
        pids=$(proc_tree "$pid")
        # shellcheck disable=SC2086
        [[ -z "$pids" ]] || { note "$name: SIGKILL ${pids//$'\n'/ }"; kill -KILL $pids 2>/dev/null || true; }
    fi
    wait "$pid" 2>/dev/null || true
    forget_bg "$name"
    note "stopped $name (SIGTERM)"
}

# SIGKILL the daemon and every process below it at once (no clean-up runs).
kill_bg() { # name
    local name=$1 pid=${BG_PID[$1]:-} pids left
    [[ -n "$pid" ]] || return 0
    pids=$(proc_tree "$pid")
    # shellcheck disable=SC2086
    [[ -z "$pids" ]] || kill -KILL $pids 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    local i
    for i in $(seq 1 10); do
        left=$(proc_tree "$pid")
        [[ -n "$left" ]] || break
        sleep 1
    done
    [[ -z "$left" ]] || die "$name: processes survived SIGKILL: ${left//$'\n'/ }"
    forget_bg "$name"
    note "killed $name: SIGKILL to $(wc -w <<<"$pids") processes (${pids//$'\n'/ })"
}
stop_all() {
    local i name
    for ((i = ${#BG_ORDER[@]} - 1; i >= 0; i--)); do
        name=${BG_ORDER[$i]}
        [[ -n "${BG_PID[$name]:-}" ]] && stop_bg "$name"
    done
    BG_ORDER=()
}
sweep() { # anything left in any session we ever started
    [[ ${#ALL_ROOTS[@]} -gt 0 ]] || return 0
    local left
    left=$(ps -e -o pid=,sid=,stat= | awk -v roots="${ALL_ROOTS[*]}" '
        BEGIN { n = split(roots, r, " "); for (i = 1; i <= n; i++) s[r[i]] = 1 } ($2 in s) && $3 !~ /^Z/ { print $1 }')
    if [[ -n "$left" ]]; then
        note "sweep: SIGKILL leftover processes ${left//$'\n'/ }"
        # shellcheck disable=SC2086
        kill -KILL $left 2>/dev/null || true
    fi
}
drop_server_dbs() {
    [[ -n "${KEEP_DBS:-}" || -z "${DBNAME:-}" ]] && return 0
    case ${DIALECT:-} in
        postgres) pg_drop "$DBNAME" || true; pg_drop "${DBNAME}_load" || true ;;
        mysql) my_drop "$DBNAME" || true; my_drop "${DBNAME}_load" || true ;;
    esac
}
on_exit() {
    local rc=$?
    stop_all
    sweep
    drop_server_dbs
    exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT TERM

# ----------------------------------------------------------------------------
# Queries on the DB under construction, with the dialect's CLI. One column,
# one value per line; SQL NULL comes out empty (sqlite3, psql) or as NULL
# (mariadb). Only used for waiting; the facts come from data_facts.py.
# ----------------------------------------------------------------------------
q() {
    case $DIALECT in
        sqlite) sqlite3 -batch -cmd '.timeout 10000' "$DB" "$1" ;;
        postgres) psql -X -At -q -v ON_ERROR_STOP=1 -d "$DBNAME" -c "$1" ;;
        mysql) mysql_cli -N -B "$DBNAME" -e "$1" ;;
    esac
}
af() { timeout 300 "$VENV/bin/airflow" "$@"; }
afl() { # logfile args...: airflow CLI with output appended to a log
    local logf="$RUN/logs/$1.log"; shift
    echo "+ airflow $*" >>"$logf"
    af "$@" >>"$logf" 2>&1 || { tail -30 "$logf" >&2; die "airflow $* failed (log: $logf)"; }
}

wait_for() { # description limit_s condition-command...
    local what=$1 limit=$2 t=0; shift 2
    until "$@"; do
        ((t += 2)); ((t <= limit)) || die "timed out after ${limit}s waiting for $what"
        sleep 2
    done
    note "ready: $what (${t}s)"
}
alive() { # names... : every named daemon still running
    local n
    for n in "$@"; do
        kill -0 "${BG_PID[$n]:-0}" 2>/dev/null \
            || { tail -40 "$RUN/logs/$n.log" >&2; die "$n exited early (log: $RUN/logs/$n.log)"; }
    done
}
services() { # the daemons that must be alive right now
    local n
    for n in "${!BG_PID[@]}"; do echo "$n"; done
}
ok_alive() { local -a s; mapfile -t s < <(services); alive "${s[@]}"; }

api_up() { ok_alive; curl -fs -o /dev/null "http://127.0.0.1:$API_PORT/api/v2/monitor/health"; }
dags_parsed() {
    ok_alive
    [[ $(q "SELECT count(DISTINCT dag_id) FROM serialized_dag WHERE dag_id LIKE 'ws%'") -ge $DAGS_PHASE_A ]]
}
runs_done_a() {
    ok_alive
    local finished pending
    finished=$(q "SELECT count(*) FROM dag_run WHERE state IN ('success','failed')")
    pending=$(q "SELECT count(*) FROM dag_run WHERE state NOT IN ('success','failed')")
    note "dag_run finished=$finished pending=$pending"
    [[ $finished -ge $RUNS_PHASE_A && $pending -eq 0 ]]
}
import_error_seen() { ok_alive; [[ $(q "SELECT count(*) FROM import_error") -ge 1 ]]; }
cleared_rerun_done() {
    ok_alive
    [[ $(q "SELECT count(*) FROM dag_run dr JOIN task_instance ti ON ti.dag_id = dr.dag_id AND ti.run_id = dr.run_id
            WHERE dr.run_id = '$CLEARED_RUN' AND dr.dag_id = 'ws_success' AND dr.state = 'success'
              AND ti.task_id = 'world' AND ti.state = 'success'") -eq 1 ]]
}
late_compressed() {
    ok_alive
    [[ $(q "SELECT count(*) FROM serialized_dag WHERE dag_id = 'ws_late' AND data_compressed IS NOT NULL") -ge 1 ]]
}
triggerer_running() { ok_alive; [[ $(q "SELECT count(*) FROM job WHERE job_type = 'TriggererJob' AND state = 'running'") -ge 1 ]]; }
deferred_ready() {
    ok_alive
    [[ $(q "SELECT count(*) FROM task_instance ti JOIN $TRG t ON t.id = ti.trigger_id
            WHERE ti.dag_id = 'ws_deferred' AND ti.state = 'deferred' AND t.triggerer_id IS NOT NULL") -eq 1 ]]
}
zombie_ready() {
    ok_alive
    local hang starved blocked
    hang=$(q "SELECT count(*) FROM task_instance WHERE dag_id = 'ws_zombie' AND task_id = 'hang' AND state = 'running'")
    starved=$(q "SELECT count(*) FROM task_instance WHERE dag_id = 'ws_zombie' AND pool = 'ws_starved' AND state = 'scheduled'")
    blocked=$(q "SELECT count(*) FROM dag WHERE dag_id = 'ws_zombie' AND next_dagrun_create_after IS NULL
                 AND next_dagrun_data_interval_end IS NOT NULL")
    note "ws_zombie: hang running=$hang, starved scheduled=$starved, blocked=$blocked"
    [[ $hang -eq 1 && $starved -eq 3 && $blocked -eq 1 ]]
}
zombie_manual_queued() {
    ok_alive
    [[ $(q "SELECT count(*) FROM dag_run WHERE dag_id = 'ws_zombie' AND run_type = 'manual' AND state = 'queued'") -eq 1 ]]
}
deadline_parsed() { ok_alive; [[ $(q "SELECT count(*) FROM serialized_dag WHERE dag_id = 'ws_deadline'") -ge 1 ]]; }
deadlines_done() {
    ok_alive
    local states stray
    states=$(q "SELECT count(*) FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id
                WHERE r.dag_id = 'ws_deadline' AND r.state = 'success' AND d.callback_state IN ('success', 'failed')")
    # Airflow drops a callback's trigger once its outcome is in (Trigger.clean_unused).
    stray=$(q "SELECT count(*) FROM $TRG WHERE classpath LIKE '%DeadlineCallbackTrigger%'")
    note "ws_deadline: callbacks done=$states, callback triggers left=$stray"
    [[ $states -eq 2 && $stray -eq 0 ]]
}
hang_heartbeat() {
    if ((MAJOR >= 3)); then
        q "SELECT last_heartbeat_at FROM task_instance WHERE dag_id = 'ws_zombie' AND task_id = 'hang'"
    else
        q "SELECT j.latest_heartbeat FROM task_instance ti JOIN job j ON j.id = ti.job_id
           WHERE ti.dag_id = 'ws_zombie' AND ti.task_id = 'hang' AND j.state = 'running'"
    fi
}
HB0=""
heartbeat_moved() {
    ok_alive
    local hb; hb=$(hang_heartbeat)
    [[ -n "$hb" && "$hb" != NULL && "$hb" != "$HB0" ]]
}

# ----------------------------------------------------------------------------
setup_env() { # ver dialect
    local ver=$1 dialect=$2 v
    for v in $(env | awk -F= '/^AIRFLOW/{print $1}'); do unset "$v"; done
    export PYTHONHASHSEED=0
    # Executors spawn `airflow tasks run ...` by name, so the venv must be on PATH.
    export PATH="$VENV/bin:$BASE_PATH"
    export AIRFLOW_HOME="$RUN/home"
    export AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$URL"
    export AIRFLOW__CORE__LOAD_EXAMPLES=False
    export AIRFLOW__CORE__DAGS_FOLDER="$RUN/dags"
    export AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION=True
    export AIRFLOW__CORE__COMPRESS_SERIALIZED_DAGS=False
    export AIRFLOW__CORE__PARALLELISM=4
    export AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL=30
    if ((MAJOR < 3)) && [[ $dialect == sqlite ]]; then
        export AIRFLOW__CORE__EXECUTOR=SequentialExecutor
    else
        export AIRFLOW__CORE__EXECUTOR=LocalExecutor
    fi
    if ((MAJOR >= 3)); then
        export AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
        export AIRFLOW__API_AUTH__JWT_SECRET=windsock-fixture-jwt-secret
        export AIRFLOW__CORE__EXECUTION_API_SERVER_URL="http://127.0.0.1:$API_PORT/execution/"
        export AIRFLOW__API__BASE_URL="http://127.0.0.1:$API_PORT"
    fi
    unset PYTHONPATH
    # SQLAlchemy 1.4 (3.0.x) renders NO CYCLE, which MariaDB rejects; see the shim.
    [[ $dialect != mysql ]] || export PYTHONPATH="$HERE/mariadb-shim"
    # ws_zombie: hourly, catchup, starts at the top of the hour 3 h ago (the
    # same value for every parse of this build, see ws_zombie.py).
    WS_ZOMBIE_START=$(date -u -d "$(date -u +%Y-%m-%dT%H:00:00Z) - 3 hours" +%Y-%m-%dT%H:00:00+00:00)
    export WS_ZOMBIE_START
}

start_api_server() {
    start_bg api-server "$VENV/bin/airflow" api-server -H 127.0.0.1 -p "$API_PORT" -w 1
    wait_for "api-server health" 180 api_up
}

# ----------------------------------------------------------------------------
build() { # ver dialect
    local ver=$1 dialect=$2
    MAJOR=${ver%%.*}
    local minor=${ver#*.}; minor=${minor%%.*}
    # Deadline Alerts (the deadline table's callbacks) from 3.1.
    DEADLINES=$(( MAJOR > 3 || (MAJOR == 3 && minor >= 1) ))
    DIALECT=$dialect
    VENV="$WORK/venv-$ver"
    [[ -x "$VENV/bin/airflow" ]] || die "no venv for $ver: run tests/airflow/make-fixtures.sh $ver first"
    PY="$VENV/bin/python"
    RUN="$WORK/data-$ver-$dialect"
    rm -rf "$RUN" && mkdir -p "$RUN/home" "$RUN/dags" "$RUN/logs" "$RUN/out"
    local f
    for f in "$HERE"/dags/ws_*.py; do
        case $(basename "$f") in ws_late.py | ws_deadline.py) ;; *) cp "$f" "$RUN/dags/" ;; esac
    done
    # Deadline-alert callbacks: the triggerer imports them from the plugins
    # folder (on sys.path in every Airflow process).
    mkdir -p "$RUN/home/plugins" && cp "$HERE"/plugins/*.py "$RUN/home/plugins/"

    DBNAME="af_data_${ver//./_}_$dialect"
    TRG='"trigger"'
    case $dialect in
        sqlite)
            DB="$RUN/airflow.db"; URL="sqlite:///$DB" ;;
        postgres)
            pg_recreate "$DBNAME"; URL="postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$DBNAME" ;;
        mysql)
            # shellcheck disable=SC2016  # literal backticks: MySQL identifier quoting
            TRG='`trigger`'
            my_recreate "$DBNAME"
            # 2.x works with PyMySQL; 3.x insists on mysqlclient (MySQLdb).
            if ((MAJOR >= 3)); then URL="mysql+mysqldb://$MYUSER@$MYHOST:$MYPORT/$DBNAME"
            else URL="mysql+pymysql://$MYUSER@$MYHOST:$MYPORT/$DBNAME"; fi ;;
        *) die "unknown dialect $dialect (want sqlite, postgres or mysql)" ;;
    esac
    setup_env "$ver" "$dialect"
    local t0=$SECONDS t_a t_b t_c
    log "[$ver/$dialect] executor $AIRFLOW__CORE__EXECUTOR, ws_zombie start $WS_ZOMBIE_START, run dir $RUN"

    # ---------------------------------------------------------------- phase A
    log "[$ver/$dialect] phase A: migrate, users, pools, parse"
    afl migrate db migrate
    afl setup sync-perm
    afl setup users create --username admin --password admin --firstname Ada --lastname Admin \
        --role Admin --email admin@example.com
    # Slashes in usernames: LDAP/AD "DOMAIN/user" logins and AWS MWAA's
    # IAM-mapped "assumed-role/<role>/<session>" users.
    afl setup users create --username 'domain/alice' --password alice --firstname Alice --lastname Slash \
        --role Viewer --email alice@example.com
    afl setup users create --username 'assumed-role/WindsockRole/session-1' --password session \
        --firstname Assumed --lastname Role --role User --email session-1@example.com
    afl setup pools set ws_small_pool 1 "windsock fixture: one slot"
    afl setup pools set ws_starved 1 "windsock fixture: one slot, held by ws_zombie.hang"
    if ((MAJOR >= 3)); then
        start_api_server
        start_bg dag-processor "$VENV/bin/airflow" dag-processor
        wait_for "DAGs parsed by the dag-processor" 180 dags_parsed
    else
        afl setup dags reserialize
        dags_parsed || die "DAGs not in serialized_dag after reserialize"
    fi
    log "[$ver/$dialect] phase A: unpause + trigger ${TRIGGERED[*]}; unpause ${SCHEDULED_ONLY[*]}"
    local d
    for d in "${TRIGGERED[@]}"; do
        afl trigger dags unpause "$d"
        afl trigger dags trigger "$d"
    done
    for d in "${SCHEDULED_ONLY[@]}"; do afl trigger dags unpause "$d"; done
    start_bg scheduler-a "$VENV/bin/airflow" scheduler
    wait_for "all $RUNS_PHASE_A phase-A dag runs finished" "$PHASE_TIMEOUT" runs_done_a
    # 2.x: the scheduler's own DAG processor records ws_broken.py.
    wait_for "import_error row" 120 import_error_seen
    sleep 3 # let the last heartbeats / state updates land
    stop_all
    t_a=$((SECONDS - t0))

    # ---------------------------------------------------------------- phase B
    log "[$ver/$dialect] phase B: clear ws_success.world in the scheduled run"
    CLEARED_RUN=$(q "SELECT run_id FROM dag_run WHERE dag_id = 'ws_success' AND run_type = 'scheduled'")
    [[ $CLEARED_RUN == scheduled__* ]] || die "no single scheduled ws_success run (got '$CLEARED_RUN')"
    # The run id carries the logical date on 2.x and run_after on 3.x; for a
    # scheduled cron run both are the same instant.
    local logical=${CLEARED_RUN#scheduled__}
    # -t is a regex on 2.x but a plain substring match on 3.1 (partial_subset
    # with a str): '^world$' clears nothing there. "world" means the same on both.
    afl clear tasks clear ws_success -t world -s "$logical" -e "$logical" -y
    local cn st
    cn=$(q "SELECT clear_number FROM dag_run WHERE dag_id = 'ws_success' AND run_id = '$CLEARED_RUN'")
    st=$(q "SELECT coalesce(state, 'none') FROM task_instance WHERE dag_id = 'ws_success' AND task_id = 'world' AND run_id = '$CLEARED_RUN'")
    note "after clear: clear_number=$cn, world state=$st"
    [[ $cn == 1 ]] || die "clear did not bump clear_number of $CLEARED_RUN (got $cn)"
    [[ $(q "SELECT count(*) FROM task_instance WHERE dag_id = 'ws_success' AND task_id = 'world' AND state = 'success'") == 1 ]] \
        || die "clear touched more than the scheduled run's world TI"
    ((MAJOR < 3)) || start_api_server
    start_bg scheduler-b "$VENV/bin/airflow" scheduler
    wait_for "cleared ws_success.world re-run to success" "$PHASE_TIMEOUT" cleared_rerun_done
    sleep 3
    stop_all
    afl setup dags pause ws_success
    afl setup dags pause ws_mapped
    t_b=$((SECONDS - t0 - t_a))

    # ---------------------------------------------------------------- phase C
    log "[$ver/$dialect] phase C: compression on, ws_late.py, triggerer, deferred + zombie"
    export AIRFLOW__CORE__COMPRESS_SERIALIZED_DAGS=True
    cp "$HERE/dags/ws_late.py" "$RUN/dags/"
    ((DEADLINES)) && cp "$HERE/dags/ws_deadline.py" "$RUN/dags/"
    if ((MAJOR >= 3)); then
        start_api_server
        start_bg dag-processor "$VENV/bin/airflow" dag-processor
        start_bg triggerer "$VENV/bin/airflow" triggerer
        wait_for "ws_late serialized compressed" 180 late_compressed
        start_bg scheduler-c "$VENV/bin/airflow" scheduler
    else
        start_bg triggerer "$VENV/bin/airflow" triggerer
        start_bg scheduler-c "$VENV/bin/airflow" scheduler
        wait_for "ws_late serialized compressed" 180 late_compressed
    fi
    wait_for "a running TriggererJob" 120 triggerer_running
    if ((DEADLINES)); then
        wait_for "ws_deadline parsed" 180 deadline_parsed
        afl trigger dags unpause ws_deadline
        afl trigger dags trigger ws_deadline
        wait_for "ws_deadline: run done, both deadlines missed, callbacks run, their triggers gone" 300 deadlines_done
    fi
    afl trigger dags unpause ws_deferred
    afl trigger dags trigger ws_deferred
    wait_for "ws_deferred deferred, trigger taken by the triggerer" 300 deferred_ready
    # Only now: with SequentialExecutor the scheduler blocks while `hang` runs.
    afl trigger dags unpause ws_zombie
    wait_for "ws_zombie: hang running, 3 starved scheduled, next_dagrun_create_after NULL" 240 zombie_ready
    afl trigger dags trigger ws_zombie
    wait_for "a manual ws_zombie run queued behind max_active_runs=1" 60 zombie_manual_queued
    HB0=$(hang_heartbeat)
    note "hang heartbeat: $HB0"
    wait_for "a later heartbeat of hang" 90 heartbeat_moved
    note "hang heartbeat: $(hang_heartbeat)"
    KILLED_JOB=$(q "SELECT max(id) FROM job WHERE job_type = 'SchedulerJob' AND state = 'running'")
    local hang_pid; hang_pid=$(q "SELECT pid FROM task_instance WHERE dag_id = 'ws_zombie' AND task_id = 'hang'")
    log "[$ver/$dialect] SIGKILL scheduler (SchedulerJob $KILLED_JOB) and everything below it (hang pid $hang_pid)"
    local killed_at; killed_at=$(date -u +%s.%N)
    kill_bg scheduler-c
    if [[ $hang_pid =~ ^[0-9]+$ ]] && pid_live "$hang_pid"; then
        die "hang's process $hang_pid survived the kill"
    fi
    stop_all   # triggerer, dag-processor, api-server: SIGTERM, newest first
    sweep
    t_c=$((SECONDS - t0 - t_a - t_b))
    local generated_at; generated_at=$(date -u +%s.%N)

    # ---------------------------------------------------------------- outputs
    log "[$ver/$dialect] facts, summary, dump"
    local out="$RUN/out"
    local timings="{\"setup_and_phase_a\": $t_a, \"phase_b\": $t_b, \"phase_c\": $t_c, \"killed_at_epoch\": $killed_at}"
    "$PY" "$HERE/data_facts.py" facts "$URL" "$ver" "$dialect" "$out/$dialect.facts.json" \
        --killed-scheduler-job "$KILLED_JOB" --generated-at "$generated_at" \
        --zombie-start "$WS_ZOMBIE_START" --timings "$timings" \
        || die "[$ver/$dialect] scenario checks failed (facts: $out/$dialect.facts.json.failed)"
    "$PY" "$HERE/data_facts.py" summary "$URL" "$ver" >"$out/$dialect.summary.txt"
    "$PY" "$HERE/data_facts.py" counts "$URL" >"$RUN/counts.src"
    "dump_$dialect" "$ver" "$out/$dialect.sql"
    "verify_$dialect" "$ver" "$out/$dialect.sql"
    local size; size=$(wc -c <"$out/$dialect.sql")
    ((size < 2000000)) || die "[$ver/$dialect] dump is $size bytes (limit 2 MB)"
    "$PY" -c 'import sys; open(sys.argv[1], encoding="utf-8").read()' "$out/$dialect.sql" \
        || die "[$ver/$dialect] dump is not valid UTF-8"

    local dest="$OUT_ROOT/$ver"
    mkdir -p "$dest"
    cp "$out/$dialect.sql" "$out/$dialect.facts.json" "$out/$dialect.summary.txt" "$dest/"
    "$VENV/bin/pip" freeze 2>/dev/null \
        | grep -iE '^(apache-airflow|flask-appbuilder|sqlalchemy|werkzeug|psycopg2|pymysql|mysqlclient)' \
        >"$dest/versions.txt"
    drop_server_dbs
    log "[$ver/$dialect] done in $((SECONDS - t0))s: $dest/$dialect.sql ($size bytes)"
    cat "$out/$dialect.summary.txt" >&2
    DBNAME=""
}

# ----------------------------------------------------------------------------
# Dumps: schema + every row, loadable into an EMPTY database as one script.
# ----------------------------------------------------------------------------
dump_sqlite() { # ver file
    {
        echo "-- Airflow $1 metadata DB populated by real Airflow, SQLite. Generated by tests/airflow/make-data-fixture.sh; do not edit."
        sqlite3 -batch "$DB" .dump
    } >"$2"
}
dump_postgres() {
    {
        echo "-- Airflow $1 metadata DB populated by real Airflow, PostgreSQL. Generated by tests/airflow/make-data-fixture.sh; do not edit."
        pg_dump --inserts --no-owner --no-privileges --no-comments --no-tablespaces -d "$DBNAME"
    } | clean_pg >"$2"
    if grep -nE '^\\|^COPY ' "$2" | head -5 >&2; then die "psql meta-command or COPY left in $2"; fi
}
dump_mysql() {
    # The header/footer /*!...*/ SETs are kept on purpose: they disable
    # FOREIGN_KEY_CHECKS while tables are created in alphabetical order, and
    # set TIME_ZONE='+00:00' so TIMESTAMP values load unchanged. --hex-blob
    # keeps binary columns (pickles, zlib) out of the text as 0x... literals.
    {
        echo "-- Airflow $1 metadata DB populated by real Airflow, MariaDB/MySQL. Generated by tests/airflow/make-data-fixture.sh; do not edit."
        "$MYSQLDUMP" -h "$MYHOST" -P "$MYPORT" -u "$MYUSER" --skip-comments --skip-dump-date --no-tablespaces \
            --single-transaction --hex-blob --skip-extended-insert --order-by-primary --skip-add-locks \
            --skip-add-drop-table --skip-triggers "$DBNAME"
    } | clean_mysql >"$2"
    if grep -nE '^(DELIMITER|CREATE DATABASE|USE |LOCK TABLES)' "$2" | head -5 >&2; then
        die "DELIMITER / CREATE DATABASE / USE / LOCK TABLES in $2"
    fi
}

# Row counts of every table after reloading == the source DB's.
check_counts() { # label url
    "$PY" "$HERE/data_facts.py" counts "$2" >"$RUN/counts.dst"
    diff "$RUN/counts.src" "$RUN/counts.dst" >&2 || die "$1: reloaded row counts differ from the source DB"
    note "ok: $1 ($(wc -l <"$RUN/counts.src") tables, $(awk '{s += $2} END {print s}' "$RUN/counts.src") rows)"
}
verify_sqlite() { # ver file
    local scratch="$RUN/reload.db"
    rm -f "$scratch"; sqlite3 -batch -bail "$scratch" <"$2"
    check_counts "[$1/sqlite] reload via sqlite3 CLI" "sqlite:///$scratch"
    rm -f "$scratch"; "$PY" "$HERE/load_script.py" sqlite "$scratch" "$2"
    check_counts "[$1/sqlite] reload via executescript" "sqlite:///$scratch"
    rm -f "$scratch"
}
verify_postgres() {
    local scratch="${DBNAME}_load"
    pg_recreate "$scratch"
    psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$scratch" -f "$2" >/dev/null
    check_counts "[$1/postgres] reload via psql" "postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$scratch"
    pg_recreate "$scratch"
    "$PY" "$HERE/load_script.py" postgres "dbname=$scratch host=$PGHOST port=$PGPORT user=$PGUSER" "$2"
    check_counts "[$1/postgres] reload via one simple-protocol query" "postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$scratch"
    pg_drop "$scratch"
}
verify_mysql() {
    local scratch="${DBNAME}_load" url=${URL%/*}/${DBNAME}_load
    my_recreate "$scratch"
    mysql_cli "$scratch" <"$2"
    check_counts "[$1/mysql] reload via $(basename "$MYSQL_CLI") CLI" "$url"
    my_recreate "$scratch"
    "$PY" "$HERE/load_script.py" mysql "$MYHOST:$MYPORT:$MYUSER:$scratch" "$2"
    check_counts "[$1/mysql] reload via one MULTI_STATEMENTS query" "$url"
    my_drop "$scratch"
}

# ----------------------------------------------------------------------------
BASE_PATH=$PATH
for tool in sqlite3 psql pg_dump "$MYSQL_CLI" "$MYSQLDUMP" timeout setsid curl; do
    command -v "$tool" >/dev/null || die "missing required tool: $tool"
done
for ver in "${VERSIONS[@]}"; do
    for dialect in "${DIALECT_LIST[@]}"; do
        build "$ver" "$dialect"
    done
done
log "all done: ${VERSIONS[*]} x ${DIALECT_LIST[*]}"
