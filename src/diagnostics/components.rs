//! Liveness of the scheduler, triggerer and dag-processor.
//!
//! Source: `job` rows of type `SchedulerJob`, `TriggererJob`,
//! `DagProcessorJob` that are `running` and heartbeated in the last day
//! (a SIGKILLed component stays `running` forever; the window lets its
//! series age out). Cost: a range scan on Airflow's `job_type_heart`
//! index `(job_type, latest_heartbeat)`.
//!
//! Both the heartbeat timestamp and its age are exported; the age is
//! computed at scrape time from the timestamp, so it is exact even between
//! runs of this diagnostic.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;

/// Heartbeats older than this are not reported at all.
const WINDOW_SECS: u64 = 86_400;

/// `airflow_component_heartbeat_timestamp_seconds`, `..._age_seconds`.
pub(super) fn heartbeats() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "component_heartbeats".into(),
            help: "Latest heartbeat of each scheduler, triggerer and dag-processor".into(),
            source: "job (job_type_heart index)".into(),
            cost: "range scan of the last day's component jobs".into(),
            category: Category::Components,
            interval: Duration::from_secs(10),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_component_heartbeat_timestamp_seconds",
                "UNIX time of the latest heartbeat of a running Airflow component, per host",
                "heartbeat",
            )
            .labels(&["component", "hostname"])
            .merge(Aggregate::Max),
            MetricSpec::gauge(
                "airflow_component_heartbeat_age_seconds",
                "Seconds since the latest heartbeat of a running Airflow component, per host",
                "heartbeat",
            )
            .labels(&["component", "hostname"])
            .seconds_since()
            .merge(Aggregate::Max),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    Ok(format!(
        "SELECT CASE job_type WHEN 'SchedulerJob' THEN 'scheduler' \
                 WHEN 'TriggererJob' THEN 'triggerer' ELSE 'dag_processor' END AS component, \
                COALESCE(hostname, '') AS hostname, \
                MAX({hb}) AS heartbeat \
         FROM job \
         WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob') \
           AND latest_heartbeat > {since} AND state = 'running' \
         GROUP BY job_type, hostname",
        hb = sql::epoch(d, "latest_heartbeat"),
        since = sql::ago(d, WINDOW_SECS),
    ))
}
