//! End to end, with the real thing at every step: windsock reads a scenario
//! database (the demo DB, which has a zombie candidate, plus a windsock
//! deadline that a long run misses), a real Prometheus (Debian package)
//! scrapes it and evaluates the repository's alert rules, and a real
//! Alertmanager, configured from config/alertmanager.example.yml, delivers
//! the notifications to a webhook receiver inside this test.
//!
//! The test asserts that the pages for the zombie (dag_id, task_id) and the
//! deadline miss (dag_id, deadline) arrive at the pager receiver, then
//! removes both causes in the database and asserts that they resolve. Then it
//! runs every dashboard query against that Prometheus and fails on any query
//! error.
//!
//! Two test-only changes, both textual and asserted to apply: the rules'
//! `for:` durations become 1s (otherwise the test would wait 5 minutes for
//! the zombie page), and the Alertmanager example's receiver URLs and
//! group_wait/group_interval/repeat_interval point at the test and shrink to
//! seconds. Everything else (expressions, labels, annotations, routing tree,
//! inhibition) is the committed configuration.

mod common;
mod monitoring;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Windsock, wait_ready};
use monitoring::{Proc, dashboards, enc, free_port, get, panels, repo, rule_files, variable_query};
use sqlx::Connection as _;

const ZOMBIE: (&str, &str) = ("sync_crm_us", "pull_accounts");
const DEADLINE_DAG: &str = "build_marts_us";
const DEADLINE: &str = "e2e_max_run";
/// Upper bound of every wait for a notification.
const NOTIFY_WITHIN: Duration = Duration::from_secs(90);

/// One alert as a webhook delivered it.
#[derive(Debug, Clone)]
struct Delivered {
    path: String,
    status: String,
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

/// A webhook receiver on loopback: collects every POSTed alert.
struct Webhook {
    addr: SocketAddr,
    got: Arc<Mutex<Vec<Delivered>>>,
}

impl Webhook {
    fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let got = Arc::new(Mutex::new(Vec::new()));
        let sink = got.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                if reader.read_line(&mut request_line).is_err() {
                    continue;
                }
                let path = request_line
                    .split_whitespace()
                    .nth(1)
                    .unwrap_or("")
                    .to_owned();
                let mut length = 0usize;
                loop {
                    let mut h = String::new();
                    if reader.read_line(&mut h).unwrap_or(0) == 0 || h == "\r\n" {
                        break;
                    }
                    if let Some((k, v)) = h.split_once(':')
                        && k.eq_ignore_ascii_case("content-length")
                    {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
                    continue;
                };
                let map = |o: &serde_json::Value| -> BTreeMap<String, String> {
                    o.as_object()
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                        .collect()
                };
                let mut g = sink.lock().unwrap();
                for a in v["alerts"].as_array().into_iter().flatten() {
                    g.push(Delivered {
                        path: path.clone(),
                        status: a["status"].as_str().unwrap_or("").to_owned(),
                        labels: map(&a["labels"]),
                        annotations: map(&a["annotations"]),
                    });
                }
            }
        });
        Webhook { addr, got }
    }

    fn all(&self) -> Vec<Delivered> {
        self.got.lock().unwrap().clone()
    }
}

/// The processes of the test; dropped (killed) in reverse order of start.
struct Stack {
    windsock: Windsock,
    alertmanager: Proc,
    prometheus: Proc,
    prom_addr: SocketAddr,
    am_addr: SocketAddr,
}

