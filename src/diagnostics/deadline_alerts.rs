//! Airflow's own Deadline Alerts (3.1+): deadlines still ahead, deadlines
//! missed and what became of their callbacks, per DAG.
//!
//! Airflow writes one `deadline` row per alert when it creates a DAG run
//! (`SerializedDAG.create_dagrun`), deletes it when the run succeeds in time
//! (`Deadline.prune_deadlines`), and otherwise keeps it: the scheduler
//! handles a passed deadline (`handle_miss`) by queueing its callback on the
//! triggerer. How a miss is recorded depends on the version:
//! * 3.1: `callback_state` NULL means not handled yet; `queued`, `running`,
//!   `success`, `failed` follow the callback (`DeadlineCallbackState`).
//! * 3.2+: a `missed` flag, the callback in the `callback` table
//!   (`state`: scheduled, pending, queued, running, success, failed).
//!
//! A deadline counts as missed once its time has passed, handled or not.
//! Missed rows stay until `airflow db clean`, so they are read within
//! `diagnostics.window` only. 3.0 has the table but never uses it.
//!
//! Source: `deadline` (`deadline_callback_state_time_idx` on 3.1,
//! `deadline_missed_deadline_time_idx` on 3.2+) joined to `dag_run` by
//! primary key (a lookup per row). Cost: two index ranges, the rows not handled
//! yet and the window's handled ones; never the whole table.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// What became of a missed deadline's callback.
const CALLBACKS: [&str; 5] = ["none", "queued", "running", "success", "failed"];

/// How one dialect's `deadline` table records a miss.
enum Shape {
    /// 3.1: `callback_state` on the row.
    CallbackState,
    /// 3.2+: `missed`, and the `callback` table.
    MissedFlag,
}

/// The shape of a schema with [`Capability::DeadlineAlerts`].
fn shape(schema: &Schema) -> Shape {
    if schema.has_column("deadline", "callback_state") {
        Shape::CallbackState
    } else {
        Shape::MissedFlag
    }
}

/// `airflow_deadline_alerts_pending`, `airflow_deadline_alerts_missed_window`, ...
pub(super) fn alerts() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "deadline_alerts".into(),
            help: "Airflow 3.1+ Deadline Alerts: pending deadlines, misses in the window and their callbacks".into(),
            source: "deadline (callback_state/missed, deadline_time index), dag_run, callback (3.2+)".into(),
            cost: "the pending deadline rows and the window's missed ones".into(),
            category: Category::Sla,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: vec![Capability::DeadlineAlerts],
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_deadline_alerts_pending",
                "Airflow Deadline Alerts of a DAG's runs whose deadline has not passed",
                "pending",
            )
            .labels(&["dag_id"]),
            MetricSpec::gauge(
                "airflow_deadline_alerts_missed_window",
                "Airflow Deadline Alerts of a DAG missed within diagnostics.window, by what became of the callback (none: the scheduler has not handled the miss yet)",
                "",
            )
            .labels(&["dag_id"])
            .value_columns("callback", &CALLBACKS),
            MetricSpec::gauge(
                "airflow_deadline_alert_next_timestamp_seconds",
                "UNIX time of a DAG's soonest Airflow deadline still ahead (minus time(): the time left)",
                "next",
            )
            .labels(&["dag_id"])
            .merge(Aggregate::Min),
            MetricSpec::gauge(
                "airflow_deadline_alert_last_miss_timestamp_seconds",
                "UNIX time of a DAG's latest missed Airflow deadline within diagnostics.window",
                "last_miss",
            )
            .labels(&["dag_id"])
            .merge(Aggregate::Max),
        ],
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    let (now, since) = (sql::now(d), sql::ago(d, ctx.window));
    let time = sql::epoch(d, "x.deadline_time");
    // A lookup by primary key per deadline row, whatever the planner
    // thinks of the two tables' sizes.
    let dag = "(SELECT r.dag_id FROM dag_run r WHERE r.id = dl.dagrun_id)";
    // Per row: its DAG, its time, whether it passed, its callback's state.
    // Two index ranges: the rows not handled yet, and the window's handled
    // ones (the index leads with the state or the flag, then the time).
    let rows = match shape(schema) {
        Shape::CallbackState => {
            let row = format!(
                "SELECT {dag} AS dag_id, dl.deadline_time, \
                        CASE WHEN dl.callback_state IS NOT NULL OR dl.deadline_time <= {now} \
                             THEN 1 ELSE 0 END AS missed, dl.callback_state AS cb \
                 FROM deadline dl"
            );
            format!(
                "{row} WHERE dl.callback_state IS NULL UNION ALL \
                 {row} WHERE dl.callback_state IN ('queued', 'running', 'success', 'failed') \
                   AND dl.deadline_time > {since}"
            )
        }
        Shape::MissedFlag => {
            let missed = sql::is_true("dl.missed");
            let row = format!(
                "SELECT {dag} AS dag_id, dl.deadline_time, \
                        CASE WHEN {missed} OR dl.deadline_time <= {now} THEN 1 ELSE 0 END AS missed, \
                        (SELECT CASE WHEN c.state IN ('scheduled', 'pending') THEN 'queued' \
                                ELSE c.state END FROM callback c WHERE c.id = dl.callback_id) AS cb \
                 FROM deadline dl"
            );
            format!(
                "{row} WHERE dl.missed = false UNION ALL \
                 {row} WHERE dl.missed = true AND dl.deadline_time > {since}"
            )
        }
    };
    let count = |cb: &str| {
        let when = if cb == "none" {
            "x.cb IS NULL".to_owned()
        } else {
            format!("x.cb = '{cb}'")
        };
        format!("SUM(CASE WHEN x.missed = 1 AND {when} THEN 1 ELSE 0 END) AS {cb}")
    };
    let counts: Vec<String> = CALLBACKS.iter().map(|cb| count(cb)).collect();
    // A missed row older than the window is only there if its callback
    // never got a state; it is left out like the others.
    Ok(format!(
        "SELECT x.dag_id AS dag_id, SUM(1 - x.missed) AS pending, {counts}, \
                MIN(CASE WHEN x.missed = 0 THEN {time} END) AS next, \
                MAX(CASE WHEN x.missed = 1 THEN {time} END) AS last_miss \
         FROM ({rows}) x WHERE x.dag_id IS NOT NULL \
           AND (x.missed = 0 OR x.deadline_time > {since}) \
         GROUP BY x.dag_id",
        counts = counts.join(", "),
    ))
}
