//! Shared support for the monitoring-as-code tests (`tests/alerts.rs`,
//! `tests/metric_names.rs`, `tests/dashboards.rs`, `tests/alerting_e2e.rs`):
//! the repository's rule files and dashboards, child processes (Prometheus,
//! Alertmanager, promtool, amtool) with captured output and kill-on-drop, a
//! minimal HTTP/1.0 client, and a PromQL metric-name extractor.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeSet;
use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Files of `dir` (relative to the repository) whose name ends in `suffix`, sorted.
pub fn files(dir: &str, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo().join(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    assert!(!v.is_empty(), "no {dir}/*{suffix}");
    v
}

/// `alerts/*.rules.yml`.
pub fn rule_files() -> Vec<PathBuf> {
    files("alerts", ".rules.yml")
}

/// `dashboards/*.json`, parsed.
pub fn dashboards() -> Vec<(PathBuf, serde_json::Value)> {
    files("dashboards", ".json")
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let v = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{}: invalid JSON: {e}", p.display()));
            (p, v)
        })
        .collect()
}

/// Every panel of a dashboard, rows' nested panels included (rows excluded).
pub fn panels(dashboard: &serde_json::Value) -> Vec<&serde_json::Value> {
    fn walk<'a>(list: &'a serde_json::Value, out: &mut Vec<&'a serde_json::Value>) {
        for p in list.as_array().into_iter().flatten() {
            if p["type"] == "row" {
                walk(&p["panels"], out);
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// The query string of a dashboard variable (`query` is a string, or an
/// object with a `query` field in newer Grafana exports).
pub fn variable_query(var: &serde_json::Value) -> Option<&str> {
    var["query"]
        .as_str()
        .or_else(|| var["query"]["query"].as_str())
}

/// Runs a program to completion; a missing program fails the test with a hint.
pub fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e}); {}", install_hint(program)));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Where a tool comes from (`.ci/run` installs all of them).
pub fn install_hint(program: &str) -> &'static str {
    match program {
        "prometheus" | "promtool" => "install the Debian package prometheus (.ci/run does)",
        "prometheus-alertmanager" | "amtool" => {
            "install the Debian package prometheus-alertmanager (.ci/run does)"
        }
        "npm" | "node" => "install Node.js with npm (.ci/run checks for it)",
        _ => "see .ci/run",
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process whose stdout and stderr are collected; killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    log: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `program` with `args`.
    pub fn spawn(program: &str, args: &[String]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} ({e}); {}", install_hint(program)));
        let log = Arc::new(Mutex::new(String::new()));
        let out = child.stdout.take().unwrap();
        let err = child.stderr.take().unwrap();
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let sink = log.clone();
            std::thread::spawn(move || {
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    let mut l = sink.lock().unwrap();
                    l.push_str(&line);
                    l.push('\n');
                }
            });
        }
        Proc {
            name: program.to_owned(),
            child,
            log,
        }
    }

    /// Everything it printed so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Fails the test (with its log) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!(
                "{} exited with {status}; output:\n{}",
                self.name,
                self.log()
            );
        }
    }

    /// Polls `GET path` until it answers 200 (bounded).
    pub fn wait_http_ok(&mut self, addr: SocketAddr, path: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            self.assert_running();
            if let Ok((200, _)) = try_get(addr, path) {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{} at {addr} did not answer 200 on {path} within {timeout:?}; output:\n{}",
                    self.name,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus on loopback with `config` (YAML text), its data in `dir`.
pub fn start_prometheus(config: &str, dir: &Path, extra: &[&str]) -> (Proc, SocketAddr) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("prometheus.yml");
    std::fs::write(&cfg, config).unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut args = vec![
        format!("--config.file={}", cfg.display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address={addr}"),
        "--log.level=warn".to_owned(),
    ];
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut p = Proc::spawn("prometheus", &args);
    p.wait_http_ok(addr, "/-/ready", Duration::from_secs(60));
    (p, addr)
}

/// The alerting and recording rules of `alerts/*.rules.yml` as Prometheus
/// itself loaded them (`/api/v1/rules`): `data.groups[].rules[]` with
/// `name`, `query`, `duration`, `labels`, `annotations`, `type`, plus
/// `file`: the rule file's name (e.g. `windsock.rules.yml`). Using
/// Prometheus' own parser avoids a YAML dependency and any guessing.
pub fn loaded_rules() -> Vec<serde_json::Value> {
    let dir = scratch_dir("rules");
    let files: Vec<String> = rule_files()
        .iter()
        .map(|p| format!("  - {}\n", p.display()))
        .collect();
    let config = format!(
        "global:\n  evaluation_interval: 1h\nrule_files:\n{}",
        files.concat()
    );
    let (prom, addr) = start_prometheus(&config, &dir, &[]);
    let (status, body) = get(addr, "/api/v1/rules");
    assert_eq!(status, 200, "{body}\n{}", prom.log());
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let rules: Vec<serde_json::Value> = v["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| {
            let file = std::path::Path::new(g["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            let mut rules = g["rules"].as_array().unwrap().clone();
            for r in &mut rules {
                r["file"] = file.clone().into();
            }
            rules
        })
        .collect();
    drop(prom);
    let _ = std::fs::remove_dir_all(&dir);
    rules
}

/// A fresh directory for one test's files.
pub fn scratch_dir(what: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let d = std::env::temp_dir().join(format!(
        "windsock-{what}-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// `GET path` over HTTP/1.0 (no chunked encoding to undo): status and body.
pub fn try_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

/// `GET path`, failing the test on a connection error.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    try_get(addr, path).unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// URL-encodes a query-string value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

// --- PromQL metric names ------------------------------------------------------

const KEYWORDS: &[&str] = &[
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
    "atan2",
    // Aggregation operators are reserved words, and may be followed by
    // `by (...)`/`without (...)` instead of `(`.
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
];

/// Keywords followed by a parenthesised list of label names.
const LABEL_LIST: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
];

/// The metric names a PromQL expression selects: vector selectors
/// (`name`, `name{...}`, `{__name__="name"}`), recording-rule names included.
/// Not names: functions and aggregations (an identifier followed by `(`),
/// keywords, label names (inside `{}` and after by/without/on/ignoring/
/// group_left/group_right), strings, numbers, durations and everything in
/// `[...]`, and Grafana variables (`$x`, `${x}`, `[[x]]`).
pub fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    let c: Vec<char> = expr.chars().collect();
    let mut out = BTreeSet::new();
    let mut i = 0;
    let mut after_label_kw = false;
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(&c, i);
        } else if ch == '#' {
            // A comment runs to the end of the line.
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '[' {
            i = skip_to_close(&c, i, '[', ']');
        } else if ch == '{' {
            let end = skip_to_close(&c, i, '{', '}');
            if let Some(n) = name_matcher(&c[i + 1..end.saturating_sub(1)]) {
                out.insert(n);
            }
            i = end;
        } else if ch == '$' {
            // $name or ${name}
            i += 1;
            if i < c.len() && c[i] == '{' {
                i = skip_to_close(&c, i, '{', '}');
            } else {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
            }
        } else if ch == '(' && after_label_kw {
            i = skip_to_close(&c, i, '(', ')');
            after_label_kw = false;
        } else if ch.is_ascii_digit()
            || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit))
        {
            // Numbers (1e3, 0x1f, 1.5) and durations (5m, 1h30m).
            while i < c.len() && (c[i].is_alphanumeric() || c[i] == '.' || c[i] == '_') {
                i += 1;
            }
        } else if ch.is_ascii_alphabetic() || ch == '_' || ch == ':' {
            let start = i;
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '_' || c[i] == ':') {
                i += 1;
            }
            let word: String = c[start..i].iter().collect();
            let mut j = i;
            while j < c.len() && c[j].is_whitespace() {
                j += 1;
            }
            let next = c.get(j).copied();
            let lower = word.to_ascii_lowercase();
            if LABEL_LIST.contains(&lower.as_str()) {
                after_label_kw = true;
                continue;
            }
            after_label_kw = false;
            if KEYWORDS.contains(&lower.as_str()) || next == Some('(') {
                continue;
            }
            out.insert(word);
        } else {
            if !ch.is_whitespace() {
                after_label_kw = false;
            }
            i += 1;
        }
    }
    out
}

