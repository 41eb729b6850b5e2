//! Exports of Airflow metadata tables (docs/export.md).
//!
//! An export covers one time window. Each table is read with the window
//! predicate on its recency column and keyset pagination on its key, so
//! memory stays bounded whatever the table size, and written under
//! `<to>/<environment>/<table>/export_date=YYYY-MM-DD/`. The manifest,
//! `<to>/<environment>/_manifests/export_date=YYYY-MM-DD/_manifest.json`,
//! is removed first and written last: an export that did not finish never
//! looks complete.
//!
//! - [`direct`]: windsock reads the rows itself (the embedded default).
//! - [`encode`]: gzip CSV and JSON Lines writers; [`parquet`]: Parquet.
//! - [`sink`]: the local directory destination with atomic publication.

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tracing::info;

use crate::airflow::Schema;
use crate::config::{ExportFormat, ExportMode};
use crate::db::Db;
use crate::metrics::Store;

pub mod cron;
pub mod direct;
pub mod encode;
#[cfg(feature = "aws")]
pub mod glue;
pub mod mask;
pub mod parquet;
#[cfg(feature = "aws")]
pub mod s3;
pub mod sink;

/// Tables never exported, and why. The job script (`export/glue/`) refuses
/// the same list.
pub const EXCLUDED: &[(&str, &str)] = &[
    (
        "connection",
        "connection passwords and extras (secrets, Fernet-encrypted)",
    ),
    ("variable", "variable values are commonly secrets"),
    (
        "trigger",
        "trigger kwargs are encrypted because they carry credentials",
    ),
    ("ab_user", "user password hashes and e-mail addresses"),
    ("ab_register_user", "registration password hashes"),
    ("session", "web server session data (replayable sessions)"),
    ("xcom", "arbitrary task payloads that may hold secrets"),
    (
        "connection_test_request",
        "connection test payloads with passwords and extras",
    ),
];

/// One table to export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableSpec {
    /// Table name.
    pub table: String,
    /// Column the window applies to; `None`: the whole table.
    pub window_column: Option<String>,
    /// Unique, ordered key for keyset pagination.
    pub key: Vec<String>,
}

/// The default tables, in export order.
pub const DEFAULT_TABLES: &[&str] = &[
    "dag",
    "dag_run",
    "task_instance",
    "task_fail",
    "task_reschedule",
    "serialized_dag",
    "log",
    "job",
    "import_error",
    "sla_miss",
];

/// Recency column and key of each table windsock knows, for a schema. The
/// recency columns are the ones `airflow db clean` uses, except `dag_run`:
/// `execution_date` on Airflow 2 (as the original export), `run_after` on
/// Airflow 3, where manual runs have no `logical_date`.
pub fn spec_for(table: &str, schema: &Schema) -> Option<TableSpec> {
    let has = |c: &str| schema.has_column(table, c);
    let s = |window: Option<&str>, key: &[&str]| TableSpec {
        table: table.to_owned(),
        window_column: window.map(str::to_owned),
        key: key.iter().map(|k| (*k).to_owned()).collect(),
    };
    Some(match table {
        "dag" => s(None, &["dag_id"]),
        "dag_run" => {
            let w = if has("run_after") {
                "run_after"
            } else {
                "execution_date"
            };
            s(Some(w), &["id"])
        }
        "task_instance" if has("id") => s(Some("start_date"), &["id"]),
        "task_instance" => s(
            Some("start_date"),
            &["dag_id", "task_id", "run_id", "map_index"],
        ),
        "task_fail" | "task_reschedule" => s(Some("start_date"), &["id"]),
        "serialized_dag" if has("id") => s(Some("last_updated"), &["id"]),
        "serialized_dag" => s(Some("last_updated"), &["dag_id"]),
        "log" => s(Some("dttm"), &["id"]),
        "job" => s(Some("latest_heartbeat"), &["id"]),
        "import_error" => s(Some("timestamp"), &["id"]),
        "sla_miss" => s(Some("timestamp"), &["task_id", "dag_id", "execution_date"]),
        _ => return None,
    })
}

