//! DAG and task callbacks waiting to run: `callback_request` rows the
//! scheduler queued for the DAG processor (failure and success callbacks,
//! SLA callbacks on Airflow 2). A growing queue means callbacks, and the
//! alerts users wired into them, run late or not at all.
//!
//! Source: `callback_request` (rows are deleted once run). Cost: one pass.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_callback_requests{callback_type}`, `airflow_callback_oldest_age_seconds{callback_type}`.
pub(super) fn backlog() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "callback_backlog".into(),
            help: "Callbacks queued for the DAG processor and not yet run".into(),
            source: "callback_request".into(),
            cost: "one pass over callback_request (pending callbacks only)".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: vec![Capability::CallbackRequest],
        },
        |schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            Ok(format!(
                "SELECT callback_type, COUNT(*) AS callbacks, MIN({created}) AS oldest \
                 FROM callback_request GROUP BY callback_type",
                created = sql::epoch(schema.dialect, "created_at"),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_callback_requests",
                "Callbacks queued for the DAG processor and not yet run, by type",
                "callbacks",
            )
            .labels(&["callback_type"]),
            MetricSpec::gauge(
                "airflow_callback_oldest_age_seconds",
                "Age of the oldest callback queued for the DAG processor, by type",
                "oldest",
            )
            .labels(&["callback_type"])
            .seconds_since(),
        ],
    )
}
