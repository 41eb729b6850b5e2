//! `run_history` and the in-flight diagnostics of runs and tasks, against
//! the truth of the dag_run, task_instance and failure tables.

use std::collections::{BTreeMap, HashMap};

use crate::harness::{Fx, Samples, assert_near, each, family, num, pct, settings, text};
use windsock::config::DeadlineSettings;
use windsock::metrics::now_unix;

/// A run as the truth side reads it.
#[derive(Debug, Clone)]
struct Run {
    dag: String,
    run_id: String,
    state: String,
    scheduled: bool,
    cleared: bool,
    queued: Option<f64>,
    start: Option<f64>,
    end: Option<f64>,
    interval_end: Option<f64>,
}

async fn runs(fx: &Fx) -> Vec<Run> {
    let cleared = if fx.schema.has_column("dag_run", "clear_number") {
        "clear_number"
    } else {
        "0"
    };
    let rows = fx
        .rows(&format!(
            "SELECT id, dag_id, run_id, state, run_type, {cleared}, {q}, {s}, {e}, {ie} \
             FROM dag_run ORDER BY id",
            q = fx.epoch("queued_at"),
            s = fx.epoch("start_date"),
            e = fx.epoch("end_date"),
            ie = fx.epoch("data_interval_end"),
        ))
        .await;
    rows.rows
        .iter()
        .map(|r| Run {
            dag: text(&r[1]),
            run_id: text(&r[2]),
            state: text(&r[3]),
            scheduled: text(&r[4]) == "scheduled",
            cleared: num(&r[5]).unwrap_or(0.0) > 0.0,
            queued: num(&r[6]),
            start: num(&r[7]),
            end: num(&r[8]),
            interval_end: num(&r[9]),
        })
        .collect()
}

fn finished(r: &Run) -> bool {
    matches!(r.state.as_str(), "success" | "failed")
}

/// Success ratio, outcomes, run durations and the latest success per DAG
/// (queued and running runs are not finished and not counted).
#[tokio::test]
async fn run_outcomes_durations_and_last_success() {
    each(&settings(), async |fx: &Fx| {
        let all = runs(fx).await;
        let got = fx.run("run_history").await;
        let at = fx.at();
        let mut by_dag: BTreeMap<&str, Vec<&Run>> = BTreeMap::new();
        for r in all.iter().filter(|r| finished(r)) {
            by_dag.entry(&r.dag).or_default().push(r);
        }
        for (dag, rs) in &by_dag {
            let ok = rs.iter().filter(|r| r.state == "success").count() as f64;
            let failed = rs.len() as f64 - ok;
            assert_near(
                &got,
                &format!("airflow_dag_run_success_ratio{{dag_id={dag}}}"),
                ok / (ok + failed),
                1e-9,
                &at,
            );
            assert_near(
                &got,
                &format!("airflow_dag_run_outcomes{{dag_id={dag},state=success}}"),
                ok,
                0.0,
                &at,
            );
            assert_near(
                &got,
                &format!("airflow_dag_run_outcomes{{dag_id={dag},state=failed}}"),
                failed,
                0.0,
                &at,
            );
            let d: Vec<f64> = rs
                .iter()
                .filter_map(|r| Some((r.end? - r.start?).max(0.0)))
                .collect();
            let mean = d.iter().sum::<f64>() / d.len() as f64;
            for (stat, want) in [
                ("p50", pct(&d, 0.5)),
                ("p95", pct(&d, 0.95)),
                ("max", pct(&d, 1.0)),
                ("mean", mean),
            ] {
                let key =
                    format!("airflow_dag_run_duration_window_seconds{{dag_id={dag},stat={stat}}}");
                assert_near(&got, &key, want, 1e-3, &at);
            }
            if let Some(last) = rs
                .iter()
                .filter(|r| r.state == "success")
                .filter_map(|r| r.end)
                .reduce(f64::max)
            {
                assert_near(
                    &got,
                    &format!("airflow_dag_last_success_timestamp_seconds{{dag_id={dag}}}"),
                    last,
                    1e-3,
                    &at,
                );
            }
        }
        // DAGs whose only runs are still running (ws_zombie, ws_deferred)
        // have no ratio and no outcomes.
        assert_eq!(
            family(&got, "airflow_dag_run_success_ratio").len(),
            by_dag.len(),
            "{at}"
        );
        assert_eq!(
            family(&got, "airflow_dag_run_outcomes").len(),
            2 * by_dag.len(),
            "{at}"
        );
        assert!(
            !got.contains_key("airflow_dag_run_success_ratio{dag_id=ws_zombie}"),
            "{at}"
        );
    })
    .await;
}

