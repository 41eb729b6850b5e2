//! Sensor reschedule churn: how often reschedule-mode sensors poke.
//!
//! A sensor in `mode="reschedule"` gives its slot back between pokes;
//! Airflow writes one `task_reschedule` row per poke that was not ready
//! (2.x keyed by dag_id/task_id/run_id, 3.x by the try's `ti_id`). A sensor
//! poking every few seconds across many runs loads the scheduler and the
//! DB: `rate()` of the counter shows who does.
//!
//! `task_reschedule` has no index on time, so windsock never scans it: the
//! first run notes the largest `id` (primary key), and each later run reads
//! only the rows above it, grouped per task. Cost: the new rows since the
//! last run (primary-key range), plus on 3.x one primary-key lookup of
//! `task_instance` per new row. A row committed after a later one (ids are
//! taken at insert) can be missed. When the ids go back below the mark
//! (rows deleted, a restore), counting starts again from the newest row.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::{Category, DiagError, Diagnostic, Family, Meta, MetricSpec, Output};
use crate::airflow::Schema;
use crate::db::Db;

#[derive(Debug, Default)]
struct State {
    /// Largest `task_reschedule.id` counted; `None` before the first run.
    seen: Option<i64>,
    /// Reschedules per (dag_id, task_id) since windsock started.
    counts: BTreeMap<(String, String), u64>,
}

/// The `sensor_reschedules` diagnostic.
#[derive(Debug)]
pub(super) struct Reschedules {
    meta: Meta,
    metrics: Vec<Arc<MetricSpec>>,
    state: Mutex<State>,
}

pub(super) fn reschedules() -> Reschedules {
    Reschedules {
        meta: Meta {
            name: "sensor_reschedules".into(),
            help: "Pokes of reschedule-mode sensors that were not ready (task_reschedule rows), counted as they appear".into(),
            source: "task_reschedule (primary key), task_instance (primary key, 3.x)".into(),
            cost: "only the rows written since the last run".into(),
            category: Category::Scheduling,
            interval: Duration::from_secs(30),
            timeout: None,
            requires: Vec::new(),
        },
        metrics: vec![Arc::new(
            MetricSpec::counter(
                "airflow_sensor_reschedules",
                "Reschedules of a reschedule-mode sensor (pokes that were not ready) since windsock started",
                "",
            )
            .labels(&["dag_id", "task_id"]),
        )],
        state: Mutex::new(State::default()),
    }
}

fn newest_sql() -> String {
    "SELECT MAX(id) AS newest FROM task_reschedule".to_owned()
}

/// The rows above `seen`, per task, with the largest id of each.
fn new_rows_sql(schema: &Schema, seen: i64) -> String {
    if schema.has_column("task_reschedule", "ti_id") {
        // Lookups by primary key per new row, whatever the planner thinks
        // of the tables' sizes.
        let of = |c: &str| format!("(SELECT ti.{c} FROM task_instance ti WHERE ti.id = tr.ti_id)");
        format!(
            "SELECT x.dag_id AS dag_id, x.task_id AS task_id, COUNT(*) AS n, MAX(x.id) AS newest \
             FROM (SELECT tr.id AS id, {dag} AS dag_id, {task} AS task_id \
                   FROM task_reschedule tr WHERE tr.id > {seen}) x \
             WHERE x.dag_id IS NOT NULL GROUP BY x.dag_id, x.task_id",
            dag = of("dag_id"),
            task = of("task_id"),
        )
    } else {
        format!(
            "SELECT dag_id, task_id, COUNT(*) AS n, MAX(id) AS newest FROM task_reschedule \
             WHERE id > {seen} GROUP BY dag_id, task_id"
        )
    }
}

impl Reschedules {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn families(&self, st: &State) -> Vec<Family> {
        let samples = st
            .counts
            .iter()
            .map(|((dag, task), n)| (vec![dag.clone(), task.clone()], *n as f64))
            .collect();
        Family::zip(&self.metrics, vec![samples])
    }
}

fn int(rows: &crate::db::Rows, row: usize, col: &str) -> Result<Option<i64>, DiagError> {
    let c = rows
        .column(col)
        .ok_or_else(|| DiagError::Mapping(format!("column {col} missing")))?;
    Ok(rows.rows[row][c].as_f64().map(|v| v as i64))
}

#[async_trait]
impl Diagnostic for Reschedules {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn metrics(&self) -> &[Arc<MetricSpec>] {
        &self.metrics
    }

    fn reset(&self) {
        *self.lock() = State::default();
    }

    fn explain_sql(&self, schema: &Schema) -> Vec<String> {
        vec![newest_sql(), new_rows_sql(schema, 0)]
    }

    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError> {
        let seen = self.lock().seen;
        let mut sqls = vec![newest_sql()];
        if let Some(s) = seen {
            sqls.push(new_rows_sql(schema, s));
        }
        let refs: Vec<&str> = sqls.iter().map(String::as_str).collect();
        let out = db.query_snapshot(&refs, timeout).await?;
        let newest = match out[0].rows.is_empty() {
            true => 0,
            false => int(&out[0], 0, "newest")?.unwrap_or(0),
        };
        let mut st = self.lock();
        let rows = out.iter().map(|r| r.rows.len()).sum();
        match seen {
            // Reset while the queries ran: start over next run.
            _ if st.seen != seen => {}
            // First run: count from the newest row on.
            None => st.seen = Some(newest),
            // Ids went back (rows deleted, a restore): nothing above the old
            // mark can be told apart, so count from the newest row again.
            Some(s) if newest < s => {
                tracing::info!(
                    newest,
                    seen = s,
                    "task_reschedule ids went back; counting from the newest row."
                );
                st.seen = Some(newest);
            }
            Some(_) => count_new(&mut st, &out[1])?,
        }
        Ok(Output {
            families: self.families(&st),
            rows,
        })
    }
}

/// Adds the per-task counts of `rows` and moves the mark past them.
fn count_new(st: &mut State, rows: &crate::db::Rows) -> Result<(), DiagError> {
    if rows.rows.is_empty() {
        return Ok(());
    }
    let (Some(dag), Some(task)) = (rows.column("dag_id"), rows.column("task_id")) else {
        return Err(DiagError::Mapping("dag_id/task_id columns missing".into()));
    };
    for i in 0..rows.rows.len() {
        let n = int(rows, i, "n")?.unwrap_or(0).max(0) as u64;
        let key = (rows.rows[i][dag].as_label(), rows.rows[i][task].as_label());
        *st.counts.entry(key).or_default() += n;
        if let Some(newest) = int(rows, i, "newest")? {
            st.seen = st.seen.max(Some(newest));
        }
    }
    Ok(())
}
