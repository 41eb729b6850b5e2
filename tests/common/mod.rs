//! Shared test support: real databases loaded from the committed Airflow
//! schema fixtures (`tests/fixtures/schema/<version>/<dialect>.sql`, produced
//! by `tests/airflow/make-fixtures.sh` from real Airflow releases).
//!
//! Each [`TestDb`] is a fresh database of its own (PostgreSQL and MariaDB:
//! `CREATE DATABASE ws_t_…`; SQLite: a temp file), dropped when the value is
//! dropped, so tests run in parallel without sharing state. Servers come
//! from `WINDSOCK_TEST_PG_URL` / `WINDSOCK_TEST_MYSQL_URL` (defaults:
//! the local PostgreSQL and MariaDB on 127.0.0.1), and a guard refuses any
//! host that is not loopback.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod admin_api;
pub mod fab;

use sqlx::{Connection, Executor};
use windsock::config::DatabaseSettings;
use windsock::db::url::DbUrl;
use windsock::db::{Db, Dialect};

/// Root of the committed fixtures.
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Airflow versions with a committed schema, oldest first.
pub fn schema_versions() -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(fixtures().join("schema"))
        .expect("tests/fixtures/schema exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("sqlite.sql").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    v.sort_by_key(|s| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    v
}

/// The schema dump of a version and dialect.
pub fn schema_sql(version: &str, dialect: Dialect) -> String {
    let path = fixtures()
        .join("schema")
        .join(version)
        .join(format!("{}.sql", dialect.as_str()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Airflow versions with a committed data fixture (databases real Airflow
/// wrote; tests/fixtures/data/README.md), oldest first.
/// `WINDSOCK_TEST_DATA=3.1.8` (a comma-separated list) narrows a run.
pub fn data_versions() -> Vec<String> {
    let only = std::env::var("WINDSOCK_TEST_DATA").unwrap_or_default();
    let mut v: Vec<String> = std::fs::read_dir(fixtures().join("data"))
        .expect("tests/fixtures/data exists")
        .filter_map(Result::ok)
        .filter(|e| e.path().join("sqlite.sql").exists())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|v| only.is_empty() || only.split(',').any(|o| o.trim() == v))
        .collect();
    v.sort_by_key(|s| {
        s.split('.')
            .map(|p| p.parse::<u32>().unwrap_or(0))
            .collect::<Vec<_>>()
    });
    v
}

/// The Airflow versions whose data fixtures must exist on every dialect.
pub const DATA_REQUIRED: [&str; 2] = ["2.10.5", "3.1.8"];

/// Every (version, dialect) with a data dump, oldest version first; the
/// versions of [`DATA_REQUIRED`] must be there on all three dialects
/// (unless `WINDSOCK_TEST_DATA` narrows the run).
pub fn data_fixtures() -> Vec<(String, Dialect)> {
    let versions = data_versions();
    if std::env::var_os("WINDSOCK_TEST_DATA").is_none() {
        for v in DATA_REQUIRED {
            for d in Dialect::ALL {
                let path = fixtures().join(format!("data/{v}/{}.sql", d.as_str()));
                assert!(path.exists(), "data fixture missing: {}", path.display());
            }
        }
    }
    versions
        .into_iter()
        .flat_map(|v| Dialect::ALL.into_iter().map(move |d| (v.clone(), d)))
        .filter(|(v, d)| {
            fixtures()
                .join(format!("data/{v}/{}.sql", d.as_str()))
                .exists()
        })
        .collect()
}

/// The data dump real Airflow `version` wrote on `dialect`.
pub fn data_sql(version: &str, dialect: Dialect) -> String {
    let path = fixtures()
        .join("data")
        .join(version)
        .join(format!("{}.sql", dialect.as_str()));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// What the fixture generator recorded about the scenarios of that dump.
pub fn facts(version: &str, dialect: Dialect) -> serde_json::Value {
    let path = fixtures()
        .join("data")
        .join(version)
        .join(format!("{}.facts.json", dialect.as_str()));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A timestamp column as UNIX seconds, for the truth side of value tests
/// (written apart from windsock's own SQL helpers).
pub fn epoch_sql(dialect: Dialect, column: &str) -> String {
    match dialect {
        Dialect::Postgres => format!("CAST(EXTRACT(EPOCH FROM {column}) AS DOUBLE PRECISION)"),
        Dialect::MySql => format!("CAST(UNIX_TIMESTAMP({column}) AS DOUBLE)"),
        Dialect::Sqlite => format!("unixepoch({column}, 'subsec')"),
    }
}

fn pg_admin_url() -> String {
    std::env::var("WINDSOCK_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

fn mysql_admin_url() -> String {
    std::env::var("WINDSOCK_TEST_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306/mysql".to_owned())
}

/// Refuses to run tests against anything but a local server: tests create
/// and drop databases.
fn guard(url: &str) -> url::Url {
    let u = url::Url::parse(url).expect("test DB URL parses");
    let host = u.host_str().unwrap_or("");
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "::1" | "[::1]"),
        "refusing to run tests against non-local database host {host:?}"
    );
    u
}

static SEQ: AtomicUsize = AtomicUsize::new(0);

fn unique_name() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!(
        "ws_t_{}_{}_{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

/// A fresh database with a real Airflow schema.
pub struct TestDb {
    /// Dialect.
    pub dialect: Dialect,
    /// URL (sqlx form) of the database.
    pub url: String,
    name: String,
    file: Option<PathBuf>,
}

impl TestDb {
    /// Creates an empty database (no schema).
    pub async fn empty(dialect: Dialect) -> TestDb {
        let name = unique_name();
        match dialect {
            Dialect::Postgres => {
                let admin = guard(&pg_admin_url());
                let mut conn = sqlx::PgConnection::connect(admin.as_str())
                    .await
                    .expect("PostgreSQL on 127.0.0.1:5432 (start it, or set WINDSOCK_TEST_PG_URL)");
                conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .await
                    .unwrap();
                let mut url = admin.clone();
                url.set_path(&name);
                TestDb {
                    dialect,
                    url: url.to_string(),
                    name,
                    file: None,
                }
            }
            Dialect::MySql => {
                let admin = guard(&mysql_admin_url());
                let mut conn = sqlx::MySqlConnection::connect(admin.as_str()).await.expect(
                    "MariaDB/MySQL on 127.0.0.1:3306 (start it, or set WINDSOCK_TEST_MYSQL_URL)",
                );
                conn.execute(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci"
                )))
                .await
                .unwrap();
                let mut url = admin.clone();
                url.set_path(&name);
                TestDb {
                    dialect,
                    url: url.to_string(),
                    name,
                    file: None,
                }
            }
            Dialect::Sqlite => {
                let dir = std::env::temp_dir().join("windsock-tests");
                std::fs::create_dir_all(&dir).unwrap();
                let file = dir.join(format!("{name}.db"));
                TestDb {
                    dialect,
                    // SQLAlchemy form: three slashes, then the absolute path.
                    url: format!("sqlite:///{}", file.display()),
                    name,
                    file: Some(file),
                }
            }
        }
    }

    /// A database on a server of the test's own, not created or dropped
    /// here.
    pub fn external(dialect: Dialect, url: &str) -> TestDb {
        TestDb {
            dialect,
            url: url.to_owned(),
            name: String::new(),
            file: None,
        }
    }

    /// Creates a database and loads the real schema of `version`.
    pub async fn with_schema(dialect: Dialect, version: &str) -> TestDb {
        let db = TestDb::empty(dialect).await;
        db.exec_script(&schema_sql(version, dialect)).await;
        db
    }

    /// Creates a database and loads the data real Airflow `version` wrote
    /// on this dialect.
    pub async fn with_data(dialect: Dialect, version: &str) -> TestDb {
        let db = TestDb::empty(dialect).await;
        db.exec_script(&data_sql(version, dialect)).await;
        db
    }

    /// Runs a multi-statement script with a writable admin connection.
    pub async fn exec_script(&self, sql: &str) {
        let sql = sql.to_owned();
        match self.dialect {
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
            Dialect::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
            Dialect::Sqlite => {
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(self.file.as_ref().unwrap())
                    .create_if_missing(true)
                    .foreign_keys(false);
                let mut c = sqlx::SqliteConnection::connect_with(&opts).await.unwrap();
                sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                    .execute(&mut c)
                    .await
                    .unwrap();
                c.close().await.unwrap();
            }
        }
    }

    /// One integer from a query run with the admin connection.
    pub async fn scalar(&self, sql: &str) -> i64 {
        let sql = sql.to_owned();
        match self.dialect {
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Dialect::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
            Dialect::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
                    .fetch_one(&mut c)
                    .await
                    .unwrap()
            }
        }
    }

    /// Rows of text columns from a query run with the admin connection
    /// (cast the columns to text in the SQL where needed).
    pub async fn text_rows(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        fn take<R: sqlx::Row>(rows: Vec<R>) -> Vec<Vec<Option<String>>>
        where
            for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
            usize: sqlx::ColumnIndex<R>,
        {
            rows.iter()
                .map(|r| {
                    (0..r.len())
                        .map(|i| r.get::<Option<String>, _>(i))
                        .collect()
                })
                .collect()
        }
        let sql = sqlx::AssertSqlSafe(sql.to_owned());
        match self.dialect {
            Dialect::Postgres => {
                let mut c = sqlx::PgConnection::connect(&self.url).await.unwrap();
                take(sqlx::query(sql).fetch_all(&mut c).await.unwrap())
            }
            Dialect::MySql => {
                let mut c = sqlx::MySqlConnection::connect(&self.url).await.unwrap();
                take(sqlx::query(sql).fetch_all(&mut c).await.unwrap())
            }
            Dialect::Sqlite => {
                let mut c = sqlx::SqliteConnection::connect(&self.url).await.unwrap();
                take(sqlx::query(sql).fetch_all(&mut c).await.unwrap())
            }
        }
    }

    /// The windsock URL of this database.
    pub fn db_url(&self) -> DbUrl {
        DbUrl::parse(&self.url).unwrap()
    }

    /// A windsock read-only handle with the given settings.
    pub fn windsock(&self, settings: &DatabaseSettings) -> Db {
        Db::new(&self.db_url(), settings).unwrap()
    }

    /// The SQLite file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
            return;
        }
        if self.name.is_empty() {
            return;
        }
        let (dialect, name) = (self.dialect, self.name.clone());
        // Drop runs outside any runtime guarantee: use a private one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let sql = format!("DROP DATABASE IF EXISTS {name}");
                match dialect {
                    Dialect::Postgres => {
                        if let Ok(mut c) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                            let _ = c
                                .execute(sqlx::AssertSqlSafe(format!("{sql} WITH (FORCE)")))
                                .await;
                        }
                    }
                    Dialect::MySql => {
                        if let Ok(mut c) = sqlx::MySqlConnection::connect(&mysql_admin_url()).await
                        {
                            let _ = c.execute(sqlx::AssertSqlSafe(sql)).await;
                        }
                    }
                    Dialect::Sqlite => {}
                }
            });
        })
        .join();
    }
}

