//! Safe, read-only access to an Airflow metadata database.
//!
//! Every diagnostic runs through [`Db::query`], which:
//! - takes a connection from a small pool (connections are opened lazily, so a
//!   DB that is down at start-up does not stop windsock from serving);
//! - opens a read-only transaction (`BEGIN READ ONLY` on PostgreSQL,
//!   `START TRANSACTION READ ONLY` on MySQL/MariaDB, a SQLite connection
//!   opened read-only with `PRAGMA query_only`), and always rolls it back;
//! - bounds the statement on the server (`statement_timeout`,
//!   `max_execution_time` / `max_statement_time`, a SQLite progress handler)
//!   and on the client, closing a connection that overran rather than
//!   returning it to the pool;
//! - decodes rows into dialect-neutral [`Cell`]s.
//!
//! The session defaults set on every new connection live in [`session`].

pub mod lock;
pub mod session;
pub mod url;
pub mod write;

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::TryStreamExt;
use rust_decimal::prelude::ToPrimitive;
use sqlx::{Column, Connection, Executor, Row, TypeInfo, ValueRef};

use crate::config::DatabaseSettings;
use url::DbUrl;

/// Most rows one diagnostic may return. A query that returns more is cut
/// off with an error instead of growing windsock's memory without bound.
pub const MAX_ROWS: usize = 200_000;

/// The SQL dialects windsock speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL 8 or MariaDB.
    #[serde(alias = "mariadb")]
    MySql,
    /// SQLite.
    Sqlite,
}

impl Dialect {
    /// All dialects, in a fixed order.
    pub const ALL: [Dialect; 3] = [Dialect::Postgres, Dialect::MySql, Dialect::Sqlite];

    /// Lowercase name used in config, labels and fixture paths.
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Postgres => "postgres",
            Dialect::MySql => "mysql",
            Dialect::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for Dialect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What went wrong talking to the database. Messages are redacted.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// No connection could be made (DB down, wrong host, auth failure,
    /// pool exhausted).
    #[error("cannot connect to {url}: {message}")]
    Connect {
        /// The redacted URL.
        url: String,
        /// Why.
        message: String,
    },
    /// The statement ran past its deadline, or waited too long for a lock,
    /// and was cancelled.
    #[error("statement cancelled after {after:?}: {message}")]
    Timeout {
        /// The deadline that applied.
        after: Duration,
        /// The server's or client's message.
        message: String,
    },
    /// The database rejected the statement.
    #[error("query failed: {0}")]
    Query(String),
    /// The transaction was aborted for a concurrent one (deadlock or
    /// serialization failure); running it again may succeed.
    #[error("transaction aborted by a concurrent one: {0}")]
    Conflict(String),
    /// A result column could not be turned into a label or a number.
    #[error("column `{column}`: {message}")]
    Decode {
        /// Column name.
        column: String,
        /// Why.
        message: String,
    },
    /// The query returned more than [`MAX_ROWS`] rows.
    #[error("query returned more than {MAX_ROWS} rows; narrow it")]
    TooManyRows,
}

impl DbError {
    /// A short, stable name for the `kind` label of error counters.
    pub fn kind(&self) -> &'static str {
        match self {
            DbError::Connect { .. } => "connect",
            DbError::Timeout { .. } => "timeout",
            DbError::Query(_) => "query",
            DbError::Conflict(_) => "conflict",
            DbError::Decode { .. } => "decode",
            DbError::TooManyRows => "too_many_rows",
        }
    }
}

/// One value of a result row, independent of the dialect.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// SQL NULL.
    Null,
    /// Integers and booleans.
    Int(i64),
    /// Floating point and decimal numbers, and timestamps and dates as UNIX
    /// seconds (UTC).
    Float(f64),
    /// Text, JSON as its text, uuids in their hyphenated form.
    Text(String),
    /// Binary data.
    Bytes(Vec<u8>),
}