/// Why a table list is not acceptable.
pub fn check_tables(tables: &[String]) -> Result<(), String> {
    for t in tables {
        if let Some((_, why)) = EXCLUDED.iter().find(|(x, _)| x == t) {
            return Err(format!("`{t}` is never exported: {why}"));
        }
        if !DEFAULT_TABLES.contains(&t.as_str()) {
            return Err(format!(
                "`{t}` is not a table windsock can export; use {}",
                DEFAULT_TABLES.join(", ")
            ));
        }
    }
    Ok(())
}

/// A half-open time window `[start, end)`, UNIX seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start (inclusive).
    pub start: i64,
    /// End (exclusive).
    pub end: i64,
}

impl Window {
    /// The window of length `len` ending at the last multiple of `len`
    /// (counted from the UNIX epoch, so in UTC) at or before `now`.
    pub fn ending_before(now: SystemTime, len: Duration) -> Window {
        let now = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
        let len = (len.as_secs() as i64).max(1);
        let end = now - now.rem_euclid(len);
        Window {
            start: end - len,
            end,
        }
    }

    /// `YYYY-MM-DD` of the start: the `export_date` partition.
    pub fn export_date(&self) -> String {
        iso(self.start)[..10].to_owned()
    }
}

/// `YYYY-MM-DDTHH:MM:SSZ` of UNIX seconds (UTC).
pub fn iso(secs: i64) -> String {
    // The demo's civil-date formatter: `YYYY-MM-DD HH:MM:SS.ffffff`.
    let t = crate::demo::ts(secs as f64);
    format!("{}T{}Z", &t[..10], &t[11..19])
}

/// Parses `YYYY-MM-DDTHH:MM:SSZ` (or a bare date) into UNIX seconds.
pub fn parse_iso(text: &str) -> Option<i64> {
    let t = text.trim().trim_end_matches('Z');
    let (date, time) = t.split_once('T').unwrap_or((t, "00:00:00"));
    let mut d = date.splitn(3, '-').map(|p| p.parse::<i64>().ok());
    let (y, m, dd) = (d.next()??, d.next()??, d.next()??);
    let mut tm = time.splitn(3, ':').map(|p| p.parse::<i64>().ok());
    let (h, mi, s) = (tm.next()??, tm.next()??, tm.next().flatten().unwrap_or(0));
    if !(1..=12).contains(&m) || !(1..=31).contains(&dd) || h > 23 || mi > 59 || s > 59 {
        return None;
    }
    let (y2, m2) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let doy = (153 * m2 + 2) / 5 + dd - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + s;
    (iso(secs)[..10] == *date).then_some(secs)
}

/// What happened to one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableResult {
    /// Table.
    pub table: String,
    /// `exported`, `missing`, `excluded` or `failed`.
    pub status: String,
    /// Rows written (exported tables only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rows: Option<u64>,
    /// Bytes written (exported tables only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// The window column, if windowed.
    pub window_column: Option<String>,
    /// `window` or `full`.
    pub mode: String,
    /// Where the files are, relative to the destination (`null` unless
    /// exported).
    pub path: Option<String>,
    /// Why a table is excluded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Why a table failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The `_manifest.json` of one export.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct Manifest {
    /// Format version of this file.
    pub manifest_version: u32,
    /// Environment.
    pub environment: String,
    /// `YYYY-MM-DD` partition.
    pub export_date: String,
    /// The window, ISO-8601 UTC, half-open.
    pub window: ManifestWindow,
    /// Detected Airflow version.
    pub airflow_version: String,
    /// `csv`, `jsonl`, `parquet`.
    pub format: String,
    /// `complete` or `partial` (some table failed).
    pub status: String,
    /// `windsock` (direct mode) or `glue`/`spark`.
    pub engine: String,
    /// Unique id of this export.
    pub run_id: String,
    /// Start time, ISO-8601 UTC.
    pub started_at: String,
    /// End time, ISO-8601 UTC.
    pub finished_at: String,
    /// Per-table outcome.
    pub tables: Vec<TableResult>,
}

/// The window as the manifest shows it.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ManifestWindow {
    /// Inclusive start.
    pub start: String,
    /// Exclusive end.
    pub end: String,
}

