//! `windsock bench`: measurements behind docs/benchmarks.md.
//!
//! - `cycle`: one cold registry cycle against a database (every diagnostic,
//!   timed one by one), then, after an optional command that adds rows,
//!   steady-state cycles; with PostgreSQL's `pg_stat_statements` loaded,
//!   the database time each cycle cost as the server measured it.
//! - `scrape`: `/metrics` latency and throughput under concurrent scrapers
//!   for a store holding a given number of series, and the resident memory.
//! - `startup`: time from starting `windsock run` to a ready `/readyz`.
//!
//! Output is JSON on stdout (one object), progress on stderr.

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;
use sqlx::Connection as _;

use crate::config::Settings;
use crate::db::Dialect;
use crate::db::url::DbUrl;
use crate::diagnostics::{Family, MetricSpec};
use crate::metrics::Store;
use crate::metrics::limits::Limits;
use crate::runner::{RunResult, TargetRunner};

/// Errors of the benchmark command.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// Bad arguments or setup.
    #[error("{0}")]
    Setup(String),
    /// I/O.
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Timing of one diagnostic in one cycle.
#[derive(Debug, Serialize)]
pub struct DiagTiming {
    /// Diagnostic.
    pub diagnostic: String,
    /// Wall time, milliseconds.
    pub ms: f64,
    /// Rows read.
    pub rows: usize,
    /// ok / skipped / failed: <kind>.
    pub outcome: String,
}

/// One cycle.
#[derive(Debug, Serialize)]
pub struct Cycle {
    /// cold / steady.
    pub kind: &'static str,
    /// Wall time of the whole cycle (diagnostics one after another), ms.
    pub wall_ms: f64,
    /// Time windsock waited for the database (query sent to last row
    /// received, connection set-up included), summed over the cycle's
    /// queries, ms.
    pub db_wait_ms: f64,
    /// Queries the cycle made.
    pub queries: u64,
    /// Server-side execution time per pg_stat_statements, ms (PostgreSQL
    /// with the extension only).
    pub db_ms: Option<f64>,
    /// Statements executed per pg_stat_statements.
    pub db_calls: Option<i64>,
    /// Per diagnostic.
    pub diagnostics: Vec<DiagTiming>,
}

async fn stat_reset(url: &str) -> Option<sqlx::PgConnection> {
    let mut c = sqlx::PgConnection::connect(url).await.ok()?;
    sqlx::query("SELECT pg_stat_statements_reset()")
        .execute(&mut c)
        .await
        .ok()?;
    Some(c)
}

async fn stat_read(c: &mut sqlx::PgConnection) -> Option<(f64, i64)> {
    // Everything executed in this database since the reset, except the
    // measurement's own statements.
    sqlx::query_as::<_, (Option<f64>, Option<i64>)>(
        "SELECT SUM(total_exec_time)::float8, SUM(calls)::int8 FROM pg_stat_statements \
         WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
           AND query NOT ILIKE '%pg_stat_statements%'",
    )
    .fetch_one(c)
    .await
    .ok()
    .map(|(t, n)| (t.unwrap_or(0.0), n.unwrap_or(0)))
}

