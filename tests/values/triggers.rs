//! Triggers and the triggerer on the fixtures' deferred task (a
//! `DateTimeTrigger` two days out, its triggerer stopped when the fixture
//! was made): assignment by Airflow's rule, load against capacity, the
//! oldest waiting trigger, deferred tasks past their timeout. Truth from
//! plain SQL and the generator's facts.

use crate::harness::{Fx, assert_near, each, family, num, settings};
use windsock::metrics::now_unix;

fn table(fx: &Fx) -> &'static str {
    match fx.dialect {
        windsock::db::Dialect::MySql => "`trigger`",
        _ => "\"trigger\"",
    }
}

/// As left: the triggerer that ran the trigger has ended, so the trigger
/// is orphaned and waits; no triggerer is live; the timeout is days away.
#[tokio::test]
async fn a_trigger_of_a_stopped_triggerer_is_orphaned() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let t = fx
            .rows(&format!(
                "SELECT COUNT(*), SUM(CASE WHEN triggerer_id IS NULL THEN 1 ELSE 0 END), \
                        MIN({}) FROM {}",
                fx.epoch("created_date"),
                table(fx)
            ))
            .await;
        let (total, unassigned) = (num(&t.rows[0][0]).unwrap(), num(&t.rows[0][1]).unwrap());
        let created = num(&t.rows[0][2]).unwrap();
        assert_eq!(total, 1.0, "{at}: the fixture's one trigger");
        assert_eq!(
            fx.facts["deferred"]["triggerer_job_state"], "success",
            "{at}: the fixture stopped its triggerer"
        );
        let got = fx.run("trigger_assignment").await;
        assert_eq!(got["airflow_triggers{assignment=live}"], 0.0, "{at}");
        assert_eq!(
            got["airflow_triggers{assignment=orphaned}"],
            total - unassigned,
            "{at}"
        );
        assert_eq!(
            got["airflow_triggers{assignment=unassigned}"], unassigned,
            "{at}"
        );
        // Stored as the creation time; the encoder turns it into an age.
        assert_near(
            &got,
            "airflow_trigger_oldest_waiting_age_seconds{}",
            created,
            1e-3,
            &at,
        );
        assert!(now_unix() - created > 0.0, "{at}");
        let got = fx.run("triggerer_load").await;
        assert!(
            family(&got, "airflow_triggerer_assigned_triggers").is_empty(),
            "{at}"
        );
        // 3.x's timeout is 7 days after the fixture was made: keep it ahead
        // of now, whenever this runs.
        fx.db
            .exec_script(&format!(
                "UPDATE task_instance SET trigger_timeout = {} WHERE trigger_timeout IS NOT NULL",
                fx.ahead(86_400)
            ))
            .await;
        let got = fx.run("deferred_timeouts").await;
        assert!(
            family(&got, "airflow_deferred_tasks_past_timeout").is_empty(),
            "{at}: {got:?}"
        );
    })
    .await;
}

/// The triggerer brought back to life (no end_date, fresh heartbeat): the
/// trigger is live, counted on its host against the configured capacity,
/// and nothing waits. Then the timeout passes: the deferred task shows.
#[tokio::test]
async fn a_live_triggerer_runs_it_and_timeouts_show() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let id = &fx.facts["deferred"]["triggerer_id"];
        fx.db
            .exec_script(&format!(
                "UPDATE job SET state = 'running', end_date = NULL, latest_heartbeat = {} WHERE id = {id}",
                fx.ago(5)
            ))
            .await;
        let host = fx
            .rows(&format!("SELECT COALESCE(hostname, '') FROM job WHERE id = {id}"))
            .await;
        let host = crate::harness::text(&host.rows[0][0]);
        let got = fx.run("trigger_assignment").await;
        assert_eq!(got["airflow_triggers{assignment=live}"], 1.0, "{at}");
        assert_eq!(got["airflow_triggers{assignment=orphaned}"], 0.0, "{at}");
        assert!(!got.contains_key("airflow_trigger_oldest_waiting_age_seconds{}"), "{at}");
        let mut s = settings();
        s.thresholds.triggerer_capacity = 7;
        let got = fx.run_with(&s, "triggerer_load").await;
        assert_eq!(got[&format!("airflow_triggerer_assigned_triggers{{hostname={host}}}")], 1.0, "{at}");
        assert_eq!(got[&format!("airflow_triggerer_capacity_triggers{{hostname={host}}}")], 7.0, "{at}");
        // A heartbeat older than triggerer_alive (30 s): not live any more.
        fx.db
            .exec_script(&format!("UPDATE job SET latest_heartbeat = {} WHERE id = {id}", fx.ago(60)))
            .await;
        let got = fx.run("trigger_assignment").await;
        assert_eq!(got["airflow_triggers{assignment=orphaned}"], 1.0, "{at}");

        fx.db
            .exec_script(&format!(
                "UPDATE task_instance SET trigger_timeout = {} WHERE state = 'deferred'",
                fx.ago(60)
            ))
            .await;
        let dag = fx.facts["deferred"]["dag_id"].as_str().unwrap().to_owned();
        let got = fx.run("deferred_timeouts").await;
        assert_eq!(got[&format!("airflow_deferred_tasks_past_timeout{{dag_id={dag}}}")], 1.0, "{at}");
    })
    .await;
}
