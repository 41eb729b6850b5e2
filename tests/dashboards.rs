//! The Grafana dashboards (`dashboards/*.json`):
//! - structure: stable unique uids, the shared `windsock` tag, the
//!   variables `datasource`, `job`, `instance` (single-select: windsock
//!   replicas export the same data, so one at a time keeps sums from
//!   doubling) and `environment` (multi-select), in that order, a unit and a
//!   description on every panel, panels on the `$datasource`, every selector
//!   of every query (and of further variables) filtered by `job="$job"`,
//!   `instance="$instance"` and, where the metric has the label,
//!   `environment=~"$environment"`, `$__rate_interval` in every
//!   rate()/irate()/increase(), tag-based links between them;
//! - types: each file type-checks against Grafana's own schema types
//!   (npm `@grafana/schema`) with `tsc --strict`, by compiling
//!   `(<json>) satisfies Json<Dashboard>`. No Grafana server can be run
//!   here; this is the check that catches wrong field types, misspelt keys
//!   and invalid enum values. Needs node and npm (`.ci/run`); the packages
//!   are installed once into target/tmp.

mod monitoring;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use monitoring::{dashboards, install_hint, panels, variable_query};

/// The dashboards the project promises, by uid.
const UIDS: &[&str] = &[
    "windsock-overview",
    "windsock-dag-performance",
    "windsock-failures",
    "windsock-scheduling",
    "windsock-metadata-db",
    "windsock-self",
];

/// Metrics without an `environment` label: Prometheus' `up` and windsock's
/// process-wide ones (docs/metrics.md; `process_*` too, see
/// [`has_environment`]).
const NO_ENVIRONMENT: &[&str] = &[
    "up",
    "windsock_build_info",
    "windsock_series",
    "windsock_series_dropped",
    "windsock_config_last_reload_successful",
    "windsock_config_last_reload_success_timestamp_seconds",
    "windsock_admin_requests_total",
    "windsock_admin_auth_failures_total",
    "windsock_admin_audit_events_total",
    "windsock_intercept_actions_total",
    "windsock_intercept_users_total",
    "windsock_intercept_leader",
    "windsock_intercept_last_poll_timestamp_seconds",
];

/// The variables every dashboard has right after `datasource`, in this
/// order (each query uses the ones before it): name, query, and whether it
/// is multi-select with an All option. `instance` is single-select: two
/// windsock replicas export the same data, and picking one keeps sums from
/// doubling.
const VARIABLES: &[(&str, &str, bool)] = &[
    ("job", "label_values(windsock_build_info, job)", false),
    (
        "instance",
        "label_values(windsock_build_info{job=\"$job\"}, instance)",
        false,
    ),
    (
        "environment",
        "label_values(windsock_up{job=\"$job\", instance=\"$instance\"}, environment)",
        true,
    ),
];

/// Pinned versions of the type checker (bump deliberately).
const NPM_PACKAGES: &[&str] = &["@grafana/schema@13.2.3", "typescript@7.0.2"];

/// Every `rate(`/`irate(`/`increase(` call's range in `expr`.
fn rate_ranges(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for f in ["rate(", "increase("] {
        let mut from = 0;
        while let Some(pos) = expr[from..].find(f) {
            let start = from + pos;
            from = start + f.len();
            // `irate(` contains `rate(`; both are checked the same way, but
            // skip other identifiers ending in rate/increase.
            let before = expr[..start].chars().last();
            if before.is_some_and(|c| c == '_' || (c.is_ascii_alphanumeric() && c != 'i')) {
                continue;
            }
            // The range of the call: the first [...] before its closing paren.
            let mut depth = 1;
            let mut range = String::from("<none>");
            for (i, c) in expr[from..].char_indices() {
                match c {
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    '[' if depth == 1 => {
                        let rest = &expr[from + i + 1..];
                        range = rest[..rest.find(']').unwrap_or(rest.len())].to_owned();
                        break;
                    }
                    _ => {}
                }
            }
            out.push(range);
        }
    }
    out
}

#[test]
fn rate_ranges_finds_every_call() {
    assert_eq!(
        rate_ranges("sum(rate(a{x=\"1\"}[$__rate_interval])) + irate(b[5m]) + increase(c[1h:1m])"),
        ["$__rate_interval", "5m", "1h:1m"]
    );
    assert!(rate_ranges("deriv(a[1h]) + heart_rate(x)").is_empty());
}

