//! The one writable path into the Airflow database: used only by the admin
//! operations (user management and interception), never by diagnostics.
//!
//! A [`WriteDb`] is a separate, tiny pool (two connections) whose sessions
//! keep the statement and lock timeouts of [`super::session`] but are not
//! read-only. Work happens in a [`WriteTx`]: one transaction, committed
//! explicitly, rolled back when dropped. SQL is written with `?`
//! placeholders; PostgreSQL's `$n` are produced here.

use std::time::Duration;

use sqlx::{Executor, Transaction};

use super::url::DbUrl;
use super::{Cell, DbError, Dialect, Rows, collect, decode_mysql, decode_pg, decode_sqlite};
use crate::config::DatabaseSettings;

/// A value bound to a placeholder.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL (bound as text).
    Null,
    /// Text.
    Text(String),
    /// Integer.
    Int(i64),
    /// Boolean (PostgreSQL `boolean`, MySQL `tinyint(1)`, SQLite integer).
    Bool(bool),
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Text(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Text(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

#[derive(Clone)]
enum Pool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool),
}

/// A small writable pool for the admin operations.
#[derive(Clone)]
pub struct WriteDb {
    pool: Pool,
    timeout: Duration,
    lock_timeout: Duration,
}

impl std::fmt::Debug for WriteDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteDb")
            .field("dialect", &self.dialect())
            .finish()
    }
}