impl Cell {
    /// The value as a number, if it is one (text holding a number counts).
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            Cell::Text(t) => t.trim().parse().ok(),
            Cell::Null | Cell::Bytes(_) => None,
        }
    }

    /// The value rendered as a label value (`NULL` becomes empty).
    pub fn as_label(&self) -> String {
        match self {
            Cell::Null => String::new(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => f.to_string(),
            Cell::Text(t) => t.clone(),
            Cell::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }
}

/// A query result: column names and rows of cells.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    /// Column names, lowercased.
    pub columns: Vec<String>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
}

impl Rows {
    /// Index of a column by (case-insensitive) name.
    pub fn column(&self, name: &str) -> Option<usize> {
        self.columns
            .iter()
            .position(|c| c.eq_ignore_ascii_case(name))
    }
}

#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// A pooled, read-only handle to one Airflow metadata database.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
    url: Arc<str>,
    /// What a failed connection explains: for SQLite, the file tried.
    connect_hint: Arc<str>,
    statement_timeout: Duration,
    lock_timeout: Duration,
    stats: Arc<QueryStats>,
}

/// Time spent waiting for the database (query sent to last row received),
/// summed over every query of a handle: the load windsock puts on the DB,
/// apart from its own processing.
#[derive(Debug, Default)]
pub struct QueryStats {
    nanos: std::sync::atomic::AtomicU64,
    queries: std::sync::atomic::AtomicU64,
}

impl QueryStats {
    /// (total seconds, queries) so far.
    pub fn get(&self) -> (f64, u64) {
        (
            self.nanos.load(Ordering::Relaxed) as f64 / 1e9,
            self.queries.load(Ordering::Relaxed),
        )
    }
}

impl fmt::Debug for Db {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Db").field("url", &self.url).finish()
    }
}

/// Client-side slack on top of the server-side deadline before windsock
/// gives up on a statement itself and drops the connection.
const CLIENT_SLACK: Duration = Duration::from_secs(2);

/// Runs `sqls` one after another on `conn` (inside the transaction the
/// caller began), each built by `$query` from its text `$sql`, then ends
/// the transaction with ROLLBACK, also after a failed statement (so a
/// pooler keeps its server connection; the statement's error wins). One
/// body for the three dialects, whose query types differ.
macro_rules! statements_then_rollback {
    ($conn:ident, $sqls:ident, $binds:ident, $decode:ident, |$sql:ident| $query:expr) => {{
        let mut out = Vec::with_capacity($sqls.len());
        for $sql in &$sqls {
            let q = $query;
            match collect(bind_all(q, $binds).fetch(&mut *$conn), $decode).await {
                Ok(rows) => out.push(rows),
                Err(e) => {
                    let _ = $conn.execute("ROLLBACK").await;
                    return Err(e);
                }
            }
        }
        $conn.execute("ROLLBACK").await?;
        Ok(out)
    }};
}

impl Db {
    /// Creates the pool. No connection is made until the first query, so a
    /// DB that is down does not fail this call.
    pub fn new(url: &DbUrl, settings: &DatabaseSettings) -> Result<Db, DbError> {
        let shown: Arc<str> = url.to_string().into();
        let connect_err = |e: sqlx::Error| DbError::Connect {
            url: shown.to_string(),
            message: url::redact(&e.to_string()),
        };
        let pool = match url.dialect() {
            Dialect::Postgres => Pool::Postgres(
                session::pool_options(settings)
                    .connect_lazy_with(session::postgres(url, settings).map_err(connect_err)?),
            ),
            Dialect::MySql => {
                let lock = settings.lock_timeout;
                let stmt = settings.statement_timeout;
                Pool::MySql(
                    session::pool_options(settings)
                        .after_connect(move |conn, _| {
                            Box::pin(
                                async move { session::mysql_after_connect(conn, stmt, lock).await },
                            )
                        })
                        .connect_lazy_with(session::mysql(url).map_err(connect_err)?),
                )
            }
            Dialect::Sqlite => Pool::Sqlite(
                session::pool_options(settings)
                    .connect_lazy_with(session::sqlite(url, settings).map_err(connect_err)?),
            ),
        };
        Ok(Db {
            pool,
            connect_hint: url
                .sqlite_path()
                .map(sqlite_hint)
                .unwrap_or_default()
                .into(),
            url: shown,
            statement_timeout: settings.statement_timeout,
            lock_timeout: settings.lock_timeout,
            stats: Arc::new(QueryStats::default()),
        })
    }

