//! Parsing freshness: when each DAG was last parsed, how long that took,
//! and when each DAG bundle was last refreshed.
//!
//! Source: `dag` (one row per DAG: small; `last_parsed_time`, and
//! `last_parse_duration` from Airflow 3.1) and, on Airflow 3, `dag_bundle`
//! (one row per bundle). Cost: one pass over each. Stale DAGs (Airflow 3
//! `is_stale`, Airflow 2 `is_active = false`) are no longer parsed and are
//! left out.
//!
//! The freshest parse of all DAGs tells whether parsing runs at all (the
//! dag-processor on Airflow 3, the scheduler or a standalone processor on
//! Airflow 2): every file is parsed every `[dag_processor]
//! min_file_process_interval` (30 s), so even the newest parse growing old
//! means nothing is parsed. The oldest shows the DAG left behind.

use std::time::Duration;

use super::{Category, Context, Meta, MetricSpec, Skip, SqlDiagnostic, sql};
use crate::airflow::{Capability, Schema};

fn meta(name: &str, help: &str, source: &str, requires: Vec<Capability>) -> Meta {
    Meta {
        name: name.to_owned().into(),
        help: help.to_owned().into(),
        source: source.to_owned().into(),
        cost: format!("one pass over {source} (one row per entry)").into(),
        category: Category::Dags,
        interval: Duration::from_secs(60),
        timeout: None,
        requires,
    }
}

/// `airflow_dag_last_parsed_timestamp_seconds`, the freshest and oldest
/// parse ages, `airflow_dag_last_parse_duration_seconds`.
pub(super) fn freshness() -> SqlDiagnostic {
    SqlDiagnostic::new(
        meta(
            "dag_parsing",
            "When each DAG was last parsed and how long it took; the freshest and the oldest parse",
            "dag",
            Vec::new(),
        ),
        build,
        vec![
            MetricSpec::gauge(
                "airflow_dag_last_parsed_timestamp_seconds",
                "UNIX time at which a DAG (not stale) was last parsed (dag.last_parsed_time)",
                "parsed",
            )
            .labels(&["dag_id"]),
            MetricSpec::gauge(
                "airflow_dag_parse_latest_age_seconds",
                "Seconds since the most recent parse of any DAG (not stale): growing means nothing is parsed",
                "newest",
            )
            .seconds_since(),
            MetricSpec::gauge(
                "airflow_dag_parse_oldest_age_seconds",
                "Seconds since the least recently parsed DAG (not stale) was parsed",
                "oldest",
            )
            .seconds_since(),
            MetricSpec::gauge(
                "airflow_dag_last_parse_duration_seconds",
                "How long the latest parse of a DAG's file took (dag.last_parse_duration, Airflow 3.1+)",
                "duration",
            )
            .labels(&["dag_id"]),
        ],
    )
}

fn build(schema: &Schema, _ctx: &Context) -> Result<String, Skip> {
    let d = schema.dialect;
    let live = if schema.has(Capability::DagIsStale) {
        format!("NOT ({})", sql::is_true("is_stale"))
    } else if schema.has(Capability::DagIsActive) {
        sql::is_true("is_active")
    } else {
        return Err(Skip::Missing(Capability::DagIsStale));
    };
    let duration = if schema.has_column("dag", "last_parse_duration") {
        "last_parse_duration"
    } else {
        "NULL"
    };
    // One row per DAG, then one row of the extremes (its other columns
    // NULL, so each row feeds only its own families).
    let parsed = sql::epoch(d, "last_parsed_time");
    Ok(format!(
        "SELECT dag_id, {parsed} AS parsed, {duration} AS duration, \
                NULL AS newest, NULL AS oldest FROM dag \
         WHERE {live} AND last_parsed_time IS NOT NULL \
         UNION ALL \
         SELECT NULL, NULL, NULL, MAX({parsed}), MIN({parsed}) FROM dag \
         WHERE {live} AND last_parsed_time IS NOT NULL"
    ))
}

/// `airflow_dag_bundle_last_refreshed_timestamp_seconds`,
/// `airflow_dag_bundle_refresh_age_seconds`.
pub(super) fn bundles() -> SqlDiagnostic {
    SqlDiagnostic::new(
        meta(
            "dag_bundles",
            "When each active DAG bundle was last refreshed (Airflow 3)",
            "dag_bundle",
            vec![Capability::DagBundle],
        ),
        |schema: &Schema, _ctx: &Context| -> Result<String, Skip> {
            Ok(format!(
                "SELECT name AS bundle, {refreshed} AS refreshed FROM dag_bundle \
                 WHERE {active} AND last_refreshed IS NOT NULL",
                refreshed = sql::epoch(schema.dialect, "last_refreshed"),
                active = sql::is_true("active"),
            ))
        },
        vec![
            MetricSpec::gauge(
                "airflow_dag_bundle_last_refreshed_timestamp_seconds",
                "UNIX time at which an active DAG bundle was last refreshed (dag_bundle.last_refreshed)",
                "refreshed",
            )
            .labels(&["bundle"]),
            MetricSpec::gauge(
                "airflow_dag_bundle_refresh_age_seconds",
                "Seconds since an active DAG bundle was last refreshed",
                "refreshed",
            )
            .labels(&["bundle"])
            .seconds_since(),
        ],
    )
}