/// Metric names used by a Grafana Prometheus variable query:
/// `label_values(selector, label)`, `label_values(label)`, `label_names()`,
/// `metrics(regex)`, `query_result(expr)`, or plain PromQL.
pub fn grafana_variable_metric_names(query: &str) -> BTreeSet<String> {
    let q = query.trim();
    if let Some(inner) = strip_call(q, "label_values") {
        // The selector is everything before the last top-level comma.
        return match last_top_level_comma(inner) {
            Some(pos) => promql_metric_names(&inner[..pos]),
            None => BTreeSet::new(),
        };
    }
    if strip_call(q, "label_names").is_some() || strip_call(q, "metrics").is_some() {
        return BTreeSet::new();
    }
    if let Some(inner) = strip_call(q, "query_result") {
        return promql_metric_names(inner);
    }
    promql_metric_names(q)
}

/// The PromQL a Grafana variable query runs (for executing it against a
/// Prometheus): the selector of `label_values(selector, label)`, the
/// expression of `query_result(expr)`, or the query itself.
pub fn grafana_variable_promql(query: &str) -> Option<String> {
    let q = query.trim();
    if let Some(inner) = strip_call(q, "label_values") {
        return last_top_level_comma(inner).map(|pos| inner[..pos].trim().to_owned());
    }
    if let Some(inner) = strip_call(q, "query_result") {
        return Some(inner.trim().to_owned());
    }
    if strip_call(q, "label_names").is_some() || strip_call(q, "metrics").is_some() {
        return None;
    }
    Some(q.to_owned())
}

