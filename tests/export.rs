//! Direct-mode export on real PostgreSQL, MariaDB and SQLite, with the rows
//! real Airflow 3.1.8 and 2.10.5 schedulers wrote: every row of the window
//! exported once (checked against the fixture, not against windsock's own
//! SQL), full tables whole, secret tables excluded, missing tables listed,
//! CSV and JSON Lines equal; and, through the binary, bounded memory on a
//! large table and no manifest after an interrupted export.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::TestDb;
use common::fab::{copy_fixture, fixture_rows};
use serde_json::Value;
use windsock::config::ExportFormat;
use windsock::db::Dialect;
use windsock::export::{Request, Window, parse_iso};
use windsock::metrics::Store;

const TABLES: &[&str] = &[
    "dag",
    "dag_run",
    "task_instance",
    "log",
    "job",
    "serialized_dag",
    "import_error",
];

fn tmpdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!(
        "ws-export-{tag}-{}-{}",
        std::process::id(),
        rand_suffix()
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn rand_suffix() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn gunzip(path: &Path) -> String {
    let mut s = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_string(&mut s)
        .unwrap();
    s
}

/// A minimal RFC 4180 reader (quoted fields, doubled quotes, newlines).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut field) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                field.push('"');
                chars.next();
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => field.push(c),
        }
    }
    rows
}

/// Values of `column` in an exported table, whatever the format.
fn exported(
    root: &Path,
    env: &str,
    table: &str,
    date: &str,
    format: ExportFormat,
    column: &str,
) -> Vec<String> {
    let dir = root.join(format!("{env}/{table}/export_date={date}"));
    let file = dir.join(format!("part-00000.{}", format.extension()));
    if format == ExportFormat::Parquet {
        use parquet::file::reader::{FileReader as _, SerializedFileReader};
        let reader = SerializedFileReader::new(std::fs::File::open(&file).unwrap()).unwrap();
        return reader
            .get_row_iter(None)
            .unwrap()
            .map(|row| {
                let row = row.unwrap();
                let (_, field) = row
                    .get_column_iter()
                    .find(|(n, _)| n.as_str() == column)
                    .unwrap();
                match field {
                    parquet::record::Field::Str(s) => s.clone(),
                    other => other.to_string(),
                }
            })
            .collect();
    }
    let text = gunzip(&file);
    match format {
        ExportFormat::Csv => {
            let rows = parse_csv(&text);
            let i = rows[0].iter().position(|c| c == column).unwrap();
            rows[1..].iter().map(|r| r[i].clone()).collect()
        }
        ExportFormat::Jsonl | ExportFormat::Parquet => text
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                match &v[column] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                }
            })
            .collect(),
    }
}

/// Normalises ids for comparison (PostgreSQL prints uuids with dashes).
fn norm(ids: impl IntoIterator<Item = String>) -> BTreeSet<String> {
    ids.into_iter()
        .map(|s| s.replace('-', "").to_ascii_lowercase())
        .collect()
}

/// Fixture rows of `table` as (id, time column seconds) pairs.
async fn fixture_times(
    version: &str,
    table: &str,
    id: &str,
    time: &str,
) -> Vec<(String, Option<i64>)> {
    let rows = fixture_rows(version, &[table]).await;
    let (cols, values) = &rows[0].1;
    let (ii, ti) = (
        cols.iter().position(|c| c == id).unwrap(),
        cols.iter().position(|c| c == time).unwrap(),
    );
    values
        .iter()
        .map(|r| {
            let id = r[ii].as_ref().unwrap().1.clone();
            // "2026-11-25 00:50:56.060283" → whole seconds (floor).
            let t = r[ti]
                .as_ref()
                .and_then(|(_, t)| parse_iso(&t[..19].replace(' ', "T")));
            (id, t)
        })
        .collect()
}

