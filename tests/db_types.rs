//! Every column type Airflow's tables use decodes into a cell, on each
//! dialect, read from the real columns of the Airflow 2.10 and 3.1 schemas:
//! uuids (Airflow 3 ids, native `uuid` on PostgreSQL, `CHAR(32)` elsewhere),
//! `json`/`jsonb`, `bytea`/`BLOB`, numerics, timestamps with and without a
//! time zone, MySQL `DATETIME(6)`/`TIMESTAMP(6)` and `TINYINT(1)` booleans,
//! MySQL's single-precision `FLOAT`.

mod common;

use std::time::Duration;

use common::{TestDb, fast_settings};
use windsock::db::{Cell, Dialect};

const T: Duration = Duration::from_secs(10);

/// 2026-11-24 22:34:15.388743 UTC.
const AT: f64 = 1_795_559_655.388_743;

fn near(cell: &Cell, want: f64) -> bool {
    matches!(cell, Cell::Float(v) if (v - want).abs() < 1e-3)
}

#[tokio::test]
async fn airflow_3_columns_decode_on_every_dialect() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, "3.1.8").await;
        let (uuid, ts, json) = match dialect {
            // The uuid literal as Airflow writes it per dialect.
            Dialect::Postgres => (
                "'01a20fb1-ef38-79ea-bb30-dedbebfa2edb'",
                "'2026-11-24 22:34:15.388743+00'",
                "'{\"a\": [1, 2]}'",
            ),
            _ => (
                "'01a20fb1ef3879eabb30dedbebfa2edb'",
                "'2026-11-24 22:34:15.388743'",
                "'{\"a\": [1, 2]}'",
            ),
        };
        let t = if dialect == Dialect::Postgres {
            "true"
        } else {
            "1"
        };
        db.exec_script(&format!(
            "INSERT INTO dag_bundle (name, active) VALUES ('b', {t});
             INSERT INTO dag (dag_id, bundle_name, is_paused, is_stale, max_active_tasks,
               has_task_concurrency_limits, max_consecutive_failed_dag_runs, last_parsed_time)
             VALUES ('d', 'b', {t}, {t}, 16, {t}, 0, {ts});
             INSERT INTO dag_version (id, version_number, dag_id, created_at, last_updated)
             VALUES ({uuid}, 1, 'd', {ts}, {ts});
             INSERT INTO serialized_dag (id, dag_id, data, data_compressed, created_at,
               last_updated, dag_hash, dag_version_id)
             VALUES ({uuid}, 'd', {json}, NULL, {ts}, {ts}, 'h', {uuid});
             INSERT INTO dag_run (id, dag_id, run_id, run_type, state, run_after, conf,
               clear_number, span_status, log_template_id)
             VALUES (1, 'd', 'r', 'manual', 'success', {ts}, {json}, 0, 'not_started', NULL);
             INSERT INTO task_instance (id, dag_id, task_id, run_id, map_index, state, try_number,
               max_tries, pool, pool_slots, duration, span_status, start_date)
             VALUES ('01a20fb2-0658-7f67-8000-000000000001', 'd', 't', 'r', -1, 'success', 1, 0,
               'p', 1, 1.5, 'not_started', {ts})"
        ))
        .await;
        let handle = db.windsock(&fast_settings());
        let rows = handle
            .query(
                "SELECT s.id AS id, s.data AS data, d.is_paused AS paused, \
                        d.last_parsed_time AS parsed, r.conf AS conf, r.run_after AS run_after, \
                        t.duration AS duration, t.id AS ti_id, s.data_compressed AS z \
                 FROM serialized_dag s JOIN dag d ON d.dag_id = s.dag_id \
                 JOIN dag_run r ON r.dag_id = d.dag_id \
                 JOIN task_instance t ON t.run_id = r.run_id",
                T,
            )
            .await
            .unwrap_or_else(|e| panic!("{dialect}: {e}"));
        let row = &rows.rows[0];
        let col = |n: &str| &row[rows.column(n).unwrap()];
        let id = col("id").as_label();
        assert!(
            id.replace('-', "") == "01a20fb1ef3879eabb30dedbebfa2edb",
            "{dialect}: uuid {id}"
        );
        for c in ["data", "conf"] {
            let text = col(c).as_label();
            let v: serde_json::Value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("{dialect} {c}: {text}: {e}"));
            assert_eq!(v["a"][1], 2, "{dialect} {c}");
        }
        assert_eq!(col("paused"), &Cell::Int(1), "{dialect}");
        for c in ["parsed", "run_after"] {
            match dialect {
                // SQLite keeps timestamps as the text Airflow wrote.
                Dialect::Sqlite => assert_eq!(col(c).as_label(), "2026-11-24 22:34:15.388743"),
                _ => assert!(near(col(c), AT), "{dialect} {c}: {:?}", col(c)),
            }
        }
        assert_eq!(col("duration").as_f64(), Some(1.5), "{dialect}");
        assert!(col("ti_id").as_label().starts_with("01a20fb2"), "{dialect}");
        assert_eq!(col("z"), &Cell::Null);
        handle.close().await;
    }
}

/// Airflow 2's naive `timestamp without time zone` column
/// (task_instance.trigger_timeout) and its pickled `bytea`/`BLOB` columns.
#[tokio::test]
async fn airflow_2_naive_timestamps_and_blobs_decode() {
    for dialect in Dialect::ALL {
        let db = TestDb::with_schema(dialect, "2.10.5").await;
        let blob = match dialect {
            Dialect::Postgres => "'\\x8005'::bytea",
            Dialect::MySql => "X'8005'",
            Dialect::Sqlite => "X'8005'",
        };
        db.exec_script(&format!(
            "INSERT INTO dag_run (id, dag_id, run_id, run_type, state, execution_date, conf,
               clear_number)
             VALUES (1, 'd', 'r', 'manual', 'success', '2026-11-24 22:34:15.388743', {blob}, 0);
             INSERT INTO task_instance (dag_id, task_id, run_id, map_index, state, try_number,
               max_tries, pool, pool_slots, trigger_timeout, executor_config)
             VALUES ('d', 't', 'r', -1, 'deferred', 1, 0, 'p', 1,
               '2026-11-24 22:34:15.388743', {blob})"
        ))
        .await;
        let handle = db.windsock(&fast_settings());
        let rows = handle
            .query(
                "SELECT r.execution_date AS ed, r.conf AS conf, t.trigger_timeout AS tt, \
                        t.executor_config AS ec \
                 FROM dag_run r JOIN task_instance t ON t.run_id = r.run_id",
                T,
            )
            .await
            .unwrap_or_else(|e| panic!("{dialect}: {e}"));
        let row = &rows.rows[0];
        let col = |n: &str| &row[rows.column(n).unwrap()];
        match dialect {
            // SQLite keeps timestamps as the text Airflow wrote.
            Dialect::Sqlite => assert_eq!(col("tt").as_label(), "2026-11-24 22:34:15.388743"),
            // MySQL's trigger_timeout is a DATETIME without fractions.
            Dialect::MySql => assert!(near(col("tt"), AT.trunc()), "{:?}", col("tt")),
            Dialect::Postgres => assert!(near(col("tt"), AT), "{:?}", col("tt")),
        }
        if dialect != Dialect::Sqlite {
            assert!(near(col("ed"), AT), "{dialect}: {:?}", col("ed"));
        }
        for c in ["conf", "ec"] {
            assert_eq!(col(c), &Cell::Bytes(vec![0x80, 0x05]), "{dialect} {c}");
        }
        handle.close().await;
    }
}
