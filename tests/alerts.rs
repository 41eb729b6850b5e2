//! The alert rules (`alerts/`), their unit tests, the runbooks and the
//! Alertmanager example:
//! - `promtool check rules` and `promtool test rules` pass;
//! - `amtool check-config` passes and the routing tree sends each severity
//!   where docs/runbooks.md says;
//! - every alert follows the conventions of docs/runbooks.md (checked on the
//!   rules as Prometheus loaded them): a CamelCase name, `Airflow*` in
//!   airflow-*.rules.yml and `Windsock*` in windsock.rules.yml, `for:`,
//!   `severity` in critical/warning/info, `summary`, `description`, a
//!   `runbook_url` whose anchor is a section of docs/runbooks.md, and a
//!   boundary-pair unit test; every metric it reads carries the job
//!   selector; thresholds come from recording rules that exist and are used,
//!   and the missing-thresholds guard lists every one of them;
//! - scripts/render-alerts renders another job selector and runbook base
//!   that promtool accepts and whose unit tests still pass.

mod monitoring;

use std::collections::BTreeSet;

use monitoring::{files, loaded_rules, promql_metric_names, repo, rule_files, run, scratch_dir};

const RUNBOOK_BASE: &str = "https://github.com/windsock/windsock/blob/main/docs/runbooks.md#";
const SEVERITIES: &[&str] = &["critical", "warning", "info"];
/// The job selector the committed rules are rendered with.
const JOB_SELECTOR: &str = r#"job="windsock""#;
/// The alert that fires when a threshold recording rule is missing.
const THRESHOLDS_GUARD: &str = "WindsockAlertThresholdsMissing";

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
            &["severity=critical", "environment=prod", "dag_id=etl"][..],
            "pager",
        ),
        (&["severity=critical", "environment=prod"][..], "pager"),
        (
            &["severity=warning", "environment=prod", "dag_id=etl"][..],
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
        let prefix = if a["file"] == "windsock.rules.yml" {
            "Windsock"
        } else {
            "Airflow"
        };
        if !(name.starts_with(prefix) && is_camel_case(name)) {
            bad(format!(
                "not CamelCase with the {prefix} prefix ({})",
                a["file"]
            ));
        }
        for s in selectors_without_job(a["query"].as_str().unwrap()) {
            bad(format!("{s} lacks {JOB_SELECTOR}"));
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
        .filter_map(|l| l.strip_prefix("## "))
        .filter(|h| h.starts_with("Windsock") || h.starts_with("Airflow"))
    {
        let n = heading.trim();
        if !names.contains(n) {
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
        .filter(|r| r["type"] == "alerting" && r["name"] != THRESHOLDS_GUARD)
        .flat_map(|r| promql_metric_names(r["query"].as_str().unwrap()))
        .filter(|n| n.starts_with("windsock:"))
        .collect();
    let guard = rules
        .iter()
        .find(|r| r["name"] == THRESHOLDS_GUARD)
        .expect("the missing-thresholds guard alert");
    let guarded = promql_metric_names(guard["query"].as_str().unwrap());
    assert_eq!(
        guarded, defined,
        "{THRESHOLDS_GUARD} must check exactly the threshold rules"
    );
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

/// The metric selectors (`airflow_*`, `windsock_*`, `up`) of a PromQL query
/// whose matchers lack the job selector. Prometheus prints a loaded query
/// with the matchers as written, so a plain scan is enough.
fn selectors_without_job(query: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = query.as_bytes();
    let mut i = 0;
    let mut depth = 0;
    while i < bytes.len() {
        let c = bytes[i] as char;
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '"' | '\'' => {
                // Skip string literals (label values, label_replace args).
                let end = query[i + 1..].find(c).map_or(query.len(), |p| i + 1 + p);
                i = end + 1;
                continue;
            }
            _ => {}
        }
        let after_word = i > 0 && {
            let p = bytes[i - 1];
            p.is_ascii_alphanumeric() || p == b'_' || p == b':'
        };
        let starts_word = !after_word;
        if depth == 0 && starts_word && c.is_ascii_alphabetic() {
            let len = query[i..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(query.len() - i);
            let word = &query[i..i + len];
            let is_metric =
                word == "up" || word.starts_with("airflow_") || word.starts_with("windsock_");
            if is_metric {
                let rest = &query[i + len..];
                let matchers = rest
                    .strip_prefix('{')
                    .and_then(|r| r.find('}').map(|e| &r[..e]))
                    .unwrap_or("");
                if !matchers.split(',').any(|m| m.trim() == JOB_SELECTOR) {
                    out.push(format!("{word}{{{matchers}}}"));
                }
            }
            i += len;
            continue;
        }
        i += 1;
    }
    out
}

#[test]
fn selectors_without_job_finds_unscoped_metrics() {
    let q = r#"sum by (environment) (airflow_a{job="windsock", x="{y}"}) > on() group_left() windsock:threshold:t and airflow_b{x="1"} or up or label_replace(windsock_c{job="windsock"}, "airflow_d", "v", "", "")"#;
    assert_eq!(selectors_without_job(q), ["airflow_b{x=\"1\"}", "up{}"]);
}

/// Renders the rules with `args` into a fresh directory; the exit status and
/// the directory.
fn render(args: &[&str]) -> (bool, String, std::path::PathBuf) {
    let out = scratch_dir("render-alerts");
    let script = repo().join("scripts/render-alerts");
    let mut all: Vec<&str> = args.to_vec();
    let dir = out.display().to_string();
    all.push(&dir);
    let (ok, log) = run(script.to_str().unwrap(), &all);
    (ok, log, out)
}

#[test]
fn render_alerts_rewrites_the_job_selector_and_runbook_base() {
    let base = "https://wiki.example.com/airflow&ops|runbooks#";
    let (ok, log, dir) = render(&[
        "--job-selector",
        r#"job="airflow-windsock""#,
        "--runbook-url-base",
        base,
        "--with-tests",
    ]);
    assert!(ok, "{log}");
    let rules: Vec<String> = paths(&files(dir.to_str().unwrap(), ".rules.yml"));
    assert_eq!(rules.len(), rule_files().len());
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    let (ok, out) = run("promtool", &args);
    assert!(ok, "promtool check rules failed on the rendering:\n{out}");
    // The unit tests, rendered alike, still pass: the rewrite is consistent.
    let tests = paths(&files(dir.join("tests").to_str().unwrap(), ".yml"));
    let mut args = vec!["test", "rules"];
    args.extend(tests.iter().map(String::as_str));
    let (ok, out) = run("promtool", &args);
    assert!(ok && !out.contains("FAILED"), "rendered unit tests:\n{out}");
    let text: String = rules
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(!text.contains(JOB_SELECTOR), "default selector left over");
    assert!(
        !text.contains(RUNBOOK_BASE),
        "default runbook base left over"
    );
    let alerts = text.matches("- alert: ").count();
    assert_eq!(
        text.matches(&format!("runbook_url: {base}")).count(),
        alerts
    );
    assert!(text.contains(r#"airflow_zombie_task_candidates{job="airflow-windsock"}"#));
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn render_alerts_takes_any_matcher_list_and_refuses_bad_input() {
    let (ok, log, dir) = render(&[
        "--job-selector",
        r#"namespace="airflow",job=~"windsock|canary""#,
    ]);
    assert!(ok, "{log}");
    let rules = paths(&files(dir.to_str().unwrap(), ".rules.yml"));
    let mut args = vec!["check", "rules"];
    args.extend(rules.iter().map(String::as_str));
    let (ok, out) = run("promtool", &args);
    assert!(ok, "promtool check rules failed on the rendering:\n{out}");
    let _ = std::fs::remove_dir_all(dir);
    for (args, says) in [
        (&["--job-selector", r#"{job="x"}"#][..], "without braces"),
        (&["--runbook-url-base", "wiki/runbooks#"][..], "http(s) URL"),
        (
            &["--job-selector", r#"job=~"a|b""#, "--with-tests"][..],
            "single job=",
        ),
        (&["--frobnicate"][..], "unknown option"),
    ] {
        let script = repo().join("scripts/render-alerts");
        let out = std::process::Command::new(script)
            .args(args)
            .arg(scratch_dir("render-bad"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}
