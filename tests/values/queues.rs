//! Queues where work waits outside the task states: DAG warnings, asset
//! (dataset) events queued for DAGs, callbacks queued for the DAG processor,
//! human-in-the-loop requests (3.1+). On the real-Airflow fixtures as left,
//! then with rows of the shape Airflow writes added; truth from plain SQL.

use crate::harness::{Fx, assert_near, each, family, num, settings, text};
use windsock::db::Dialect;

fn q(fx: &Fx, ident: &str) -> String {
    match fx.dialect {
        Dialect::MySql => format!("`{ident}`"),
        _ => format!("\"{ident}\""),
    }
}

async fn epoch_of(fx: &Fx, table: &str, column: &str, filter: &str) -> f64 {
    let r = fx
        .rows(&format!(
            "SELECT MIN({}) FROM {table} WHERE {filter}",
            fx.epoch(column)
        ))
        .await;
    num(&r.rows[0][0]).unwrap()
}

#[tokio::test]
async fn dag_warnings_by_type() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        fx.db
            .exec_script(&format!(
                "INSERT INTO dag_warning (dag_id, warning_type, message, {ts}) VALUES \
                 ('ws_pool', 'non-existent pool', 'Dag ''ws_pool'' references non-existent pools: [''nope'']', {now})",
                ts = q(fx, "timestamp"),
                now = fx.ago(0)
            ))
            .await;
        let truth = fx
            .rows("SELECT warning_type, COUNT(*) FROM dag_warning GROUP BY warning_type")
            .await;
        let got = fx.run("dag_warnings").await;
        assert_eq!(family(&got, "airflow_dag_warnings").len(), truth.rows.len(), "{at}");
        for r in &truth.rows {
            let key = format!("airflow_dag_warnings{{warning_type={}}}", text(&r[0]));
            assert_eq!(got[&key], num(&r[1]).unwrap(), "{at} {key}");
        }
    })
    .await;
}

#[tokio::test]
async fn asset_events_queued_for_a_dag() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let (asset, queue, key) = if fx.v3() {
            ("asset", "asset_dag_run_queue", "asset_id")
        } else {
            ("dataset", "dataset_dag_run_queue", "dataset_id")
        };
        let got = fx.run("asset_queue").await;
        let before = fx.rows(&format!("SELECT COUNT(*) FROM {queue}")).await;
        assert_eq!(
            family(&got, "airflow_asset_queue_events")
                .values()
                .sum::<f64>(),
            num(&before.rows[0][0]).unwrap(),
            "{at}"
        );
        let asset_row = if fx.v3() {
            format!(
                "INSERT INTO asset (id, name, uri, {g}, extra, created_at, updated_at) \
                 VALUES (9001, 'ws://raw', 'ws://raw', 'asset', '{{}}', {now}, {now})",
                g = q(fx, "group"),
                now = fx.ago(0)
            )
        } else {
            format!(
                "INSERT INTO dataset (id, uri, extra, created_at, updated_at, is_orphaned) \
                 VALUES (9001, 'ws://raw', '{{}}', {now}, {now}, {f})",
                now = fx.ago(0),
                f = fx.bool(false)
            )
        };
        fx.db
            .exec_script(&format!(
                "{asset_row};\nINSERT INTO {queue} ({key}, target_dag_id, created_at) \
                 VALUES (9001, 'ws_success', {})",
                fx.ago(120)
            ))
            .await;
        let oldest = epoch_of(fx, queue, "created_at", "target_dag_id = 'ws_success'").await;
        let got = fx.run("asset_queue").await;
        assert_eq!(
            got["airflow_asset_queue_events{dag_id=ws_success}"], 1.0,
            "{at} ({asset})"
        );
        // Stored as the time it was queued; the encoder turns it into an age.
        assert_near(
            &got,
            "airflow_asset_queue_oldest_age_seconds{dag_id=ws_success}",
            oldest,
            1e-3,
            &at,
        );
    })
    .await;
}

#[tokio::test]
async fn callbacks_queued_for_the_dag_processor() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        fx.db
            .exec_script(&format!(
                "INSERT INTO callback_request (id, created_at, priority_weight, callback_data, callback_type) \
                 VALUES (9001, {}, 1, '{{}}', 'DagCallbackRequest')",
                fx.ago(90)
            ))
            .await;
        let truth = fx
            .rows(&format!(
                "SELECT callback_type, COUNT(*), MIN({}) FROM callback_request GROUP BY callback_type",
                fx.epoch("created_at")
            ))
            .await;
        let got = fx.run("callback_backlog").await;
        assert_eq!(family(&got, "airflow_callback_requests").len(), truth.rows.len(), "{at}");
        for r in &truth.rows {
            let t = text(&r[0]);
            assert_eq!(got[&format!("airflow_callback_requests{{callback_type={t}}}")], num(&r[1]).unwrap(), "{at}");
            assert_near(
                &got,
                &format!("airflow_callback_oldest_age_seconds{{callback_type={t}}}"),
                num(&r[2]).unwrap(),
                1e-3,
                &at,
            );
        }
    })
    .await;
}

#[tokio::test]
async fn human_in_the_loop_requests_waiting() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        if !fx.schema.has_table("hitl_detail") {
            assert!(fx.version.as_str() < "3.1", "{at}");
            return;
        }
        let got = fx.run("hitl_pending").await;
        assert_eq!(got["airflow_hitl_pending_requests{}"], 0.0, "{at}: none in the fixture");
        // The deferred task asks a person.
        let ti = fx
            .rows("SELECT id FROM task_instance WHERE state = 'deferred'")
            .await;
        let ti = text(&ti.rows[0][0]);
        fx.db
            .exec_script(&format!(
                "INSERT INTO hitl_detail (ti_id, options, subject, params, params_input, created_at) \
                 VALUES ('{ti}', '[\"Approve\", \"Reject\"]', 'Ship it?', '{{}}', '{{}}', {})",
                fx.ago(300)
            ))
            .await;
        let created = epoch_of(fx, "hitl_detail", "created_at", "responded_at IS NULL").await;
        let got = fx.run("hitl_pending").await;
        assert_eq!(got["airflow_hitl_pending_requests{}"], 1.0, "{at}");
        assert_near(&got, "airflow_hitl_oldest_pending_age_seconds{}", created, 1e-3, &at);
        fx.db
            .exec_script(&format!("UPDATE hitl_detail SET responded_at = {}", fx.ago(0)))
            .await;
        let got = fx.run("hitl_pending").await;
        assert_eq!(got["airflow_hitl_pending_requests{}"], 0.0, "{at}");
        assert!(!got.contains_key("airflow_hitl_oldest_pending_age_seconds{}"), "{at}");
    })
    .await;
}