/// Whether `metric` carries an `environment` label.
fn has_environment(metric: &str) -> bool {
    !(NO_ENVIRONMENT.contains(&metric) || metric.starts_with("process_"))
}

/// One label matcher: label, operator, value (unquoted).
type Matcher = (String, String, String);

/// Every vector selector of `expr`: its metric name (`__name__="x"` for a
/// selector without a name; empty when it has neither) and its label
/// matchers. Metric names are those of `promql_metric_names`; strings,
/// ranges (`[...]`) and Grafana variables are skipped.
fn selectors(expr: &str) -> Vec<(String, Vec<Matcher>)> {
    let names = monitoring::promql_metric_names(expr);
    let c: Vec<char> = expr.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < c.len() {
        match c[i] {
            '"' | '\'' | '`' => i = past_string(&c, i),
            '[' => {
                while i < c.len() && c[i] != ']' {
                    i += 1;
                }
                i += 1;
            }
            '$' => {
                i += 1;
                if c.get(i) == Some(&'{') {
                    while i < c.len() && c[i] != '}' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            '{' => {
                let (m, end) = matchers_at(&c, i);
                let name = m
                    .iter()
                    .find(|(l, o, _)| l == "__name__" && o == "=")
                    .map(|(_, _, v)| v.clone())
                    .unwrap_or_default();
                out.push((name, m));
                i = end;
            }
            ch if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' => {
                let start = i;
                while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                    i += 1;
                }
                let word: String = c[start..i].iter().collect();
                let mut j = i;
                while j < c.len() && c[j].is_whitespace() {
                    j += 1;
                }
                if names.contains(&word) && c.get(j) != Some(&'(') {
                    if c.get(j) == Some(&'{') {
                        let (m, end) = matchers_at(&c, j);
                        out.push((word, m));
                        i = end;
                    } else {
                        out.push((word, Vec::new()));
                    }
                }
            }
            _ => i += 1,
        }
    }
    out
}

/// Index just past the string literal starting at `start`.
fn past_string(c: &[char], start: usize) -> usize {
    let q = c[start];
    let mut i = start + 1;
    while i < c.len() && c[i] != q {
        i += if c[i] == '\\' && q != '`' { 2 } else { 1 };
    }
    i + 1
}

/// The matchers of the `{...}` at `start`, and the index just past it.
fn matchers_at(c: &[char], start: usize) -> (Vec<Matcher>, usize) {
    let mut parts = vec![String::new()];
    let mut i = start + 1;
    while i < c.len() && c[i] != '}' {
        match c[i] {
            '"' | '\'' | '`' => {
                let end = past_string(c, i).min(c.len());
                parts.last_mut().unwrap().extend(&c[i..end]);
                i = end;
                continue;
            }
            ',' => parts.push(String::new()),
            ch => parts.last_mut().unwrap().push(ch),
        }
        i += 1;
    }
    let matchers = parts
        .iter()
        .map(|p| p.trim())
        .filter(|p| !p.is_empty())
        .map(|p| {
            let split = p.find(['=', '!']).unwrap_or(p.len());
            let (label, rest) = p.split_at(split);
            let op_len = if rest.starts_with("=~") || rest.starts_with('!') {
                2
            } else {
                1
            };
            let (op, value) = rest.split_at(op_len.min(rest.len()));
            let value = value.trim();
            let value = value
                .get(1..value.len().saturating_sub(1))
                .filter(|_| value.len() >= 2)
                .unwrap_or(value);
            (label.trim().to_owned(), op.to_owned(), value.to_owned())
        })
        .collect();
    (matchers, i + 1)
}

/// What is wrong with the selectors of `expr`: each must have exactly
/// `job="$job"` and `instance="$instance"` (one replica) and, when its
/// metric has the label, exactly `environment=~"$environment"` (a regex: the
/// variable is multi-select); metrics without the label must not filter on it.
fn selector_problems(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    for (name, matchers) in selectors(expr) {
        let env = has_environment(&name).then_some(("=~", "$environment"));
        for (label, want) in [
            ("job", Some(("=", "$job"))),
            ("instance", Some(("=", "$instance"))),
            ("environment", env),
        ] {
            let got: Vec<(&str, &str)> = matchers
                .iter()
                .filter(|(l, _, _)| l == label)
                .map(|(_, o, v)| (o.as_str(), v.as_str()))
                .collect();
            match want {
                Some((op, value)) if got != [(op, value)] => out.push(format!(
                    "selector {name:?} is not filtered by exactly {label}{op}\"{value}\" \
                     (has {got:?})"
                )),
                None if !got.is_empty() => out.push(format!(
                    "selector {name:?} filters on {label}, a label it does not have"
                )),
                _ => {}
            }
        }
    }
    out
}

