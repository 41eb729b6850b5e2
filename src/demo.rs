//! `windsock demo`: a SQLite Airflow metadata DB with weeks of history.
//!
//! The schema is the newest real Airflow schema committed under
//! `tests/fixtures/schema/` (embedded in the binary). [`populate`] fills any
//! committed schema version (2.7 … 3.x) with generated, seeded history: it
//! asks the schema which columns exist (`logical_date` or `execution_date`,
//! `task_instance.id` or `job_id`, `dag_version`, …) and fills NOT NULL
//! columns it does not know with neutral values, so a newer schema still
//! loads. Tests use it to get the same scenario on every version.
//!
//! What the history contains (relative to now): ~30 DAGs on hourly, 6-hourly
//! and daily schedules over 21 days; successes, failures, retries (with
//! `task_fail` / `task_instance_history` rows as the version keeps them),
//! long-running runs, a queued backlog behind a small pool, a zombie
//! candidate (a running task whose heartbeat stopped 20 minutes ago), paused
//! and stale DAGs, an import error, SLA misses (Airflow 2), live scheduler /
//! triggerer / dag-processor heartbeats and one dead scheduler, and a large
//! compressed serialized DAG.

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use sqlx::{Connection, Row, SqliteConnection};

use crate::cli::DemoArgs;
use crate::config::{Settings, TargetSettings};
use crate::db::DbError;

/// The Airflow version whose schema the demo uses.
pub const DEMO_SCHEMA_VERSION: &str = "3.3.2";
/// That schema, as dumped from a DB `airflow db migrate` created.
pub const DEMO_SCHEMA_SQL: &str = include_str!("../tests/fixtures/schema/3.3.2/sqlite.sql");

/// Demo failures.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Database error while building.
    #[error("building the demo database: {0}")]
    Db(#[from] DbError),
    /// SQL error while building.
    #[error("building the demo database: {0}")]
    Sql(#[from] sqlx::Error),
    /// File system error.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The daemon failed.
    #[error(transparent)]
    Daemon(#[from] crate::daemon::DaemonError),
    /// The generated config was rejected (a bug).
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
}

/// Runs `windsock demo`.
pub async fn run(args: DemoArgs) -> Result<(), DemoError> {
    let settings = Settings {
        targets: vec![TargetSettings::from_url(
            "demo",
            &format!("sqlite:///{}", args.path.display()),
        )],
        ..Settings::default()
    };
    crate::logging::init(&settings.log);
    if args.regenerate || !args.path.exists() {
        let started = std::time::Instant::now();
        let counts = create(&args.path, args.seed).await?;
        tracing::info!(
            path = %args.path.display(),
            airflow_schema = DEMO_SCHEMA_VERSION,
            dags = counts.get("dag").copied().unwrap_or(0),
            dag_runs = counts.get("dag_run").copied().unwrap_or(0),
            task_instances = counts.get("task_instance").copied().unwrap_or(0),
            seconds = started.elapsed().as_secs_f64(),
            "Demo metadata DB created."
        );
    } else {
        tracing::info!(path = %args.path.display(), "Using the existing demo DB (--regenerate rebuilds it).");
    }
    if args.generate_only {
        return Ok(());
    }
    let mut config = settings.validate()?;
    config.listen = args.listen;
    // Quick refresh so the demo shows data within seconds.
    config.settings.collection.startup_jitter = std::time::Duration::from_millis(500);
    tokio::spawn(keep_alive(args.path.clone()));
    crate::daemon::run(config, None, crate::daemon::shutdown_signal()).await?;
    Ok(())
}

/// Plays a live Airflow while the demo runs: every few seconds the
/// scheduler, triggerer and dag-processor heartbeat, and so do running
/// tasks, except the zombie candidate, whose heartbeat stays stopped.
async fn keep_alive(path: std::path::PathBuf) {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(5);
    let Ok(mut conn) = crate::db::open_writable_sqlite(&path).await else {
        tracing::warn!("Demo: cannot open the DB for heartbeats; components will look stale.");
        return;
    };
    let mut tick = tokio::time::interval(EVERY);
    loop {
        tick.tick().await;
        let now = ts(crate::metrics::now_unix());
        let jobs = beat_components(&mut conn, &now).await;
        let tasks = sqlx::query(
            "UPDATE task_instance SET last_heartbeat_at = ? WHERE state = 'running' \
             AND NOT (dag_id = ? AND task_id = ?)",
        )
        .bind(&now)
        .bind(ZOMBIE.0)
        .bind(ZOMBIE.1)
        .execute(&mut conn)
        .await;
        if let Err(error) = jobs.and(tasks) {
            tracing::debug!(%error, "Demo heartbeat update failed; retrying.");
        }
    }
}

/// The demo's zombie candidate: (dag_id, task_id).
pub const ZOMBIE: (&str, &str) = ("sync_crm_us", "pull_accounts");

/// Creates `path` from the embedded schema and fills it. Replaces an
/// existing file. Returns row counts per table.
pub async fn create(path: &Path, seed: u64) -> Result<BTreeMap<String, i64>, DemoError> {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let p = format!("{}{suffix}", path.display());
        match std::fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(DemoError::Io { path: p, source }),
        }
    }
    let mut conn = crate::db::open_writable_sqlite(path).await?;
    sqlx::raw_sql(DEMO_SCHEMA_SQL).execute(&mut conn).await?;
    populate(&mut conn, seed, crate::metrics::now_unix()).await?;
    // Populating takes seconds on a busy machine: the components' heartbeat
    // is as of now, not of when it began.
    beat_components(&mut conn, &ts(crate::metrics::now_unix())).await?;
    let counts = table_counts(&mut conn).await?;
    conn.close().await?;
    Ok(counts)
}