/// Scheduling delay from the end of the data interval to the start, over
/// scheduled runs that were never cleared: a cleared run's start is the
/// re-run's (Airflow skips such runs for `dagrun.schedule_delay` too). The
/// fixture's ws_success scheduled run was cleared and re-run.
#[tokio::test]
async fn schedule_delay_skips_cleared_runs() {
    each(&settings(), async |fx: &Fx| {
        let all = runs(fx).await;
        let got = fx.run("run_history").await;
        let at = fx.at();
        let cleared = &fx.facts["cleared"];
        let cleared_run = all
            .iter()
            .find(|r| {
                r.dag == cleared["dag_id"].as_str().unwrap()
                    && r.run_id == cleared["run_id"].as_str().unwrap()
            })
            .unwrap();
        assert!(
            cleared_run.cleared && cleared_run.scheduled,
            "{at}: {cleared_run:?}"
        );
        let mut delays: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
        for r in all.iter().filter(|r| r.scheduled && !r.cleared) {
            if let (Some(ie), Some(s)) = (r.interval_end, r.start.or(r.queued)) {
                delays.entry(&r.dag).or_default().push((s - ie).max(0.0));
            }
        }
        let exported = family(&got, "airflow_dag_run_schedule_delay_window_seconds");
        assert_eq!(exported.len(), 3 * delays.len(), "{at}: {exported:?}");
        for (dag, d) in &delays {
            for (stat, p) in [("p50", 0.5), ("p95", 0.95), ("max", 1.0)] {
                let key = format!(
                    "airflow_dag_run_schedule_delay_window_seconds{{dag_id={dag},stat={stat}}}"
                );
                assert_near(&got, &key, pct(d, p), 1e-3, &at);
            }
        }
        // ws_success has no scheduled run left that was not cleared.
        assert!(!delays.contains_key(cleared_run.dag.as_str()), "{at}");
    })
    .await;
}

/// One task instance of a finished run, with its failed tries and
/// retries counted from every source the version has. Earlier tries that
/// failed are task_instance_history rows (2.10+); task_fail (2.7-2.10)
/// holds failed tries too, the final one included, and on 2.10 not always
/// the same ones: the larger count wins. Retries are the tries that
/// followed a failed one.
struct Ti {
    dag: String,
    task: String,
    state: String,
    failed: f64,
    retries: f64,
}

async fn failures(fx: &Fx) -> Vec<Ti> {
    let mut per_ti: HashMap<(String, String, String, i64), (u32, u32)> = HashMap::new();
    let key = |r: &[windsock::db::Cell]| {
        (
            text(&r[0]),
            text(&r[1]),
            text(&r[2]),
            num(&r[3]).unwrap() as i64,
        )
    };
    if fx.schema.has_table("task_instance_history") {
        let rows = fx
            .rows(
                "SELECT dag_id, run_id, task_id, map_index FROM task_instance_history \
                   WHERE state IN ('failed', 'up_for_retry')",
            )
            .await;
        for r in &rows.rows {
            per_ti.entry(key(r)).or_default().0 += 1;
        }
    }
    if fx.schema.has_table("task_fail") {
        let rows = fx
            .rows("SELECT dag_id, run_id, task_id, map_index FROM task_fail")
            .await;
        for r in &rows.rows {
            per_ti.entry(key(r)).or_default().1 += 1;
        }
    }
    let tis = fx
        .rows(
            "SELECT t.dag_id, t.run_id, t.task_id, t.map_index, t.state FROM task_instance t \
               JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id \
               WHERE r.state IN ('success', 'failed')",
        )
        .await;
    tis.rows
        .iter()
        .map(|r| {
            let (history, task_fail) = per_ti.get(&key(r)).copied().unwrap_or_default();
            let final_failed = u32::from(text(&r[4]) == "failed");
            let failed = (history + final_failed).max(task_fail);
            Ti {
                dag: text(&r[0]),
                task: text(&r[2]),
                state: text(&r[4]),
                failed: f64::from(failed),
                retries: f64::from(failed - final_failed),
            }
        })
        .collect()
}