#[test]
fn selectors_finds_every_vector_selector() {
    let found = selectors(
        r#"sum by (environment) (rate(a_total{x="1", y=~"{,}"}[$__rate_interval])) / on(environment) b
           + c offset 5m + {__name__="d", z!~"q"} and time()"#,
    );
    let s = |l: &str, o: &str, v: &str| (l.to_owned(), o.to_owned(), v.to_owned());
    assert_eq!(
        found,
        [
            (
                "a_total".to_owned(),
                vec![s("x", "=", "1"), s("y", "=~", "{,}")]
            ),
            ("b".to_owned(), vec![]),
            ("c".to_owned(), vec![]),
            (
                "d".to_owned(),
                vec![s("__name__", "=", "d"), s("z", "!~", "q")]
            ),
        ]
    );
}

#[test]
fn selector_problems_reports_unscoped_selectors() {
    let ok = r#"sum by (environment) (a{job="$job", instance="$instance", environment=~"$environment"}) / on() group_left() sum(windsock_series{job="$job", instance="$instance"})"#;
    assert_eq!(selector_problems(ok), Vec::<String>::new());
    for (expr, why) in [
        // The second selector lacks the replica.
        (
            r#"a{job="$job", instance="$instance", environment=~"$environment"} / b{job="$job", environment=~"$environment"}"#,
            "instance=",
        ),
        // Equality does not work with a multi-select variable.
        (
            r#"a{job="$job", instance="$instance", environment="$environment"}"#,
            "environment=~",
        ),
        (
            r#"a{job="$job", instance=~"$instance", environment=~"$environment"}"#,
            "instance=",
        ),
        (
            r#"windsock_build_info{job="$job", instance="$instance", environment=~"$environment"}"#,
            "does not have",
        ),
        (
            r#"process_open_fds{job="$job", instance="$instance", environment=~"$environment"}"#,
            "does not have",
        ),
    ] {
        let p = selector_problems(expr);
        assert!(p.len() == 1 && p[0].contains(why), "{expr}: {p:?}");
    }
}

