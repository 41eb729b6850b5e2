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

    /// Creates a database and loads the real schema of `version`.
    pub async fn with_schema(dialect: Dialect, version: &str) -> TestDb {
        let db = TestDb::empty(dialect).await;
        db.exec_script(&schema_sql(version, dialect)).await;
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
