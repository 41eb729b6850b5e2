//! `run_history` on hand-placed rows, on PostgreSQL, MariaDB and SQLite,
//! with the Airflow 2.10 and 3.1 schemas: exact success ratios (running and
//! queued runs excluded), concurrency from timestamps, retries from the
//! per-try history, counters that count a completion once, and deadlines
//! that fire and clear.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::{TestDb, fast_settings};
use windsock::config::{DeadlineSettings, Settings};
use windsock::db::Dialect;
use windsock::diagnostics;
use windsock::metrics::{Store, now_unix};
use windsock::runner::{RunResult, TargetRunner};

fn lit(d: Dialect, unix: f64) -> String {
    let t = windsock::demo::ts(unix);
    match d {
        Dialect::Postgres => format!("'{t}+00'"),
        _ => format!("'{t}'"),
    }
}

struct Scenario {
    db: TestDb,
    v3: bool,
    now: f64,
}

impl Scenario {
    async fn new(dialect: Dialect, version: &str) -> Scenario {
        let db = TestDb::with_schema(dialect, version).await;
        let s = Scenario {
            db,
            v3: version.starts_with('3'),
            now: now_unix(),
        };
        let tf = if dialect == Dialect::Postgres {
            "false"
        } else {
            "0"
        };
        if s.v3 {
            s.db.exec_script(&format!(
                "INSERT INTO dag_bundle (name, active) VALUES ('b', {tf});
                 INSERT INTO dag (dag_id, bundle_name, is_paused, is_stale, max_active_tasks,
                   has_task_concurrency_limits, max_consecutive_failed_dag_runs)
                 VALUES ('d1', 'b', {tf}, {tf}, 16, {tf}, 0)"
            ))
            .await;
        } else {
            s.db.exec_script(&format!(
                "INSERT INTO dag (dag_id, is_paused, is_active, is_subdag, max_active_tasks,
                   has_task_concurrency_limits, max_consecutive_failed_dag_runs)
                 VALUES ('d1', {tf}, {}, {tf}, 16, {tf}, 0)",
                if dialect == Dialect::Postgres {
                    "true"
                } else {
                    "1"
                }
            ))
            .await;
        }
        s
    }

    fn d(&self) -> Dialect {
        self.db.dialect
    }

    /// A run `id` of d1: state, start/end as seconds before now.
    async fn run(&self, id: i64, state: &str, start_ago: f64, end_ago: Option<f64>) {
        let d = self.d();
        let (s, e) = (
            lit(d, self.now - start_ago),
            end_ago.map_or("NULL".to_owned(), |e| lit(d, self.now - e)),
        );
        // A queued run has not started.
        let started = if state == "queued" {
            "NULL".to_owned()
        } else {
            s.clone()
        };
        let date_col = if self.v3 {
            "logical_date, run_after"
        } else {
            "execution_date"
        };
        let date_val = if self.v3 {
            format!("{s}, {s}")
        } else {
            s.clone()
        };
        self.db
            .exec_script(&format!(
                "INSERT INTO dag_run (id, dag_id, run_id, run_type, state, {date_col},
                   queued_at, start_date, end_date, data_interval_start, data_interval_end,
                   clear_number)
                 VALUES ({id}, 'd1', 'r{id}', 'scheduled', '{state}', {date_val},
                   {s}, {started}, {e}, {s}, {s}, 0)"
            ))
            .await;
    }

    async fn set_run(&self, id: i64, state: &str, end_ago: f64) {
        let e = lit(self.d(), self.now - end_ago);
        self.db
            .exec_script(&format!(
                "UPDATE dag_run SET state = '{state}', end_date = {e} WHERE id = {id}"
            ))
            .await;
    }

    /// A task instance of run `run`: (task, state, tries), started
    /// `start_ago` seconds ago, lasting `secs`, after `failed_before`
    /// failed earlier tries.
    async fn ti(
        &self,
        run: i64,
        (task, state, tries): (&str, &str, i64),
        start_ago: f64,
        secs: f64,
        failed_before: i64,
    ) {
        let d = self.d();
        let (s, e) = (
            lit(d, self.now - start_ago),
            lit(d, self.now - start_ago + secs),
        );
        let task_no: i64 = task[1..].parse().unwrap();
        let id = |n: i64| {
            format!(
                "01935f0a-0000-7000-8000-{:012}",
                run * 1000 + n + task_no * 100_000
            )
        };
        let (id_col, id_val) = if self.v3 {
            ("id, ", format!("'{}', ", id(0)))
        } else {
            ("", String::new())
        };
        self.db
            .exec_script(&format!(
                "INSERT INTO task_instance ({id_col}dag_id, task_id, run_id, map_index, state, try_number,
                   max_tries, pool, pool_slots, start_date, end_date, duration, queued_dttm)
                 VALUES ({id_val}'d1', '{task}', 'r{run}', -1, '{state}', {tries}, 1, 'default_pool', 1,
                   {s}, {e}, {secs}, {s})"
            ))
            .await;
        for n in 1..=failed_before {
            let (hid_col, hid_val) = if self.v3 {
                ("task_instance_id, ", format!("'{}', ", id(n)))
            } else {
                ("", String::new())
            };
            self.db
                .exec_script(&format!(
                    "INSERT INTO task_instance_history ({hid_col}dag_id, task_id, run_id, map_index,
                       try_number, state, pool, pool_slots, start_date, end_date)
                     VALUES ({hid_val}'d1', '{task}', 'r{run}', -1, {n}, 'failed', 'default_pool', 1, {s}, {s})"
                ))
                .await;
        }
    }
}

