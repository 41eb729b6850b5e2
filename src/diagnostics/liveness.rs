//! How many schedulers, triggerers and dag-processors are alive.
//!
//! Alive as Airflow's health check defines it (`airflow/jobs/job.py`,
//! `health_check_threshold`): a `running` job of that type whose heartbeat
//! is younger than the component's threshold (`thresholds.scheduler_alive`
//! and `triggerer_alive`, 30 s like Airflow's health-check thresholds;
//! `dag_processor_alive`, 10.5 s: its heartrate times 2.1). Every
//! component type is always reported, 0 included, so "no scheduler alive"
//! is a value an alert can see. Source: `job` through the `job_type_heart`
//! index.

use std::time::Duration;

use super::components::{TYPES, alive};
use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;

/// `airflow_components_alive{component}`.
pub(super) fn alive_counts() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "component_liveness".into(),
            help: "Number of alive schedulers, triggerers and dag-processors".into(),
            source: "job (job_type_heart index)".into(),
            cost: "range scan of recent component heartbeats".into(),
            category: Category::Components,
            interval: Duration::from_secs(10),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_components_alive",
                "Components alive by Airflow's rule: job running, heartbeat within thresholds.scheduler_alive, triggerer_alive or dag_processor_alive",
                "",
            )
            .value_columns("component", &["scheduler", "triggerer", "dag_processor"]),
        ],
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    let count = |t: &str| format!("COALESCE(SUM(CASE WHEN job_type = '{t}' THEN 1 ELSE 0 END), 0)");
    // The widest threshold bounds the index range; `alive` decides per type.
    let t = &ctx.thresholds;
    let widest = t
        .scheduler_alive
        .max(t.triggerer_alive)
        .max(t.dag_processor_alive);
    Ok(format!(
        "SELECT {s} AS scheduler, {tr} AS triggerer, {p} AS dag_processor FROM job \
         WHERE {TYPES} AND latest_heartbeat > {since} AND {alive}",
        s = count("SchedulerJob"),
        tr = count("TriggererJob"),
        p = count("DagProcessorJob"),
        since = sql::ago(d, widest),
        alive = alive(d, ctx),
    ))
}