/// Failed tries and retries per task: map indexes summed (not multiplied),
/// clears not counted as retries, 2.10's two failure tables reconciled;
/// and per DAG the share of retried task instances that finally succeeded.
#[tokio::test]
async fn failed_tries_and_retries() {
    each(&settings(), async |fx: &Fx| {
        let tis = failures(fx).await;
        let got = fx.run("run_history").await;
        let at = fx.at();
        let mut per_task: BTreeMap<(&str, &str), (f64, f64)> = BTreeMap::new();
        let mut retried: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
        for t in &tis {
            let e = per_task.entry((&t.dag, &t.task)).or_default();
            e.0 += t.failed;
            e.1 += t.retries;
            if t.retries > 0.0 {
                let r = retried.entry(&t.dag).or_default();
                r.0 += f64::from(u8::from(t.state == "success"));
                r.1 += 1.0;
            }
        }
        for ((dag, task), (failed, retries)) in &per_task {
            let l = format!("{{dag_id={dag},task_id={task}}}");
            assert_near(
                &got,
                &format!("airflow_task_failed_tries_window{l}"),
                *failed,
                0.0,
                &at,
            );
            assert_near(
                &got,
                &format!("airflow_task_retries_window{l}"),
                *retries,
                0.0,
                &at,
            );
        }
        assert_eq!(
            family(&got, "airflow_task_retry_success_ratio").len(),
            retried.len(),
            "{at}"
        );
        for (dag, (ok, n)) in &retried {
            assert_near(
                &got,
                &format!("airflow_task_retry_success_ratio{{dag_id={dag}}}"),
                ok / n,
                1e-9,
                &at,
            );
        }
        // The designs the generator checked.
        let m = &fx.facts["mapped"];
        let l = format!(
            "{{dag_id={},task_id={}}}",
            m["dag_id"].as_str().unwrap(),
            m["task_id"].as_str().unwrap()
        );
        assert_eq!(
            got[&format!("airflow_task_failed_tries_window{l}")],
            m["failed_tries_total"].as_f64().unwrap(),
            "{at}"
        );
        // Map indexes 0-2 retried once each, index 4 once before failing.
        assert_eq!(got[&format!("airflow_task_retries_window{l}")], 4.0, "{at}");
        assert_near(
            &got,
            "airflow_task_retry_success_ratio{dag_id=ws_mapped}",
            0.75,
            1e-9,
            &at,
        );
        let c = &fx.facts["cleared"];
        let l = format!(
            "{{dag_id={},task_id={}}}",
            c["dag_id"].as_str().unwrap(),
            c["task_id"].as_str().unwrap()
        );
        assert_eq!(
            got[&format!("airflow_task_retries_window{l}")],
            0.0,
            "{at}: a clear is not a retry"
        );
        assert_eq!(
            got["airflow_task_retries_window{dag_id=ws_retry,task_id=flaky}"], 1.0,
            "{at}"
        );
        assert_eq!(
            got["airflow_task_failed_tries_window{dag_id=ws_retry,task_id=flaky}"], 1.0,
            "{at}"
        );
    })
    .await;
}

/// Peak concurrency over the window, from the start and end of every run
/// and task instance, those of runs still running included.
#[tokio::test]
async fn concurrency_peak_includes_running_runs() {
    each(&settings(), async |fx: &Fx| {
        let now = now_unix();
        // Task instances of finished runs with both ends; of running runs,
        // open ones end now.
        let tis = fx
            .rows(&format!(
                "SELECT {s}, {e}, r.state FROM task_instance t \
                 JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id \
                 WHERE t.start_date IS NOT NULL",
                s = fx.epoch("t.start_date"),
                e = fx.epoch("t.end_date")
            ))
            .await;
        let iv: Vec<(f64, f64)> = tis
            .rows
            .iter()
            .filter_map(|r| match (num(&r[1]), text(&r[2]).as_str()) {
                (Some(e), _) => Some((num(&r[0])?, e)),
                (None, "running") => Some((num(&r[0])?, now)),
                _ => None,
            })
            .collect();
        let runs: Vec<(f64, f64)> = runs(fx)
            .await
            .iter()
            .filter_map(|r| Some((r.start?, r.end.unwrap_or(now))))
            .collect();
        let got = fx.run("run_history").await;
        let at = fx.at();
        assert_near(
            &got,
            "airflow_concurrency_peak{kind=task_instances,period=window}",
            peak(&iv),
            0.0,
            &at,
        );
        assert_near(
            &got,
            "airflow_concurrency_peak{kind=dag_runs,period=window}",
            peak(&runs),
            0.0,
            &at,
        );
        // The zombie's `hang` runs in a run that is still running.
        assert!(peak(&iv) >= 1.0, "{at}");
    })
    .await;
}

