//! DAG owners, as an info metric to join on in PromQL.
//!
//! Off by default: owners are free text that can be long, change often and
//! carry personal names. Turn it on with
//! `[diagnostics.overrides.dag_owners] enabled = true`; then
//! `... * on(environment, dag_id) group_left(owners) airflow_dag_owner_info`
//! adds the owners to any per-DAG series. Source: `dag` (one row per DAG).

use std::time::Duration;

use super::{Category, Context, Meta, MetricKind, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_dag_owner_info{dag_id,owners}`.
pub(super) fn owners() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "dag_owners".into(),
            help: "Owners of each active DAG, as labels of an info metric (off by default)".into(),
            source: "dag".into(),
            cost: "one pass over dag".into(),
            category: Category::Dags,
            interval: Duration::from_secs(300),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![MetricSpec {
            kind: MetricKind::Info,
            ..MetricSpec::gauge(
                "airflow_dag_owner",
                "Owners of an active DAG (dag.owners); value always 1",
                "one",
            )
            .labels(&["dag_id", "owners"])
        }],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let active = if schema.has(Capability::DagIsStale) {
        format!("NOT ({})", sql::is_true("is_stale"))
    } else if schema.has(Capability::DagIsActive) {
        sql::is_true("is_active")
    } else {
        return Err(Skip::Missing(Capability::DagIsStale));
    };
    Ok(format!(
        "SELECT dag_id, COALESCE(owners, '') AS owners, 1 AS one FROM dag WHERE {active}"
    ))
}
