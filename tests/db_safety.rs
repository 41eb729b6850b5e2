//! The diagnostics session is really read-only and really bounded in time,
//! on PostgreSQL, MariaDB and SQLite.

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, fast_settings};
use windsock::config::DatabaseSettings;
use windsock::db::{DbError, Dialect};

const VERSION: &str = "3.1.8";

#[tokio::test]
async fn writes_through_the_diagnostics_session_fail() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, VERSION).await;
        let handle = db.windsock(&fast_settings());
        let writes = [
            "INSERT INTO slot_pool (pool, slots, description, include_deferred) VALUES ('ws_write_test', 1, 'x', false)",
            "UPDATE alembic_version SET version_num = 'tampered'",
            "DELETE FROM alembic_version",
            "CREATE TABLE ws_should_not_exist (id INTEGER)",
        ];
        for sql in writes {
            let err = handle
                .query(sql, Duration::from_secs(5))
                .await
                .expect_err(&format!("{dialect}: a write went through: {sql}"));
            assert!(matches!(err, DbError::Query(_)), "{dialect}: {sql}: {err}");
        }
        // Nothing changed.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM slot_pool WHERE pool = 'ws_write_test'")
                .await,
            0
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM alembic_version WHERE version_num = '509b94a1042d'")
                .await,
            1,
            "{dialect}"
        );
        // The session still works after the refused writes.
        handle
            .query("SELECT 1", Duration::from_secs(5))
            .await
            .unwrap();
        handle.close().await;
    }
}

/// A statement that runs past the timeout is cancelled, reported as a
/// timeout, and its connection does not stay checked out: a pool of one
/// serves the next query at once.
#[tokio::test]
async fn slow_statement_is_cancelled_and_frees_the_pool() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, VERSION).await;
        let settings = DatabaseSettings {
            max_connections: 1,
            statement_timeout: Duration::from_secs(1),
            lock_timeout: Duration::from_millis(500),
            acquire_timeout: Duration::from_secs(2),
            ..DatabaseSettings::default()
        };
        let handle = db.windsock(&settings);
        let slow = match dialect {
            Dialect::Postgres => "SELECT pg_sleep(30)",
            // MariaDB's max_statement_time interrupts SLEEP with an error.
            Dialect::MySql => "SELECT SLEEP(30)",
            Dialect::Sqlite => {
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000000) \
                 SELECT COUNT(*) FROM c"
            }
        };
        let started = Instant::now();
        let err = handle
            .query(slow, Duration::from_secs(30))
            .await
            .expect_err(&format!("{dialect}: slow query was not cancelled"));
        let took = started.elapsed();
        assert!(matches!(err, DbError::Timeout { .. }), "{dialect}: {err}");
        assert!(
            took < Duration::from_secs(5),
            "{dialect}: cancelled after {took:?}"
        );

        let started = Instant::now();
        let rows = handle
            .query("SELECT 1 AS one", Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(rows.rows.len(), 1);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{dialect}: pool was held for {:?}",
            started.elapsed()
        );
        handle.close().await;
    }
}

/// The per-query deadline below the session's statement_timeout applies.
#[tokio::test]
async fn per_query_deadline_is_enforced() {
    let db = TestDb::with_schema(Dialect::Postgres, VERSION).await;
    let handle = db.windsock(&fast_settings());
    let started = Instant::now();
    let err = handle
        .query("SELECT pg_sleep(20)", Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, DbError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    handle.close().await;
}

/// A database that is down gives a connect error naming the redacted URL.
#[tokio::test]
async fn unreachable_database_is_a_connect_error_without_password() {
    let url = windsock::db::url::DbUrl::parse(
        "postgresql+psycopg2://airflow:pw-must-not-leak@127.0.0.1:1/airflow",
    )
    .unwrap();
    let handle = windsock::db::Db::new(&url, &fast_settings()).unwrap();
    let err = handle
        .query("SELECT 1", Duration::from_secs(2))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), "connect", "{err}");
    let text = format!("{err} {err:?}");
    assert!(!text.contains("pw-must-not-leak"), "{text}");
    assert!(text.contains("airflow:***@127.0.0.1:1"), "{text}");
}
