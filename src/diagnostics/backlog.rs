//! Queued and scheduled task instances: how many, and how long the oldest
//! has waited, per pool and queue.
//!
//! Source: `task_instance` rows in state `queued` or `scheduled`, found
//! through Airflow's `ti_state` index. Waiting since: `queued_dttm` for
//! queued tasks; `scheduled_dttm` (Airflow 3) or `updated_at` (Airflow 2,
//! the time of the last state change) for scheduled ones.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;

/// `airflow_task_backlog`, `airflow_task_backlog_oldest_age_seconds`.
pub(super) fn backlog() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "task_backlog".into(),
            help: "Queued and scheduled task instances and the age of the oldest, per pool and queue".into(),
            source: "task_instance (ti_state index)".into(),
            cost: "index lookup of queued and scheduled rows".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(15),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_task_backlog",
                "Task instances waiting to run, by state (queued, scheduled), pool and queue",
                "tasks",
            )
            .labels(&["state", "pool", "queue"]),
            MetricSpec::gauge(
                "airflow_task_backlog_oldest_age_seconds",
                "How long the longest-waiting task instance has been queued or scheduled, by pool and queue",
                "since",
            )
            .labels(&["state", "pool", "queue"])
            .seconds_since()
            .merge(Aggregate::Min),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    let scheduled_since = if schema.has_column("task_instance", "scheduled_dttm") {
        "scheduled_dttm"
    } else {
        "updated_at"
    };
    Ok(format!(
        "SELECT state, pool, COALESCE(queue, '') AS queue, COUNT(*) AS tasks, \
                MIN({since}) AS since \
         FROM task_instance WHERE state IN ('queued', 'scheduled') \
         GROUP BY state, pool, queue",
        since = sql::epoch(
            d,
            &format!("CASE WHEN state = 'queued' THEN queued_dttm ELSE {scheduled_since} END")
        ),
    ))
}
