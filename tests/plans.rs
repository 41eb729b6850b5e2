//! Query plans: on PostgreSQL, every statement of every built-in diagnostic
//! is `EXPLAIN`ed with `enable_seqscan = off` on each committed schema. With
//! sequential scans priced out, the planner takes any index that can serve
//! the query; what remains on `task_instance`, `dag_run`, `log`, `xcom` or
//! `job` is a diagnostic whose cost would grow with the table instead of
//! with new rows: a `Seq Scan`, or an index scanned whole (no index
//! condition and no `LIMIT` above it). Any such plan fails the test.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fast_settings};
use sqlx::Connection as _;
use windsock::airflow;
use windsock::db::Dialect;
use windsock::diagnostics::{self, Context};

const BIG_TABLES: [&str; 7] = [
    "task_instance",
    "dag_run",
    "log",
    "xcom",
    "job",
    "task_reschedule",
    // Missed deadlines stay until `airflow db clean`.
    "deadline",
];

/// Relations read whole anywhere in a JSON plan: sequential scans, and
/// index scans with no index condition that no `LIMIT` bounds.
/// A partial index (Airflow's `idx_dag_run_running_dags`, …) holds only the
/// rows of its predicate: scanning it whole is reading just those rows.
fn seq_scans(plan: &serde_json::Value, partial: &[String], out: &mut Vec<String>) {
    walk(plan, false, partial, out);
}

fn walk(plan: &serde_json::Value, limited: bool, partial: &[String], out: &mut Vec<String>) {
    match plan {
        serde_json::Value::Object(map) => {
            let node = map.get("Node Type").and_then(|v| v.as_str()).unwrap_or("");
            let rel = map.get("Relation Name").and_then(|v| v.as_str());
            let whole = match node {
                "Seq Scan" => true,
                "Index Scan" | "Index Only Scan" => {
                    let index = map.get("Index Name").and_then(|v| v.as_str()).unwrap_or("");
                    !map.contains_key("Index Cond")
                        && !limited
                        && !partial.iter().any(|p| p == index)
                }
                _ => false,
            };
            if whole && let Some(rel) = rel {
                out.push(rel.to_owned());
            }
            let limited = limited || node == "Limit";
            for v in map.values() {
                walk(v, limited, partial, out);
            }
        }
        serde_json::Value::Array(items) => {
            items.iter().for_each(|v| walk(v, limited, partial, out))
        }
        _ => {}
    }
}

/// The JSON plan of a statement (json is decoded as its text).
async fn explain(
    conn: &mut sqlx::PgConnection,
    sql: &str,
) -> Result<serde_json::Value, sqlx::Error> {
    use sqlx::Row as _;
    let row = sqlx::query(sqlx::AssertSqlSafe(format!("EXPLAIN (FORMAT JSON) {sql}")))
        .fetch_one(conn)
        .await?;
    let text: String = row.try_get_unchecked(0)?;
    Ok(serde_json::from_str(&text).expect("EXPLAIN returns JSON"))
}

#[tokio::test]
async fn no_sequential_scans_of_big_tables() {
    let mut explained = 0;
    for version in ["2.7.3", "2.10.5", "3.1.8", "3.3.2"] {
        let db = TestDb::with_schema(Dialect::Postgres, version).await;
        let handle = db.windsock(&fast_settings());
        let schema = airflow::detect(&handle, Duration::from_secs(10))
            .await
            .unwrap();
        handle.close().await;
        let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
        sqlx::raw_sql("SET enable_seqscan = off")
            .execute(&mut conn)
            .await
            .unwrap();
        let partial: Vec<String> = sqlx::query_scalar(
            "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             WHERE i.indpred IS NOT NULL",
        )
        .fetch_all(&mut conn)
        .await
        .unwrap();
        assert!(
            partial.iter().any(|p| p == "idx_dag_run_running_dags"),
            "{partial:?}"
        );
        let ctx = Arc::new(Context::default());
        for d in diagnostics::builtin(&ctx) {
            if d.applies(&schema).is_err() {
                continue;
            }
            for sql in d.explain_sql(&schema) {
                let plan = explain(&mut conn, &sql)
                    .await
                    .unwrap_or_else(|e| panic!("{version} {}: {e}\n{sql}", d.meta().name));
                let mut scans = Vec::new();
                seq_scans(&plan, &partial, &mut scans);
                let bad: Vec<&String> = scans
                    .iter()
                    .filter(|r| BIG_TABLES.contains(&r.as_str()))
                    .collect();
                assert!(
                    bad.is_empty(),
                    "{version} {}: sequential scan of {bad:?}\n{sql}\n{:#}",
                    d.meta().name,
                    plan
                );
                explained += 1;
            }
        }
    }
    assert!(explained > 80, "only {explained} statements explained");
}

/// The check itself works: a time-window filter on task_instance.start_date
/// (no index in Airflow) is caught.
#[tokio::test]
async fn an_unindexed_window_is_caught() {
    let db = TestDb::with_schema(Dialect::Postgres, "2.10.5").await;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::raw_sql("SET enable_seqscan = off")
        .execute(&mut conn)
        .await
        .unwrap();
    let plan = explain(
        &mut conn,
        "SELECT dag_id, COUNT(*) FROM task_instance \
         WHERE start_date > now() - interval '7 days' GROUP BY dag_id",
    )
    .await
    .unwrap();
    let mut scans = Vec::new();
    seq_scans(&plan, &[], &mut scans);
    assert!(scans.contains(&"task_instance".to_owned()), "{:#}", plan);
}
