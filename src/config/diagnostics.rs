//! Settings of the diagnostics registry: windows, thresholds, per-diagnostic
//! overrides, cardinality limits, deadlines and user-defined queries.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::humantime_serde_compat;

/// `[diagnostics]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DiagnosticsSettings {
    /// Look-back window of windowed diagnostics (success rates, durations,
    /// failures, traffic). The original toolbox's `analysis_days` (7 days).
    #[serde(with = "humantime_serde_compat")]
    pub window: Duration,
    /// Per-diagnostic overrides, keyed by diagnostic name
    /// (`[diagnostics.overrides.dag_sizes]`).
    pub overrides: BTreeMap<String, DiagnosticOverride>,
}

impl Default for DiagnosticsSettings {
    fn default() -> Self {
        DiagnosticsSettings {
            window: Duration::from_secs(7 * 86_400),
            overrides: BTreeMap::new(),
        }
    }
}

/// `[diagnostics.overrides.<name>]`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticOverride {
    /// Turn the diagnostic off (`false`) or on.
    pub enabled: Option<bool>,
    /// Run every this long instead of the built-in interval.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub interval: Option<Duration>,
    /// Deadline of one run.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub timeout: Option<Duration>,
}

/// `[thresholds]`: values diagnostics need inside their SQL, and that the
/// report judges findings against. Alert thresholds live in the alert rules.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// A running task whose heartbeat is older than this is a zombie
    /// candidate. Airflow's own `task_instance_heartbeat_timeout` /
    /// `scheduler_zombie_task_threshold` default is 300 s; windsock reports
    /// candidates before Airflow kills them when this is lower.
    #[serde(with = "humantime_serde_compat")]
    pub zombie_heartbeat_age: Duration,
    /// A scheduler counts as alive when its job is running and heartbeated
    /// within this: Airflow's `[scheduler] scheduler_health_check_threshold`
    /// (30 s). Set it to your Airflow's value.
    #[serde(with = "humantime_serde_compat")]
    pub scheduler_alive: Duration,
    /// The same for a triggerer: `[triggerer] triggerer_health_check_threshold`
    /// (30 s).
    #[serde(with = "humantime_serde_compat")]
    pub triggerer_alive: Duration,
    /// Triggers one triggerer runs at most: `[triggerer] capacity` (1000).
    pub triggerer_capacity: u32,
    /// A task instance scheduled, queued or deferred for longer than this,
    /// or a DAG run queued for longer, is *waiting*: the `task_waiting`
    /// diagnostic names what holds it.
    #[serde(with = "humantime_serde_compat")]
    pub task_waiting: Duration,
    /// The same for a dag-processor, which Airflow judges by its heartrate:
    /// `[scheduler] job_heartbeat_sec` (5 s) times 2.1.
    #[serde(with = "humantime_serde_compat")]
    pub dag_processor_alive: Duration,
    /// How long a component whose job ended (stopped, failed, or killed and
    /// no longer heartbeating) stays visible per host, as not alive.
    #[serde(with = "humantime_serde_compat")]
    pub component_lookback: Duration,
    /// Serialized DAG size the report calls large (original: 5 MB).
    pub large_dag_bytes: u64,
    /// Serialized DAG size the report calls critical (original: 10 MB).
    pub critical_dag_bytes: u64,
    /// Minimum DAG success rate, 0-1 (original: 95 %).
    pub min_success_rate: f64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            zombie_heartbeat_age: Duration::from_secs(300),
            scheduler_alive: Duration::from_secs(30),
            triggerer_alive: Duration::from_secs(30),
            dag_processor_alive: Duration::from_millis(10_500),
            triggerer_capacity: 1000,
            task_waiting: Duration::from_secs(300),
            component_lookback: Duration::from_secs(86_400),
            large_dag_bytes: 5 * 1024 * 1024,
            critical_dag_bytes: 10 * 1024 * 1024,
            min_success_rate: 0.95,
        }
    }
}

