//! The alert rules (`alerts/`), their unit tests, the runbooks and the
//! Alertmanager example:
//! - `promtool check rules` and `promtool test rules` pass;
//! - `amtool check-config` passes and the routing tree sends each severity
//!   where docs/runbooks.md says;
//! - every alert follows the conventions of docs/runbooks.md (checked on the
//!   rules as Prometheus loaded them): a `Windsock` CamelCase name, `for:`,
//!   `severity` in page/ticket/info, `summary`, `description`, a `runbook_url`
//!   whose anchor is a section of docs/runbooks.md, and a boundary-pair unit
//!   test; thresholds come from recording rules that exist and are used.

mod monitoring;

use std::collections::BTreeSet;

use monitoring::{files, loaded_rules, promql_metric_names, repo, rule_files, run};

const RUNBOOK_BASE: &str = "https://github.com/windsock/windsock/blob/main/docs/runbooks.md#";
const SEVERITIES: &[&str] = &["page", "ticket", "info"];

fn paths(v: &[std::path::PathBuf]) -> Vec<String> {
    v.iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn promtool_checks_the_rules() {
    let files = paths(&rule_files());
    let mut args = vec!["check", "rules"];
    args.extend(files.iter().map(String::as_str));
    let (ok, out) = run("promtool", &args);
    assert!(ok, "promtool check rules failed:\n{out}");
    assert_eq!(
        out.matches("SUCCESS").count(),
        files.len(),
        "not every file was checked:\n{out}"
    );
}

#[test]
fn promtool_unit_tests_pass() {
    let tests = paths(&files("alerts/tests", ".yml"));
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let (ok, out) = run("promtool", &args);
    assert!(ok, "promtool test rules failed:\n{out}");
    assert!(!out.contains("FAILED"), "{out}");
}

#[test]
fn alertmanager_example_is_valid_and_routes_by_severity() {
    let cfg = repo().join("config/alertmanager.example.yml");
    let cfg = cfg.to_str().unwrap();
    let (ok, out) = run("amtool", &["check-config", cfg]);
    assert!(ok, "amtool check-config failed:\n{out}");
    let config_flag = format!("--config.file={cfg}");
    for (labels, receiver) in [
        (
            &["severity=page", "environment=prod", "dag_id=etl"][..],
            "pager",
        ),
        (&["severity=page", "environment=prod"][..], "pager"),
        (
            &["severity=ticket", "environment=prod", "dag_id=etl"][..],
            "ticket",
        ),
        (&["severity=info", "environment=prod"][..], "ticket"),
    ] {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec!["config", "routes", "test", &config_flag, &verify];
        args.extend(labels);
        let (ok, out) = run("amtool", &args);
        assert!(ok, "{labels:?} should route to {receiver}:\n{out}");
    }
    // The grouping the issue asks for: per environment and DAG.
    let text = std::fs::read_to_string(cfg).unwrap();
    assert!(
        text.contains("group_by: [environment, dag_id]"),
        "route.group_by changed:\n{text}"
    );
}

/// GitHub's anchor of a Markdown heading: lower case, spaces to '-', most
/// punctuation dropped.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            c if c.is_alphanumeric() || c == '-' || c == '_' => Some(c),
            _ => None,
        })
        .collect()
}

fn runbook_anchors() -> BTreeSet<String> {
    std::fs::read_to_string(repo().join("docs/runbooks.md"))
        .unwrap()
        .lines()
        .filter(|l| l.starts_with('#'))
        .map(|l| anchor(l.trim_start_matches('#')))
        .collect()
}

