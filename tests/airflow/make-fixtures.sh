#!/usr/bin/env bash
# make-fixtures.sh: regenerate the Airflow metadata-DB *schema* fixtures.
#
# Usage: tests/airflow/make-fixtures.sh [AIRFLOW_VERSION ...]
#        (default: 2.7.3 2.9.3 2.10.5 3.0.6 3.1.8 3.3.2)
#
# For every version this script:
#   1. creates (or reuses) a venv  $WORK/venv-<version>  and pip-installs that
#      Airflow release plus the DB drivers (and the FAB provider for 3.x),
#      using tests/airflow/constraints/<version>.txt as a pip constraints file;
#   2. runs a *fresh* `airflow db migrate` (never an upgrade) against
#        - SQLite      (a new file),
#        - PostgreSQL  (database af_fixture_<ver>, dropped + recreated),
#        - MariaDB     (database af_fixture_<ver>, dropped + recreated);
#   3. dumps each database to tests/fixtures/schema/<version>/<dialect>.sql:
#      full DDL plus only the rows of alembic_version / alembic_version_fab;
#   4. verifies every dump by loading it into an empty scratch database twice,
#      with the dialect's CLI and with load_script.py (whole file as one
#      multi-statement script, like the Rust tests do), and comparing a schema
#      signature (tables / columns / indexes / alembic rows) with the source;
#   5. records the resolved package versions in <version>/versions.txt.
#
# It is slow (pip installs + migrations, minutes per version) and needs the
# network to reach PyPI; it is NOT part of CI. The committed fixtures are
# the output.
#
# Environment:
#   WORK        scratch dir for venvs, SQLite files, logs (default /tmp/windsock-airflow)
#   PYTHON      interpreter used to create the venvs (default python3, must be 3.11-ish)
#   PGHOST PGPORT PGUSER            PostgreSQL server (default 127.0.0.1 5432 postgres, trust auth)
#   MYHOST MYPORT MYUSER            MariaDB/MySQL server (default 127.0.0.1 3306 root, no password)
#   KEEP_DBS=1  keep the PostgreSQL / MariaDB databases afterwards
#   FORCE_REINSTALL=1  recreate venvs even if one for the version exists
set -euo pipefail

