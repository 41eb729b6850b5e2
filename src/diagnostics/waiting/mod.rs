//! Why a task waits: every task instance scheduled, queued or deferred, and
//! every DAG run queued, for longer than `[thresholds] task_waiting`, with
//! the limit that holds it, decided from DB state the way Airflow's
//! scheduler decides it ([`rules`]; docs/waiting.md).
//!
//! Source: the waiting task instances (`ti_state` index) with their DAG run
//! and DAG (primary keys) and trigger; the running and queued ones
//! (`ti_state`) for concurrency; `slot_pool`; the live schedulers (`job`,
//! `job_type_heart`); the queued DAG runs (`dag_run` state index); the
//! serialized DAG of a DAG with task limits, only when its hash changed.
//! Cost: proportional to the work in flight, never to the table.
//!
//! Exported: counts per DAG, pool and reason, and the oldest waiting task
//! (or run) per reason, so the series stay bounded by DAGs × reasons.

mod rules;

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::dag_sizes::{metadata_sql, payload_json, payload_sql};
use super::{
    Aggregate, Category, Context, DiagError, Diagnostic, Family, Meta, MetricSpec, Output, sql,
};
use super::{components, pools, triggers};
use crate::airflow::Schema;
use crate::db::{Cell, Db, Dialect, Rows};
use rules::{Occupancy, QueuedRuns, Reason, Scene, TaskLimits, Waiting, WaitingTis};

/// Task limits of one DAG, with the serialized hash they were read from.
type Limits = (String, HashMap<String, TaskLimits>);

/// The `task_waiting` diagnostic.
#[derive(Debug)]
pub(super) struct TaskWaiting {
    meta: Meta,
    metrics: Vec<Arc<MetricSpec>>,
    ctx: Arc<Context>,
    /// Task limits per DAG, re-read when the DAG's serialized hash changes.
    limits: Mutex<HashMap<String, Limits>>,
}

