//! Missed schedules: active, unpaused DAGs whose next scheduled run is
//! overdue, and DAGs the scheduler stopped creating runs for because they
//! are at their `max_active_runs`.
//!
//! Source: `dag` (one row per DAG). `next_dagrun_create_after` is when the
//! scheduler should create the next run; a healthy scheduler does so
//! within seconds. When a DAG has `max_active_runs` runs active, Airflow
//! sets `next_dagrun_create_after` to NULL (`scheduler_job_runner.py`
//! `_update_dag_next_dagruns`, `dag_processing/collection.py`) and keeps
//! `next_dagrun_data_interval_end`: such a DAG is overdue from that
//! interval end (its run is due then, also for Airflow 3's cron trigger
//! timetables, whose intervals end at the run time) and is reported as
//! blocked. DAGs without a schedule have neither column set.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// Grace before a DAG counts as overdue at all.
const GRACE_SECS: u64 = 60;

/// `airflow_dag_schedule_overdue_seconds{dag_id}`.
pub(super) fn overdue() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "missed_schedules".into(),
            help: "Active DAGs whose next scheduled run is overdue".into(),
            source: "dag".into(),
            cost: "one pass over dag".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_dag_schedule_overdue_seconds",
                "Seconds since an active, unpaused DAG's next run should have been created (only DAGs over a minute late; DAGs at max_active_runs count from their next interval's end)",
                "due",
            )
            .labels(&["dag_id"])
            .seconds_since(),
            MetricSpec::gauge(
                "airflow_dag_max_active_runs_blocked",
                "1 when the scheduler creates no new runs of an active, unpaused DAG because max_active_runs of its runs are active (dag.next_dagrun_create_after is NULL)",
                "blocked",
            )
            .labels(&["dag_id"]),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let active = if schema.has(Capability::DagIsStale) {
        "(is_stale = false OR is_stale IS NULL)"
    } else if schema.has(Capability::DagIsActive) {
        "is_active = true"
    } else {
        return Err(Skip::Missing(Capability::DagIsStale));
    };
    let d = schema.dialect;
    let due = "COALESCE(next_dagrun_create_after, next_dagrun_data_interval_end)";
    let blocked = "next_dagrun_create_after IS NULL AND next_dagrun_data_interval_end IS NOT NULL";
    Ok(format!(
        "SELECT dag_id, \
                CASE WHEN {due} < {limit} THEN {due_s} END AS due, \
                CASE WHEN {blocked} THEN 1 END AS blocked \
         FROM dag \
         WHERE {active} AND is_paused = false \
           AND (next_dagrun_create_after < {limit} OR ({blocked}))",
        due_s = sql::epoch(d, due),
        limit = sql::ago(d, Duration::from_secs(GRACE_SECS)),
    ))
}
