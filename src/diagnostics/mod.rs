//! The diagnostics registry.
//!
//! A diagnostic is SQL per dialect plus a declaration of how its result
//! columns become metrics ([`MetricSpec`]: key label columns, value columns,
//! optional value label, static labels) — the same model as sql_exporter's
//! collectors, so built-in diagnostics and user-defined queries are the same
//! kind of thing. Rust code is only for what SQL cannot do; such diagnostics
//! implement [`Diagnostic`] themselves.
//!
//! Every built-in is listed once, in [`builtin`]. Each lives in its own file
//! with its SQL beside its metric declarations.

mod asset_queue;
mod backfills;
mod backlog;
mod callbacks;
mod components;
pub mod custom;
mod dag_runs;
mod dag_sizes;
mod dag_warnings;
mod dags;
mod db_health;
mod deadline_alerts;
mod history;
mod hitl;
mod import_errors;
mod liveness;
mod owners;
mod parsing;
mod pools;
mod reschedules;
mod running;
mod schedules;
mod sla;
pub mod sql;
pub mod sql_guard;
mod task_instances;
mod triggers;
mod waiting;
mod zombies;

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

use crate::airflow::{Capability, Schema};
use crate::config::{DeadlineSettings, PerDialectSql, Settings, Thresholds};
use crate::db::{Db, DbError, Dialect, Rows};

/// Grouping used by reports and docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    /// DAG definitions: counts, sizes, parsing.
    Dags,
    /// Runs and task instances: states, durations.
    Runs,
    /// Scheduler, triggerer, dag-processor liveness.
    Components,
    /// SLA misses and deadlines.
    Sla,
    /// Backlog, delays, missed schedules.
    Scheduling,
    /// Pools, executor, zombie candidates.
    Resources,
    /// The metadata database itself.
    Database,
    /// User-defined queries.
    Custom,
}

impl Category {
    /// Lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            Category::Dags => "dags",
            Category::Runs => "runs",
            Category::Components => "components",
            Category::Sla => "sla",
            Category::Scheduling => "scheduling",
            Category::Resources => "resources",
            Category::Database => "database",
            Category::Custom => "custom",
        }
    }
}

/// Prometheus metric type of a declared metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// A value that goes up and down.
    Gauge,
    /// A monotonically increasing count; exposed with `_total`.
    Counter,
    /// A constant 1 whose labels carry the information; exposed with `_info`.
    Info,
}

/// How the columns of a result map to one metric family.
#[derive(Debug, Clone, PartialEq)]
pub struct MetricSpec {
    /// Full metric name (for counters without `_total`, for info metrics
    /// without `_info`: the encoder adds the suffix).
    pub name: Cow<'static, str>,
    /// One-line help text.
    pub help: Cow<'static, str>,
    /// Metric type.
    pub kind: MetricKind,
    /// Columns whose values become labels of the same name.
    pub key_labels: Vec<Cow<'static, str>>,
    /// Columns holding values. With more than one, `value_label` names the
    /// label that tells them apart (its value is the column name).
    pub values: Vec<Cow<'static, str>>,
    /// Label distinguishing several value columns.
    pub value_label: Option<Cow<'static, str>>,
    /// Labels with fixed values added to every series.
    pub static_labels: Vec<(Cow<'static, str>, Cow<'static, str>)>,
    /// The value is a UNIX timestamp; the metric exports the seconds elapsed
    /// since then, computed when scraped (so it stays exact between runs).
    pub seconds_since: bool,
    /// How series merge when cardinality limits drop a label.
    pub aggregate: Aggregate,
    /// Which families `[cardinality] max_series` drops first (`None`: by
    /// the labels, [`MetricSpec::priority`]).
    pub keep: Option<Priority>,
}

/// How much a family matters when `[cardinality] max_series` must drop
/// some: the global cap drops whole families, the lowest priority first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Priority {
    /// One series per environment or per small fixed set (components,
    /// pools, totals): kept longest.
    Essential,
    /// Per DAG (or per host, per pool).
    PerDag,
    /// Per task (a `task_id` label): dropped first.
    PerTask,
}