pub(super) fn waiting(ctx: &Arc<Context>) -> TaskWaiting {
    let g = |name, help, labels: &[&'static str]| MetricSpec::gauge(name, help, "").labels(labels);
    TaskWaiting {
        meta: Meta {
            name: "task_waiting".into(),
            help: "Task instances and DAG runs waiting longer than thresholds.task_waiting, by what holds them".into(),
            source: "task_instance (ti_state index), dag_run, dag, slot_pool, trigger, job, serialized_dag".into(),
            cost: "the work in flight: waiting, running and queued rows; serialized DAGs with task limits when changed".into(),
            category: Category::Scheduling,
            // A wait matters after minutes (thresholds.task_waiting, 5 min).
            interval: Duration::from_secs(60),
            timeout: None,
            requires: Vec::new(),
        },
        metrics: vec![
            g("airflow_waiting_tasks", "Task instances scheduled, queued or deferred longer than thresholds.task_waiting, by DAG, pool and the reason they wait", &["dag_id", "pool", "reason"]),
            g("airflow_waiting_task_oldest_age_seconds", "How long the oldest task instance waiting for a reason has waited, and which task it is", &["reason", "dag_id", "task_id"]).seconds_since().merge(Aggregate::Min),
            g("airflow_waiting_dag_runs", "DAG runs queued longer than thresholds.task_waiting, by the reason they are not started", &["dag_id", "reason"]),
            g("airflow_waiting_dag_run_oldest_age_seconds", "How long the oldest DAG run waiting for a reason has been queued, and its DAG", &["reason", "dag_id"]).seconds_since().merge(Aggregate::Min),
        ]
        .into_iter()
        .map(Arc::new)
        .collect(),
        ctx: ctx.clone(),
        limits: Mutex::new(HashMap::new()),
    }
}

/// The live schedulers, by Airflow's health-check rule (the one
/// `component_liveness` counts with).
fn schedulers_sql(d: Dialect, ctx: &Context) -> String {
    format!(
        "SELECT COUNT(*) AS alive FROM job WHERE job_type = 'SchedulerJob' AND {}",
        components::alive(d, ctx)
    )
}

/// Since when a waiting task instance waits, by its state.
fn since_expr(schema: &Schema) -> String {
    let scheduled = if schema.has_column("task_instance", "scheduled_dttm") {
        "COALESCE(ti.scheduled_dttm, ti.updated_at)"
    } else {
        "ti.updated_at"
    };
    format!(
        "CASE ti.state WHEN 'scheduled' THEN {scheduled} \
         WHEN 'queued' THEN COALESCE(ti.queued_dttm, ti.updated_at) ELSE ti.updated_at END"
    )
}

/// The waiting task instances, per (dag, run, task, state, pool).
fn waiting_sql(schema: &Schema, ctx: &Context) -> String {
    let d = schema.dialect;
    let since = since_expr(schema);
    let limits = if schema.has_column("dag", "has_task_concurrency_limits") {
        sql::is_true("dg.has_task_concurrency_limits")
    } else {
        "1 = 1".to_owned()
    };
    // Grouped first, then joined to the run and the DAG by key: the joins
    // see one row per group.
    format!(
        "SELECT w.dag_id AS dag_id, w.run_id AS run_id, w.task_id AS task_id, w.state AS state, \
                w.pool AS pool, w.pool_slots AS pool_slots, w.n AS n, w.since AS since, \
                CASE WHEN dr.state = 'running' THEN 1 ELSE 0 END AS run_running, \
                CASE WHEN dr.run_type = 'backfill' THEN 1 ELSE 0 END AS backfill, \
                CASE WHEN {paused} THEN 1 ELSE 0 END AS paused, \
                dg.max_active_tasks AS max_active_tasks, \
                CASE WHEN {limits} THEN 1 ELSE 0 END AS task_limits, \
                w.trigger_live AS trigger_live \
         FROM (SELECT ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.pool, \
                      MAX(ti.pool_slots) AS pool_slots, COUNT(*) AS n, \
                      MIN({since_epoch}) AS since, \
                      MAX(CASE WHEN ti.trigger_id IN (SELECT t.id FROM {trigger} t \
                            WHERE t.triggerer_id IN ({live})) \
                          THEN 1 ELSE 0 END) AS trigger_live \
               FROM task_instance ti \
               WHERE ti.state IN ('scheduled', 'queued', 'deferred') AND {since} < {ago} \
               GROUP BY ti.dag_id, ti.run_id, ti.task_id, ti.state, ti.pool) w \
         JOIN dag_run dr ON dr.dag_id = w.dag_id AND dr.run_id = w.run_id \
         LEFT JOIN dag dg ON dg.dag_id = w.dag_id",
        since_epoch = sql::epoch(d, &since),
        paused = sql::is_true("dg.is_paused"),
        trigger = triggers::trigger_table(d),
        live = triggers::live_triggerers(d, ctx),
        ago = sql::ago(d, ctx.thresholds.task_waiting),
    )
}

/// Running and queued task instances (Airflow's `EXECUTION_STATES`).
fn active_sql() -> String {
    "SELECT dag_id, run_id, task_id, COUNT(*) AS n FROM task_instance \
     WHERE state IN ('running', 'queued') GROUP BY dag_id, run_id, task_id"
        .to_owned()
}

/// Queued DAG runs per DAG (backfill runs are the backfill's business: the
/// `backfills` diagnostic), with the DAG's running runs.
fn runs_sql(schema: &Schema, ctx: &Context) -> String {
    let d = schema.dialect;
    let due = if schema.has_column("dag_run", "run_after") {
        "dr.run_after"
    } else {
        "dr.execution_date"
    };
    // Grouped per DAG first; each DAG's running runs counted by index.
    format!(
        "SELECT q.dag_id AS dag_id, q.n AS n, q.since AS since, \
                CASE WHEN {paused} THEN 1 ELSE 0 END AS paused, \
                dg.max_active_runs AS max_active_runs, \
                (SELECT COUNT(*) FROM dag_run r WHERE r.dag_id = q.dag_id \
                   AND r.state = 'running' AND r.run_type <> 'backfill') AS running \
         FROM (SELECT dr.dag_id AS dag_id, COUNT(*) AS n, MIN({queued}) AS since \
               FROM dag_run dr \
               WHERE dr.state = 'queued' AND dr.run_type <> 'backfill' \
                 AND dr.queued_at < {ago} AND {due} <= {now} \
               GROUP BY dr.dag_id) q \
         LEFT JOIN dag dg ON dg.dag_id = q.dag_id",
        queued = sql::epoch(d, "dr.queued_at"),
        paused = sql::is_true("dg.is_paused"),
        ago = sql::ago(d, ctx.thresholds.task_waiting),
        now = sql::now(d),
    )
}

/// A named column of `rows`, or a mapping error.
fn col(rows: &Rows, name: &str) -> Result<usize, DiagError> {
    rows.column(name)
        .ok_or_else(|| DiagError::Mapping(format!("column {name} missing")))
}

fn num(c: &Cell) -> Option<f64> {
    c.as_f64()
}

fn flag(c: &Cell) -> bool {
    num(c).is_some_and(|v| v != 0.0)
}

fn count(c: &Cell) -> u64 {
    num(c).map_or(0, |v| v.max(0.0) as u64)
}

fn parse_waiting(rows: &Rows) -> Result<Vec<WaitingTis>, DiagError> {
    if rows.rows.is_empty() {
        return Ok(Vec::new());
    }
    let c = |n| col(rows, n);
    let (dag, run, task, state, pool) = (
        c("dag_id")?,
        c("run_id")?,
        c("task_id")?,
        c("state")?,
        c("pool")?,
    );
    let backfill = c("backfill")?;
    let (slots, n, since, running) = (c("pool_slots")?, c("n")?, c("since")?, c("run_running")?);
    let (paused, mat, limits, live) = (
        c("paused")?,
        c("max_active_tasks")?,
        c("task_limits")?,
        c("trigger_live")?,
    );
    Ok(rows
        .rows
        .iter()
        .map(|r| WaitingTis {
            dag_id: r[dag].as_label(),
            run_id: r[run].as_label(),
            task_id: r[task].as_label(),
            state: match r[state].as_label().as_str() {
                "queued" => Waiting::Queued,
                "deferred" => Waiting::Deferred,
                _ => Waiting::Scheduled,
            },
            pool: r[pool].as_label(),
            pool_slots: num(&r[slots]).unwrap_or(1.0),
            count: count(&r[n]),
            since: num(&r[since]).unwrap_or(f64::NAN),
            run_running: flag(&r[running]),
            backfill: flag(&r[backfill]),
            dag_paused: flag(&r[paused]),
            max_active_tasks: num(&r[mat]).map(|v| v.max(0.0) as u64),
            task_limits: flag(&r[limits]),
            trigger_live: flag(&r[live]),
        })
        .collect())
}

fn parse_occupancy(active: &Rows, pools: &Rows) -> Result<Occupancy, DiagError> {
    let mut occ = Occupancy::default();
    if !active.rows.is_empty() {
        let (dag, run, task, n) = (
            col(active, "dag_id")?,
            col(active, "run_id")?,
            col(active, "task_id")?,
            col(active, "n")?,
        );
        for r in &active.rows {
            let (d, ru, t, n) = (
                r[dag].as_label(),
                r[run].as_label(),
                r[task].as_label(),
                count(&r[n]),
            );
            *occ.per_dag.entry(d.clone()).or_default() += n;
            *occ.per_run.entry((d.clone(), ru.clone())).or_default() += n;
            *occ.per_task.entry((d.clone(), t.clone())).or_default() += n;
            *occ.per_run_task.entry((d, ru, t)).or_default() += n;
        }
    }
    if !pools.rows.is_empty() {
        let (pool, slots, open) = (
            col(pools, "pool")?,
            col(pools, "slots")?,
            col(pools, "free")?,
        );
        for r in &pools.rows {
            let total = num(&r[slots]).unwrap_or(0.0);
            let (total, open) = if total < 0.0 {
                (f64::INFINITY, f64::INFINITY)
            } else {
                (total, num(&r[open]).unwrap_or(total))
            };
            occ.pools.insert(r[pool].as_label(), (total, open));
        }
    }
    Ok(occ)
}

fn parse_runs(rows: &Rows) -> Result<Vec<QueuedRuns>, DiagError> {
    if rows.rows.is_empty() {
        return Ok(Vec::new());
    }
    let c = |n| col(rows, n);
    let (dag, n, since, paused, mar, running) = (
        c("dag_id")?,
        c("n")?,
        c("since")?,
        c("paused")?,
        c("max_active_runs")?,
        c("running")?,
    );
    Ok(rows
        .rows
        .iter()
        .map(|r| QueuedRuns {
            dag_id: r[dag].as_label(),
            count: count(&r[n]),
            since: num(&r[since]).unwrap_or(f64::NAN),
            dag_paused: flag(&r[paused]),
            max_active_runs: num(&r[mar]).map(|v| v.max(0.0) as u64),
            running: count(&r[running]),
        })
        .collect())
}

/// The task limits in a payload query's result (none without a row).
fn payload_limits(p: &Rows) -> Result<HashMap<String, TaskLimits>, String> {
    let Some(r) = p.rows.first() else {
        return Ok(HashMap::new());
    };
    let at = |n: &str| p.column(n).ok_or_else(|| format!("column {n} missing"));
    let json = payload_json(&r[at("data")?], &r[at("data_compressed")?])?;
    let v = serde_json::from_str(&json).map_err(|e| e.to_string())?;
    Ok(rules::task_limits(&v))
}

/// Counts and the oldest item per reason.
struct Tally<K: Ord> {
    counts: BTreeMap<K, u64>,
    oldest: BTreeMap<Reason, (f64, Vec<String>)>,
}

impl<K: Ord> Tally<K> {
    fn new() -> Self {
        Tally {
            counts: BTreeMap::new(),
            oldest: BTreeMap::new(),
        }
    }

    fn add(&mut self, key: K, reason: Reason, n: u64, since: f64, who: Vec<String>) {
        *self.counts.entry(key).or_default() += n;
        let e = self
            .oldest
            .entry(reason)
            .or_insert((f64::INFINITY, Vec::new()));
        // Ties (tasks scheduled in one scheduler loop) go to the first name,
        // so the labels do not change with the order rows come back in.
        if since < e.0 || (since == e.0 && who < e.1) {
            *e = (since, who);
        }
    }

    fn oldest(&self) -> Vec<(Vec<String>, f64)> {
        self.oldest
            .iter()
            .filter(|(_, (t, _))| t.is_finite())
            .map(|(r, (t, who))| {
                let mut labels = vec![r.as_str().to_owned()];
                labels.extend(who.iter().cloned());
                (labels, *t)
            })
            .collect()
    }
}

impl TaskWaiting {
    /// Task limits of the DAGs with task limits among `dags`, from their
    /// serialized DAG (read again only when its hash changed).
    async fn task_limits(
        &self,
        db: &Db,
        schema: &Schema,
        dags: &[String],
        timeout: Duration,
    ) -> Result<HashMap<(String, String), TaskLimits>, DiagError> {
        let mut out = HashMap::new();
        if dags.is_empty() {
            return Ok(out);
        }
        let marks: Vec<String> = (1..=dags.len()).map(|i| db.placeholder(i)).collect();
        let meta_sql = format!(
            "{} WHERE s.dag_id IN ({})",
            metadata_sql(schema),
            marks.join(", ")
        );
        let meta = db.query_bind(&meta_sql, dags, timeout).await?;
        let mut stale: Vec<(String, String, String)> = Vec::new();
        if !meta.rows.is_empty() {
            let (dag, hash, row) = (
                col(&meta, "dag_id")?,
                col(&meta, "dag_hash")?,
                col(&meta, "row_id")?,
            );
            let cache = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            for r in &meta.rows {
                let (d, h) = (r[dag].as_label(), r[hash].as_label());
                if cache.get(&d).is_none_or(|(seen, _)| *seen != h) {
                    stale.push((r[row].as_label(), d, h));
                }
            }
        }
        for (row_id, dag, hash) in stale {
            let sql = payload_sql(schema, 1, &|i| db.placeholder(i));
            // A DAG whose payload cannot be read counts as having no task
            // limits: one bad DAG must not blank every waiting series.
            let parsed = match db.query_bind(&sql, &[row_id], timeout).await {
                Ok(p) => match payload_limits(&p) {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(dag_id = %dag, error = %e, "Serialized DAG unreadable; its task limits are not checked.");
                        HashMap::new()
                    }
                },
                Err(e) => {
                    // Not cached: read again next run.
                    tracing::warn!(dag_id = %dag, error = %e, "Serialized DAG not read; its task limits are not checked this run.");
                    continue;
                }
            };
            let mut cache = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            cache.insert(dag, (hash, parsed));
        }
        let cache = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        for d in dags {
            for (task, l) in cache.get(d).map(|(_, l)| l.iter()).into_iter().flatten() {
                out.insert((d.clone(), task.clone()), *l);
            }
        }
        Ok(out)
    }

    fn families(
        &self,
        tasks: &Tally<(String, String, Reason)>,
        runs: &Tally<(String, Reason)>,
    ) -> Vec<Family> {
        let t = tasks
            .counts
            .iter()
            .map(|((d, p, r), n)| (vec![d.clone(), p.clone(), r.as_str().to_owned()], *n as f64))
            .collect();
        let r = runs
            .counts
            .iter()
            .map(|((d, r), n)| (vec![d.clone(), r.as_str().to_owned()], *n as f64))
            .collect();
        Family::zip(&self.metrics, vec![t, tasks.oldest(), r, runs.oldest()])
    }
}

