//! Why a task waits, on the fixtures' ws_zombie DAG: `hang` holds the one
//! slot of pool ws_starved, starved_0..2 stay scheduled, a manual run is
//! queued behind max_active_runs=1 (fixtures made since it was added), the
//! scheduler was SIGKILLed. Each reason is made true in turn by changing
//! only what Airflow's scheduler would look at, and the counts are checked
//! against plain SQL.

use std::time::Duration;

use crate::harness::{Fx, assert_near, each, family, num, settings};
use windsock::config::Settings;

/// Waiting counts from the first second on.
fn eager() -> Settings {
    let mut s = settings();
    s.thresholds.task_waiting = Duration::from_secs(1);
    s
}

/// The scheduled task instances of the starved pool (truth).
async fn starved(fx: &Fx) -> (String, f64) {
    let pool = fx.facts["starved_pool"]["pool"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = fx
        .rows(&format!(
            "SELECT COUNT(*) FROM task_instance WHERE pool = '{pool}' AND state = 'scheduled'"
        ))
        .await;
    (pool, num(&r.rows[0][0]).unwrap())
}

/// Queued manual runs of ws_zombie (truth; 0 in fixtures made before the
/// scenario existed).
async fn queued_runs(fx: &Fx) -> f64 {
    let r = fx
        .rows("SELECT COUNT(*) FROM dag_run WHERE dag_id = 'ws_zombie' AND state = 'queued'")
        .await;
    num(&r.rows[0][0]).unwrap()
}

async fn revive_scheduler(fx: &Fx) {
    let id = &fx.facts["components"]["killed"]["job_id"];
    fx.db
        .exec_script(&format!(
            "UPDATE job SET state = 'running', end_date = NULL, latest_heartbeat = {} WHERE id = {id}",
            fx.ago(2)
        ))
        .await;
}

#[tokio::test]
async fn the_starved_pool_holds_the_tasks_once_a_scheduler_lives() {
    each(&eager(), async |fx: &Fx| {
        let at = fx.at();
        let (pool, n) = starved(fx).await;
        assert_eq!(n, 3.0, "{at}: the fixture's three starved tasks");
        let runs = queued_runs(fx).await;
        // As left: the scheduler was killed, so nothing is started at all.
        let got = fx.run("task_waiting").await;
        let key = |reason: &str| format!("airflow_waiting_tasks{{dag_id=ws_zombie,pool={pool},reason={reason}}}");
        assert_eq!(got[&key("no_scheduler")], n, "{at}: {got:#?}");
        assert_eq!(got.get(&key("pool_full")), None, "{at}");
        // The deferred sensor's triggerer was stopped too.
        let deferred = fx.facts["deferred"]["dag_id"].as_str().unwrap();
        let waiting = family(&got, "airflow_waiting_tasks");
        assert_eq!(
            waiting.iter().filter(|(k, _)| k.starts_with(&format!("dag_id={deferred},")) && k.ends_with("reason=triggerer")).map(|(_, v)| v).sum::<f64>(),
            1.0,
            "{at}: {waiting:?}"
        );
        if runs > 0.0 {
            assert_eq!(got["airflow_waiting_dag_runs{dag_id=ws_zombie,reason=no_scheduler}"], runs, "{at}");
        }

        revive_scheduler(fx).await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("pool_full")], n, "{at}: {got:#?}");
        assert_eq!(got.get(&key("no_scheduler")), None, "{at}");
        // The oldest waiting for the pool, against plain SQL.
        let since = if fx.v3() { "COALESCE(scheduled_dttm, updated_at)" } else { "updated_at" };
        let oldest = fx
            .rows(&format!(
                "SELECT task_id, {} FROM task_instance WHERE pool = '{pool}' AND state = 'scheduled' \
                 ORDER BY {since}, task_id",
                fx.epoch(since)
            ))
            .await;
        let task = crate::harness::text(&oldest.rows[0][0]);
        let when = num(&oldest.rows[0][1]).unwrap();
        let k = format!("airflow_waiting_task_oldest_age_seconds{{reason=pool_full,dag_id=ws_zombie,task_id={task}}}");
        assert_near(&got, &k, when, 1e-3, &at);
        if runs > 0.0 {
            let blocked = fx
                .rows("SELECT d.max_active_runs, (SELECT COUNT(*) FROM dag_run WHERE dag_id = 'ws_zombie' AND state = 'running') FROM dag d WHERE d.dag_id = 'ws_zombie'")
                .await;
            assert!(num(&blocked.rows[0][1]) >= num(&blocked.rows[0][0]), "{at}: ws_zombie is at max_active_runs");
            assert_eq!(got["airflow_waiting_dag_runs{dag_id=ws_zombie,reason=max_active_runs}"], runs, "{at}");
        }
    })
    .await;
}

