//! Liveness of each scheduler, triggerer and dag-processor host.
//!
//! Source: `job` rows of type `SchedulerJob`, `TriggererJob`,
//! `DagProcessorJob` that heartbeated within `thresholds.component_lookback`
//! (24 h), whatever their state: a component that stopped (`success`),
//! failed, or was killed (a SIGKILLed component stays `running` with a
//! heartbeat that no longer moves) stays visible as not alive for that
//! long, then ages out. Cost: a range scan on Airflow's `job_type_heart`
//! index `(job_type, latest_heartbeat)`.
//!
//! Alive follows Airflow's own rule (`airflow/jobs/job.py`,
//! `health_check_threshold`): the job is `running` and heartbeated within
//! the component's threshold (`thresholds.scheduler_alive`,
//! `triggerer_alive`, `dag_processor_alive`). Per host, the freshest job
//! counts. The heartbeat age is computed at scrape time from the
//! timestamp, so it is exact between runs.

use std::time::Duration;

use super::{Aggregate, Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::Schema;
use crate::db::Dialect;

/// `airflow_component_heartbeat_timestamp_seconds`, `..._age_seconds`,
/// `airflow_component_host_alive`.
pub(super) fn heartbeats() -> SqlDiagnostic {
    SqlDiagnostic::new(
        Meta {
            name: "component_heartbeats".into(),
            help: "Latest heartbeat and liveness of each scheduler, triggerer and dag-processor host".into(),
            source: "job (job_type_heart index)".into(),
            cost: "range scan of the component jobs of thresholds.component_lookback".into(),
            category: Category::Components,
            interval: Duration::from_secs(10),
            timeout: None,
            requires: Vec::new(),
        },
        build,
        vec![
            MetricSpec::gauge(
                "airflow_component_heartbeat_timestamp_seconds",
                "UNIX time of the latest heartbeat of an Airflow component, per host (jobs of thresholds.component_lookback, ended ones included)",
                "heartbeat",
            )
            .labels(&["component", "hostname"])
            .merge(Aggregate::Max),
            MetricSpec::gauge(
                "airflow_component_heartbeat_age_seconds",
                "Seconds since the latest heartbeat of an Airflow component, per host (jobs of thresholds.component_lookback, ended ones included)",
                "heartbeat",
            )
            .labels(&["component", "hostname"])
            .seconds_since()
            .merge(Aggregate::Min),
            MetricSpec::gauge(
                "airflow_component_host_alive",
                "1 when a component on this host is alive by Airflow's rule (job running, heartbeat within its threshold), 0 when it stopped, failed or went silent",
                "alive",
            )
            .labels(&["component", "hostname"])
            .merge(Aggregate::Max),
        ],
    )
}

/// The component label of a job type.
pub(super) const COMPONENT: &str = "CASE job_type WHEN 'SchedulerJob' THEN 'scheduler' \
     WHEN 'TriggererJob' THEN 'triggerer' ELSE 'dag_processor' END";

/// The component job types.
pub(super) const TYPES: &str = "job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob')";

/// True for a job alive by Airflow's rule, each type by its own threshold.
pub(super) fn alive(d: Dialect, ctx: &Context) -> String {
    let t = &ctx.thresholds;
    format!(
        "(state = 'running' AND ( \
           (job_type = 'SchedulerJob' AND latest_heartbeat > {s}) \
           OR (job_type = 'TriggererJob' AND latest_heartbeat > {tr}) \
           OR (job_type = 'DagProcessorJob' AND latest_heartbeat > {p})))",
        s = sql::ago(d, t.scheduler_alive),
        tr = sql::ago(d, t.triggerer_alive),
        p = sql::ago(d, t.dag_processor_alive),
    )
}

fn build(schema: &Schema, ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    Ok(format!(
        "SELECT {COMPONENT} AS component, COALESCE(hostname, '') AS hostname, \
                MAX({hb}) AS heartbeat, \
                MAX(CASE WHEN {alive} THEN 1 ELSE 0 END) AS alive \
         FROM job \
         WHERE {TYPES} AND latest_heartbeat > {since} \
         GROUP BY job_type, hostname",
        hb = sql::epoch(d, "latest_heartbeat"),
        alive = alive(d, ctx),
        since = sql::ago(d, ctx.thresholds.component_lookback),
    ))
}
