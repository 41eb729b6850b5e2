//! Run and task history over the analysis window, kept incrementally.
//!
//! windsock keeps the DAG runs of the last `diagnostics.window` in memory and
//! refreshes them from three index-backed reads per run, so the cost grows
//! with new and active rows, never with the size of `dag_run` or
//! `task_instance`:
//!
//! 1. new runs: `dag_run.id > watermark` (primary key);
//! 2. active runs: `state = 'queued'` and `state = 'running'` (Airflow's
//!    partial indexes on PostgreSQL);
//! 3. runs windsock saw active that are no longer: by primary key.
//!
//! When a run reaches a terminal state, its task instances (every map
//! index) are read once through `ti_dag_run (dag_id, run_id)`, with their
//! failed tries from every source the schema has: `task_instance_history`
//! (2.10+, earlier tries) and `task_fail` (2.7-2.10, every failed try);
//! on 2.10, which has both and records some failures in one only, the
//! larger count per task instance wins. The start and end of the task
//! instances of running runs are read every run, for the concurrency peak.
//! At start-up the window is loaded by walking `dag_run` backwards by
//! primary key, in pages.
//!
//! From that state it derives, per DAG: success ratio over finished runs
//! (queued and running runs are excluded), run duration statistics and
//! their trend (recent half of the window against the older half), the
//! time of the latest success, scheduling delay measured from the end of
//! the data interval (runs that were cleared are left out, as Airflow does);
//! per task: duration statistics, failed tries, retries (tries that
//! followed a failed try: clears are not retries); per DAG: how often
//! retried tasks ended in success, and failure cascades (runs with three or
//! more failed tasks); peak concurrency of runs and tasks from their start
//! and end timestamps; queue wait per pool and queue; counters of run and
//! task completions and of audit-log events that work with `rate()`
//! (counted once, from the moment windsock sees them; never re-counted
//! after a restart of the diagnostic; a cleared run that completes again
//! counts again, but only its task instances that ran again); and the
//! windsock deadlines of `[[deadlines]]`.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{
    Aggregate, Category, Context, DiagError, Diagnostic, Family, Meta, MetricSpec, Output, sql,
};
use crate::airflow::{Capability, Schema};
use crate::config::{DeadlineSettings, parse_time_of_day};
use crate::db::{Cell, Db, Dialect, Rows};
use crate::metrics::limits::glob_match;
use crate::metrics::now_unix;

/// Rows read per page when loading the window backwards.
const PAGE: usize = 5_000;
/// Runs per task-instance query.
const RUN_BATCH: usize = 100;
/// Most new runs read in one pass.
const NEW_LIMIT: usize = 20_000;
/// A run with at least this many failed tasks is a failure cascade.
const CASCADE_TASKS: usize = 3;
/// Ids below the watermark that are read again: a row whose transaction
/// took an id before a newer row's but committed after it is still seen
/// (and, for the log, counted once: ids already counted are remembered).
const OVERLAP: i64 = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum RunState {
    Queued,
    Running,
    Success,
    Failed,
    Other,
}

impl RunState {
    fn parse(s: &str) -> RunState {
        match s {
            "queued" => RunState::Queued,
            "running" => RunState::Running,
            "success" => RunState::Success,
            "failed" => RunState::Failed,
            _ => RunState::Other,
        }
    }
    fn active(self) -> bool {
        matches!(self, RunState::Queued | RunState::Running)
    }
    fn label(self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Success => "success",
            RunState::Failed => "failed",
            RunState::Other => "other",
        }
    }
}

impl TaskRec {
    /// How long the try ran: end minus start, else the `duration` Airflow
    /// wrote. Airflow 3 on SQLite writes wrong durations (its SQL adds
    /// whole seconds to a fractional-seconds difference: doubled, or
    /// negative across a minute boundary), so the timestamps come first.
    fn seconds(&self) -> Option<f64> {
        match (self.start, self.end) {
            (Some(s), Some(e)) => Some((e - s).max(0.0)),
            _ => self.duration,
        }
    }
}

/// A task instance (one map index) of a finished run, compacted.
#[derive(Debug, Clone)]
struct TaskRec {
    task: Arc<str>,
    map_index: i64,
    state: Arc<str>,
    tries: u32,
    /// Tries that failed, the final one included.
    failed_tries: u32,
    /// Tries that followed a failed try (not clears or other bumps of
    /// `try_number`).
    retries: u32,
    start: Option<f64>,
    end: Option<f64>,
    duration: Option<f64>,
    queue_wait: Option<f64>,
    pool: Arc<str>,
    queue: Arc<str>,
}

#[derive(Debug, Clone)]
struct RunRec {
    dag: Arc<str>,
    run_id: String,
    state: RunState,
    scheduled: bool,
    /// Cleared at least once (`clear_number > 0`): its start is the
    /// re-run's, so it has no scheduling delay (Airflow's own
    /// `_emit_true_scheduling_delay_stats_for_finished_state` skips it too).
    cleared: bool,
    queued: Option<f64>,
    start: Option<f64>,
    end: Option<f64>,
    interval_end: Option<f64>,
    /// Task instances, read once the run is finished.
    tasks: Option<Vec<TaskRec>>,
    /// The task instances counted at the run's previous completion, kept
    /// while a cleared run runs again: only what changed since is counted.
    counted_tasks: Option<Vec<TaskRec>>,
    /// Completion already counted in the counters.
    counted: bool,
    /// Completion observed by windsock whose task instances are still to be
    /// counted.
    observed: bool,
}

impl RunRec {
    /// When the run is relevant for the window: its end, else its start,
    /// else when it was queued.
    fn time(&self) -> Option<f64> {
        self.end.or(self.start).or(self.queued)
    }
}

