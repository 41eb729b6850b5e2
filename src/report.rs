//! The diagnostic report: findings against the thresholds, grouped by
//! category, with recommendations — the original toolbox's report, built
//! from windsock's metrics instead of its own queries, and without its
//! false positives (no `store_serialized_dags` warning, success rates that
//! exclude running runs, heartbeat age per job instead of gaps between job
//! rows, current-state counts never passed off as history).
//!
//! [`build`] reads only the in-memory [`Store`]: the daemon serves it at
//! `GET /api/v1/report` without touching the database; `windsock report`
//! fills a store by running every diagnostic once, then calls the same code.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::Thresholds;
use crate::metrics::{Store, TargetState, now_unix};

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Needs attention now.
    Critical,
    /// Needs attention soon.
    Warning,
    /// Worth knowing.
    Info,
}

/// One finding.
#[derive(Debug, Clone, Serialize)]
pub struct Finding {
    /// Severity.
    pub severity: Severity,
    /// Category (dags, runs, failures, sla, scheduling, resources,
    /// components, database, windsock).
    pub category: &'static str,
    /// Short title.
    pub title: String,
    /// The numbers behind it.
    pub detail: String,
    /// What to do.
    pub recommendation: &'static str,
}

/// The report of one environment.
#[derive(Debug, Clone, Serialize)]
pub struct EnvironmentReport {
    /// The environment label.
    pub environment: String,
    /// Detected Airflow version.
    pub airflow_version: String,
    /// Dialect of its DB.
    pub database: String,
    /// Whether the DB answered at the latest contact.
    pub up: bool,
    /// Findings, most severe first.
    pub findings: Vec<Finding>,
    /// Headline numbers.
    pub summary: BTreeMap<&'static str, f64>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// UNIX time it was built.
    pub generated_at: f64,
    /// windsock version.
    pub windsock_version: &'static str,
    /// One entry per target.
    pub environments: Vec<EnvironmentReport>,
}

/// Samples of one metric family of a target: label map and value.
fn samples<'a>(t: &'a TargetState, metric: &str) -> Vec<(BTreeMap<&'a str, &'a str>, f64)> {
    let now = now_unix();
    let mut out = Vec::new();
    for d in t.diagnostics.values() {
        for f in d.families.iter().filter(|f| f.spec.name == metric) {
            for (values, v) in &f.samples {
                let labels = f
                    .label_names
                    .iter()
                    .map(String::as_str)
                    .zip(values.iter().map(String::as_str))
                    .collect();
                let v = if f.spec.seconds_since { now - v } else { *v };
                out.push((labels, v));
            }
        }
    }
    out
}

fn label<'a>(l: &BTreeMap<&'a str, &'a str>, k: &str) -> &'a str {
    l.get(k).copied().unwrap_or("")
}

fn mb(bytes: f64) -> String {
    format!("{:.1} MB", bytes / 1_048_576.0)
}

fn dur(secs: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(secs.max(0.0) as u64)).to_string()
}

/// Builds the report from what the store holds now.
pub fn build(store: &Store, environments: &[String], th: &Thresholds) -> Report {
    let environments = environments
        .iter()
        .filter_map(|env| store.target(env).map(|t| environment(env, &t, th)))
        .collect();
    Report {
        generated_at: now_unix(),
        windsock_version: crate::VERSION,
        environments,
    }
}

