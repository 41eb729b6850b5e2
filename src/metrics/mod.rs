//! The in-memory snapshot that `/metrics` encodes, and the encoders.
//!
//! The runner publishes each diagnostic's families into the [`Store`],
//! replacing that diagnostic's previous families whole (so series whose
//! labels disappeared are gone). A scrape takes a read lock, encodes, and
//! never waits on the database. When a diagnostic fails, its last good
//! families stay published and the failure shows in the self-metrics
//! (`windsock_diagnostic_success`, `..._last_success_timestamp_seconds`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

pub mod limits;
mod process;

use crate::airflow::Schema;
use crate::diagnostics::{Family, MetricKind};

/// Content type of the OpenMetrics text format.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// Content type of the classic Prometheus text format.
pub const CLASSIC_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Seconds since the UNIX epoch, now.
pub fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// What the store knows about one diagnostic on one target.
#[derive(Debug, Clone, Default)]
pub struct DiagnosticState {
    /// Last published families (kept when a later run fails).
    pub families: Arc<Vec<Family>>,
    /// Whether the latest run succeeded.
    pub success: bool,
    /// Duration of the latest run, seconds.
    pub duration_seconds: f64,
    /// Rows returned by the latest successful run.
    pub rows: u64,
    /// UNIX time of the latest success.
    pub last_success: Option<f64>,
    /// Failures by error kind since start.
    pub errors: BTreeMap<&'static str, u64>,
    /// Runs since start.
    pub runs: u64,
}

/// What the store knows about one target.
#[derive(Debug, Clone, Default)]
pub struct TargetState {
    /// Whether the latest contact with the DB worked (`None`: not tried yet).
    pub up: Option<bool>,
    /// The detected schema.
    pub schema: Option<Arc<Schema>>,
    /// Per-diagnostic state, by diagnostic name.
    pub diagnostics: BTreeMap<String, DiagnosticState>,
    /// Whether the first round of collection has been attempted.
    pub first_round_done: bool,
}

/// The shared snapshot of everything `/metrics` shows.
#[derive(Debug, Default)]
pub struct Store {
    targets: RwLock<BTreeMap<String, TargetState>>,
    /// Bumped on every change, so encoders know when to re-encode.
    generation: AtomicU64,
    /// Most diagnostic series one scrape exports (0: no cap).
    max_series: AtomicUsize,
    /// Counters and gauges of windsock's own activities (admin API,
    /// interception, export), by metric name then label set.
    events: RwLock<EventMap>,
    /// The families the series cap left out of the latest encoding (logged
    /// when the set changes).
    dropped: std::sync::Mutex<Vec<String>>,
}

type EventMap = BTreeMap<&'static str, BTreeMap<Vec<(&'static str, String)>, f64>>;

