//! Backlog, missed schedules, pools, zombie candidates and SLA misses.

use std::collections::BTreeMap;

use crate::harness::{Fx, assert_near, each, family, num, settings, text};
use windsock::metrics::now_unix;

/// Queued and scheduled task instances per state, pool and queue, and the
/// oldest wait: `queued_dttm` for queued ones, `scheduled_dttm` (3.x) or
/// `updated_at` (2.x) for scheduled ones. The fixture's starved pool holds
/// three scheduled tasks behind the zombie's `hang`.
#[tokio::test]
async fn task_backlog() {
    each(&settings(), async |fx: &Fx| {
        let scheduled_at = if fx.v3() {
            "scheduled_dttm"
        } else {
            "updated_at"
        };
        let rows = fx
            .rows(&format!(
                "SELECT state, pool, COALESCE(queue, ''), {q}, {s} FROM task_instance \
                 WHERE state IN ('queued', 'scheduled')",
                q = fx.epoch("queued_dttm"),
                s = fx.epoch(scheduled_at)
            ))
            .await;
        let mut want: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for r in &rows.rows {
            let state = text(&r[0]);
            let since = if state == "queued" {
                num(&r[3])
            } else {
                num(&r[4])
            };
            let key = format!("state={state},pool={},queue={}", text(&r[1]), text(&r[2]));
            let e = want.entry(key).or_insert((0.0, f64::MAX));
            e.0 += 1.0;
            e.1 = e.1.min(since.unwrap_or(f64::MAX));
        }
        let got = fx.run("task_backlog").await;
        let at = fx.at();
        assert_eq!(
            family(&got, "airflow_task_backlog").len(),
            want.len(),
            "{at}"
        );
        for (k, (n, oldest)) in &want {
            assert_eq!(got[&format!("airflow_task_backlog{{{k}}}")], *n, "{at} {k}");
            assert_near(
                &got,
                &format!("airflow_task_backlog_oldest_age_seconds{{{k}}}"),
                *oldest,
                1e-3,
                &at,
            );
        }
        let pool = fx.facts["starved_pool"]["pool"].as_str().unwrap();
        let waiting: f64 = want
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("state=scheduled,pool={pool},")))
            .map(|(_, v)| v.0)
            .sum();
        assert_eq!(waiting, 3.0, "{at}: the starved pool's waiting tasks");
    })
    .await;
}

/// Pool size, slots held per state and free slots as Airflow's
/// `Pool.slots_stats` computes them: size minus running and queued (and
/// deferred when the pool counts deferred tasks); unlimited pools have no
/// free value. The starved pool has none free.
#[tokio::test]
async fn pool_slots() {
    each(&settings(), async |fx: &Fx| {
        let pools = fx
            .rows("SELECT pool, slots, include_deferred FROM slot_pool")
            .await;
        let used = fx
            .rows(
                "SELECT pool, state, pool_slots FROM task_instance \
                   WHERE state IN ('running', 'queued', 'scheduled', 'deferred')",
            )
            .await;
        let got = fx.run("pool_slots").await;
        let at = fx.at();
        assert_eq!(
            family(&got, "airflow_pool_capacity_slots").len(),
            pools.rows.len(),
            "{at}"
        );
        for p in &pools.rows {
            let (name, slots) = (text(&p[0]), num(&p[1]).unwrap());
            let held = |state: &str| -> f64 {
                used.rows
                    .iter()
                    .filter(|u| text(&u[0]) == name && text(&u[1]) == state)
                    .map(|u| num(&u[2]).unwrap())
                    .sum()
            };
            assert_eq!(
                got[&format!("airflow_pool_capacity_slots{{pool={name}}}")],
                slots,
                "{at}"
            );
            for s in ["running", "queued", "scheduled", "deferred"] {
                assert_eq!(
                    got[&format!("airflow_pool_task_slots{{pool={name},state={s}}}")],
                    held(s),
                    "{at} {name} {s}"
                );
            }
            let deferred = if num(&p[2]).unwrap_or(0.0) != 0.0 {
                held("deferred")
            } else {
                0.0
            };
            let free = got
                .get(&format!("airflow_pool_free_slots{{pool={name}}}"))
                .copied();
            if slots < 0.0 {
                assert_eq!(free, None, "{at} {name}");
            } else {
                assert_eq!(
                    free,
                    Some(slots - held("running") - held("queued") - deferred),
                    "{at} {name}"
                );
            }
        }
        let starved = fx.facts["starved_pool"]["pool"].as_str().unwrap();
        assert_eq!(
            got[&format!("airflow_pool_free_slots{{pool={starved}}}")],
            0.0,
            "{at}"
        );
    })
    .await;
}