#[test]
fn dashboards_follow_the_conventions() {
    let all = dashboards();
    let mut problems = Vec::new();
    let mut uids = BTreeSet::new();
    for (path, d) in &all {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut bad = |what: String| problems.push(format!("{file}: {what}"));
        let uid = d["uid"].as_str().unwrap_or("");
        if !uids.insert(uid.to_owned()) {
            bad(format!("uid {uid:?} used twice"));
        }
        if !UIDS.contains(&uid) {
            bad(format!("uid {uid:?} is not one of {UIDS:?}"));
        }
        if uid.len() > 40 {
            bad("uid longer than Grafana's 40 characters".into());
        }
        if !d["title"].as_str().unwrap_or("").starts_with("windsock / ") {
            bad("title does not start with `windsock / `".into());
        }
        if !d["tags"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "windsock"))
        {
            bad("no `windsock` tag".into());
        }
        if d["schemaVersion"].as_u64().unwrap_or(0) < 36 {
            bad("schemaVersion below 36 (Grafana 9)".into());
        }
        if !d["links"].as_array().is_some_and(|l| {
            l.iter().any(|l| {
                l["type"] == "dashboards"
                    && l["asDropdown"] == true
                    && l["tags"]
                        .as_array()
                        .is_some_and(|t| t.iter().any(|t| t == "windsock"))
            })
        }) {
            bad("no dropdown of links to the other windsock dashboards".into());
        }
        let vars = d["templating"]["list"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !vars.iter().any(|v| {
            v["name"] == "datasource" && v["type"] == "datasource" && v["query"] == "prometheus"
        }) {
            bad("no `datasource` variable of type datasource (prometheus)".into());
        }
        let names: Vec<&str> = vars
            .iter()
            .map(|v| v["name"].as_str().unwrap_or(""))
            .collect();
        let wanted: Vec<&str> = VARIABLES.iter().map(|(n, _, _)| *n).collect();
        let first: Vec<&str> = std::iter::once("datasource")
            .chain(wanted.iter().copied())
            .collect();
        if names.get(..first.len()) != Some(&first[..]) {
            bad(format!("variables {names:?} do not start with {first:?}"));
        }
        for &(name, query, multi) in VARIABLES {
            let Some(v) = vars.iter().find(|v| v["name"] == name) else {
                continue;
            };
            if v["type"] != "query" || variable_query(v) != Some(query) {
                bad(format!("variable {name} is not the query {query}"));
            }
            if v["multi"] != multi || v["includeAll"] != multi {
                bad(format!(
                    "variable {name}: multi and includeAll must be {multi}"
                ));
            }
            if multi && v["allValue"] != ".*" {
                bad(format!("variable {name}: allValue is not .*"));
            }
            if v["refresh"] != 1 {
                bad(format!(
                    "variable {name} is not refreshed on load (refresh 1)"
                ));
            }
            if name == "instance" && v["description"].as_str().is_none_or(str::is_empty) {
                bad("variable instance has no description".into());
            }
        }
        for v in &vars {
            if v["type"] == "query" && v["datasource"]["uid"] != "${datasource}" {
                bad(format!("variable {} does not use $datasource", v["name"]));
            }
            // Further variables are scoped like the panels' queries.
            let name = v["name"].as_str().unwrap_or("");
            if v["type"] == "query" && !wanted.contains(&name) {
                let promql = variable_query(v).and_then(monitoring::grafana_variable_promql);
                for p in selector_problems(promql.as_deref().unwrap_or("")) {
                    bad(format!("variable {name}: {p}"));
                }
            }
        }
        let ps = panels(d);
        if ps.len() < 6 {
            bad(format!("only {} panels", ps.len()));
        }
        let mut ids = BTreeSet::new();
        for p in ps {
            let title = p["title"].as_str().unwrap_or("").to_owned();
            let mut bad = |what: String| problems.push(format!("{file}: panel {title:?}: {what}"));
            if !ids.insert(p["id"].as_u64().unwrap_or(0)) {
                bad("duplicate or missing id".into());
            }
            if p["fieldConfig"]["defaults"]["unit"]
                .as_str()
                .is_none_or(str::is_empty)
            {
                bad("no unit (fieldConfig.defaults.unit)".into());
            }
            if p["description"]
                .as_str()
                .is_none_or(|s| s.trim().is_empty())
            {
                bad("no description".into());
            }
            if p["datasource"]["uid"] != "${datasource}" {
                bad("datasource is not ${datasource}".into());
            }
            let g = &p["gridPos"];
            let (x, w) = (g["x"].as_u64().unwrap_or(99), g["w"].as_u64().unwrap_or(99));
            if x + w > 24 || g["h"].as_u64().unwrap_or(0) == 0 {
                bad(format!("gridPos {g} outside the 24-column grid"));
            }
            let targets = p["targets"].as_array().cloned().unwrap_or_default();
            if targets.is_empty() {
                bad("no query".into());
            }
            for t in targets {
                let expr = t["expr"].as_str().unwrap_or("");
                for range in rate_ranges(expr) {
                    if range != "$__rate_interval" {
                        bad(format!("[{range}] instead of [$__rate_interval] in {expr}"));
                    }
                }
                for problem in selector_problems(expr) {
                    bad(format!("{problem} in {expr}"));
                }
            }
        }
    }
    let missing: Vec<_> = UIDS.iter().filter(|u| !uids.contains(**u)).collect();
    if !missing.is_empty() {
        problems.push(format!("missing dashboards: {missing:?}"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn dag_performance_drills_down_by_dag() {
    let (_, d) = dashboards()
        .into_iter()
        .find(|(_, d)| d["uid"] == "windsock-dag-performance")
        .expect("dag-performance dashboard");
    let vars = d["templating"]["list"].as_array().unwrap();
    let position = |name: &str| vars.iter().position(|v| v["name"] == name);
    let dag = &vars[position("dag_id").expect("a dag_id variable")];
    assert_eq!(dag["type"], "query");
    // After the variables its query uses, so that Grafana resolves them first.
    assert!(
        position("dag_id") > position("environment").max(position("instance")),
        "dag_id comes before the variables it depends on"
    );
    let query = variable_query(dag).unwrap();
    for scope in [
        "job=\"$job\"",
        "instance=\"$instance\"",
        "environment=~\"$environment\"",
    ] {
        assert!(query.contains(scope), "dag_id ignores {scope}: {query}");
    }
    for p in panels(&d) {
        for t in p["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap();
            assert!(
                expr.contains("dag_id=~\"$dag_id\""),
                "panel {} ignores $dag_id: {expr}",
                p["title"]
            );
        }
    }
}

/// The npm cache: target/tmp/windsock-npm (outside the source tree).
fn npm_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("windsock-npm")
}

fn ensure_npm_packages(dir: &Path) -> PathBuf {
    let tsc = dir.join("node_modules/.bin/tsc");
    let schema = dir.join("node_modules/@grafana/schema/package.json");
    let wanted = NPM_PACKAGES[0].rsplit('@').next().unwrap();
    let have = std::fs::read_to_string(&schema).unwrap_or_default();
    if tsc.exists() && have.contains(&format!("\"version\": \"{wanted}\"")) {
        return tsc;
    }
    std::fs::create_dir_all(dir).unwrap();
    let mut args = vec![
        "install",
        "--prefix",
        dir.to_str().unwrap(),
        "--no-audit",
        "--no-fund",
        "--loglevel=error",
        "--no-save",
    ];
    args.extend(NPM_PACKAGES);
    let out = Command::new("npm")
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run npm ({e}); {}", install_hint("npm")));
    assert!(
        out.status.success() && tsc.exists(),
        "npm install {NPM_PACKAGES:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    tsc
}

/// JSON cannot name TypeScript enum members; `Json<T>` maps every string
/// enum to the union of its values (`${E}`) and leaves everything else as
/// Grafana's types say, so strings like "absolute" are checked against the
/// enum's values.
const PRELUDE: &str = "import type { Dashboard } from '@grafana/schema';\n\
type Json<T> = T extends string ? `${T}` : T extends readonly (infer U)[] ? Json<U>[] : \
T extends object ? { [K in keyof T]: Json<T[K]> } : T;\n";

fn type_check(tsc: &Path, dir: &Path, files: &[(String, String)]) -> (bool, String) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    for (name, json) in files {
        std::fs::write(
            dir.join(format!("{name}.ts")),
            format!("{PRELUDE}export const dashboard = (\n{json}\n) satisfies Json<Dashboard>;\n"),
        )
        .unwrap();
    }
    std::fs::write(
        dir.join("tsconfig.json"),
        r#"{"compilerOptions": {"strict": true, "noEmit": true, "module": "nodenext",
  "moduleResolution": "nodenext", "target": "es2022", "skipLibCheck": true, "typeRoots": []},
  "include": ["*.ts"]}"#,
    )
    .unwrap();
    let out = Command::new(tsc)
        .args(["-p", dir.to_str().unwrap()])
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn dashboards_type_check_against_grafana_schema() {
    let tsc = ensure_npm_packages(&npm_dir());
    let files: Vec<(String, String)> = monitoring::files("dashboards", ".json")
        .iter()
        .map(|p| {
            (
                p.file_stem().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(p).unwrap(),
            )
        })
        .collect();
    // Inside the npm directory, so that `@grafana/schema` resolves from its
    // node_modules.
    let work = npm_dir().join(format!("check-{}", std::process::id()));
    let (ok, out) = type_check(&tsc, &work, &files);
    assert!(
        ok,
        "dashboards do not type-check against @grafana/schema:\n{out}"
    );

    // The check can fail: a wrong type, an unknown key and a bad enum value.
    let (_, overview) = &files.iter().find(|(n, _)| n == "overview").unwrap();
    for (broken, why) in [
        (
            overview.replacen("\"schemaVersion\": 39", "\"schemaVersion\": \"39\"", 1),
            "TS2322",
        ),
        (overview.replacen("\"uid\":", "\"uuid\":", 1), "TS2353"),
        (
            overview.replacen("\"mode\": \"absolute\"", "\"mode\": \"absolut\"", 1),
            "absolut",
        ),
    ] {
        assert_ne!(&broken, overview, "mutation did not apply");
        let (ok, out) = type_check(&tsc, &work, &[("broken".into(), broken)]);
        assert!(
            !ok && out.contains(why),
            "a broken dashboard passed ({why}):\n{out}"
        );
    }
    let _ = std::fs::remove_dir_all(&work);
}