async fn export_flow(dialect: Dialect, version: &str) {
    let db = TestDb::with_schema(dialect, version).await;
    let mut tables: Vec<&str> = TABLES.to_vec();
    if version.starts_with('3') {
        tables.extend(["dag_bundle", "dag_version"]);
    }
    copy_fixture(&db, version, &tables).await;

    // A window that cuts the log in two: from its first second to just
    // after its median second, so pushdown is proven by what is left out.
    let logs = fixture_times(version, "log", "id", "dttm").await;
    let mut secs: Vec<i64> = logs.iter().filter_map(|(_, t)| *t).collect();
    secs.sort_unstable();
    let window = Window {
        start: secs[0],
        end: secs[secs.len() / 2] + 1,
    };
    let want_logs = norm(
        logs.iter()
            .filter(|(_, t)| t.is_some_and(|t| t >= window.start && t < window.end))
            .map(|(id, _)| id.clone()),
    );
    assert!(
        !want_logs.is_empty() && want_logs.len() < logs.len(),
        "the window must cut the log"
    );
    let v3 = version.starts_with('3');
    let run_time = if v3 { "run_after" } else { "execution_date" };
    let want = |rows: &[(String, Option<i64>)]| {
        norm(
            rows.iter()
                .filter(|(_, t)| t.is_some_and(|t| t >= window.start && t < window.end))
                .map(|(id, _)| id.clone()),
        )
    };
    let runs = fixture_times(version, "dag_run", "id", run_time).await;
    let tis = if v3 {
        fixture_times(version, "task_instance", "id", "start_date").await
    } else {
        Vec::new()
    };
    let dag_rows = fixture_rows(version, &["dag"]).await;
    let (dag_cols, dag_values) = &dag_rows[0].1;
    let di = dag_cols.iter().position(|c| c == "dag_id").unwrap();
    let want_dags: BTreeSet<String> = dag_values
        .iter()
        .map(|r| r[di].as_ref().unwrap().1.clone())
        .collect();

    let metrics = Store::new(["t"]);
    let ro = db.windsock(&common::fast_settings());
    let mut seen = BTreeMap::new();
    for format in [
        ExportFormat::Csv,
        ExportFormat::Jsonl,
        ExportFormat::Parquet,
    ] {
        let root = tmpdir(dialect.as_str());
        let mut requested: Vec<String> = [
            "dag",
            "dag_run",
            "task_instance",
            "task_fail",
            "log",
            "job",
            "serialized_dag",
        ]
        .iter()
        .map(|t| (*t).to_owned())
        .collect();
        requested.extend(["connection".to_owned(), "variable".to_owned()]);
        let req = Request {
            environment: "t".into(),
            tables: requested,
            window,
            to: root.display().to_string(),
            format,
            page_rows: 2, // several pages even on small tables
            timeout: Duration::from_secs(30),
            columns: BTreeMap::new(),
        };
        let m = windsock::export::run(&ro, &req, &metrics).await.unwrap();
        assert_eq!(m.status, "complete", "{m:?}");
        let date = window.export_date();
        let manifest: Value = serde_json::from_str(
            &std::fs::read_to_string(
                root.join(format!("t/_manifests/export_date={date}/_manifest.json")),
            )
            .unwrap(),
        )
        .unwrap();
        let status = |t: &str| {
            manifest["tables"]
                .as_array()
                .unwrap()
                .iter()
                .find(|x| x["table"] == t)
                .map(|x| x["status"].as_str().unwrap().to_owned())
        };
        assert_eq!(status("connection").as_deref(), Some("excluded"));
        assert_eq!(status("variable").as_deref(), Some("excluded"));
        assert_eq!(
            status("task_fail").as_deref(),
            Some(if v3 { "missing" } else { "exported" })
        );
        assert_eq!(
            manifest["window"]["start"],
            windsock::export::iso(window.start)
        );
        assert_eq!(manifest["format"], format.as_str());
        assert!(
            manifest["airflow_version"]
                .as_str()
                .unwrap()
                .starts_with(&version[..1])
        );
        assert!(!root.join("t/connection").exists() && !root.join("t/variable").exists());
        assert!(!root.join(".windsock-staging").exists());

        let got_logs = norm(exported(&root, "t", "log", &date, format, "id"));
        assert_eq!(
            got_logs, want_logs,
            "{dialect:?} {version} {format:?}: log rows of the window"
        );
        let got_runs = exported(&root, "t", "dag_run", &date, format, "id");
        assert_eq!(norm(got_runs.clone()), want(&runs), "dag_run by {run_time}");
        assert_eq!(
            got_runs.len(),
            norm(got_runs.clone()).len(),
            "each row once"
        );
        if v3 {
            assert_eq!(
                norm(exported(&root, "t", "task_instance", &date, format, "id")),
                want(&tis)
            );
        }
        // A full table whole, its ids as text on every dialect (MySQL's
        // `_bin` id columns come from the driver as bytes).
        let got_dags = exported(&root, "t", "dag", &date, format, "dag_id");
        assert_eq!(
            got_dags.len(),
            want_dags.len(),
            "a full table is exported whole"
        );
        assert_eq!(
            got_dags.into_iter().collect::<BTreeSet<_>>(),
            want_dags,
            "{dialect:?} {version} {format:?}: dag ids"
        );
        let rows_in_manifest = manifest["tables"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["table"] == "log")
            .unwrap()["rows"]
            .as_u64()
            .unwrap();
        assert_eq!(rows_in_manifest as usize, want_logs.len());
        seen.insert(format.as_str(), (got_logs, norm(got_runs)));
        let _ = std::fs::remove_dir_all(&root);
    }
    assert_eq!(
        seen["csv"], seen["jsonl"],
        "both formats carry the same rows"
    );
    assert_eq!(
        metrics.event(
            "windsock_export_runs",
            &[
                ("environment", "t"),
                ("mode", "direct"),
                ("outcome", "success")
            ]
        ),
        Some(3.0)
    );
}