    /// The dialect of this database.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// The URL with its password replaced by `***`.
    pub fn redacted_url(&self) -> &str {
        &self.url
    }

    /// Closes every pooled connection.
    /// Cancels this process' statements still running on the server
    /// (PostgreSQL `pg_cancel_backend`, MySQL `KILL QUERY`), found by the
    /// comment every statement starts with ([`QUERY_TAG`]). Called on
    /// shutdown, so no query of a stopped windsock keeps running until its
    /// statement timeout. Returns how many were cancelled.
    pub async fn cancel_in_flight(&self, timeout: Duration) -> usize {
        let pattern = format!("{}%", QUERY_TAG.trim_end());
        let found = match self.dialect() {
            Dialect::Postgres => {
                let sql = format!(
                    "SELECT pid, pg_cancel_backend(pid) FROM pg_stat_activity \
                     WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE '{pattern}'"
                );
                self.untagged(&sql, timeout).await.map(|r| r.rows.len())
            }
            Dialect::MySql => {
                let sql = format!(
                    "SELECT id FROM information_schema.processlist \
                     WHERE id <> CONNECTION_ID() AND info LIKE '{pattern}'"
                );
                match self.untagged(&sql, timeout).await {
                    Ok(rows) => {
                        let mut n = 0;
                        for row in &rows.rows {
                            let id = row[0].as_label();
                            if self
                                .untagged(&format!("KILL QUERY {id}"), timeout)
                                .await
                                .is_ok()
                            {
                                n += 1;
                            }
                        }
                        Ok(n)
                    }
                    Err(e) => Err(e),
                }
            }
            // In-process: dropping the statement's future ends it.
            Dialect::Sqlite => Ok(0),
        };
        found.unwrap_or(0)
    }

