//! Health of the metadata database itself, per dialect, from the catalogs
//! and statistics views: never a `COUNT(*)` of a big table.
//!
//! - `db_tables`: size of every table and its row estimate. `heap` is
//!   the table's data including values stored out of line (PostgreSQL
//!   `pg_table_size`: TOAST, free-space and visibility maps; InnoDB
//!   `data_length`, which holds off-page BLOBs; SQLite overflow pages);
//!   `index` its indexes (`pg_indexes_size`, InnoDB `index_length`: the
//!   secondary indexes, the primary key being the data itself); PostgreSQL adds dead rows and the last (auto)vacuum and
//!   (auto)analyze. Sources: `pg_stat_user_tables`; MySQL/MariaDB
//!   `information_schema.TABLES`; SQLite `dbstat` (page sizes per table and
//!   index; SQLite keeps no row statistics).
//! - `db_indexes` (PostgreSQL): size and scans of every index, so unused
//!   ones stand out (`pg_stat_user_indexes`; scans count since the last
//!   statistics reset).
//! - `db_activity`: sessions by state, sessions waiting for a lock, and the
//!   start of the oldest open transaction (PostgreSQL `pg_stat_activity`;
//!   MySQL/MariaDB `information_schema.PROCESSLIST` and `INNODB_TRX`).
//!   Without the `pg_read_all_stats` role PostgreSQL hides other users'
//!   sessions' states, so grant it to windsock's user.
//! - `db_growth`: the highest primary key of the tables that have an
//!   increasing integer id: `rate()` of it is the insert rate, read from
//!   the primary key index in microseconds.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;
use crate::db::Dialect;

/// `airflow_db_table_*`.
pub(super) fn tables() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "db_tables".into(),
            help: "Size, row estimate and vacuum state of every metadata table".into(),
            source: "pg_stat_user_tables; information_schema.TABLES; SQLite dbstat".into(),
            cost: "catalog read (SQLite: dbstat walks the file's page map)".into(),
            category: Category::Database,
            interval: Duration::from_secs(300),
            timeout: None,
            requires: Vec::new(),
        },
        build_tables,
        vec![
            MetricSpec::gauge(
                "airflow_db_table_bytes",
                "Bytes a metadata table uses on disk, by part (heap, index)",
                "",
            )
            .labels(&["table"])
            .value_columns("part", &["heap", "index"]),
            MetricSpec::gauge(
                "airflow_db_table_rows_estimate",
                "Rows of a metadata table according to the database's statistics (no COUNT(*))",
                "rows",
            )
            .labels(&["table"]),
            MetricSpec::gauge(
                "airflow_db_table_dead_rows",
                "Dead rows waiting for vacuum (PostgreSQL)",
                "dead",
            )
            .labels(&["table"]),
            MetricSpec::gauge(
                "airflow_db_table_last_vacuum_timestamp_seconds",
                "UNIX time of the latest vacuum or autovacuum of a table (PostgreSQL)",
                "vacuumed",
            )
            .labels(&["table"])
            .merge(Aggregate::Max),
            MetricSpec::gauge(
                "airflow_db_table_last_analyze_timestamp_seconds",
                "UNIX time of the latest analyze or autoanalyze of a table (PostgreSQL)",
                "analyzed",
            )
            .labels(&["table"])
            .merge(Aggregate::Max),
        ],
    )
}

fn build_tables(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok(match schema.dialect {
        Dialect::Postgres => format!(
            "SELECT relname AS table, pg_table_size(relid) AS heap, \
                    pg_indexes_size(relid) AS index, \
                    n_live_tup AS rows, n_dead_tup AS dead, \
                    {v} AS vacuumed, {a} AS analyzed \
             FROM pg_stat_user_tables WHERE schemaname = current_schema()",
            v = sql::epoch(Dialect::Postgres, "GREATEST(last_vacuum, last_autovacuum)"),
            a = sql::epoch(
                Dialect::Postgres,
                "GREATEST(last_analyze, last_autoanalyze)"
            ),
        ),
        Dialect::MySql => {
            "SELECT table_name AS `table`, data_length AS heap, index_length AS `index`, \
                  table_rows AS `rows`, NULL AS dead, NULL AS vacuumed, NULL AS analyzed \
             FROM information_schema.TABLES \
             WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'"
                .to_owned()
        }
        Dialect::Sqlite => "SELECT m.tbl_name AS \"table\", \
                  SUM(CASE WHEN m.type = 'table' THEN d.pgsize ELSE 0 END) AS heap, \
                  SUM(CASE WHEN m.type = 'index' THEN d.pgsize ELSE 0 END) AS \"index\", \
                  NULL AS \"rows\", NULL AS dead, NULL AS vacuumed, NULL AS analyzed \
             FROM dbstat d JOIN sqlite_master m ON m.name = d.name \
             GROUP BY m.tbl_name"
            .to_owned(),
    })
}

/// `airflow_db_index_*` (PostgreSQL).
pub(super) fn indexes() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "db_indexes".into(),
            help: "Size and use of every index of the metadata DB (PostgreSQL)".into(),
            source: "pg_stat_user_indexes".into(),
            cost: "catalog read".into(),
            category: Category::Database,
            interval: Duration::from_secs(3600),
            timeout: None,
            requires: Vec::new(),
        },
        build_indexes,
        vec![
            MetricSpec::gauge(
                "airflow_db_index_bytes",
                "Bytes an index uses on disk (PostgreSQL)",
                "bytes",
            )
            .labels(&["table", "index"]),
            MetricSpec::gauge(
                "airflow_db_index_scans",
                "Scans of an index since the statistics were last reset (PostgreSQL); 0 means unused",
                "scans",
            )
            .labels(&["table", "index"]),
        ],
    )
}