/// How values merge when a label is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Aggregate {
    /// Counts and sizes add up.
    #[default]
    Sum,
    /// The largest value (latest timestamp, longest duration).
    Max,
    /// The smallest value (oldest timestamp).
    Min,
}

impl MetricSpec {
    /// A gauge from one value column.
    pub fn gauge(name: &'static str, help: &'static str, value: &'static str) -> MetricSpec {
        MetricSpec {
            name: name.into(),
            help: help.into(),
            kind: MetricKind::Gauge,
            key_labels: Vec::new(),
            values: vec![value.into()],
            value_label: None,
            static_labels: Vec::new(),
            seconds_since: false,
            aggregate: Aggregate::Sum,
            keep: None,
        }
    }

    /// A counter from one value column.
    pub fn counter(name: &'static str, help: &'static str, value: &'static str) -> MetricSpec {
        MetricSpec {
            kind: MetricKind::Counter,
            ..MetricSpec::gauge(name, help, value)
        }
    }

    /// Merges series by this rule when a label is dropped.
    #[must_use]
    pub fn merge(mut self, aggregate: Aggregate) -> Self {
        self.aggregate = aggregate;
        self
    }

    /// Adds key label columns.
    #[must_use]
    pub fn labels(mut self, labels: &[&'static str]) -> Self {
        self.key_labels = labels.iter().map(|l| Cow::Borrowed(*l)).collect();
        self
    }

    /// Uses several value columns, told apart by `label`.
    #[must_use]
    pub fn value_columns(mut self, label: &'static str, columns: &[&'static str]) -> Self {
        self.value_label = Some(label.into());
        self.values = columns.iter().map(|c| Cow::Borrowed(*c)).collect();
        self
    }

    /// Exports seconds since the timestamp in the value column.
    #[must_use]
    pub fn seconds_since(mut self) -> Self {
        self.seconds_since = true;
        self
    }

    /// Its priority under the global series cap: as declared, else by its
    /// labels (`task_id`: per task; `dag_id`: per DAG; neither: essential).
    pub fn priority(&self) -> Priority {
        let has = |l: &str| self.key_labels.iter().any(|k| k == l);
        self.keep.unwrap_or(if has("task_id") {
            Priority::PerTask
        } else if has("dag_id") {
            Priority::PerDag
        } else {
            Priority::Essential
        })
    }

    /// Names of the labels of this family, in order (environment excluded).
    pub fn label_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.key_labels.iter().map(|l| l.to_string()).collect();
        if let Some(v) = &self.value_label {
            names.push(v.to_string());
        }
        names.extend(self.static_labels.iter().map(|(k, _)| k.to_string()));
        names
    }
}

/// One metric family's samples, as published to the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Family {
    /// The declaration it came from.
    pub spec: Arc<MetricSpec>,
    /// Label names, in the order of each sample's values.
    pub label_names: Arc<[String]>,
    /// Samples: label values and the value.
    pub samples: Vec<(Vec<String>, f64)>,
}

impl Family {
    /// One family per spec, each with its samples (specs and sample lists
    /// in the same order).
    pub fn zip(specs: &[Arc<MetricSpec>], samples: Vec<Vec<(Vec<String>, f64)>>) -> Vec<Family> {
        specs
            .iter()
            .zip(samples)
            .map(|(spec, samples)| Family {
                label_names: spec.label_names().into(),
                spec: spec.clone(),
                samples,
            })
            .collect()
    }
}

/// Static description of a diagnostic.
#[derive(Debug, Clone)]
pub struct Meta {
    /// Unique, snake_case name (the `diagnostic` label of self-metrics).
    pub name: Cow<'static, str>,
    /// One-line help.
    pub help: Cow<'static, str>,
    /// Category.
    pub category: Category,
    /// Default interval between runs.
    pub interval: Duration,
    /// Own deadline, if shorter or longer than the global default.
    pub timeout: Option<Duration>,
    /// Capabilities the schema must have.
    pub requires: Vec<Capability>,
    /// Tables (or catalogs) it reads, and through which indexes.
    pub source: Cow<'static, str>,
    /// What one run costs the database.
    pub cost: Cow<'static, str>,
}