    /// A statement without [`QUERY_TAG`] (so [`Db::cancel_in_flight`] does
    /// not find itself).
    async fn untagged(&self, sql: &str, timeout: Duration) -> Result<Rows, DbError> {
        let opts = Run {
            close: false,
            tagged: false,
            snapshot: false,
        };
        let mut out = self.query_inner(&[sql], &[], timeout, opts).await?;
        Ok(out.remove(0))
    }

    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }

    /// Runs one read-only statement with a deadline of `timeout` (capped at
    /// the configured `statement_timeout`).
    pub async fn query(&self, sql: &str, timeout: Duration) -> Result<Rows, DbError> {
        self.query_bind(sql, &[], timeout).await
    }

    /// [`Db::query`] on a connection that is closed afterwards, so nothing
    /// the statement left in its session (a session-level lock, a
    /// variable) outlives it. For user-defined SQL (`[[queries]]`).
    pub async fn query_isolated(&self, sql: &str, timeout: Duration) -> Result<Rows, DbError> {
        self.run_counted(sql, &[], timeout, true).await
    }

    /// Time and count of the queries made through this handle.
    pub fn stats(&self) -> &QueryStats {
        &self.stats
    }

    /// Like [`Db::query`], with text parameters bound to the placeholders
    /// of [`Db::placeholder`] (never spliced into the SQL).
    pub async fn query_bind(
        &self,
        sql: &str,
        binds: &[String],
        timeout: Duration,
    ) -> Result<Rows, DbError> {
        self.run_counted(sql, binds, timeout, false).await
    }

    /// Runs read-only statements one after another in one transaction
    /// that sees one snapshot of the database (PostgreSQL `REPEATABLE
    /// READ`, MySQL `WITH CONSISTENT SNAPSHOT`, SQLite's read transaction),
    /// with one deadline of `timeout` for all of them (the server bounds each
    /// statement by it too): numbers computed from several statements then
    /// agree with each other, and the transaction costs its round trips
    /// once.
    pub async fn query_snapshot(
        &self,
        sqls: &[&str],
        timeout: Duration,
    ) -> Result<Vec<Rows>, DbError> {
        let opts = Run {
            close: false,
            tagged: true,
            snapshot: true,
        };
        self.counted(sqls, &[], timeout, opts).await
    }

    async fn run_counted(
        &self,
        sql: &str,
        binds: &[String],
        timeout: Duration,
        close: bool,
    ) -> Result<Rows, DbError> {
        let opts = Run {
            close,
            tagged: true,
            snapshot: false,
        };
        Ok(self.counted(&[sql], binds, timeout, opts).await?.remove(0))
    }

    async fn counted(
        &self,
        sqls: &[&str],
        binds: &[String],
        timeout: Duration,
        opts: Run,
    ) -> Result<Vec<Rows>, DbError> {
        let started = Instant::now();
        let res = self.query_inner(sqls, binds, timeout, opts).await;
        self.stats
            .nanos
            .fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        self.stats
            .queries
            .fetch_add(sqls.len() as u64, Ordering::Relaxed);
        res
    }

    async fn query_inner(
        &self,
        sqls: &[&str],
        binds: &[String],
        timeout: Duration,
        opts: Run,
    ) -> Result<Vec<Rows>, DbError> {
        let tag = opts.tagged && self.dialect() != Dialect::Sqlite;
        let sqls: Vec<String> = sqls
            .iter()
            .map(|s| {
                if tag {
                    format!("{}{s}", *QUERY_TAG)
                } else {
                    (*s).to_owned()
                }
            })
            .collect();
        let close = opts.close;
        let deadline = timeout.min(self.statement_timeout);
        match &self.pool {
            Pool::Postgres(p) => {
                let mut conn = match p.acquire().await {
                    Ok(c) => c,
                    Err(e) => return Err(self.acquire_error(e).await),
                };
                let fut = async {
                    // SET LOCAL lasts until the rollback below (so it holds
                    // behind PgBouncer too); the read-only transaction
                    // cannot be switched to read-write inside.
                    let begin = format!(
                        "BEGIN {}READ ONLY; {}",
                        if opts.snapshot {
                            "ISOLATION LEVEL REPEATABLE READ "
                        } else {
                            ""
                        },
                        session::postgres_transaction_settings(deadline, self.lock_timeout)
                    );
                    sqlx::raw_sql(sqlx::AssertSqlSafe(begin))
                        .execute(&mut *conn)
                        .await?;
                    // Unnamed: a statement prepared by name would outlive the
                    // transaction on a pooled server connection.
                    statements_then_rollback!(conn, sqls, binds, decode_pg, |sql| {
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str())).persistent(false)
                    })
                };
                let res = tokio::time::timeout(deadline + CLIENT_SLACK, fut).await;
                finish(res, deadline, conn, close).await
            }
            Pool::MySql(p) => {
                let mut conn = match p.acquire().await {
                    Ok(c) => c,
                    Err(e) => return Err(self.acquire_error(e).await),
                };
                let fut = async {
                    if opts.snapshot {
                        // A consistent snapshot needs REPEATABLE READ, which
                        // a server may not default to; this sets the next
                        // transaction only.
                        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                            .await?;
                        conn.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
                            .await?;
                    } else {
                        conn.execute("START TRANSACTION READ ONLY").await?;
                    }
                    statements_then_rollback!(conn, sqls, binds, decode_mysql, |sql| {
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    })
                };
                let res = tokio::time::timeout(deadline + CLIENT_SLACK, fut).await;
                finish(res, deadline, conn, close).await
            }
            Pool::Sqlite(p) => {
                let mut conn = match p.acquire().await {
                    Ok(c) => c,
                    Err(e) => return Err(self.acquire_error(e).await),
                };
                let interrupted = Arc::new(AtomicBool::new(false));
                {
                    let started = Instant::now();
                    let flag = interrupted.clone();
                    let mut handle = conn.lock_handle().await.map_err(DbError::from_sqlx)?;
                    // Called every ~10k VM instructions: returning false
                    // interrupts the statement (SQLITE_INTERRUPT).
                    handle.set_progress_handler(10_000, move || {
                        let over = started.elapsed() > deadline;
                        if over {
                            flag.store(true, Ordering::Relaxed);
                        }
                        !over
                    });
                }
                let fut = async {
                    // A read transaction keeps the snapshot of its first read.
                    conn.execute("BEGIN").await?;
                    statements_then_rollback!(conn, sqls, binds, decode_sqlite, |sql| {
                        sqlx::query(sqlx::AssertSqlSafe(sql.as_str()))
                    })
                };
                let res = tokio::time::timeout(deadline + CLIENT_SLACK, fut).await;
                if let Ok(mut handle) = conn.lock_handle().await {
                    handle.remove_progress_handler();
                }
                let res = match res {
                    Ok(Err(_)) if interrupted.load(Ordering::Relaxed) => Ok(Err(QueryFail::Sqlx(
                        sqlx::Error::Protocol("interrupted by statement_timeout".into()),
                        true,
                    ))),
                    other => other,
                };
                finish(res, deadline, conn, close).await
            }
        }
    }

    /// The placeholder of the `n`-th (1-based) bound parameter.
    pub fn placeholder(&self, n: usize) -> String {
        match self.pool {
            Pool::Postgres(_) => format!("${n}"),
            Pool::MySql(_) | Pool::Sqlite(_) => "?".to_owned(),
        }
    }

    /// Why no pooled connection came. sqlx reports a database that cannot
    /// be reached as "pool timed out": then one direct attempt finds the
    /// cause (connection refused, unknown host, authentication failed).
    async fn acquire_error(&self, e: sqlx::Error) -> DbError {
        use sqlx::ConnectOptions as _;
        if !matches!(e, sqlx::Error::PoolTimedOut) {
            return self.connect_error(e);
        }
        let attempt = async {
            match &self.pool {
                Pool::Postgres(p) => p.connect_options().connect().await.map(drop),
                Pool::MySql(p) => p.connect_options().connect().await.map(drop),
                Pool::Sqlite(p) => p.connect_options().connect().await.map(drop),
            }
        };
        let cause = match tokio::time::timeout(Duration::from_secs(5), attempt).await {
            Ok(Err(cause)) => cause.to_string(),
            Ok(Ok(())) => "the pool's connections are all busy".to_owned(),
            Err(_) => "no answer from the server within 5 s".to_owned(),
        };
        DbError::Connect {
            url: self.url.to_string(),
            message: format!(
                "{} (no connection within [database] acquire_timeout){}",
                url::redact(&cause),
                self.connect_hint
            ),
        }
    }

    fn connect_error(&self, e: sqlx::Error) -> DbError {
        DbError::Connect {
            url: self.url.to_string(),
            message: format!("{}{}", url::redact(&e.to_string()), self.connect_hint),
        }
    }

    /// Checks that a connection can be made and answers `SELECT 1`.
    pub async fn ping(&self, timeout: Duration) -> Result<(), DbError> {
        self.query("SELECT 1", timeout).await.map(|_| ())
    }
}