#[tokio::test]
async fn each_limit_in_the_schedulers_order() {
    each(&eager(), async |fx: &Fx| {
        let at = fx.at();
        let (pool, n) = starved(fx).await;
        revive_scheduler(fx).await;
        let key = |reason: &str| format!("airflow_waiting_tasks{{dag_id=ws_zombie,pool={pool},reason={reason}}}");
        // A bigger pool: the DAG's own limit is next, then nothing in the DB.
        fx.db.exec_script(&format!("UPDATE slot_pool SET slots = 10 WHERE pool = '{pool}'")).await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("scheduler_capacity")], n, "{at}: {got:#?}");
        // A task limit in the serialized DAG (read because the DAG now says
        // it has task limits): max_active_tis_per_dag 0 is always reached.
        let json = |expr: &str| match fx.dialect {
            windsock::db::Dialect::Postgres => format!("CAST({expr} AS json)"),
            _ => expr.to_owned(),
        };
        let text = match fx.dialect {
            windsock::db::Dialect::Postgres => "CAST(data AS text)",
            _ => "data",
        };
        let mut limit = format!(
            "UPDATE dag SET has_task_concurrency_limits = {} WHERE dag_id = 'ws_zombie';",
            fx.bool(true)
        );
        for i in 0..3 {
            let set = json(&format!(
                "REPLACE({text}, '\"task_id\": \"starved_{i}\"', '\"task_id\": \"starved_{i}\", \"max_active_tis_per_dag\": 0')"
            ));
            limit += &format!(" UPDATE serialized_dag SET data = {set} WHERE dag_id = 'ws_zombie';");
        }
        fx.db.exec_script(&limit).await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("max_active_tis_per_dag")], n, "{at}: {got:#?}");
        // max_active_tasks = 1, held by `hang` (same DAG on 2.x, same run on 3.x).
        fx.db.exec_script("UPDATE dag SET max_active_tasks = 1 WHERE dag_id = 'ws_zombie'").await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("max_active_tasks")], n, "{at}");
        // A paused DAG comes before every limit.
        fx.db
            .exec_script(&format!("UPDATE dag SET is_paused = {} WHERE dag_id = 'ws_zombie'", fx.bool(true)))
            .await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("dag_paused")], n, "{at}");
        // A pool that is gone: Airflow leaves the tasks scheduled forever.
        fx.db
            .exec_script(&format!(
                "UPDATE dag SET is_paused = {} WHERE dag_id = 'ws_zombie'; DELETE FROM slot_pool WHERE pool = '{pool}'",
                fx.bool(false)
            ))
            .await;
        let got = fx.run("task_waiting").await;
        assert_eq!(got[&key("pool_missing")], n, "{at}");
    })
    .await;
}

/// `[thresholds] task_waiting`: tasks scheduled a minute ago wait under a
/// 30 s threshold, not under the 5 min default.
#[tokio::test]
async fn the_threshold_decides_what_waits() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let (pool, n) = starved(fx).await;
        let cols = if fx.v3() {
            "scheduled_dttm = {t}, updated_at = {t}"
        } else {
            "updated_at = {t}"
        };
        fx.db
            .exec_script(&format!(
                "UPDATE task_instance SET {} WHERE pool = '{pool}' AND state = 'scheduled'",
                cols.replace("{t}", &fx.ago(60))
            ))
            .await;
        let key =
            format!("airflow_waiting_tasks{{dag_id=ws_zombie,pool={pool},reason=no_scheduler}}");
        let got = fx.run("task_waiting").await;
        assert_eq!(got.get(&key), None, "{at}: 60 s is under the 5 min default");
        let mut s = settings();
        s.thresholds.task_waiting = Duration::from_secs(30);
        let got = fx.run_with(&s, "task_waiting").await;
        assert_eq!(got[&key], n, "{at}");
    })
    .await;
}

/// Sensor reschedules are counted as their rows appear, never by scanning
/// what was there at start: the fixture's rows (ws_reschedule's sensor
/// poked three times) are taken out (the ids go back below windsock's mark,
/// so it starts again from the newest row), then put back.
#[tokio::test]
async fn sensor_reschedules_count_new_rows_only() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let got = fx.run("sensor_reschedules").await;
        assert!(family(&got, "airflow_sensor_reschedules").is_empty(), "{at}: rows before start are not counted");
        fx.db
            .exec_script(
                "CREATE TABLE tr_saved AS SELECT * FROM task_reschedule; DELETE FROM task_reschedule",
            )
            .await;
        // The ids went back below windsock's mark: it counts from the
        // newest row again (here: none).
        let got = fx.run("sensor_reschedules").await;
        assert!(family(&got, "airflow_sensor_reschedules").is_empty(), "{at}");
        fx.db.exec_script("INSERT INTO task_reschedule SELECT * FROM tr_saved").await;
        let want = &fx.facts["reschedules"]["by_task"];
        for _ in 0..2 {
            // The second run reads nothing new: the counts stay.
            let got = fx.run("sensor_reschedules").await;
            let counted = family(&got, "airflow_sensor_reschedules");
            match want.as_object() {
                Some(tasks) => {
                    assert_eq!(counted.len(), tasks.len(), "{at}: {counted:?}");
                    for (task, n) in tasks {
                        let (dag, task) = task.split_once('.').unwrap();
                        let k = format!("dag_id={dag},task_id={task}");
                        assert_eq!(counted.get(k.as_str()), n.as_f64().as_ref(), "{at}: {k}");
                    }
                    assert_eq!(tasks["ws_reschedule.poke_thrice"], 2, "{at}");
                }
                // Fixtures made before the reschedule scenario have no rows.
                None => assert!(counted.is_empty(), "{at}"),
            }
        }
    })
    .await;
}
