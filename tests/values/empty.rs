//! Empty tables and NULL columns: every diagnostic runs on a freshly
//! migrated schema (nothing but the alembic rows) and reports zeros where
//! a count always exists, nothing where a series needs a row; NULL
//! hostnames, queues and owners become empty label values.

use std::sync::Arc;

use crate::common::{TestDb, fast_settings};
use crate::harness::{Samples, settings};
use windsock::db::Dialect;
use windsock::diagnostics;
use windsock::metrics::Store;
use windsock::runner::{RunResult, TargetRunner};

async fn run_all(db: &TestDb) -> (Samples, Vec<String>) {
    let mut s = settings();
    s.diagnostics.overrides.insert(
        "dag_owners".into(),
        windsock::config::DiagnosticOverride {
            enabled: Some(true),
            ..Default::default()
        },
    );
    let r = TargetRunner {
        environment: "t".into(),
        db: db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(&s).unwrap()),
        store: Arc::new(Store::new(["t"])),
        settings: s.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };
    let schema = r.detect().await.unwrap();
    let (mut out, mut skipped) = (Samples::new(), Vec::new());
    for p in r.plan.iter() {
        let name = p.diagnostic.meta().name.to_string();
        match r.run_one(p, &schema).await {
            RunResult::Ok(o) => out.extend(crate::common::sample_map(&o.families)),
            RunResult::Skipped(_) => skipped.push(name),
            RunResult::Failed(e) => panic!("{}: {name}: {e}", db.dialect),
        }
    }
    r.db.close().await;
    (out, skipped)
}

#[tokio::test]
async fn empty_schemas_report_zeros_and_no_rows() {
    for version in ["2.10.5", "3.1.8"] {
        for dialect in Dialect::ALL {
            let db = TestDb::with_schema(dialect, version).await;
            let (got, skipped) = run_all(&db).await;
            let at = format!("{version}/{dialect}");
            for zero in [
                "airflow_dags{state=active}",
                "airflow_dags{state=paused}",
                "airflow_dags{state=stale}",
                "airflow_dag_import_errors{}",
                "airflow_dag_runs{state=queued}",
                "airflow_dag_runs{state=running}",
                "airflow_task_instances{state=running}",
                "airflow_components_alive{component=scheduler}",
                "airflow_components_alive{component=dag_processor}",
            ] {
                assert_eq!(got.get(zero), Some(&0.0), "{at}: {zero}");
            }
            let per_row = [
                "airflow_dag_owner",
                "airflow_serialized_dag",
                "airflow_dag_run_",
                "airflow_task_backlog",
                "airflow_pool_",
                "airflow_zombie",
                "airflow_component_host_alive",
                "airflow_dag_schedule_overdue",
                "airflow_task_running",
                "airflow_task_duration",
                "airflow_task_failed",
                "airflow_task_retr",
                "airflow_task_queue_wait",
            ];
            for k in got.keys() {
                assert!(!per_row.iter().any(|p| k.starts_with(p)), "{at}: {k}");
            }
            assert_eq!(
                got.get("airflow_concurrency_peak{kind=task_instances,period=window}"),
                Some(&0.0),
                "{at}"
            );
            // Only dialect and version limits skip anything.
            for s in &skipped {
                let why = match (s.as_str(), dialect) {
                    ("db_indexes", Dialect::MySql | Dialect::Sqlite) => true,
                    ("db_activity", Dialect::Sqlite) => true,
                    ("sla_misses", _) => version.starts_with('3'),
                    ("dag_bundles" | "backfills", _) => version.starts_with('2'),
                    ("hitl_pending" | "deadline_alerts", _) => {
                        version.starts_with('2') || version.starts_with("3.0")
                    }
                    _ => false,
                };
                assert!(why, "{at}: {s} skipped");
            }
        }
    }
}

/// NULL in the columns that become labels: a component job without a
/// hostname, a queued task without a queue, a DAG without owners.
#[tokio::test]
async fn null_label_columns_become_empty_values() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, "3.1.8").await;
        let (t, f) = if dialect == Dialect::Postgres {
            ("true", "false")
        } else {
            ("1", "0")
        };
        let now = match dialect {
            Dialect::Postgres => "now()",
            Dialect::MySql => "UTC_TIMESTAMP(6)",
            Dialect::Sqlite => "strftime('%Y-%m-%d %H:%M:%f', 'now')",
        };
        db.exec_script(&format!(
            "INSERT INTO job (id, state, job_type, start_date, latest_heartbeat, hostname)
               VALUES (1, 'running', 'SchedulerJob', {now}, {now}, NULL);
             INSERT INTO dag_bundle (name, active) VALUES ('b', {t});
             INSERT INTO dag (dag_id, bundle_name, is_paused, is_stale, max_active_tasks,
               has_task_concurrency_limits, max_consecutive_failed_dag_runs, owners)
               VALUES ('d', 'b', {f}, {f}, 16, {f}, 0, NULL);
             INSERT INTO dag_run (id, dag_id, run_id, run_type, state, run_after, clear_number, span_status)
               VALUES (1, 'd', 'r', 'manual', 'running', {now}, 0, 'running');
             INSERT INTO task_instance (id, dag_id, task_id, run_id, map_index, state, try_number,
               max_tries, pool, pool_slots, queue, queued_dttm, span_status)
               VALUES ('01a20fb2-0658-7f67-8000-000000000001', 'd', 't', 'r', -1, 'queued', 1, 0,
               'default_pool', 1, NULL, {now}, 'not_started')"
        ))
        .await;
        let (got, _) = run_all(&db).await;
        let at = dialect.to_string();
        assert_eq!(
            got.get("airflow_component_host_alive{component=scheduler,hostname=}"),
            Some(&1.0),
            "{at}: {got:#?}"
        );
        assert_eq!(
            got.get("airflow_components_alive{component=scheduler}"),
            Some(&1.0),
            "{at}"
        );
        assert_eq!(
            got.get("airflow_task_backlog{state=queued,pool=default_pool,queue=}"),
            Some(&1.0),
            "{at}"
        );
        assert_eq!(
            got.get("airflow_dag_owner{dag_id=d,owners=}"),
            Some(&1.0),
            "{at}"
        );
    }
}