#[tokio::test]
async fn direct_export_postgres_airflow3() {
    export_flow(Dialect::Postgres, "3.1.8").await;
}

#[tokio::test]
async fn direct_export_mysql_airflow3() {
    export_flow(Dialect::MySql, "3.1.8").await;
}

#[tokio::test]
async fn direct_export_sqlite_airflow3() {
    export_flow(Dialect::Sqlite, "3.1.8").await;
}

#[tokio::test]
async fn direct_export_postgres_airflow2() {
    export_flow(Dialect::Postgres, "2.10.5").await;
}

#[tokio::test]
async fn direct_export_mysql_airflow2() {
    export_flow(Dialect::MySql, "2.10.5").await;
}

#[tokio::test]
async fn direct_export_sqlite_airflow2() {
    export_flow(Dialect::Sqlite, "2.10.5").await;
}

/// A SQLite database whose `log` holds `rows` rows of ~1.5 KB, all inside
/// 2026-11-24.
async fn big_log(rows: u64) -> TestDb {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    db.exec_script(&format!(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows})
         INSERT INTO log (id, dttm, dag_id, event, extra)
         SELECT i, strftime('%Y-%m-%d %H:%M:%f', '2026-11-24', '+' || (i % 86000) || ' seconds'),
                'big_dag', 'cli_task_run', printf('%.1500c', 'x') FROM n;"
    ))
    .await;
    db
}

fn export_cmd(db: &TestDb, to: &Path, tables: &str) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"));
    cmd.args([
        "export",
        "run",
        "--mode",
        "direct",
        "--db-url",
        &db.url,
        "--environment",
        "big",
    ])
    .arg("--to")
    .arg(to)
    .args(["--tables", tables, "--end", "2026-11-25", "--format", "csv"])
    .stdout(std::process::Stdio::null())
    .stderr(std::process::Stdio::piped());
    cmd
}

/// On a terminal `windsock export run` shows a progress line per table
/// (indicatif); elsewhere only the log lines. util-linux `script` gives the
/// command a pseudo-terminal.
#[tokio::test]
async fn export_progress_on_a_terminal_only() {
    let db = big_log(20_000).await;
    let to = tmpdir("progress");
    let out = export_cmd(&db, &to, "log").output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("Export: table written."), "{err}");
    assert!(
        !err.contains("rows ("),
        "a progress line without a terminal:\n{err}"
    );

    let cmd = export_cmd(&db, &to, "log");
    let line = std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| shlex::try_quote(a.to_str().unwrap()).unwrap().into_owned())
        .collect::<Vec<_>>()
        .join(" ");
    let out = std::process::Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env("TERM", "xterm")
        .env_remove("RUST_LOG")
        .output()
        .expect("script (util-linux)");
    let tty = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{tty}");
    assert!(
        tty.contains("[1/1] log: "),
        "no progress line on the terminal:\n{tty}"
    );
    assert!(tty.contains(" rows ("), "{tty}");
    assert!(tty.contains("Export: table written."), "{tty}");
    let _ = std::fs::remove_dir_all(&to);
}

