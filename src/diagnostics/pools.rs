//! Pool capacity and the slots task instances hold, by state.
//!
//! Source: `slot_pool` (a handful of rows) and, per pool and state, a sum
//! over `task_instance` that Airflow's `ti_pool (pool, state, …)` index
//! answers. Free slots follow Airflow's `Pool.slots_stats`: size minus
//! running and queued (and deferred when the pool counts deferred tasks);
//! unlimited pools (`slots = -1`) report no free-slot value.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic};
use crate::airflow::Schema;

const STATES: [&str; 4] = ["running", "queued", "scheduled", "deferred"];

/// `airflow_pool_capacity_slots`, `airflow_pool_task_slots`, `airflow_pool_free_slots`.
pub(super) fn slots() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "pool_slots".into(),
            help: "Pool sizes and the slots task instances hold in them".into(),
            source: "slot_pool, task_instance (ti_pool index)".into(),
            cost: "one index lookup per pool and state".into(),
            category: Category::Resources,
            interval: Duration::from_secs(15),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_pool_capacity_slots",
                "Configured size of a pool in slots (-1: unlimited)",
                "slots",
            )
            .labels(&["pool"]),
            MetricSpec::gauge(
                "airflow_pool_task_slots",
                "Pool slots held by task instances, by task state",
                "",
            )
            .labels(&["pool"])
            .value_columns("state", &STATES),
            MetricSpec::gauge(
                "airflow_pool_free_slots",
                "Pool slots free for new tasks, as Airflow computes them (absent for unlimited pools)",
                "free",
            )
            .labels(&["pool"]),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let sum = |state: &str| {
        format!(
            "(SELECT COALESCE(SUM(t.pool_slots), 0) FROM task_instance t \
              WHERE t.pool = p.pool AND t.state = '{state}')"
        )
    };
    let deferred_counts = if schema.has_column("slot_pool", "include_deferred") {
        "p.include_deferred = true"
    } else {
        "1 = 0"
    };
    Ok(format!(
        "SELECT pool, slots, running, queued, scheduled, deferred, \
           CASE WHEN slots < 0 THEN NULL \
                ELSE slots - running - queued - CASE WHEN inc = 1 THEN deferred ELSE 0 END END AS free \
         FROM (SELECT p.pool AS pool, p.slots AS slots, \
                 {r} AS running, {q} AS queued, {s} AS scheduled, {d} AS deferred, \
                 CASE WHEN {deferred_counts} THEN 1 ELSE 0 END AS inc \
               FROM slot_pool p) x",
        r = sum("running"),
        q = sum("queued"),
        s = sum("scheduled"),
        d = sum("deferred"),
    ))
}