/// Why an export could not run at all (a table failing only makes the
/// export `partial`).
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The schema could not be read.
    #[error(transparent)]
    Detect(#[from] crate::airflow::DetectError),
    /// The destination is not usable.
    #[error("destination {path}: {source}")]
    Destination {
        /// The destination.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A destination windsock cannot write to.
    #[error("destination `{0}`: use a local directory or s3://bucket/prefix")]
    Unsupported(String),
    /// The Glue job failed or could not be started.
    #[error("Glue: {0}")]
    Glue(String),
    /// A Glue run of this job is still in progress; none was started.
    #[error("Glue: run {0} of the job is still in progress; not starting another")]
    AlreadyRunning(String),
}

/// One export to run.
#[derive(Debug, Clone)]
pub struct Request {
    /// Environment (the first path level).
    pub environment: String,
    /// Tables, in order.
    pub tables: Vec<String>,
    /// The window.
    pub window: Window,
    /// Destination: a local directory or `file://` URL.
    pub to: String,
    /// Format.
    pub format: ExportFormat,
    /// Rows per page.
    pub page_rows: usize,
    /// Deadline of one query.
    pub timeout: Duration,
    /// Column allowlists by table (`[export] columns`); absent: all.
    pub columns: std::collections::BTreeMap<String, Vec<String>>,
}

impl Request {
    /// The export `[export]` describes for one environment; the window ends
    /// at `end` (UNIX seconds) or at the last window boundary before now.
    pub fn from_settings(
        s: &crate::config::ExportSettings,
        environment: &str,
        timeout: Duration,
        end: Option<i64>,
    ) -> Request {
        let window = match end {
            Some(end) => Window {
                start: end - s.window.as_secs() as i64,
                end,
            },
            None => Window::ending_before(SystemTime::now(), s.window),
        };
        Request {
            environment: environment.to_owned(),
            tables: if s.tables.is_empty() {
                DEFAULT_TABLES.iter().map(|t| (*t).to_owned()).collect()
            } else {
                s.tables.clone()
            },
            window,
            to: s.to.clone(),
            format: s.format,
            page_rows: s.page_rows,
            timeout,
            columns: s.columns.clone(),
        }
    }
}

/// A local destination path from `to` (`None` for `s3://`).
pub fn local_root(to: &str) -> Result<Option<PathBuf>, ExportError> {
    if let Some(rest) = to.strip_prefix("file://") {
        return Ok(Some(PathBuf::from(rest)));
    }
    if to.starts_with("s3://") && cfg!(feature = "aws") {
        return Ok(None);
    }
    if to.contains("://") {
        return Err(ExportError::Unsupported(to.to_owned()));
    }
    Ok(Some(PathBuf::from(to)))
}

/// Where and how to export besides the request: the S3 settings (for
/// `s3://` destinations) and, in Glue mode, the Glue settings and target.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    /// `[export.s3]`.
    pub s3: crate::config::S3Settings,
    /// `Some` in Glue mode: `[export.glue]` and the target's URL.
    pub glue: Option<(crate::config::GlueSettings, crate::db::url::DbUrl)>,
    /// Clients to use instead of the standard chain (tests, emulators).
    #[cfg(feature = "aws")]
    pub clients: Option<(aws_sdk_s3::Client, Option<aws_sdk_glue::Client>)>,
}

impl Engine {
    /// The engine `[export]` describes for a target.
    pub fn from_settings(s: &crate::config::ExportSettings, url: &crate::db::url::DbUrl) -> Engine {
        Engine {
            s3: s.s3.clone(),
            glue: (s.mode == ExportMode::Glue).then(|| (s.glue.clone(), url.clone())),
            #[cfg(feature = "aws")]
            clients: None,
        }
    }
}

/// Runs an export (direct, or through Glue): detect, write every table,
/// publish the manifest last. Records `windsock_export_*` metrics.
pub async fn run(db: &Db, req: &Request, metrics: &Store) -> Result<Manifest, ExportError> {
    run_with(db, req, &Engine::default(), metrics).await
}