fn environment(env: &str, t: &TargetState, th: &Thresholds) -> EnvironmentReport {
    let mut f: Vec<Finding> = Vec::new();
    let mut add = |severity, category, title: String, detail: String, recommendation| {
        f.push(Finding {
            severity,
            category,
            title,
            detail,
            recommendation,
        })
    };
    let mut summary = BTreeMap::new();

    // DAGs.
    for (l, v) in samples(t, "airflow_dags") {
        summary.insert(
            match label(&l, "state") {
                "active" => "dags_active",
                "paused" => "dags_paused",
                _ => "dags_stale",
            },
            v,
        );
    }
    for (_, v) in samples(t, "airflow_dag_import_errors") {
        if v > 0.0 {
            add(
                Severity::Warning,
                "dags",
                format!("{v} DAG file(s) fail to import"),
                "import_error has rows".into(),
                "Fix the files listed in Airflow's import errors; their DAGs are not scheduled.",
            );
        }
    }
    let mut sizes = samples(t, "airflow_serialized_dag_json_bytes");
    sizes.sort_by(|a, b| b.1.partial_cmp(&a.1).unwrap_or(std::cmp::Ordering::Equal));
    summary.insert(
        "serialized_dag_max_bytes",
        sizes.first().map_or(0.0, |s| s.1),
    );
    for (l, v) in &sizes {
        let dag = label(l, "dag_id");
        if *v > th.critical_dag_bytes as f64 {
            add(
                Severity::Critical,
                "dags",
                format!("DAG {dag} serializes to {}", mb(*v)),
                format!(
                    "above the critical size of {}",
                    mb(th.critical_dag_bytes as f64)
                ),
                "Split the DAG or generate fewer tasks; very large serialized DAGs slow the scheduler, the webserver and every DAG parse.",
            );
        } else if *v > th.large_dag_bytes as f64 {
            add(
                Severity::Warning,
                "dags",
                format!("DAG {dag} serializes to {}", mb(*v)),
                format!("above the large size of {}", mb(th.large_dag_bytes as f64)),
                "Consider splitting the DAG; turn on [core] compress_serialized_dags to reduce storage.",
            );
        }
    }

    // Runs.
    let mut low = Vec::new();
    for (l, v) in samples(t, "airflow_dag_run_success_ratio") {
        if v < th.min_success_rate {
            low.push((label(&l, "dag_id").to_owned(), v));
        }
    }
    low.sort_by(|a, b| a.1.partial_cmp(&b.1).unwrap_or(std::cmp::Ordering::Equal));
    summary.insert("dags_below_min_success_rate", low.len() as f64);
    for (dag, v) in low.iter().take(20) {
        add(
            Severity::Warning,
            "runs",
            format!(
                "DAG {dag} succeeded in {:.0} % of its finished runs",
                v * 100.0
            ),
            format!(
                "minimum is {:.0} %; running and queued runs are not counted",
                th.min_success_rate * 100.0
            ),
            "Look at the failing tasks of this DAG (airflow_task_failed_tries_window) and their logs.",
        );
    }
    for (l, v) in samples(t, "airflow_dag_run_duration_trend_ratio") {
        if v > 1.5 {
            add(
                Severity::Warning,
                "runs",
                format!(
                    "DAG {} runs {:.0} % slower than earlier in the window",
                    label(&l, "dag_id"),
                    (v - 1.0) * 100.0
                ),
                "mean duration of the recent half of the window against the older half".into(),
                "Check data volume growth, upstream sources and pool contention for this DAG.",
            );
        }
    }

    // Failures.
    let mut failing: Vec<(String, String, f64)> = samples(t, "airflow_task_failed_tries_window")
        .into_iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(l, v)| {
            (
                label(&l, "dag_id").to_owned(),
                label(&l, "task_id").to_owned(),
                v,
            )
        })
        .collect();
    failing.sort_by(|a, b| b.2.partial_cmp(&a.2).unwrap_or(std::cmp::Ordering::Equal));
    summary.insert("failing_tasks", failing.len() as f64);
    if !failing.is_empty() {
        let top: Vec<String> = failing
            .iter()
            .take(10)
            .map(|(d, t, n)| format!("{d}.{t} ({n})"))
            .collect();
        add(
            Severity::Warning,
            "failures",
            format!("{} task(s) failed tries in the window", failing.len()),
            format!("most: {}", top.join(", ")),
            "Start with the tasks that fail most; failures that recover on retry point at flaky dependencies.",
        );
    }
    for (l, v) in samples(t, "airflow_dag_run_failure_cascades_window") {
        if v > 0.0 {
            add(
                Severity::Warning,
                "failures",
                format!(
                    "DAG {} had {v} run(s) where 3+ tasks failed",
                    label(&l, "dag_id")
                ),
                "failure cascades point at a shared dependency (database, credentials, cluster)"
                    .into(),
                "Find the first task that failed in those runs; the others likely failed because of it.",
            );
        }
    }
    for (l, v) in samples(t, "airflow_task_retry_success_ratio") {
        if v < 0.5 {
            add(
                Severity::Info,
                "failures",
                format!(
                    "DAG {}: only {:.0} % of retried tasks recovered",
                    label(&l, "dag_id"),
                    v * 100.0
                ),
                "retries mostly do not help: failures are persistent".into(),
                "Persistent failures need a fix, not more retries; lower retries to fail faster.",
            );
        }
    }

    // SLA and deadlines.
    let now = now_unix();
    for (l, v) in samples(t, "airflow_sla_miss_latest_timestamp_seconds") {
        if now - v < 86_400.0 {
            add(
                Severity::Critical,
                "sla",
                format!(
                    "SLA missed by {}.{}",
                    label(&l, "dag_id"),
                    label(&l, "task_id")
                ),
                format!("latest miss {} ago", dur(now - v)),
                "Check why the task finished late (queueing, upstream delays, duration growth).",
            );
        }
    }
    deadline_alerts(t, &mut add);
    for (l, v) in samples(t, "airflow_deadline_lateness_seconds") {
        if v > 0.0 {
            add(
                Severity::Critical,
                "sla",
                format!(
                    "Deadline {} missed by DAG {}",
                    label(&l, "deadline"),
                    label(&l, "dag_id")
                ),
                format!("late by {}", dur(v)),
                "See the DAG's running and recent runs; the deadline clears when it succeeds again.",
            );
        }
    }

    // Scheduling and resources.
    for (l, v) in samples(t, "airflow_task_backlog_oldest_age_seconds") {
        if v > 600.0 {
            add(
                Severity::Warning,
                "scheduling",
                format!(
                    "Tasks {} in pool {} for {}",
                    label(&l, "state"),
                    label(&l, "pool"),
                    dur(v)
                ),
                format!("queue {}", label(&l, "queue")),
                "Check executor capacity and the pool's free slots; a stuck executor leaves tasks queued.",
            );
        }
    }
    waiting(t, &mut add);
    for (l, v) in samples(t, "airflow_dag_schedule_overdue_seconds") {
        add(
            Severity::Warning,
            "scheduling",
            format!(
                "DAG {} is {} behind its schedule",
                label(&l, "dag_id"),
                dur(v)
            ),
            "next_dagrun_create_after is in the past".into(),
            "Check the scheduler's health and the DAG's max_active_runs.",
        );
    }
    let zombies = samples(t, "airflow_zombie_task_candidates");
    summary.insert("zombie_candidates", zombies.iter().map(|z| z.1).sum());
    for (l, v) in zombies {
        add(
            Severity::Critical,
            "resources",
            format!(
                "{v} zombie candidate(s): {}.{}",
                label(&l, "dag_id"),
                label(&l, "task_id")
            ),
            "running, but the heartbeat stopped".into(),
            "Check the worker that runs it (OOM kills, lost nodes); Airflow fails it after its heartbeat timeout.",
        );
    }
    for (l, v) in samples(t, "airflow_task_queue_wait_window_seconds") {
        if label(&l, "stat") == "p95" && v > 300.0 {
            add(
                Severity::Warning,
                "resources",
                format!(
                    "Tasks wait {} (p95) to start in pool {}",
                    dur(v),
                    label(&l, "pool")
                ),
                format!("queue {}", label(&l, "queue")),
                "Add executor capacity or pool slots, or spread schedules.",
            );
        }
    }

    // Components.
    for (l, v) in samples(t, "airflow_components_alive") {
        if label(&l, "component") == "scheduler" {
            summary.insert("schedulers_alive", v);
            if v < 1.0 {
                add(
                    Severity::Critical,
                    "components",
                    "No scheduler is alive".into(),
                    "no running SchedulerJob heartbeated recently".into(),
                    "Restart the scheduler and check its logs; no task is scheduled meanwhile.",
                );
            }
        }
    }

    // Database.
    for (l, v) in samples(t, "airflow_db_table_bytes") {
        if label(&l, "part") == "heap" && v > 1_073_741_824.0 {
            add(
                Severity::Warning,
                "database",
                format!("Table {} holds {}", label(&l, "table"), mb(v)),
                "above 1 GB".into(),
                "Archive old rows with `airflow db clean` (keep what you export first).",
            );
        }
    }
    for (l, v) in samples(t, "airflow_db_table_rows_estimate") {
        let (table, limit) = (
            label(&l, "table"),
            match label(&l, "table") {
                "task_instance" => 5_000_000.0,
                "log" | "xcom" => 1_000_000.0,
                _ => f64::INFINITY,
            },
        );
        if v > limit {
            add(
                if v > 2.0 * limit {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                "database",
                format!("Table {table} has about {:.1} M rows", v / 1e6),
                "estimate from the database's statistics".into(),
                "Run `airflow db clean` for old history; big tables slow the scheduler and the UI.",
            );
        }
    }
    let index_bytes: BTreeMap<(&str, &str), f64> = samples(t, "airflow_db_index_bytes")
        .into_iter()
        .map(|(l, v)| ((label(&l, "table"), label(&l, "index")), v))
        .collect();
    for (l, v) in samples(t, "airflow_db_index_scans") {
        let bytes = index_bytes
            .get(&(label(&l, "table"), label(&l, "index")))
            .copied()
            .unwrap_or(0.0);
        if v == 0.0 && bytes > 10.0 * 1_048_576.0 {
            add(
                Severity::Info,
                "database",
                format!("Index {} is unused ({})", label(&l, "index"), mb(bytes)),
                format!(
                    "table {}; no scans since statistics were reset",
                    label(&l, "table")
                ),
                "Check with your DBA before dropping: Airflow's own migrations expect its indexes.",
            );
        }
    }
    for (_, v) in samples(t, "airflow_db_lock_waiters") {
        if v > 0.0 {
            add(
                if v > 5.0 {
                    Severity::Critical
                } else {
                    Severity::Warning
                },
                "database",
                format!("{v} session(s) wait for locks"),
                "right now".into(),
                "Look for long transactions holding locks (scheduler row locks, manual sessions).",
            );
        }
    }
    for (_, v) in samples(t, "airflow_db_oldest_transaction_age_seconds") {
        if v > 300.0 {
            add(
                Severity::Warning,
                "database",
                format!("A transaction has been open for {}", dur(v)),
                "long transactions block vacuum and hold locks".into(),
                "Find it in pg_stat_activity / INNODB_TRX and end it if it is stuck.",
            );
        }
    }

    // windsock itself.
    for (name, d) in &t.diagnostics {
        if !d.success && d.runs > 0 {
            let kinds: Vec<String> = d.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            add(
                Severity::Warning,
                "windsock",
                format!("Diagnostic {name} is failing"),
                kinds.join(", "),
                "Run `windsock check` for the error; raise its timeout in [diagnostics.overrides] if it is slow.",
            );
        }
    }

    // Grouped by category (in the order the report presents them), most
    // severe first within each.
    const ORDER: [&str; 10] = [
        "components",
        "resources",
        "sla",
        "runs",
        "failures",
        "scheduling",
        "dags",
        "database",
        "windsock",
        "custom",
    ];
    let rank = |c: &str| ORDER.iter().position(|o| *o == c).unwrap_or(ORDER.len());
    f.sort_by(|a, b| {
        rank(a.category)
            .cmp(&rank(b.category))
            .then(a.severity.cmp(&b.severity))
    });
    let schema = t.schema.as_deref();
    EnvironmentReport {
        environment: env.to_owned(),
        airflow_version: schema.map_or_else(|| "unknown".to_owned(), |s| s.version_label()),
        database: schema.map_or_else(String::new, |s| {
            format!("{} {}", s.dialect, s.server_version)
        }),
        up: t.up == Some(true),
        findings: f,
        summary,
    }
}

