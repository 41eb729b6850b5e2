"""MariaDB shim for `airflow db migrate`, used only by make-fixtures.sh.

The FAB provider (>= 3.x) declares its ab_* primary keys with
``Sequence(..., cycle=False)``. On MariaDB (which supports sequences, unlike
MySQL) SQLAlchemy 1.4 renders that as ``CREATE SEQUENCE ... NO CYCLE``, which
MariaDB 10.11 rejects (it only accepts ``NOCYCLE``), so Airflow 3.0.x (pinned
to SQLAlchemy 1.4) cannot migrate a MariaDB database at all. This rewrites
the keyword and changes nothing else; the resulting schema matches what the
later releases (SQLAlchemy 2.x) create on MariaDB without help.

It is put on PYTHONPATH for the MariaDB runs only, and is a no-op when the
DDL contains no ``NO CYCLE``.
"""
try:
    from sqlalchemy.dialects.mysql.base import MySQLDDLCompiler

    _orig_identity_options = MySQLDDLCompiler.get_identity_options

    def _mariadb_identity_options(self, identity_options):
        text = _orig_identity_options(self, identity_options)
        if getattr(self.dialect, "is_mariadb", False):
            text = text.replace("NO CYCLE", "NOCYCLE")
        return text

    MySQLDDLCompiler.get_identity_options = _mariadb_identity_options
except Exception:  # pragma: no cover - never break interpreter start-up
    pass
