//! Version detection and the built-in diagnostics on every committed real
//! Airflow schema, on PostgreSQL, MariaDB and SQLite.

mod common;

use std::time::Duration;

use common::{TestDb, fast_settings, schema_versions};
use windsock::airflow::{self, Capability as C};
use windsock::db::Dialect;
use windsock::diagnostics;

/// What detection must find for each committed version.
fn expected(version: &str) -> (&'static str, u8, Vec<C>, Vec<C>) {
    let v2_common = vec![
        C::DagRunExecutionDate,
        C::TaskFail,
        C::SlaMiss,
        C::DagIsActive,
        C::TaskInstanceJobId,
        C::FabTables,
        C::SerializedDagCompressed,
    ];
    let v2_absent = vec![
        C::DagRunLogicalDate,
        C::DagVersion,
        C::DagIsStale,
        C::TaskInstanceHeartbeat,
        C::DeadlineAlerts,
    ];
    let v3_common = vec![
        C::DagRunLogicalDate,
        C::TaskInstanceHistory,
        C::DagVersion,
        C::DagIsStale,
        C::TaskInstanceHeartbeat,
        C::FabTables,
        C::SerializedDagCompressed,
    ];
    let v3_absent = vec![
        C::DagRunExecutionDate,
        C::TaskFail,
        C::SlaMiss,
        C::DagIsActive,
        C::TaskInstanceJobId,
    ];
    let with = |mut v: Vec<C>, c: C| {
        v.push(c);
        v
    };
    match version {
        "2.7.3" => (
            "2.7.0-2.7.3",
            2,
            v2_common,
            with(v2_absent, C::TaskInstanceHistory),
        ),
        "2.9.3" => (
            "2.9.2-2.9.3",
            2,
            v2_common,
            with(v2_absent, C::TaskInstanceHistory),
        ),
        "2.10.5" => (
            "2.10.3-2.11.x",
            2,
            with(v2_common, C::TaskInstanceHistory),
            v2_absent,
        ),
        // 3.0 already created a deadline table, of another shape and unused.
        "3.0.6" => (
            "3.0.3-3.0.6",
            3,
            v3_common,
            with(v3_absent, C::DeadlineAlerts),
        ),
        "3.1.8" => ("3.1.8", 3, with(v3_common, C::DeadlineAlerts), v3_absent),
        v if v.starts_with("3.2") => ("3.2.x", 3, with(v3_common, C::DeadlineAlerts), v3_absent),
        v if v.starts_with("3.3") => ("3.3.x", 3, with(v3_common, C::DeadlineAlerts), v3_absent),
        other => panic!("no expectation for committed fixture {other}: add one"),
    }
}

async fn check_version(dialect: Dialect, version: &str) {
    let db = TestDb::with_schema(dialect, version).await;
    let handle = db.windsock(&fast_settings());
    let schema = airflow::detect(&handle, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{version}/{dialect}: {e}"));
    let (label, major, present, absent) = expected(version);
    assert_eq!(schema.version_label(), label, "{version}/{dialect}");
    assert_eq!(schema.major, major, "{version}/{dialect}");
    assert_eq!(schema.dialect, dialect);
    for c in present {
        assert!(schema.has(c), "{version}/{dialect}: expected {c}");
    }
    for c in absent {
        assert!(!schema.has(c), "{version}/{dialect}: did not expect {c}");
    }
    if major == 3 {
        assert!(
            schema.fab_revision.is_some(),
            "{version}/{dialect}: alembic_version_fab not read"
        );
    }

    // Every built-in diagnostic runs on the empty schema, or is skipped for
    // a reason the schema explains.
    for d in diagnostics::builtin(&std::sync::Arc::new(diagnostics::Context::default())) {
        match d.applies(&schema) {
            Ok(()) => {
                let out = d
                    .run(&handle, &schema, Duration::from_secs(10))
                    .await
                    .unwrap_or_else(|e| panic!("{version}/{dialect}/{}: {e}", d.meta().name));
                assert_eq!(out.families.len(), d.metrics().len());
            }
            Err(diagnostics::Skip::Missing(cap)) => {
                assert!(
                    !schema.has(cap),
                    "{} skipped though {cap} exists",
                    d.meta().name
                )
            }
            Err(diagnostics::Skip::Dialect(on)) => {
                // The catalogs these read exist on PostgreSQL (and MySQL) only.
                let expected: &[(&str, Dialect)] = &[
                    ("db_indexes", Dialect::MySql),
                    ("db_indexes", Dialect::Sqlite),
                    ("db_activity", Dialect::Sqlite),
                ];
                assert!(
                    expected.contains(&(d.meta().name.as_ref(), on)),
                    "{version}/{dialect}: {} unexpectedly skipped on {on}",
                    d.meta().name
                );
            }
            Err(other) => panic!("{version}/{dialect}/{}: {other}", d.meta().name),
        }
    }
    handle.close().await;
}

async fn check_all(dialect: Dialect) {
    let versions = schema_versions();
    assert!(versions.len() >= 5, "fixtures missing: {versions:?}");
    for v in &versions {
        let file = common::fixtures()
            .join("schema")
            .join(v)
            .join(format!("{}.sql", dialect.as_str()));
        assert!(file.exists(), "missing fixture {}", file.display());
        check_version(dialect, v).await;
    }
}

#[tokio::test]
async fn detection_and_diagnostics_on_every_version_sqlite() {
    check_all(Dialect::Sqlite).await;
}

#[tokio::test]
async fn detection_and_diagnostics_on_every_version_postgres() {
    check_all(Dialect::Postgres).await;
}

#[tokio::test]
async fn detection_and_diagnostics_on_every_version_mysql() {
    check_all(Dialect::MySql).await;
}

/// An alembic revision windsock has never seen: a warning, catalog probing,
/// no crash.
#[tokio::test]
async fn unknown_revision_falls_back_to_the_catalog() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, "3.1.8").await;
        db.exec_script("UPDATE alembic_version SET version_num = 'ffffffffffff'")
            .await;
        let handle = db.windsock(&fast_settings());
        let schema = airflow::detect(&handle, Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(schema.revision.as_deref(), Some("ffffffffffff"));
        assert!(schema.release.is_none());
        assert_eq!(schema.version_label(), "unknown");
        assert_eq!(schema.major, 3, "{dialect}: inferred from dag_version");
        assert!(schema.has(C::DagRunLogicalDate));
        handle.close().await;
    }
}

/// A database that is not Airflow's is reported as such.
#[tokio::test]
async fn non_airflow_database_is_rejected() {
    let db = TestDb::empty(Dialect::Sqlite).await;
    db.exec_script("CREATE TABLE unrelated (id INTEGER)").await;
    let handle = db.windsock(&fast_settings());
    let err = airflow::detect(&handle, Duration::from_secs(5))
        .await
        .unwrap_err();
    assert!(matches!(err, airflow::DetectError::NotAirflow), "{err}");
}