/// Peak of overlapping intervals; touching ones do not overlap.
fn peak(iv: &[(f64, f64)]) -> f64 {
    let mut ev: Vec<(f64, i32)> = iv.iter().flat_map(|(s, e)| [(*s, 1), (*e, -1)]).collect();
    ev.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let (mut cur, mut max) = (0, 0);
    for (_, d) in ev {
        cur += d;
        max = max.max(cur);
    }
    f64::from(max)
}

/// Queue wait per pool and queue, and durations of successful tries per
/// task (end minus start: Airflow 3 writes wrong `duration` values on
/// SQLite, ws_long's 15 s sleep as about 30 s), over the task instances of
/// finished runs.
#[tokio::test]
async fn queue_wait_and_task_durations() {
    each(&settings(), async |fx: &Fx| {
        let rows = fx
            .rows(&format!(
                "SELECT t.dag_id, t.task_id, t.state, t.pool, COALESCE(t.queue, ''), {s}, {e}, {q}, t.duration \
                 FROM task_instance t JOIN dag_run r ON r.dag_id = t.dag_id AND r.run_id = t.run_id \
                 WHERE r.state IN ('success', 'failed')",
                s = fx.epoch("t.start_date"), e = fx.epoch("t.end_date"), q = fx.epoch("t.queued_dttm")))
            .await;
        let mut waits: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        let mut durations: BTreeMap<(String, String), Vec<f64>> = BTreeMap::new();
        for r in &rows.rows {
            if let (Some(s), Some(q)) = (num(&r[5]), num(&r[7])) && s >= q {
                waits.entry((text(&r[3]), text(&r[4]))).or_default().push(s - q);
            }
            if text(&r[2]) == "success"
                && let Some(d) = (|| Some((num(&r[6])? - num(&r[5])?).max(0.0)))().or(num(&r[8]))
            {
                durations.entry((text(&r[0]), text(&r[1]))).or_default().push(d);
            }
        }
        let got = fx.run("run_history").await;
        let at = fx.at();
        assert!(!waits.is_empty(), "{at}");
        for ((pool, queue), w) in &waits {
            for (stat, p) in [("p50", 0.5), ("p95", 0.95), ("max", 1.0)] {
                let key = format!("airflow_task_queue_wait_window_seconds{{pool={pool},queue={queue},stat={stat}}}");
                assert_near(&got, &key, pct(w, p), 1e-3, &at);
            }
        }
        let sleep = &durations[&("ws_long".to_owned(), "sleep_15".to_owned())];
        assert!(sleep.iter().all(|d| (14.0..25.0).contains(d)), "{at}: {sleep:?}");
        for ((dag, task), d) in &durations {
            let n = d.len() as f64;
            let mean = d.iter().sum::<f64>() / n;
            let sd = (d.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
            for (stat, want) in [("p50", pct(d, 0.5)), ("max", pct(d, 1.0)), ("stddev", sd)] {
                let key = format!("airflow_task_duration_window_seconds{{dag_id={dag},task_id={task},stat={stat}}}");
                assert_near(&got, &key, want, 1e-3, &at);
            }
        }
    })
    .await;
}

/// Runs and tasks in flight: counts by state and the oldest start per DAG
/// and per task.
#[tokio::test]
async fn runs_and_tasks_in_flight() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let got = fx.run("dag_run_states").await;
        let states = fx.rows("SELECT state FROM dag_run").await;
        for s in ["queued", "running"] {
            let n = states.rows.iter().filter(|r| text(&r[0]) == s).count() as f64;
            assert_eq!(got[&format!("airflow_dag_runs{{state={s}}}")], n, "{at}");
        }
        let got = fx.run("task_instance_states").await;
        let states = fx.rows("SELECT state FROM task_instance").await;
        for s in ["scheduled", "queued", "running", "deferred", "up_for_retry", "up_for_reschedule", "restarting"] {
            let n = states.rows.iter().filter(|r| text(&r[0]) == s).count() as f64;
            assert_eq!(got[&format!("airflow_task_instances{{state={s}}}")], n, "{at} {s}");
        }
        // The fixture: the zombie's hang running, three tasks scheduled
        // behind it, the sensor deferred.
        assert!(got["airflow_task_instances{state=running}"] >= 1.0, "{at}");
        assert_eq!(got["airflow_task_instances{state=deferred}"], 1.0, "{at}");
        let started = fx
            .rows(&format!("SELECT dag_id, {s} FROM dag_run WHERE state = 'running' AND start_date IS NOT NULL", s = fx.epoch("start_date")))
            .await;
        let got = fx.run("running_runs").await;
        check_oldest(&got, "airflow_dag_run_running_age_seconds", &started, 1, &at);
        let started = fx
            .rows(&format!("SELECT dag_id, task_id, {s} FROM task_instance WHERE state = 'running' AND start_date IS NOT NULL", s = fx.epoch("start_date")))
            .await;
        let got = fx.run("running_tasks").await;
        check_oldest(&got, "airflow_task_running_age_seconds", &started, 2, &at);
    })
    .await;
}

