//! Task instances in non-terminal states.
//!
//! Source: `task_instance`. Cost: one lookup per state on Airflow's
//! `ti_state` index (about 7 ms at 10M rows); never a scan. Terminal states
//! (success, failed, …) grow without bound and are counted incrementally by
//! the event counters instead.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic};
use crate::airflow::Schema;

/// Non-terminal task instance states, in label order.
const STATES: [&str; 7] = [
    "scheduled",
    "queued",
    "running",
    "deferred",
    "up_for_retry",
    "up_for_reschedule",
    "restarting",
];

/// `airflow_task_instances{state}`.
pub(super) fn active() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "task_instance_states".into(),
            help: "Task instances currently in a non-terminal state".into(),
            source: "task_instance (ti_state index)".into(),
            cost: "seven index-only counts".into(),
            category: Category::Runs,
            interval: Duration::from_secs(15),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_task_instances",
                "Task instances currently in a non-terminal state (scheduled, queued, running, deferred, up_for_retry, up_for_reschedule, restarting)",
                "",
            )
            .value_columns("state", &STATES),
        ],
    )
}

fn build(_schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    Ok(count_by_state("task_instance", &STATES))
}

/// One `COUNT(*)` subquery per state, as one row with a column per state:
/// each hits the state index, and states with no rows still report 0.
pub(super) fn count_by_state(table: &str, states: &[&str]) -> String {
    let cols: Vec<String> = states
        .iter()
        .map(|s| format!("(SELECT COUNT(*) FROM {table} WHERE state = '{s}') AS {s}"))
        .collect();
    format!("SELECT {}", cols.join(", "))
}

#[cfg(test)]
mod tests {
    #[test]
    fn one_subquery_per_state() {
        let sql = super::count_by_state("t", &["a", "b"]);
        assert_eq!(
            sql,
            "SELECT (SELECT COUNT(*) FROM t WHERE state = 'a') AS a, (SELECT COUNT(*) FROM t WHERE state = 'b') AS b"
        );
    }
}