/// A finding's parts, as `environment` adds them.
type Add<'a> = dyn FnMut(Severity, &'static str, String, String, &'static str) + 'a;

/// What holds waiting task instances and DAG runs (`task_waiting`), per
/// DAG, pool and reason; deferred tasks on a live triggerer are not stuck.
fn waiting(t: &TargetState, add: &mut Add<'_>) {
    for (l, v) in samples(t, "airflow_waiting_tasks") {
        let reason = label(&l, "reason");
        if v <= 0.0 || reason == "trigger" {
            continue;
        }
        let (severity, todo) = match reason {
            "pool_missing" | "pool_too_small" => (
                Severity::Critical,
                "Airflow never queues these: create the pool or give it enough slots, or change the tasks' pool / pool_slots.",
            ),
            "pool_full" => (
                Severity::Warning,
                "Add slots to the pool, or spread the tasks that hold it.",
            ),
            "no_scheduler" => (
                Severity::Critical,
                "Start the scheduler; nothing is scheduled without one.",
            ),
            "executor" => (
                Severity::Warning,
                "Check the executor's workers: queued tasks are not being picked up.",
            ),
            "triggerer" => (
                Severity::Warning,
                "Start a triggerer (or give it capacity); deferred tasks resume only through one.",
            ),
            "dag_paused" => (
                Severity::Info,
                "The DAG is paused; unpause it if its tasks should run.",
            ),
            "dag_run_not_running" => (
                Severity::Info,
                "Their DAG run is not running: they start with the run, or a finished run left them behind (clear or mark them).",
            ),
            "backfill_job" => (
                Severity::Warning,
                "A 2.x backfill run: its `airflow dags backfill` process queues the tasks; check that it still runs.",
            ),
            "scheduler_capacity" => (
                Severity::Info,
                "Nothing in the DB holds them: the executor's [core] parallelism or the scheduler's throughput does.",
            ),
            _ => (
                Severity::Warning,
                "Raise the limit the reason names (docs/waiting.md) or spread the schedule.",
            ),
        };
        add(
            severity,
            "scheduling",
            format!(
                "{v} task instance(s) of DAG {} wait: {reason}",
                label(&l, "dag_id")
            ),
            format!("pool {}", label(&l, "pool")),
            todo,
        );
    }
    for (l, v) in samples(t, "airflow_waiting_dag_runs") {
        add(
            Severity::Warning,
            "scheduling",
            format!(
                "{v} queued run(s) of DAG {} wait: {}",
                label(&l, "dag_id"),
                label(&l, "reason")
            ),
            "queued longer than thresholds.task_waiting".into(),
            "max_active_runs: let the running runs finish or raise the DAG's max_active_runs; dag_paused: unpause it.",
        );
    }
}

