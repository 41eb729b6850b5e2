//! Health of the metadata database: table and index sizes, sessions and
//! transactions, growth.

use std::time::Duration;

use sqlx::{Connection, Executor};

use crate::harness::{Fx, assert_near, each, family, num, settings, text};
use windsock::db::Dialect;
use windsock::metrics::now_unix;

/// Table sizes mean the same on every dialect: `heap` is the table's data
/// with what is stored out of line (TOAST on PostgreSQL), `index` its
/// indexes. On PostgreSQL the index part is the sum of the table's
/// indexes (before, it held TOAST too) and both add up to the total
/// relation size.
#[tokio::test]
async fn table_sizes() {
    each(&settings(), async |fx: &Fx| {
        let got = fx.run("db_tables").await;
        let at = fx.at();
        let bytes = |t: &str, part: &str| got[&format!("airflow_db_table_bytes{{table={t},part={part}}}")];
        match fx.dialect {
            Dialect::Postgres => {
                let rows = fx
                    .rows("SELECT c.relname, pg_total_relation_size(c.oid), \
                             (SELECT COALESCE(SUM(pg_relation_size(i.indexrelid)), 0) FROM pg_index i WHERE i.indrelid = c.oid) \
                           FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                           WHERE n.nspname = current_schema() AND c.relkind = 'r'")
                    .await;
                for r in &rows.rows {
                    let t = text(&r[0]);
                    assert_eq!(bytes(&t, "index"), num(&r[2]).unwrap(), "{at} {t}");
                    assert_eq!(bytes(&t, "heap") + bytes(&t, "index"), num(&r[1]).unwrap(), "{at} {t}");
                }
            }
            Dialect::MySql => {
                let rows = fx
                    .rows("SELECT table_name, data_length, index_length FROM information_schema.TABLES \
                           WHERE table_schema = DATABASE() AND table_type = 'BASE TABLE'")
                    .await;
                for r in &rows.rows {
                    let t = text(&r[0]);
                    assert_eq!(bytes(&t, "heap"), num(&r[1]).unwrap(), "{at} {t}");
                    assert_eq!(bytes(&t, "index"), num(&r[2]).unwrap(), "{at} {t}");
                }
            }
            Dialect::Sqlite => {
                for t in ["dag_run", "task_instance", "serialized_dag"] {
                    let heap = fx.rows(&format!("SELECT SUM(pgsize) FROM dbstat WHERE name = '{t}'")).await;
                    let index = fx
                        .rows(&format!("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN \
                                        (SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = '{t}')"))
                        .await;
                    assert_eq!(bytes(t, "heap"), num(&heap.rows[0][0]).unwrap(), "{at} {t}");
                    assert_eq!(bytes(t, "index"), num(&index.rows[0][0]).unwrap(), "{at} {t}");
                }
            }
        }
    })
    .await;
}

/// Every index's size on PostgreSQL, from pg_class (the others skip).
#[tokio::test]
async fn index_sizes() {
    each(&settings(), async |fx: &Fx| {
        if fx.dialect != Dialect::Postgres {
            return;
        }
        let rows = fx
            .rows("SELECT t.relname, i.relname, pg_relation_size(i.oid) FROM pg_index x \
                   JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid \
                   JOIN pg_namespace n ON n.oid = t.relnamespace WHERE n.nspname = current_schema()")
            .await;
        let got = fx.run("db_indexes").await;
        assert_eq!(family(&got, "airflow_db_index_bytes").len(), rows.rows.len(), "{}", fx.at());
        for r in &rows.rows {
            let k = format!("airflow_db_index_bytes{{table={},index={}}}", text(&r[0]), text(&r[1]));
            assert_eq!(got[&k], num(&r[2]).unwrap(), "{}", fx.at());
        }
    })
    .await;
}

/// The highest id of each growing table.
#[tokio::test]
async fn growth() {
    each(&settings(), async |fx: &Fx| {
        let got = fx.run("db_growth").await;
        for t in ["dag_run", "log", "job"] {
            let max = fx.rows(&format!("SELECT MAX(id) FROM {t}")).await;
            assert_eq!(
                got[&format!("airflow_db_table_max_id{{table={t}}}")],
                num(&max.rows[0][0]).unwrap(),
                "{} {t}",
                fx.at()
            );
        }
    })
    .await;
}