/// The oldest start per key (the first `keys` columns) against a
/// family of start timestamps (ages are computed at scrape time).
fn check_oldest(got: &Samples, metric: &str, rows: &windsock::db::Rows, keys: usize, at: &str) {
    let names = ["dag_id", "task_id"];
    let mut want: BTreeMap<String, f64> = BTreeMap::new();
    for r in &rows.rows {
        let k: Vec<String> = (0..keys)
            .map(|i| format!("{}={}", names[i], text(&r[i])))
            .collect();
        let v = num(&r[keys]).unwrap();
        let e = want.entry(k.join(",")).or_insert(v);
        *e = e.min(v);
    }
    assert_eq!(family(got, metric).len(), want.len(), "{at} {metric}");
    for (k, v) in want {
        assert_near(got, &format!("{metric}{{{k}}}"), v, 1e-3, at);
    }
}

/// windsock deadlines on real runs of unpaused DAGs (paused ones have
/// none): `succeed_by` needs a success of the deadline's day (today's
/// midnight here: the fixture's manual runs have no later data interval,
/// so it is missed), and `max_age_since_success` of a DAG that never
/// succeeded counts from its oldest run and grows (it no longer sticks at
/// 1 s).
#[tokio::test]
async fn deadlines_on_real_runs() {
    let mut s = settings();
    s.deadlines = vec![
        DeadlineSettings {
            name: "daily".into(),
            dag_id: "ws_long".into(),
            succeed_by: Some("00:00".into()),
            max_run_duration: None,
            max_age_since_success: None,
        },
        DeadlineSettings {
            name: "fresh".into(),
            dag_id: "ws_*".into(),
            succeed_by: None,
            max_run_duration: None,
            max_age_since_success: Some(std::time::Duration::from_secs(3600)),
        },
    ];
    each(&s, async |fx: &Fx| {
        let all = runs(fx).await;
        let got = fx.run("run_history").await;
        let now = now_unix();
        let at = fx.at();
        let success = |dag: &'static str| {
            all.iter()
                .filter(move |r| r.dag == dag && r.state == "success")
        };
        // Due at today's 00:00 UTC; met by a success whose data interval
        // (or, without one, whose run) ended today.
        let due = (now / 86_400.0).floor() * 86_400.0;
        let met = success("ws_long").any(|r| r.interval_end.or(r.end).is_some_and(|t| t >= due));
        let key = |m: &str, dag: &str, dl: &str| format!("{m}{{dag_id={dag},deadline={dl}}}");
        assert_eq!(
            got[&key("airflow_deadline_missed", "ws_long", "daily")],
            f64::from(u8::from(!met)),
            "{at}"
        );
        let late = if met { 0.0 } else { now - due };
        assert_near(
            &got,
            &key("airflow_deadline_lateness_seconds", "ws_long", "daily"),
            late,
            5.0,
            &at,
        );
        let ok_end = success("ws_long")
            .filter_map(|r| r.end)
            .reduce(f64::max)
            .unwrap();
        let late = (now - ok_end - 3600.0).max(0.0);
        assert_near(
            &got,
            &key("airflow_deadline_lateness_seconds", "ws_long", "fresh"),
            late,
            5.0,
            &at,
        );
        // ws_fail never succeeded: late since its (only) run, however
        // recent, growing from there.
        let time = |r: &Run| r.end.or(r.start).or(r.queued);
        let oldest = all
            .iter()
            .filter(|r| r.dag == "ws_fail")
            .filter_map(time)
            .reduce(f64::min)
            .unwrap();
        let late = (now - oldest - 3600.0).max(0.0);
        assert_near(
            &got,
            &key("airflow_deadline_lateness_seconds", "ws_fail", "fresh"),
            late,
            5.0,
            &at,
        );
        // Paused DAGs (ws_success after its scheduled run) have none.
        assert!(
            !got.contains_key(&key("airflow_deadline_missed", "ws_success", "fresh")),
            "{at}"
        );
    })
    .await;
}