/// The running scheduler, triggerer and dag-processor heartbeat at `now`.
async fn beat_components(
    conn: &mut SqliteConnection,
    now: &str,
) -> Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error> {
    sqlx::query(
        "UPDATE job SET latest_heartbeat = ? WHERE state = 'running' \
         AND job_type IN ('SchedulerJob', 'TriggererJob', 'DagProcessorJob')",
    )
    .bind(now)
    .execute(conn)
    .await
}

async fn table_counts(conn: &mut SqliteConnection) -> Result<BTreeMap<String, i64>, DemoError> {
    let mut out = BTreeMap::new();
    for t in ["dag", "dag_run", "task_instance", "job", "log"] {
        let n: i64 = sqlx::query(sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {t}")))
            .fetch_one(&mut *conn)
            .await?
            .get(0);
        out.insert(t.to_owned(), n);
    }
    Ok(out)
}

/// Column facts of one table.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    ty: String,
    required: bool,
}

/// Writes rows into whatever version of the schema is loaded.
struct Writer<'c> {
    conn: &'c mut SqliteConnection,
    tables: HashMap<String, Vec<Column>>,
    rows: usize,
}

/// A value to insert.
#[derive(Debug, Clone)]
enum V {
    Null,
    I(i64),
    F(f64),
    T(String),
    B(Vec<u8>),
}

impl From<i64> for V {
    fn from(v: i64) -> V {
        V::I(v)
    }
}
impl From<bool> for V {
    fn from(v: bool) -> V {
        V::I(i64::from(v))
    }
}
impl From<f64> for V {
    fn from(v: f64) -> V {
        V::F(v)
    }
}
impl From<&str> for V {
    fn from(v: &str) -> V {
        V::T(v.to_owned())
    }
}
impl From<String> for V {
    fn from(v: String) -> V {
        V::T(v)
    }
}
impl<T: Into<V>> From<Option<T>> for V {
    fn from(v: Option<T>) -> V {
        v.map_or(V::Null, Into::into)
    }
}

impl<'c> Writer<'c> {
    async fn new(conn: &'c mut SqliteConnection) -> Result<Writer<'c>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT m.name, p.name, p.type, p.\"notnull\", p.dflt_value, p.pk \
             FROM sqlite_master m JOIN pragma_table_info(m.name) p WHERE m.type = 'table'",
        )
        .fetch_all(&mut *conn)
        .await?;
        let mut tables: HashMap<String, Vec<Column>> = HashMap::new();
        for r in rows {
            let table: String = r.get(0);
            let name: String = r.get(1);
            let ty: String = r.get(2);
            let notnull: i64 = r.get(3);
            let default: Option<String> = r.get(4);
            let pk: i64 = r.get(5);
            // An INTEGER primary key fills itself (rowid).
            let auto = pk == 1 && ty.eq_ignore_ascii_case("INTEGER");
            tables.entry(table).or_default().push(Column {
                required: notnull == 1 && default.is_none() && !auto,
                name,
                ty,
            });
        }
        Ok(Writer {
            conn,
            tables,
            rows: 0,
        })
    }

    fn has(&self, table: &str, column: &str) -> bool {
        self.tables
            .get(table)
            .is_some_and(|cols| cols.iter().any(|c| c.name == column))
    }

    fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// Inserts one row: unknown columns are dropped, required columns that
    /// were not given get a neutral value of their type.
    async fn insert(&mut self, table: &str, values: &[(&str, V)]) -> Result<(), sqlx::Error> {
        let Some(cols) = self.tables.get(table) else {
            return Ok(());
        };
        let mut names = Vec::new();
        let mut vals: Vec<V> = Vec::new();
        for (k, v) in values {
            if cols.iter().any(|c| c.name == *k) {
                names.push((*k).to_owned());
                vals.push(v.clone());
            }
        }
        for c in cols {
            if c.required && !names.contains(&c.name) {
                names.push(c.name.clone());
                vals.push(neutral(&c.ty));
            }
        }
        let placeholders = vec!["?"; names.len()].join(", ");
        let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
        let sql = format!(
            "INSERT INTO \"{table}\" ({}) VALUES ({placeholders})",
            quoted.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for v in vals {
            q = match v {
                V::Null => q.bind(None::<String>),
                V::I(i) => q.bind(i),
                V::F(f) => q.bind(f),
                V::T(t) => q.bind(t),
                V::B(b) => q.bind(b),
            };
        }
        q.execute(&mut *self.conn).await?;
        self.rows += 1;
        Ok(())
    }
}