/// Names the file a SQLite URL resolves to, and whether it exists: a
/// relative `sqlite:///airflow.db` depends on the working directory.
fn sqlite_hint(path: &std::path::Path) -> String {
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let exists = if abs.exists() {
        ""
    } else {
        ", which does not exist"
    };
    let relative = if path.is_relative() {
        " (the URL's path is relative to the working directory)"
    } else {
        ""
    };
    format!(" (SQLite file {}{exists}{relative})", abs.display())
}

fn bind_all<'q, DB: sqlx::Database>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>,
    binds: &'q [String],
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments>
where
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    for b in binds {
        q = q.bind(b.as_str());
    }
    q
}

/// The comment every statement of this process starts with (a random id
/// per process), so shutdown can find and cancel its own queries on the
/// server, and a DBA can tell windsock's sessions in `pg_stat_activity` /
/// `SHOW PROCESSLIST`.
pub static QUERY_TAG: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("/* windsock {:016x} */ ", rand::random::<u64>()));

/// Failure inside the query future; the bool marks a timeout detected
/// outside the server's error code (SQLite interrupt).
pub(super) enum QueryFail {
    Sqlx(sqlx::Error, bool),
    Db(DbError),
}

impl QueryFail {
    pub(super) fn into_db_error(self) -> DbError {
        match self {
            QueryFail::Db(e) => e,
            QueryFail::Sqlx(e, _) => DbError::from_sqlx(e),
        }
    }
}