impl Store {
    /// A store knowing these environments (so `windsock_up` exists from the
    /// first scrape).
    pub fn new<'a>(environments: impl IntoIterator<Item = &'a str>) -> Store {
        let targets = environments
            .into_iter()
            .map(|e| (e.to_owned(), TargetState::default()))
            .collect();
        Store {
            targets: RwLock::new(targets),
            generation: AtomicU64::new(0),
            max_series: AtomicUsize::new(0),
            events: RwLock::default(),
            dropped: std::sync::Mutex::default(),
        }
    }

    /// Logs the families the series cap leaves out, when they change.
    fn note_dropped(&self, dropped: &BTreeMap<&str, usize>) {
        let names: Vec<String> = dropped.keys().map(|n| (*n).to_owned()).collect();
        let mut last = self.dropped.lock().unwrap_or_else(|p| p.into_inner());
        if *last == names {
            return;
        }
        if names.is_empty() {
            tracing::info!("All metric families fit under [cardinality] max_series again.");
        } else {
            let series: usize = dropped.values().sum();
            tracing::warn!(
                families = %names.join(", "),
                series,
                max_series = self.max_series.load(Ordering::Relaxed),
                "[cardinality] max_series reached: these whole metric families are left out (per-task families first); raise max_series or narrow include_dags / drop_labels."
            );
        }
        *last = names;
    }

    /// Caps the diagnostic series of one scrape; the overflow is counted in
    /// `windsock_series_dropped`, never silently lost.
    #[must_use]
    pub fn with_max_series(self, max: usize) -> Store {
        self.set_max_series(max);
        self
    }

    /// Changes the series cap (a reloaded configuration).
    pub fn set_max_series(&self, max: usize) {
        self.max_series.store(max, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Keeps the state of these environments only, and knows each of them
    /// (a reloaded configuration: removed targets' series disappear, new
    /// ones report `windsock_up` from the start).
    pub fn retain_targets<'a>(&self, environments: impl IntoIterator<Item = &'a str>) {
        let keep: std::collections::BTreeSet<&str> = environments.into_iter().collect();
        let mut guard = self.targets.write().unwrap_or_else(|p| p.into_inner());
        guard.retain(|env, _| keep.contains(env.as_str()));
        for env in keep {
            guard.entry(env.to_owned()).or_default();
        }
        self.generation.fetch_add(1, Ordering::Release);
    }

    fn with_target<R>(&self, env: &str, f: impl FnOnce(&mut TargetState) -> R) -> R {
        let mut guard = self.targets.write().unwrap_or_else(|p| p.into_inner());
        self.generation.fetch_add(1, Ordering::Release);
        f(guard.entry(env.to_owned()).or_default())
    }

    /// A number that changes whenever the store changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Records whether the DB answered.
    pub fn set_up(&self, env: &str, up: bool) {
        self.with_target(env, |t| t.up = Some(up));
    }

    /// Records the detected schema; drops the diagnostics of the old one.
    pub fn set_schema(&self, env: &str, schema: Arc<Schema>) {
        self.with_target(env, |t| {
            if t.schema.as_deref() != Some(&schema) {
                t.diagnostics.clear();
            }
            t.schema = Some(schema);
        });
    }

    /// Marks the first collection round of `env` as attempted.
    pub fn set_first_round_done(&self, env: &str) {
        self.with_target(env, |t| t.first_round_done = true);
    }

    /// Publishes a successful run.
    pub fn publish(
        &self,
        env: &str,
        diagnostic: &str,
        families: Vec<Family>,
        rows: usize,
        secs: f64,
    ) {
        let now = now_unix();
        self.with_target(env, |t| {
            let d = t.diagnostics.entry(diagnostic.to_owned()).or_default();
            d.families = Arc::new(families);
            d.success = true;
            d.duration_seconds = secs;
            d.rows = rows as u64;
            d.last_success = Some(now);
            d.runs += 1;
        });
    }

    /// Records a failed run; the last good families stay.
    pub fn fail(&self, env: &str, diagnostic: &str, kind: &'static str, secs: f64) {
        self.with_target(env, |t| {
            let d = t.diagnostics.entry(diagnostic.to_owned()).or_default();
            d.success = false;
            d.duration_seconds = secs;
            *d.errors.entry(kind).or_default() += 1;
            d.runs += 1;
        });
    }

    /// Adds `delta` to the counter `name` (a [`SELF_METRICS`] entry) with
    /// these labels.
    pub fn add(&self, name: &'static str, labels: &[(&'static str, &str)], delta: f64) {
        self.update_event(name, labels, |v| *v += delta);
    }

    /// Sets the gauge `name` (a [`SELF_METRICS`] entry) with these labels.
    pub fn set(&self, name: &'static str, labels: &[(&'static str, &str)], value: f64) {
        self.update_event(name, labels, |v| *v = value);
    }

    /// The current value of an event counter or gauge (tests, `check`).
    pub fn event(&self, name: &str, labels: &[(&'static str, &str)]) -> Option<f64> {
        let key: Vec<(&'static str, String)> =
            labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let guard = self.events.read().unwrap_or_else(|p| p.into_inner());
        guard.get(name).and_then(|m| m.get(&key)).copied()
    }

    fn update_event(
        &self,
        name: &'static str,
        labels: &[(&'static str, &str)],
        f: impl FnOnce(&mut f64),
    ) {
        debug_assert!(
            SELF_METRICS.iter().any(|m| m.name == name),
            "undocumented metric {name}"
        );
        let key = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        let mut guard = self.events.write().unwrap_or_else(|p| p.into_inner());
        f(guard.entry(name).or_default().entry(key).or_insert(0.0));
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// Ready to be scraped: every target finished its first round and at
    /// least one diagnostic on one target succeeded.
    pub fn ready(&self) -> bool {
        let guard = self.targets.read().unwrap_or_else(|p| p.into_inner());
        // Every target tried once, and something was really collected: a
        // windsock whose every query failed has nothing to serve yet. One
        // target down does not hold the others' metrics back.
        !guard.is_empty()
            && guard.values().all(|t| t.first_round_done)
            && guard
                .values()
                .any(|t| t.diagnostics.values().any(|d| d.last_success.is_some()))
    }

    /// The detected schema of one target, without copying its state.
    pub fn schema(&self, env: &str) -> Option<Arc<Schema>> {
        let guard = self.targets.read().unwrap_or_else(|p| p.into_inner());
        guard.get(env).and_then(|t| t.schema.clone())
    }

    /// A copy of one target's state (for `check` and tests).
    pub fn target(&self, env: &str) -> Option<TargetState> {
        let guard = self.targets.read().unwrap_or_else(|p| p.into_inner());
        guard.get(env).cloned()
    }
}

/// A metric windsock produces about itself (not from a diagnostic).
#[derive(Debug, Clone, Copy)]
pub struct SelfMetric {
    /// Registered name (the encoder adds `_total` to counters, `_info` to
    /// info metrics).
    pub name: &'static str,
    /// Help text.
    pub help: &'static str,
    /// Metric type.
    pub kind: MetricKind,
    /// Labels, in order.
    pub labels: &'static [&'static str],
}

const ENV_DIAG: &[&str] = &["environment", "diagnostic"];

/// Every self-metric, in exposition order. The encoder takes names and help
/// from here, and `docs/metrics.md` is generated from it.
pub const SELF_METRICS: &[SelfMetric] = &[
    SelfMetric {
        name: "windsock_build",
        help: "windsock build information",
        kind: MetricKind::Info,
        labels: &["version", "revision", "rustc_version", "target"],
    },
    SelfMetric {
        name: "airflow_schema",
        help: "Airflow release detected from the metadata DB's alembic revision",
        kind: MetricKind::Info,
        labels: &[
            "environment",
            "airflow_version",
            "alembic_revision",
            "fab_revision",
            "dialect",
        ],
    },
    SelfMetric {
        name: "process_cpu_seconds",
        help: "Total user and system CPU time spent in seconds",
        kind: MetricKind::Counter,
        labels: &[],
    },
    SelfMetric {
        name: "process_resident_memory_bytes",
        help: "Resident memory size in bytes",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "process_virtual_memory_bytes",
        help: "Virtual memory size in bytes",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "process_start_time_seconds",
        help: "Start time of the process since unix epoch in seconds",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "process_open_fds",
        help: "Number of open file descriptors",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "process_max_fds",
        help: "Maximum number of open file descriptors",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_up",
        help: "Whether the latest contact with the target's metadata DB succeeded",
        kind: MetricKind::Gauge,
        labels: &["environment"],
    },
    SelfMetric {
        name: "windsock_diagnostic_success",
        help: "Whether the latest run of a diagnostic succeeded (its last good values stay published when not)",
        kind: MetricKind::Gauge,
        labels: ENV_DIAG,
    },
    SelfMetric {
        name: "windsock_diagnostic_duration_seconds",
        help: "Duration of the latest run of a diagnostic",
        kind: MetricKind::Gauge,
        labels: ENV_DIAG,
    },
    SelfMetric {
        name: "windsock_diagnostic_rows",
        help: "Rows returned by the latest successful run of a diagnostic",
        kind: MetricKind::Gauge,
        labels: ENV_DIAG,
    },
    SelfMetric {
        name: "windsock_diagnostic_last_success_timestamp_seconds",
        help: "UNIX time of the latest successful run of a diagnostic",
        kind: MetricKind::Gauge,
        labels: ENV_DIAG,
    },
    SelfMetric {
        name: "windsock_diagnostic_runs",
        help: "Runs of a diagnostic since windsock started",
        kind: MetricKind::Counter,
        labels: ENV_DIAG,
    },
    SelfMetric {
        name: "windsock_diagnostic_errors",
        help: "Failed runs of a diagnostic by error kind since windsock started",
        kind: MetricKind::Counter,
        labels: &["environment", "diagnostic", "kind"],
    },
    SelfMetric {
        name: "windsock_series",
        help: "Diagnostic series in this scrape",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_series_dropped",
        help: "Series of a metric family that cardinality.max_series left out of this scrape: always the whole family, per-task families first, then per-DAG ones",
        kind: MetricKind::Gauge,
        labels: &["family"],
    },
    SelfMetric {
        name: "windsock_config_last_reload_successful",
        help: "Whether the latest configuration reload (SIGHUP) succeeded; a failed one keeps the running configuration",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_config_last_reload_success_timestamp_seconds",
        help: "UNIX time of the latest successful configuration reload",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_export_runs",
        help: "Metadata exports by mode and outcome (success, partial, failed, skipped: a Glue run was still in progress)",
        kind: MetricKind::Counter,
        labels: &["environment", "mode", "outcome"],
    },
    SelfMetric {
        name: "windsock_export_duration_seconds",
        help: "Duration of the latest metadata export",
        kind: MetricKind::Gauge,
        labels: &["environment", "mode"],
    },
    SelfMetric {
        name: "windsock_export_rows",
        help: "Rows the latest export wrote per table",
        kind: MetricKind::Gauge,
        labels: &["environment", "table"],
    },
    SelfMetric {
        name: "windsock_export_bytes",
        help: "Bytes the latest export wrote per table (compressed)",
        kind: MetricKind::Gauge,
        labels: &["environment", "table"],
    },
    SelfMetric {
        name: "windsock_export_last_success_timestamp_seconds",
        help: "UNIX time of the latest export that completed with every table",
        kind: MetricKind::Gauge,
        labels: &["environment", "mode"],
    },
    SelfMetric {
        name: "windsock_export_glue_run_state",
        help: "1 for the state of the latest Glue job run windsock started (STARTING, RUNNING, SUCCEEDED, FAILED, TIMEOUT, ...)",
        kind: MetricKind::Gauge,
        labels: &["environment", "state"],
    },
    SelfMetric {
        name: "windsock_http_connections_shed",
        help: "Connections a listener (metrics, admin) shed at its connection cap: evicted (the oldest one not in a request) or refused (all in a request)",
        kind: MetricKind::Counter,
        labels: &["listener", "reason"],
    },
    SelfMetric {
        name: "windsock_admin_requests",
        help: "Requests to the admin API by operation and HTTP status",
        kind: MetricKind::Counter,
        labels: &["operation", "code"],
    },
    SelfMetric {
        name: "windsock_admin_auth_failures",
        help: "Refused admin API calls by reason (bad_token, bad_password, bad_username, basic_disabled, forbidden_role, tls_required, rate_limited); requests without credentials are not counted",
        kind: MetricKind::Counter,
        labels: &["reason"],
    },
    SelfMetric {
        name: "windsock_admin_audit_events",
        help: "Audited admin writes by action and outcome (applied, dry_run, refused, failed)",
        kind: MetricKind::Counter,
        labels: &["action", "outcome"],
    },
    SelfMetric {
        name: "windsock_intercept_actions",
        help: "Actions of the new-user interception rules by rule and outcome (webhook: queued, then notified, failed or dropped)",
        kind: MetricKind::Counter,
        labels: &["rule", "outcome"],
    },
    SelfMetric {
        name: "windsock_intercept_users",
        help: "New users the interception pipeline has processed",
        kind: MetricKind::Counter,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_intercept_leader",
        help: "1 when this replica holds the interception lock and acts on new users",
        kind: MetricKind::Gauge,
        labels: &[],
    },
    SelfMetric {
        name: "windsock_intercept_last_poll_timestamp_seconds",
        help: "UNIX time of the latest successful poll of ab_user for new users",
        kind: MetricKind::Gauge,
        labels: &[],
    },
];

fn metric_type(kind: MetricKind) -> MetricType {
    match kind {
        MetricKind::Gauge => MetricType::Gauge,
        MetricKind::Counter => MetricType::Counter,
        MetricKind::Info => MetricType::Info,
    }
}

/// Encodes the store through prometheus-client.
#[derive(Debug)]
struct StoreCollector {
    store: Arc<Store>,
}

/// The families `[cardinality] max_series` leaves out, with their series:
/// whole families, never part of one. Families are taken by priority
/// (essential, per DAG, per task), then name, while they fit under `cap`;
/// one that does not fit is left out whole, and smaller ones after it may
/// still fit.
fn families_over_cap<'a>(
    by_name: &BTreeMap<&'a str, Vec<(&str, &Family)>>,
    cap: usize,
) -> BTreeMap<&'a str, usize> {
    let mut order: Vec<(crate::diagnostics::Priority, &'a str, usize)> = by_name
        .iter()
        .map(|(name, fams)| {
            let size = fams.iter().map(|(_, f)| f.samples.len()).sum();
            (fams[0].1.spec.priority(), *name, size)
        })
        .collect();
    order.sort();
    let (mut kept, mut dropped) = (0usize, BTreeMap::new());
    for (_, name, size) in order {
        if kept.saturating_add(size) <= cap {
            kept += size;
        } else {
            dropped.insert(name, size);
        }
    }
    dropped
}

type Labels<'a> = Vec<(&'a str, &'a str)>;

impl Collector for StoreCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let targets = self.store.targets.read().unwrap_or_else(|p| p.into_inner());
        let now = now_unix();

        // Diagnostic families, merged across targets under one descriptor.
        let mut by_name: BTreeMap<&str, Vec<(&str, &Family)>> = BTreeMap::new();
        for (env, t) in targets.iter() {
            for d in t.diagnostics.values() {
                for fam in d.families.iter() {
                    by_name.entry(&fam.spec.name).or_default().push((env, fam));
                }
            }
        }
        let cap = match self.store.max_series.load(Ordering::Relaxed) {
            0 => usize::MAX,
            max => max,
        };
        let dropped = families_over_cap(&by_name, cap);
        self.store.note_dropped(&dropped);
        let mut exported = 0usize;
        for (name, fams) in &by_name {
            let spec = &fams[0].1.spec;
            if dropped.contains_key(name) {
                continue;
            }
            let mut m =
                encoder.encode_descriptor(name, &spec.help, None, metric_type(spec.kind))?;
            for (env, fam) in fams {
                for (values, value) in &fam.samples {
                    exported += 1;
                    let mut labels: Labels<'_> = Vec::with_capacity(values.len() + 1);
                    labels.push(("environment", env));
                    labels.extend(
                        fam.label_names
                            .iter()
                            .map(String::as_str)
                            .zip(values.iter().map(String::as_str)),
                    );
                    let v = if fam.spec.seconds_since {
                        (now - value).max(0.0)
                    } else {
                        *value
                    };
                    match spec.kind {
                        MetricKind::Gauge => m.encode_family(&labels)?.encode_gauge(&v)?,
                        MetricKind::Counter => m
                            .encode_family(&labels)?
                            .encode_counter::<NoLabelSet, f64, f64>(&v, None)?,
                        MetricKind::Info => m.encode_info(&labels)?,
                    }
                }
            }
        }

        // Self-metrics.
        let mut up = Vec::new();
        let mut schema_info = Vec::new();
        let mut success = Vec::new();
        let mut duration = Vec::new();
        let mut rows = Vec::new();
        let mut last_success = Vec::new();
        let mut errors = Vec::new();
        let mut runs = Vec::new();
        for (env, t) in targets.iter() {
            let env = env.as_str();
            up.push((
                vec![("environment", env)],
                f64::from(u8::from(t.up == Some(true))),
            ));
            if let Some(s) = &t.schema {
                schema_info.push(vec![
                    ("environment", env),
                    ("airflow_version", s.release.map_or("unknown", |r| r.label)),
                    ("alembic_revision", s.revision.as_deref().unwrap_or("")),
                    ("fab_revision", s.fab_revision.as_deref().unwrap_or("")),
                    ("dialect", s.dialect.as_str()),
                ]);
            }
            for (name, d) in &t.diagnostics {
                let l = vec![("environment", env), ("diagnostic", name.as_str())];
                success.push((l.clone(), f64::from(u8::from(d.success))));
                duration.push((l.clone(), d.duration_seconds));
                rows.push((l.clone(), d.rows as f64));
                runs.push((l.clone(), d.runs as f64));
                if let Some(ts) = d.last_success {
                    last_success.push((l.clone(), ts));
                }
                for (kind, n) in &d.errors {
                    let mut l = l.clone();
                    l.push(("kind", kind));
                    errors.push((l, *n as f64));
                }
            }
        }

        let mut by_name: BTreeMap<&str, Vec<(Labels<'_>, f64)>> = BTreeMap::from([
            (
                "windsock_build",
                vec![(
                    vec![
                        ("version", crate::VERSION),
                        ("revision", crate::REVISION),
                        ("rustc_version", env!("WINDSOCK_RUSTC_VERSION")),
                        ("target", env!("WINDSOCK_TARGET")),
                    ],
                    1.0,
                )],
            ),
            (
                "airflow_schema",
                schema_info.into_iter().map(|l| (l, 1.0)).collect(),
            ),
            ("windsock_up", up),
            ("windsock_diagnostic_success", success),
            ("windsock_diagnostic_duration_seconds", duration),
            ("windsock_diagnostic_rows", rows),
            (
                "windsock_diagnostic_last_success_timestamp_seconds",
                last_success,
            ),
            ("windsock_diagnostic_runs", runs),
            ("windsock_diagnostic_errors", errors),
            ("windsock_series", vec![(Vec::new(), exported as f64)]),
            (
                "windsock_series_dropped",
                dropped
                    .iter()
                    .map(|(f, n)| (vec![("family", *f)], *n as f64))
                    .collect(),
            ),
        ]);
        for (name, v) in process::samples() {
            by_name.entry(name).or_default().push((Vec::new(), v));
        }
        let events = self.store.events.read().unwrap_or_else(|p| p.into_inner());
        for (name, series) in events.iter() {
            let list = by_name.entry(name).or_default();
            for (labels, v) in series {
                list.push((labels.iter().map(|(k, v)| (*k, v.as_str())).collect(), *v));
            }
        }
        for meta in SELF_METRICS {
            let samples = by_name.remove(meta.name).unwrap_or_default();
            // A family without series (no errors yet, admin API off) is
            // left out rather than shown as bare HELP/TYPE lines.
            if samples.is_empty() {
                continue;
            }
            let mut m =
                encoder.encode_descriptor(meta.name, meta.help, None, metric_type(meta.kind))?;
            for (labels, v) in &samples {
                match meta.kind {
                    MetricKind::Info => m.encode_info(labels)?,
                    MetricKind::Counter => m
                        .encode_family(labels)?
                        .encode_counter::<NoLabelSet, f64, f64>(v, None)?,
                    MetricKind::Gauge => m.encode_family(labels)?.encode_gauge(v)?,
                }
            }
        }
        debug_assert!(by_name.is_empty(), "undocumented self-metric: {by_name:?}");
        Ok(())
    }
}

