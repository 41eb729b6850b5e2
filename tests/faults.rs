//! Faults against the real binary: a PostgreSQL cluster the test owns
//! (`pg_createcluster` on a spare port) stopped and started while
//! Prometheus-like scrapes go on: no scrape fails, staleness shows, and the
//! diagnostics run again as soon as the database is back instead of after
//! their backoff; and shutdown cancels the queries still running on
//! PostgreSQL and MariaDB instead of leaving them to their timeout.

mod common;

use std::io::{Read as _, Write as _};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TestDb, Windsock};
use sqlx::Connection as _;
use windsock::db::Dialect;

/// A PostgreSQL cluster of this test: created, started, stopped, dropped.
struct Cluster {
    version: String,
    name: String,
    port: u16,
}

impl Cluster {
    fn create() -> Cluster {
        let version = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server packages (postgresql-common)")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .max()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let name = format!("wsfault{}", std::process::id());
        let c = Cluster {
            version,
            name,
            port,
        };
        c.ctl(
            "pg_createcluster",
            &["-p", &port.to_string(), "--start", "--", "--auth=trust"],
        );
        c
    }

    fn ctl(&self, program: &str, extra: &[&str]) {
        let out = Command::new(program)
            .arg(&self.version)
            .arg(&self.name)
            .args(extra)
            .output()
            .unwrap_or_else(|e| panic!("{program}: {e}"));
        assert!(
            out.status.success(),
            "{program} {extra:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn url(&self, db: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{db}", self.port)
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new("pg_dropcluster")
            .args([&self.version, &self.name, "--stop"])
            .output();
    }
}

/// One scrape of `/metrics`: the status and body, or why it failed.
fn scrape(addr: SocketAddr) -> Result<(u16, String), String> {
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .map_err(|e| e.to_string())?;
    let mut out = String::new();
    s.read_to_string(&mut out).map_err(|e| e.to_string())?;
    let status = out
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line: {out:?}"))?;
    Ok((status, out))
}

fn value(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Starts `windsock run` on a config of its own: a listener on port 0, no
/// start-up jitter, then `rest` (which continues `[collection]`).
fn start(tag: &str, rest: &str) -> (Windsock, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("ws-faults-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("windsock.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[collection]\nstartup_jitter = \"0s\"\n{rest}"
        ),
    )
    .unwrap();
    let ws = Windsock::start(&["run", "--config", cfg.to_str().unwrap()], &[]);
    (ws, dir)
}