/// Why a diagnostic does not apply to a schema. Not an error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Skip {
    /// The schema lacks a capability.
    #[error("needs {0}")]
    Missing(Capability),
    /// The diagnostic has no SQL for this dialect.
    #[error("not available on {0}")]
    Dialect(Dialect),
    /// The feature does not exist in this Airflow version.
    #[error("{0}")]
    Version(&'static str),
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// The database failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The result did not fit the declaration.
    #[error("result does not match the metric declaration: {0}")]
    Mapping(String),
}

impl DiagError {
    /// Stable error kind for the `kind` label.
    pub fn kind(&self) -> &'static str {
        match self {
            DiagError::Db(e) => e.kind(),
            DiagError::Mapping(_) => "mapping",
        }
    }
}

/// The output of one successful run.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// The families, one per declared metric.
    pub families: Vec<Family>,
    /// Rows the query returned.
    pub rows: usize,
}

/// A diagnostic: something that turns the metadata DB into metric families.
#[async_trait]
pub trait Diagnostic: Send + Sync + std::fmt::Debug {
    /// Name, help, category, schedule, requirements.
    fn meta(&self) -> &Meta;

    /// The metrics this diagnostic produces (declared up front, for docs,
    /// uniqueness checks and the alert/dashboard name check).
    fn metrics(&self) -> &[Arc<MetricSpec>];

    /// Whether it applies to this schema; the default checks `requires`.
    fn applies(&self, schema: &Schema) -> Result<(), Skip> {
        match self.meta().requires.iter().find(|c| !schema.has(**c)) {
            Some(c) => Err(Skip::Missing(*c)),
            None => Ok(()),
        }
    }

    /// Runs once.
    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError>;

    /// Forgets any state kept between runs (called when the schema changed).
    fn reset(&self) {}

    /// The statements a run issues, with literals in place of parameters,
    /// for `EXPLAIN` (the query-plan test) and documentation.
    fn explain_sql(&self, schema: &Schema) -> Vec<String>;
}

/// What diagnostics may depend on besides the schema: the window and the
/// thresholds from the configuration.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// Look-back window of windowed diagnostics.
    pub window: Duration,
    /// Thresholds.
    pub thresholds: Thresholds,
    /// windsock deadlines.
    pub deadlines: Vec<DeadlineSettings>,
}

impl Context {
    /// The context a configuration describes.
    pub fn from_settings(s: &Settings) -> Context {
        Context {
            window: s.diagnostics.window,
            thresholds: s.thresholds.clone(),
            deadlines: s.deadlines.clone(),
        }
    }
}

/// Builds the SQL of a [`SqlDiagnostic`] for a schema, or says why it
/// cannot run there.
pub type SqlBuilder = fn(&Schema, &Context) -> Result<String, Skip>;

/// Where a [`SqlDiagnostic`]'s SQL comes from.
#[derive(Debug, Clone)]
enum SqlSource {
    /// Built in Rust from the schema (built-ins).
    Builder(SqlBuilder),
    /// Fixed text per dialect (user-defined queries).
    Fixed(PerDialectSql),
}

/// The common case: one SELECT, its columns mapped by [`MetricSpec`]s.
#[derive(Debug)]
pub struct SqlDiagnostic {
    meta: Meta,
    sql: SqlSource,
    metrics: Vec<Arc<MetricSpec>>,
    ctx: Arc<Context>,
}

impl SqlDiagnostic {
    /// Declares a built-in SQL diagnostic.
    pub fn new(meta: Meta, sql: SqlBuilder, metrics: Vec<MetricSpec>) -> SqlDiagnostic {
        SqlDiagnostic {
            meta,
            sql: SqlSource::Builder(sql),
            metrics: metrics.into_iter().map(Arc::new).collect(),
            ctx: Arc::new(Context::default()),
        }
    }