/// Zombie candidates by the rule of the version's scheduler: on 3.x a
/// running task whose own heartbeat is older than the threshold, on 2.x a
/// running task whose LocalTaskJob is not running or stopped heartbeating.
/// The fixture's `hang` was killed with its scheduler.
#[tokio::test]
async fn zombie_candidates() {
    // A threshold of a second: every heartbeat of the fixture is older,
    // however fresh the fixture.
    let mut s = settings();
    s.thresholds.zombie_heartbeat_age = std::time::Duration::from_secs(1);
    each(&s, async |fx: &Fx| {
        let limit = now_unix() - 1.0;
        let rows = if fx.v3() {
            fx.rows(&format!(
                "SELECT dag_id, task_id, {hb}, state FROM task_instance \
                 WHERE state IN ('running', 'restarting')",
                hb = fx.epoch("last_heartbeat_at")
            ))
            .await
        } else {
            fx.rows(&format!(
                "SELECT t.dag_id, t.task_id, {hb}, j.state FROM task_instance t \
                 JOIN job j ON j.id = t.job_id \
                 WHERE t.state = 'running' AND j.job_type = 'LocalTaskJob'",
                hb = fx.epoch("j.latest_heartbeat")
            ))
            .await
        };
        let mut want: BTreeMap<String, (f64, f64)> = BTreeMap::new();
        for r in &rows.rows {
            let hb = num(&r[2]);
            let stale = hb.is_some_and(|h| h < limit) || (!fx.v3() && text(&r[3]) != "running");
            if stale {
                let e = want
                    .entry(format!("dag_id={},task_id={}", text(&r[0]), text(&r[1])))
                    .or_insert((0.0, f64::MAX));
                e.0 += 1.0;
                e.1 = e.1.min(hb.unwrap_or(f64::MAX));
            }
        }
        let got = fx.run("zombie_tasks").await;
        let at = fx.at();
        assert_eq!(
            family(&got, "airflow_zombie_task_candidates").len(),
            want.len(),
            "{at}"
        );
        for (k, (n, hb)) in &want {
            assert_eq!(
                got[&format!("airflow_zombie_task_candidates{{{k}}}")],
                *n,
                "{at}"
            );
            assert_near(
                &got,
                &format!("airflow_zombie_task_heartbeat_age_seconds{{{k}}}"),
                *hb,
                1e-3,
                &at,
            );
        }
        let z = &fx.facts["zombie"];
        let k = format!(
            "airflow_zombie_task_candidates{{dag_id={},task_id={}}}",
            z["dag_id"].as_str().unwrap(),
            z["task_id"].as_str().unwrap()
        );
        assert_eq!(got.get(&k), Some(&1.0), "{at}");
    })
    .await;
}