if [[ "${1:-}" == "-h" || "${1:-}" == "--help" ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
    exit 0
fi

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$REPO_ROOT/tests/airflow"
OUT_ROOT="$REPO_ROOT/tests/fixtures/schema"
WORK=${WORK:-/tmp/windsock-airflow}
PYTHON=${PYTHON:-python3}

# shellcheck source=dumplib.sh
source "$HERE/dumplib.sh"  # PG*/MY* defaults, psql_admin, mysql_cli, *_recreate, *_drop, clean_pg, clean_mysql

DEFAULT_VERSIONS=(2.7.3 2.9.3 2.10.5 3.0.6 3.1.8 3.3.2)
VERSIONS=("$@")
[[ ${#VERSIONS[@]} -gt 0 ]] || VERSIONS=("${DEFAULT_VERSIONS[@]}")

# Pins needed on top of the constraints file (they are also in the files
# where one exists, but stating them here keeps the script working if a
# constraints file is missing).
#   2.7.3: Flask-Session >= 0.6 removed flask_session.sessions -> migrate fails.
#   3.0.6: an unpinned resolve picks FastAPI/cadwyn/starlette releases whose
#          Execution API models break task execution.
declare -A EXTRA_PINS=(
    [2.7.3]="flask-session==0.5.0"
    [3.0.6]="fastapi[standard-no-fastapi-cloud-cli]==0.116.2 cadwyn==5.4.6 starlette==0.48.0 pydantic==2.11.7"
)

# Bound every Airflow CLI call so a hang cannot stall the script forever.
MIGRATE_TIMEOUT=${MIGRATE_TIMEOUT:-900}

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$*" >&2; exit 1; }

major() { echo "${1%%.*}"; }
# 2.10.5 -> 2_10_5 (usable as an unquoted database name on both servers)
dbname() { echo "af_fixture_${1//./_}"; }

# --------------------------------------------------------------------------
# System prerequisites (idempotent). mysqlclient (needed by 3.x on MySQL)
# compiles against libmariadb and is located with pkg-config.
# --------------------------------------------------------------------------
ensure_system_deps() {
    local tool
    for tool in sqlite3 psql pg_dump "$MYSQL_CLI" "$MYSQLDUMP" timeout; do
        command -v "$tool" >/dev/null || die "missing required tool: $tool"
    done
    if ! dpkg -s libmariadb-dev >/dev/null 2>&1 || ! command -v pkg-config >/dev/null; then
        log "installing libmariadb-dev pkg-config (for mysqlclient)"
        apt-get install -y libmariadb-dev pkg-config \
            || { apt-get update && apt-get install -y libmariadb-dev pkg-config; }
    fi
    psql_admin -c 'SELECT 1' >/dev/null || die "PostgreSQL not reachable at $PGHOST:$PGPORT"
    mysql_cli -e 'SELECT 1' >/dev/null || die "MariaDB not reachable at $MYHOST:$MYPORT"
}

# --------------------------------------------------------------------------
# venv per version. A marker file records the exact pip arguments; if they
# match, the venv is reused (pip installs take ~1 min each).
# --------------------------------------------------------------------------
ensure_venv() {
    local ver=$1 venv="$WORK/venv-$1"
    local -a pkgs=("apache-airflow==$ver" psycopg2-binary)
    if [[ $(major "$ver") -ge 3 ]]; then
        # FAB provider: ab_* tables + alembic_version_fab. 3.x also builds
        # an async engine at start-up: asyncpg for PostgreSQL, aiomysql for
        # MySQL (3.0.6 dies without it). The 3.x MySQL runs use
        # mysql+mysqldb:// (mysqlclient); 3.x did not work with PyMySQL.
        pkgs+=(apache-airflow-providers-fab asyncpg mysqlclient aiomysql)
    else
        pkgs+=(pymysql)
    fi
    # shellcheck disable=SC2206  # intentional word splitting of the pin list
    [[ -n "${EXTRA_PINS[$ver]:-}" ]] && pkgs+=(${EXTRA_PINS[$ver]})
    local -a cons=()
    [[ -f "$HERE/constraints/$ver.txt" ]] && cons=(-c "$HERE/constraints/$ver.txt")
    local want="${pkgs[*]} ${cons[*]}"

    if [[ -z "${FORCE_REINSTALL:-}" && -x "$venv/bin/airflow" && -f "$venv/.windsock-ready" \
          && "$(cat "$venv/.windsock-ready")" == "$want" ]]; then
        log "[$ver] reusing venv $venv"
        return
    fi
    if [[ -z "${FORCE_REINSTALL:-}" && -x "$venv/bin/airflow" ]]; then
        # Same version, different package list: top the venv up.
        log "[$ver] updating venv $venv: pip install $want"
    else
        log "[$ver] creating venv $venv: pip install $want"
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        "$venv/bin/pip" install -q --upgrade pip >/dev/null
    fi
    "$venv/bin/pip" install -q "${pkgs[@]}" "${cons[@]}" >"$WORK/logs/pip-$ver.log" 2>&1 \
        || { tail -40 "$WORK/logs/pip-$ver.log" >&2; die "[$ver] pip install failed"; }
    echo "$want" >"$venv/.windsock-ready"
}

# --------------------------------------------------------------------------
# airflow db migrate with an isolated AIRFLOW_HOME and no examples.
# --------------------------------------------------------------------------
airflow_migrate() {
    local ver=$1 dialect=$2 url=$3
    local home="$WORK/home-$ver-$dialect"
    rm -rf "$home" && mkdir -p "$home/dags"
    # PYTHONHASHSEED only pins str/bytes hashing; the index order (a set of
    # Index objects, hashed by id) still varies and is normalised at dump time.
    local -a envs=(
        PYTHONHASHSEED=0
        AIRFLOW_HOME="$home"
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="$url"
        AIRFLOW__CORE__LOAD_EXAMPLES=False
        AIRFLOW__CORE__DAGS_FOLDER="$home/dags"
    )
    if [[ $(major "$ver") -ge 3 ]]; then
        envs+=(AIRFLOW__CORE__AUTH_MANAGER=airflow.providers.fab.auth_manager.fab_auth_manager.FabAuthManager
               AIRFLOW__API_AUTH__JWT_SECRET=windsock-fixture-secret)
    fi
    if [[ $dialect == mysql ]]; then
        # SQLAlchemy 1.4 (Airflow 3.0.x) emits "NO CYCLE" for the FAB
        # sequences, which MariaDB rejects; see mariadb-shim/sitecustomize.py.
        envs+=(PYTHONPATH="$HERE/mariadb-shim")
    fi
    log "[$ver] airflow db migrate on $dialect"
    # Drop any AIRFLOW__* the caller may have exported, then set ours.
    if ! env $(env | awk -F= '/^AIRFLOW/{print "-u", $1}') "${envs[@]}" \
            timeout "$MIGRATE_TIMEOUT" "$WORK/venv-$ver/bin/airflow" db migrate \
            >"$WORK/logs/migrate-$ver-$dialect.log" 2>&1; then
        tail -40 "$WORK/logs/migrate-$ver-$dialect.log" >&2
        die "[$ver] airflow db migrate failed on $dialect (log: $WORK/logs/migrate-$ver-$dialect.log)"
    fi
}

# --------------------------------------------------------------------------
# Schema signatures: one comparable text blob per database. Used to check
# that a dump reloads into an identical schema.
# --------------------------------------------------------------------------
sig_sqlite() {
    sqlite3 -batch -bail "$1" <<'SQL'
SELECT 'tables=' || count(*) FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%';
SELECT 'indexes=' || count(*) FROM sqlite_master WHERE type='index';
SELECT 'columns=' || count(*) FROM sqlite_master m, pragma_table_info(m.name) WHERE m.type='table' AND m.name NOT LIKE 'sqlite_%';
SELECT 'alembic=' || group_concat(version_num) FROM alembic_version;
SQL
    if [[ -n $(sqlite3 -batch "$1" "SELECT 1 FROM sqlite_master WHERE name='alembic_version_fab'") ]]; then
        sqlite3 -batch "$1" "SELECT 'alembic_fab=' || coalesce(group_concat(version_num), '') FROM alembic_version_fab"
    fi
}
sig_pg() {
    psql -X -At -v ON_ERROR_STOP=1 -d "$1" <<'SQL'
SELECT 'tables=' || count(*) FROM pg_tables WHERE schemaname='public';
SELECT 'indexes=' || count(*) FROM pg_indexes WHERE schemaname='public';
SELECT 'columns=' || count(*) FROM information_schema.columns WHERE table_schema='public';
SELECT 'constraints=' || count(*) FROM information_schema.table_constraints WHERE table_schema='public';
SELECT 'sequences=' || count(*) FROM information_schema.sequences WHERE sequence_schema='public';
SELECT 'types=' || count(*) FROM pg_type t JOIN pg_namespace n ON n.oid=t.typnamespace WHERE n.nspname='public' AND t.typtype='e';
SELECT 'alembic=' || string_agg(version_num, ',') FROM alembic_version;
SQL
    if [[ $(psql -X -At -d "$1" -c "SELECT to_regclass('public.alembic_version_fab') IS NOT NULL") == t ]]; then
        psql -X -At -d "$1" -c "SELECT 'alembic_fab=' || coalesce(string_agg(version_num, ','), '') FROM alembic_version_fab"
    fi
}
sig_mysql() {
    mysql_cli -N -B "$1" <<SQL
SELECT concat('tables=', count(*)) FROM information_schema.tables WHERE table_schema='$1' AND table_type='BASE TABLE';
SELECT concat('indexes=', count(DISTINCT table_name, index_name)) FROM information_schema.statistics WHERE table_schema='$1';
SELECT concat('columns=', count(*)) FROM information_schema.columns WHERE table_schema='$1';
SELECT concat('constraints=', count(*)) FROM information_schema.table_constraints WHERE table_schema='$1';
SELECT concat('sequences=', count(*)) FROM information_schema.tables WHERE table_schema='$1' AND table_type='SEQUENCE';
SELECT concat('alembic=', group_concat(version_num)) FROM alembic_version;
SQL
    if [[ -n $(mysql_cli -N -B -e "SELECT 1 FROM information_schema.tables WHERE table_schema='$1' AND table_name='alembic_version_fab'") ]]; then
        mysql_cli -N -B "$1" -e "SELECT concat('alembic_fab=', coalesce(group_concat(version_num), '')) FROM alembic_version_fab"
    fi
}

# Compare two signatures; the dump is only accepted if they are identical.
check_sig() {
    local what=$1 src=$2 dst=$3
    if [[ "$src" != "$dst" ]]; then
        diff <(echo "$src") <(echo "$dst") >&2 || true
        die "$what: reloaded schema differs from the source database"
    fi
    echo "    ok: $what ($(echo "$src" | tr '\n' ' '))" >&2
}

# --------------------------------------------------------------------------
# SQLite
# --------------------------------------------------------------------------
do_sqlite() {
    local ver=$1 out=$2 py="$WORK/venv-$1/bin/python"
    local db="$WORK/sqlite-$ver.db"
    rm -f "$db" "$db-wal" "$db-shm" "$db-journal"
    airflow_migrate "$ver" sqlite "sqlite:///$db"

    {
        echo "-- Airflow $ver metadata schema, SQLite. Generated by tests/airflow/make-fixtures.sh; do not edit."
        # Same statements as `.schema`, in a canonical order: tables by name,
        # each followed by its indexes by name. SQLAlchemy creates a table's
        # indexes in set order, which differs between runs. Internal objects
        # (sqlite_sequence, sqlite_stat*, sqlite_autoindex_*) are skipped:
        # they cannot be created by hand and SQLite recreates them itself.
        sqlite3 -batch "$db" "SELECT sql || ';' FROM sqlite_master
            WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite\_%' ESCAPE '\'
            ORDER BY tbl_name, type = 'index', name"
        local t
        for t in alembic_version alembic_version_fab; do
            if [[ -n $(sqlite3 -batch "$db" "SELECT 1 FROM sqlite_master WHERE type='table' AND name='$t'") ]]; then
                sqlite3 -batch "$db" ".mode insert $t" "SELECT * FROM $t ORDER BY 1"
            fi
        done
    } >"$out/sqlite.sql"

    local src dst scratch="$WORK/sqlite-$ver-load.db"
    src=$(sig_sqlite "$db")
    rm -f "$scratch"; sqlite3 -batch -bail "$scratch" <"$out/sqlite.sql"
    dst=$(sig_sqlite "$scratch"); check_sig "[$ver] sqlite via sqlite3 CLI" "$src" "$dst"
    rm -f "$scratch"; "$py" "$HERE/load_script.py" sqlite "$scratch" "$out/sqlite.sql"
    dst=$(sig_sqlite "$scratch"); check_sig "[$ver] sqlite via executescript" "$src" "$dst"
    rm -f "$scratch"
}

# --------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------
# clean_pg (dumplib.sh) makes the pg_dump output loadable as one plain script.
do_postgres() {
    local ver=$1 out=$2 py="$WORK/venv-$1/bin/python"
    local db scratch
    db=$(dbname "$ver"); scratch="${db}_load"
    pg_recreate "$db"
    airflow_migrate "$ver" postgres "postgresql+psycopg2://$PGUSER@$PGHOST:$PGPORT/$db"

    local -a tabs=(-t public.alembic_version)
    [[ $(psql -X -At -d "$db" -c "SELECT to_regclass('public.alembic_version_fab') IS NOT NULL") == t ]] \
        && tabs+=(-t public.alembic_version_fab)
    {
        echo "-- Airflow $ver metadata schema, PostgreSQL. Generated by tests/airflow/make-fixtures.sh; do not edit."
        pg_dump --schema-only --no-owner --no-privileges --no-comments --no-tablespaces -d "$db"
        pg_dump --data-only --inserts --no-owner --no-privileges --no-comments "${tabs[@]}" -d "$db"
    } | clean_pg >"$out/postgres.sql"

    # Refuse anything psql-specific that survived (lines starting with '\').
    if grep -nE '^\\' "$out/postgres.sql" >&2; then die "[$ver] psql meta-command left in postgres.sql"; fi

    local src dst
    src=$(sig_pg "$db")
    pg_recreate "$scratch"
    psql -X -q -v ON_ERROR_STOP=1 --single-transaction -d "$scratch" -f "$out/postgres.sql" >/dev/null
    dst=$(sig_pg "$scratch"); check_sig "[$ver] postgres via psql" "$src" "$dst"
    pg_recreate "$scratch"
    "$py" "$HERE/load_script.py" postgres "dbname=$scratch host=$PGHOST port=$PGPORT user=$PGUSER" "$out/postgres.sql"
    dst=$(sig_pg "$scratch"); check_sig "[$ver] postgres via one-shot simple query" "$src" "$dst"
    pg_drop "$scratch"
    [[ -n "${KEEP_DBS:-}" ]] || pg_drop "$db"
}

# --------------------------------------------------------------------------
# MariaDB / MySQL
# --------------------------------------------------------------------------
# clean_mysql (dumplib.sh) drops client-only lines and sorts KEY lines.
do_mysql() {
    local ver=$1 out=$2 py="$WORK/venv-$1/bin/python"
    local db scratch driver
    db=$(dbname "$ver"); scratch="${db}_load"
    # 2.x works with PyMySQL; 3.x insists on mysqlclient (MySQLdb).
    if [[ $(major "$ver") -ge 3 ]]; then driver=mysqldb; else driver=pymysql; fi
    my_recreate "$db"
    airflow_migrate "$ver" mysql "mysql+$driver://$MYUSER@$MYHOST:$MYPORT/$db"

    local -a tabs=(alembic_version)
    [[ -n $(mysql_cli -N -B -e "SELECT 1 FROM information_schema.tables WHERE table_schema='$db' AND table_name='alembic_version_fab'") ]] \
        && tabs+=(alembic_version_fab)
    local -a common=(-h "$MYHOST" -P "$MYPORT" -u "$MYUSER" --skip-comments --skip-dump-date --no-tablespaces)
    {
        echo "-- Airflow $ver metadata schema, MariaDB/MySQL. Generated by tests/airflow/make-fixtures.sh; do not edit."
        # The header/footer /*!...*/ SETs are kept on purpose: they disable
        # FOREIGN_KEY_CHECKS while tables are created in alphabetical order.
        "$MYSQLDUMP" "${common[@]}" --no-data --skip-add-drop-table --skip-triggers "$db"
        "$MYSQLDUMP" "${common[@]}" --no-create-info --skip-extended-insert --compact --skip-triggers \
            --order-by-primary "$db" "${tabs[@]}"
    } | clean_mysql >"$out/mysql.sql"

    if grep -nE '^(DELIMITER|CREATE DATABASE|USE )' "$out/mysql.sql" >&2; then
        die "[$ver] unexpected DELIMITER/CREATE DATABASE/USE in mysql.sql"
    fi

    local src dst
    src=$(sig_mysql "$db")
    my_recreate "$scratch"
    mysql_cli "$scratch" <"$out/mysql.sql"
    dst=$(sig_mysql "$scratch"); check_sig "[$ver] mysql via $(basename "$MYSQL_CLI") CLI" "${src//$db/X}" "${dst//$scratch/X}"
    my_recreate "$scratch"
    "$py" "$HERE/load_script.py" mysql "$MYHOST:$MYPORT:$MYUSER:$scratch" "$out/mysql.sql"
    dst=$(sig_mysql "$scratch"); check_sig "[$ver] mysql via multi-statement query" "${src//$db/X}" "${dst//$scratch/X}"
    my_drop "$scratch"
    [[ -n "${KEEP_DBS:-}" ]] || my_drop "$db"
}

# --------------------------------------------------------------------------
main() {
    mkdir -p "$WORK/logs" "$OUT_ROOT"
    ensure_system_deps
    local ver out
    for ver in "${VERSIONS[@]}"; do
        out="$OUT_ROOT/$ver"
        mkdir -p "$out"
        ensure_venv "$ver"
        "$WORK/venv-$ver/bin/pip" freeze | grep -iE '^(apache-airflow|flask-appbuilder|sqlalchemy|werkzeug)' >"$out/versions.txt"
        do_sqlite "$ver" "$out"
        do_postgres "$ver" "$out"
        do_mysql "$ver" "$out"
        log "[$ver] done: $(grep -h "INSERT INTO" "$out/sqlite.sql" | tr '\n' ' ')"
    done
}

main