    /// Declares a diagnostic with fixed SQL per dialect.
    pub fn fixed(meta: Meta, sql: PerDialectSql, metrics: Vec<MetricSpec>) -> SqlDiagnostic {
        SqlDiagnostic {
            meta,
            sql: SqlSource::Fixed(sql),
            metrics: metrics.into_iter().map(Arc::new).collect(),
            ctx: Arc::new(Context::default()),
        }
    }

    /// Gives the diagnostic its context.
    #[must_use]
    pub fn with_context(mut self, ctx: &Arc<Context>) -> SqlDiagnostic {
        self.ctx = ctx.clone();
        self
    }

    /// The SQL it would run on `schema` (for `EXPLAIN` tests and `check`).
    pub fn sql_for(&self, schema: &Schema) -> Result<String, Skip> {
        match &self.sql {
            SqlSource::Builder(b) => b(schema, &self.ctx),
            SqlSource::Fixed(per) => {
                let text = match schema.dialect {
                    Dialect::Postgres => &per.postgres,
                    Dialect::MySql => &per.mysql,
                    Dialect::Sqlite => &per.sqlite,
                };
                text.clone().ok_or(Skip::Dialect(schema.dialect))
            }
        }
    }
}

#[async_trait]
impl Diagnostic for SqlDiagnostic {
    fn meta(&self) -> &Meta {
        &self.meta
    }

    fn metrics(&self) -> &[Arc<MetricSpec>] {
        &self.metrics
    }

    fn applies(&self, schema: &Schema) -> Result<(), Skip> {
        match self.meta.requires.iter().find(|c| !schema.has(**c)) {
            Some(c) => Err(Skip::Missing(*c)),
            None => self.sql_for(schema).map(|_| ()),
        }
    }

    fn explain_sql(&self, schema: &Schema) -> Vec<String> {
        self.sql_for(schema).into_iter().collect()
    }

    async fn run(&self, db: &Db, schema: &Schema, timeout: Duration) -> Result<Output, DiagError> {
        let sql = self
            .sql_for(schema)
            .map_err(|s| DiagError::Mapping(s.to_string()))?;
        // User-defined SQL runs on a connection closed afterwards: whatever
        // it did to its session stays there.
        let rows = match self.sql {
            SqlSource::Fixed(_) => db.query_isolated(&sql, timeout).await?,
            SqlSource::Builder(_) => db.query(&sql, timeout).await?,
        };
        let families = map_rows(&rows, &self.metrics)?;
        Ok(Output {
            families,
            rows: rows.rows.len(),
        })
    }
}

/// Maps result rows to families. Rows whose value is NULL produce no
/// sample; two rows with the same labels are an error.
pub fn map_rows(rows: &Rows, specs: &[Arc<MetricSpec>]) -> Result<Vec<Family>, DiagError> {
    let find = |name: &str| {
        rows.column(name).ok_or_else(|| {
            DiagError::Mapping(format!(
                "column `{name}` is missing (got: {})",
                rows.columns.join(", ")
            ))
        })
    };
    let mut out = Vec::with_capacity(specs.len());
    for spec in specs {
        let label_names: Arc<[String]> = spec.label_names().into();
        let mut samples = Vec::new();
        if !rows.rows.is_empty() {
            let key_idx = spec
                .key_labels
                .iter()
                .map(|l| find(l))
                .collect::<Result<Vec<_>, _>>()?;
            let value_idx = spec
                .values
                .iter()
                .map(|v| find(v).map(|i| (v, i)))
                .collect::<Result<Vec<_>, _>>()?;
            let mut seen = HashSet::new();
            for row in &rows.rows {
                for (value_name, vi) in &value_idx {
                    let Some(value) = row[*vi].as_f64() else {
                        if matches!(row[*vi], crate::db::Cell::Null) {
                            continue;
                        }
                        return Err(DiagError::Mapping(format!(
                            "value column `{value_name}` holds a non-number: {:?}",
                            row[*vi].as_label()
                        )));
                    };
                    let mut labels: Vec<String> =
                        key_idx.iter().map(|i| row[*i].as_label()).collect();
                    if spec.value_label.is_some() {
                        labels.push(value_name.to_string());
                    }
                    labels.extend(spec.static_labels.iter().map(|(_, v)| v.to_string()));
                    if !seen.insert(labels.clone()) {
                        return Err(DiagError::Mapping(format!(
                            "metric `{}`: two rows have the labels {labels:?}",
                            spec.name
                        )));
                    }
                    samples.push((labels, value));
                }
            }
        }
        out.push(Family {
            spec: spec.clone(),
            label_names,
            samples,
        });
    }
    Ok(out)
}

