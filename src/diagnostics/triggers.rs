//! Triggers and the triggerer: where deferred work waits.
//!
//! Source: Airflow's `trigger` table (one row per trigger a deferred task
//! waits on: small, read whole), the live `TriggererJob` rows of `job`
//! (`job_type_heart` index) and the deferred task instances (`ti_state`
//! index). Cost: three small statements, none scans a big table.
//!
//! A triggerer is alive by Airflow's own rule for handing out triggers
//! (`Trigger.assign_unassigned`): `job_type = 'TriggererJob'`, no
//! `end_date`, heartbeat within `[triggerer] triggerer_health_check_threshold`
//! (`thresholds.triggerer_alive`, 30 s). A trigger whose `triggerer_id`
//! names no live triggerer is *orphaned*: Airflow treats it like an
//! unassigned one and a live triggerer picks it up, up to its
//! `[triggerer] capacity` (`thresholds.triggerer_capacity`, 1000). A
//! deferred task past its `trigger_timeout` is one the scheduler should
//! have timed out (`check_trigger_timeouts`).

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;
use crate::db::Dialect;

/// How a trigger is held.
const ASSIGNMENTS: [&str; 3] = ["live", "orphaned", "unassigned"];

/// The `trigger` table, quoted where `TRIGGER` is a keyword.
pub(super) fn trigger_table(d: Dialect) -> &'static str {
    match d {
        Dialect::MySql => "`trigger`",
        Dialect::Postgres | Dialect::Sqlite => "\"trigger\"",
    }
}

/// Ids of the live triggerers, as Airflow selects them.
pub(super) fn live_triggerers(d: Dialect, ctx: &Context) -> String {
    format!(
        "SELECT id FROM job WHERE job_type = 'TriggererJob' AND end_date IS NULL \
         AND latest_heartbeat > {}",
        sql::ago(d, ctx.thresholds.triggerer_alive)
    )
}

fn meta(name: &str, help: &str, source: &str, cost: &str) -> Meta {
    Meta {
        name: name.to_owned().into(),
        help: help.to_owned().into(),
        source: source.to_owned().into(),
        cost: cost.to_owned().into(),
        category: Category::Components,
        interval: Duration::from_secs(30),
        timeout: None,
        requires: Vec::new(),
    }
}

/// `airflow_triggers{assignment}`, `airflow_trigger_oldest_waiting_age_seconds`.
pub(super) fn assignment() -> SqlDiagnostic {
    SqlDiagnostic::new(
        meta(
            "trigger_assignment",
            "Triggers by whether a live triggerer runs them, and the oldest one waiting for one",
            "trigger, job (job_type_heart index)",
            "the trigger table (one row per deferred task) and the live triggerer jobs",
        ),
        |schema: &Schema, ctx: &Context| -> Result<String, Skip> {
            let d = schema.dialect;
            let waiting = "(t.triggerer_id IS NULL OR a.id IS NULL)";
            Ok(format!(
                "SELECT COALESCE(SUM(CASE WHEN a.id IS NOT NULL THEN 1 ELSE 0 END), 0) AS live, \
                        COALESCE(SUM(CASE WHEN t.triggerer_id IS NOT NULL AND a.id IS NULL \
                                     THEN 1 ELSE 0 END), 0) AS orphaned, \
                        COALESCE(SUM(CASE WHEN t.triggerer_id IS NULL THEN 1 ELSE 0 END), 0) \
                          AS unassigned, \
                        MIN(CASE WHEN {waiting} THEN {created} END) AS oldest_waiting \
                 FROM {table} t LEFT JOIN ({live}) a ON a.id = t.triggerer_id",
                created = sql::epoch(d, "t.created_date"),
                table = trigger_table(d),
                live = live_triggerers(d, ctx),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_triggers",
                "Triggers of deferred tasks by assignment: live (run by a live triggerer), orphaned (its triggerer is not alive), unassigned",
                "",
            )
            .value_columns("assignment", &ASSIGNMENTS),
            MetricSpec::gauge(
                "airflow_trigger_oldest_waiting_age_seconds",
                "Age of the oldest trigger no live triggerer runs (unassigned or orphaned); absent when every trigger runs",
                "oldest_waiting",
            )
            .seconds_since(),
        ],
    )
}

/// `airflow_triggerer_assigned_triggers`, `airflow_triggerer_capacity_triggers`.
pub(super) fn load() -> SqlDiagnostic {
    SqlDiagnostic::new(
        meta(
            "triggerer_load",
            "Triggers each live triggerer host runs, against its capacity",
            "job (job_type_heart index), trigger",
            "the live triggerer jobs joined to their triggers",
        ),
        |schema: &Schema, ctx: &Context| -> Result<String, Skip> {
            let d = schema.dialect;
            Ok(format!(
                "SELECT COALESCE(j.hostname, '') AS hostname, COUNT(t.id) AS triggers, \
                        {cap} * COUNT(DISTINCT j.id) AS capacity \
                 FROM job j LEFT JOIN {table} t ON t.triggerer_id = j.id \
                 WHERE j.id IN ({live}) GROUP BY COALESCE(j.hostname, '')",
                cap = ctx.thresholds.triggerer_capacity,
                table = trigger_table(d),
                live = live_triggerers(d, ctx),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_triggerer_assigned_triggers",
                "Triggers assigned to the live triggerers of a host",
                "triggers",
            )
            .labels(&["hostname"])
            .merge(Aggregate::Sum),
            MetricSpec::gauge(
                "airflow_triggerer_capacity_triggers",
                "Triggers the live triggerers of a host may run: thresholds.triggerer_capacity ([triggerer] capacity) per triggerer",
                "capacity",
            )
            .labels(&["hostname"])
            .merge(Aggregate::Sum),
        ],
    )
}

/// `airflow_deferred_tasks_past_timeout`.
pub(super) fn timeouts() -> SqlDiagnostic {
    SqlDiagnostic::new(
        meta(
            "deferred_timeouts",
            "Deferred task instances past their trigger_timeout, which the scheduler should have timed out",
            "task_instance (ti_state index)",
            "the deferred task instances",
        ),
        |schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            Ok(format!(
                "SELECT dag_id, COUNT(*) AS tasks FROM task_instance \
                 WHERE state = 'deferred' AND trigger_timeout < {now} GROUP BY dag_id",
                now = sql::now(schema.dialect)
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_deferred_tasks_past_timeout",
                "Deferred task instances whose trigger_timeout has passed, per DAG (the scheduler times them out; a lasting value means it does not)",
                "tasks",
            )
            .labels(&["dag_id"]),
        ],
    )
}
