//! Session defaults applied to every connection windsock opens.
//!
//! Why each one:
//! - **read-only**: diagnostics must never change Airflow's data, whatever
//!   SQL a user puts in a custom query. Each PostgreSQL query runs in its own
//!   `BEGIN READ ONLY` transaction; MySQL/MariaDB sessions are
//!   `SET SESSION TRANSACTION READ ONLY`; SQLite files are opened with
//!   `SQLITE_OPEN_READONLY` and `PRAGMA query_only = ON`.
//! - **statement timeout**: a diagnostic that turns out slow on a big DB is
//!   cancelled by the server instead of burning Airflow's CPU.
//! - **lock timeout**: windsock reads; it must never queue behind (or in
//!   front of) the scheduler's writes for long.
//! - **idle-in-transaction timeout** (PostgreSQL): a connection windsock lost
//!   track of cannot hold a snapshot open and block vacuum.
//! - **application_name** (PostgreSQL): windsock's sessions are easy to find
//!   in `pg_stat_activity`.
//! - **small pool**: see [`crate::config::DatabaseSettings::max_connections`].
//!
//! PostgreSQL and PgBouncer: Airflow's Helm chart and Astronomer put
//! PgBouncer in transaction pooling mode in front of the metadata DB. There a
//! client owns a server connection only for the length of a transaction,
//! and PgBouncer refuses startup parameters other than the few it tracks
//! (`options=-c ...` gets `unsupported startup parameter: options`;
//! `extra_float_digits` too unless ignored). So windsock sends none: every
//! setting above is `SET LOCAL` inside the transaction that needs it
//! ([`postgres_transaction_settings`]), statements are not prepared by name
//! (PgBouncer before 1.21 cannot keep them across server connections), and
//! nothing relies on session state between transactions.

use std::time::Duration;

use sqlx::Executor;
use sqlx::mysql::{MySqlConnectOptions, MySqlConnection};
use sqlx::pool::PoolOptions;
use sqlx::postgres::PgConnectOptions;
use sqlx::sqlite::SqliteConnectOptions;

use super::url::DbUrl;
use crate::config::DatabaseSettings;

/// Pool options shared by every dialect.
pub(crate) fn pool_options<DB: sqlx::Database>(s: &DatabaseSettings) -> PoolOptions<DB> {
    PoolOptions::new()
        .max_connections(s.max_connections)
        .min_connections(0)
        .acquire_timeout(s.acquire_timeout)
        .idle_timeout(s.idle_timeout)
        // Recycle connections now and then so server-side settings changes
        // and failovers are picked up.
        .max_lifetime(Duration::from_secs(1800))
        .test_before_acquire(true)
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// PostgreSQL connect options: no startup options, no named prepared
/// statements (see the module docs: they work directly, through PgBouncer
/// in session mode and in transaction mode alike).
pub(crate) fn postgres(
    url: &DbUrl,
    _s: &DatabaseSettings,
) -> Result<PgConnectOptions, sqlx::Error> {
    let base = url
        .server_url()
        .ok_or_else(|| sqlx::Error::Configuration("not a server URL".into()))?;
    let mut opts: PgConnectOptions = base.as_str().parse()?;
    if let Some(pw) = url.password() {
        opts = opts.password(pw);
    }
    Ok(opts
        .application_name("windsock")
        .extra_float_digits(None)
        .statement_cache_capacity(0))
}

/// The `SET LOCAL` statements that give a PostgreSQL transaction
/// windsock's limits; they end with the transaction, so a pooled server
/// connection goes back to PgBouncer as it came.
pub(crate) fn postgres_transaction_settings(
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> String {
    format!(
        "SET LOCAL statement_timeout = {st}; SET LOCAL lock_timeout = {lt}; \
         SET LOCAL idle_in_transaction_session_timeout = {it}; SET LOCAL TimeZone = 'UTC'",
        st = millis(statement_timeout),
        lt = millis(lock_timeout.min(statement_timeout)),
        it = millis(statement_timeout * 2),
    )
}

/// MySQL/MariaDB connect options (session variables are set after connect).
pub(crate) fn mysql(url: &DbUrl) -> Result<MySqlConnectOptions, sqlx::Error> {
    let base = url
        .server_url()
        .ok_or_else(|| sqlx::Error::Configuration("not a server URL".into()))?;
    let mut opts: MySqlConnectOptions = base.as_str().parse()?;
    if let Some(pw) = url.password() {
        opts = opts.password(pw);
    }
    // Airflow stores UTC in TIMESTAMP columns; read them as UTC.
    Ok(opts.timezone(Some("+00:00".to_owned())))
}

/// Sets the MySQL/MariaDB session defaults on a new connection.
pub(crate) async fn mysql_after_connect(
    conn: &mut MySqlConnection,
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> Result<(), sqlx::Error> {
    conn.execute("SET SESSION TRANSACTION READ ONLY").await?;
    mysql_session_limits(conn, statement_timeout, lock_timeout).await
}

/// Statement and lock timeouts of a MySQL/MariaDB session (read-only or
/// not: the admin pool uses these alone).
pub(crate) async fn mysql_session_limits(
    conn: &mut MySqlConnection,
    statement_timeout: Duration,
    lock_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let version: (String,) = sqlx::query_as("SELECT VERSION()")
        .fetch_one(&mut *conn)
        .await?;
    // Lock waits are whole seconds in MySQL; at least 1.
    let lock_secs = lock_timeout.as_secs().max(1);
    let limit = if version.0.to_ascii_lowercase().contains("mariadb") {
        // MariaDB: seconds, fractional allowed; applies to every statement.
        format!(
            "max_statement_time = {:.3}",
            statement_timeout.as_secs_f64()
        )
    } else {
        // MySQL 8: milliseconds; applies to SELECT, which is all windsock runs.
        format!("max_execution_time = {}", millis(statement_timeout))
    };
    let set = format!(
        "SET SESSION {limit}, SESSION lock_wait_timeout = {lock_secs}, \
         SESSION innodb_lock_wait_timeout = {lock_secs}"
    );
    sqlx::raw_sql(sqlx::AssertSqlSafe(set))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// SQLite connect options: read-only file, `query_only`, busy timeout.
pub(crate) fn sqlite(
    url: &DbUrl,
    s: &DatabaseSettings,
) -> Result<SqliteConnectOptions, sqlx::Error> {
    let path = url
        .sqlite_path()
        .ok_or_else(|| sqlx::Error::Configuration("not a SQLite URL".into()))?;
    Ok(SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .create_if_missing(false)
        .busy_timeout(s.lock_timeout)
        .pragma("query_only", "ON")
        // Airflow's own connections turn foreign keys on; windsock only
        // reads, so the pragma is irrelevant, and leaving it unset avoids a
        // write attempt on a read-only handle.
        .foreign_keys(false))
}