async fn collect(r: &TargetRunner) -> HashMap<String, f64> {
    let schema = r.detect().await.unwrap();
    let p = r
        .plan
        .iter()
        .find(|p| p.diagnostic.meta().name == "run_history")
        .unwrap();
    match r.run_one(p, &schema).await {
        RunResult::Ok(out) => common::sample_map(&out.families),
        other => panic!("{other:?}"),
    }
}

async fn scenario(dialect: Dialect, version: &str) {
    let sc = Scenario::new(dialect, version).await;
    let h = 3600.0;
    sc.run(1, "success", 5.0 * h, Some(4.0 * h)).await;
    sc.run(2, "failed", 4.5 * h, Some(3.5 * h)).await;
    sc.run(3, "running", 0.75 * h, None).await;
    sc.run(4, "queued", 0.1 * h, None).await;
    // Run 1: t1 retried once, then succeeded (transient); t2 plain success.
    sc.ti(1, ("t1", "success", 2), 5.0 * h, 600.0, 1).await;
    sc.ti(1, ("t2", "success", 1), 4.8 * h, 300.0, 0).await;
    // Run 2: t1 failed after a retry; t2, t3, t4 failed: a cascade.
    sc.ti(2, ("t1", "failed", 2), 4.5 * h, 60.0, 1).await;
    for t in ["t2", "t3", "t4"] {
        sc.ti(2, (t, "failed", 1), 4.4 * h, 30.0, 0).await;
    }

    let settings = Settings {
        deadlines: vec![
            DeadlineSettings {
                name: "short_runs".into(),
                dag_id: "d*".into(),
                succeed_by: None,
                max_run_duration: Some(Duration::from_secs(1800)),
                max_age_since_success: None,
            },
            DeadlineSettings {
                name: "fresh".into(),
                dag_id: "d1".into(),
                succeed_by: None,
                max_run_duration: None,
                max_age_since_success: Some(Duration::from_secs(6 * 3600)),
            },
        ],
        ..Settings::default()
    };
    let store = Arc::new(Store::new(["t"]));
    let r = TargetRunner {
        environment: "t".into(),
        db: sc.db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(&settings).unwrap()),
        store,
        settings: settings.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };

    let v = collect(&r).await;
    let at = |k: &str| {
        v.get(k)
            .copied()
            .unwrap_or_else(|| panic!("{dialect}/{version}: no {k} in {v:?}"))
    };
    // Running and queued runs are not failures.
    assert_eq!(at("airflow_dag_run_success_ratio{dag_id=d1}"), 0.5);
    assert_eq!(at("airflow_dag_run_outcomes{dag_id=d1,state=success}"), 1.0);
    assert_eq!(at("airflow_dag_run_outcomes{dag_id=d1,state=failed}"), 1.0);
    // Runs 1 and 2 overlapped for half an hour; run 3 runs alone.
    assert_eq!(
        at("airflow_concurrency_peak{kind=dag_runs,period=window}"),
        2.0
    );
    assert_eq!(at("airflow_concurrency_peak{kind=dag_runs,period=1h}"), 1.0);
    // t1: one earlier failed try in each run plus the final failure of run 2.
    assert_eq!(
        at("airflow_task_failed_tries_window{dag_id=d1,task_id=t1}"),
        3.0
    );
    assert_eq!(at("airflow_task_retries_window{dag_id=d1,task_id=t1}"), 2.0);
    // Of the two task instances that retried, one ended in success.
    assert_eq!(at("airflow_task_retry_success_ratio{dag_id=d1}"), 0.5);
    assert_eq!(
        at("airflow_dag_run_failure_cascades_window{dag_id=d1}"),
        1.0
    );
    assert!(
        (at("airflow_task_duration_window_seconds{dag_id=d1,task_id=t1,stat=p50}") - 600.0).abs()
            < 0.01
    );
    assert!(
        (at("airflow_dag_last_success_timestamp_seconds{dag_id=d1}") - (sc.now - 4.0 * h)).abs()
            < 1.0
    );
    // Run 3 has run 45 minutes: 15 minutes over its 30-minute limit.
    assert_eq!(
        at("airflow_deadline_missed{dag_id=d1,deadline=short_runs}"),
        1.0
    );
    assert!(
        (at("airflow_deadline_lateness_seconds{dag_id=d1,deadline=short_runs}") - 900.0).abs()
            < 30.0
    );
    assert_eq!(at("airflow_deadline_missed{dag_id=d1,deadline=fresh}"), 0.0);
    // Runs that finished before windsock looked are not completions it saw.
    assert!(
        !v.keys()
            .any(|k| k.starts_with("airflow_dag_run_completions")),
        "{v:?}"
    );

    // Audit-log rows written after windsock started are counted once each,
    // including a row whose id is below ones already counted (a transaction
    // that committed late).
    sc.db.exec_script("INSERT INTO log (id, event, dag_id) VALUES (100, 'trigger', 'd1'), (101, 'cli_task_run', 'd1')").await;
    let v = collect(&r).await;
    assert_eq!(
        v.get("airflow_audit_log_events{event=trigger}"),
        Some(&1.0),
        "{v:?}"
    );
    sc.db
        .exec_script("INSERT INTO log (id, event, dag_id) VALUES (90, 'trigger', 'd1')")
        .await;
    // A new run appears.
    sc.run(5, "queued", 0.0, None).await;
    for _ in 0..2 {
        let v = collect(&r).await;
        assert_eq!(
            v.get("airflow_audit_log_events{event=trigger}"),
            Some(&2.0),
            "{v:?}"
        );
        assert_eq!(
            v.get("airflow_audit_log_events{event=cli_task_run}"),
            Some(&1.0)
        );
        assert_eq!(
            v.get("airflow_dag_runs_created{dag_id=d1}"),
            Some(&1.0),
            "{v:?}"
        );
    }

    // Run 3 succeeds: counted once, its task instance too, never again.
    sc.ti(3, ("t1", "success", 1), 0.7 * h, 60.0, 0).await;
    sc.set_run(3, "success", 0.0).await;
    for _ in 0..2 {
        let v = collect(&r).await;
        let at = |k: &str| {
            v.get(k)
                .copied()
                .unwrap_or_else(|| panic!("{dialect}/{version}: no {k}"))
        };
        assert_eq!(
            at("airflow_dag_run_completions{dag_id=d1,state=success}"),
            1.0
        );
        assert_eq!(
            at("airflow_task_instance_completions{dag_id=d1,state=success}"),
            1.0
        );
        assert!((at("airflow_dag_run_success_ratio{dag_id=d1}") - 2.0 / 3.0).abs() < 1e-9);
        // The long run is over: the deadline clears.
        assert_eq!(
            at("airflow_deadline_missed{dag_id=d1,deadline=short_runs}"),
            0.0
        );
        assert_eq!(
            at("airflow_deadline_lateness_seconds{dag_id=d1,deadline=short_runs}"),
            0.0
        );
    }
    r.db.close().await;
}