/// Database settings for tests: short timeouts.
pub fn fast_settings() -> DatabaseSettings {
    DatabaseSettings {
        statement_timeout: Duration::from_secs(10),
        lock_timeout: Duration::from_secs(2),
        acquire_timeout: Duration::from_secs(5),
        ..DatabaseSettings::default()
    }
}

/// A running `windsock` process whose stderr is collected.
pub struct Windsock {
    child: std::process::Child,
    /// The address it listens on.
    pub addr: std::net::SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<String>>,
}

impl Windsock {
    /// The admin listener's `host:port`, from its "Admin API listening at
    /// <scheme>://" log line (waits up to 10 s).
    pub fn admin_addr(&self, scheme: &str) -> String {
        let marker = format!("Admin API listening at {scheme}://");
        for _ in 0..100 {
            let log = self.log();
            if let Some(p) = log.find(&marker) {
                return log[p + marker.len()..]
                    .split('/')
                    .next()
                    .unwrap()
                    .to_owned();
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!("no admin listener; log:\n{}", self.log());
    }

    /// Starts the binary with `args` (which must make it listen on port 0
    /// or a free port) and waits for its "Listening" log line.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Windsock {
        use std::io::BufRead as _;
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_windsock"));
        cmd.args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .env_remove("RUST_LOG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("windsock binary starts");
        let stderr = child.stderr.take().unwrap();
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                // Text logs say `listen=ADDR`, JSON logs `"listen":"ADDR"`.
                let found = line
                    .find("listen=")
                    .map(|p| p + 7)
                    .or_else(|| line.find("\"listen\":\"").map(|p| p + 10));
                if let Some(pos) = found {
                    let rest = &line[pos..];
                    let addr = rest
                        .split(|c: char| c.is_whitespace() || c == '"' || c == ',')
                        .find(|s| !s.is_empty())
                        .unwrap_or("");
                    let _ = tx.send(addr.to_owned());
                }
                let mut l = sink.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let addr = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a
                .parse()
                .unwrap_or_else(|_| panic!("bad listen address {a:?}")),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "windsock did not start listening; log:\n{}",
                    log.lock().unwrap()
                );
            }
        };
        Windsock { child, addr, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything it wrote to stderr so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(mut self) -> (std::process::ExitStatus, String) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                // Let the reader thread drain the pipe.
                std::thread::sleep(Duration::from_millis(200));
                return (status, self.log());
            }
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("windsock did not stop after SIGTERM; log:\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Windsock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 GET (no client dependency): status, headers, body.
pub fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    accept: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let accept = accept
        .map(|a| format!("Accept: {a}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\n{accept}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect::<Vec<_>>();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

/// Polls `/readyz` until it answers 200.
pub fn wait_ready(addr: std::net::SocketAddr) {
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if http_get(addr, "/readyz", None).0 == 200 {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("windsock at {addr} never became ready");
}

/// `metric{label=value,…}` → value for every sample of `families` (label
/// values unquoted, in label order), for assertions on exact values.
pub fn sample_map(
    families: &[windsock::diagnostics::Family],
) -> std::collections::HashMap<String, f64> {
    let mut out = std::collections::HashMap::new();
    for f in families {
        for (labels, v) in &f.samples {
            let pairs: Vec<String> = f
                .label_names
                .iter()
                .zip(labels)
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            out.insert(format!("{}{{{}}}", f.spec.name, pairs.join(",")), *v);
        }
    }
    out
}

/// A MariaDB server of a test's own, on a free loopback port, whose
/// *system* time zone is `tz` (the `TZ` of the server process): for what
/// depends on the server's local time. Needs the mariadb-server binaries;
/// runs the server as the `mysql` user when the test runs as root.
/// Stopped and removed when dropped.
pub struct PrivateMariaDb {
    child: std::process::Child,
    dir: PathBuf,
    /// `mysql://root@127.0.0.1:PORT/test`
    pub url: String,
}

impl PrivateMariaDb {
    /// Installs a data directory and starts the server; waits until it
    /// answers.
    pub fn start(tz: &str) -> PrivateMariaDb {
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!("windsock-mariadb-{}", unique_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let root = std::process::Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let as_user = |program: &str| {
            let mut c = if root {
                let mut c = Command::new("runuser");
                c.args(["-u", "mysql", "--", program]);
                c
            } else {
                Command::new(program)
            };
            c.arg("--no-defaults");
            c
        };
        if root {
            let _ = Command::new("chown")
                .args(["mysql:mysql", dir.to_str().unwrap()])
                .status();
        }
        let data = dir.join("data");
        let out = as_user("mariadb-install-db")
            .arg(format!("--datadir={}", data.display()))
            .args(["--auth-root-authentication-method=normal", "--skip-test-db"])
            .output()
            .expect("mariadb-install-db (Debian package mariadb-server)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let child = as_user("mariadbd")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--port={port}"))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg("--skip-log-bin")
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mariadbd");
        let url = format!("mysql://root@127.0.0.1:{port}/mysql");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "private mariadbd did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        PrivateMariaDb { child, dir, url }
    }
}

impl Drop for PrivateMariaDb {
    fn drop(&mut self) {
        // The server runs under runuser: stop it by the pid it wrote into
        // its data directory, and wait for it to exit.
        let pid = std::fs::read_dir(self.dir.join("data"))
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .find(|e| e.path().extension().is_some_and(|x| x == "pid"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok());
        if let Some(pid) = pid.map(|p| p.trim().to_owned()) {
            let alive = || {
                std::process::Command::new("kill")
                    .args(["-0", &pid])
                    .stderr(std::process::Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            };
            let _ = std::process::Command::new("kill").arg(&pid).status();
            let deadline = std::time::Instant::now() + Duration::from_secs(20);
            while alive() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A PgBouncer of a test's own (Debian's package), in front of the local
/// PostgreSQL, on a free loopback port, with `auth_type = trust` and no
/// `ignore_startup_parameters`: stricter than the Helm chart's, which
/// ignores `extra_float_digits`. Runs as the `postgres` user when the test
/// runs as root (PgBouncer refuses root). Stopped when dropped.
pub struct PgBouncer {
    child: std::process::Child,
    dir: PathBuf,
    /// Its port.
    pub port: u16,
}

impl PgBouncer {
    /// Starts it with `pool_mode` (`transaction` or `session`) and a
    /// server pool of `pool_size` connections per database.
    pub fn start(pool_mode: &str, pool_size: u32) -> PgBouncer {
        PgBouncer::start_with(pool_mode, pool_size, None)
    }

    /// The same, and with a `password`, clients must authenticate as
    /// `postgres` with it (SCRAM), which the local server (trust) never asks.
    pub fn start_with(pool_mode: &str, pool_size: u32, password: Option<&str>) -> PgBouncer {
        use std::process::{Command, Stdio};
        let dir = std::env::temp_dir().join(format!("windsock-pgbouncer-{}", unique_name()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let ini = dir.join("pgbouncer.ini");
        let auth = if password.is_some() {
            "scram-sha-256"
        } else {
            "trust"
        };
        std::fs::write(
            dir.join("userlist.txt"),
            format!("\"postgres\" \"{}\"\n", password.unwrap_or("")),
        )
        .unwrap();
        std::fs::write(
            &ini,
            format!(
                "[databases]\n* = host=127.0.0.1 port=5432\n\n[pgbouncer]\n\
                 listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
                 auth_type = {auth}\nauth_file = {d}/userlist.txt\n\
                 pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n\
                 max_client_conn = 200\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
                d = dir.display()
            ),
        )
        .unwrap();
        let root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0"));
        let mut cmd = if root {
            let _ = Command::new("chown")
                .args(["-R", "postgres", dir.to_str().unwrap()])
                .status();
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--", "pgbouncer"]);
            c
        } else {
            Command::new("pgbouncer")
        };
        let child = cmd
            .arg(&ini)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("pgbouncer (Debian package pgbouncer)");
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "pgbouncer did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        PgBouncer { child, dir, port }
    }

    /// The URL of `db`'s database through this PgBouncer.
    pub fn url(&self, db: &TestDb) -> String {
        let name = url::Url::parse(&db.url).unwrap().path().to_owned();
        format!("postgres://postgres@127.0.0.1:{}{name}", self.port)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        if let Ok(pid) = std::fs::read_to_string(self.dir.join("pgbouncer.pid")) {
            let _ = std::process::Command::new("kill").arg(pid.trim()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
