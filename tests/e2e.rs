//! End to end: the `windsock` binary builds the demo DB, serves it on a port
//! chosen by the OS, and its `/metrics` is valid in both formats — the
//! classic format checked by `promtool check metrics`, OpenMetrics by the
//! strict parser of the Python prometheus_client. SIGTERM stops it cleanly.

mod common;

use std::io::Write as _;
use std::process::{Command, Stdio};

use common::{Windsock, http_get, wait_ready};

fn run_with_stdin(program: &str, args: &[&str], input: &str) -> (bool, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is required for this test ({e}); .ci/run installs it")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

const OM_PARSE: &str = r#"
import sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
n = 0
for family in text_string_to_metric_families(sys.stdin.read()):
    n += len(family.samples)
print(n)
"#;

#[test]
fn demo_serves_valid_metrics_in_both_formats() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let db_s = db.to_str().unwrap();

    // `windsock demo` builds the DB and serves it.
    let ws = Windsock::start(
        &[
            "demo",
            "--path",
            db_s,
            "--regenerate",
            "--listen",
            "127.0.0.1:0",
        ],
        &[],
    );
    wait_ready(ws.addr);

    let (status, headers, classic) = http_get(ws.addr, "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("text/plain; version=0.0.4")),
        "{headers:?}"
    );
    // The demo's known shape.
    for expected in [
        "airflow_dags{environment=\"demo\",state=\"active\"} 25",
        "airflow_dags{environment=\"demo\",state=\"paused\"} 3",
        "airflow_dags{environment=\"demo\",state=\"stale\"} 2",
        "airflow_dag_runs{environment=\"demo\",state=\"running\"} 5",
        "airflow_task_instances{environment=\"demo\",state=\"queued\"} 1",
        "airflow_zombie_task_candidates{environment=\"demo\",dag_id=\"sync_crm_us\",task_id=\"pull_accounts\"} 1",
        "windsock_up{environment=\"demo\"} 1",
        "airflow_schema_info{environment=\"demo\",airflow_version=\"3.3.x\",alembic_revision=\"d2f4e1b3c5a7\",fab_revision=\"02ca36b0235b\",dialect=\"sqlite\"} 1",
        "airflow_component_heartbeat_age_seconds{environment=\"demo\",component=\"scheduler\",hostname=\"scheduler-0\"}",
        "windsock_diagnostic_success{environment=\"demo\",diagnostic=\"dag_states\"} 1",
        "# TYPE windsock_build_info gauge",
    ] {
        assert!(
            classic.contains(expected),
            "missing {expected:?} in:\n{classic}"
        );
    }
    assert!(!classic.contains("# EOF"));
    let (ok, out) = run_with_stdin("promtool", &["check", "metrics"], &classic);
    assert!(ok, "promtool check metrics failed:\n{out}\n---\n{classic}");

    let (status, headers, om) = http_get(
        ws.addr,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"),
    );
    assert_eq!(status, 200);
    assert!(
        headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/openmetrics-text")),
        "{headers:?}"
    );
    assert!(om.ends_with("# EOF\n"), "{om}");
    let (ok, out) = run_with_stdin("python3", &["-c", OM_PARSE], &om);
    assert!(ok, "OpenMetrics parse failed:\n{out}\n---\n{om}");
    let samples: usize = out.trim().parse().unwrap();
    assert!(samples > 20, "only {samples} samples parsed");

    // Landing page and health.
    assert_eq!(http_get(ws.addr, "/healthz", None).0, 200);
    let (status, _, landing) = http_get(ws.addr, "/", None);
    assert_eq!(status, 200);
    assert!(landing.contains("href=\"/metrics\""));

    let (status, log) = ws.terminate();
    assert!(status.success(), "exit {status:?}; log:\n{log}");
    assert!(log.contains("Shutdown requested"), "{log}");
    assert!(log.contains("Stopped."), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The demo keeps its components alive: the scheduler's heartbeat age stays
/// small while the zombie candidate's task heartbeat keeps ageing.
#[test]
fn demo_generate_only_then_check() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-check-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let bin = env!("CARGO_BIN_EXE_windsock");
    let out = Command::new(bin)
        .args(["demo", "--generate-only", "--path", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("Demo metadata DB created."));
    let url = format!("sqlite:///{}", db.display());
    let out = Command::new(bin)
        .args(["check", "--db-url", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("airflow:  3.3.x (alembic d2f4e1b3c5a7"),
        "{text}"
    );
    for d in [
        "dag_states",
        "dag_run_states",
        "task_instance_states",
        "component_heartbeats",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start().starts_with("ok") && l.contains(d)),
            "{d} not ok in:\n{text}"
        );
    }
    // The report: JSON for machines, with the zombie and the backlog found.
    let out = Command::new(bin)
        .args(["report", "--db-url", &url, "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let env = &report["environments"][0];
    assert_eq!(env["environment"], "default");
    assert_eq!(env["airflow_version"], "3.3.x");
    let titles: Vec<&str> = env["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["title"].as_str().unwrap())
        .collect();
    assert!(
        titles
            .iter()
            .any(|t| t.contains("zombie") && t.contains("sync_crm_us.pull_accounts")),
        "{titles:?}"
    );
    assert!(
        titles.contains(&"1 DAG file(s) fail to import"),
        "{titles:?}"
    );
    // Why tasks wait: the demo's ml_pool is full.
    assert!(
        titles.iter().any(|t| t.ends_with("wait: pool_full")),
        "{titles:?}"
    );
    let text = Command::new(bin)
        .args(["report", "--db-url", &url])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("Recommendations:") && text.contains("[resources]"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

/// `windsock check` on every data fixture (real Airflow on PostgreSQL,
/// MariaDB and SQLite) runs every diagnostic and exits 0; series are
/// printed under their exposed names (counters with `_total`), at most
/// `--samples` per family with the rest counted, all with `--samples 0`.
#[test]
fn check_passes_on_every_data_fixture() {
    let bin = env!("CARGO_BIN_EXE_windsock");
    for (version, dialect) in common::data_fixtures() {
        {
            let db = block_on(common::TestDb::with_data(dialect, &version));
            let at = format!("{version}/{dialect}");
            let run = |samples: &str| {
                let out = Command::new(bin)
                    .args(["check", "--db-url", &db.url, "--samples", samples])
                    .output()
                    .unwrap();
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                assert_eq!(out.status.code(), Some(0), "{at}:\n{text}");
                assert!(!text.contains("FAILED"), "{at}:\n{text}");
                text
            };
            let all = run("0");
            assert!(!all.contains("more series"), "{at}");
            assert!(
                all.contains("airflow_dag_serialization_changes_total{dag_id="),
                "{at}:\n{all}"
            );
            let dag_lines = |t: &str| {
                t.lines()
                    .filter(|l| l.trim_start().starts_with("airflow_dag_tasks{"))
                    .count()
            };
            assert!(dag_lines(&all) >= 9, "{at}:\n{all}");
            let two = run("2");
            assert_eq!(dag_lines(&two), 2, "{at}:\n{two}");
            assert!(
                two.contains(&format!(
                    "airflow_dag_tasks: {} more series (--samples 0 prints all)",
                    dag_lines(&all) - 2
                )),
                "{at}:\n{two}"
            );
        }
    }
}

/// Serves the 3.1 SQLite data fixture through the daemon with `sections`
/// (TOML after `[server]` and `[collection]`); returns the daemon and its
/// /metrics once ready. `db` and `dir` must outlive the daemon.
fn serve_fixture(db: &common::TestDb, dir: &std::path::Path, sections: &str) -> (Windsock, String) {
    std::fs::create_dir_all(dir).unwrap();
    let cfg = dir.join("windsock.toml");
    let text = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n[collection]\nstartup_jitter = \"0s\"\n{sections}\n\
         [[targets]]\nenvironment = \"t\"\nurl = \"{}\"\n",
        db.url
    );
    std::fs::write(&cfg, text).unwrap();
    let ws = Windsock::start(&["run", "-c", cfg.to_str().unwrap()], &[]);
    wait_ready(ws.addr);
    let (_, _, metrics) = http_get(ws.addr, "/metrics", None);
    (ws, metrics)
}

fn data_fixture_31() -> common::TestDb {
    block_on(common::TestDb::with_data(
        windsock::db::Dialect::Sqlite,
        "3.1.8",
    ))
}

/// `[cardinality]` through the daemon's /metrics: DAG include and exclude
/// globs, dropped labels (series merged), and the per-family cap keeping
/// the largest values.
#[test]
fn cardinality_settings_shape_what_the_daemon_serves() {
    let db = data_fixture_31();
    let dir = std::env::temp_dir().join(format!("windsock-e2e-card-{}", std::process::id()));
    let (ws, text) = serve_fixture(
        &db,
        &dir,
        r#"
[diagnostics]
window = "3650d"
[cardinality]
include_dags = ["ws_*"]
exclude_dags = ["ws_fail", "ws_l*"]
max_series_per_family = 3
drop_labels = { airflow_task_failed_tries_window = ["task_id"] }
"#,
    );
    let series = |m: &str| -> Vec<&str> {
        text.lines()
            .filter(|l| l.starts_with(&format!("{m}{{")))
            .collect()
    };
    for excluded in [
        "dag_id=\"ws_fail\"",
        "dag_id=\"ws_long\"",
        "dag_id=\"ws_late\"",
    ] {
        assert!(!text.contains(excluded), "{excluded} in:\n{text}");
    }
    // No task_id left; ws_mapped's map indexes and tasks merged (summed)
    // per DAG, the largest three kept.
    let failed = series("airflow_task_failed_tries_window");
    assert!(!failed.is_empty() && failed.len() <= 3, "{failed:?}");
    assert!(failed.iter().all(|l| !l.contains("task_id=")), "{failed:?}");
    assert!(
        failed
            .iter()
            .any(|l| l.contains("dag_id=\"ws_mapped\"") && l.ends_with(" 5.0")),
        "{failed:?}"
    );
    let tasks = series("airflow_dag_tasks");
    assert_eq!(tasks.len(), 3, "{tasks:?}");
    // The largest first: ws_pool (3 tasks) and ws_zombie (4) are in.
    assert!(tasks.iter().any(|l| l.contains("ws_zombie")), "{tasks:?}");
    ws.terminate();
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[cardinality] max_series` through the daemon: families go whole,
/// per-task ones first, each named in `windsock_series_dropped{family}`;
/// the essential ones stay.
#[test]
fn the_series_cap_drops_whole_families() {
    let db = data_fixture_31();
    let dir = std::env::temp_dir().join(format!("windsock-e2e-cap-{}", std::process::id()));
    let (ws, metrics) = serve_fixture(
        &db,
        &dir,
        "[diagnostics]\nwindow = \"3650d\"\n[cardinality]\nmax_series = 60",
    );
    let value = |line: &str| line.rsplit(' ').next().unwrap().parse::<f64>().unwrap();
    let series = metrics
        .lines()
        .find(|l| l.starts_with("windsock_series "))
        .unwrap();
    assert!(value(series) <= 60.0, "{series}");
    let dropped: Vec<(String, f64)> = metrics
        .lines()
        .filter_map(|l| l.strip_prefix("windsock_series_dropped{family=\""))
        .map(|l| (l.split('"').next().unwrap().to_owned(), value(l)))
        .collect();
    assert!(!dropped.is_empty(), "{metrics}");
    for (family, n) in &dropped {
        assert!(*n > 0.0, "{family}");
        // Whole: not one series of it is left.
        let of_it = |l: &&str| {
            l.strip_prefix(family.as_str()).is_some_and(|rest| {
                ["{", "_total{", "_info{"]
                    .iter()
                    .any(|s| rest.starts_with(s))
            })
        };
        assert!(
            !metrics.lines().any(|l| of_it(&l)),
            "{family} in part:\n{metrics}"
        );
    }
    let names: Vec<&str> = dropped.iter().map(|(f, _)| f.as_str()).collect();
    assert!(
        names.contains(&"airflow_task_duration_window_seconds"),
        "{names:?}"
    );
    assert!(metrics.contains("\nairflow_components_alive{"), "{metrics}");
    let log = ws.terminate().1;
    assert!(
        log.contains("max_series reached") && log.contains("airflow_task_duration_window_seconds"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// `[thresholds] task_waiting` through the daemon: on the 3.1 fixture the
/// starved tasks wait (their scheduler was killed) under a 1 s threshold,
/// and nothing waits under ten years.
#[test]
fn the_waiting_threshold_reaches_the_daemon() {
    let db = data_fixture_31();
    let dir = std::env::temp_dir().join(format!("windsock-e2e-wait-{}", std::process::id()));
    for (threshold, waiting) in [("1s", true), ("3650d", false)] {
        let sections = format!("[thresholds]\ntask_waiting = \"{threshold}\"");
        let (ws, metrics) = serve_fixture(&db, &dir, &sections);
        let starved = "airflow_waiting_tasks{environment=\"t\",dag_id=\"ws_zombie\",pool=\"ws_starved\",reason=\"no_scheduler\"} 3";
        assert_eq!(
            metrics.contains(starved),
            waiting,
            "{threshold}:\n{metrics}"
        );
        assert_eq!(
            metrics
                .lines()
                .any(|l| l.starts_with("airflow_waiting_tasks{")),
            waiting,
            "{threshold}"
        );
        // Nothing waits because nothing does, not because the run failed.
        assert!(
            metrics.contains(
                "windsock_diagnostic_success{environment=\"t\",diagnostic=\"task_waiting\"} 1"
            ),
            "{threshold}:\n{metrics}"
        );
        ws.terminate();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A relative SQLite URL that points nowhere names the file it tried.
#[test]
fn missing_relative_sqlite_file_is_named() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-rel-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["check", "--db-url", "sqlite:///nowhere/airflow.db"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(69), "{text}");
    let abs = dir.canonicalize().unwrap().join("nowhere/airflow.db");
    assert!(text.contains(&abs.display().to_string()), "{text}");
    assert!(
        text.contains("does not exist") && text.contains("relative to the working directory"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The exporter flags Prometheus users know: `--web.listen-address :PORT`
/// (every interface), `--web.telemetry-path`, `--log.format json` and
/// `--log.level`; and the process and build metrics.
#[test]
fn exporter_flags_and_process_metrics() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-flags-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["demo", "--generate-only", "--path", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let url = format!("sqlite:///{}", db.display());
    let ws = Windsock::start(
        &[
            "run",
            "--db-url",
            &url,
            "--web.listen-address",
            ":0",
            "--web.telemetry-path",
            "/internal/metrics",
            "--log.format",
            "json",
            "--log.level",
            "debug",
        ],
        &[],
    );
    assert!(ws.addr.ip().is_unspecified(), "{}", ws.addr);
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], ws.addr.port()).into();
    wait_ready(addr);
    let (status, _, text) = http_get(addr, "/internal/metrics", None);
    assert_eq!(status, 200);
    assert_eq!(http_get(addr, "/metrics", None).0, 404);
    for name in [
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
        "process_open_fds ",
        "process_max_fds ",
        "process_start_time_seconds ",
    ] {
        assert!(
            text.contains(&format!("\n{name}")),
            "{name} missing:\n{text}"
        );
    }
    let build = text
        .lines()
        .find(|l| l.starts_with("windsock_build_info{"))
        .unwrap();
    assert!(
        build.contains(&format!("revision=\"{}\"", windsock::REVISION)),
        "{build}"
    );
    assert!(build.contains("rustc_version=\"1."), "{build}");
    let (_, log) = ws.terminate();
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        lines
            .iter()
            .all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "not JSON lines:\n{log}"
    );
    assert!(log.contains("\"level\":\"DEBUG\""), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// SIGHUP re-reads the configuration: the targets change while the
/// listener stays; a bad file is refused, the running configuration kept,
/// and windsock says so (log and windsock_config_last_reload_successful).
#[test]
fn sighup_reloads_the_configuration_and_keeps_it_when_bad() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-hup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("demo.db");
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["demo", "--generate-only", "--path", db.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success());
    let cfg = dir.join("windsock.toml");
    let write = |env: &str, extra: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[collection]\nstartup_jitter = \"0s\"\n{extra}\n[[targets]]\nenvironment = \"{env}\"\nurl = \"sqlite:///{}\"\n",
                db.display()
            ),
        )
        .unwrap();
    };
    write("before", "");
    let ws = Windsock::start(
        &[
            "run",
            "-c",
            cfg.to_str().unwrap(),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        &[],
    );
    wait_ready(ws.addr);
    let hup = || {
        Command::new("kill")
            .args(["-HUP", &ws.pid().to_string()])
            .status()
            .unwrap();
    };
    let wait_for = |what: &dyn Fn(&str) -> bool| {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        loop {
            let (_, _, text) = http_get(ws.addr, "/metrics", None);
            if what(&text) {
                return text;
            }
            assert!(std::time::Instant::now() < deadline, "never:\n{text}");
            std::thread::sleep(std::time::Duration::from_millis(200));
        }
    };
    assert!(wait_for(&|t| t.contains("environment=\"before\"")).contains("airflow_dags{"));
    write("after", "");
    hup();
    let text = wait_for(&|t| {
        t.contains("airflow_dags{environment=\"after\"") && !t.contains("environment=\"before\"")
    });
    assert!(
        text.contains("windsock_config_last_reload_successful 1"),
        "{text}"
    );
    write("broken", "no_such_key = 1");
    hup();
    let text = wait_for(&|t| t.contains("windsock_config_last_reload_successful 0"));
    assert!(
        text.contains("airflow_dags{environment=\"after\""),
        "{text}"
    );
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("Configuration reloaded."), "{log}");
    assert!(
        log.contains("Configuration reload failed; the running configuration stays.")
            && log.contains("no_such_key"),
        "{log}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// A certificate and key for `name` (also valid for 127.0.0.1):
/// self-signed, or a client certificate signed by `ca`.
fn certificate(dir: &std::path::Path, name: &str, ca: Option<(&str, &str)>) -> (String, String) {
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl {args:?}");
    };
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let subject = format!("/CN={name}");
    match ca {
        None => openssl(&[
            "req",
            "-x509",
            "-days",
            "1",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &subject,
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            k,
            "-out",
            c,
        ]),
        Some((ca_cert, ca_key)) => {
            let csr = dir.join(format!("{name}.csr"));
            let ext = dir.join(format!("{name}.ext"));
            std::fs::write(
                &ext,
                "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
            )
            .unwrap();
            openssl(&[
                "req",
                "-new",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                &subject,
                "-keyout",
                k,
                "-out",
                csr.to_str().unwrap(),
            ]);
            openssl(&[
                "x509",
                "-req",
                "-days",
                "1",
                "-in",
                csr.to_str().unwrap(),
                "-CA",
                ca_cert,
                "-CAkey",
                ca_key,
                "-CAcreateserial",
                "-extfile",
                ext.to_str().unwrap(),
                "-out",
                c,
            ]);
        }
    }
    (c.to_owned(), k.to_owned())
}

fn curl(args: &[&str]) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sS", "-o", "/dev/stdout", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", ""));
    (code.to_owned(), body.to_owned())
}

/// `--web.config.file` in exporter-toolkit's format: TLS with a certificate,
/// basic auth from bcrypt hashes (the probes stay open), response headers;
/// then client certificates required; a bad file exits 64 before binding.
#[test]
fn web_config_file_gives_tls_and_basic_auth() {
    let dir = std::env::temp_dir().join(format!("windsock-e2e-web-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, _key) = certificate(&dir, "server", None);
    let db = dir.join("demo.db");
    assert!(
        Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["demo", "--generate-only", "--path", db.to_str().unwrap()])
            .output()
            .unwrap()
            .status
            .success()
    );
    let url = format!("sqlite:///{}", db.display());
    let hash = bcrypt::hash("scrape-s3cret", 4).unwrap();
    let web = dir.join("web.yml");
    std::fs::write(
        &web,
        format!(
            "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n\
             http_server_config:\n  headers:\n    X-Frame-Options: deny\n\
             basic_auth_users:\n  prometheus: {hash}\n"
        ),
    )
    .unwrap();
    let ws = Windsock::start(
        &[
            "run",
            "--db-url",
            &url,
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        &[],
    );
    let base = format!("https://127.0.0.1:{}", ws.addr.port());
    let (code, _) = curl(&["--cacert", &cert, &format!("{base}/metrics")]);
    assert_eq!(code, "401");
    let (code, _) = curl(&[
        "--cacert",
        &cert,
        "-u",
        "prometheus:wrong",
        &format!("{base}/metrics"),
    ]);
    assert_eq!(code, "401");
    let (code, _) = curl(&[
        "--cacert",
        &cert,
        "-u",
        "nobody:scrape-s3cret",
        &format!("{base}/metrics"),
    ]);
    assert_eq!(code, "401");
    let (code, _) = curl(&["--cacert", &cert, &format!("{base}/healthz")]);
    assert_eq!(code, "200", "probes need no password");
    let (code, body) = curl(&[
        "--cacert",
        &cert,
        "-u",
        "prometheus:scrape-s3cret",
        &format!("{base}/metrics"),
    ]);
    assert_eq!(code, "200");
    assert!(body.contains("windsock_up"), "{body}");
    let out = Command::new("curl")
        .args([
            "-sS",
            "-D",
            "-",
            "-o",
            "/dev/null",
            "--cacert",
            &cert,
            "-u",
            "prometheus:scrape-s3cret",
        ])
        .arg(format!("{base}/metrics"))
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .to_ascii_lowercase()
            .contains("x-frame-options: deny")
    );
    // Plain HTTP on the TLS port gets no metrics.
    let (code, _) = curl(&[&format!("http://127.0.0.1:{}/metrics", ws.addr.port())]);
    assert_ne!(code, "200");
    let (_, log) = ws.terminate();
    assert!(log.contains("metrics at https://"), "{log}");
    assert!(!log.contains("scrape-s3cret"), "{log}");

    // Client certificates: signed by the CA, or no metrics.
    let (ca_cert, ca_key) = certificate(&dir, "ca", None);
    let (client_cert, client_key) = certificate(&dir, "client", Some((&ca_cert, &ca_key)));
    std::fs::write(
        &web,
        "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  \
         client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n  min_version: TLS13\n",
    )
    .unwrap();
    let ws = Windsock::start(
        &[
            "run",
            "--db-url",
            &url,
            "--web.listen-address",
            "127.0.0.1:0",
            "--web.config.file",
            web.to_str().unwrap(),
        ],
        &[],
    );
    let base = format!("https://127.0.0.1:{}", ws.addr.port());
    let (code, _) = curl(&["--cacert", &cert, &format!("{base}/metrics")]);
    assert_ne!(code, "200");
    let (code, _) = curl(&[
        "--cacert",
        &cert,
        "--tls-max",
        "1.2",
        "--cert",
        &client_cert,
        "--key",
        &client_key,
        &format!("{base}/metrics"),
    ]);
    assert_ne!(code, "200", "TLS 1.2 refused");
    let (code, _) = curl(&[
        "--cacert",
        &cert,
        "--cert",
        &client_cert,
        "--key",
        &client_key,
        &format!("{base}/metrics"),
    ]);
    assert_eq!(code, "200");
    ws.terminate();

    // A bad web config: 64, and no port taken.
    std::fs::write(&web, "basic_auth_users:\n  prometheus: plain-text\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args([
            "run",
            "--db-url",
            &url,
            "--web.config.file",
            web.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("server.web_config_file") && err.contains("bcrypt"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
