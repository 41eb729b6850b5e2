"""Load a real Airflow data fixture (SQLite dump) into a fresh PostgreSQL database.

    python3 tests/export_job/load_fixture.py 3.1.8 ws_t_export_manual   # create + load
    python3 tests/export_job/load_fixture.py --drop ws_t_export_manual
    python3 tests/export_job/load_fixture.py --mariadb 3.1.8 ws_t_export_manual

The schema is the real PostgreSQL schema of the same Airflow version
(tests/fixtures/schema/<version>/postgres.sql); the rows are those real schedulers wrote
on SQLite (tests/fixtures/data/<version>/sqlite.sql). Every row of every SQLite table is
copied, converted by the PostgreSQL column type: 0/1 to boolean, blobs to bytea, JSON
text to json/jsonb, naive UTC timestamp text to timestamptz. load_mariadb() does the same
on MariaDB/MySQL with the real mysql.sql schema. Only the standard library and the psql /
mariadb clients are used. Servers: WINDSOCK_TEST_PG_URL and WINDSOCK_TEST_MYSQL_URL, as
for the Rust tests (defaults: postgres@127.0.0.1:5432 and root@127.0.0.1:3306).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path
from urllib.parse import unquote, urlsplit

REPO = Path(__file__).resolve().parents[2]
DB_NAME_RE = re.compile(r"^ws_t_export_[a-z0-9_]+$")


def pg_settings() -> dict[str, str]:
    """Server settings: WINDSOCK_TEST_PG_URL (as for the Rust tests), else PG*, else
    postgres@127.0.0.1:5432."""
    url = os.environ.get("WINDSOCK_TEST_PG_URL")
    if url:
        u = urlsplit(url)
        return {"host": u.hostname or "127.0.0.1", "port": str(u.port or 5432),
                "user": unquote(u.username or "postgres"), "password": unquote(u.password or "")}
    return {"host": os.environ.get("PGHOST", "127.0.0.1"),
            "port": os.environ.get("PGPORT", "5432"),
            "user": os.environ.get("PGUSER", "postgres"),
            "password": os.environ.get("PGPASSWORD", "")}


def pg_env() -> dict[str, str]:
    s = pg_settings()
    env = dict(os.environ)
    env.update(PGHOST=s["host"], PGPORT=s["port"], PGUSER=s["user"])
    if s["password"]:
        env["PGPASSWORD"] = s["password"]
    env["PGTZ"] = "UTC"
    env["PGOPTIONS"] = "-c client_min_messages=warning"
    return env


def psql(database: str, sql: str | None = None, *, stdin: str | None = None,
         single_transaction: bool = False) -> str:
    """Run SQL (-c) or a script (stdin) with ON_ERROR_STOP; return unaligned output."""
    cmd = ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-At", "-F", "\t", "-d", database]
    if single_transaction:
        cmd.append("--single-transaction")
    if sql is not None:
        cmd += ["-c", sql]
    else:
        cmd += ["-f", "-"]
    proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, env=pg_env())
    if proc.returncode != 0:
        raise RuntimeError(f"psql failed ({proc.returncode}): {proc.stderr.strip()[:2000]}")
    return proc.stdout


def check_name(database: str) -> str:
    if not DB_NAME_RE.match(database):
        raise ValueError(f"refusing database name {database!r} (must match {DB_NAME_RE.pattern})")
    return database


def drop_database(database: str) -> None:
    check_name(database)
    psql("postgres", f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


def copy_text(value) -> str:
    """Escape one value for COPY ... FROM STDIN (text format)."""
    if value is None:
        return r"\N"
    return (str(value).replace("\\", "\\\\").replace("\t", "\\t")
            .replace("\n", "\\n").replace("\r", "\\r"))


def convert(value, pg_type: str):
    """An SQLite value as PostgreSQL input text for a column of type pg_type."""
    if value is None:
        return None
    if pg_type == "boolean":
        if isinstance(value, str):
            return {"0": "f", "1": "t"}.get(value, value)
        return "t" if value else "f"
    if pg_type == "bytea":
        data = value if isinstance(value, bytes) else str(value).encode("utf-8")
        return "\\x" + data.hex()
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    if pg_type == "timestamp with time zone":
        text = str(value)
        # Airflow's UtcDateTime stores naive UTC text on SQLite.
        if not re.search(r"([+-]\d{2}(:?\d{2})?|Z)$", text):
            text += "+00:00"
        return text
    if pg_type in ("integer", "bigint", "smallint") and isinstance(value, float):
        return str(int(value))
    return value


def load(version: str, database: str) -> dict[str, int]:
    """Create `database`, load schema and data of `version`; return rows per table."""
    check_name(database)
    schema = REPO / "tests/fixtures/schema" / version / "postgres.sql"
    data = REPO / "tests/fixtures/data" / version / "sqlite.sql"
    for path in (schema, data):
        if not path.is_file():
            raise FileNotFoundError(path)

    psql("postgres", f'CREATE DATABASE "{database}"')
    psql(database, stdin=schema.read_text(), single_transaction=True)

    columns: dict[str, dict[str, str]] = {}
    for line in psql(database, "SELECT table_name, column_name, data_type "
                               "FROM information_schema.columns WHERE table_schema = 'public' "
                               "ORDER BY table_name, ordinal_position").splitlines():
        table, column, data_type = line.split("\t")
        columns.setdefault(table, {})[column] = data_type

    lite = sqlite3.connect(":memory:")
    lite.executescript(data.read_text())
    tables = [r[0] for r in lite.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "ORDER BY name")]

    # One transaction; foreign keys are not checked while loading (the dump is consistent,
    # but COPY goes table by table).
    script = ["SET session_replication_role = replica;"]
    counts: dict[str, int] = {}
    for table in tables:
        cursor = lite.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        if not rows:
            continue
        if table not in columns:
            raise RuntimeError(f"{version}: table {table} has rows on SQLite but is not "
                               "in the PostgreSQL schema")
        unknown = [n for n in names if n not in columns[table]]
        if unknown:
            raise RuntimeError(f"{version}: {table} columns {unknown} not in PostgreSQL")
        types = [columns[table][n] for n in names]
        # The schema fixture already holds the alembic_version rows.
        script.append(f'DELETE FROM public."{table}";')
        script.append(f'COPY public."{table}" ({", ".join(chr(34) + n + chr(34) for n in names)})'
                      " FROM STDIN;")
        for row in rows:
            script.append("\t".join(copy_text(convert(v, t)) for v, t in zip(row, types)))
        script.append("\\.")
        counts[table] = len(rows)

    # Serial sequences continue after the loaded ids.
    for line in psql(database, "SELECT table_name, column_name FROM information_schema.columns "
                               "WHERE table_schema = 'public' "
                               "AND column_default LIKE 'nextval(%'").splitlines():
        table, column = line.split("\t")
        script.append(
            f"SELECT setval(pg_get_serial_sequence('public.\"{table}\"', '{column}'), "
            f'COALESCE((SELECT max("{column}") FROM public."{table}"), 0) + 1, false);')
    psql(database, stdin="\n".join(script) + "\n", single_transaction=True)

    # Check: every table has exactly the SQLite row count.
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM public.\"{t}\"" for t in counts)
    loaded = {t: int(n) for t, n in (line.split("\t")
                                     for line in psql(database, query).splitlines())}
    if loaded != counts:
        raise RuntimeError(f"row counts differ after loading: sqlite {counts}, postgres {loaded}")
    return counts


# ----------------------------------------------------------------------------------------
# MariaDB/MySQL (the `mariadb` client; WINDSOCK_TEST_MYSQL_URL as for the Rust tests)


def mysql_settings() -> dict[str, str]:
    url = urlsplit(os.environ.get("WINDSOCK_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/mysql"))
    return {"host": url.hostname or "127.0.0.1", "port": str(url.port or 3306),
            "user": unquote(url.username or "root"), "password": unquote(url.password or "")}


def mariadb(database: str | None, script: str) -> str:
    s = mysql_settings()
    cmd = ["mariadb", "-h", s["host"], "-P", s["port"], "-u", s["user"], "-N", "-B"]
    env = dict(os.environ)
    if s["password"]:
        env["MYSQL_PWD"] = s["password"]
    if database:
        cmd.append(database)
    proc = subprocess.run(cmd, input=script, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"mariadb failed ({proc.returncode}): {proc.stderr.strip()[:2000]}")
    return proc.stdout


def drop_mariadb(database: str) -> None:
    check_name(database)
    mariadb(None, f"DROP DATABASE IF EXISTS `{database}`")


def sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bytes):
        return f"X'{value.hex()}'"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("\\", "\\\\").replace("'", "''") + "'"


def load_mariadb(version: str, database: str) -> dict[str, int]:
    """Like load(), on MariaDB/MySQL: the real mysql.sql schema, then every row."""
    check_name(database)
    schema = REPO / "tests/fixtures/schema" / version / "mysql.sql"
    data = REPO / "tests/fixtures/data" / version / "sqlite.sql"
    mariadb(None, f"CREATE DATABASE `{database}`")
    mariadb(database, schema.read_text())
    columns: dict[str, set[str]] = {}
    for line in mariadb(database, "SELECT table_name, column_name FROM information_schema.columns "
                                  "WHERE table_schema = DATABASE()").splitlines():
        table, column = line.split("\t")
        columns.setdefault(table, set()).add(column)

    lite = sqlite3.connect(":memory:")
    lite.executescript(data.read_text())
    # Airflow stores UTC; with the session in UTC, TIMESTAMP columns keep the text as is.
    script = ["SET FOREIGN_KEY_CHECKS = 0;", "SET time_zone = '+00:00';"]
    counts: dict[str, int] = {}
    for (table,) in lite.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall():
        cursor = lite.execute(f'SELECT * FROM "{table}"')
        names = [d[0] for d in cursor.description]
        rows = cursor.fetchall()
        if not rows:
            continue
        unknown = [n for n in names if n not in columns.get(table, ())]
        if unknown:
            raise RuntimeError(f"{version}: {table} columns {unknown} not in the MySQL schema")
        script.append(f"DELETE FROM `{table}`;")
        cols = ", ".join(f"`{n}`" for n in names)
        for row in rows:
            script.append(f"INSERT INTO `{table}` ({cols}) VALUES "
                          f"({', '.join(sql_literal(v) for v in row)});")
        counts[table] = len(rows)
    mariadb(database, "\n".join(script) + "\n")
    query = " UNION ALL ".join(f"SELECT '{t}', COUNT(*) FROM `{t}`" for t in counts)
    loaded = {t: int(n) for t, n in (line.split("\t")
                                     for line in mariadb(database, query).splitlines())}
    if loaded != counts:
        raise RuntimeError(f"row counts differ after loading: sqlite {counts}, mariadb {loaded}")
    return counts


def main(argv: list[str]) -> int:
    args = argv[1:]
    maria = bool(args) and args[0] == "--mariadb"
    args = args[1:] if maria else args
    if len(args) == 2 and args[0] == "--drop":
        (drop_mariadb if maria else drop_database)(args[1])
        return 0
    if len(args) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    counts = (load_mariadb if maria else load)(args[0], args[1])
    print(f"loaded {sum(counts.values())} rows into {len(counts)} tables of {args[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
