//! Small SQL helpers that differ by dialect.
//!
//! Timestamps leave the database as UNIX seconds (a float), so that no
//! diagnostic depends on how a driver decodes `TIMESTAMP` columns:
//! PostgreSQL stores `timestamptz`, MySQL `TIMESTAMP(6)` (read in a `+00:00`
//! session), SQLite naive UTC text.

use std::time::Duration;

use crate::db::Dialect;

/// `expr` (a timestamp column) as UNIX seconds.
pub fn epoch(dialect: Dialect, expr: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("EXTRACT(EPOCH FROM {expr})"),
        Dialect::MySql => format!("UNIX_TIMESTAMP({expr})"),
        // julianday() of the Unix epoch is 2440587.5.
        Dialect::Sqlite => format!("((julianday({expr}) - 2440587.5) * 86400.0)"),
    }
}

/// A timestamp `ago` before now (to the millisecond), comparable with
/// Airflow's timestamp columns (so an index on the column can be used).
pub fn ago(dialect: Dialect, ago: Duration) -> String {
    let ms = ago.as_millis();
    let secs = format!("{}.{:03}", ms / 1000, ms % 1000);
    match dialect {
        Dialect::Postgres => format!("(now() - interval '{secs} seconds')"),
        Dialect::MySql => format!("(NOW(6) - INTERVAL {} MICROSECOND)", ms * 1000),
        // Airflow writes 'YYYY-MM-DD HH:MM:SS[.ffffff]'; strftime gives the
        // same shape, so text comparison orders correctly.
        Dialect::Sqlite => format!("strftime('%Y-%m-%d %H:%M:%f', 'now', '-{secs} seconds')"),
    }
}

/// The current time, comparable with Airflow's timestamp columns.
pub fn now(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => "now()",
        Dialect::MySql => "NOW(6)",
        Dialect::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
    }
}

/// A boolean column compared with true, portable across the dialects
/// (PostgreSQL `boolean`, MySQL `tinyint(1)`, SQLite integer).
pub fn is_true(column: &str) -> String {
    format!("{column} = true")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        assert_eq!(epoch(Dialect::Postgres, "j.x"), "EXTRACT(EPOCH FROM j.x)");
        assert!(ago(Dialect::Sqlite, Duration::from_secs(60)).contains("-60.000 seconds"));
        assert_eq!(
            ago(Dialect::MySql, Duration::from_millis(10_500)),
            "(NOW(6) - INTERVAL 10500000 MICROSECOND)"
        );
        assert_eq!(is_true("is_paused"), "is_paused = true");
    }
}
