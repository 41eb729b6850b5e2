//! How many schedulers, triggerers and dag-processors are alive.
//!
//! Alive as Airflow's health check defines it: a `running` job of that type
//! whose heartbeat is younger than `thresholds.component_alive` (30 s, the
//! scheduler and triggerer health-check default). Every component type is
//! always reported, 0 included, so "no scheduler alive" is a value an alert
//! can see. Source: `job` through the `job_type_heart` index.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;

/// `airflow_components_alive{component}`.
pub(super) fn alive() -> SqlDiagnostic {
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
                "Running components whose heartbeat is younger than thresholds.component_alive",
                "",
            )
            .value_columns("component", &["scheduler", "triggerer", "dag_processor"]),
        ],
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    let since = sql::ago(schema.dialect, ctx.thresholds.component_alive.as_secs());
    let count = |t: &str| format!("COALESCE(SUM(CASE WHEN job_type = '{t}' THEN 1 ELSE 0 END), 0)");
    Ok(format!(
        "SELECT {s} AS scheduler, {t} AS triggerer, {p} AS dag_processor FROM job \
         WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob') \
           AND latest_heartbeat > {since} AND state = 'running'",
        s = count("SchedulerJob"),
        t = count("TriggererJob"),
        p = count("DagProcessorJob"),
    ))
}
