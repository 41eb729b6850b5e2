//! Backfills in progress (Airflow 3: `backfill`, `backfill_dag_run`) and
//! how far each DAG's have got: the runs they created, by run state, and
//! the dates skipped (a `backfill_dag_run` without a run: already present,
//! or in flight, per `reprocess_behavior`).
//!
//! Source: backfills without `completed_at` (few), their `backfill_dag_run`
//! rows and the `dag_run` rows by primary key. Cost: proportional to the
//! open backfills' runs, never to `dag_run`.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_backfills{dag_id,status}`, `airflow_backfill_dag_runs{dag_id,state}`.
pub(super) fn progress() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "backfills".into(),
            help: "Backfills in progress and their runs by state (Airflow 3)".into(),
            source: "backfill, backfill_dag_run, dag_run (primary key)".into(),
            cost: "the open backfills and their runs".into(),
            category: Category::Runs,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: vec![Capability::Backfill],
        },
        |_schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            let paused = sql::is_true("is_paused");
            // Runs per state, then one row per DAG of the backfill counts
            // (each row's other value columns NULL, so it feeds only its
            // own family).
            Ok(format!(
                "SELECT b.dag_id, COALESCE(r.state, 'skipped') AS state, COUNT(*) AS runs, \
                        NULL AS running, NULL AS paused \
                 FROM backfill b JOIN backfill_dag_run bdr ON bdr.backfill_id = b.id \
                 LEFT JOIN dag_run r ON r.id = bdr.dag_run_id \
                 WHERE b.completed_at IS NULL \
                 GROUP BY b.dag_id, COALESCE(r.state, 'skipped') \
                 UNION ALL \
                 SELECT dag_id, NULL, NULL, \
                        SUM(CASE WHEN {paused} THEN 0 ELSE 1 END), \
                        SUM(CASE WHEN {paused} THEN 1 ELSE 0 END) \
                 FROM backfill WHERE completed_at IS NULL GROUP BY dag_id"
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_backfill_dag_runs",
                "Runs of a DAG's open backfills by run state (skipped: a date the backfill did not run)",
                "runs",
            )
            .labels(&["dag_id", "state"]),
            MetricSpec::gauge(
                "airflow_backfills",
                "A DAG's backfills not completed, running or paused",
                "",
            )
            .labels(&["dag_id"])
            .value_columns("status", &["running", "paused"]),
        ],
    )
}