fn strip_call<'a>(q: &'a str, f: &str) -> Option<&'a str> {
    q.strip_prefix(f)?
        .trim_start()
        .strip_prefix('(')?
        .strip_suffix(')')
}

fn last_top_level_comma(s: &str) -> Option<usize> {
    let mut depth = 0i32;
    let mut last = None;
    let mut quote: Option<char> = None;
    for (i, ch) in s.char_indices() {
        match (quote, ch) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'' | '`') => quote = Some(ch),
            (None, '(' | '{' | '[') => depth += 1,
            (None, ')' | '}' | ']') => depth -= 1,
            (None, ',') if depth == 0 => last = Some(i),
            _ => {}
        }
    }
    last
}

/// `__name__="x"` inside a label matcher list.
fn name_matcher(inner: &[char]) -> Option<String> {
    let s: String = inner.iter().collect();
    for part in s.split(',') {
        let part = part.trim();
        if let Some(rest) = part.strip_prefix("__name__") {
            let rest = rest.trim_start();
            if let Some(v) = rest.strip_prefix('=').filter(|r| !r.starts_with('~')) {
                let v = v.trim().trim_matches(|c| c == '"' || c == '\'' || c == '`');
                return Some(v.to_owned());
            }
        }
    }
    None
}

fn skip_string(c: &[char], start: usize) -> usize {
    let q = c[start];
    let mut i = start + 1;
    while i < c.len() {
        if c[i] == '\\' && q != '`' {
            i += 2;
            continue;
        }
        if c[i] == q {
            return i + 1;
        }
        i += 1;
    }
    i
}

/// Index just past the bracket matching the one at `start`, skipping strings.
fn skip_to_close(c: &[char], start: usize, open: char, close: char) -> usize {
    let mut depth = 0;
    let mut i = start;
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = skip_string(c, i);
            continue;
        }
        if ch == open {
            depth += 1;
        } else if ch == close {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
        i += 1;
    }
    i
}

/// The metric names windsock exports, as exposed (`_total`, `_info`): the
/// backticked first column of the tables of `docs/metrics.md` text whose
/// first header is `metric` (other tables list diagnostics or queries).
pub fn names_in_metrics_doc(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut in_metric_table = false;
    for line in markdown.lines() {
        if !line.starts_with('|') {
            in_metric_table = false;
        } else if line.starts_with("| metric |") {
            in_metric_table = true;
        } else if in_metric_table
            && let Some(name) = line.strip_prefix("| `").and_then(|l| l.split('`').next())
        {
            out.insert(name.to_owned());
        }
    }
    out
}
