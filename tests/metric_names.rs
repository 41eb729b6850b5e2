//! Every metric name used by the alert rules (`alerts/*.rules.yml`:
//! expressions and the queries in annotation templates) and by the dashboards
//! (`dashboards/*.json`: panel targets and variable queries) is one windsock
//! exports, so a rename can never silently break a panel or an alert.
//!
//! The exported names come from the code (`windsock::docs::metrics_markdown()`,
//! which renders docs/metrics.md from the registry) and must equal the names
//! in the committed docs/metrics.md.

mod monitoring;

use std::collections::{BTreeMap, BTreeSet};

use monitoring::{
    dashboards, grafana_variable_metric_names, loaded_rules, names_in_metrics_doc, panels,
    promql_metric_names, repo, variable_query,
};

/// Names that are not windsock's but that the rules may use, with the reason.
const NOT_WINDSOCK: &[(&str, &str)] = &[(
    "up",
    "Prometheus' own per-target scrape metric (WindsockExporterDown)",
)];

/// Recording rules are named `level:metric:operation`; ours start with this.
const RECORDING_PREFIX: &str = "windsock:";

fn exported() -> BTreeSet<String> {
    let from_code = names_in_metrics_doc(&windsock::docs::metrics_markdown());
    let committed = std::fs::read_to_string(repo().join("docs/metrics.md")).unwrap();
    let from_file = names_in_metrics_doc(&committed);
    assert!(
        from_code.len() > 40,
        "parsed only {} names from metrics_markdown()",
        from_code.len()
    );
    assert_eq!(
        from_code, from_file,
        "docs/metrics.md is out of date (UPDATE_DOCS=1 cargo test --test docs)"
    );
    from_code
}

/// Names used per place ("alerts: WindsockX expr", "dashboards/x.json: panel ...").
fn used() -> BTreeMap<String, BTreeSet<String>> {
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut add = |place: String, names: BTreeSet<String>| {
        for n in names {
            used.entry(n).or_default().insert(place.clone());
        }
    };
    for rule in loaded_rules() {
        let name = rule["name"].as_str().unwrap().to_owned();
        add(
            format!("alerts: {name} expr"),
            promql_metric_names(rule["query"].as_str().unwrap()),
        );
        // Annotation templates run queries too (`query "..."`): every
        // airflow_/windsock_ word in them must exist.
        for (key, text) in rule["annotations"].as_object().into_iter().flatten() {
            add(
                format!("alerts: {name} {key}"),
                prefixed_words(text.as_str().unwrap_or("")),
            );
        }
    }
    for (path, d) in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    add(
                        format!("dashboards/{file}: panel {:?}", p["title"]),
                        promql_metric_names(expr),
                    );
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query" {
                add(
                    format!("dashboards/{file}: variable {}", v["name"]),
                    grafana_variable_metric_names(variable_query(v).unwrap_or("")),
                );
            }
        }
    }
    used
}

/// Words starting with airflow_ or windsock_ anywhere in a text.
fn prefixed_words(text: &str) -> BTreeSet<String> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("airflow_") || w.starts_with("windsock_"))
        .map(str::to_owned)
        .collect()
}

/// The names in `used` that are not exported (or allowed), with their places.
fn unknown(
    used: &BTreeMap<String, BTreeSet<String>>,
    exported: &BTreeSet<String>,
    recorded: &BTreeSet<String>,
) -> Vec<String> {
    used.iter()
        .filter(|(n, _)| {
            let allowed = exported.contains(*n)
                || NOT_WINDSOCK.iter().any(|(x, _)| x == n)
                || (n.starts_with(RECORDING_PREFIX) && recorded.contains(*n));
            !allowed
        })
        .map(|(n, places)| format!("{n} (in {})", Vec::from_iter(places.clone()).join("; ")))
        .collect()
}

#[test]
fn alerts_and_dashboards_use_only_exported_metric_names() {
    let exported = exported();
    let recorded: BTreeSet<String> = loaded_rules()
        .iter()
        .filter(|r| r["type"] == "recording")
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let used = used();
    // The extraction found real work to check: both sources contribute.
    assert!(
        used.values().flatten().any(|p| p.starts_with("alerts:"))
            && used
                .values()
                .flatten()
                .any(|p| p.starts_with("dashboards/")),
        "{used:?}"
    );
    assert!(used.len() > 30, "only {} names found: {used:?}", used.len());
    let bad = unknown(&used, &exported, &recorded);
    assert!(
        bad.is_empty(),
        "metric names that windsock does not export (see docs/metrics.md):\n  {}",
        bad.join("\n  ")
    );
}