/// [`run`] with an explicit [`Engine`].
pub async fn run_with(
    db: &Db,
    req: &Request,
    engine: &Engine,
    metrics: &Store,
) -> Result<Manifest, ExportError> {
    let started = SystemTime::now();
    let clock = std::time::Instant::now();
    let mode = if engine.glue.is_some() {
        ExportMode::Glue
    } else {
        ExportMode::Direct
    };
    let res = match mode {
        ExportMode::Direct => run_inner(db, req, engine, started).await,
        #[cfg(feature = "aws")]
        ExportMode::Glue => glue::run(db, req, engine, metrics).await,
        #[cfg(not(feature = "aws"))]
        ExportMode::Glue => Err(ExportError::Glue(
            "this windsock was built without the `aws` feature".to_owned(),
        )),
    };
    let mode = mode.as_str();
    let outcome = match &res {
        Ok(m) if m.status == "complete" => "success",
        Ok(_) => "partial",
        Err(ExportError::AlreadyRunning(_)) => "skipped",
        Err(_) => "failed",
    };
    metrics.add(
        "windsock_export_runs",
        &[
            ("environment", &req.environment),
            ("mode", mode),
            ("outcome", outcome),
        ],
        1.0,
    );
    metrics.set(
        "windsock_export_duration_seconds",
        &[("environment", &req.environment), ("mode", mode)],
        clock.elapsed().as_secs_f64(),
    );
    if let Ok(m) = &res {
        for t in m.tables.iter().filter(|t| t.status == "exported") {
            let l = [
                ("environment", req.environment.as_str()),
                ("table", t.table.as_str()),
            ];
            metrics.set("windsock_export_rows", &l, t.rows.unwrap_or(0) as f64);
            metrics.set("windsock_export_bytes", &l, t.bytes.unwrap_or(0) as f64);
        }
        if outcome == "success" {
            metrics.set(
                "windsock_export_last_success_timestamp_seconds",
                &[("environment", &req.environment), ("mode", mode)],
                crate::metrics::now_unix(),
            );
        }
    }
    res
}

/// A new run id: start time and a random suffix.
pub fn run_id(started: SystemTime) -> String {
    format!("{}-{:08x}", secs(started), rand::random::<u32>())
}

fn secs(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64
}

async fn open_sink(
    req: &Request,
    engine: &Engine,
    date: &str,
    run_id: &str,
) -> Result<sink::Sink, ExportError> {
    let dest_err = |source| ExportError::Destination {
        path: req.to.clone(),
        source,
    };
    if let Some(root) = local_root(&req.to)? {
        return sink::LocalSink::begin(&root, &req.environment, date, run_id)
            .map(sink::Sink::Local)
            .map_err(dest_err);
    }
    #[cfg(feature = "aws")]
    {
        let url =
            s3::S3Url::parse(&req.to).ok_or_else(|| ExportError::Unsupported(req.to.clone()))?;
        let client = match &engine.clients {
            Some((c, _)) => c.clone(),
            None => s3::client(&s3::sdk_config(&engine.s3).await, &engine.s3),
        };
        s3::S3Sink::begin(client, url, &req.environment, date, run_id)
            .await
            .map(sink::Sink::S3)
            .map_err(dest_err)
    }
    #[cfg(not(feature = "aws"))]
    {
        let _ = engine;
        Err(ExportError::Unsupported(req.to.clone()))
    }
}

async fn run_inner(
    db: &Db,
    req: &Request,
    engine: &Engine,
    started: SystemTime,
) -> Result<Manifest, ExportError> {
    let schema = crate::airflow::detect(db, req.timeout).await?;
    let run_id = run_id(started);
    let date = req.window.export_date();
    let dest_err = |source| ExportError::Destination {
        path: req.to.clone(),
        source,
    };
    let sink = open_sink(req, engine, &date, &run_id).await?;
    info!(
        environment = %req.environment,
        window_start = %iso(req.window.start),
        window_end = %iso(req.window.end),
        tables = req.tables.len(),
        to = %req.to,
        "Export started."
    );
    let opts = direct::Options {
        format: req.format,
        page_rows: req.page_rows,
        timeout: req.timeout,
        columns: req.columns.clone(),
    };
    let tables = direct::export(db, &schema, &req.tables, req.window, &opts, &sink).await;
    let failed = tables.iter().any(|t| t.status == "failed");
    let manifest = Manifest {
        manifest_version: 1,
        environment: req.environment.clone(),
        export_date: date,
        window: ManifestWindow {
            start: iso(req.window.start),
            end: iso(req.window.end),
        },
        airflow_version: schema.version_label(),
        format: req.format.as_str().to_owned(),
        status: if failed { "partial" } else { "complete" }.to_owned(),
        engine: "windsock".to_owned(),
        run_id,
        started_at: iso(secs(started)),
        finished_at: iso(secs(SystemTime::now())),
        tables,
    };
    let json = serde_json::to_string_pretty(&manifest).unwrap_or_default();
    let path = sink.publish_manifest(&json).await.map_err(dest_err)?;
    info!(
        manifest = %path,
        status = %manifest.status,
        rows = manifest.tables.iter().filter_map(|t| t.rows).sum::<u64>(),
        "Export finished."
    );
    Ok(manifest)
}

