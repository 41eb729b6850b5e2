//! Advisory locks that make one windsock replica the acting one (new-user
//! interception, scheduled exports). Each is held by a dedicated
//! connection, so it goes away with the replica or its connection. SQLite
//! is single-node: the lock is always granted.
//!
//! - PostgreSQL: `pg_try_advisory_xact_lock` on a key derived from the
//!   lock's name, inside a transaction that stays open while the replica
//!   leads. A transaction keeps its server connection even behind PgBouncer
//!   in transaction pooling mode (the Helm chart's), where a session-level
//!   `pg_try_advisory_lock` would stay with a server connection that other
//!   clients get next. The transaction reads nothing between checks, so it
//!   holds no snapshot back from vacuum; its idle-in-transaction timeout is
//!   turned off for it alone.
//! - MySQL/MariaDB: `GET_LOCK(name, 0)` on a dedicated session.

use sqlx::Connection as _;

use super::url::DbUrl;
use super::{DbError, Dialect};
use crate::config::DatabaseSettings;

/// A held lock: the session that owns it.
pub enum Leader {
    /// PostgreSQL connection whose open transaction holds
    /// `pg_try_advisory_xact_lock` on the key.
    Postgres(sqlx::PgConnection, i64),
    /// MySQL session holding `GET_LOCK`.
    MySql(sqlx::MySqlConnection),
    /// SQLite: nothing to hold.
    Single,
}

/// The PostgreSQL key of a lock name (FNV-1a, stable across releases).
pub fn pg_key(name: &str) -> i64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as i64
}

/// MySQL's `GET_LOCK` names are server-wide and at most 64 characters:
/// the database name is added (two Airflow databases on one server are two
/// locks) and a long name is replaced by its hash.
pub fn mysql_name(name: &str, url: &DbUrl) -> String {
    let db = url
        .server_url()
        .map(|u| u.path().trim_start_matches('/').to_owned())
        .unwrap_or_default();
    let full = format!("{name}@{db}");
    if full.len() <= 64 {
        return full;
    }
    format!(
        "windsock:{}",
        crate::digest::sha256_hex(full.as_bytes(), 16)
    )
}

impl Leader {
    /// Takes the lock `name` if no other session holds it.
    pub async fn try_acquire(
        url: &DbUrl,
        database: &DatabaseSettings,
        name: &str,
    ) -> Result<Option<Leader>, DbError> {
        let conn_err = |e: sqlx::Error| DbError::Connect {
            url: url.to_string(),
            message: super::url::redact(&e.to_string()),
        };
        match url.dialect() {
            Dialect::Sqlite => Ok(Some(Leader::Single)),
            Dialect::Postgres => {
                let opts = super::session::postgres(url, database)
                    .map_err(conn_err)?
                    .application_name("windsock-lock");
                let mut c = sqlx::PgConnection::connect_with(&opts)
                    .await
                    .map_err(conn_err)?;
                let begin = format!(
                    "BEGIN; {}; SET LOCAL idle_in_transaction_session_timeout = 0",
                    super::session::postgres_transaction_settings(
                        database.statement_timeout,
                        database.lock_timeout
                    )
                );
                let got = async {
                    sqlx::raw_sql(sqlx::AssertSqlSafe(begin))
                        .execute(&mut c)
                        .await?;
                    sqlx::query_as::<_, (bool,)>("SELECT pg_try_advisory_xact_lock($1)")
                        .persistent(false)
                        .bind(pg_key(name))
                        .fetch_one(&mut c)
                        .await
                }
                .await
                .map_err(conn_err)?;
                if got.0 {
                    Ok(Some(Leader::Postgres(c, pg_key(name))))
                } else {
                    let _ = c.close().await;
                    Ok(None)
                }
            }
            Dialect::MySql => {
                let opts = super::session::mysql(url).map_err(conn_err)?;
                let mut c = sqlx::MySqlConnection::connect_with(&opts)
                    .await
                    .map_err(conn_err)?;
                let got: (Option<i64>,) = sqlx::query_as("SELECT GET_LOCK(?, 0)")
                    .bind(mysql_name(name, url))
                    .fetch_one(&mut c)
                    .await
                    .map_err(conn_err)?;
                if got.0 == Some(1) {
                    Ok(Some(Leader::MySql(c)))
                } else {
                    let _ = c.close().await;
                    Ok(None)
                }
            }
        }
    }

    /// Whether the lock is still held: the session is alive (PostgreSQL:
    /// its transaction still holds the lock).
    pub async fn still_held(&mut self) -> bool {
        match self {
            Leader::Postgres(c, key) => sqlx::query_as::<_, (bool,)>(
                "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' \
                 AND pid = pg_backend_pid() AND granted \
                 AND objsubid = 1 AND ((classid::bigint << 32) | objid::bigint) = $1)",
            )
            .persistent(false)
            .bind(*key)
            .fetch_one(c)
            .await
            .is_ok_and(|r| r.0),
            Leader::MySql(c) => c.ping().await.is_ok(),
            Leader::Single => true,
        }
    }

    /// Releases the lock by closing its session.
    pub async fn release(self) {
        match self {
            Leader::Postgres(c, _) => {
                let _ = c.close().await;
            }
            Leader::MySql(c) => {
                let _ = c.close().await;
            }
            Leader::Single => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn mysql_names_are_per_database_and_short() {
        let a = super::DbUrl::parse("mysql://root@db:3306/airflow_prod").unwrap();
        let b = super::DbUrl::parse("mysql://root@db:3306/airflow_staging").unwrap();
        assert_eq!(
            super::mysql_name("windsock.intercept", &a),
            "windsock.intercept@airflow_prod"
        );
        assert_ne!(
            super::mysql_name("windsock.intercept", &a),
            super::mysql_name("windsock.intercept", &b)
        );
        let long = super::mysql_name(&"windsock.export.".repeat(8), &a);
        assert!(long.len() <= 64 && long.starts_with("windsock:"), "{long}");
    }

    #[test]
    fn keys_differ_per_name() {
        assert_ne!(
            super::pg_key("windsock.intercept"),
            super::pg_key("windsock.export")
        );
        assert_eq!(
            super::pg_key("windsock.intercept"),
            super::pg_key("windsock.intercept")
        );
    }
}
