//! Zombie candidates: running task instances whose heartbeat stopped.
//!
//! Airflow 3: the task instance's own `last_heartbeat_at` is older than the
//! threshold (the rule of the scheduler's `_find_task_instances_without_heartbeats`).
//! Airflow 2: the task's `LocalTaskJob` is not running or its
//! `latest_heartbeat` is older than the threshold (the rule of
//! `_find_zombies`). The branch is chosen by the schema, not the version.
//! Reported before Airflow's own detection kills them when the threshold
//! (`thresholds.zombie_heartbeat_age`) is below Airflow's.
//!
//! Source: `task_instance` through the `ti_state` index (running tasks
//! only), joined to `job` by primary key on Airflow 2.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_zombie_task_candidates`, `airflow_zombie_task_heartbeat_age_seconds`.
pub(super) fn candidates() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "zombie_tasks".into(),
            help: "Running task instances whose heartbeat is older than the zombie threshold".into(),
            source: "task_instance (ti_state index); job by primary key on Airflow 2".into(),
            cost: "index lookup of running rows".into(),
            category: Category::Resources,
            interval: Duration::from_secs(15),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_zombie_task_candidates",
                "Running task instances whose heartbeat is older than thresholds.zombie_heartbeat_age",
                "tasks",
            )
            .labels(&["dag_id", "task_id"]),
            MetricSpec::gauge(
                "airflow_zombie_task_heartbeat_age_seconds",
                "Age of the oldest heartbeat among a task's zombie candidates",
                "heartbeat",
            )
            .labels(&["dag_id", "task_id"])
            .seconds_since()
            .merge(Aggregate::Min),
        ],
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    let limit = sql::ago(d, ctx.thresholds.zombie_heartbeat_age);
    if schema.has(Capability::TaskInstanceHeartbeat) {
        Ok(format!(
            "SELECT dag_id, task_id, COUNT(*) AS tasks, MIN({hb}) AS heartbeat \
             FROM task_instance \
             WHERE state IN ('running', 'restarting') AND last_heartbeat_at < {limit} \
             GROUP BY dag_id, task_id",
            hb = sql::epoch(d, "last_heartbeat_at"),
        ))
    } else if schema.has(Capability::TaskInstanceJobId) {
        Ok(format!(
            "SELECT ti.dag_id AS dag_id, ti.task_id AS task_id, COUNT(*) AS tasks, \
                    MIN({hb}) AS heartbeat \
             FROM task_instance ti JOIN job j ON j.id = ti.job_id \
             WHERE ti.state = 'running' AND j.job_type = 'LocalTaskJob' \
               AND (j.state <> 'running' OR j.latest_heartbeat < {limit}) \
             GROUP BY ti.dag_id, ti.task_id",
            hb = sql::epoch(d, "j.latest_heartbeat"),
        ))
    } else {
        Err(Skip::Missing(Capability::TaskInstanceHeartbeat))
    }
}
