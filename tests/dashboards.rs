//! The Grafana dashboards (`dashboards/*.json`):
//! - structure: stable unique uids, the shared `windsock` tag, the
//!   datasource and environment variables, a unit on every panel, panels on
//!   the `$datasource`, queries filtered by environment, `$__rate_interval`
//!   in every rate()/irate()/increase(), tag-based links between them;
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

/// Metrics without an `environment` label (windsock's process-wide ones).
const NO_ENVIRONMENT: &[&str] = &[
    "windsock_build_info",
    "windsock_series",
    "windsock_series_dropped",
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
        if !vars.iter().any(|v| {
            v["name"] == "environment"
                && v["type"] == "query"
                && variable_query(v) == Some("label_values(windsock_up, environment)")
        }) {
            bad("no `environment` variable from label_values(windsock_up, environment)".into());
        }
        for v in &vars {
            if v["type"] == "query" && v["datasource"]["uid"] != "${datasource}" {
                bad(format!("variable {} does not use $datasource", v["name"]));
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
                let names = monitoring::promql_metric_names(expr);
                let scoped = names.iter().all(|n| NO_ENVIRONMENT.contains(&n.as_str()));
                if !scoped && !expr.contains("environment=\"$environment\"") {
                    bad(format!("query not filtered by environment: {expr}"));
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
    let dag = vars
        .iter()
        .find(|v| v["name"] == "dag_id")
        .expect("a dag_id variable");
    assert_eq!(dag["type"], "query");
    assert!(
        variable_query(dag)
            .unwrap()
            .contains("environment=\"$environment\"")
    );
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