async fn one_cycle(
    r: &TargetRunner,
    url: &DbUrl,
    raw_url: &str,
    kind: &'static str,
) -> Result<Cycle, BenchError> {
    let mut stats = if url.dialect() == Dialect::Postgres {
        stat_reset(raw_url).await
    } else {
        None
    };
    let schema = r
        .detect()
        .await
        .map_err(|e| BenchError::Setup(format!("detect: {e}")))?;
    let (wait0, q0) = r.db.stats().get();
    let started = Instant::now();
    let mut diagnostics = Vec::new();
    for p in r.plan.iter() {
        let t = Instant::now();
        let res = r.run_one(p, &schema).await;
        let ms = t.elapsed().as_secs_f64() * 1000.0;
        let (rows, outcome) = match res {
            RunResult::Ok(o) => (o.rows, "ok".to_owned()),
            RunResult::Skipped(why) => (0, format!("skipped: {why}")),
            RunResult::Failed(e) => (0, format!("failed: {} {e}", e.kind())),
        };
        eprintln!(
            "  {kind:<6} {:<24} {ms:>9.1} ms {rows:>8} rows  {outcome}",
            p.diagnostic.meta().name
        );
        diagnostics.push(DiagTiming {
            diagnostic: p.diagnostic.meta().name.to_string(),
            ms,
            rows,
            outcome,
        });
    }
    let wall_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (wait1, q1) = r.db.stats().get();
    eprintln!(
        "  {kind:<6} cycle: {wall_ms:.1} ms wall, {:.1} ms waiting for the DB in {} queries",
        (wait1 - wait0) * 1000.0,
        q1 - q0
    );
    let db = match stats.as_mut() {
        Some(c) => stat_read(c).await,
        None => None,
    };
    Ok(Cycle {
        kind,
        wall_ms,
        db_wait_ms: (wait1 - wait0) * 1000.0,
        queries: q1 - q0,
        db_ms: db.map(|d| d.0),
        db_calls: db.map(|d| d.1),
        diagnostics,
    })
}

/// `windsock bench cycle`.
pub async fn cycle(
    raw_url: &str,
    steady_cycles: usize,
    between: Option<&str>,
    window: Option<Duration>,
) -> Result<serde_json::Value, BenchError> {
    let url = DbUrl::parse(raw_url).map_err(|e| BenchError::Setup(e.to_string()))?;
    let mut settings = Settings::default();
    if let Some(w) = window {
        settings.diagnostics.window = w;
    }
    // Long enough for cold cycles on big databases.
    settings.collection.default_timeout = Duration::from_secs(300);
    settings.database.statement_timeout = Duration::from_secs(300);
    let store = Arc::new(Store::new(["bench"]));
    let r = TargetRunner {
        environment: "bench".into(),
        db: crate::db::Db::new(&url, &settings.database)
            .map_err(|e| BenchError::Setup(e.to_string()))?,
        plan: Arc::new(crate::diagnostics::registry(&settings).map_err(BenchError::Setup)?),
        store,
        settings: settings.collection.clone(),
        limits: Arc::new(Limits::default()),
    };
    let sqlx_url = match url.dialect() {
        Dialect::Postgres => raw_url.replacen("postgresql+psycopg2://", "postgres://", 1),
        _ => raw_url.to_owned(),
    };
    let mut cycles = vec![one_cycle(&r, &url, &sqlx_url, "cold").await?];
    // A second pass with nothing new: the floor of a steady cycle.
    cycles.push(one_cycle(&r, &url, &sqlx_url, "steady").await?);
    if let Some(cmd) = between {
        eprintln!("  running: {cmd}");
        let status = std::process::Command::new("sh")
            .args(["-c", cmd])
            .status()?;
        if !status.success() {
            return Err(BenchError::Setup(format!("`{cmd}` failed: {status}")));
        }
    }
    for _ in 0..steady_cycles {
        cycles.push(one_cycle(&r, &url, &sqlx_url, "steady").await?);
    }
    r.db.close().await;
    Ok(serde_json::json!({ "database": url.to_string(), "cycles": cycles }))
}

/// A store with `n` synthetic series (per-DAG and per-task families).
pub fn synthetic_store(n: usize) -> Arc<Store> {
    let store = Arc::new(Store::new(["bench"]));
    let families = 20;
    let per = n / families;
    let mut fams = Vec::new();
    for f in 0..families {
        let spec = Arc::new(
            MetricSpec::gauge(
                Box::leak(format!("airflow_bench_family_{f}_seconds").into_boxed_str()),
                "Synthetic family for the scrape benchmark",
                "v",
            )
            .labels(&["dag_id", "task_id"]),
        );
        let samples = (0..per)
            .map(|i| {
                (
                    vec![format!("dag_{:05}", i / 10), format!("task_{:02}", i % 10)],
                    (i as f64) * 1.5,
                )
            })
            .collect();
        fams.push(Family {
            label_names: spec.label_names().into(),
            spec,
            samples,
        });
    }
    store.publish("bench", "synthetic", fams, n, 0.0);
    store
}