#[tokio::test(flavor = "multi_thread")]
async fn database_restart_while_scraping() {
    let cluster = Cluster::create();
    {
        let mut c = sqlx::PgConnection::connect(&cluster.url("postgres"))
            .await
            .unwrap();
        sqlx::raw_sql("CREATE DATABASE airflow")
            .execute(&mut c)
            .await
            .unwrap();
        let mut c = sqlx::PgConnection::connect(&cluster.url("airflow"))
            .await
            .unwrap();
        let data = common::data_sql("3.1.8", Dialect::Postgres);
        sqlx::raw_sql(sqlx::AssertSqlSafe(data))
            .execute(&mut c)
            .await
            .unwrap();
    }
    // `dag_states` every 2s: the probe's period; a long backoff cap, so waiting
    // out the backoff would take far longer than the 2s recovery expected.
    let (ws, dir) = start(
        "restart",
        &format!(
            "max_backoff = \"5m\"\n[database]\nacquire_timeout = \"1s\"\n\
             [diagnostics.overrides.dag_states]\ninterval = \"2s\"\n\
             [[targets]]\nenvironment = \"f\"\nurl = \"{}\"\n",
            cluster.url("airflow")
        ),
    );
    let addr = ws.addr;
    let up = "windsock_up{environment=\"f\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    while value(&scrape(addr).unwrap().1, up) != Some(1.0) {
        assert!(Instant::now() < deadline, "never up:\n{}", ws.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    // Scrape every 200ms throughout.
    let failures = Arc::new(Mutex::new(Vec::new()));
    let last = Arc::new(Mutex::new(String::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let scraper = {
        let (failures, last, stop) = (failures.clone(), last.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match scrape(addr) {
                    Ok((200, body)) => *last.lock().unwrap() = body,
                    Ok((code, _)) => failures.lock().unwrap().push(format!("HTTP {code}")),
                    Err(e) => failures.lock().unwrap().push(e),
                }
                n += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            n
        })
    };
    let wait_for = |what: &str, within: Duration, f: &dyn Fn(&str) -> bool| {
        let t0 = Instant::now();
        while !f(&last.lock().unwrap()) {
            assert!(
                t0.elapsed() < within,
                "{what} not within {within:?}:\n{}",
                ws.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        t0.elapsed()
    };

    cluster.ctl("pg_ctlcluster", &["stop", "-m", "fast"]);
    wait_for("windsock_up 0", Duration::from_secs(20), &|m| {
        value(m, up) == Some(0.0)
    });
    // Down long enough for `dag_states` to back off to 16s and more.
    std::thread::sleep(Duration::from_secs(12));
    let stale = value(
        &last.lock().unwrap(),
        "windsock_diagnostic_last_success_timestamp_seconds{environment=\"f\",diagnostic=\"dag_states\"}",
    )
    .unwrap();
    assert!(
        windsock::metrics::now_unix() - stale > 10.0,
        "staleness is not visible"
    );
    cluster.ctl("pg_ctlcluster", &["start"]);
    let recovered = wait_for("recovery", Duration::from_secs(30), &|m| {
        value(m, up) == Some(1.0)
            && value(
                m,
                "windsock_diagnostic_last_success_timestamp_seconds{environment=\"f\",diagnostic=\"dag_states\"}",
            )
            .is_some_and(|t| t > stale)
    });
    stop.store(true, Ordering::Relaxed);
    let scrapes = scraper.join().unwrap();
    let failed = failures.lock().unwrap().clone();
    assert!(
        failed.is_empty(),
        "{} of {scrapes} scrapes failed: {failed:?}",
        failed.len()
    );
    // The probe runs every 2s (the shortest interval); the backoff of `dag_states`
    // had reached 16s or more.
    assert!(
        recovered < Duration::from_secs(8),
        "recovered after {recovered:?}:\n{}",
        ws.log()
    );
    assert!(
        ws.log().contains("The database answers again"),
        "{}",
        ws.log()
    );
    eprintln!(
        "database restart: {scrapes} scrapes, none failed; recovered {recovered:?} after the restart"
    );
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Queries of this database still running with windsock's tag.
async fn tagged_running(db: &TestDb) -> i64 {
    match db.dialect {
        Dialect::Postgres => {
            db.scalar(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE state = 'active' \
                 AND datname = current_database() AND query LIKE '/* windsock %'",
            )
            .await
        }
        _ => {
            db.scalar(
                "SELECT COUNT(*) FROM information_schema.processlist \
                 WHERE db = DATABASE() AND info LIKE '/* windsock %'",
            )
            .await
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_cancels_queries_still_running() {
    for (dialect, slow) in [
        (
            Dialect::Postgres,
            "SELECT 1 AS v FROM (SELECT pg_sleep(60)) s",
        ),
        (Dialect::MySql, "SELECT SLEEP(60) + 1 AS v"),
    ] {
        let db = TestDb::with_schema(dialect, "3.1.8").await;
        let (ws, dir) = start(
            &format!("cancel-{}", dialect.as_str()),
            &format!(
                "default_timeout = \"90s\"\n[database]\nstatement_timeout = \"90s\"\n\
                 [[targets]]\nurl = \"{}\"\n[[queries]]\nname = \"slow\"\ninterval = \"1m\"\n\
                 timeout = \"90s\"\nsql = \"{slow}\"\n[[queries.metrics]]\nname = \"ws_slow\"\n\
                 values = [\"v\"]\n",
                db.url
            ),
        );
        let t0 = Instant::now();
        while tagged_running(&db).await == 0 {
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "{dialect}: the slow query never ran:\n{}",
                ws.log()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let (status, log) = ws.terminate();
        assert!(status.success(), "{dialect}: {log}");
        assert!(
            log.contains("Cancelled queries still running"),
            "{dialect}: {log}"
        );
        let t1 = Instant::now();
        while tagged_running(&db).await > 0 {
            assert!(
                t1.elapsed() < Duration::from_secs(5),
                "{dialect}: a query of the stopped windsock still runs"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