fn is_camel_case(name: &str) -> bool {
    name.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

#[test]
fn every_alert_follows_the_conventions() {
    let rules = loaded_rules();
    let alerts: Vec<_> = rules.iter().filter(|r| r["type"] == "alerting").collect();
    assert!(alerts.len() >= 20, "only {} alerts loaded", alerts.len());
    let anchors = runbook_anchors();
    let unit_tests: String = files("alerts/tests", ".yml")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let mut problems = Vec::new();
    let mut names = BTreeSet::new();
    for a in &alerts {
        let name = a["name"].as_str().unwrap();
        let mut bad = |what: String| problems.push(format!("{name}: {what}"));
        if !names.insert(name) {
            bad("defined twice".into());
        }
        if !(name.starts_with("Windsock") && is_camel_case(name)) {
            bad("not CamelCase with the Windsock prefix".into());
        }
        if a["duration"].as_f64().unwrap_or(0.0) <= 0.0 {
            bad("no `for:`".into());
        }
        let severity = a["labels"]["severity"].as_str().unwrap_or("");
        if !SEVERITIES.contains(&severity) {
            bad(format!("severity {severity:?} not in {SEVERITIES:?}"));
        }
        let ann = &a["annotations"];
        let summary = ann["summary"].as_str().unwrap_or("");
        if summary.is_empty() || !summary.ends_with('.') || summary.contains("{{") {
            bad(format!(
                "summary {summary:?} must be a static sentence ending with a period"
            ));
        }
        let description = ann["description"].as_str().unwrap_or("");
        if !description.contains("{{") {
            bad(format!(
                "description {description:?} must be templated with the values that matter"
            ));
        }
        match ann["runbook_url"].as_str() {
            Some(url) if url == format!("{RUNBOOK_BASE}{}", name.to_lowercase()) => {
                if !anchors.contains(&name.to_lowercase()) {
                    bad(format!("docs/runbooks.md has no section `## {name}`"));
                }
            }
            other => bad(format!(
                "runbook_url {other:?} is not {RUNBOOK_BASE}{}",
                name.to_lowercase()
            )),
        }
        // A boundary pair: an evaluation that expects nothing, one that
        // expects this alert, in the promtool unit tests.
        let needle = format!("alertname: {name}\n");
        let count = unit_tests.matches(&needle).count();
        if count < 2 {
            bad(format!(
                "{count} eval(s) in alerts/tests/*.yml; needs a boundary pair"
            ));
        }
    }
    // No runbook section for an alert that does not exist (renamed, removed).
    for heading in std::fs::read_to_string(repo().join("docs/runbooks.md"))
        .unwrap()
        .lines()
        .filter_map(|l| l.strip_prefix("## Windsock"))
    {
        let n = format!("Windsock{}", heading.trim());
        if !names.contains(n.as_str()) {
            problems.push(format!("docs/runbooks.md: section {n} has no alert"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn thresholds_are_recording_rules_that_exist_and_are_used() {
    let rules = loaded_rules();
    let defined: BTreeSet<String> = rules
        .iter()
        .filter(|r| r["type"] == "recording")
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    let used: BTreeSet<String> = rules
        .iter()
        .filter(|r| r["type"] == "alerting")
        .flat_map(|r| promql_metric_names(r["query"].as_str().unwrap()))
        .filter(|n| n.starts_with("windsock:"))
        .collect();
    assert!(
        defined.iter().all(|n| n.starts_with("windsock:threshold:")),
        "{defined:?}"
    );
    let undefined: Vec<_> = used.difference(&defined).collect();
    let unused: Vec<_> = defined.difference(&used).collect();
    assert!(undefined.is_empty(), "used but not defined: {undefined:?}");
    assert!(unused.is_empty(), "defined but unused: {unused:?}");
    // All of them live in the one thresholds file.
    let text = std::fs::read_to_string(repo().join("alerts/thresholds.rules.yml")).unwrap();
    for n in &defined {
        assert!(
            text.contains(&format!("record: {n}\n")),
            "{n} is not in alerts/thresholds.rules.yml"
        );
    }
}

#[test]
fn every_rule_file_has_unit_tests() {
    let tests: String = files("alerts/tests", ".yml")
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    for f in rule_files() {
        let name = f.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            tests.contains(&format!("- ../{name}\n")),
            "no file in alerts/tests/ loads {name}"
        );
    }
}