/// The built-in diagnostics, in one explicit list. Each call makes new
/// instances: stateful diagnostics keep per-target state.
pub fn builtin(ctx: &Arc<Context>) -> Vec<Arc<dyn Diagnostic>> {
    let sql = |d: SqlDiagnostic| -> Arc<dyn Diagnostic> { Arc::new(d.with_context(ctx)) };
    vec![
        // DAGs
        sql(dags::states()),
        sql(import_errors::count()),
        sql(owners::owners()),
        Arc::new(dag_sizes::sizes()),
        sql(parsing::freshness()),
        sql(parsing::bundles()),
        sql(dag_warnings::warnings()),
        // Runs and tasks in flight
        sql(dag_runs::active()),
        sql(task_instances::active()),
        sql(running::runs()),
        sql(running::tasks()),
        Arc::new(history::history(ctx)),
        sql(backfills::progress()),
        // SLA
        sql(sla::misses()),
        sql(deadline_alerts::alerts()),
        // Scheduling and resources
        sql(backlog::backlog()),
        sql(schedules::overdue()),
        sql(pools::slots()),
        sql(asset_queue::queue()),
        sql(callbacks::backlog()),
        sql(hitl::pending()),
        sql(zombies::candidates()),
        Arc::new(waiting::waiting(ctx)),
        Arc::new(reschedules::reschedules()),
        // Components
        sql(components::heartbeats()),
        sql(liveness::alive_counts()),
        sql(triggers::assignment()),
        sql(triggers::load()),
        sql(triggers::timeouts()),
        // The metadata DB itself
        sql(db_health::tables()),
        sql(db_health::indexes()),
        sql(db_health::activity()),
        sql(db_health::growth()),
    ]
}

/// Diagnostics that run only when `[diagnostics.overrides.<name>]` enables
/// them.
pub const OFF_BY_DEFAULT: &[&str] = &["dag_owners"];

/// A diagnostic with its effective schedule.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The diagnostic.
    pub diagnostic: Arc<dyn Diagnostic>,
    /// Interval between runs (built-in default or override).
    pub interval: Duration,
    /// Deadline of one run.
    pub timeout: Duration,
}

/// The shortest interval a diagnostic may run at: `0s` would be a hot loop
/// of queries against the Airflow database.
pub const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Builds the registry a configuration asks for: built-ins and
/// user-defined queries, overrides applied, disabled ones left out. Called
/// once per target, so stateful diagnostics never share state.
pub fn registry(settings: &Settings) -> Result<Vec<Planned>, String> {
    let ctx = Arc::new(Context::from_settings(settings));
    let mut list = builtin(&ctx);
    for (i, q) in settings.queries.iter().enumerate() {
        let at = |e: String| format!("queries[{i}] (`{}`): {e}", q.name);
        let d = custom::build(q).map_err(at)?;
        for existing in &list {
            if existing.meta().name == d.meta().name {
                return Err(at("the name is taken by another diagnostic".to_owned()));
            }
            if let Some(m) = d
                .metrics()
                .iter()
                .find(|m| existing.metrics().iter().any(|e| e.name == m.name))
            {
                return Err(at(format!(
                    "metric `{}` is produced by two diagnostics (also `{}`)",
                    m.name,
                    existing.meta().name
                )));
            }
        }
        list.push(Arc::new(d.with_context(&ctx)));
    }
    check_unique(&list)?;
    for (name, o) in &settings.diagnostics.overrides {
        if !list.iter().any(|d| d.meta().name == name.as_str()) {
            return Err(format!(
                "diagnostics.overrides.{name}: no diagnostic is called `{name}` (see `windsock check` or docs/metrics.md)"
            ));
        }
        if o.interval.is_some_and(|i| i < MIN_INTERVAL) {
            return Err(format!(
                "diagnostics.overrides.{name}.interval: must be at least {MIN_INTERVAL:?} \
                 (each run is a query on the Airflow database)"
            ));
        }
    }
    let default_timeout = settings.collection.default_timeout;
    Ok(list
        .into_iter()
        .filter_map(|d| {
            let o = settings
                .diagnostics
                .overrides
                .get(d.meta().name.as_ref())
                .cloned()
                .unwrap_or_default();
            let default_on = !OFF_BY_DEFAULT.contains(&d.meta().name.as_ref());
            if !o.enabled.unwrap_or(default_on) {
                return None;
            }
            Some(Planned {
                interval: o.interval.unwrap_or(d.meta().interval),
                timeout: o.timeout.or(d.meta().timeout).unwrap_or(default_timeout),
                diagnostic: d,
            })
        })
        .collect())
}

