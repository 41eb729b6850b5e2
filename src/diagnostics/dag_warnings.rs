//! DAG warnings Airflow recorded (`dag_warning`: a pool a DAG uses that does
//! not exist, a DAG over non-existent parameters, …), by warning type.
//!
//! Source: `dag_warning` (a handful of rows). Cost: one pass over it.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic};
use crate::airflow::{Capability, Schema};

/// `airflow_dag_warnings{warning_type}`.
pub(super) fn warnings() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "dag_warnings".into(),
            help: "DAG warnings Airflow recorded, by type".into(),
            source: "dag_warning".into(),
            cost: "one pass over dag_warning (a row per DAG and warning type)".into(),
            category: Category::Dags,
            interval: Duration::from_secs(60),
            timeout: None,
            requires: vec![Capability::DagWarning],
        },
        |_schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            Ok(
                "SELECT warning_type, COUNT(*) AS dags FROM dag_warning GROUP BY warning_type"
                    .to_owned(),
            )
        },
        vec![
            MetricSpec::gauge(
                "airflow_dag_warnings",
                "DAGs with a warning Airflow recorded (dag_warning), by warning type",
                "dags",
            )
            .labels(&["warning_type"]),
        ],
    )
}