/// Airflow's own Deadline Alerts (3.1+) missed in the window.
fn deadline_alerts(t: &TargetState, add: &mut Add<'_>) {
    for (l, v) in samples(t, "airflow_deadline_alerts_missed_window") {
        let cb = label(&l, "callback");
        if v <= 0.0 {
            continue;
        }
        let (severity, todo) = if cb == "failed" {
            (
                Severity::Warning,
                "The alert's callback failed on the triggerer: fix it, and tell the DAG's consumers yourself.",
            )
        } else {
            (
                Severity::Critical,
                "See the DAG's late runs; change DeadlineAlert(interval=...) if the deadline is unrealistic.",
            )
        };
        add(
            severity,
            "sla",
            format!(
                "{v} Airflow deadline(s) of DAG {} missed, callback {cb}",
                label(&l, "dag_id")
            ),
            "within diagnostics.window".into(),
            todo,
        );
    }
}

/// The report as text for people.
pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "windsock {} diagnostic report", r.windsock_version);
    for e in &r.environments {
        let _ = writeln!(
            out,
            "\n== {} (Airflow {}, {}{})",
            e.environment,
            e.airflow_version,
            e.database,
            if e.up { "" } else { ", DATABASE DOWN" }
        );
        for (k, v) in &e.summary {
            let _ = writeln!(out, "   {k:<28} {v}");
        }
        if e.findings.is_empty() {
            let _ = writeln!(out, "\n   No findings: the environment looks healthy.");
            continue;
        }
        let mut category = "";
        for f in &e.findings {
            if f.category != category {
                category = f.category;
                let _ = writeln!(out, "\n   [{category}]");
            }
            let mark = match f.severity {
                Severity::Critical => "CRITICAL",
                Severity::Warning => "WARNING ",
                Severity::Info => "INFO    ",
            };
            let _ = writeln!(out, "   {mark} {}\n            {}", f.title, f.detail);
        }
        let mut recs: Vec<&str> = e.findings.iter().map(|f| f.recommendation).collect();
        recs.dedup();
        let mut seen = std::collections::HashSet::new();
        let _ = writeln!(out, "\n   Recommendations:");
        for (i, r) in recs.into_iter().filter(|r| seen.insert(*r)).enumerate() {
            let _ = writeln!(out, "   {}. {r}", i + 1);
        }
    }
    out
}

/// Puts one report per environment to S3, under
/// `<prefix>/<environment>/reports/YYYY/MM/DD/report-HHMMSSZ.{json,txt}`;
/// returns the keys written.
#[cfg(feature = "aws")]
pub async fn to_s3(
    client: &aws_sdk_s3::Client,
    url: &crate::export::s3::S3Url,
    store: &Store,
    environments: &[String],
    th: &Thresholds,
    now_secs: i64,
) -> std::io::Result<Vec<String>> {
    let stamp = crate::export::iso(now_secs);
    let (date, time) = (&stamp[..10], stamp[11..19].replace(':', ""));
    let mut keys = Vec::new();
    for env in environments {
        let report = build(store, std::slice::from_ref(env), th);
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        let text = render_text(&report);
        let base = url.key(&format!(
            "{env}/reports/{}/report-{time}Z",
            date.replace('-', "/")
        ));
        for (ext, body, ct) in [
            ("json", json, "application/json"),
            ("txt", text, "text/plain; charset=utf-8"),
        ] {
            let key = format!("{base}.{ext}");
            crate::export::s3::put(client, &url.bucket, &key, body.into_bytes(), ct).await?;
            keys.push(key);
        }
    }
    Ok(keys)
}
