# shellcheck shell=bash
# dumplib.sh: database helpers shared by make-fixtures.sh (schema fixtures)
# and make-data-fixture.sh (data fixtures). Sourced, not run.
#
# Environment (defaults):
#   PGHOST PGPORT PGUSER   127.0.0.1 5432 postgres (trust auth)
#   MYHOST MYPORT MYUSER   127.0.0.1 3306 root (no password)
#   PYTHON                 python3 (runs the MySQL KEY sorter)

export PGHOST=${PGHOST:-127.0.0.1} PGPORT=${PGPORT:-5432} PGUSER=${PGUSER:-postgres}
MYHOST=${MYHOST:-127.0.0.1} MYPORT=${MYPORT:-3306} MYUSER=${MYUSER:-root}
MYSQL_CLI=$(command -v mariadb || command -v mysql || true)
# shellcheck disable=SC2034  # used by the scripts that source this file
MYSQLDUMP=$(command -v mariadb-dump || command -v mysqldump || true)
PYTHON=${PYTHON:-python3}

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
mysql_cli() { "$MYSQL_CLI" -h "$MYHOST" -P "$MYPORT" -u "$MYUSER" "$@"; }

pg_recreate() {
    psql_admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)" -c "CREATE DATABASE $1 ENCODING 'UTF8' TEMPLATE template0"
}
pg_drop() { psql_admin -c "DROP DATABASE IF EXISTS $1 WITH (FORCE)"; }
my_recreate() {
    mysql_cli -e "DROP DATABASE IF EXISTS $1; CREATE DATABASE $1 CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
}
my_drop() { mysql_cli -e "DROP DATABASE IF EXISTS $1"; }

# --------------------------------------------------------------------------
# PostgreSQL: make pg_dump output executable by a plain client and deterministic:
#  * \restrict / \unrestrict are psql meta-commands (random key per dump);
#  * set_config('search_path', '', false) would leave the session with an
#    empty search_path (everything in the dump is schema-qualified anyway);
#  * "Dumped from/by" comments carry server/client versions;
#  * collapse runs of blank lines.
# (Data rows must come from pg_dump --inserts: COPY ... FROM stdin is a psql
# protocol feature that a one-shot simple query cannot carry.)
# --------------------------------------------------------------------------
clean_pg() {
    grep -vE '^\\(restrict|unrestrict)\b' \
        | grep -vF "SELECT pg_catalog.set_config('search_path', '', false);" \
        | grep -vE '^-- Dumped (from|by) ' \
        | cat -s
}

# --------------------------------------------------------------------------
# MariaDB / MySQL:
# * "/*M!999999\- enable the sandbox mode */" is a mariadb-client command;
# * AUTO_INCREMENT=N table options (on the ") ENGINE=" line closing a CREATE
#   TABLE) depend on rows inserted by migrate (default_pool, log_template, ...);
#   InnoDB recomputes the counter from the loaded rows anyway;
# * secondary KEY lines come out in SQLAlchemy's (run-dependent) index
#   creation order; each run of KEY lines is sorted (UNIQUE ones first, as
#   MariaDB prints them), with the commas fixed up.
# mariadb-dump writes each row as one line (newlines inside values are
# escaped), so these line filters never touch data.
# --------------------------------------------------------------------------
clean_mysql() {
    grep -vF '/*M!999999\- enable the sandbox mode */' \
        | sed -E '/^\) ENGINE=/ s/ AUTO_INCREMENT=[0-9]+//' \
        | "$PYTHON" -c "$SORT_MYSQL_KEYS" \
        | cat -s
}
SORT_MYSQL_KEYS='
import re, sys
key = re.compile(r"^  (UNIQUE |FULLTEXT |SPATIAL )?KEY ")
out, run = [], []
def flush():
    if run:
        tail_comma = run[-1].endswith(",")
        items = sorted((l.rstrip(",") for l in run), key=lambda l: (not l.startswith("  UNIQUE"), l))
        out.extend(l + ("," if i < len(items) - 1 or tail_comma else "") for i, l in enumerate(items))
        run.clear()
for line in sys.stdin.read().split("\n"):
    if key.match(line):
        run.append(line)
    else:
        flush()
        out.append(line)
flush()
sys.stdout.write("\n".join(out))
'