fn build_indexes(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    match schema.dialect {
        Dialect::Postgres => Ok("SELECT relname AS table, indexrelname AS index, \
                    pg_relation_size(indexrelid) AS bytes, idx_scan AS scans \
             FROM pg_stat_user_indexes WHERE schemaname = current_schema()"
            .to_owned()),
        other => Err(Skip::Dialect(other)),
    }
}

/// `airflow_db_connections`, `airflow_db_lock_waiters`, `airflow_db_oldest_transaction_age_seconds`.
pub(super) fn activity() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "db_activity".into(),
            help: "Sessions, lock waits and long transactions on the metadata DB".into(),
            source: "pg_stat_activity; information_schema.PROCESSLIST, INNODB_TRX".into(),
            cost: "catalog read".into(),
            category: Category::Database,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: Vec::new(),
        },
        build_activity,
        vec![
            MetricSpec::gauge(
                "airflow_db_connections",
                "Sessions connected to the metadata database, by state (active, idle, idle_in_transaction, other)",
                "",
            )
            .value_columns("state", &["active", "idle", "idle_in_transaction", "other"]),
            MetricSpec::gauge(
                "airflow_db_lock_waiters",
                "Sessions waiting for a lock right now",
                "waiting",
            ),
            MetricSpec::gauge(
                "airflow_db_oldest_transaction_age_seconds",
                "Age of the oldest open transaction (0 when none is open)",
                "oldest",
            )
            .seconds_since(),
        ],
    )
}

fn build_activity(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let count = |cond: &str| format!("COALESCE(SUM(CASE WHEN {cond} THEN 1 ELSE 0 END), 0)");
    match schema.dialect {
        Dialect::Postgres => Ok(format!(
            "SELECT {a} AS active, {i} AS idle, {t} AS idle_in_transaction, \
                    COUNT(*) - {a} - {i} - {t} AS other, \
                    {w} AS waiting, \
                    COALESCE(MIN({x}), EXTRACT(EPOCH FROM now())) AS oldest \
             FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            a = count("state = 'active'"),
            i = count("state = 'idle'"),
            t = count("state LIKE 'idle in transaction%'"),
            w = count("wait_event_type = 'Lock'"),
            x = sql::epoch(Dialect::Postgres, "xact_start"),
        )),
        // INNODB_TRX.trx_started is the server's *system* local time
        // (whatever the session's time_zone), so its age is taken against
        // the system clock; UNIX_TIMESTAMP(trx_started) would be off by the
        // server's UTC offset. A transaction whose session sleeps is idle
        // in transaction.
        Dialect::MySql => Ok(format!(
            "SELECT {a} AS active, {i} - {t} AS idle, {t} AS idle_in_transaction, \
                    COUNT(*) - {a} - {i} AS other, \
                    (SELECT COUNT(*) FROM information_schema.INNODB_TRX \
                      WHERE trx_state = 'LOCK WAIT') AS waiting, \
                    UNIX_TIMESTAMP(NOW(6)) - COALESCE((SELECT MAX(TIMESTAMPDIFF(MICROSECOND, \
                        trx_started, CONVERT_TZ(UTC_TIMESTAMP(6), '+00:00', 'SYSTEM'))) / 1e6 \
                      FROM information_schema.INNODB_TRX WHERE trx_mysql_thread_id IN \
                        (SELECT id FROM information_schema.PROCESSLIST \
                          WHERE db = DATABASE() AND id <> CONNECTION_ID())), 0) AS oldest \
             FROM information_schema.PROCESSLIST \
             WHERE db = DATABASE() AND id <> CONNECTION_ID()",
            a = count("command NOT IN ('Sleep', 'Daemon')"),
            i = count("command = 'Sleep'"),
            t = count(
                "command = 'Sleep' AND id IN \
                 (SELECT trx_mysql_thread_id FROM information_schema.INNODB_TRX)"
            ),
        )),
        Dialect::Sqlite => Err(Skip::Dialect(Dialect::Sqlite)),
    }
}

/// `airflow_db_table_max_id`.
pub(super) fn growth() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "db_growth".into(),
            help: "Highest id of the growing tables; rate() of it is their insert rate".into(),
            source: "MAX(id) of dag_run, log, job, task_fail, callback_request".into(),
            cost: "one primary-key probe per table".into(),
            category: Category::Database,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: Vec::new(),
        },
        build_growth,
        vec![
            MetricSpec::gauge(
                "airflow_db_table_max_id",
                "Highest integer primary key of a growing table (dag_run, log, job, ...); rate() gives rows inserted per second",
                "max_id",
            )
            .labels(&["table"])
            .merge(Aggregate::Max),
        ],
    )
}

/// Tables with an increasing integer `id` primary key worth watching.
const GROWING: [&str; 5] = ["dag_run", "log", "job", "task_fail", "callback_request"];

fn build_growth(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let parts: Vec<String> = GROWING
        .iter()
        .filter(|t| schema.has_column(t, "id"))
        .map(|t| format!("SELECT '{t}' AS tbl, (SELECT MAX(id) FROM {t}) AS max_id"))
        .collect();
    if parts.is_empty() {
        return Err(Skip::Version("no growing table with an integer id"));
    }
    // `table` as an output alias needs quoting per dialect; use a neutral
    // alias in the union and rename outside.
    Ok(format!(
        "SELECT tbl AS {table}, max_id FROM ({}) g",
        parts.join(" UNION ALL "),
        table = match schema.dialect {
            Dialect::MySql => "`table`",
            _ => "\"table\"",
        }
    ))
}