impl From<sqlx::Error> for QueryFail {
    fn from(e: sqlx::Error) -> Self {
        QueryFail::Sqlx(e, false)
    }
}

impl From<DbError> for QueryFail {
    fn from(e: DbError) -> Self {
        QueryFail::Db(e)
    }
}

pub(super) async fn collect<R, S>(
    mut stream: S,
    decode: fn(&R) -> Result<Vec<Cell>, DbError>,
) -> Result<Rows, QueryFail>
where
    R: Row,
    S: futures_util::Stream<Item = Result<R, sqlx::Error>> + Unpin,
{
    let mut out = Rows::default();
    while let Some(row) = stream.try_next().await? {
        if out.columns.is_empty() {
            out.columns = row
                .columns()
                .iter()
                .map(|c| c.name().to_ascii_lowercase())
                .collect();
        }
        if out.rows.len() == MAX_ROWS {
            return Err(DbError::TooManyRows.into());
        }
        out.rows.push(decode(&row)?);
    }
    Ok(out)
}

/// How [`Db::query_inner`] runs its statements.
#[derive(Debug, Clone, Copy)]
struct Run {
    /// Close the connection afterwards (user-defined SQL).
    close: bool,
    /// Prefix [`QUERY_TAG`] (so shutdown can cancel the statements).
    tagged: bool,
    /// One snapshot for all statements.
    snapshot: bool,
}

async fn finish<DB: sqlx::Database, T>(
    res: Result<Result<T, QueryFail>, tokio::time::error::Elapsed>,
    deadline: Duration,
    mut conn: sqlx::pool::PoolConnection<DB>,
    close: bool,
) -> Result<T, DbError> {
    if close || !matches!(res, Ok(Ok(_))) {
        // After an error the transaction may still be open, and after a
        // client-side timeout the connection is mid-statement: never hand
        // such a connection back to the pool. It is closed when dropped.
        conn.close_on_drop();
    }
    drop(conn);
    match res {
        Ok(Ok(rows)) => Ok(rows),
        Ok(Err(fail)) => Err(match fail {
            QueryFail::Db(e) => e,
            QueryFail::Sqlx(e, true) => DbError::Timeout {
                after: deadline,
                message: e.to_string(),
            },
            QueryFail::Sqlx(e, false) => DbError::from_sqlx_with_deadline(e, deadline),
        }),
        Err(_) => Err(DbError::Timeout {
            after: deadline,
            message: "no answer from the database in time; connection dropped".to_owned(),
        }),
    }
}

impl DbError {
    fn from_sqlx(e: sqlx::Error) -> DbError {
        DbError::from_sqlx_with_deadline(e, Duration::ZERO)
    }

    fn from_sqlx_with_deadline(e: sqlx::Error, deadline: Duration) -> DbError {
        let message = url::redact(&e.to_string());
        match &e {
            sqlx::Error::Database(db) => {
                let code = db.code().map(|c| c.into_owned()).unwrap_or_default();
                // PG 57014 query_canceled, 55P03 lock_not_available;
                // MySQL 3024 max_execution_time, 1205 lock wait timeout;
                // MariaDB 1969 max_statement_time; SQLite 5 busy, 9 interrupt.
                let timeout = matches!(code.as_str(), "57014" | "55P03" | "5" | "9" | "517")
                    || matches!(
                        db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                            .map(|m| m.number()),
                        Some(3024 | 1205 | 1969)
                    );
                // PG 40P01 deadlock_detected, 40001 serialization_failure;
                // MySQL 1213 ER_LOCK_DEADLOCK.
                let conflict = matches!(code.as_str(), "40P01" | "40001")
                    || matches!(
                        db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>()
                            .map(|m| m.number()),
                        Some(1213)
                    );
                if timeout {
                    DbError::Timeout {
                        after: deadline,
                        message,
                    }
                } else if conflict {
                    DbError::Conflict(message)
                } else {
                    DbError::Query(message)
                }
            }
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Configuration(_) => DbError::Connect {
                url: String::new(),
                message,
            },
            _ => DbError::Query(message),
        }
    }
}

