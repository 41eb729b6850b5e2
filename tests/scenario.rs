//! The generated scenario (the demo's history) on every committed Airflow
//! schema, and what the built-in diagnostics report about it; plus what
//! happens when the database goes away mid-flight.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fast_settings, schema_versions};
use sqlx::Connection as _;
use windsock::config::CollectionSettings;
use windsock::db::Dialect;
use windsock::diagnostics;
use windsock::metrics::Store;
use windsock::runner::{RunResult, TargetRunner};

fn runner(db: &TestDb, store: &Arc<Store>) -> TargetRunner {
    TargetRunner {
        environment: "t".into(),
        db: db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(&windsock::config::Settings::default()).unwrap()),
        store: store.clone(),
        settings: CollectionSettings::default(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    }
}

/// `metric{labels}` → value, from a run's families.

#[tokio::test]
async fn scenario_on_every_schema_version() {
    for version in schema_versions() {
        let db = TestDb::with_schema(Dialect::Sqlite, &version).await;
        let mut conn = windsock::db::open_writable_sqlite(db.file().unwrap())
            .await
            .unwrap();
        let now = windsock::metrics::now_unix();
        windsock::demo::populate(&mut conn, 3, now).await.unwrap();
        // The generated rows satisfy Airflow's foreign keys.
        let violations: Vec<(String, i64, String, i64)> =
            sqlx::query_as("PRAGMA foreign_key_check")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(violations.is_empty(), "{version}: {violations:?}");
        conn.close().await.unwrap();

        let store = Arc::new(Store::new(["t"]));
        let r = runner(&db, &store);
        let schema = r.detect().await.unwrap();
        let mut all = HashMap::new();
        for p in r.plan.iter() {
            match r.run_one(p, &schema).await {
                RunResult::Ok(out) => all.extend(common::sample_map(&out.families)),
                // Checked on every dialect by tests/schemas.rs.
                RunResult::Skipped(_) => {}
                other => panic!("{version}: {}: {other:?}", p.diagnostic.meta().name),
            }
        }
        let expect = [
            ("airflow_dags{state=active}", 25.0),
            ("airflow_dags{state=paused}", 3.0),
            ("airflow_dags{state=stale}", 2.0),
            // Three long runs, the backlog run and the zombie's run.
            ("airflow_dag_runs{state=running}", 5.0),
            ("airflow_dag_runs{state=queued}", 0.0),
            // One backlog task queued for the two-slot ml_pool (the other
            // slot is held by a long run's running task).
            ("airflow_task_instances{state=queued}", 1.0),
            // Three long runs' current task plus the zombie candidate.
            ("airflow_task_instances{state=running}", 4.0),
            ("airflow_task_instances{state=deferred}", 0.0),
        ];
        for (key, want) in expect {
            assert_eq!(all.get(key), Some(&want), "{version}: {key} in {all:?}");
        }
        for component in ["scheduler", "triggerer", "dag_processor"] {
            let key = all
                .keys()
                .find(|k| {
                    k.starts_with("airflow_component_heartbeat_timestamp_seconds{")
                        && k.contains(&format!("component={component},"))
                })
                .unwrap_or_else(|| panic!("{version}: no {component} heartbeat in {all:?}"));
            let age = now - all[key];
            assert!(
                (0.0..30.0).contains(&age),
                "{version}: {component} heartbeat {age}s old"
            );
        }
        // The dead scheduler (state success) is not reported.
        assert!(
            !all.keys().any(|k| k.contains("scheduler-old")),
            "{version}"
        );
        // The zombie's task finishes: the candidate disappears.
        db.exec_script(
            "UPDATE task_instance SET state = 'success' WHERE task_id = 'pull_accounts'",
        )
        .await;
        let zombies = r
            .plan
            .iter()
            .find(|p| p.diagnostic.meta().name == "zombie_tasks")
            .unwrap();
        match r.run_one(zombies, &schema).await {
            RunResult::Ok(out) => assert!(
                out.families.iter().all(|f| f.samples.is_empty()),
                "{version}: {:?}",
                out.families
            ),
            other => panic!("{other:?}"),
        }
        r.db.close().await;
    }
}

/// The DB disappears: the last good values stay published, the failure and
/// `windsock_up 0` show, nothing panics; when it comes back, values refresh.
#[tokio::test]
async fn database_going_away_keeps_last_values() {
    let db = TestDb::with_schema(Dialect::Postgres, "3.1.8").await;
    let store = Arc::new(Store::new(["t"]));
    let r = runner(&db, &store);
    let schema = r.detect().await.unwrap();
    let diag = r
        .plan
        .iter()
        .find(|p| p.diagnostic.meta().name == "dag_run_states")
        .unwrap()
        .clone();
    assert!(matches!(r.run_one(&diag, &schema).await, RunResult::Ok(_)));

    // Take the database away: every session is terminated and new ones are
    // refused.
    let name = db.url.rsplit('/').next().unwrap().to_owned();
    let mut admin = sqlx::PgConnection::connect("postgres://postgres@127.0.0.1:5432/postgres")
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false; \
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    )))
    .execute(&mut admin)
    .await
    .unwrap();

    let res = tokio::time::timeout(Duration::from_secs(20), r.run_one(&diag, &schema))
        .await
        .expect("a failing run is bounded in time");
    match res {
        RunResult::Failed(e) => assert_eq!(e.kind(), "connect", "{e}"),
        other => panic!("expected a connect failure, got {other:?}"),
    }
    let text = windsock::metrics::Exposition::new(store.clone()).classic();
    assert!(text.contains("windsock_up{environment=\"t\"} 0"), "{text}");
    assert!(
        text.contains("airflow_dag_runs{environment=\"t\",state=\"running\"} 0"),
        "{text}"
    );
    assert!(
        text.contains(
            "windsock_diagnostic_success{environment=\"t\",diagnostic=\"dag_run_states\"} 0"
        ),
        "{text}"
    );
    assert!(text.contains(
        "windsock_diagnostic_errors_total{environment=\"t\",diagnostic=\"dag_run_states\",kind=\"connect\"} 1"
    ));

    // Back again.
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS true"
    )))
    .execute(&mut admin)
    .await
    .unwrap();
    db.exec_script(
        "INSERT INTO dag_bundle (name, active) VALUES ('b', true); \
         INSERT INTO dag (dag_id, bundle_name, is_paused, is_stale, max_active_tasks, \
           has_task_concurrency_limits, max_consecutive_failed_dag_runs, timetable_summary) \
         VALUES ('d1', 'b', false, false, 16, false, 0, 'x'); \
         INSERT INTO dag_run (dag_id, run_id, run_type, state, run_after, clear_number, span_status) \
         VALUES ('d1', 'r1', 'manual', 'running', now(), 0, 'active')",
    )
    .await;
    assert!(matches!(r.run_one(&diag, &schema).await, RunResult::Ok(_)));
    let text = windsock::metrics::Exposition::new(store).classic();
    assert!(text.contains("windsock_up{environment=\"t\"} 1"), "{text}");
    assert!(
        text.contains("airflow_dag_runs{environment=\"t\",state=\"running\"} 1"),
        "{text}"
    );
    r.db.close().await;
}
