//! Asset-triggered runs waiting: the queue of asset (Airflow 2: dataset)
//! events each DAG scheduled on assets has received but not yet turned into
//! a run. Airflow creates the run once every asset the DAG waits for has an
//! event, so a queue that only grows names a DAG waiting on an asset that
//! never updates.
//!
//! Source: `asset_dag_run_queue` (Airflow 3) or `dataset_dag_run_queue`
//! (Airflow 2): one row per (asset, target DAG) pending. Cost: one pass.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_asset_queue_events{dag_id}`, `airflow_asset_queue_oldest_age_seconds{dag_id}`.
pub(super) fn queue() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "asset_queue".into(),
            help: "Asset (dataset) events queued per DAG waiting to be scheduled on them".into(),
            source: "asset_dag_run_queue / dataset_dag_run_queue".into(),
            cost: "one pass over the queue (a row per asset and waiting DAG)".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: vec![Capability::AssetQueue],
        },
        |schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            let table = ["asset_dag_run_queue", "dataset_dag_run_queue"]
                .into_iter()
                .find(|t| schema.has_table(t))
                .ok_or(Skip::Missing(Capability::AssetQueue))?;
            Ok(format!(
                "SELECT target_dag_id AS dag_id, COUNT(*) AS events, MIN({created}) AS oldest \
                 FROM {table} GROUP BY target_dag_id",
                created = sql::epoch(schema.dialect, "created_at"),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_asset_queue_events",
                "Asset (dataset) updates a DAG scheduled on assets has received and not yet run on",
                "events",
            )
            .labels(&["dag_id"]),
            MetricSpec::gauge(
                "airflow_asset_queue_oldest_age_seconds",
                "Age of the oldest asset (dataset) update queued for a DAG",
                "oldest",
            )
            .labels(&["dag_id"])
            .seconds_since(),
        ],
    )
}