#[async_trait]
impl Diagnostic for TaskWaiting {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn metrics(&self) -> &[Arc<MetricSpec>] {
        &self.metrics
    }

    fn reset(&self) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    fn explain_sql(&self, schema: &Schema) -> Vec<String> {
        let meta = format!(
            "{} WHERE s.dag_id IN ('ws_a', 'ws_b')",
            metadata_sql(schema)
        );
        let payload = payload_sql(schema, 1, &|_| {
            "'00000000-0000-0000-0000-000000000001'".into()
        });
        vec![
            schedulers_sql(schema.dialect, &self.ctx),
            waiting_sql(schema, &self.ctx),
            active_sql(),
            pools::slots_sql(schema),
            runs_sql(schema, &self.ctx),
            meta,
            payload,
        ]
    }

    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError> {
        let ctx = &self.ctx;
        // One snapshot: what waits and what holds it, at the same instant.
        let sqls = [
            schedulers_sql(schema.dialect, ctx),
            waiting_sql(schema, ctx),
            active_sql(),
            pools::slots_sql(schema),
            runs_sql(schema, ctx),
        ];
        let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
        let [alive, waiting, active, pools, queued]: [Rows; 5] = db
            .query_snapshot(&refs, timeout)
            .await?
            .try_into()
            .map_err(|_| DiagError::Mapping("statement results missing".into()))?;
        let scheduler_alive = alive.rows.first().is_some_and(|r| count(&r[0]) > 0);
        let tis = parse_waiting(&waiting)?;
        let occupancy = parse_occupancy(&active, &pools)?;
        let mut with_limits: Vec<String> = tis
            .iter()
            .filter(|t| t.task_limits && t.state == Waiting::Scheduled)
            .map(|t| t.dag_id.clone())
            .collect();
        with_limits.sort();
        with_limits.dedup();
        let limits = self.task_limits(db, schema, &with_limits, timeout).await?;
        let scene = Scene {
            scheduler_alive,
            max_active_tasks_per_run: schema.major >= 3,
            backfill_by_job: schema.major < 3,
            occupancy: &occupancy,
            limits: &limits,
        };
        let mut tasks = Tally::new();
        for t in &tis {
            let reason = rules::task_reason(t, &scene);
            let who = vec![t.dag_id.clone(), t.task_id.clone()];
            tasks.add(
                (t.dag_id.clone(), t.pool.clone(), reason),
                reason,
                t.count,
                t.since,
                who,
            );
        }
        let mut runs = Tally::new();
        for r in parse_runs(&queued)? {
            let reason = rules::run_reason(&r, scheduler_alive);
            runs.add(
                (r.dag_id.clone(), reason),
                reason,
                r.count,
                r.since,
                vec![r.dag_id.clone()],
            );
        }
        let rows = alive.rows.len()
            + waiting.rows.len()
            + active.rows.len()
            + pools.rows.len()
            + queued.rows.len();
        Ok(Output {
            families: self.families(&tasks, &runs),
            rows,
        })
    }
}