fn decode_err(column: &str, message: impl Into<String>) -> DbError {
    DbError::Decode {
        column: column.to_owned(),
        message: message.into(),
    }
}

pub(super) fn decode_pg(row: &sqlx::postgres::PgRow) -> Result<Vec<Cell>, DbError> {
    use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let mut cells = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| decode_err(col.name(), e.to_string()))?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        let ty = col.type_info().name().to_owned();
        let get = |e: sqlx::Error| decode_err(col.name(), e.to_string());
        cells.push(match ty.as_str() {
            "BOOL" => Cell::Int(i64::from(row.try_get::<bool, _>(i).map_err(get)?)),
            "INT2" => Cell::Int(row.try_get::<i16, _>(i).map_err(get)?.into()),
            "INT4" => Cell::Int(row.try_get::<i32, _>(i).map_err(get)?.into()),
            "INT8" => Cell::Int(row.try_get::<i64, _>(i).map_err(get)?),
            "OID" => Cell::Int(
                row.try_get::<sqlx::postgres::types::Oid, _>(i)
                    .map_err(get)?
                    .0
                    .into(),
            ),
            "FLOAT4" => Cell::Float(row.try_get::<f32, _>(i).map_err(get)?.into()),
            "FLOAT8" => Cell::Float(row.try_get::<f64, _>(i).map_err(get)?),
            "NUMERIC" => Cell::Float(
                row.try_get::<rust_decimal::Decimal, _>(i)
                    .map_err(get)?
                    .to_f64()
                    .unwrap_or(f64::NAN),
            ),
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "UNKNOWN" => {
                Cell::Text(row.try_get::<String, _>(i).map_err(get)?)
            }
            "BYTEA" => Cell::Bytes(row.try_get::<Vec<u8>, _>(i).map_err(get)?),
            // Airflow 3's ids (serialized_dag.id, task_instance.id, ...).
            "UUID" => Cell::Text(
                row.try_get::<sqlx::types::Uuid, _>(i)
                    .map_err(get)?
                    .hyphenated()
                    .to_string(),
            ),
            // serialized_dag.data is `json`, dag_run.conf (3.x) `jsonb`: the
            // text as stored (json), or after jsonb's format-version byte.
            "JSON" | "JSONB" => Cell::Text(json_text(
                &row.try_get_unchecked::<Vec<u8>, _>(i).map_err(get)?,
                ty == "JSONB",
            )),
            "TIMESTAMPTZ" => Cell::Float(unix(
                row.try_get::<DateTime<Utc>, _>(i).map_err(get)?.naive_utc(),
            )),
            // Airflow writes UTC into its few naive columns (2.x
            // task_instance.trigger_timeout).
            "TIMESTAMP" => Cell::Float(unix(row.try_get::<NaiveDateTime, _>(i).map_err(get)?)),
            "DATE" => Cell::Float(unix(
                row.try_get::<NaiveDate, _>(i)
                    .map_err(get)?
                    .and_time(Default::default()),
            )),
            other => {
                return Err(decode_err(
                    col.name(),
                    format!("unsupported type {other}; cast it to a number or text"),
                ));
            }
        });
    }
    Ok(cells)
}

/// A timestamp read as UTC, as UNIX seconds.
fn unix(t: sqlx::types::chrono::NaiveDateTime) -> f64 {
    let utc = t.and_utc();
    utc.timestamp() as f64 + f64::from(utc.timestamp_subsec_micros()) / 1e6
}

/// The text of a PostgreSQL `json` (binary format: the text) or `jsonb`
/// (binary format: version byte 1, then the text) value.
fn json_text(bytes: &[u8], jsonb: bool) -> String {
    let text = match bytes.split_first() {
        Some((1, rest)) if jsonb => rest,
        _ => bytes,
    };
    String::from_utf8_lossy(text).into_owned()
}