/// The check itself catches a typo, an unknown recording rule and an
/// unexported name hidden in an annotation.
#[test]
fn the_check_reports_unknown_names() {
    let exported: BTreeSet<String> = ["airflow_dag_runs".to_owned()].into();
    let recorded: BTreeSet<String> = ["windsock:threshold:x".to_owned()].into();
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (expr, place) in [
        (
            "airflow_dag_runz > on() group_left() windsock:threshold:x",
            "a",
        ),
        ("airflow_dag_runs > windsock:threshold:y", "b"),
        ("up == 0", "c"),
    ] {
        for n in promql_metric_names(expr) {
            used.entry(n).or_default().insert(place.to_owned());
        }
    }
    for n in prefixed_words("{{ with query \"airflow_gone{x='1'}\" }}{{ end }}") {
        used.entry(n).or_default().insert("d".to_owned());
    }
    let bad = unknown(&used, &exported, &recorded);
    assert_eq!(
        bad,
        [
            "airflow_dag_runz (in a)",
            "airflow_gone (in d)",
            "windsock:threshold:y (in b)"
        ]
    );
}

#[test]
fn extractor_handles_tricky_expressions() {
    let cases: &[(&str, &[&str])] = &[
        (
            r#"sum by (dag_id, state) (rate(airflow_dag_run_completions_total{environment="$environment", state=~"failed|up_for_retry"}[$__rate_interval]))"#,
            &["airflow_dag_run_completions_total"],
        ),
        (
            "time() - airflow_sla_miss_latest_timestamp_seconds\n  < on() group_left() windsock:threshold:sla_miss_recent_seconds",
            &[
                "airflow_sla_miss_latest_timestamp_seconds",
                "windsock:threshold:sla_miss_recent_seconds",
            ],
        ),
        (
            r#"up{job="windsock"} == 0 or on() absent(windsock_build_info)"#,
            &["up", "windsock_build_info"],
        ),
        (
            r#"{__name__="windsock_up", environment="e"} + on(environment) group_left(version) windsock_build_info"#,
            &["windsock_build_info", "windsock_up"],
        ),
        (
            "airflow_dags offset 5m > bool 3 unless ignoring(state) airflow_dag_runs @ end()",
            &["airflow_dag_runs", "airflow_dags"],
        ),
        (
            r#"label_replace(airflow_dags, "dst", "$1", "state", "(air_flow.*)")"#,
            &["airflow_dags"],
        ),
        (
            "max without (hostname) (airflow_component_heartbeat_age_seconds)",
            &["airflow_component_heartbeat_age_seconds"],
        ),
        (
            "count_over_time(airflow_dags[5m:1m]) * 1e3 + 0x1f - Inf + NaN + .5",
            &["airflow_dags"],
        ),
        (
            "sum(airflow_task_backlog{pool='a,b}'}) by (pool) # trailing comment with_word",
            &["airflow_task_backlog"],
        ),
        (
            "topk(5, sum by (table) (airflow_db_table_bytes{environment=\"${environment}\"}))",
            &["airflow_db_table_bytes"],
        ),
    ];
    for (expr, want) in cases {
        let got = promql_metric_names(expr);
        let want: std::collections::BTreeSet<String> =
            want.iter().map(|s| (*s).to_owned()).collect();
        assert_eq!(got, want, "{expr}");
    }
    assert_eq!(
        grafana_variable_metric_names(
            r#"label_values(airflow_dag_run_success_ratio{environment="$environment"}, dag_id)"#
        ),
        ["airflow_dag_run_success_ratio".to_owned()].into()
    );
    assert!(grafana_variable_metric_names("label_values(environment)").is_empty());
    assert_eq!(
        grafana_variable_metric_names("query_result(topk(3, airflow_dags))"),
        ["airflow_dags".to_owned()].into()
    );
}

#[test]
fn only_metric_tables_count_as_exported_names() {
    let doc = "| diagnostic | category |\n|---|---|\n| `dag_states` | dags |\n\n\
               | metric | type |\n|---|---|\n| `airflow_dags` | gauge |\n| `windsock_up` | gauge |\n\n\
               | # | windsock metrics |\n|---|---|\n| `not_a_metric` | x |\n";
    assert_eq!(
        names_in_metrics_doc(doc),
        ["airflow_dags".to_owned(), "windsock_up".to_owned()].into()
    );
}
