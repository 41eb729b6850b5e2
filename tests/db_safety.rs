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

/// User-defined SQL that would act outside the read-only transaction is
/// refused when the config is read (exit 64, the query named), through the
/// binary: the SQLite `COMMIT; … VACUUM INTO` copy of the whole database,
/// a session advisory lock, backend signalling, a hot-loop interval. The
/// copy is never written.
#[tokio::test]
async fn hostile_custom_sql_is_refused_before_it_runs() {
    let db = TestDb::with_schema(Dialect::Sqlite, VERSION).await;
    let dir = std::env::temp_dir().join(format!("ws-hostile-sql-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("stolen.db");
    let cases = [
        (
            format!(
                "COMMIT; PRAGMA query_only = 0; VACUUM INTO '{}'; BEGIN; SELECT 1 AS v",
                copy.display()
            ),
            "1m",
            "more than one statement",
        ),
        (
            "SELECT 1 AS v FROM (SELECT pg_advisory_lock(1)) t".to_owned(),
            "1m",
            "pg_advisory_lock",
        ),
        (
            "SELECT COUNT(pg_terminate_backend(pid)) AS v FROM pg_stat_activity".to_owned(),
            "1m",
            "pg_terminate_backend",
        ),
        ("SELECT GET_LOCK('w', 0) AS v".to_owned(), "1m", "get_lock"),
        ("SELECT 1 AS v".to_owned(), "0s", "at least 1s"),
    ];
    for (i, (sql, interval, says)) in cases.iter().enumerate() {
        let cfg = dir.join(format!("{i}.toml"));
        std::fs::write(
            &cfg,
            format!(
                "[[targets]]\nurl = \"{}\"\n[[queries]]\nname = \"hostile\"\ninterval = \"{interval}\"\n\
                 sql = \"\"\"{sql}\"\"\"\n[[queries.metrics]]\nname = \"ws_hostile\"\nvalues = [\"v\"]\n",
                db.url
            ),
        )
        .unwrap();
        for args in [&["config", "validate"][..], &["check"][..]] {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
                .args(args)
                .arg("--config")
                .arg(&cfg)
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(64), "{args:?} {sql}: {err}");
            assert!(
                err.contains("queries[0]") && err.contains(says),
                "{sql}: {err}"
            );
        }
    }
    assert!(!copy.exists(), "the database was copied");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A user-defined query runs on a connection closed after it: nothing it
/// leaves in its session (here visible as the backend id) is there on the
/// next run. Built-in diagnostics keep their pooled connections.
#[tokio::test]
async fn custom_queries_never_share_a_session() {
    for (dialect, backend) in [
        (Dialect::Postgres, "SELECT pg_backend_pid() AS v"),
        (Dialect::MySql, "SELECT CONNECTION_ID() AS v"),
    ] {
        let db = TestDb::with_schema(dialect, VERSION).await;
        // One connection: a pooled query could only ever get that one.
        let one = DatabaseSettings {
            max_connections: 1,
            ..fast_settings()
        };
        let handle = db.windsock(&one);
        let t = Duration::from_secs(5);
        let pid = |rows: windsock::db::Rows| rows.rows[0][0].as_f64().unwrap() as i64;
        let a = pid(handle.query_isolated(backend, t).await.unwrap());
        let b = pid(handle.query_isolated(backend, t).await.unwrap());
        assert_ne!(
            a, b,
            "{dialect}: the second run reused the first one's session"
        );
        let c = pid(handle.query(backend, t).await.unwrap());
        let d = pid(handle.query(backend, t).await.unwrap());
        assert_eq!(c, d, "{dialect}: pooled queries keep their connection");
    }
}

/// `Db::query_snapshot`: every statement of the batch sees the database as
/// the first one did, even when a row is committed between them; a write
/// inside the batch still fails.
#[tokio::test]
async fn a_snapshot_batch_sees_one_moment() {
    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let db = TestDb::with_schema(dialect, VERSION).await;
        let handle = db.windsock(&fast_settings());
        let sleep = match dialect {
            Dialect::Postgres => "SELECT pg_sleep(1.5) IS NULL AS slept",
            _ => "SELECT SLEEP(1.5) AS slept",
        };
        let count = "SELECT COUNT(*) AS n FROM slot_pool";
        let writer = async {
            tokio::time::sleep(Duration::from_millis(500)).await;
            db.exec_script(
                "INSERT INTO slot_pool (pool, slots, description, include_deferred) \
                 VALUES ('ws_snapshot', 1, 'x', false)",
            )
            .await;
        };
        let batch = [count, sleep, count];
        let (rows, ()) = tokio::join!(
            handle.query_snapshot(&batch, Duration::from_secs(10)),
            writer
        );
        let rows = rows.unwrap_or_else(|e| panic!("{dialect}: {e}"));
        let n = |i: usize| rows[i].rows[0][0].as_f64().unwrap();
        assert_eq!(
            n(0),
            n(2),
            "{dialect}: the insert between the statements is not seen"
        );
        let after = handle.query(count, Duration::from_secs(5)).await.unwrap();
        assert_eq!(
            after.rows[0][0].as_f64().unwrap(),
            n(0) + 1.0,
            "{dialect}: it was committed"
        );
        let write = "DELETE FROM slot_pool WHERE pool = 'ws_snapshot'";
        let err = handle
            .query_snapshot(&[count, write], Duration::from_secs(5))
            .await
            .expect_err(&format!(
                "{dialect}: a write went through the snapshot batch"
            ));
        assert!(matches!(err, DbError::Query(_)), "{dialect}: {err}");
        handle.close().await;
    }
}