/// 150k rows (~225 MB of log) go through with a peak RSS far below the
/// table's size; an export killed half-way leaves no manifest (the earlier
/// one for that date is removed before anything is written).
#[tokio::test]
async fn large_table_streams_and_interruption_leaves_no_manifest() {
    let db = big_log(150_000).await;
    let to = tmpdir("big");
    let manifest = to.join("big/_manifests/export_date=2026-11-24/_manifest.json");

    // A complete export of another table: its manifest exists.
    let out = export_cmd(&db, &to, "dag").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(manifest.exists());

    // Interrupted while writing the log: no manifest, no published log.
    let mut child = export_cmd(&db, &to, "log").spawn().unwrap();
    let staging = to.join(".windsock-staging");
    for _ in 0..200 {
        let writing = walk(&staging)
            .iter()
            .any(|p| p.ends_with("part-00000.csv.gz"));
        if writing {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(
        !manifest.exists(),
        "an interrupted export must not leave a manifest"
    );
    assert!(!to.join("big/log/export_date=2026-11-24").exists());
    // What the killed run left is private to windsock's user.
    {
        use std::os::unix::fs::PermissionsExt as _;
        let left = walk(&staging);
        assert!(!left.is_empty(), "the killed run left nothing to look at");
        for dir in [staging.clone(), staging.join("big")] {
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700, "{}", dir.display());
        }
    }

    // The same export to the end, under /usr/bin/time: bounded memory.
    let out = std::process::Command::new("/usr/bin/time")
        .args(["-f", "maxrss_kb=%M"])
        .arg(export_cmd(&db, &to, "log").get_program())
        .args(export_cmd(&db, &to, "log").get_args())
        .stdout(std::process::Stdio::null())
        .output()
        .expect("/usr/bin/time (Debian package time)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let rss_kb: u64 = err
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kb="))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        rss_kb < 150 * 1024,
        "peak RSS {rss_kb} kB for a ~225 MB table"
    );
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifest).unwrap()).unwrap();
    assert_eq!(m["status"], "complete");
    assert_eq!(m["tables"][0]["rows"], 150_000);
    let _ = std::fs::remove_dir_all(&to);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// windsock and the Glue job script refuse the same tables.
#[test]
fn excluded_tables_match_the_job_script() {
    let script = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("export/glue/windsock_export.py"),
    )
    .unwrap();
    let start = script.find("EXCLUDED_TABLES = {").unwrap();
    let block = &script[start..start + script[start..].find('}').unwrap()];
    let in_script: BTreeSet<&str> = block
        .lines()
        .skip(1)
        .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
        .collect();
    let in_rust: BTreeSet<&str> = windsock::export::EXCLUDED.iter().map(|(t, _)| *t).collect();
    assert_eq!(in_script, in_rust);
    assert_eq!(in_rust.len(), 8);
}