/// Checks that diagnostic names and metric names are unique across `list`.
pub fn check_unique(list: &[Arc<dyn Diagnostic>]) -> Result<(), String> {
    let mut names = HashSet::new();
    let mut metrics = HashSet::new();
    for d in list {
        if !names.insert(d.meta().name.clone()) {
            return Err(format!(
                "diagnostic `{}` is registered twice",
                d.meta().name
            ));
        }
        for m in d.metrics() {
            if !metrics.insert(m.name.clone()) {
                return Err(format!(
                    "metric `{}` is produced by two diagnostics",
                    m.name
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Cell;

    fn rows(columns: &[&str], data: Vec<Vec<Cell>>) -> Rows {
        Rows {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: data,
        }
    }

    #[test]
    fn builtins_are_unique() {
        check_unique(&builtin(&Arc::new(Context::default()))).unwrap();
    }

    #[test]
    fn maps_value_columns_and_labels() {
        let spec = Arc::new(
            MetricSpec::gauge("airflow_x", "X", "")
                .labels(&["pool"])
                .value_columns("state", &["queued", "running"]),
        );
        let r = rows(
            &["pool", "queued", "running"],
            vec![
                vec![Cell::Text("default".into()), Cell::Int(3), Cell::Float(1.5)],
                vec![
                    Cell::Text("tiny".into()),
                    Cell::Null,
                    Cell::Text("2".into()),
                ],
            ],
        );
        let fams = map_rows(&r, &[spec]).unwrap();
        assert_eq!(&*fams[0].label_names, ["pool", "state"]);
        assert_eq!(
            fams[0].samples,
            vec![
                (vec!["default".into(), "queued".into()], 3.0),
                (vec!["default".into(), "running".into()], 1.5),
                (vec!["tiny".into(), "running".into()], 2.0),
            ]
        );
    }

    #[test]
    fn duplicate_series_and_missing_columns_are_errors() {
        let spec = Arc::new(MetricSpec::gauge("airflow_x", "X", "n").labels(&["k"]));
        let dup = rows(
            &["k", "n"],
            vec![
                vec![Cell::Text("a".into()), Cell::Int(1)],
                vec![Cell::Text("a".into()), Cell::Int(2)],
            ],
        );
        assert!(
            map_rows(&dup, std::slice::from_ref(&spec))
                .unwrap_err()
                .to_string()
                .contains("two rows")
        );
        let missing = rows(&["k"], vec![vec![Cell::Text("a".into())]]);
        assert!(
            map_rows(&missing, std::slice::from_ref(&spec))
                .unwrap_err()
                .to_string()
                .contains("`n` is missing")
        );
        let text = rows(
            &["k", "n"],
            vec![vec![Cell::Text("a".into()), Cell::Text("many".into())]],
        );
        assert!(
            map_rows(&text, &[spec])
                .unwrap_err()
                .to_string()
                .contains("non-number")
        );
    }
}
