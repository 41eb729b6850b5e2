//! Component liveness: per host and per component type, by Airflow's own
//! rule (job running, heartbeat within the type's threshold), ended and
//! killed components shown as not alive.

use std::collections::BTreeMap;

use crate::harness::{Fx, assert_near, each, family, num, settings, text};
use windsock::metrics::now_unix;

fn component(job_type: &str) -> &'static str {
    match job_type {
        "SchedulerJob" => "scheduler",
        "TriggererJob" => "triggerer",
        _ => "dag_processor",
    }
}

/// The fixture's components as they were left: one scheduler killed
/// (`running`, stale heartbeat), the others stopped (`success`). With a
/// lookback reaching back to them, each host shows, none alive.
#[tokio::test]
async fn ended_and_killed_components_show_as_not_alive() {
    let mut s = settings();
    s.thresholds.component_lookback = std::time::Duration::from_secs(10 * 365 * 86_400);
    each(&s, async |fx: &Fx| {
        let jobs = fx
            .rows(&format!(
                "SELECT job_type, COALESCE(hostname, ''), {hb}, state FROM job \
                 WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob')",
                hb = fx.epoch("latest_heartbeat")
            ))
            .await;
        let mut want: BTreeMap<String, f64> = BTreeMap::new();
        for j in &jobs.rows {
            let k = format!(
                "component={},hostname={}",
                component(&text(&j[0])),
                text(&j[1])
            );
            let hb = num(&j[2]).unwrap();
            let e = want.entry(k).or_insert(hb);
            *e = e.max(hb);
        }
        let got = fx.run("component_heartbeats").await;
        let at = fx.at();
        assert_eq!(
            family(&got, "airflow_component_host_alive").len(),
            want.len(),
            "{at}"
        );
        for (k, hb) in &want {
            assert_near(
                &got,
                &format!("airflow_component_heartbeat_timestamp_seconds{{{k}}}"),
                *hb,
                1e-3,
                &at,
            );
            assert_eq!(
                got[&format!("airflow_component_host_alive{{{k}}}")],
                0.0,
                "{at} {k}"
            );
        }
        let states: Vec<String> = jobs.rows.iter().map(|j| text(&j[3])).collect();
        assert!(
            states.iter().any(|s| s == "success") && states.iter().any(|s| s == "running"),
            "{at}: {states:?}"
        );
        let got = fx.run("component_liveness").await;
        for c in ["scheduler", "triggerer", "dag_processor"] {
            assert_eq!(
                got[&format!("airflow_components_alive{{component={c}}}")],
                0.0,
                "{at}"
            );
        }
    })
    .await;
}

/// Thresholds per component type, as Airflow judges them: with every
/// component job running and last heartbeating 20 s ago, the scheduler
/// and triggerer (30 s) are alive and the dag-processor (its heartrate
/// times 2.1: 10.5 s) is not; a stopped job is never alive, however fresh
/// its heartbeat. Components older than the lookback disappear.
#[tokio::test]
async fn liveness_follows_each_components_threshold() {
    each(&settings(), async |fx: &Fx| {
        let ids = fx
            .rows("SELECT id, job_type FROM job WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob') ORDER BY id")
            .await;
        // Every component job running with a 20 s old heartbeat, except
        // the oldest scheduler job, stopped just now.
        let stopped = ids.rows.iter().find(|r| text(&r[1]) == "SchedulerJob").map(|r| num(&r[0]).unwrap()).unwrap();
        fx.db
            .exec_script(&format!(
                "UPDATE job SET state = 'running', latest_heartbeat = {hb}
                   WHERE job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob');
                 UPDATE job SET state = 'success', latest_heartbeat = {now} WHERE id = {stopped}",
                hb = fx.ago(20),
                now = fx.ago(0)
            ))
            .await;
        let types: Vec<String> = ids.rows.iter().map(|r| text(&r[1])).collect();
        let count = |t: &str| types.iter().filter(|x| x.as_str() == t).count() as f64;
        let got = fx.run("component_liveness").await;
        let at = fx.at();
        assert_eq!(got["airflow_components_alive{component=scheduler}"], count("SchedulerJob") - 1.0, "{at}");
        assert_eq!(got["airflow_components_alive{component=triggerer}"], count("TriggererJob"), "{at}");
        assert_eq!(got["airflow_components_alive{component=dag_processor}"], 0.0, "{at}");
        let got = fx.run("component_heartbeats").await;
        for (k, v) in family(&got, "airflow_component_heartbeat_timestamp_seconds") {
            assert!((now_unix() - v) < 60.0, "{at}: {k} is recent");
        }
        // An hour-old heartbeat is out of a 30-minute lookback.
        fx.db
            .exec_script(&format!("UPDATE job SET latest_heartbeat = {}", fx.ago(3600)))
            .await;
        let mut s = settings();
        s.thresholds.component_lookback = std::time::Duration::from_secs(1800);
        let got = fx.run_with(&s, "component_heartbeats").await;
        assert!(family(&got, "airflow_component_host_alive").is_empty(), "{at}: {got:?}");
    })
    .await;
}