/// Resident and peak resident memory of this process, kB.
pub fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One scrape as Prometheus makes it (OpenMetrics, gzip); the body is read
/// and discarded, so the clients' memory stays small and does not count
/// as windsock's.
fn get(stream: &mut std::net::TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    stream.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: application/openmetrics-text;version=1.0.0\r\nAccept-Encoding: gzip\r\n\r\n")?;
    // Read the head, then exactly Content-Length bytes.
    buf.clear();
    let mut chunk = [0u8; 65536];
    let (head_end, len) = loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .ok_or(std::io::ErrorKind::InvalidData)?;
            break (p + 4, len);
        }
    };
    let mut left = (head_end + len).saturating_sub(buf.len());
    while left > 0 {
        let n = stream.read(&mut chunk[..left.min(65536)])?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        left -= n;
    }
    Ok(len)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1]
}

/// `windsock bench scrape`.
pub async fn scrape(
    series: usize,
    concurrency: usize,
    duration: Duration,
) -> Result<serde_json::Value, BenchError> {
    let (rss0, _) = rss_kb();
    let store = synthetic_store(series);
    let (rss_store, _) = rss_kb();
    let app = crate::http::router(crate::http::AppState::new(store), "/metrics");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr: SocketAddr = listener.local_addr()?;
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    // Warm-up: the first encoding.
    let warm = tokio::task::spawn_blocking(move || -> std::io::Result<usize> {
        let mut s = std::net::TcpStream::connect(addr)?;
        get(&mut s, &mut Vec::new())
    })
    .await
    .map_err(|e| BenchError::Setup(e.to_string()))??;
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..concurrency {
        clients.push(tokio::task::spawn_blocking(move || {
            let mut lat = Vec::new();
            let mut buf = Vec::with_capacity(65536);
            let Ok(mut s) = std::net::TcpStream::connect(addr) else {
                return lat;
            };
            let _ = s.set_nodelay(true);
            while started.elapsed() < duration {
                let t = Instant::now();
                if get(&mut s, &mut buf).is_err() {
                    break;
                }
                lat.push(t.elapsed().as_secs_f64() * 1000.0);
            }
            lat
        }));
    }
    let mut all = Vec::new();
    for c in clients {
        all.extend(c.await.map_err(|e| BenchError::Setup(e.to_string()))?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    server.abort();
    all.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let (rss_after, hwm) = rss_kb();
    Ok(serde_json::json!({
        "series": series,
        "concurrency": concurrency,
        "seconds": elapsed,
        "requests": all.len(),
        "requests_per_second": all.len() as f64 / elapsed,
        "body_bytes_gzip": warm,
        "latency_ms": {
            "p50": percentile(&all, 0.5),
            "p99": percentile(&all, 0.99),
            "max": percentile(&all, 1.0),
        },
        "rss_kb": { "start": rss0, "store_built": rss_store, "after": rss_after, "peak": hwm },
    }))
}

/// `windsock bench startup`: spawns `windsock run` and times readiness.
pub fn startup(db_url: &str, runs: usize) -> Result<serde_json::Value, BenchError> {
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    for _ in 0..runs {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let started = Instant::now();
        let mut child = std::process::Command::new(&exe)
            .args([
                "run",
                "--db-url",
                db_url,
                "--listen",
                &format!("127.0.0.1:{port}"),
            ])
            .env("WINDSOCK_COLLECTION__STARTUP_JITTER", "0s")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()?;
        let ready = loop {
            if started.elapsed() > Duration::from_secs(60) {
                break None;
            }
            if let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) {
                let _ =
                    s.write_all(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
                let mut out = String::new();
                let _ = s.read_to_string(&mut out);
                if out.starts_with("HTTP/1.1 200") {
                    break Some(started.elapsed().as_secs_f64() * 1000.0);
                }
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let _ = child.kill();
        let _ = child.wait();
        times.push(ready.ok_or_else(|| BenchError::Setup("windsock never became ready".into()))?);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    Ok(
        serde_json::json!({ "ready_ms": { "min": times[0], "median": percentile(&times, 0.5), "max": percentile(&times, 1.0) } }),
    )
}