/// A session idle in an open transaction is counted as such, and the
/// oldest transaction's start is when it began (PostgreSQL, MariaDB).
#[tokio::test]
async fn sessions_and_open_transactions() {
    each(&settings(), async |fx: &Fx| {
        if fx.dialect == Dialect::Sqlite {
            return;
        }
        let (open, _guard) = open_idle_transaction(fx).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let got = fx.run("db_activity").await;
        let at = fx.at();
        assert!(
            got["airflow_db_connections{state=idle_in_transaction}"] >= 1.0,
            "{at}: {got:?}"
        );
        // The transaction began between `open` and two seconds later.
        let oldest = got["airflow_db_oldest_transaction_age_seconds{}"];
        assert!(
            (oldest - open).abs() < 2.0,
            "{at}: oldest {oldest}, opened {open}"
        );
        assert!(
            now_unix() - oldest >= 1.5,
            "{at}: age {}",
            now_unix() - oldest
        );
        assert_near(&got, "airflow_db_lock_waiters{}", 0.0, 0.0, &at);
    })
    .await;
}

/// A connection of its own with an open transaction that did some work,
/// idle from then on; dropped (and rolled back) with the guard.
pub(crate) async fn open_idle_transaction(fx: &Fx) -> (f64, Box<dyn std::any::Any + Send>) {
    let at = now_unix();
    match fx.dialect {
        Dialect::Postgres => {
            let mut c = sqlx::PgConnection::connect(&fx.db.url).await.unwrap();
            c.execute("BEGIN; SELECT COUNT(*) FROM dag_run")
                .await
                .unwrap();
            (at, Box::new(c))
        }
        Dialect::MySql => {
            let mut c = sqlx::MySqlConnection::connect(&fx.db.url).await.unwrap();
            c.execute("START TRANSACTION").await.unwrap();
            c.execute("SELECT id FROM dag_run LIMIT 1 FOR UPDATE")
                .await
                .unwrap();
            (at, Box::new(c))
        }
        Dialect::Sqlite => unreachable!(),
    }
}

/// MariaDB keeps `INNODB_TRX.trx_started` in the server's system time
/// zone: on a server whose system zone is UTC+5:30 the oldest
/// transaction's start must still be right (reading it as UTC put it five
/// and a half hours in the future), and a session idle in its transaction
/// is counted as such.
#[tokio::test]
async fn mysql_transaction_age_ignores_the_servers_time_zone() {
    let server = crate::common::PrivateMariaDb::start("Asia/Kolkata");
    let mut admin = sqlx::MySqlConnection::connect(&server.url).await.unwrap();
    admin.execute("CREATE DATABASE af").await.unwrap();
    let url = server.url.replace("/mysql", "/af");
    let mut c = sqlx::MySqlConnection::connect(&url).await.unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(crate::common::schema_sql(
        "3.1.8",
        Dialect::MySql,
    )))
    .execute(&mut c)
    .await
    .unwrap();
    c.execute("INSERT INTO slot_pool (id, pool, slots, include_deferred) VALUES (1, 'p', 1, 0)")
        .await
        .unwrap();
    let zone: (String,) = sqlx::query_as("SELECT @@system_time_zone")
        .fetch_one(&mut c)
        .await
        .unwrap();
    assert_eq!(zone.0, "IST");
    let opened = now_unix();
    c.execute("START TRANSACTION").await.unwrap();
    c.execute("SELECT id FROM slot_pool FOR UPDATE")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let db = crate::common::TestDb::external(Dialect::MySql, &url);
    let fx = Fx::on(db, "3.1.8", &settings(), serde_json::Value::Null).await;
    let got = fx.run("db_activity").await;
    let oldest = got["airflow_db_oldest_transaction_age_seconds{}"];
    assert!(
        (oldest - opened).abs() < 2.0,
        "oldest {oldest}, opened {opened}"
    );
    assert_eq!(
        got["airflow_db_connections{state=idle_in_transaction}"],
        1.0
    );
    fx.close().await;
    drop(c);
}