/// Completion and creation counters on real data, across cycles: a new run
/// counts as created and completed; an old run whose task is cleared and
/// re-run is not "created" again, completes once more, and only the task
/// instance that ran again is counted, not every task of the run.
#[tokio::test]
async fn clearing_a_task_counts_only_what_ran_again() {
    each(&settings(), async |fx: &Fx| {
        let at = fx.at();
        let _ = fx.run("run_history").await; // loads the window; counts nothing
        let max_id = fx.rows("SELECT MAX(id) FROM dag_run").await.rows[0][0]
            .as_f64()
            .unwrap() as i64;
        let new_id = max_id + 1000;
        let now = fx.ago(0);
        let (date_cols, date_vals) = if fx.v3() {
            ("run_after, span_status", format!("{now}, 'not_started'"))
        } else {
            ("execution_date", now.clone())
        };
        fx.db
            .exec_script(&format!(
                "INSERT INTO dag_run (id, dag_id, run_id, run_type, state, {date_cols}, queued_at,
               start_date, end_date, clear_number)
             VALUES ({new_id}, 'ws_long', 'windsock_new', 'manual', 'success', {date_vals},
               {now}, {now}, {now}, 0)"
            ))
            .await;
        let got = fx.run("run_history").await;
        assert_eq!(
            got.get("airflow_dag_runs_created{dag_id=ws_long}"),
            Some(&1.0),
            "{at}"
        );
        assert_eq!(
            got.get("airflow_dag_run_completions{dag_id=ws_long,state=success}"),
            Some(&1.0),
            "{at}"
        );

        // Clear ws_pool.pooled_1 of the (old) ws_pool run, as Airflow does.
        let cleared = if fx.schema.has_column("dag_run", "clear_number") {
            ", clear_number = clear_number + 1"
        } else {
            ""
        };
        fx.db
            .exec_script(&format!(
                "UPDATE task_instance SET state = NULL, try_number = try_number + 1
               WHERE dag_id = 'ws_pool' AND task_id = 'pooled_1';
             UPDATE dag_run SET state = 'queued', start_date = NULL, end_date = NULL{cleared}
               WHERE dag_id = 'ws_pool'"
            ))
            .await;
        let got = fx.run("run_history").await;
        assert_eq!(
            got.get("airflow_dag_runs_created{dag_id=ws_pool}"),
            None,
            "{at}: an old run is not new"
        );
        fx.db
            .exec_script(&format!(
                "UPDATE task_instance SET state = 'success', start_date = {now}, end_date = {now}
               WHERE dag_id = 'ws_pool' AND task_id = 'pooled_1';
             UPDATE dag_run SET state = 'success', start_date = {now}, end_date = {now}
               WHERE dag_id = 'ws_pool'"
            ))
            .await;
        let got = fx.run("run_history").await;
        assert_eq!(
            got.get("airflow_dag_run_completions{dag_id=ws_pool,state=success}"),
            Some(&1.0),
            "{at}"
        );
        assert_eq!(
            got.get("airflow_task_instance_completions{dag_id=ws_pool,state=success}"),
            Some(&1.0),
            "{at}: only pooled_1 ran again"
        );
        assert_eq!(
            got.get("airflow_dag_runs_created{dag_id=ws_pool}"),
            None,
            "{at}"
        );
    })
    .await;
}