/// The scheduled export of one target inside `windsock run`: at every
/// `interval` boundary (UTC), the replica that gets the target's export
/// lock exports the window ending at the last `window` boundary.
pub async fn schedule(
    db: Db,
    url: crate::db::url::DbUrl,
    database: crate::config::DatabaseSettings,
    settings: crate::config::ExportSettings,
    environment: String,
    metrics: std::sync::Arc<Store>,
    cancel: tokio_util::sync::CancellationToken,
) {
    let every = settings.interval.as_secs().max(1);
    let cron = settings
        .cron
        .as_deref()
        .and_then(|c| cron::Cron::parse(c).ok());
    loop {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let next = match &cron {
            Some(c) => match c.next_after(now as i64) {
                Some(next) => next.max(now as i64 + 1) as u64,
                None => {
                    tracing::warn!(environment = %environment, "Export: the cron expression matches no future time; no scheduled exports.");
                    return;
                }
            },
            None => now + (every - now % every),
        };
        info!(environment = %environment, next = %iso(next as i64), "Export: next run scheduled.");
        let wait = Duration::from_secs(next - now);
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(wait) => {}
        }
        let lock = format!("windsock.export.{environment}");
        let leader = match crate::db::lock::Leader::try_acquire(&url, &database, &lock).await {
            Ok(Some(l)) => l,
            Ok(None) => {
                info!(environment = %environment, "Export: another replica holds the export lock; skipping this run.");
                continue;
            }
            Err(e) => {
                tracing::warn!(environment = %environment, error = %e, "Export: cannot take the export lock; skipping this run.");
                continue;
            }
        };
        let req = Request::from_settings(&settings, &environment, database.statement_timeout, None);
        let engine = Engine::from_settings(&settings, &url);
        if let Err(e) = run_with(&db, &req, &engine, &metrics).await {
            tracing::warn!(environment = %environment, error = %e, "Export failed.");
        }
        leader.release().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(iso(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso(1_795_564_800), "2026-11-25T00:00:00Z");
        assert_eq!(parse_iso("2026-11-25T00:00:00Z"), Some(1_795_564_800));
        assert_eq!(parse_iso("2026-11-25"), Some(1_795_564_800));
        assert_eq!(
            parse_iso("2024-02-29T12:30:00Z").map(iso).as_deref(),
            Some("2024-02-29T12:30:00Z")
        );
        assert_eq!(parse_iso("2026-02-30"), None);
        assert_eq!(parse_iso("2026-13-01"), None);
        assert_eq!(parse_iso("yesterday"), None);
    }

    #[test]
    fn windows_end_on_boundaries() {
        let now = UNIX_EPOCH + Duration::from_secs(1_795_564_800 + 3_600 * 5);
        let w = Window::ending_before(now, Duration::from_secs(86_400));
        assert_eq!(
            (iso(w.start), iso(w.end)),
            ("2026-11-24T00:00:00Z".into(), "2026-11-25T00:00:00Z".into())
        );
        assert_eq!(w.export_date(), "2026-11-24");
        let h = Window::ending_before(now, Duration::from_secs(3_600));
        assert_eq!(iso(h.end), "2026-11-25T05:00:00Z");
    }

    #[test]
    fn secret_tables_are_refused() {
        assert!(
            check_tables(&["connection".into()])
                .unwrap_err()
                .contains("never exported")
        );
        assert!(check_tables(&["nope".into()]).is_err());
        assert!(check_tables(&["dag_run".into(), "log".into()]).is_ok());
    }
}