#[tokio::test]
async fn history_postgres() {
    scenario(Dialect::Postgres, "3.1.8").await;
    scenario(Dialect::Postgres, "2.10.5").await;
}

#[tokio::test]
async fn history_mysql() {
    scenario(Dialect::MySql, "3.1.8").await;
    scenario(Dialect::MySql, "2.10.5").await;
}

#[tokio::test]
async fn history_sqlite() {
    scenario(Dialect::Sqlite, "3.1.8").await;
    scenario(Dialect::Sqlite, "2.10.5").await;
}

/// A quiet installation: the runs re-read in the overlap below the
/// watermark are older than the window. They must not be taken for new
/// runs, created or completed again on every cycle.
#[tokio::test]
async fn runs_older_than_the_window_are_not_counted_again() {
    let sc = Scenario::new(Dialect::Sqlite, "3.1.8").await;
    let h = 3600.0;
    sc.run(1, "success", 5.0 * h, Some(4.0 * h)).await;
    sc.run(2, "failed", 4.5 * h, Some(3.5 * h)).await;
    let settings = Settings {
        diagnostics: windsock::config::DiagnosticsSettings {
            window: Duration::from_secs(2 * 3600),
            ..windsock::config::DiagnosticsSettings::default()
        },
        ..Settings::default()
    };
    let r = TargetRunner {
        environment: "t".into(),
        db: sc.db.windsock(&fast_settings()),
        plan: Arc::new(diagnostics::registry(&settings).unwrap()),
        store: Arc::new(Store::new(["t"])),
        settings: settings.collection.clone(),
        limits: Arc::new(windsock::metrics::limits::Limits::default()),
    };
    for cycle in 0..3 {
        let v = collect(&r).await;
        let counted: Vec<_> = v
            .keys()
            .filter(|k| {
                k.starts_with("airflow_dag_run_completions")
                    || k.starts_with("airflow_dag_runs_created")
            })
            .collect();
        assert!(counted.is_empty(), "cycle {cycle}: {counted:?}");
        // Outside the window: no outcomes either.
        assert!(
            !v.keys().any(|k| k.starts_with("airflow_dag_run_outcomes")),
            "cycle {cycle}: {v:?}"
        );
    }
    // A genuinely new run is still counted once.
    sc.run(3, "success", 0.2 * h, Some(0.1 * h)).await;
    for _ in 0..2 {
        let v = collect(&r).await;
        assert_eq!(
            v.get("airflow_dag_runs_created{dag_id=d1}"),
            Some(&1.0),
            "{v:?}"
        );
        assert_eq!(
            v.get("airflow_dag_run_completions{dag_id=d1,state=success}"),
            Some(&1.0)
        );
    }
    r.db.close().await;
}
