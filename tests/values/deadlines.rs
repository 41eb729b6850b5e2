//! Airflow 3.1 Deadline Alerts on the fixtures real 3.1 schedulers and
//! triggerers wrote: ws_deadline missed two deadlines whose callbacks ran
//! (one succeeded, one failed); both ws_zombie runs hold a deadline a day
//! out. Truth from the generator's facts and plain SQL.

use std::time::Duration;

use crate::harness::{Fx, assert_near, each, family, num, settings};
use windsock::airflow::Capability;

/// Deadline times of a DAG's rows (truth).
async fn times(fx: &Fx, dag: &str) -> Vec<f64> {
    let r = fx
        .rows(&format!(
            "SELECT {} FROM deadline d JOIN dag_run r ON r.id = d.dagrun_id WHERE r.dag_id = '{dag}'",
            fx.epoch("d.deadline_time")
        ))
        .await;
    r.rows.iter().map(|r| num(&r[0]).unwrap()).collect()
}

fn has_alerts(fx: &Fx) -> bool {
    let has = fx.schema.has(Capability::DeadlineAlerts);
    if fx.version.starts_with("3.1") {
        assert!(has, "{}: 3.1 has Deadline Alerts", fx.at());
        assert!(
            fx.facts["deadlines"].is_array(),
            "{}: the fixture's deadline facts",
            fx.at()
        );
    }
    has
}

#[tokio::test]
async fn missed_deadlines_with_their_callbacks_and_pending_ones() {
    each(&settings(), async |fx: &Fx| {
        if !has_alerts(fx) {
            return;
        }
        let at = fx.at();
        // The fixture's pending deadlines are a day after it was made: keep
        // them ahead of now, whenever this runs.
        fx.db
            .exec_script(&format!(
                "UPDATE deadline SET deadline_time = {} WHERE callback_state IS NULL",
                fx.ahead(86_400)
            ))
            .await;
        let facts = fx.facts["deadlines"].as_array().unwrap();
        let of = |dag: &str, cb: Option<&str>| {
            facts
                .iter()
                .filter(|d| d["dag_id"] == dag && d["callback_state"].as_str() == cb)
                .count() as f64
        };
        let got = fx.run("deadline_alerts").await;
        let missed = |cb: &str| {
            got[&format!(
                "airflow_deadline_alerts_missed_window{{dag_id=ws_deadline,callback={cb}}}"
            )]
        };
        assert_eq!(
            missed("success"),
            of("ws_deadline", Some("success")),
            "{at}"
        );
        assert_eq!(missed("failed"), of("ws_deadline", Some("failed")), "{at}");
        assert_eq!((missed("success"), missed("failed")), (1.0, 1.0), "{at}");
        assert_eq!(
            missed("none") + missed("queued") + missed("running"),
            0.0,
            "{at}"
        );
        assert_eq!(
            got["airflow_deadline_alerts_pending{dag_id=ws_zombie}"],
            of("ws_zombie", None),
            "{at}"
        );
        assert_eq!(
            got.get("airflow_deadline_alerts_pending{dag_id=ws_deadline}"),
            Some(&0.0),
            "{at}"
        );
        let zombie = times(fx, "ws_zombie").await;
        let next = zombie.iter().copied().fold(f64::INFINITY, f64::min);
        assert_near(
            &got,
            "airflow_deadline_alert_next_timestamp_seconds{dag_id=ws_zombie}",
            next,
            1e-3,
            &at,
        );
        let last = times(fx, "ws_deadline")
            .await
            .into_iter()
            .fold(f64::NEG_INFINITY, f64::max);
        assert_near(
            &got,
            "airflow_deadline_alert_last_miss_timestamp_seconds{dag_id=ws_deadline}",
            last,
            1e-3,
            &at,
        );
        assert!(
            !got.contains_key(
                "airflow_deadline_alert_last_miss_timestamp_seconds{dag_id=ws_zombie}"
            ),
            "{at}"
        );

        // diagnostics.window: misses older than it are left out, pending
        // deadlines never are.
        let mut s = settings();
        s.diagnostics.window = Duration::from_secs(1);
        let got = fx.run_with(&s, "deadline_alerts").await;
        assert!(
            family(&got, "airflow_deadline_alert_last_miss_timestamp_seconds").is_empty(),
            "{at}: {got:?}"
        );
        assert_eq!(
            got["airflow_deadline_alerts_pending{dag_id=ws_zombie}"],
            of("ws_zombie", None),
            "{at}"
        );
    })
    .await;
}

/// A deadline that passes before the scheduler handles it counts as
/// missed, callback `none`, at once.
#[tokio::test]
async fn a_passed_deadline_is_missed_before_the_scheduler_sees_it() {
    each(&settings(), async |fx: &Fx| {
        if !has_alerts(fx) {
            return;
        }
        let at = fx.at();
        let n = times(fx, "ws_zombie").await.len() as f64;
        fx.db
            .exec_script(&format!(
                "UPDATE deadline SET deadline_time = {} WHERE callback_state IS NULL",
                fx.ago(60)
            ))
            .await;
        let got = fx.run("deadline_alerts").await;
        assert_eq!(
            got["airflow_deadline_alerts_missed_window{dag_id=ws_zombie,callback=none}"], n,
            "{at}"
        );
        assert_eq!(
            got["airflow_deadline_alerts_pending{dag_id=ws_zombie}"], 0.0,
            "{at}"
        );
        assert!(
            !got.contains_key("airflow_deadline_alert_next_timestamp_seconds{dag_id=ws_zombie}"),
            "{at}"
        );
    })
    .await;
}