/// The exposition side: a registry holding the store's collector.
#[derive(Debug)]
pub struct Exposition {
    registry: Registry,
}

impl Exposition {
    /// Builds the registry for `store`.
    pub fn new(store: Arc<Store>) -> Exposition {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(StoreCollector { store }));
        Exposition { registry }
    }

    /// OpenMetrics text (ends with `# EOF`).
    pub fn openmetrics(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// Classic Prometheus text format 0.0.4.
    pub fn classic(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// Exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// OpenMetrics text.
    OpenMetrics,
    /// Classic Prometheus text 0.0.4.
    Classic,
}

/// One encoded exposition.
#[derive(Debug)]
pub struct Encoded {
    /// The text.
    pub body: bytes::Bytes,
    /// The same, gzip-compressed once for every scraper that accepts gzip
    /// (Prometheus does): a tenth of the bytes to copy per scrape.
    pub gzip: bytes::Bytes,
    generation: u64,
    at: Instant,
}

/// Encoded expositions shared by all scrapes: a scrape takes the latest
/// encoding (a reference count, no copy); when the store changed or the
/// encoding is older than [`ScrapeCache::MAX_AGE`] (ages are computed at
/// encoding), one background task re-encodes while scrapes keep getting
/// the previous one. So the cost of a scrape does not grow with the number
/// of scrapers, and memory holds one encoding per format.
#[derive(Debug)]
pub struct ScrapeCache {
    exposition: Arc<Exposition>,
    store: Arc<Store>,
    slots: [Slot; 2],
}

#[derive(Debug, Default)]
struct Slot {
    current: RwLock<Option<Arc<Encoded>>>,
    refreshing: AtomicBool,
    /// Serializes the first, synchronous encoding.
    first: Mutex<()>,
}

impl ScrapeCache {
    /// Longest time a scrape may be served an older encoding.
    pub const MAX_AGE: Duration = Duration::from_secs(1);

    /// A cache for `store`.
    pub fn new(store: Arc<Store>) -> ScrapeCache {
        ScrapeCache {
            exposition: Arc::new(Exposition::new(store.clone())),
            store,
            slots: [Slot::default(), Slot::default()],
        }
    }

    fn encode(exposition: &Exposition, store: &Store, format: Format) -> Arc<Encoded> {
        let generation = store.generation();
        let text = match format {
            Format::OpenMetrics => exposition.openmetrics(),
            Format::Classic => exposition.classic(),
        };
        // Fast compression: most of gzip's gain on repetitive text, at a
        // fraction of the CPU of the default level.
        let mut gz = flate2::write::GzEncoder::new(
            Vec::with_capacity(text.len() / 8),
            flate2::Compression::fast(),
        );
        let gzip = std::io::Write::write_all(&mut gz, text.as_bytes())
            .and_then(|()| gz.finish())
            .unwrap_or_default();
        Arc::new(Encoded {
            body: bytes::Bytes::from(text),
            gzip: bytes::Bytes::from(gzip),
            generation,
            at: Instant::now(),
        })
    }

    /// The exposition to serve now.
    pub fn get(self: &Arc<Self>, format: Format) -> Arc<Encoded> {
        let i = match format {
            Format::OpenMetrics => 0,
            Format::Classic => 1,
        };
        let slot = &self.slots[i];
        let current = slot
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let Some(current) = current else {
            let _first = slot.first.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(done) = slot
                .current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone()
            {
                return done;
            }
            let fresh = Self::encode(&self.exposition, &self.store, format);
            *slot.current.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh.clone());
            return fresh;
        };
        let stale =
            current.generation != self.store.generation() || current.at.elapsed() > Self::MAX_AGE;
        if stale && !slot.refreshing.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            let refresh = move || {
                let fresh = Self::encode(&me.exposition, &me.store, format);
                let slot = &me.slots[i];
                *slot.current.write().unwrap_or_else(|p| p.into_inner()) = Some(fresh);
                slot.refreshing.store(false, Ordering::Release);
            };
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn_blocking(refresh);
                }
                Err(_) => refresh(),
            }
        }
        current
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;
    use crate::diagnostics::MetricSpec;

    fn family(name: &'static str, labels: &[&str], samples: Vec<(Vec<&str>, f64)>) -> Family {
        Family {
            spec: Arc::new(MetricSpec {
                name: Cow::Borrowed(name),
                ..MetricSpec::gauge(name, "help text", "v")
            }),
            label_names: labels
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .into(),
            samples: samples
                .into_iter()
                .map(|(l, v)| (l.into_iter().map(str::to_owned).collect(), v))
                .collect(),
        }
    }

    #[test]
    fn merges_targets_and_drops_vanished_series() {
        let store = Arc::new(Store::new(["prod", "staging"]));
        store.publish(
            "prod",
            "d",
            vec![family(
                "airflow_x",
                &["state"],
                vec![(vec!["a"], 1.0), (vec!["b"], 2.0)],
            )],
            2,
            0.1,
        );
        store.publish(
            "staging",
            "d",
            vec![family("airflow_x", &["state"], vec![(vec!["a"], 3.0)])],
            1,
            0.1,
        );
        let exp = Exposition::new(store.clone());
        let text = exp.classic();
        assert_eq!(text.matches("# TYPE airflow_x gauge").count(), 1, "{text}");
        assert!(
            text.contains("airflow_x{environment=\"prod\",state=\"b\"} 2"),
            "{text}"
        );
        assert!(
            text.contains("airflow_x{environment=\"staging\",state=\"a\"} 3"),
            "{text}"
        );
        // A later run without state b drops that series.
        store.publish(
            "prod",
            "d",
            vec![family("airflow_x", &["state"], vec![(vec!["a"], 1.0)])],
            1,
            0.1,
        );
        assert!(!exp.classic().contains("state=\"b\""));
    }

    #[test]
    fn failure_keeps_last_values_and_counts_errors() {
        let store = Arc::new(Store::new(["prod"]));
        store.publish(
            "prod",
            "d",
            vec![family("airflow_x", &[], vec![(vec![], 7.0)])],
            1,
            0.1,
        );
        store.fail("prod", "d", "timeout", 5.0);
        store.fail("prod", "d", "timeout", 5.0);
        let text = Exposition::new(store).openmetrics();
        assert!(text.contains("airflow_x{environment=\"prod\"} 7"), "{text}");
        assert!(
            text.contains("windsock_diagnostic_success{environment=\"prod\",diagnostic=\"d\"} 0"),
            "{text}"
        );
        assert!(text.contains("windsock_diagnostic_errors_total{environment=\"prod\",diagnostic=\"d\",kind=\"timeout\"} 2"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn series_cap_counts_the_overflow() {
        let store = Arc::new(Store::new(["prod"]).with_max_series(3));
        store.publish(
            "prod",
            "d",
            vec![
                family(
                    "airflow_a",
                    &["k"],
                    vec![(vec!["1"], 1.0), (vec!["2"], 1.0)],
                ),
                family(
                    "airflow_b",
                    &["k"],
                    vec![(vec!["1"], 1.0), (vec!["2"], 1.0), (vec!["3"], 1.0)],
                ),
            ],
            5,
            0.1,
        );
        let text = Exposition::new(store).classic();
        // airflow_b does not fit beside airflow_a: it goes whole, not in part.
        assert!(text.contains("windsock_series 2.0\n"), "{text}");
        assert!(
            text.contains("windsock_series_dropped{family=\"airflow_b\"} 3.0\n"),
            "{text}"
        );
        assert_eq!(
            text.lines().filter(|l| l.starts_with("airflow_")).count(),
            2,
            "{text}"
        );
        assert!(!text.contains("airflow_b{"), "{text}");
    }

    #[test]
    fn series_cap_drops_per_task_families_first() {
        let spec = |name: &'static str, labels: &[&'static str]| {
            Arc::new(MetricSpec::gauge(name, "help text", "v").labels(labels))
        };
        let fam = |spec: Arc<MetricSpec>, n: usize| Family {
            label_names: spec.label_names().into(),
            samples: (0..n)
                .map(|i| (vec![i.to_string(); spec.key_labels.len()], 1.0))
                .collect(),
            spec,
        };
        let store = Arc::new(Store::new(["prod"]).with_max_series(4));
        store.publish(
            "prod",
            "d",
            vec![
                // Named to sort first, but per task: left out first.
                fam(spec("airflow_a_task", &["dag_id", "task_id"]), 2),
                fam(spec("airflow_b_dag", &["dag_id"]), 3),
                fam(spec("airflow_c_total", &[]), 1),
            ],
            6,
            0.1,
        );
        let text = Exposition::new(store).classic();
        assert!(
            text.contains("airflow_b_dag{") && text.contains("airflow_c_total{"),
            "{text}"
        );
        assert!(!text.contains("airflow_a_task{"), "{text}");
        assert!(
            text.contains("windsock_series_dropped{family=\"airflow_a_task\"} 2.0\n"),
            "{text}"
        );
        assert!(text.contains("windsock_series 4.0\n"), "{text}");
    }

    #[tokio::test]
    async fn cache_serves_then_refreshes_after_a_change() {
        let store = Arc::new(Store::new(["prod"]));
        store.publish(
            "prod",
            "d",
            vec![family("airflow_x", &[], vec![(vec![], 1.0)])],
            1,
            0.1,
        );
        let cache = Arc::new(ScrapeCache::new(store.clone()));
        let first = cache.get(Format::Classic);
        assert!(String::from_utf8_lossy(&first.body).contains("airflow_x{environment=\"prod\"} 1"));
        let mut unzipped = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(first.gzip.as_ref()),
            &mut unzipped,
        )
        .unwrap();
        assert_eq!(unzipped.as_bytes(), first.body.as_ref());
        store.publish(
            "prod",
            "d",
            vec![family("airflow_x", &[], vec![(vec![], 2.0)])],
            1,
            0.1,
        );
        // The next scrape may still get the old encoding; a later one the new.
        let _ = cache.get(Format::Classic);
        let mut seen_new = false;
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            let e = cache.get(Format::Classic);
            if String::from_utf8_lossy(&e.body).contains("airflow_x{environment=\"prod\"} 2") {
                seen_new = true;
                break;
            }
        }
        assert!(seen_new, "the change never reached the cache");
        // Unchanged and fresh: the same encoding is shared, not rebuilt.
        let a = cache.get(Format::Classic);
        let b = cache.get(Format::Classic);
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[test]
    fn seconds_since_is_computed_at_scrape() {
        let store = Arc::new(Store::new(["prod"]));
        let mut fam = family(
            "airflow_age_seconds",
            &[],
            vec![(vec![], now_unix() - 100.0)],
        );
        fam.spec = Arc::new(MetricSpec::gauge("airflow_age_seconds", "h", "v").seconds_since());
        store.publish("prod", "d", vec![fam], 1, 0.0);
        let text = Exposition::new(store).classic();
        let line = text
            .lines()
            .find(|l| l.starts_with("airflow_age_seconds{"))
            .unwrap();
        let v: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
        assert!((99.0..200.0).contains(&v), "{line}");
    }
}
