//! Human-in-the-loop requests waiting for an answer (Airflow 3.1+:
//! `hitl_detail`, one row per task asking a person): how many, and how long
//! the oldest has waited. The task stays deferred until someone responds.
//!
//! Source: `hitl_detail` rows without `responded_at`. Cost: one pass.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

/// `airflow_hitl_pending_requests`, `airflow_hitl_oldest_pending_age_seconds`.
pub(super) fn pending() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "hitl_pending".into(),
            help: "Human-in-the-loop requests waiting for a response (Airflow 3.1+)".into(),
            source: "hitl_detail".into(),
            cost: "one pass over hitl_detail".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: vec![Capability::HitlDetail],
        },
        |schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            Ok(format!(
                "SELECT COUNT(*) AS pending, MIN({created}) AS oldest \
                 FROM hitl_detail WHERE responded_at IS NULL",
                created = sql::epoch(schema.dialect, "created_at"),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_hitl_pending_requests",
                "Human-in-the-loop requests no one has responded to",
                "pending",
            ),
            MetricSpec::gauge(
                "airflow_hitl_oldest_pending_age_seconds",
                "Age of the oldest human-in-the-loop request without a response",
                "oldest",
            )
            .seconds_since(),
        ],
    )
}
