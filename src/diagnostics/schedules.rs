//! Missed schedules: active, unpaused DAGs whose next run should have been
//! created a while ago.
//!
//! Source: `dag` (one row per DAG). `next_dagrun_create_after` is when the
//! scheduler should create the next run; a healthy scheduler does so
//! within seconds. DAGs at their `max_active_runs` also wait here, which is
//! why the grace period is generous and the alert threshold lives in the
//! rules.

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
                "Seconds since an active, unpaused DAG's next run should have been created (only DAGs over a minute late)",
                "due",
            )
            .labels(&["dag_id"])
            .seconds_since(),
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
    Ok(format!(
        "SELECT dag_id, {due} AS due FROM dag \
         WHERE {active} AND is_paused = false \
           AND next_dagrun_create_after < {limit}",
        due = sql::epoch(d, "next_dagrun_create_after"),
        limit = sql::ago(d, GRACE_SECS),
    ))
}