#[derive(Debug, Default)]
struct State {
    initialized: bool,
    watermark: i64,
    log_watermark: Option<i64>,
    /// Log ids counted within the overlap below the watermark.
    log_seen: std::collections::BTreeSet<i64>,
    /// The log's highest id when windsock started: rows up to it are not
    /// events windsock saw happen.
    log_floor: i64,
    runs: BTreeMap<i64, RunRec>,
    /// Interned strings (DAG ids, task ids, states, pools).
    names: HashSet<Arc<str>>,
    run_completions: BTreeMap<(Arc<str>, &'static str), u64>,
    /// Runs dropped from the window whose ids are still in the overlap that
    /// is read again: known, so not taken for new runs.
    evicted: std::collections::BTreeSet<i64>,
    run_creations: BTreeMap<Arc<str>, u64>,
    task_completions: BTreeMap<(Arc<str>, Arc<str>), u64>,
    log_events: BTreeMap<String, u64>,
    /// Latest success per DAG, including successes older than the window.
    last_success: BTreeMap<Arc<str>, f64>,
    /// DAGs whose latest success before the window was looked up.
    looked_up: HashSet<Arc<str>>,
    /// Start and end of the task instances of the runs that are running,
    /// read every cycle (those of finished runs are in their `tasks`).
    live_tasks: Vec<(f64, Option<f64>)>,
    /// Per deadline and DAG, the time from which a DAG that never
    /// succeeded counts as late (fixed once, so its lateness grows).
    never_succeeded_since: HashMap<(String, Arc<str>), f64>,
}

impl State {
    fn intern(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.names.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        self.names.insert(a.clone());
        a
    }
}

/// The `run_history` diagnostic.
#[derive(Debug)]
pub(super) struct History {
    meta: Meta,
    metrics: Vec<Arc<MetricSpec>>,
    ctx: Arc<Context>,
    state: Mutex<State>,
}

/// Indexes into `History::metrics`.
mod m {
    pub(super) const SUCCESS_RATIO: usize = 0;
    pub(super) const OUTCOMES: usize = 1;
    pub(super) const RUN_DURATION: usize = 2;
    pub(super) const RUN_TREND: usize = 3;
    pub(super) const LAST_SUCCESS: usize = 4;
    pub(super) const SCHEDULE_DELAY: usize = 5;
    pub(super) const TASK_DURATION: usize = 6;
    pub(super) const TASK_FAILURES: usize = 7;
    pub(super) const TASK_RETRIES: usize = 8;
    pub(super) const RETRY_SUCCESS: usize = 9;
    pub(super) const CASCADES: usize = 10;
    pub(super) const CONCURRENCY: usize = 11;
    pub(super) const QUEUE_WAIT: usize = 12;
    pub(super) const RUN_COMPLETIONS: usize = 13;
    pub(super) const TASK_COMPLETIONS: usize = 14;
    pub(super) const LOG_EVENTS: usize = 15;
    pub(super) const DEADLINE_MISSED: usize = 16;
    pub(super) const DEADLINE_LATENESS: usize = 17;
    pub(super) const RUN_CREATIONS: usize = 18;
    pub(super) const COUNT: usize = 19;
}

pub(super) fn history(ctx: &Arc<Context>) -> History {
    let g = |name, help, labels: &[&'static str]| MetricSpec::gauge(name, help, "").labels(labels);
    let c =
        |name, help, labels: &[&'static str]| MetricSpec::counter(name, help, "").labels(labels);
    let metrics = vec![
        g("airflow_dag_run_success_ratio", "Share of a DAG's runs finished in the window that succeeded (queued and running runs excluded)", &["dag_id"]),
        g("airflow_dag_run_outcomes", "A DAG's runs that finished in the window, by final state", &["dag_id", "state"]),
        g("airflow_dag_run_duration_window_seconds", "Duration of a DAG's runs finished in the window: p50, p95, max, mean", &["dag_id", "stat"]).merge(Aggregate::Max),
        g("airflow_dag_run_duration_trend_ratio", "Mean run duration in the recent half of the window divided by the older half's (above 1: slower)", &["dag_id"]).merge(Aggregate::Max),
        g("airflow_dag_last_success_timestamp_seconds", "UNIX time at which the DAG's latest successful run ended", &["dag_id"]).merge(Aggregate::Max),
        g("airflow_dag_run_schedule_delay_window_seconds", "Delay from the end of a scheduled run's data interval to its start, over the window (cleared runs excluded, as Airflow does): p50, p95, max", &["dag_id", "stat"]).merge(Aggregate::Max),
        g("airflow_task_duration_window_seconds", "Duration (end minus start) of a task's successful tries in the window: p50, p95, max, stddev", &["dag_id", "task_id", "stat"]).merge(Aggregate::Max),
        g("airflow_task_failed_tries_window", "Failed tries of a task in the window, over its map indexes (earlier tries included)", &["dag_id", "task_id"]),
        g("airflow_task_retries_window", "Retries of a task in the window: tries that followed a failed try (clears and other try_number bumps are not retries)", &["dag_id", "task_id"]),
        g("airflow_task_retry_success_ratio", "Of a DAG's task instances that retried in the window, the share that finally succeeded (transient failures)", &["dag_id"]).merge(Aggregate::Max),
        g("airflow_dag_run_failure_cascades_window", "Runs of a DAG in the window in which three or more tasks failed", &["dag_id"]),
        g("airflow_concurrency_peak", "Peak number of DAG runs and task instances running at the same time, from their start and end timestamps, over the last hour and the window", &["kind", "period"]).merge(Aggregate::Max),
        g("airflow_task_queue_wait_window_seconds", "Wait from queued to started of task instances in the window, per pool and queue (executor lag): p50, p95, max", &["pool", "queue", "stat"]).merge(Aggregate::Max),
        c("airflow_dag_run_completions", "DAG runs that reached a final state since windsock started", &["dag_id", "state"]),
        c("airflow_task_instance_completions", "Task instances of finished runs, by final state, since windsock started (counted when the run finishes; all but skipped and upstream_failed ran, so rate() is the task start rate)", &["dag_id", "state"]),
        c("airflow_audit_log_events", "Rows written to Airflow's audit log (log table) since windsock started, by event", &["event"]),
        g("airflow_deadline_missed", "1 when a windsock deadline ([[deadlines]]) of the DAG is missed, else 0", &["dag_id", "deadline"]).merge(Aggregate::Max),
        g("airflow_deadline_lateness_seconds", "How far past its windsock deadline the DAG is (0 when met)", &["dag_id", "deadline"]).merge(Aggregate::Max),
        c("airflow_dag_runs_created", "DAG runs created since windsock started (rate() gives runs per hour)", &["dag_id"]),
    ];
    debug_assert_eq!(metrics.len(), m::COUNT);
    History {
        meta: Meta {
            name: "run_history".into(),
            help: "Success rates, durations, failures, retries, delays, concurrency, completions and deadlines over the window".into(),
            source: "dag_run, task_instance, task_instance_history or task_fail, log, dag".into(),
            cost: "new and active rows only (primary key, partial indexes, ti_dag_run); the window is loaded once, by primary key".into(),
            category: Category::Runs,
            interval: Duration::from_secs(30),
            timeout: Some(Duration::from_secs(60)),
            requires: Vec::new(),
        },
        metrics: metrics.into_iter().map(Arc::new).collect(),
        ctx: ctx.clone(),
        state: Mutex::new(State::default()),
    }
}

fn run_date_col(schema: &Schema) -> &'static str {
    if schema.has(Capability::DagRunLogicalDate) {
        "COALESCE(logical_date, run_after)"
    } else {
        "execution_date"
    }
}

fn run_columns(schema: &Schema) -> String {
    let d = schema.dialect;
    // Airflow 2.8 added clear_number: how often the run was cleared.
    let cleared = if schema.has_column("dag_run", "clear_number") {
        "clear_number"
    } else {
        "0"
    };
    format!(
        "id, dag_id, run_id, state, run_type, {cleared} AS cleared, {q} AS q, {s} AS s, \
         {e} AS e, {ie} AS ie",
        q = sql::epoch(d, "queued_at"),
        s = sql::epoch(d, "start_date"),
        e = sql::epoch(d, "end_date"),
        ie = sql::epoch(d, "data_interval_end"),
    )
}

/// The statements of this diagnostic. `ph(n)` renders the placeholder of
/// the n-th (1-based) parameter: the DB's placeholder at run time, a literal
/// for `EXPLAIN`.
mod q {
    use super::*;

    pub(super) fn page(schema: &Schema, before: Option<i64>) -> String {
        let cond = before.map_or_else(String::new, |c| format!("WHERE id < {c}"));
        format!(
            "SELECT {} FROM dag_run {cond} ORDER BY id DESC LIMIT {PAGE}",
            run_columns(schema)
        )
    }

    /// New runs, from the overlap below the watermark on (rows already
    /// known merge without being counted twice).
    pub(super) fn new_runs(schema: &Schema, watermark: i64) -> String {
        format!(
            "SELECT {} FROM dag_run WHERE id > {} ORDER BY id LIMIT {NEW_LIMIT}",
            run_columns(schema),
            watermark - OVERLAP
        )
    }

    /// One subquery per state, so each uses its partial index.
    pub(super) fn active_runs(schema: &Schema) -> String {
        let cols = run_columns(schema);
        format!(
            "SELECT {cols} FROM dag_run WHERE state = 'queued' \
             UNION ALL SELECT {cols} FROM dag_run WHERE state = 'running'"
        )
    }

    pub(super) fn runs_by_id(schema: &Schema, ids: &[i64]) -> String {
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        format!(
            "SELECT {} FROM dag_run WHERE id IN ({})",
            run_columns(schema),
            ids.join(", ")
        )
    }

    /// `(dag_id = ? AND run_id = ?) OR …` for `runs` runs.
    pub(super) fn run_cond(runs: usize, ph: &dyn Fn(usize) -> String) -> String {
        (0..runs)
            .map(|i| {
                format!(
                    "(dag_id = {} AND run_id = {})",
                    ph(2 * i + 1),
                    ph(2 * i + 2)
                )
            })
            .collect::<Vec<_>>()
            .join(" OR ")
    }

    pub(super) fn task_instances(d: Dialect, cond: &str) -> String {
        format!(
            "SELECT dag_id, run_id, task_id, map_index, state, try_number, {s} AS s, {e} AS e, \
                    duration, {q} AS q, pool, COALESCE(queue, '') AS queue \
             FROM task_instance WHERE {cond}",
            s = sql::epoch(d, "start_date"),
            e = sql::epoch(d, "end_date"),
            q = sql::epoch(d, "queued_dttm"),
        )
    }

    /// Start and end of the task instances of running runs.
    pub(super) fn live_tasks(d: Dialect, cond: &str) -> String {
        format!(
            "SELECT {s} AS s, {e} AS e FROM task_instance \
             WHERE ({cond}) AND start_date IS NOT NULL",
            s = sql::epoch(d, "start_date"),
            e = sql::epoch(d, "end_date"),
        )
    }

    /// Failed tries: every `task_fail` row, or the history rows (earlier
    /// tries) that failed.
    pub(super) fn failed_tries(table: &str, cond: &str) -> String {
        if table == "task_fail" {
            format!("SELECT dag_id, run_id, task_id, map_index FROM task_fail WHERE {cond}")
        } else {
            format!(
                "SELECT dag_id, run_id, task_id, map_index FROM {table} \
                 WHERE ({cond}) AND state IN ('failed', 'up_for_retry')"
            )
        }
    }

    pub(super) const LOG_START: &str = "SELECT MAX(id) AS max_id FROM log";

    /// Log rows from the overlap below the watermark on.
    pub(super) fn log_events(watermark: i64) -> String {
        format!(
            "SELECT id, COALESCE(event, '') AS event FROM log WHERE id > {} ORDER BY id",
            watermark - OVERLAP
        )
    }

    /// Per DAG, its newest successful run's end, by run date, which
    /// Airflow's `dag_id_state` index serves. Each DAG id is bound twice.
    pub(super) fn latest_successes(
        schema: &Schema,
        dags: usize,
        ph: &dyn Fn(usize) -> String,
    ) -> String {
        let d = schema.dialect;
        let cast = if d == Dialect::Postgres { "::text" } else { "" };
        (0..dags)
            .map(|i| {
                format!(
                    "SELECT {p1}{cast} AS dag_id, (SELECT {e} FROM dag_run \
                       WHERE dag_id = {p2} AND state = 'success' \
                       ORDER BY {date} DESC LIMIT 1) AS t",
                    p1 = ph(2 * i + 1),
                    p2 = ph(2 * i + 2),
                    e = sql::epoch(d, "end_date"),
                    date = run_date_col(schema),
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ")
    }
}

/// The `id` column of fetched runs.
fn ids(rows: &Rows) -> HashSet<i64> {
    let Some(i) = rows.column("id") else {
        return HashSet::new();
    };
    rows.rows
        .iter()
        .filter_map(|r| r[i].as_f64())
        .map(|v| v as i64)
        .collect()
}

fn f(c: &Cell) -> Option<f64> {
    c.as_f64()
}

/// Percentile (nearest rank) of sorted values.
fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v
}

/// Peak of overlapping intervals (an open interval ends at `now`),
/// restricted to `[from, now]`.
fn peak(intervals: impl Iterator<Item = (f64, Option<f64>)>, from: f64, now: f64) -> f64 {
    let mut events: Vec<(f64, i32)> = Vec::new();
    for (s, e) in intervals {
        let e = e.unwrap_or(now);
        if e < from || e < s {
            continue;
        }
        events.push((s.max(from), 1));
        events.push((e, -1));
    }
    // Ends before starts at the same instant: touching intervals do not overlap.
    events.sort_by(|a, b| {
        a.0.partial_cmp(&b.0)
            .unwrap_or(std::cmp::Ordering::Equal)
            .then(a.1.cmp(&b.1))
    });
    let (mut cur, mut max) = (0i32, 0i32);
    for (_, d) in events {
        cur += d;
        max = max.max(cur);
    }
    f64::from(max)
}

/// A task instance: dag, run, task, map index.
type TiKey = (String, String, String, i64);

/// Failed tries per task instance, as recorded by each source:
/// `task_instance_history` rows of earlier tries that failed, and
/// `task_fail` rows (Airflow 2.7-2.10; every failed try, the final one
/// included, but not always: 2.10 writes some failures to one table and
/// not the other).
#[derive(Debug, Default, Clone, Copy)]
struct Failures {
    history: u32,
    task_fail: u32,
}

/// Reads the failed tries of the runs in `cond` from every source the
/// schema has.
async fn read_failures(
    db: &Db,
    schema: &Schema,
    cond: &str,
    binds: &[String],
    timeout: Duration,
) -> Result<(HashMap<TiKey, Failures>, usize), DiagError> {
    let mut out: HashMap<TiKey, Failures> = HashMap::new();
    let mut read = 0;
    for (table, present) in [
        (
            "task_instance_history",
            schema.has(Capability::TaskInstanceHistory),
        ),
        ("task_fail", schema.has(Capability::TaskFail)),
    ] {
        if !present {
            continue;
        }
        let rows = db
            .query_bind(&q::failed_tries(table, cond), binds, timeout)
            .await?;
        read += rows.rows.len();
        for r in &rows.rows {
            let key = (
                r[0].as_label(),
                r[1].as_label(),
                r[2].as_label(),
                r[3].as_f64().unwrap_or(-1.0) as i64,
            );
            let e = out.entry(key).or_default();
            match table {
                "task_fail" => e.task_fail += 1,
                _ => e.history += 1,
            }
        }
    }
    Ok((out, read))
}

/// One task instance row as a [`TaskRec`], with its failed tries
/// reconciled: every earlier try that failed (history) plus the final one
/// if it failed, or what `task_fail` holds if it holds more.
fn task_rec(
    st: &mut State,
    tis: &Rows,
    r: &[Cell],
    failures: &HashMap<TiKey, Failures>,
) -> Option<((String, String), TaskRec)> {
    let c = |n: &str| tis.column(n).map(|i| &r[i]);
    let (dag, run, task) = (
        c("dag_id")?.as_label(),
        c("run_id")?.as_label(),
        c("task_id")?.as_label(),
    );
    let map_index = c("map_index").and_then(f).unwrap_or(-1.0) as i64;
    let state = c("state").map(Cell::as_label).unwrap_or_default();
    let (start, queued) = (c("s").and_then(f), c("q").and_then(f));
    let known = failures
        .get(&(dag.clone(), run.clone(), task.clone(), map_index))
        .copied()
        .unwrap_or_default();
    let final_failed = u32::from(state == "failed");
    let failed_tries = (known.history + final_failed).max(known.task_fail);
    let rec = TaskRec {
        task: st.intern(&task),
        map_index,
        state: st.intern(&state),
        tries: c("try_number").and_then(f).map_or(0, |t| t.max(0.0) as u32),
        failed_tries,
        retries: failed_tries.saturating_sub(final_failed),
        start,
        end: c("e").and_then(f),
        duration: c("duration").and_then(f),
        queue_wait: match (start, queued) {
            (Some(s), Some(q)) if s >= q => Some(s - q),
            _ => None,
        },
        pool: st.intern(&c("pool").map(Cell::as_label).unwrap_or_default()),
        queue: st.intern(&c("queue").map(Cell::as_label).unwrap_or_default()),
    };
    Some(((dag, run), rec))
}

impl History {
    fn parse_run(st: &mut State, rows: &Rows, r: &[Cell]) -> Option<(i64, RunRec)> {
        let col = |n: &str| rows.column(n);
        let id = r[col("id")?].as_f64()? as i64;
        let dag = st.intern(&r[col("dag_id")?].as_label());
        Some((
            id,
            RunRec {
                dag,
                run_id: r[col("run_id")?].as_label(),
                state: RunState::parse(&r[col("state")?].as_label()),
                scheduled: r[col("run_type")?].as_label() == "scheduled",
                cleared: r[col("cleared")?].as_f64().unwrap_or(0.0) > 0.0,
                queued: f(&r[col("q")?]),
                start: f(&r[col("s")?]),
                end: f(&r[col("e")?]),
                interval_end: f(&r[col("ie")?]),
                tasks: None,
                counted_tasks: None,
                counted: false,
                observed: false,
            },
        ))
    }

    /// Merges fetched runs into the state. Completions are counted only
    /// once the state is initialized (not for the window loaded at start).
    /// A run counts as created when its id is new: above `new_from`, the
    /// floor of the ids this cycle reads as new (an old run that was cleared
    /// and shows up among the active ones again is not a new run).
    fn merge(st: &mut State, rows: &Rows, initialized: bool, new_from: i64) {
        for r in &rows.rows {
            let Some((id, mut rec)) = Self::parse_run(st, rows, r) else {
                continue;
            };
            st.watermark = st.watermark.max(id);
            if st.evicted.contains(&id) {
                if !rec.state.active() {
                    continue;
                }
                // Cleared and running again: tracked anew, its next
                // completion is a new one.
                st.evicted.remove(&id);
                st.runs.insert(id, rec);
                continue;
            }
            if let Some(old) = st.runs.get(&id) {
                // A cleared run starts over: its next completion counts
                // again, but only for the task instances that ran again.
                let restarted = rec.state.active() && !old.state.active();
                if restarted {
                    rec.counted_tasks = old.tasks.clone().or_else(|| old.counted_tasks.clone());
                } else {
                    rec.counted = old.counted;
                    rec.observed = old.observed;
                    rec.counted_tasks = old.counted_tasks.clone();
                    if rec.state == old.state {
                        rec.tasks = old.tasks.clone();
                    }
                }
            } else if !initialized {
                // Finished before windsock looked: part of the window, but
                // not a completion windsock observed.
                rec.counted = !rec.state.active();
            } else if id > new_from {
                *st.run_creations.entry(rec.dag.clone()).or_insert(0) += 1;
            }
            if !rec.state.active() && !rec.counted && initialized {
                rec.counted = true;
                rec.observed = true;
                *st.run_completions
                    .entry((rec.dag.clone(), rec.state.label()))
                    .or_insert(0) += 1;
            }
            if rec.state == RunState::Success {
                let t = rec.end.or(rec.start).unwrap_or(0.0);
                let e = st.last_success.entry(rec.dag.clone()).or_insert(t);
                *e = e.max(t);
            }
            st.runs.insert(id, rec);
        }
    }

    async fn fetch_runs(
        &self,
        db: &Db,
        schema: &Schema,
        timeout: Duration,
    ) -> Result<usize, DiagError> {
        let now = now_unix();
        let window = self.ctx.window.as_secs_f64();
        let mut rows_read = 0;
        let initialized = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .initialized;
        if !initialized {
            // Walk back by primary key until the runs are older than the window.
            let mut cursor: Option<i64> = None;
            loop {
                let rows = db.query(&q::page(schema, cursor), timeout).await?;
                rows_read += rows.rows.len();
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                Self::merge(&mut st, &rows, false, i64::MAX);
                let oldest = rows
                    .rows
                    .last()
                    .and_then(|r| rows.column("id").and_then(|i| r[i].as_f64()))
                    .map(|id| id as i64);
                let oldest_time = oldest
                    .and_then(|id| st.runs.get(&id))
                    .and_then(RunRec::time);
                drop(st);
                match (oldest, oldest_time) {
                    (Some(id), Some(t)) if rows.rows.len() == PAGE && t > now - window => {
                        cursor = Some(id)
                    }
                    (Some(id), None) if rows.rows.len() == PAGE => cursor = Some(id),
                    _ => break,
                }
            }
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.initialized = true;
            Self::prune(&mut st, now - window);
            return Ok(rows_read);
        }

        let watermark = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .watermark;
        let new = db.query(&q::new_runs(schema, watermark), timeout).await?;
        let active = db.query(&q::active_runs(schema), timeout).await?;
        rows_read += new.rows.len() + active.rows.len();
        let was_active: Vec<i64> = {
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            // Ids below the overlap read are known or old: never new.
            let new_from = watermark - OVERLAP;
            Self::merge(&mut st, &new, true, new_from);
            let active_ids = ids(&active);
            Self::merge(&mut st, &active, true, new_from);
            st.runs
                .iter()
                .filter(|(id, r)| r.state.active() && !active_ids.contains(id))
                .map(|(id, _)| *id)
                .collect()
        };
        for chunk in was_active.chunks(500) {
            let rows = db.query(&q::runs_by_id(schema, chunk), timeout).await?;
            rows_read += rows.rows.len();
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            Self::merge(&mut st, &rows, true, i64::MAX);
            // Deleted runs disappear.
            let seen = ids(&rows);
            for id in chunk {
                if !seen.contains(id) {
                    st.runs.remove(id);
                }
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        Self::prune(&mut st, now - window);
        Ok(rows_read)
    }

    /// Drops finished runs older than the window, remembering those whose
    /// ids the next overlap read will return again.
    fn prune(st: &mut State, since: f64) {
        let overlap_from = st.watermark - OVERLAP;
        let old: Vec<i64> = st
            .runs
            .iter()
            .filter(|(_, r)| !r.state.active() && r.time().is_none_or(|t| t <= since))
            .map(|(id, _)| *id)
            .collect();
        for id in old {
            st.runs.remove(&id);
            if id > overlap_from {
                st.evicted.insert(id);
            }
        }
        st.evicted.retain(|id| *id > overlap_from);
    }

    /// Reads the task instances (and their failed tries) of finished runs
    /// that have none yet.
    async fn fetch_tasks(
        &self,
        db: &Db,
        schema: &Schema,
        timeout: Duration,
    ) -> Result<usize, DiagError> {
        let pending: Vec<(i64, String, String)> = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.runs
                .iter()
                .filter(|(_, r)| !r.state.active() && r.tasks.is_none())
                .map(|(id, r)| (*id, r.dag.to_string(), r.run_id.clone()))
                .collect()
        };
        let mut rows_read = 0;
        for chunk in pending.chunks(RUN_BATCH) {
            let binds: Vec<String> = chunk
                .iter()
                .flat_map(|(_, dag, run)| [dag.clone(), run.clone()])
                .collect();
            let cond = q::run_cond(chunk.len(), &|n| db.placeholder(n));
            let tis = db
                .query_bind(&q::task_instances(schema.dialect, &cond), &binds, timeout)
                .await?;
            let (failures, read) = read_failures(db, schema, &cond, &binds, timeout).await?;
            rows_read += tis.rows.len() + read;
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            let mut by_run: HashMap<(String, String), Vec<TaskRec>> = HashMap::new();
            for r in &tis.rows {
                if let Some((key, rec)) = task_rec(&mut st, &tis, r, &failures) {
                    by_run.entry(key).or_default().push(rec);
                }
            }
            for (id, dag, run) in chunk {
                let tasks = by_run
                    .remove(&(dag.clone(), run.clone()))
                    .unwrap_or_default();
                Self::count_task_completions(&mut st, *id, dag, &tasks);
                if let Some(r) = st.runs.get_mut(id) {
                    r.tasks = Some(tasks);
                    r.observed = false;
                    r.counted_tasks = None;
                }
            }
        }
        Ok(rows_read)
    }

    /// Counts the task instances of a run whose completion windsock
    /// observed; of a cleared run that completed again, only those that
    /// ran again (another try or another final state than counted before).
    fn count_task_completions(st: &mut State, id: i64, dag: &str, tasks: &[TaskRec]) {
        let Some(run) = st.runs.get(&id).filter(|r| r.observed) else {
            return;
        };
        let counted: HashSet<(Arc<str>, i64, u32, Arc<str>)> = run
            .counted_tasks
            .iter()
            .flatten()
            .map(|t| (t.task.clone(), t.map_index, t.tries, t.state.clone()))
            .collect();
        let dag = st.intern(dag);
        for t in tasks {
            if counted.contains(&(t.task.clone(), t.map_index, t.tries, t.state.clone())) {
                continue;
            }
            *st.task_completions
                .entry((dag.clone(), t.state.clone()))
                .or_insert(0) += 1;
        }
    }

    /// Reads the start and end of the task instances of running runs, for
    /// the concurrency peak (a run's task instances are otherwise read when
    /// it finishes). Bounded by the runs active now.
    async fn fetch_live_tasks(
        &self,
        db: &Db,
        schema: &Schema,
        timeout: Duration,
    ) -> Result<usize, DiagError> {
        let running: Vec<(String, String)> = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.runs
                .values()
                .filter(|r| r.state == RunState::Running)
                .map(|r| (r.dag.to_string(), r.run_id.clone()))
                .collect()
        };
        let mut live = Vec::new();
        for chunk in running.chunks(RUN_BATCH) {
            let binds: Vec<String> = chunk
                .iter()
                .flat_map(|(dag, run)| [dag.clone(), run.clone()])
                .collect();
            let cond = q::run_cond(chunk.len(), &|n| db.placeholder(n));
            let rows = db
                .query_bind(&q::live_tasks(schema.dialect, &cond), &binds, timeout)
                .await?;
            live.extend(rows.rows.iter().filter_map(|r| Some((f(&r[0])?, f(&r[1])))));
        }
        let read = live.len();
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .live_tasks = live;
        Ok(read)
    }

    /// Audit-log events counted from the `log` primary key.
    async fn fetch_log(&self, db: &Db, timeout: Duration) -> Result<usize, DiagError> {
        let wm = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .log_watermark;
        let Some(wm) = wm else {
            // Start counting from now.
            let rows = db
                .query("SELECT MAX(id) AS max_id FROM log", timeout)
                .await?;
            let max = rows.rows.first().and_then(|r| r[0].as_f64()).unwrap_or(0.0) as i64;
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.log_watermark = Some(max);
            st.log_floor = max;
            return Ok(1);
        };
        let rows = db.query(&q::log_events(wm), timeout).await?;
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut max = wm;
        for r in &rows.rows {
            let id = r[0].as_f64().unwrap_or(0.0) as i64;
            // Rows that predate windsock, and rows already counted, are not
            // counted (again).
            if id <= st.log_floor || !st.log_seen.insert(id) {
                continue;
            }
            *st.log_events.entry(r[1].as_label()).or_insert(0) += 1;
            max = max.max(id);
        }
        st.log_watermark = Some(max);
        let floor = max - OVERLAP;
        st.log_seen.retain(|id| *id > floor);
        Ok(rows.rows.len())
    }

    /// The latest success of DAGs that have none in the window (once per DAG).
    async fn fetch_old_successes(
        &self,
        db: &Db,
        schema: &Schema,
        dags: &[String],
        timeout: Duration,
    ) -> Result<usize, DiagError> {
        let missing: Vec<String> = {
            let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            dags.iter()
                .filter(|d| {
                    !st.last_success.contains_key(d.as_str()) && !st.looked_up.contains(d.as_str())
                })
                .cloned()
                .collect()
        };
        let mut read = 0;
        for chunk in missing.chunks(RUN_BATCH) {
            // Each DAG id is bound twice (`?` placeholders are positional).
            let binds: Vec<String> = chunk.iter().flat_map(|d| [d.clone(), d.clone()]).collect();
            let rows = db
                .query_bind(
                    &q::latest_successes(schema, chunk.len(), &|n| db.placeholder(n)),
                    &binds,
                    timeout,
                )
                .await?;
            read += rows.rows.len();
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            for dag in chunk {
                let a = st.intern(dag);
                st.looked_up.insert(a);
            }
            for r in &rows.rows {
                if let Some(t) = r[1].as_f64() {
                    let a = st.intern(&r[0].as_label());
                    st.last_success.insert(a, t);
                }
            }
        }
        Ok(read)
    }
}

#[async_trait]
impl Diagnostic for History {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn metrics(&self) -> &[Arc<MetricSpec>] {
        &self.metrics
    }

    fn reset(&self) {
        *self.state.lock().unwrap_or_else(|p| p.into_inner()) = State::default();
    }

    fn explain_sql(&self, schema: &Schema) -> Vec<String> {
        let d = schema.dialect;
        let lit = |n: usize| format!("'x{n}'");
        let cond = q::run_cond(3, &lit);
        let mut out = vec![
            q::page(schema, None),
            q::page(schema, Some(1000)),
            q::new_runs(schema, 1000),
            q::active_runs(schema),
            q::runs_by_id(schema, &[1, 2, 3]),
            q::task_instances(d, &cond),
            q::live_tasks(d, &cond),
            q::LOG_START.to_owned(),
            q::log_events(1000),
            q::latest_successes(schema, 2, &lit),
        ];
        if schema.has(Capability::TaskInstanceHistory) {
            out.push(q::failed_tries("task_instance_history", &cond));
        }
        if schema.has(Capability::TaskFail) {
            out.push(q::failed_tries("task_fail", &cond));
        }
        out
    }

    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError> {
        let mut rows = self.fetch_runs(db, schema, timeout).await?;
        rows += self.fetch_tasks(db, schema, timeout).await?;
        rows += self.fetch_live_tasks(db, schema, timeout).await?;
        rows += self.fetch_log(db, timeout).await?;
        let deadline_dags = if self.ctx.deadlines.is_empty() {
            Vec::new()
        } else {
            let paused = sql::is_true("is_paused");
            let all = db
                .query(
                    &format!("SELECT dag_id FROM dag WHERE NOT ({paused})"),
                    timeout,
                )
                .await?;
            rows += all.rows.len();
            let matching: Vec<String> = all
                .rows
                .iter()
                .map(|r| r[0].as_label())
                .filter(|d| {
                    self.ctx
                        .deadlines
                        .iter()
                        .any(|dl| glob_match(&dl.dag_id, d))
                })
                .collect();
            rows += self
                .fetch_old_successes(db, schema, &matching, timeout)
                .await?;
            matching
        };
        let now = now_unix();
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        self.anchor_never_succeeded(&mut st, &deadline_dags, now);
        let families = self.compute(&st, &deadline_dags, now);
        Ok(Output { families, rows })
    }
}

impl History {
    fn compute(&self, st: &State, deadline_dags: &[String], now: f64) -> Vec<Family> {
        let window = self.ctx.window.as_secs_f64();
        let half = now - window / 2.0;
        let mut s: Vec<Vec<(Vec<String>, f64)>> = vec![Vec::new(); m::COUNT];

        // Per DAG run statistics.
        #[derive(Default)]
        struct DagAcc {
            success: u32,
            failed: u32,
            durations: Vec<f64>,
            recent: Vec<f64>,
            older: Vec<f64>,
            delays: Vec<f64>,
            retried: u32,
            retried_ok: u32,
            cascades: u32,
        }
        let mut dags: BTreeMap<&str, DagAcc> = BTreeMap::new();
        #[derive(Default)]
        struct TaskAcc {
            durations: Vec<f64>,
            failed: u32,
            retries: u32,
        }
        let mut tasks: BTreeMap<(&str, &str), TaskAcc> = BTreeMap::new();
        let mut waits: BTreeMap<(&str, &str), Vec<f64>> = BTreeMap::new();
        for r in st.runs.values() {
            let acc = dags.entry(&r.dag).or_default();
            match r.state {
                RunState::Success => acc.success += 1,
                RunState::Failed => acc.failed += 1,
                _ => {}
            }
            if let (false, Some(s0), Some(e0)) = (r.state.active(), r.start, r.end) {
                let d = (e0 - s0).max(0.0);
                acc.durations.push(d);
                if e0 >= half {
                    acc.recent.push(d)
                } else {
                    acc.older.push(d)
                }
            }
            if let (true, false, Some(ie), Some(start)) =
                (r.scheduled, r.cleared, r.interval_end, r.start.or(r.queued))
            {
                acc.delays.push((start - ie).max(0.0));
            }
            if let Some(ts) = &r.tasks {
                let failed_tasks = ts.iter().filter(|t| &*t.state == "failed").count();
                if failed_tasks >= CASCADE_TASKS {
                    acc.cascades += 1;
                }
                for t in ts {
                    if t.retries > 0 {
                        acc.retried += 1;
                        if &*t.state == "success" {
                            acc.retried_ok += 1;
                        }
                    }
                    let ta = tasks.entry((&r.dag, &t.task)).or_default();
                    ta.failed += t.failed_tries;
                    ta.retries += t.retries;
                    if &*t.state == "success"
                        && let Some(d) = t.seconds()
                    {
                        ta.durations.push(d);
                    }
                    if let Some(w) = t.queue_wait {
                        waits.entry((&t.pool, &t.queue)).or_default().push(w);
                    }
                }
            }
        }
        for (dag, a) in dags {
            let d = dag.to_string();
            if a.success + a.failed > 0 {
                s[m::SUCCESS_RATIO].push((
                    vec![d.clone()],
                    f64::from(a.success) / f64::from(a.success + a.failed),
                ));
                s[m::OUTCOMES].push((vec![d.clone(), "success".into()], f64::from(a.success)));
                s[m::OUTCOMES].push((vec![d.clone(), "failed".into()], f64::from(a.failed)));
            }
            if !a.durations.is_empty() {
                let mean = a.durations.iter().sum::<f64>() / a.durations.len() as f64;
                let v = sorted(a.durations);
                for (stat, val) in [
                    ("p50", pct(&v, 0.5)),
                    ("p95", pct(&v, 0.95)),
                    ("max", pct(&v, 1.0)),
                    ("mean", mean),
                ] {
                    s[m::RUN_DURATION].push((vec![d.clone(), stat.into()], val));
                }
            }
            if !a.recent.is_empty() && !a.older.is_empty() {
                let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
                let older = mean(&a.older);
                if older > 0.0 {
                    s[m::RUN_TREND].push((vec![d.clone()], mean(&a.recent) / older));
                }
            }
            if !a.delays.is_empty() {
                let v = sorted(a.delays);
                for (stat, val) in [
                    ("p50", pct(&v, 0.5)),
                    ("p95", pct(&v, 0.95)),
                    ("max", pct(&v, 1.0)),
                ] {
                    s[m::SCHEDULE_DELAY].push((vec![d.clone(), stat.into()], val));
                }
            }
            if a.retried > 0 {
                s[m::RETRY_SUCCESS].push((
                    vec![d.clone()],
                    f64::from(a.retried_ok) / f64::from(a.retried),
                ));
            }
            s[m::CASCADES].push((vec![d], f64::from(a.cascades)));
        }
        for ((dag, task), a) in tasks {
            let labels = vec![dag.to_string(), task.to_string()];
            s[m::TASK_FAILURES].push((labels.clone(), f64::from(a.failed)));
            s[m::TASK_RETRIES].push((labels.clone(), f64::from(a.retries)));
            if !a.durations.is_empty() {
                let n = a.durations.len() as f64;
                let mean = a.durations.iter().sum::<f64>() / n;
                let var = a.durations.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
                let v = sorted(a.durations);
                for (stat, val) in [
                    ("p50", pct(&v, 0.5)),
                    ("p95", pct(&v, 0.95)),
                    ("max", pct(&v, 1.0)),
                    ("stddev", var.sqrt()),
                ] {
                    let mut l = labels.clone();
                    l.push(stat.into());
                    s[m::TASK_DURATION].push((l, val));
                }
            }
        }
        for ((pool, queue), v) in waits {
            let v = sorted(v);
            for (stat, val) in [
                ("p50", pct(&v, 0.5)),
                ("p95", pct(&v, 0.95)),
                ("max", pct(&v, 1.0)),
            ] {
                s[m::QUEUE_WAIT]
                    .push((vec![pool.to_string(), queue.to_string(), stat.into()], val));
            }
        }
        // Concurrency from timestamps.
        for (period, from) in [("1h", now - 3600.0), ("window", now - window)] {
            let runs = peak(
                st.runs.values().filter_map(|r| Some((r.start?, r.end))),
                from,
                now,
            );
            s[m::CONCURRENCY].push((vec!["dag_runs".into(), period.into()], runs));
            let tis = peak(
                st.runs
                    .values()
                    .filter_map(|r| r.tasks.as_ref())
                    .flatten()
                    .filter_map(|t| Some((t.start?, Some(t.end?))))
                    .chain(st.live_tasks.iter().copied()),
                from,
                now,
            );
            s[m::CONCURRENCY].push((vec!["task_instances".into(), period.into()], tis));
        }
        for ((dag, state), n) in &st.run_completions {
            s[m::RUN_COMPLETIONS].push((vec![dag.to_string(), state.to_string()], *n as f64));
        }
        for ((dag, state), n) in &st.task_completions {
            s[m::TASK_COMPLETIONS].push((vec![dag.to_string(), state.to_string()], *n as f64));
        }
        for (dag, n) in &st.run_creations {
            s[m::RUN_CREATIONS].push((vec![dag.to_string()], *n as f64));
        }
        for (event, n) in &st.log_events {
            s[m::LOG_EVENTS].push((vec![event.clone()], *n as f64));
        }
        for (dag, t) in &st.last_success {
            s[m::LAST_SUCCESS].push((vec![dag.to_string()], *t));
        }
        for dl in &self.ctx.deadlines {
            for dag in deadline_dags.iter().filter(|d| glob_match(&dl.dag_id, d)) {
                let lateness = deadline_lateness(dl, dag, st, now);
                let labels = vec![dag.clone(), dl.name.clone()];
                s[m::DEADLINE_MISSED].push((labels.clone(), f64::from(u8::from(lateness > 0.0))));
                s[m::DEADLINE_LATENESS].push((labels, lateness));
            }
        }
        Family::zip(&self.metrics, s)
    }
}

impl History {
    /// Fixes, for each `max_age_since_success` deadline, the time from which
    /// a DAG that never succeeded counts: its oldest run in the window, or
    /// when windsock first saw it without a success. Forgotten once the DAG
    /// succeeds.
    fn anchor_never_succeeded(&self, st: &mut State, dags: &[String], now: f64) {
        for dl in self
            .ctx
            .deadlines
            .iter()
            .filter(|d| d.max_age_since_success.is_some())
        {
            for dag in dags.iter().filter(|d| glob_match(&dl.dag_id, d)) {
                let key = (dl.name.clone(), st.intern(dag));
                if st.last_success.contains_key(dag.as_str()) {
                    st.never_succeeded_since.remove(&key);
                    continue;
                }
                let oldest_run = st
                    .runs
                    .values()
                    .filter(|r| &*r.dag == dag.as_str())
                    .filter_map(RunRec::time)
                    .fold(now, f64::min);
                st.never_succeeded_since.entry(key).or_insert(oldest_run);
            }
        }
    }
}

/// Seconds past the deadline (0 when met). The worst of its conditions.
fn deadline_lateness(dl: &DeadlineSettings, dag: &str, st: &State, now: f64) -> f64 {
    let mut late: f64 = 0.0;
    if let Some(max_age) = dl.max_age_since_success {
        let since = st.last_success.get(dag).copied().or_else(|| {
            st.never_succeeded_since
                .get(&(dl.name.clone(), Arc::from(dag)))
                .copied()
        });
        late = late.max(now - since.unwrap_or(now) - max_age.as_secs_f64());
    }
    if let Some(max_run) = dl.max_run_duration {
        for r in st
            .runs
            .values()
            .filter(|r| &*r.dag == dag && r.state.active())
        {
            if let Some(s) = r.start {
                late = late.max(now - s - max_run.as_secs_f64());
            }
        }
    }
    if let Some(at) = dl.succeed_by.as_deref().and_then(parse_time_of_day) {
        let day = (now / 86_400.0).floor() * 86_400.0;
        let mut due = day + f64::from(at);
        if due > now {
            due -= 86_400.0;
        }
        // Met by a successful run for the deadline's day: one whose data
        // interval ended that day (a daily run of the day before ends at
        // its midnight), or, without a data interval, that ended that day.
        // Yesterday's run succeeding late does not meet today's deadline.
        let day_start = (due / 86_400.0).floor() * 86_400.0;
        let met = st.runs.values().any(|r| {
            &*r.dag == dag
                && r.state == RunState::Success
                && r.interval_end.or(r.end).is_some_and(|t| t >= day_start)
        });
        if !met {
            late = late.max(now - due);
        }
    }
    late.max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_counts_overlaps_not_touching_intervals() {
        let iv = vec![
            (0.0, Some(10.0)),
            (5.0, Some(15.0)),
            (10.0, Some(20.0)),
            (12.0, None),
        ];
        assert_eq!(peak(iv.into_iter(), 0.0, 30.0), 3.0);
        assert_eq!(
            peak(
                vec![(0.0, Some(1.0)), (1.0, Some(2.0))].into_iter(),
                0.0,
                5.0
            ),
            1.0
        );
        assert_eq!(peak(vec![(0.0, Some(1.0))].into_iter(), 2.0, 5.0), 0.0);
    }

    #[test]
    fn percentiles() {
        let v = sorted(vec![5.0, 1.0, 3.0, 2.0, 4.0]);
        assert_eq!(pct(&v, 0.5), 3.0);
        assert_eq!(pct(&v, 0.95), 5.0);
        assert_eq!(pct(&v, 1.0), 5.0);
        assert_eq!(pct(&[], 0.5), 0.0);
    }

    /// A state with one run of DAG `d` per entry: state, start, end, end
    /// of its data interval; successes also set the latest success.
    fn state_with(runs: &[(RunState, f64, Option<f64>, Option<f64>)]) -> State {
        let mut st = State::default();
        let dag = st.intern("d");
        for (i, (state, start, end, interval_end)) in runs.iter().enumerate() {
            if *state == RunState::Success {
                st.last_success.insert(dag.clone(), end.unwrap_or(*start));
            }
            st.runs.insert(
                i as i64,
                RunRec {
                    dag: dag.clone(),
                    run_id: format!("r{i}"),
                    state: *state,
                    scheduled: true,
                    cleared: false,
                    queued: Some(*start),
                    start: Some(*start),
                    end: *end,
                    interval_end: *interval_end,
                    tasks: None,
                    counted_tasks: None,
                    counted: false,
                    observed: false,
                },
            );
        }
        st
    }

    fn dl(
        succeed_by: Option<&str>,
        max_run: Option<u64>,
        max_age: Option<u64>,
    ) -> DeadlineSettings {
        DeadlineSettings {
            name: "x".into(),
            dag_id: "d".into(),
            succeed_by: succeed_by.map(str::to_owned),
            max_run_duration: max_run.map(Duration::from_secs),
            max_age_since_success: max_age.map(Duration::from_secs),
        }
    }

    #[test]
    fn deadlines() {
        use RunState::{Running, Success};
        let day = 1_795_000_000.0_f64.div_euclid(86_400.0) * 86_400.0;
        let now = day + 7.0 * 3600.0; // 07:00 UTC
        let by_six = dl(Some("06:00"), None, None);
        // Yesterday's run (its interval ended yesterday) succeeding late,
        // today at 05:00, does not meet today's 06:00 deadline.
        let yesterdays = (
            Success,
            day + 4.0 * 3600.0,
            Some(day + 5.0 * 3600.0),
            Some(day - 86_400.0),
        );
        assert_eq!(
            deadline_lateness(&by_six, "d", &state_with(&[yesterdays]), now),
            3600.0
        );
        // Today's run (its interval ended at midnight) succeeding at 06:30,
        // late, clears it.
        let todays = (
            Success,
            day + 6.0 * 3600.0,
            Some(day + 6.5 * 3600.0),
            Some(day),
        );
        assert_eq!(
            deadline_lateness(&by_six, "d", &state_with(&[yesterdays, todays]), now),
            0.0
        );
        // Before 06:00, yesterday's deadline applies, met by yesterday's run.
        let early = day + 3600.0;
        let on_time = (
            Success,
            day - 86_400.0 + 60.0,
            Some(day - 86_400.0 + 600.0),
            Some(day - 86_400.0),
        );
        assert_eq!(
            deadline_lateness(&by_six, "d", &state_with(&[on_time]), early),
            0.0
        );
        // Max run duration.
        let st = state_with(&[(Running, now - 7200.0, None, None)]);
        assert_eq!(
            deadline_lateness(&dl(None, Some(3600), None), "d", &st, now),
            3600.0
        );
        // Max age since success.
        let st = state_with(&[(Success, now - 200.0, Some(now - 100.0), None)]);
        assert_eq!(
            deadline_lateness(&dl(None, None, Some(60)), "d", &st, now),
            40.0
        );
        assert_eq!(
            deadline_lateness(&dl(None, None, Some(600)), "d", &st, now),
            0.0
        );
        // Never succeeded: late from the anchor, growing with time.
        let mut st = state_with(&[]);
        st.never_succeeded_since
            .insert(("x".into(), "d".into()), now - 1000.0);
        let max_age = dl(None, None, Some(60));
        assert_eq!(deadline_lateness(&max_age, "d", &st, now), 940.0);
        assert_eq!(deadline_lateness(&max_age, "d", &st, now + 100.0), 1040.0);
    }
}