pub(super) fn decode_mysql(row: &sqlx::mysql::MySqlRow) -> Result<Vec<Cell>, DbError> {
    use sqlx::types::chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
    let mut cells = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| decode_err(col.name(), e.to_string()))?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        let ty = col.type_info().name().to_owned();
        let get = |e: sqlx::Error| decode_err(col.name(), e.to_string());
        cells.push(match ty.as_str() {
            "BOOLEAN" | "TINYINT" | "SMALLINT" | "INT" | "MEDIUMINT" | "BIGINT" | "YEAR" => {
                Cell::Int(row.try_get_unchecked::<i64, _>(i).map_err(get)?)
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "INT UNSIGNED" | "MEDIUMINT UNSIGNED"
            | "BIGINT UNSIGNED" => {
                let v = row.try_get_unchecked::<u64, _>(i).map_err(get)?;
                Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
            }
            "FLOAT" => Cell::Float(row.try_get::<f32, _>(i).map_err(get)?.into()),
            "DOUBLE" => Cell::Float(row.try_get::<f64, _>(i).map_err(get)?),
            "DECIMAL" => Cell::Float(
                row.try_get::<rust_decimal::Decimal, _>(i)
                    .map_err(get)?
                    .to_f64()
                    .unwrap_or(f64::NAN),
            ),
            "VARCHAR" | "CHAR" | "TEXT" | "TINYTEXT" | "MEDIUMTEXT" | "LONGTEXT" | "ENUM"
            | "JSON" => Cell::Text(row.try_get_unchecked::<String, _>(i).map_err(get)?),
            "BLOB" | "TINYBLOB" | "MEDIUMBLOB" | "LONGBLOB" | "VARBINARY" | "BINARY" => {
                Cell::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(get)?)
            }
            // TIMESTAMP(6) is read in the session's +00:00 zone; Airflow
            // writes UTC into its DATETIME columns too.
            "TIMESTAMP" => Cell::Float(unix(
                row.try_get::<DateTime<Utc>, _>(i).map_err(get)?.naive_utc(),
            )),
            "DATETIME" => Cell::Float(unix(row.try_get::<NaiveDateTime, _>(i).map_err(get)?)),
            "DATE" => Cell::Float(unix(
                row.try_get::<NaiveDate, _>(i)
                    .map_err(get)?
                    .and_time(Default::default()),
            )),
            other => {
                return Err(decode_err(
                    col.name(),
                    format!("unsupported type {other}; cast it to a number or text"),
                ));
            }
        });
    }
    Ok(cells)
}

pub(super) fn decode_sqlite(row: &sqlx::sqlite::SqliteRow) -> Result<Vec<Cell>, DbError> {
    let mut cells = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|e| decode_err(col.name(), e.to_string()))?;
        if raw.is_null() {
            cells.push(Cell::Null);
            continue;
        }
        // SQLite is dynamically typed: the storage class of this value counts,
        // not the declared type of the column.
        let ty = raw.type_info().name().to_owned();
        let get = |e: sqlx::Error| decode_err(col.name(), e.to_string());
        cells.push(match ty.as_str() {
            "INTEGER" | "BOOLEAN" => Cell::Int(row.try_get_unchecked::<i64, _>(i).map_err(get)?),
            "REAL" | "NUMERIC" => Cell::Float(row.try_get_unchecked::<f64, _>(i).map_err(get)?),
            "BLOB" => Cell::Bytes(row.try_get_unchecked::<Vec<u8>, _>(i).map_err(get)?),
            _ => Cell::Text(row.try_get_unchecked::<String, _>(i).map_err(get)?),
        });
    }
    Ok(cells)
}

/// Opens a single writable connection for windsock's own writes (the demo
/// database, test fixtures). Diagnostics never use this.
pub async fn open_writable_sqlite(
    path: &std::path::Path,
) -> Result<sqlx::SqliteConnection, DbError> {
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .foreign_keys(false);
    sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(DbError::from_sqlx)
}
