//! Backfills in progress (Airflow 3): a backfill of the fixture's
//! `ws_success` written the way Airflow writes one (one backfill_dag_run
//! per date, linked to its run, or without a run when the date was
//! skipped), its runs by state and its status. Truth from the fixture's
//! own dag_run states.

use crate::harness::{Fx, each, family, settings, text};

#[tokio::test]
async fn open_backfills_and_their_runs_by_state() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        if !fx.v3() {
            assert!(!fx.schema.has_table("backfill"), "{at}");
            return;
        }
        let got = fx.run("backfills").await;
        assert!(got.is_empty(), "{at}: no backfill in the fixture: {got:?}");
        let runs = fx
            .rows("SELECT id, state FROM dag_run WHERE dag_id = 'ws_success' ORDER BY id")
            .await;
        let (run, state) = (text(&runs.rows[0][0]), text(&runs.rows[0][1]));
        let now = fx.ago(0);
        fx.db
            .exec_script(&format!(
                "INSERT INTO backfill (id, dag_id, from_date, to_date, dag_run_conf, is_paused, \
                   reprocess_behavior, max_active_runs, created_at, updated_at) \
                 VALUES (9001, 'ws_success', {from}, {now}, '{{}}', {f}, 'none', 10, {now}, {now});\n\
                 INSERT INTO backfill_dag_run (id, backfill_id, dag_run_id, exception_reason, logical_date, sort_ordinal) \
                 VALUES (9001, 9001, {run}, NULL, {from}, 1);\n\
                 INSERT INTO backfill_dag_run (id, backfill_id, dag_run_id, exception_reason, logical_date, sort_ordinal) \
                 VALUES (9002, 9001, NULL, 'already exists', {now}, 2)",
                from = fx.ago(86_400),
                f = fx.bool(false)
            ))
            .await;
        let got = fx.run("backfills").await;
        assert_eq!(got[&format!("airflow_backfill_dag_runs{{dag_id=ws_success,state={state}}}")], 1.0, "{at}");
        assert_eq!(got["airflow_backfill_dag_runs{dag_id=ws_success,state=skipped}"], 1.0, "{at}");
        assert_eq!(got["airflow_backfills{dag_id=ws_success,status=running}"], 1.0, "{at}");
        assert_eq!(got["airflow_backfills{dag_id=ws_success,status=paused}"], 0.0, "{at}");
        fx.db
            .exec_script(&format!("UPDATE backfill SET is_paused = {} WHERE id = 9001", fx.bool(true)))
            .await;
        let got = fx.run("backfills").await;
        assert_eq!(got["airflow_backfills{dag_id=ws_success,status=paused}"], 1.0, "{at}");
        fx.db
            .exec_script(&format!("UPDATE backfill SET completed_at = {now} WHERE id = 9001"))
            .await;
        let got = fx.run("backfills").await;
        assert!(family(&got, "airflow_backfills").is_empty(), "{at}: {got:?}");
    })
    .await;
}
