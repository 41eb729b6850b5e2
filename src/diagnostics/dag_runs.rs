//! DAG runs that are not finished: queued and running.
//!
//! Source: `dag_run`. Cost: two index lookups. Each state is counted by its
//! own `state = '…'` subquery so PostgreSQL can use Airflow's partial
//! indexes (`idx_dag_run_queued_dags`, `idx_dag_run_running_dags`); an
//! `IN (…)` list makes it scan. Terminal states are counted incrementally by
//! the event counters, never by a GROUP BY over all history.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic};
use crate::airflow::Schema;

/// States counted, in label order.
const STATES: [&str; 2] = ["queued", "running"];

/// `airflow_dag_runs{state}`.
pub(super) fn active() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "dag_run_states".into(),
            help: "DAG runs currently queued or running".into(),
            source: "dag_run (partial indexes idx_dag_run_queued_dags, idx_dag_run_running_dags)"
                .into(),
            cost: "two index-only counts".into(),
            category: Category::Runs,
            interval: Duration::from_secs(15),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_dag_runs",
                "DAG runs currently in a non-terminal state (queued, running)",
                "",
            )
            .value_columns("state", &STATES),
        ],
    )
}

fn build(_schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok(super::task_instances::count_by_state("dag_run", &STATES))
}
