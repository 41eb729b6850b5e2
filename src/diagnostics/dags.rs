//! DAG definitions by state: active, paused, stale.
//!
//! Source: `dag` (one row per DAG; small). Cost: one pass over `dag`.
//! Airflow 2 marks removed DAGs `is_active = false`; Airflow 3 marks them
//! `is_stale = true`. A stale DAG counts as stale whether paused or not.

use std::time::Duration;

use super::{Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_dags{state}`.
pub(super) fn states() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "dag_states".into(),
            help: "DAGs by state: active, paused, stale".into(),
            source: "dag".into(),
            cost: "one pass over dag (one row per DAG)".into(),
            category: super::Category::Dags,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_dags",
                "DAGs known to the metadata DB by state (active, paused, stale)",
                "",
            )
            .value_columns("state", &["active", "paused", "stale"]),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let stale = if schema.has(Capability::DagIsStale) {
        sql::is_true("is_stale")
    } else if schema.has(Capability::DagIsActive) {
        "is_active = false".to_owned()
    } else {
        return Err(Skip::Missing(Capability::DagIsStale));
    };
    let paused = sql::is_true("is_paused");
    Ok(format!(
        "SELECT \
           COALESCE(SUM(CASE WHEN {stale} THEN 0 WHEN {paused} THEN 0 ELSE 1 END), 0) AS active, \
           COALESCE(SUM(CASE WHEN {stale} THEN 0 WHEN {paused} THEN 1 ELSE 0 END), 0) AS paused, \
           COALESCE(SUM(CASE WHEN {stale} THEN 1 ELSE 0 END), 0) AS stale \
         FROM dag"
    ))
}
