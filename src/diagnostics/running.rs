//! How long the runs and tasks that are running now have been running.
//!
//! Sources: running `dag_run` rows (Airflow's partial index
//! `idx_dag_run_running_dags`) and running `task_instance` rows (`ti_state`).
//! The age is computed at scrape time from the start timestamp.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;

/// `airflow_dag_run_running_age_seconds{dag_id}`.
pub(super) fn runs() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "running_runs".into(),
            help: "Age of the oldest running DAG run, per DAG".into(),
            source: "dag_run (idx_dag_run_running_dags)".into(),
            cost: "partial-index scan of running runs".into(),
            category: Category::Runs,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: Vec::new(),
        },
        build_runs,
        vec![
            MetricSpec::gauge(
                "airflow_dag_run_running_age_seconds",
                "Seconds since the oldest running run of a DAG started",
                "started",
            )
            .labels(&["dag_id"])
            .seconds_since()
            .merge(Aggregate::Min),
        ],
    )
}

fn build_runs(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok(format!(
        "SELECT dag_id, MIN({s}) AS started FROM dag_run \
         WHERE state = 'running' AND start_date IS NOT NULL GROUP BY dag_id",
        s = sql::epoch(schema.dialect, "start_date"),
    ))
}

/// `airflow_task_running_age_seconds{dag_id,task_id}`.
pub(super) fn tasks() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "running_tasks".into(),
            help: "Age of the oldest running task instance, per DAG and task".into(),
            source: "task_instance (ti_state index)".into(),
            cost: "index lookup of running rows".into(),
            category: Category::Runs,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: Vec::new(),
        },
        build_tasks,
        vec![
            MetricSpec::gauge(
                "airflow_task_running_age_seconds",
                "Seconds since the oldest running instance of a task started",
                "started",
            )
            .labels(&["dag_id", "task_id"])
            .seconds_since()
            .merge(Aggregate::Min),
        ],
    )
}

fn build_tasks(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok(format!(
        "SELECT dag_id, task_id, MIN({s}) AS started FROM task_instance \
         WHERE state = 'running' AND start_date IS NOT NULL GROUP BY dag_id, task_id",
        s = sql::epoch(schema.dialect, "start_date"),
    ))
}