fn neutral(ty: &str) -> V {
    let ty = ty.to_ascii_uppercase();
    if ty.contains("INT") || ty.contains("BOOL") {
        V::I(0)
    } else if ty.contains("FLOAT") || ty.contains("REAL") || ty.contains("NUMERIC") {
        V::F(0.0)
    } else if ty.contains("TIMESTAMP") || ty.contains("DATETIME") {
        V::T(ts(crate::metrics::now_unix()))
    } else if ty.contains("JSON") {
        V::T("{}".to_owned())
    } else {
        V::T(String::new())
    }
}

/// UNIX seconds as Airflow's SQLite timestamp text (naive UTC).
pub fn ts(unix: f64) -> String {
    let micros = (unix * 1e6).round() as i64;
    let secs = micros.div_euclid(1_000_000);
    let frac = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{frac:06}",
        sod / 3600,
        (sod / 60) % 60,
        sod % 60
    )
}

fn hex(rng: &mut StdRng, bytes: usize) -> String {
    (0..bytes)
        .map(|_| format!("{:02x}", rng.random::<u8>()))
        .collect()
}

/// A UUIDv7 with dashes (Airflow 3 `task_instance.id`): time-ordered.
fn uuid7(rng: &mut StdRng, unix: f64) -> String {
    let ms = (unix * 1000.0) as u64;
    let r = hex(rng, 10);
    format!(
        "{:08x}-{:04x}-7{}-{}{}-{}",
        ms >> 16,
        ms & 0xffff,
        &r[0..3],
        ["8", "9", "a", "b"][rng.random_range(0..4)],
        &r[3..6],
        &r[6..18]
    )
}

/// A DAG of the generated history.
struct DagDef {
    id: String,
    every_secs: i64,
    tasks: Vec<(String, &'static str)>,
    pool: &'static str,
    owner: &'static str,
    fail_rate: f64,
    retry_rate: f64,
    mean_task_secs: f64,
    paused: bool,
    stale: bool,
}

const HOUR: i64 = 3600;
const DAY: i64 = 86_400;
const HISTORY_DAYS: i64 = 21;

fn dag_defs(rng: &mut StdRng) -> Vec<DagDef> {
    let families: [(&str, i64, &str, &'static str, f64); 10] = [
        ("ingest_orders", HOUR, "data-eng", "default_pool", 0.02),
        ("ingest_clicks", HOUR, "data-eng", "default_pool", 0.05),
        ("sync_crm", 6 * HOUR, "integrations", "default_pool", 0.08),
        ("build_marts", DAY, "analytics", "etl_pool", 0.04),
        ("train_model", DAY, "ml", "ml_pool", 0.12),
        ("export_reports", DAY, "analytics", "default_pool", 0.03),
        ("backup_warehouse", DAY, "platform", "default_pool", 0.01),
        ("score_leads", 6 * HOUR, "ml", "ml_pool", 0.06),
        ("refresh_dims", DAY, "analytics", "etl_pool", 0.02),
        ("audit_access", DAY, "security", "default_pool", 0.0),
    ];
    let operators = [
        "PythonOperator",
        "BashOperator",
        "SQLExecuteQueryOperator",
        "S3KeySensor",
        "EmptyOperator",
        "KubernetesPodOperator",
    ];
    let mut out = Vec::new();
    for (i, (name, every, owner, pool, fail)) in families.iter().enumerate() {
        for region in ["eu", "us", "apac"] {
            let n_tasks = rng.random_range(3..9);
            let tasks = (0..n_tasks)
                .map(|t| {
                    let op = operators[(i + t) % operators.len()];
                    (
                        format!(
                            "step_{t:02}_{}",
                            op.to_ascii_lowercase().replace("operator", "")
                        ),
                        op,
                    )
                })
                .collect();
            out.push(DagDef {
                id: format!("{name}_{region}"),
                every_secs: *every,
                tasks,
                pool,
                owner,
                fail_rate: *fail,
                retry_rate: 0.05,
                mean_task_secs: rng.random_range(20.0..240.0),
                paused: false,
                stale: false,
            });
        }
    }
    // Some DAGs paused, some removed from the code base (stale).
    out[5].paused = true;
    out[17].paused = true;
    out[23].paused = true;
    out[28].stale = true;
    out[29].stale = true;
    out
}

/// Serialized DAG JSON in the shape of the given format version.
fn serialized(dag: &DagDef, version: i64, extra_tasks: usize) -> String {
    let mut tasks = Vec::new();
    let n = dag.tasks.len() + extra_tasks;
    for i in 0..n {
        let (task_id, op) = dag.tasks.get(i).map_or_else(
            || (format!("fanout_{i:04}"), "PythonOperator"),
            |(t, o)| (t.clone(), *o),
        );
        let task = serde_json::json!({
            "task_id": task_id,
            "_task_type": op,
            "_task_module": "airflow.providers.standard.operators",
            "owner": dag.owner,
            "pool": dag.pool,
            "retries": 1,
            "retry_delay": 300.0,
            "downstream_task_ids": if i + 1 < n { vec![format!("t{}", i + 1)] } else { vec![] },
            "doc_md": "Loads one partition of the upstream source, validates row counts against \
                       the control table, and publishes the partition when checks pass.",
            "template_fields": ["sql", "params"],
        });
        tasks.push(if version >= 2 {
            serde_json::json!({"__var": task, "__type": "operator"})
        } else {
            task
        });
    }
    sorted(serde_json::json!({
        "__version": version,
        "dag": {
            "_dag_id": dag.id,
            "fileloc": format!("/opt/airflow/dags/{}.py", dag.id),
            "schedule_interval": dag.every_secs,
            "timezone": "UTC",
            "tasks": tasks,
            "tags": [dag.owner],
        }
    }))
    .to_string()
}

/// The value with every object's keys in name order, whether or not
/// serde_json preserves insertion order (the AWS crates turn that on), so
/// the demo's payloads, and their compressed sizes, are the same in every
/// build.
fn sorted(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(map) => {
            let mut entries: Vec<_> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            serde_json::Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.into_iter().map(sorted).collect())
        }
        other => other,
    }
}

