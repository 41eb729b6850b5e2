//! SLA misses recorded by Airflow 2 (`sla_miss`).
//!
//! Airflow 3 removed SLAs; an upgraded database may keep the old table and
//! rows, so the diagnostic runs only on Airflow 2 schemas. windsock's own
//! deadlines (`[[deadlines]]`) cover every version.
//!
//! Source: `sla_miss` rows of the window (no time index exists; the table is
//! small: about 50k rows at 10M task instances).

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_sla_miss_events`, `airflow_sla_miss_latest_timestamp_seconds`.
pub(super) fn misses() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "sla_misses".into(),
            help: "SLA misses Airflow 2 recorded in the window, per DAG and task".into(),
            source: "sla_miss".into(),
            cost: "window over a small table (no time index exists)".into(),
            category: Category::Sla,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: vec![Capability::SlaMiss],
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_sla_miss_events",
                "SLA misses recorded by Airflow 2 within diagnostics.window",
                "misses",
            )
            .labels(&["dag_id", "task_id"]),
            MetricSpec::gauge(
                "airflow_sla_miss_latest_timestamp_seconds",
                "UNIX time at which Airflow 2 recorded the latest SLA miss of a task",
                "latest",
            )
            .labels(&["dag_id", "task_id"])
            .merge(Aggregate::Max),
        ],
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    if schema.major >= 3 {
        return Err(Skip::Version(
            "Airflow 3 has no SLAs (use [[deadlines]]); sla_miss is a leftover of an upgrade",
        ));
    }
    let d = schema.dialect;
    // `timestamp` is a keyword: always qualify it.
    Ok(format!(
        "SELECT s.dag_id AS dag_id, s.task_id AS task_id, COUNT(*) AS misses, \
                MAX({ts}) AS latest FROM sla_miss s \
         WHERE s.timestamp > {since} GROUP BY s.dag_id, s.task_id",
        ts = sql::epoch(d, "s.timestamp"),
        since = sql::ago(d, ctx.window),
    ))
}
