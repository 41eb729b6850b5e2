//! The diagnostics on databases that real Airflow wrote (2.10.5 and 3.1.8
//! schedulers running the DAGs of tests/airflow/dags; see
//! tests/fixtures/data/README.md for what each contains).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fast_settings};
use windsock::config::{DiagnosticsSettings, Settings};
use windsock::db::Dialect;
use windsock::diagnostics;
use windsock::metrics::Store;
use windsock::runner::{RunResult, TargetRunner};

async fn run_all(version: &str) -> (HashMap<String, f64>, u8) {
    let db = TestDb::empty(Dialect::Sqlite).await;
    let path = common::fixtures()
        .join("data")
        .join(version)
        .join("sqlite.sql");
    db.exec_script(&std::fs::read_to_string(path).unwrap())
        .await;
    let settings = Settings {
        // The fixture's runs are from the day it was made: a window of ten
        // years keeps them in view whenever the test runs.
        diagnostics: DiagnosticsSettings {
            window: Duration::from_secs(10 * 365 * 86_400),
            ..DiagnosticsSettings::default()
        },
        ..Settings::default()
    };
    let r = TargetRunner {
        environment: "t".into(),
        db: db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(&settings).unwrap()),
        store: Arc::new(Store::new(["t"])),
        settings: settings.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };
    let schema = r.detect().await.unwrap();
    let mut out = HashMap::new();
    for p in r.plan.iter() {
        match r.run_one(p, &schema).await {
            RunResult::Ok(o) => out.extend(common::sample_map(&o.families)),
            RunResult::Skipped(_) => {}
            RunResult::Failed(e) => panic!("{version}: {}: {e}", p.diagnostic.meta().name),
        }
    }
    r.db.close().await;
    (out, schema.major)
}

async fn check(version: &str) {
    let (v, major) = run_all(version).await;
    let at = |k: &str| {
        v.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{version}: no {k} in {:?}", v.keys().collect::<Vec<_>>()))
    };
    assert_eq!(at("airflow_dag_import_errors{}"), 1.0, "{version}");
    assert_eq!(at("airflow_dag_runs{state=running}"), 0.0);
    // ws_fail failed, the others succeeded; nothing is running.
    assert_eq!(at("airflow_dag_run_success_ratio{dag_id=ws_fail}"), 0.0);
    assert_eq!(at("airflow_dag_run_success_ratio{dag_id=ws_success}"), 1.0);
    assert_eq!(
        at("airflow_dag_run_outcomes{dag_id=ws_success,state=success}"),
        2.0
    );
    // ws_retry.flaky failed once, then succeeded on its retry.
    assert_eq!(
        at("airflow_task_retries_window{dag_id=ws_retry,task_id=flaky}"),
        1.0
    );
    assert_eq!(
        at("airflow_task_failed_tries_window{dag_id=ws_retry,task_id=flaky}"),
        1.0
    );
    assert_eq!(at("airflow_task_retry_success_ratio{dag_id=ws_retry}"), 1.0);
    assert_eq!(
        at("airflow_task_failed_tries_window{dag_id=ws_fail,task_id=boom}"),
        1.0
    );
    // The one-slot pool.
    assert_eq!(at("airflow_pool_capacity_slots{pool=ws_small_pool}"), 1.0);
    // Serialized DAGs: 3.1.8 stored them compressed, 2.10.5 as JSON; both
    // are measured, tasks counted.
    let compressed = if major == 3 { 1.0 } else { 0.0 };
    assert_eq!(
        at("airflow_serialized_dag_compressed{dag_id=ws_pool}"),
        compressed
    );
    assert_eq!(at("airflow_dag_tasks{dag_id=ws_pool}"), 3.0);
    assert_eq!(at("airflow_dag_tasks{dag_id=ws_fail}"), 3.0);
    assert!(at("airflow_serialized_dag_json_bytes{dag_id=ws_pool}") > 500.0);
    assert!(at("airflow_operator_tasks{operator=BashOperator}") >= 1.0);
    // Components all stopped (state success): none alive, no heartbeats.
    assert_eq!(at("airflow_components_alive{component=scheduler}"), 0.0);
    assert!(
        !v.keys()
            .any(|k| k.starts_with("airflow_component_heartbeat"))
    );
}

#[tokio::test]
async fn real_airflow_2_10_data() {
    check("2.10.5").await;
}

#[tokio::test]
async fn real_airflow_3_1_data() {
    check("3.1.8").await;
}
