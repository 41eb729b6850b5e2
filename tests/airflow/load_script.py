#!/usr/bin/env python3
"""Execute a whole SQL fixture file as ONE multi-statement script.

Usage: load_script.py sqlite  /path/to/db.sqlite  fixture.sql
       load_script.py postgres "dbname=x host=127.0.0.1 user=postgres" fixture.sql
       load_script.py mysql   host:port:user:database  fixture.sql

This mimics how the Rust tests load the fixtures (sqlx `raw_sql` / simple
query protocol: the file is sent as-is, no client-side statement splitting,
no psql meta-commands), so it catches things a CLI would silently accept.
It runs inside an Airflow venv created by make-fixtures.sh, which has the
database drivers installed.
"""
import sys


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    dialect, target, path = sys.argv[1:]
    with open(path, encoding="utf-8") as fh:
        script = fh.read()

    if dialect == "sqlite":
        import sqlite3

        conn = sqlite3.connect(target)
        conn.executescript(script)
        conn.close()
    elif dialect == "postgres":
        import psycopg2

        conn = psycopg2.connect(target)
        conn.autocommit = True
        with conn.cursor() as cur:
            # No parameters -> psycopg2 sends the text unmodified in one
            # simple-protocol Query message.
            cur.execute(script)
        conn.close()
    elif dialect == "mysql":
        host, port, user, database = target.split(":")
        try:  # 2.x venvs have PyMySQL, 3.x venvs have mysqlclient
            import pymysql
            from pymysql.constants import CLIENT

            conn = pymysql.connect(host=host, port=int(port), user=user,
                                   database=database, autocommit=True,
                                   client_flag=CLIENT.MULTI_STATEMENTS)
        except ImportError:
            import MySQLdb
            from MySQLdb.constants import CLIENT

            conn = MySQLdb.connect(host=host, port=int(port), user=user,
                                   database=database, autocommit=True,
                                   client_flag=CLIENT.MULTI_STATEMENTS)
        cur = conn.cursor()
        cur.execute(script)  # args=None -> no %-formatting of the text
        # Drain every result set; an error in statement N surfaces here.
        while cur.nextset():
            pass
        cur.close()
        conn.close()
    else:
        print(f"unknown dialect {dialect!r}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