/// `windsock export run` with no target refuses (64) instead of exporting
/// something nobody asked for; `--demo` creates and exports the demo
/// database, and the manifest says so.
#[test]
fn export_run_needs_a_target_or_demo() {
    let cwd = tmpdir("demo");
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args(["export", "run", "--mode", "direct", "--to", "./exports"])
        .current_dir(&cwd)
        .env_remove("WINDSOCK_CONFIG")
        .env_remove("WINDSOCK_DB_URL")
        .env_remove("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(64));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("--demo"));
    assert!(!cwd.join("windsock-demo.db").exists() && !cwd.join("exports").exists());
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
        .args([
            "export",
            "run",
            "--demo",
            "--mode",
            "direct",
            "--to",
            "./exports",
        ])
        .current_dir(&cwd)
        .env_remove("WINDSOCK_CONFIG")
        .env_remove("WINDSOCK_DB_URL")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("demo: complete"), "{stdout}");
    assert!(cwd.join("windsock-demo.db").exists());
    let manifests = walk(&cwd.join("exports/demo/_manifests"));
    assert_eq!(manifests.len(), 1, "{manifests:?}");
    let m: Value = serde_json::from_str(&std::fs::read_to_string(&manifests[0]).unwrap()).unwrap();
    assert_eq!(m["status"], "complete");
    let runs = m["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["table"] == "dag_run")
        .unwrap();
    assert!(
        runs["rows"].as_u64().unwrap() > 0,
        "the demo has runs every day: {runs}"
    );
    let _ = std::fs::remove_dir_all(&cwd);
}

/// `[export] enabled` in the daemon: exports on schedule and reports it at
/// /metrics.
#[tokio::test]
async fn daemon_exports_on_schedule() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    copy_fixture(&db, "3.1.8", &["dag", "dag_run", "log"]).await;
    let to = tmpdir("sched");
    let config = to.join("windsock.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[targets]]\nenvironment = \"sched\"\nurl = \"{}\"\n\
             [export]\nenabled = true\ninterval = \"1s\"\nwindow = \"1d\"\nformat = \"jsonl\"\n\
             to = \"{}\"\ntables = [\"dag\", \"dag_run\", \"log\"]\n",
            db.url,
            to.join("out").display()
        ),
    )
    .unwrap();
    let ws = common::Windsock::start(&["run", "--config", config.to_str().unwrap()], &[]);
    let mut found = Vec::new();
    for _ in 0..100 {
        found = walk(&to.join("out/sched/_manifests"));
        if !found.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(found.len(), 1, "no manifest; log:\n{}", ws.log());
    let (_, _, metrics) = common::http_get(ws.addr, "/metrics", None);
    assert!(
        metrics.contains(
            r#"windsock_export_runs_total{environment="sched",mode="direct",outcome="success"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"windsock_export_rows{environment="sched",table="dag"} "#));
    assert!(metrics.contains("windsock_export_last_success_timestamp_seconds{"));
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    assert!(log.contains("Export finished."));
    let _ = std::fs::remove_dir_all(&to);
}

/// `[export] cron` in the daemon: a preset as Airflow users write it sets
/// the next run (logged), instead of `interval`.
#[tokio::test]
async fn daemon_schedules_exports_by_cron() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    let to = tmpdir("cron");
    let config = to.join("windsock.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[[targets]]\nenvironment = \"cron\"\nurl = \"{}\"\n\
             [export]\nenabled = true\ninterval = \"1s\"\ncron = \"@yearly\"\nto = \"{}\"\n",
            db.url,
            to.join("out").display()
        ),
    )
    .unwrap();
    let ws = common::Windsock::start(&["run", "--config", config.to_str().unwrap()], &[]);
    // The next 1 January, 00:00 UTC (interval = 1s would say within a second).
    let year_now: i64 = windsock::export::iso(windsock::metrics::now_unix() as i64)[..4]
        .parse()
        .unwrap();
    let want = format!("{}-01-01T00:00:00Z", year_now + 1);
    let mut log = String::new();
    for _ in 0..100 {
        log = ws.log();
        if log.contains("Export: next run scheduled.") {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let line = log
        .lines()
        .find(|l| l.contains("Export: next run scheduled."))
        .unwrap_or_else(|| panic!("no schedule logged:\n{log}"));
    assert!(line.contains(&want), "{line}");
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    assert!(
        !to.join("out").exists(),
        "exported although not due:\n{log}"
    );
    let _ = std::fs::remove_dir_all(&to);
}

/// Environment names become directories: `..`, `.`, `...`, hidden and
/// slashed names are refused (exit 64) before anything is read or written,
/// so nothing lands next to `--to` or is deleted there.
#[tokio::test]
async fn environment_names_cannot_escape_the_export_root() {
    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    let parent = tmpdir("escape");
    let to = parent.join("exports");
    std::fs::create_dir_all(&to).unwrap();
    std::fs::write(parent.join("keep.txt"), "mine").unwrap();
    for env in ["..", ".", "...", ".hidden", "a/b", "../up", "-x"] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["export", "run", "--db-url", &db.url])
            .arg(format!("--environment={env}"))
            .arg("--to")
            .arg(&to)
            .args(["--tables", "dag"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{env}: {err}");
        assert!(err.contains("environment"), "{env}: {err}");
    }
    assert_eq!(
        std::fs::read_dir(&to).unwrap().count(),
        0,
        "nothing written"
    );
    let mut left: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["exports", "keep.txt"]);
    let _ = std::fs::remove_dir_all(&parent);
}

/// Export settings that cannot work are refused before anything runs,
/// naming the key.
#[test]
fn bad_export_settings_name_the_key() {
    let dir = tmpdir("cfg");
    let cases = [
        ("[export]\ntables = [\"connection\"]\n", "export.tables"),
        ("[export]\nformat = \"xml\"\n", "export.format"),
        ("[export]\nmode = \"glue\"\n", "export.to"),
        (
            "[export]\nmode = \"glue\"\nto = \"s3://lake/x\"\n",
            "export.glue.role_arn",
        ),
        (
            "[export]\nmode = \"glue\"\nto = \"s3://lake/x\"\n[export.glue]\nrole_arn = \"arn:aws:iam::1:role/r\"\n",
            "export.glue.script_location",
        ),
        ("[export]\nto = \"ftp://host/x\"\n", "export.to"),
        ("[report]\ns3 = \"/tmp/x\"\n", "report.s3"),
        ("[export]\ncron = \"61 * * * *\"\n", "export.cron"),
        ("[export]\ncron = \"@once\"\n", "export.cron"),
        ("[export.columns]\nlog = []\n", "export.columns.log"),
        (
            "[export.columns]\nconnection = [\"id\"]\n",
            "export.columns.connection",
        ),
        (
            "[export.columns]\nlog = [\"id; DROP\"]\n",
            "export.columns.log",
        ),
        ("[export]\nwindow = \"6h\"\n", "export.window"),
    ];
    for (i, (toml, key)) in cases.iter().enumerate() {
        let file = dir.join(format!("{i}.toml"));
        std::fs::write(
            &file,
            format!("[[targets]]\nurl = \"sqlite:////tmp/x.db\"\n{toml}"),
        )
        .unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["config", "validate", "--config"])
            .arg(&file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{toml}: {err}");
        assert!(err.contains(key), "{toml}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Parquet from direct mode carries Parquet's logical types, and Glue's
/// engine (PySpark) reads them as such: on the rows real Airflow 3.1.8
/// wrote on every dialect, booleans (MySQL's tinyint(1) included) are
/// boolean, timestamps are timestamps equal to the microsecond to the
/// database's own epoch of each value, integers bigint, floats double,
/// text string; the writer's decimals are decimal(p,s) with exact values.
#[tokio::test(flavor = "multi_thread")]
async fn parquet_logical_types_read_by_spark() {
    use windsock::db::Cell;
    use windsock::export::parquet::ParquetWriter;
    let dir = tmpdir("pq-types");
    std::fs::create_dir_all(&dir).unwrap();

    // The writer alone: every kind, including those Airflow's tables lack.
    let kinds = dir.join("kinds.parquet");
    let cols: Vec<(String, String)> = [
        ("amount", "numeric(10,2)"),
        ("wide", "numeric(30,2)"),
        ("free", "numeric"),
        ("flag", "boolean"),
        ("at", "timestamp with time zone"),
        ("naive", "DATETIME"),
        ("n", "bigint"),
    ]
    .iter()
    .map(|(n, t)| ((*n).to_owned(), (*t).to_owned()))
    .collect();
    let mut w = ParquetWriter::new(std::fs::File::create(&kinds).unwrap(), &cols).unwrap();
    w.write_page(&[
        vec![
            Cell::Float(12.34),
            Cell::Text("12345678901234567890.12".into()),
            Cell::Float(0.5),
            Cell::Int(1),
            Cell::Text("2026-11-25T01:02:03.123456Z".into()),
            Cell::Text("2026-11-25 01:02:03.5".into()),
            Cell::Int(7),
        ],
        vec![
            Cell::Float(-0.07),
            Cell::Null,
            Cell::Null,
            Cell::Text("f".into()),
            Cell::Null,
            Cell::Text("2026-11-25 01:02:03+02:00".into()),
            Cell::Null,
        ],
    ])
    .unwrap();
    w.finish().unwrap();

    // Real exports, and what the databases themselves say.
    let mut expected = Vec::new();
    for dialect in Dialect::ALL {
        let db = TestDb::with_data(dialect, "3.1.8").await;
        let ro = db.windsock(&common::fast_settings());
        let root = dir.join(dialect.as_str());
        let req = Request {
            environment: "pq".into(),
            tables: vec!["dag".into(), "dag_run".into(), "task_instance".into()],
            window: Window {
                start: 0,
                end: windsock::metrics::now_unix() as i64 + 86_400,
            },
            to: root.display().to_string(),
            format: ExportFormat::Parquet,
            page_rows: 3,
            timeout: Duration::from_secs(30),
            columns: BTreeMap::new(),
        };
        let m = windsock::export::run(&ro, &req, &Store::new(["pq"]))
            .await
            .unwrap();
        assert_eq!(m.status, "complete", "{m:?}");
        let t = Duration::from_secs(10);
        let q = |sql: String| {
            let ro = ro.clone();
            async move { ro.query(&sql, t).await.unwrap().rows }
        };
        // Microseconds since the epoch, by the database itself (SQLite's
        // unixepoch() stops at milliseconds: from the text it stores).
        let micros = match dialect {
            Dialect::Sqlite => "CAST(strftime('%s', start_date) AS INTEGER) * 1000000 \
                                + CAST(substr(start_date || '.000000', 21, 6) AS INTEGER)"
                .to_owned(),
            d => format!("{} * 1000000", common::epoch_sql(d, "start_date")),
        };
        let starts = q(format!(
            "SELECT id, {micros} FROM dag_run WHERE start_date IS NOT NULL"
        ))
        .await;
        let paused = q("SELECT dag_id, is_paused FROM dag".into()).await;
        let file = |table: &str| {
            root.join(format!(
                "pq/{table}/export_date=1970-01-01/part-00000.parquet"
            ))
            .display()
            .to_string()
        };
        expected.push((
            dialect,
            file("dag"),
            file("dag_run"),
            file("task_instance"),
            starts,
            paused,
        ));
    }

    let mut args = vec![kinds.display().to_string()];
    for (_, dag, run, ti, _, _) in &expected {
        args.extend([dag.clone(), run.clone(), ti.clone()]);
    }
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/export_job/read_parquet_types.py"))
        .args(&args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();

    let k = &read[kinds.display().to_string()];
    for (col, ty) in [
        ("amount", "decimal(10,2)"),
        ("wide", "string"),
        ("free", "double"),
        ("flag", "boolean"),
        ("at", "timestamp"),
        ("naive", "timestamp"),
        ("n", "bigint"),
    ] {
        assert_eq!(k["types"][col], ty, "{col}: {k}");
    }
    let r = &k["rows"];
    assert_eq!(r[0]["amount"], "12.34");
    assert_eq!(r[1]["amount"], "-0.07");
    assert_eq!(r[0]["wide"], "12345678901234567890.12");
    assert_eq!(r[0]["flag"], true);
    assert_eq!(r[1]["flag"], false);
    // 2026-11-25T01:02:03Z is 1795568523.
    assert_eq!(r[0]["at"], 1_795_568_523_123_456_i64);
    assert_eq!(r[0]["naive"], 1_795_568_523_500_000_i64);
    assert_eq!(r[1]["naive"], 1_795_568_523_000_000_i64 - 7_200_000_000);
    assert!(r[1]["at"].is_null() && r[1]["n"].is_null());

    for (dialect, dag, run, ti, starts, paused) in &expected {
        let (dag, run, ti) = (&read[dag], &read[run], &read[ti]);
        assert_eq!(dag["types"]["is_paused"], "boolean", "{dialect:?}");
        assert_eq!(dag["types"]["dag_id"], "string", "{dialect:?}");
        assert_eq!(run["types"]["start_date"], "timestamp", "{dialect:?}");
        assert_eq!(run["types"]["id"], "bigint", "{dialect:?}");
        assert_eq!(ti["types"]["start_date"], "timestamp", "{dialect:?}");
        assert_eq!(ti["types"]["duration"], "double", "{dialect:?}");
        assert_eq!(ti["types"]["map_index"], "bigint", "{dialect:?}");
        let spark_starts: BTreeMap<i64, i64> = run["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r["start_date"].is_null())
            .map(|r| (r["id"].as_i64().unwrap(), r["start_date"].as_i64().unwrap()))
            .collect();
        assert!(!starts.is_empty());
        assert_eq!(spark_starts.len(), starts.len(), "{dialect:?}");
        for row in starts {
            let id = row[0].as_f64().unwrap() as i64;
            let db_micros = row[1].as_f64().unwrap().round() as i64;
            // PostgreSQL's and MySQL's epochs are doubles: within a microsecond.
            let got = spark_starts[&id];
            assert!(
                (got - db_micros).abs() <= 1,
                "{dialect:?} run {id}: {got} vs {db_micros}"
            );
        }
        let spark_paused: BTreeMap<String, bool> = dag["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                (
                    r["dag_id"].as_str().unwrap().to_owned(),
                    r["is_paused"].as_bool().unwrap(),
                )
            })
            .collect();
        assert_eq!(spark_paused.len(), paused.len(), "{dialect:?}");
        for row in paused {
            let want = row[1]
                .as_f64()
                .map(|v| v != 0.0)
                .or_else(|| row[1].as_label().parse::<bool>().ok());
            let name = row[0].as_label();
            assert_eq!(
                spark_paused.get(&name).copied(),
                want,
                "{dialect:?} {name}: {spark_paused:?}"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// What real Airflow CLIs wrote into `log.extra` (recorded from
/// pip-installed Airflow on SQLite): 2.10.5 keeps a `--conn-uri` password in
/// clear, 3.1.8 a `--conn-extra` token.
const REAL_LEAKS: &[&str] = &[
    r#"{"host_name": "vm", "full_command": "['/venv/bin/airflow', 'connections', 'add', 'ws_pg', '--conn-uri', 'postgres://u:PWsecret1@h:5432/db']"}"#,
    r#"{"host_name": "vm", "full_command": "['/venv/bin/airflow', 'connections', 'add', 'ws_pw', '--conn-type', 'postgres', '--conn-password', '********', '--conn-host', 'h', '--conn-extra', '{\"token\": \"PWsecret4\"}']"}"#,
];

/// Every exported file of `root`, as text (Parquet through its row reader).
fn all_output(root: &Path) -> String {
    use parquet::file::reader::{FileReader as _, SerializedFileReader};
    let mut text = String::new();
    for f in walk(root) {
        let name = f.to_string_lossy().into_owned();
        if name.ends_with(".gz") {
            text.push_str(&gunzip(&f));
        } else if name.ends_with(".parquet") {
            let reader = SerializedFileReader::new(std::fs::File::open(&f).unwrap()).unwrap();
            let schema = reader.metadata().file_metadata().schema_descr();
            for c in schema.columns() {
                text.push_str(c.name());
                text.push('\n');
            }
            for row in reader.get_row_iter(None).unwrap() {
                text.push_str(&row.unwrap().to_string());
                text.push('\n');
            }
        }
    }
    text
}

/// The column policy on every dialect and format: the secrets real Airflow
/// left in `log.extra`, a password in `dag_run.conf` and the pickled
/// `task_instance.executor_config` never reach an export; masked values
/// keep their shape; `[export] columns` narrows a table.
#[tokio::test]
async fn secrets_never_reach_an_export() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_data(dialect, "3.1.8").await;
        for extra in REAL_LEAKS {
            db.exec_script(&format!(
                "INSERT INTO log (dttm, event, extra) VALUES ('2026-12-01 10:30:00', \
                 'cli_connections_add', '{}');",
                extra.replace('\'', "''")
            ))
            .await;
        }
        db.exec_script(
            "UPDATE dag_run SET conf = '{\"db\": {\"password\": \"PWsecret5\"}, \"n\": 1}' \
             WHERE id = (SELECT MIN(id) FROM (SELECT id FROM dag_run) r);",
        )
        .await;
        let ro = db.windsock(&common::fast_settings());
        for format in [
            ExportFormat::Csv,
            ExportFormat::Jsonl,
            ExportFormat::Parquet,
        ] {
            let root = tmpdir("mask");
            let mut columns = BTreeMap::new();
            columns.insert(
                "dag".to_owned(),
                vec!["dag_id".to_owned(), "is_paused".to_owned()],
            );
            let req = Request {
                environment: "m".into(),
                tables: ["log", "dag_run", "task_instance", "serialized_dag", "dag"]
                    .iter()
                    .map(|t| (*t).to_owned())
                    .collect(),
                window: Window {
                    start: 0,
                    end: windsock::metrics::now_unix() as i64 + 86_400,
                },
                to: root.display().to_string(),
                format,
                page_rows: 50,
                timeout: Duration::from_secs(30),
                columns,
            };
            let m = windsock::export::run(&ro, &req, &Store::new(["m"]))
                .await
                .unwrap();
            assert_eq!(m.status, "complete", "{dialect:?} {format:?}: {m:?}");
            let out = all_output(&root);
            assert!(
                !out.contains("PWsecret"),
                "{dialect:?} {format:?}: a secret was exported"
            );
            assert!(
                !out.contains("executor_config"),
                "{dialect:?} {format:?}: executor_config exported"
            );
            assert!(
                out.contains("--conn-uri', '***'") && out.contains("--conn-extra', '***'"),
                "{dialect:?} {format:?}: masked log rows missing"
            );
            assert!(out.contains("***"), "{dialect:?} {format:?}");
            // The allowlist: dag has two columns.
            let dag = walk(&root.join("m/dag"));
            assert_eq!(dag.len(), 1, "{dag:?}");
            let dag_text = all_output(&root.join("m/dag"));
            assert!(
                !dag_text.contains("fileloc"),
                "{dialect:?} {format:?}: {dag_text}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}