/// Fills a freshly loaded Airflow schema with seeded history ending at
/// `now` (UNIX seconds). Works on every committed schema version.
pub async fn populate(
    conn: &mut SqliteConnection,
    seed: u64,
    now: f64,
) -> Result<usize, DemoError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut tx = conn.begin().await?;
    let mut w = Writer::new(&mut tx).await?;
    let v3 = w.has("task_instance", "id");
    let date_col = if w.has("dag_run", "logical_date") {
        "logical_date"
    } else {
        "execution_date"
    };
    let json_version = if w.has("dag", "deadline") {
        3
    } else if v3 {
        2
    } else {
        1
    };
    let now_i = now as i64;

    // Pools, bundle, components.
    for (id, pool, slots) in [
        (1, "default_pool", 128),
        (2, "etl_pool", 8),
        (3, "ml_pool", 2),
    ] {
        w.insert(
            "slot_pool",
            &[
                ("id", V::I(id)),
                ("pool", pool.into()),
                ("slots", V::I(slots)),
                ("description", format!("{pool} slots").into()),
                ("include_deferred", false.into()),
            ],
        )
        .await?;
    }
    if w.has_table("dag_bundle") {
        w.insert(
            "dag_bundle",
            &[
                ("name", "dags-folder".into()),
                ("active", true.into()),
                ("last_refreshed", ts(now - 30.0).into()),
            ],
        )
        .await?;
    }
    let mut job_id = 0i64;
    let mut job = |w_rows: &mut Vec<Vec<(&'static str, V)>>,
                   job_type: &str,
                   state: &str,
                   host: &str,
                   start: f64,
                   hb: f64,
                   end: Option<f64>| {
        job_id += 1;
        w_rows.push(vec![
            ("id", V::I(job_id)),
            ("job_type", job_type.into()),
            ("state", state.into()),
            ("hostname", host.into()),
            ("unixname", "airflow".into()),
            ("executor_class", "LocalExecutor".into()),
            ("start_date", ts(start).into()),
            ("latest_heartbeat", ts(hb).into()),
            ("end_date", end.map(ts).into()),
        ]);
        job_id
    };
    let mut jobs: Vec<Vec<(&'static str, V)>> = Vec::new();
    let scheduler_id = job(
        &mut jobs,
        "SchedulerJob",
        "running",
        "scheduler-0",
        now - 3.0 * DAY as f64,
        now - 2.0,
        None,
    );
    job(
        &mut jobs,
        "SchedulerJob",
        "success",
        "scheduler-old",
        now - 10.0 * DAY as f64,
        now - 3.0 * DAY as f64,
        Some(now - 3.0 * DAY as f64),
    );
    job(
        &mut jobs,
        "TriggererJob",
        "running",
        "triggerer-0",
        now - 3.0 * DAY as f64,
        now - 4.0,
        None,
    );
    job(
        &mut jobs,
        "DagProcessorJob",
        "running",
        "dag-processor-0",
        now - 3.0 * DAY as f64,
        now - 6.0,
        None,
    );

    // DAGs and their serialized form.
    let dags = dag_defs(&mut rng);
    let mut dag_versions: HashMap<String, String> = HashMap::new();
    for (i, dag) in dags.iter().enumerate() {
        let big = i == 4; // train_model_eu: a large DAG, stored compressed
        let data = serialized(
            dag,
            json_version,
            if big {
                1500
            } else if i == 13 {
                300
            } else {
                0
            },
        );
        let hash = format!("{:032x}", {
            let mut h: u128 = 0xcbf2_9ce4_8422_2325;
            for b in data.bytes() {
                h = (h ^ u128::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
            h
        });
        let parsed = now - rng.random_range(10.0..300.0);
        let next = ((now_i / dag.every_secs) + 1) * dag.every_secs;
        w.insert(
            "dag",
            &[
                ("dag_id", dag.id.clone().into()),
                ("is_paused", dag.paused.into()),
                ("is_active", (!dag.stale).into()),
                ("is_stale", dag.stale.into()),
                ("is_subdag", false.into()),
                (
                    "last_parsed_time",
                    ts(if dag.stale {
                        now - 5.0 * DAY as f64
                    } else {
                        parsed
                    })
                    .into(),
                ),
                ("fileloc", format!("/opt/airflow/dags/{}.py", dag.id).into()),
                ("relative_fileloc", format!("{}.py", dag.id).into()),
                ("bundle_name", "dags-folder".into()),
                ("owners", dag.owner.into()),
                ("max_active_tasks", V::I(16)),
                ("max_active_runs", V::I(16)),
                ("max_consecutive_failed_dag_runs", V::I(0)),
                ("has_task_concurrency_limits", false.into()),
                ("has_import_errors", false.into()),
                ("schedule_interval", format!("{}.0", dag.every_secs).into()),
                (
                    "timetable_summary",
                    format!("every {}h", dag.every_secs / HOUR).into(),
                ),
                (
                    "timetable_description",
                    format!("Every {} hours", dag.every_secs / HOUR).into(),
                ),
                ("next_dagrun", ts(next as f64).into()),
                ("next_dagrun_data_interval_start", ts(next as f64).into()),
                (
                    "next_dagrun_data_interval_end",
                    ts((next + dag.every_secs) as f64).into(),
                ),
                (
                    "next_dagrun_create_after",
                    ts((next + dag.every_secs) as f64).into(),
                ),
            ],
        )
        .await?;
        let (data_col, compressed) = if big {
            let mut enc =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            enc.write_all(data.as_bytes())
                .map_err(|source| DemoError::Io {
                    path: "zlib".into(),
                    source,
                })?;
            let bytes = enc.finish().map_err(|source| DemoError::Io {
                path: "zlib".into(),
                source,
            })?;
            (V::Null, V::B(bytes))
        } else {
            (V::T(data), V::Null)
        };
        if w.has_table("dag_version") {
            let version_id = hex(&mut rng, 16);
            w.insert(
                "dag_version",
                &[
                    ("id", version_id.clone().into()),
                    ("version_number", V::I(1)),
                    ("dag_id", dag.id.clone().into()),
                    ("bundle_name", "dags-folder".into()),
                    ("created_at", ts(now - 20.0 * DAY as f64).into()),
                    ("last_updated", ts(parsed).into()),
                ],
            )
            .await?;
            dag_versions.insert(dag.id.clone(), version_id);
        }
        w.insert(
            "serialized_dag",
            &[
                ("id", hex(&mut rng, 16).into()),
                ("dag_id", dag.id.clone().into()),
                ("fileloc", format!("/opt/airflow/dags/{}.py", dag.id).into()),
                (
                    "fileloc_hash",
                    V::I(rng.random_range(1..i64::from(i32::MAX))),
                ),
                ("data", data_col),
                ("data_compressed", compressed),
                ("last_updated", ts(parsed).into()),
                ("created_at", ts(now - 20.0 * DAY as f64).into()),
                ("dag_hash", hash.into()),
                ("dag_version_id", dag_versions.get(&dag.id).cloned().into()),
            ],
        )
        .await?;
    }

    w.insert(
        "import_error",
        &[
            ("timestamp", ts(now - 600.0).into()),
            ("filename", "/opt/airflow/dags/broken_partner_feed.py".into()),
            ("bundle_name", "dags-folder".into()),
            (
                "stacktrace",
                "Traceback (most recent call last):\n  File \"broken_partner_feed.py\", line 7\nModuleNotFoundError: No module named 'partner_sdk'".into(),
            ),
        ],
    )
    .await?;

    // History.
    let mut run_id_seq = 0i64;
    let start_hist = now_i - HISTORY_DAYS * DAY;
    let mut log_id = 0i64;
    let mut hist_id = 0i64;
    let mut fail_id = 0i64;
    for dag in &dags {
        let first = (start_hist / dag.every_secs + 1) * dag.every_secs;
        let mut interval_start = first;
        let last_scheduled = now_i - dag.every_secs; // newest interval that has ended
        while interval_start <= last_scheduled {
            let interval_end = interval_start + dag.every_secs;
            // Paused and stale DAGs stopped a few days ago.
            if (dag.paused || dag.stale) && interval_end > now_i - 4 * DAY {
                break;
            }
            run_id_seq += 1;
            let queued_at = interval_end as f64 + rng.random_range(0.5..8.0);
            let run_start = queued_at + rng.random_range(0.2..3.0);
            let is_latest = interval_start + dag.every_secs > last_scheduled;
            // The newest run of a few DAGs is still going.
            let long_running = is_latest
                && matches!(
                    dag.id.as_str(),
                    "build_marts_us" | "train_model_apac" | "backup_warehouse_eu"
                );
            let run_failed = !long_running && rng.random_bool(dag.fail_rate);
            let run_id = format!("scheduled__{}", ts(interval_start as f64).replace(' ', "T"));
            let mut t = run_start;
            let run_state = if long_running {
                "running"
            } else if run_failed {
                "failed"
            } else {
                "success"
            };
            let fail_at = if run_failed {
                rng.random_range(0..dag.tasks.len())
            } else {
                usize::MAX
            };
            let mut tis = Vec::new();
            for (ti_idx, (task_id, op)) in dag.tasks.iter().enumerate() {
                let queued = t + rng.random_range(0.1..2.0);
                let started =
                    queued + rng.random_range(0.5..if dag.pool == "ml_pool" { 90.0 } else { 6.0 });
                let dur = (dag.mean_task_secs * rng.random_range(0.5..1.8)).max(1.0);
                let retried = rng.random_bool(dag.retry_rate);
                let (state, try_number, end): (&str, i64, Option<f64>) = if long_running {
                    match ti_idx {
                        0 => ("success", 1, Some(started + dur)),
                        1 => ("running", 1, None),
                        // Waits for a free ml_pool slot.
                        2 if dag.id == "train_model_apac" => ("scheduled", 0, None),
                        _ => ("scheduled", 0, None),
                    }
                } else if ti_idx < fail_at {
                    ("success", if retried { 2 } else { 1 }, Some(started + dur))
                } else if ti_idx == fail_at {
                    ("failed", 2, Some(started + dur))
                } else {
                    ("upstream_failed", 0, None)
                };
                // Earlier failed tries.
                if try_number == 2 {
                    let first_end = started - 300.0 + dur * 0.3;
                    hist_id += 1;
                    fail_id += 1;
                    let first_try_start = started - 300.0 - dur * 0.3;
                    w.insert(
                        "task_instance_history",
                        &[
                            ("id", V::I(hist_id)),
                            ("task_instance_id", uuid7(&mut rng, first_try_start).into()),
                            ("task_id", task_id.clone().into()),
                            ("dag_id", dag.id.clone().into()),
                            ("run_id", run_id.clone().into()),
                            ("map_index", V::I(-1)),
                            ("try_number", V::I(1)),
                            ("start_date", ts(first_try_start).into()),
                            ("end_date", ts(first_end).into()),
                            ("duration", V::F(first_end - first_try_start)),
                            ("state", "failed".into()),
                            ("max_tries", V::I(1)),
                            ("hostname", "worker-1".into()),
                            ("unixname", "airflow".into()),
                            ("pool", dag.pool.into()),
                            ("pool_slots", V::I(1)),
                            ("queue", "default".into()),
                            ("priority_weight", V::I(1)),
                            ("operator", (*op).into()),
                            ("queued_dttm", ts(first_try_start - 1.0).into()),
                            ("dag_version_id", dag_versions.get(&dag.id).cloned().into()),
                        ],
                    )
                    .await?;
                    w.insert(
                        "task_fail",
                        &[
                            ("id", V::I(fail_id)),
                            ("task_id", task_id.clone().into()),
                            ("dag_id", dag.id.clone().into()),
                            ("run_id", run_id.clone().into()),
                            ("map_index", V::I(-1)),
                            ("start_date", ts(first_try_start).into()),
                            ("end_date", ts(first_end).into()),
                            ("duration", V::I((first_end - first_try_start) as i64)),
                        ],
                    )
                    .await?;
                }
                let recent = started > now - 2.0 * DAY as f64;
                let lt_job = if !v3 && state != "scheduled" && state != "queued" && recent {
                    Some(job(
                        &mut jobs,
                        "LocalTaskJob",
                        if state == "running" {
                            "running"
                        } else {
                            "success"
                        },
                        "worker-1",
                        started,
                        end.unwrap_or(now - 5.0),
                        end,
                    ))
                } else {
                    None
                };
                let has_started = !matches!(state, "scheduled" | "queued" | "upstream_failed");
                let heartbeat = if state == "running" {
                    Some(now - 5.0)
                } else {
                    end
                };
                tis.push(vec![
                    ("id", V::from(uuid7(&mut rng, started))),
                    ("task_id", task_id.clone().into()),
                    ("dag_id", dag.id.clone().into()),
                    ("run_id", run_id.clone().into()),
                    ("map_index", V::I(-1)),
                    ("start_date", has_started.then(|| ts(started)).into()),
                    ("end_date", end.map(ts).into()),
                    ("duration", end.map(|e| e - started).into()),
                    ("state", state.into()),
                    ("try_number", V::I(try_number)),
                    ("max_tries", V::I(1)),
                    ("hostname", if has_started { "worker-1" } else { "" }.into()),
                    ("unixname", "airflow".into()),
                    ("job_id", lt_job.into()),
                    ("pool", dag.pool.into()),
                    ("pool_slots", V::I(1)),
                    ("queue", "default".into()),
                    ("priority_weight", V::I((dag.tasks.len() - ti_idx) as i64)),
                    ("operator", (*op).into()),
                    ("custom_operator_name", (*op).into()),
                    (
                        "queued_dttm",
                        (state != "scheduled" && state != "upstream_failed")
                            .then(|| ts(queued))
                            .into(),
                    ),
                    ("scheduled_dttm", ts(t).into()),
                    ("queued_by_job_id", V::I(scheduler_id)),
                    ("pid", has_started.then_some(10_000 + ti_idx as i64).into()),
                    ("updated_at", ts(end.unwrap_or(now - 5.0)).into()),
                    (
                        "last_heartbeat_at",
                        if has_started { heartbeat.map(ts) } else { None }.into(),
                    ),
                    ("dag_version_id", dag_versions.get(&dag.id).cloned().into()),
                    ("span_status", "ended".into()),
                ]);
                if recent && has_started {
                    log_id += 1;
                    w.insert(
                        "log",
                        &[
                            ("id", V::I(log_id)),
                            ("dttm", ts(end.unwrap_or(started)).into()),
                            ("dag_id", dag.id.clone().into()),
                            ("task_id", task_id.clone().into()),
                            ("map_index", V::I(-1)),
                            ("event", state.into()),
                            ("run_id", run_id.clone().into()),
                            ("owner", dag.owner.into()),
                            ("try_number", V::I(try_number)),
                            (date_col, ts(interval_start as f64).into()),
                        ],
                    )
                    .await?;
                }
                if let Some(e) = end {
                    t = e;
                }
            }
            let run_end = if run_state == "running" {
                None
            } else {
                Some(t + 1.0)
            };
            w.insert(
                "dag_run",
                &[
                    ("id", V::I(run_id_seq)),
                    ("dag_id", dag.id.clone().into()),
                    ("run_id", run_id.clone().into()),
                    ("run_type", "scheduled".into()),
                    (date_col, ts(interval_start as f64).into()),
                    ("run_after", ts(interval_end as f64).into()),
                    ("data_interval_start", ts(interval_start as f64).into()),
                    ("data_interval_end", ts(interval_end as f64).into()),
                    ("queued_at", ts(queued_at).into()),
                    ("start_date", ts(run_start).into()),
                    ("end_date", run_end.map(ts).into()),
                    ("state", run_state.into()),
                    ("external_trigger", false.into()),
                    ("triggered_by", "timetable".into()),
                    ("creating_job_id", V::I(scheduler_id)),
                    ("clear_number", V::I(0)),
                    (
                        "last_scheduling_decision",
                        ts(run_end.unwrap_or(now - 3.0)).into(),
                    ),
                    ("updated_at", ts(run_end.unwrap_or(now - 3.0)).into()),
                    ("span_status", "ended".into()),
                    (
                        "created_dag_version_id",
                        dag_versions.get(&dag.id).cloned().into(),
                    ),
                ],
            )
            .await?;
            for ti in tis {
                w.insert("task_instance", &ti).await?;
            }
            interval_start += dag.every_secs;
        }
    }

    // A backlog: a manual run of an ML DAG whose twelve tasks wait for the
    // two-slot ml_pool (one slot held by a running task): one queued, the
    // rest scheduled.
    run_id_seq += 1;
    let backlog_dag = "score_leads_eu";
    let backlog_run = format!("manual__{}", ts(now - 1800.0).replace(' ', "T"));
    w.insert(
        "dag_run",
        &[
            ("id", V::I(run_id_seq)),
            ("dag_id", backlog_dag.into()),
            ("run_id", backlog_run.clone().into()),
            ("run_type", "manual".into()),
            (date_col, ts(now - 1800.0).into()),
            ("run_after", ts(now - 1800.0).into()),
            ("data_interval_start", ts(now - 1800.0).into()),
            ("data_interval_end", ts(now - 1800.0).into()),
            ("queued_at", ts(now - 1795.0).into()),
            ("start_date", ts(now - 1790.0).into()),
            ("state", "running".into()),
            ("external_trigger", true.into()),
            ("triggered_by", "ui".into()),
            ("clear_number", V::I(0)),
            ("updated_at", ts(now - 60.0).into()),
            ("span_status", "active".into()),
            (
                "created_dag_version_id",
                dag_versions.get(backlog_dag).cloned().into(),
            ),
        ],
    )
    .await?;
    for i in 0..12 {
        let queued = now - 1700.0 + f64::from(i) * 20.0;
        w.insert(
            "task_instance",
            &[
                ("id", uuid7(&mut rng, queued).into()),
                ("task_id", format!("score_batch_{i:02}").into()),
                ("dag_id", backlog_dag.into()),
                ("run_id", backlog_run.clone().into()),
                ("map_index", V::I(-1)),
                ("state", if i < 1 { "queued" } else { "scheduled" }.into()),
                ("try_number", V::I(0)),
                ("max_tries", V::I(1)),
                ("pool", "ml_pool".into()),
                ("pool_slots", V::I(1)),
                ("queue", "default".into()),
                ("priority_weight", V::I(1)),
                ("operator", "PythonOperator".into()),
                ("queued_dttm", (i < 1).then(|| ts(queued)).into()),
                ("scheduled_dttm", ts(queued - 2.0).into()),
                ("queued_by_job_id", V::I(scheduler_id)),
                ("updated_at", ts(queued).into()),
                (
                    "dag_version_id",
                    dag_versions.get(backlog_dag).cloned().into(),
                ),
                ("span_status", "not_started".into()),
            ],
        )
        .await?;
    }

    // A zombie candidate: running for an hour, heartbeat stopped 20 minutes
    // ago (Airflow 3: the task's own heartbeat; Airflow 2: its LocalTaskJob).
    let zombie_dag = ZOMBIE.0;
    let zombie_run = format!("manual__{}", ts(now - 3600.0).replace(' ', "T"));
    run_id_seq += 1;
    w.insert(
        "dag_run",
        &[
            ("id", V::I(run_id_seq)),
            ("dag_id", zombie_dag.into()),
            ("run_id", zombie_run.clone().into()),
            ("run_type", "manual".into()),
            (date_col, ts(now - 3600.0).into()),
            ("run_after", ts(now - 3600.0).into()),
            ("data_interval_start", ts(now - 3600.0).into()),
            ("data_interval_end", ts(now - 3600.0).into()),
            ("queued_at", ts(now - 3599.0).into()),
            ("start_date", ts(now - 3598.0).into()),
            ("state", "running".into()),
            ("external_trigger", true.into()),
            ("triggered_by", "ui".into()),
            ("clear_number", V::I(0)),
            ("updated_at", ts(now - 1200.0).into()),
            ("span_status", "active".into()),
            (
                "created_dag_version_id",
                dag_versions.get(zombie_dag).cloned().into(),
            ),
        ],
    )
    .await?;
    let zombie_job = (!v3).then(|| {
        job(
            &mut jobs,
            "LocalTaskJob",
            "running",
            "worker-2",
            now - 3590.0,
            now - 1200.0,
            None,
        )
    });
    w.insert(
        "task_instance",
        &[
            ("id", uuid7(&mut rng, now - 3590.0).into()),
            ("task_id", ZOMBIE.1.into()),
            ("dag_id", zombie_dag.into()),
            ("run_id", zombie_run.into()),
            ("map_index", V::I(-1)),
            ("start_date", ts(now - 3590.0).into()),
            ("state", "running".into()),
            ("try_number", V::I(1)),
            ("max_tries", V::I(1)),
            ("hostname", "worker-2".into()),
            ("unixname", "airflow".into()),
            ("job_id", zombie_job.into()),
            ("pool", "default_pool".into()),
            ("pool_slots", V::I(1)),
            ("queue", "default".into()),
            ("priority_weight", V::I(1)),
            ("operator", "PythonOperator".into()),
            ("queued_dttm", ts(now - 3595.0).into()),
            ("scheduled_dttm", ts(now - 3597.0).into()),
            ("queued_by_job_id", V::I(scheduler_id)),
            ("pid", V::I(4242)),
            ("updated_at", ts(now - 1200.0).into()),
            ("last_heartbeat_at", ts(now - 1200.0).into()),
            (
                "dag_version_id",
                dag_versions.get(zombie_dag).cloned().into(),
            ),
            ("span_status", "active".into()),
        ],
    )
    .await?;

    // SLA misses (Airflow 2 only; the table is absent on 3.x).
    for h in 1..=3 {
        w.insert(
            "sla_miss",
            &[
                ("task_id", "step_00_python".into()),
                ("dag_id", "export_reports_us".into()),
                ("execution_date", ts((now_i - h * HOUR) as f64).into()),
                ("email_sent", false.into()),
                ("timestamp", ts((now_i - h * HOUR + 600) as f64).into()),
                ("notification_sent", false.into()),
            ],
        )
        .await?;
    }

    // FAB users (where the tables exist).
    for (id, role) in [
        (1, "Admin"),
        (2, "Viewer"),
        (3, "User"),
        (4, "Op"),
        (5, "Public"),
    ] {
        w.insert("ab_role", &[("id", V::I(id)), ("name", role.into())])
            .await?;
    }
    for (id, username, role) in [(1, "admin", 1), (2, "domain/alice", 2)] {
        w.insert(
            "ab_user",
            &[
                ("id", V::I(id)),
                (
                    "first_name",
                    username.rsplit('/').next().unwrap_or(username).into(),
                ),
                ("last_name", "Demo".into()),
                ("username", username.into()),
                (
                    "email",
                    format!("{}@example.com", username.replace('/', ".")).into(),
                ),
                ("active", true.into()),
                ("login_count", V::I(0)),
                ("fail_login_count", V::I(0)),
                ("created_on", ts(now - 20.0 * DAY as f64).into()),
                ("changed_on", ts(now - 20.0 * DAY as f64).into()),
            ],
        )
        .await?;
        w.insert(
            "ab_user_role",
            &[
                ("id", V::I(id)),
                ("user_id", V::I(id)),
                ("role_id", V::I(role)),
            ],
        )
        .await?;
    }

    for row in jobs {
        w.insert("job", &row).await?;
    }
    let rows = w.rows;
    drop(w);
    tx.commit().await?;
    // The demo file is read by windsock's read-only connections: make sure
    // nothing is left in a journal.
    sqlx::query("PRAGMA optimize").execute(&mut *conn).await?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_format_like_airflow() {
        assert_eq!(ts(0.0), "1970-01-01 00:00:00.000000");
        assert_eq!(ts(1_764_028_800.25), "2025-11-25 00:00:00.250000");
        assert_eq!(ts(951_782_400.0), "2000-02-29 00:00:00.000000");
    }

    #[test]
    fn uuid7_is_time_ordered_and_well_formed() {
        let mut rng = StdRng::seed_from_u64(1);
        let a = uuid7(&mut rng, 1_700_000_000.0);
        let b = uuid7(&mut rng, 1_700_000_001.0);
        assert!(a < b, "{a} {b}");
        assert_eq!(a.len(), 36);
        assert_eq!(&a[14..15], "7");
    }
}