/// Overdue schedules and DAGs held at max_active_runs: the fixture's
/// ws_zombie has its one allowed run running, so Airflow left its
/// next_dagrun_create_after NULL; it is overdue from its next interval's
/// end, and blocked.
#[tokio::test]
async fn missed_schedules_see_max_active_runs() {
    each(&settings(), async |fx: &Fx| {
        let active = if fx.v3() {
            format!("(is_stale = {} OR is_stale IS NULL)", fx.bool(false))
        } else {
            format!("is_active = {}", fx.bool(true))
        };
        let rows = fx
            .rows(&format!(
                "SELECT dag_id, {c}, {e} FROM dag WHERE {active} AND is_paused = {f}",
                c = fx.epoch("next_dagrun_create_after"),
                e = fx.epoch("next_dagrun_data_interval_end"),
                f = fx.bool(false)
            ))
            .await;
        let now = now_unix();
        let got = fx.run("missed_schedules").await;
        let at = fx.at();
        let (mut overdue, mut blocked) = (0, 0);
        for r in &rows.rows {
            let dag = text(&r[0]);
            let (create_after, interval_end) = (num(&r[1]), num(&r[2]));
            let is_blocked = create_after.is_none() && interval_end.is_some();
            let due = create_after.or(interval_end);
            let key = |m: &str| format!("{m}{{dag_id={dag}}}");
            match due {
                Some(d) if d < now - 60.0 => {
                    overdue += 1;
                    assert_near(
                        &got,
                        &key("airflow_dag_schedule_overdue_seconds"),
                        d,
                        1e-3,
                        &at,
                    );
                }
                _ => assert!(
                    !got.contains_key(&key("airflow_dag_schedule_overdue_seconds")),
                    "{at} {dag}"
                ),
            }
            if is_blocked {
                blocked += 1;
                assert_eq!(
                    got.get(&key("airflow_dag_max_active_runs_blocked")),
                    Some(&1.0),
                    "{at} {dag}"
                );
            }
        }
        assert_eq!(
            family(&got, "airflow_dag_schedule_overdue_seconds").len(),
            overdue,
            "{at}"
        );
        assert_eq!(
            family(&got, "airflow_dag_max_active_runs_blocked").len(),
            blocked,
            "{at}"
        );
        let dag = fx.facts["blocked_dag"]["dag_id"].as_str().unwrap();
        assert_eq!(
            got.get(&format!(
                "airflow_dag_max_active_runs_blocked{{dag_id={dag}}}"
            )),
            Some(&1.0),
            "{at}"
        );
        assert!(
            got.contains_key(&format!(
                "airflow_dag_schedule_overdue_seconds{{dag_id={dag}}}"
            )),
            "{at}"
        );
    })
    .await;
}

/// SLA misses of Airflow 2 within the window, per task, with the latest
/// time; Airflow 3 has no SLAs (skipped there). Rows are placed here on the
/// real 2.10 data: one inside the window, one outside, and one with a NULL
/// timestamp (never counted).
#[tokio::test]
async fn sla_misses_within_the_window() {
    let mut s = settings();
    s.diagnostics.window = std::time::Duration::from_secs(86_400);
    each(&s, async |fx: &Fx| {
        if fx.v3() {
            return;
        }
        fx.db
            .exec_script(&format!(
                "INSERT INTO sla_miss (task_id, dag_id, execution_date, email_sent, timestamp, notification_sent)
                 VALUES ('t', 'ws_sla_test', {a}, {f}, {a}, {f}),
                        ('t', 'ws_sla_test', {b}, {f}, {b}, {f}),
                        ('t', 'ws_sla_test', {c}, {f}, NULL, {f})",
                a = fx.ago(60),
                b = fx.ago(3 * 86_400),
                c = fx.ago(120),
                f = fx.bool(false)
            ))
            .await;
        let latest = fx
            .rows(&format!("SELECT {} FROM sla_miss WHERE dag_id = 'ws_sla_test' AND timestamp IS NOT NULL ORDER BY timestamp DESC", fx.epoch("timestamp")))
            .await
            .rows[0][0]
            .as_f64()
            .unwrap();
        let got = fx.run("sla_misses").await;
        let at = fx.at();
        assert_eq!(got["airflow_sla_miss_events{dag_id=ws_sla_test,task_id=t}"], 1.0, "{at}");
        assert_near(&got, "airflow_sla_miss_latest_timestamp_seconds{dag_id=ws_sla_test,task_id=t}", latest, 1e-3, &at);
    })
    .await;
}