impl Stack {
    /// Everything the processes logged, for failure messages.
    fn logs(&self) -> String {
        format!(
            "--- windsock ---\n{}\n--- prometheus ---\n{}\n--- alertmanager ---\n{}",
            tail(&self.windsock.log()),
            tail(&self.prometheus.log()),
            tail(&self.alertmanager.log())
        )
    }
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Copies alerts/*.rules.yml into `dir` with every `for:` set to 1s.
fn fast_rules(dir: &Path) -> Vec<String> {
    std::fs::create_dir_all(dir).unwrap();
    let mut out = Vec::new();
    let mut alerts = 0;
    let mut shortened = 0;
    for f in rule_files() {
        let text = std::fs::read_to_string(&f).unwrap();
        alerts += text.matches("- alert: ").count();
        let fast: String = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                if t.starts_with("for: ") {
                    shortened += 1;
                    format!("{}for: 1s\n", &l[..l.len() - t.len()])
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let dest = dir.join(f.file_name().unwrap());
        std::fs::write(&dest, fast).unwrap();
        out.push(dest.display().to_string());
    }
    assert!(
        alerts > 0 && shortened == alerts,
        "{shortened} `for:` lines for {alerts} alerts"
    );
    out
}

/// config/alertmanager.example.yml with the test's receiver and short timers.
fn alertmanager_config(hook: SocketAddr) -> String {
    let text = std::fs::read_to_string(repo().join("config/alertmanager.example.yml")).unwrap();
    let base = "http://alert-bridge.example.internal:9095";
    assert_eq!(
        text.matches(base).count(),
        2,
        "receiver URLs changed in the example"
    );
    let mut timers = 0;
    let out: String = text
        .replace(base, &format!("http://{hook}"))
        .lines()
        .map(|l| {
            let t = l.trim_start();
            let indent = &l[..l.len() - t.len()];
            for key in ["group_wait:", "group_interval:", "repeat_interval:"] {
                if t.starts_with(key) {
                    timers += 1;
                    let v = if key == "repeat_interval:" {
                        "1h"
                    } else {
                        "1s"
                    };
                    return format!("{indent}{key} {v}\n");
                }
            }
            format!("{l}\n")
        })
        .collect();
    assert!(
        timers >= 3,
        "no group_wait/group_interval/repeat_interval found"
    );
    out
}

fn start_stack(dir: &Path, db_path: &Path) -> (Stack, Webhook) {
    // windsock, on the scenario DB, with a deadline the demo's one-hour
    // build_marts_us run misses; fast intervals for the two diagnostics the
    // test waits for.
    let cfg = dir.join("windsock.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[collection]
startup_jitter = "0s"

[diagnostics.overrides.zombie_tasks]
interval = "2s"

[diagnostics.overrides.run_history]
interval = "2s"

[[deadlines]]
name = "{DEADLINE}"
dag_id = "{DEADLINE_DAG}"
max_run_duration = "30m"

[[targets]]
environment = "e2e"
url = "sqlite:///{}"
"#,
            db_path.display()
        ),
    )
    .unwrap();
    let windsock = Windsock::start(
        &[
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    wait_ready(windsock.addr);

    let hook = Webhook::start();

    let am_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let am_cfg = dir.join("alertmanager.yml");
    std::fs::write(&am_cfg, alertmanager_config(hook.addr)).unwrap();
    let mut alertmanager = Proc::spawn(
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", am_cfg.display()),
            format!("--storage.path={}", dir.join("am").display()),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".to_owned(),
        ],
    );
    alertmanager.wait_http_ok(am_addr, "/-/ready", Duration::from_secs(60));

    let rules: String = fast_rules(&dir.join("rules"))
        .iter()
        .map(|f| format!("  - {f}\n"))
        .collect();
    let prom_cfg = format!(
        r#"global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
{rules}alerting:
  alertmanagers:
    - static_configs:
        - targets: ["{am_addr}"]
scrape_configs:
  - job_name: windsock
    static_configs:
      - targets: ["{}"]
"#,
        windsock.addr
    );
    let (prometheus, prom_addr) = monitoring::start_prometheus(
        &prom_cfg,
        &dir.join("prometheus"),
        &["--rules.alert.resend-delay=1s"],
    );
    (
        Stack {
            windsock,
            alertmanager,
            prometheus,
            prom_addr,
            am_addr,
        },
        hook,
    )
}

fn matches(d: &Delivered, status: &str, want: &[(&str, &str)]) -> bool {
    d.status == status
        && want
            .iter()
            .all(|(k, v)| d.labels.get(*k).map(String::as_str) == Some(*v))
}

/// Waits (bounded) until every expectation has a matching delivery.
fn wait_for(stack: &mut Stack, hook: &Webhook, status: &str, expected: &[&[(&str, &str)]]) {
    let deadline = Instant::now() + NOTIFY_WITHIN;
    loop {
        let got = hook.all();
        let missing: Vec<_> = expected
            .iter()
            .filter(|want| !got.iter().any(|d| matches(d, status, want)))
            .collect();
        if missing.is_empty() {
            return;
        }
        stack.alertmanager.assert_running();
        stack.prometheus.assert_running();
        if Instant::now() > deadline {
            let seen: Vec<String> = got
                .iter()
                .map(|d| format!("{} {} {:?}", d.path, d.status, d.labels))
                .collect();
            let (_, alerts) = get(stack.prom_addr, "/api/v1/alerts");
            panic!(
                "no {status} notification within {NOTIFY_WITHIN:?} for {missing:?}\n\
                 delivered:\n  {}\nPrometheus alerts: {alerts}\n{}",
                seen.join("\n  "),
                stack.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Runs one instant query; the Prometheus answer's status and error.
fn query(addr: SocketAddr, promql: &str) -> Result<usize, String> {
    let (code, body) = get(addr, &format!("/api/v1/query?query={}", enc(promql)));
    let v: serde_json::Value =
        serde_json::from_str(&body).map_err(|e| format!("HTTP {code}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("HTTP {code}: {} {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().map_or(1, Vec::len))
}

/// Replaces Grafana variables with values for this Prometheus: the scrape
/// job is `windsock`; its instance (host:port) is not known here, so the
/// dashboards' equality `instance="$instance"` becomes `instance=~".*"`.
fn substitute(expr: &str) -> String {
    expr.replace("$__rate_interval", "1m")
        .replace("instance=\"${instance}\"", "instance=~\".*\"")
        .replace("instance=\"$instance\"", "instance=~\".*\"")
        .replace("${instance}", ".*")
        .replace("$instance", ".*")
        .replace("${job}", "windsock")
        .replace("$job", "windsock")
        .replace("${environment}", "e2e")
        .replace("$environment", "e2e")
        .replace("${dag_id}", ".*")
        .replace("$dag_id", ".*")
        .replace("${datasource}", "prometheus")
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_arrive_and_resolve_and_dashboard_queries_run() {
    let started = Instant::now();
    let dir = monitoring::scratch_dir("alerting-e2e");
    let db_path = dir.join("scenario.db");
    windsock::demo::create(&db_path, 42).await.unwrap();

    let (mut stack, hook) = start_stack(&dir, &db_path);
    let page = "/page";

    // 1. Both pages arrive, with the labels the routing and the on-call need.
    let zombie: &[(&str, &str)] = &[
        ("alertname", "AirflowZombieTaskCandidates"),
        ("severity", "critical"),
        ("environment", "e2e"),
        ("dag_id", ZOMBIE.0),
        ("task_id", ZOMBIE.1),
    ];
    let deadline: &[(&str, &str)] = &[
        ("alertname", "AirflowDeadlineMissed"),
        ("severity", "critical"),
        ("environment", "e2e"),
        ("dag_id", DEADLINE_DAG),
        ("deadline", DEADLINE),
    ];
    wait_for(&mut stack, &hook, "firing", &[zombie, deadline]);
    let fired_after = started.elapsed();
    for want in [zombie, deadline] {
        for d in hook.all().iter().filter(|d| matches(d, "firing", want)) {
            assert_eq!(d.path, page, "a page went to {}: {d:?}", d.path);
            let url = &d.annotations["runbook_url"];
            assert!(
                url.ends_with(&format!("#{}", want[0].1.to_lowercase())),
                "{d:?}"
            );
            assert!(
                d.annotations["description"].contains(want[3].1),
                "description lacks the DAG: {d:?}"
            );
        }
    }
    // Tickets went to the ticket receiver, never to the pager.
    for d in hook.all() {
        let sev = d.labels.get("severity").map(String::as_str).unwrap_or("");
        let expected = if sev == "critical" {
            "/page"
        } else {
            "/ticket"
        };
        assert_eq!(d.path, expected, "misrouted: {d:?}");
    }

    // 2. Remove the causes: the zombie succeeds, the long run finishes.
    {
        let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(&db_path);
        let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
        let now = windsock::demo::ts(windsock::metrics::now_unix());
        let r = sqlx::query(
            "UPDATE task_instance SET state = 'success', end_date = ? \
             WHERE dag_id = ? AND task_id = ? AND state = 'running'",
        )
        .bind(&now)
        .bind(ZOMBIE.0)
        .bind(ZOMBIE.1)
        .execute(&mut c)
        .await
        .unwrap();
        assert!(r.rows_affected() >= 1, "zombie task instance not found");
        let r = sqlx::query(
            "UPDATE dag_run SET state = 'success', end_date = ? \
             WHERE dag_id = ? AND state = 'running'",
        )
        .bind(&now)
        .bind(DEADLINE_DAG)
        .execute(&mut c)
        .await
        .unwrap();
        assert!(r.rows_affected() >= 1, "long run not found");
        c.close().await.unwrap();
    }
    wait_for(&mut stack, &hook, "resolved", &[zombie, deadline]);
    let resolved_after = started.elapsed();

    // 3. Every dashboard query runs without error against this Prometheus.
    let mut errors = Vec::new();
    let mut ran = 0;
    let mut empty = Vec::new();
    for (path, d) in dashboards() {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let mut check = |what: String, promql: String| {
            ran += 1;
            match query(stack.prom_addr, &promql) {
                Ok(0) => empty.push(format!("{file}: {what}")),
                Ok(_) => {}
                Err(e) => errors.push(format!("{file}: {what}: {promql}\n    {e}")),
            }
        };
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = t["expr"].as_str() {
                    check(format!("panel {}", p["title"]), substitute(expr));
                }
            }
        }
        for v in d["templating"]["list"].as_array().into_iter().flatten() {
            if v["type"] == "query"
                && let Some(q) = variable_query(v).and_then(monitoring::grafana_variable_promql)
            {
                check(format!("variable {}", v["name"]), substitute(&q));
            }
        }
    }
    assert!(ran > 50, "only {ran} dashboard queries found");
    assert!(
        errors.is_empty(),
        "dashboard queries failed:\n{}",
        errors.join("\n")
    );
    // Sanity: the data the overview's top row shows is there.
    for promql in [
        "windsock_up{environment=\"e2e\"} == 1",
        "airflow_components_alive{environment=\"e2e\"}",
        "up{job=\"windsock\"} == 1",
    ] {
        assert!(
            query(stack.prom_addr, promql).unwrap() > 0,
            "{promql} is empty\n{}",
            stack.logs()
        );
    }
    eprintln!(
        "alerting e2e: pages after {fired_after:?}, resolved after {resolved_after:?}; \
         {ran} dashboard queries ok ({} empty on this SQLite scenario: {})",
        empty.len(),
        empty.join(", ")
    );
    let _ = stack.am_addr;
    drop(stack);
    let _ = std::fs::remove_dir_all(&dir);
}