/// `[cardinality]`: bounds on the series windsock exports.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CardinalitySettings {
    /// Only DAGs matching one of these globs (`*`, `?`) get per-DAG series.
    /// Empty: every DAG.
    pub include_dags: Vec<String>,
    /// DAGs matching one of these globs get no per-DAG series.
    pub exclude_dags: Vec<String>,
    /// Most series per metric family and environment; the largest values
    /// are kept. 0: no limit.
    pub max_series_per_family: usize,
    /// Labels to drop per family (`{ airflow_task_duration_seconds = ["task_id"] }`);
    /// series that become identical are merged (summed, or the maximum for
    /// ages and timestamps).
    pub drop_labels: BTreeMap<String, Vec<String>>,
    /// Most series in one scrape over all families. Families that do not
    /// fit are left out whole (per-task ones first, then per-DAG ones),
    /// named in `windsock_series_dropped{family}` and logged.
    pub max_series: usize,
}

impl Default for CardinalitySettings {
    fn default() -> Self {
        CardinalitySettings {
            include_dags: Vec::new(),
            exclude_dags: Vec::new(),
            max_series_per_family: 0,
            drop_labels: BTreeMap::new(),
            max_series: 100_000,
        }
    }
}

/// `[[deadlines]]`: windsock's own SLA, evaluated from the DB on every
/// Airflow version (Airflow 3 removed SLAs).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadlineSettings {
    /// Name, the `deadline` label.
    pub name: String,
    /// DAG id, or a glob matching several.
    pub dag_id: String,
    /// A run must have succeeded by this UTC time of day (`"06:30"`), for
    /// the run whose data interval ended that day.
    #[serde(default)]
    pub succeed_by: Option<String>,
    /// A run may not run longer than this.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub max_run_duration: Option<Duration>,
    /// The latest success may not be older than this.
    #[serde(default, with = "humantime_serde_compat::option")]
    pub max_age_since_success: Option<Duration>,
}

/// `[[queries]]`: a user-defined diagnostic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuerySettings {
    /// Unique name (the `diagnostic` label).
    pub name: String,
    /// One-line description.
    #[serde(default)]
    pub help: String,
    /// Run every this long.
    #[serde(default = "default_query_interval", with = "humantime_serde_compat")]
    pub interval: Duration,
    /// Deadline of one run (default: collection.default_timeout).
    #[serde(default, with = "humantime_serde_compat::option")]
    pub timeout: Option<Duration>,
    /// The SQL: one string for every dialect, or per dialect.
    pub sql: QuerySql,
    /// How result columns become metrics.
    pub metrics: Vec<QueryMetric>,
}

fn default_query_interval() -> Duration {
    Duration::from_secs(60)
}

/// SQL of a user-defined query.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum QuerySql {
    /// The same SQL everywhere.
    Any(String),
    /// Per dialect; a target whose dialect has none skips the query.
    PerDialect(PerDialectSql),
}

/// `sql = { postgres = "…", mysql = "…", sqlite = "…" }`
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerDialectSql {
    /// PostgreSQL.
    pub postgres: Option<String>,
    /// MySQL / MariaDB.
    pub mysql: Option<String>,
    /// SQLite.
    pub sqlite: Option<String>,
}

/// `[[queries.metrics]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryMetric {
    /// Metric name (counters without `_total`).
    pub name: String,
    /// Help text.
    #[serde(default)]
    pub help: String,
    /// `gauge` or `counter`.
    #[serde(rename = "type", default = "default_metric_type")]
    pub kind: String,
    /// Columns that become labels.
    #[serde(default)]
    pub key_labels: Vec<String>,
    /// Value columns.
    pub values: Vec<String>,
    /// Label telling several value columns apart.
    #[serde(default)]
    pub value_label: Option<String>,
    /// Fixed labels.
    #[serde(default)]
    pub static_labels: BTreeMap<String, String>,
}

fn default_metric_type() -> String {
    "gauge".to_owned()
}