/// One open transaction; rolled back on drop unless committed.
pub enum WriteTx {
    /// PostgreSQL.
    Postgres(Transaction<'static, sqlx::Postgres>),
    /// MySQL/MariaDB.
    MySql(Transaction<'static, sqlx::MySql>),
    /// SQLite.
    Sqlite(Transaction<'static, sqlx::Sqlite>),
}

impl WriteDb {
    /// Builds the pool; no connection is made until the first transaction.
    pub fn new(url: &DbUrl, settings: &DatabaseSettings) -> Result<WriteDb, DbError> {
        let connect_err = |e: sqlx::Error| DbError::Connect {
            url: url.to_string(),
            message: super::url::redact(&e.to_string()),
        };
        let mut s = settings.clone();
        s.max_connections = 2;
        let pool = match url.dialect() {
            Dialect::Postgres => {
                let opts = super::session::postgres(url, &s)
                    .map_err(connect_err)?
                    .application_name("windsock-admin");
                Pool::Postgres(super::session::pool_options(&s).connect_lazy_with(opts))
            }
            Dialect::MySql => {
                let (stmt, lock) = (s.statement_timeout, s.lock_timeout);
                Pool::MySql(
                    super::session::pool_options(&s)
                        .after_connect(move |conn, _| {
                            Box::pin(async move {
                                super::session::mysql_session_limits(conn, stmt, lock).await
                            })
                        })
                        .connect_lazy_with(super::session::mysql(url).map_err(connect_err)?),
                )
            }
            Dialect::Sqlite => {
                let path = url.sqlite_path().ok_or_else(|| DbError::Connect {
                    url: url.to_string(),
                    message: "not a SQLite URL".to_owned(),
                })?;
                let opts = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(path)
                    .create_if_missing(false)
                    .busy_timeout(s.lock_timeout)
                    .foreign_keys(false);
                Pool::Sqlite(super::session::pool_options(&s).connect_lazy_with(opts))
            }
        };
        Ok(WriteDb {
            pool,
            timeout: settings.statement_timeout,
            lock_timeout: settings.lock_timeout,
        })
    }

    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self.pool {
            Pool::Postgres(_) => Dialect::Postgres,
            Pool::MySql(_) => Dialect::MySql,
            Pool::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Begins a transaction. SQLite takes its write lock at once
    /// (`BEGIN IMMEDIATE`), so two writers never both read then write.
    pub async fn begin(&self) -> Result<WriteTx, DbError> {
        let fut = async {
            Ok::<_, sqlx::Error>(match &self.pool {
                Pool::Postgres(p) => {
                    // Explicitly read-write (a role may default to read-only),
                    // with windsock's limits for this transaction only.
                    let begin = format!(
                        "BEGIN READ WRITE; {}",
                        super::session::postgres_transaction_settings(
                            self.timeout,
                            self.lock_timeout
                        )
                    );
                    WriteTx::Postgres(p.begin_with(sqlx::AssertSqlSafe(begin)).await?)
                }
                Pool::MySql(p) => WriteTx::MySql(p.begin().await?),
                Pool::Sqlite(p) => WriteTx::Sqlite(p.begin_with("BEGIN IMMEDIATE").await?),
            })
        };
        match tokio::time::timeout(self.timeout, fut).await {
            Ok(res) => res.map_err(DbError::from_sqlx),
            Err(_) => Err(DbError::Timeout {
                after: self.timeout,
                message: "no transaction could be started in time".to_owned(),
            }),
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Postgres(p) => p.close().await,
            Pool::MySql(p) => p.close().await,
            Pool::Sqlite(p) => p.close().await,
        }
    }
}

/// `?` placeholders as PostgreSQL's `$1, $2, ...` (windsock's own SQL never
/// has a `?` inside a literal).
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

macro_rules! bind_values {
    ($q:expr, $values:expr) => {{
        let mut q = $q;
        for v in $values {
            q = match v {
                Value::Null => q.bind(None::<String>),
                Value::Text(s) => q.bind(s.clone()),
                Value::Int(i) => q.bind(*i),
                Value::Bool(b) => q.bind(*b),
            };
        }
        q
    }};
}

impl WriteTx {
    /// The dialect.
    pub fn dialect(&self) -> Dialect {
        match self {
            WriteTx::Postgres(_) => Dialect::Postgres,
            WriteTx::MySql(_) => Dialect::MySql,
            WriteTx::Sqlite(_) => Dialect::Sqlite,
        }
    }

    /// Runs a statement returning rows.
    pub async fn fetch(&mut self, sql: &str, values: &[Value]) -> Result<Rows, DbError> {
        let out = match self {
            WriteTx::Postgres(tx) => {
                let q = bind_values!(
                    sqlx::query(sqlx::AssertSqlSafe(numbered(sql))).persistent(false),
                    values
                );
                collect(q.fetch(&mut **tx), decode_pg).await
            }
            WriteTx::MySql(tx) => {
                let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                collect(q.fetch(&mut **tx), decode_mysql).await
            }
            WriteTx::Sqlite(tx) => {
                let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                collect(q.fetch(&mut **tx), decode_sqlite).await
            }
        };
        out.map_err(super::QueryFail::into_db_error)
    }

    /// Runs a statement; returns the number of rows it changed.
    pub async fn execute(&mut self, sql: &str, values: &[Value]) -> Result<u64, DbError> {
        let res = match self {
            WriteTx::Postgres(tx) => {
                let q = bind_values!(
                    sqlx::query(sqlx::AssertSqlSafe(numbered(sql))).persistent(false),
                    values
                );
                tx.execute(q).await.map(|r| r.rows_affected())
            }
            WriteTx::MySql(tx) => {
                let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                tx.execute(q).await.map(|r| r.rows_affected())
            }
            WriteTx::Sqlite(tx) => {
                let q = bind_values!(sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())), values);
                tx.execute(q).await.map(|r| r.rows_affected())
            }
        };
        res.map_err(DbError::from_sqlx)
    }

    /// First column of the first row as an integer (`None` without rows).
    pub async fn scalar(&mut self, sql: &str, values: &[Value]) -> Result<Option<i64>, DbError> {
        let rows = self.fetch(sql, values).await?;
        Ok(rows.rows.first().and_then(|r| match r.first() {
            Some(Cell::Int(i)) => Some(*i),
            Some(c) => c.as_f64().map(|f| f as i64),
            None => None,
        }))
    }

    /// Commits.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            WriteTx::Postgres(tx) => tx.commit().await,
            WriteTx::MySql(tx) => tx.commit().await,
            WriteTx::Sqlite(tx) => tx.commit().await,
        }
        .map_err(DbError::from_sqlx)
    }

    /// Rolls back (also what dropping does).
    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            WriteTx::Postgres(tx) => tx.rollback().await,
            WriteTx::MySql(tx) => tx.rollback().await,
            WriteTx::Sqlite(tx) => tx.rollback().await,
        }
        .map_err(DbError::from_sqlx)
    }
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn placeholders_are_numbered_for_postgres() {
        assert_eq!(
            numbered("SELECT 1 FROM t WHERE a = ? AND b IN (?, ?)"),
            "SELECT 1 FROM t WHERE a = $1 AND b IN ($2, $3)"
        );
    }
}
