//! Which Airflow wrote this database, and what its schema can answer.
//!
//! Detection reads `alembic_version` (and the FAB provider's
//! `alembic_version_fab`), maps the revision to an Airflow release with
//! [`versions::release_for`], and probes the catalog for every column the
//! diagnostics depend on. Capabilities come from the catalog, never from the
//! version string: a DB upgraded from 2.x keeps tables (`sla_miss`) that a
//! fresh 3.x DB lacks, and an unknown revision still gets correct flags.

pub mod versions;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use crate::db::{Cell, Db, DbError, Dialect};

/// A schema feature a diagnostic may depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Capability {
    /// `dag_run.logical_date` (Airflow 3).
    DagRunLogicalDate,
    /// `dag_run.execution_date` (Airflow 2).
    DagRunExecutionDate,
    /// The `task_fail` table (Airflow 2.x).
    TaskFail,
    /// The `sla_miss` table (Airflow 2.x, or left behind by an upgrade).
    SlaMiss,
    /// The `task_instance_history` table (2.10+).
    TaskInstanceHistory,
    /// The `dag_version` table (3.0+).
    DagVersion,
    /// `serialized_dag.data_compressed`.
    SerializedDagCompressed,
    /// `dag.is_stale` (3.0+).
    DagIsStale,
    /// `dag.is_active` (2.x).
    DagIsActive,
    /// `task_instance.last_heartbeat_at` (3.0+).
    TaskInstanceHeartbeat,
    /// `task_instance.job_id` (2.x; zombie detection joins `job` on it).
    TaskInstanceJobId,
    /// The FAB user tables `ab_user`, `ab_role`, `ab_user_role`.
    FabTables,
    /// Deadline Alerts (3.1+): a `deadline` table with `deadline_time` and
    /// either `callback_state` (3.1) or `missed` and a `callback` table
    /// (3.2+). 3.0 created an earlier, unused `deadline` table.
    DeadlineAlerts,
    /// The `dag_bundle` table (3.0+ DAG bundles).
    DagBundle,
    /// The `hitl_detail` table (3.1+ human-in-the-loop).
    HitlDetail,
    /// The `callback_request` table (callbacks queued for the DAG processor).
    CallbackRequest,
    /// The `dag_warning` table (2.5+).
    DagWarning,
    /// An asset (3.x) or dataset (2.x) run queue: `asset_dag_run_queue` or `dataset_dag_run_queue`.
    AssetQueue,
    /// The `backfill` and `backfill_dag_run` tables (3.0+).
    Backfill,
}

impl Capability {
    /// Every capability, for reports.
    pub const ALL: [Capability; 19] = [
        Capability::DagRunLogicalDate,
        Capability::DagRunExecutionDate,
        Capability::TaskFail,
        Capability::SlaMiss,
        Capability::TaskInstanceHistory,
        Capability::DagVersion,
        Capability::SerializedDagCompressed,
        Capability::DagIsStale,
        Capability::DagIsActive,
        Capability::TaskInstanceHeartbeat,
        Capability::TaskInstanceJobId,
        Capability::FabTables,
        Capability::DeadlineAlerts,
        Capability::DagBundle,
        Capability::HitlDetail,
        Capability::CallbackRequest,
        Capability::DagWarning,
        Capability::AssetQueue,
        Capability::Backfill,
    ];

    /// What the capability means in schema terms, for logs and skip reasons.
    pub fn describe(self) -> &'static str {
        match self {
            Capability::DagRunLogicalDate => "dag_run.logical_date",
            Capability::DagRunExecutionDate => "dag_run.execution_date",
            Capability::TaskFail => "table task_fail",
            Capability::SlaMiss => "table sla_miss",
            Capability::TaskInstanceHistory => "table task_instance_history",
            Capability::DagVersion => "table dag_version",
            Capability::SerializedDagCompressed => "serialized_dag.data_compressed",
            Capability::DagIsStale => "dag.is_stale",
            Capability::DagIsActive => "dag.is_active",
            Capability::TaskInstanceHeartbeat => "task_instance.last_heartbeat_at",
            Capability::TaskInstanceJobId => "task_instance.job_id",
            Capability::FabTables => "tables ab_user, ab_role, ab_user_role",
            Capability::DeadlineAlerts => {
                "table deadline with deadline_time and callback_state (3.1) or missed (3.2+)"
            }
            Capability::DagBundle => "table dag_bundle",
            Capability::HitlDetail => "table hitl_detail",
            Capability::CallbackRequest => "table callback_request",
            Capability::DagWarning => "table dag_warning",
            Capability::AssetQueue => "table asset_dag_run_queue or dataset_dag_run_queue",
            Capability::Backfill => "tables backfill, backfill_dag_run",
        }
    }

    fn present(self, s: &Schema) -> bool {
        match self {
            Capability::DagRunLogicalDate => s.has_column("dag_run", "logical_date"),
            Capability::DagRunExecutionDate => s.has_column("dag_run", "execution_date"),
            Capability::TaskFail => s.has_table("task_fail"),
            Capability::SlaMiss => s.has_table("sla_miss"),
            Capability::TaskInstanceHistory => s.has_table("task_instance_history"),
            Capability::DagVersion => s.has_table("dag_version"),
            Capability::SerializedDagCompressed => {
                s.has_column("serialized_dag", "data_compressed")
            }
            Capability::DagIsStale => s.has_column("dag", "is_stale"),
            Capability::DagIsActive => s.has_column("dag", "is_active"),
            Capability::TaskInstanceHeartbeat => s.has_column("task_instance", "last_heartbeat_at"),
            Capability::TaskInstanceJobId => s.has_column("task_instance", "job_id"),
            Capability::FabTables => {
                s.has_table("ab_user") && s.has_table("ab_role") && s.has_table("ab_user_role")
            }
            Capability::DeadlineAlerts => {
                s.has_column("deadline", "deadline_time")
                    && (s.has_column("deadline", "callback_state")
                        || (s.has_column("deadline", "missed") && s.has_table("callback")))
            }
            Capability::DagBundle => s.has_table("dag_bundle"),
            Capability::HitlDetail => s.has_table("hitl_detail"),
            Capability::CallbackRequest => s.has_table("callback_request"),
            Capability::DagWarning => s.has_table("dag_warning"),
            Capability::Backfill => s.has_table("backfill") && s.has_table("backfill_dag_run"),
            Capability::AssetQueue => {
                s.has_table("asset_dag_run_queue") || s.has_table("dataset_dag_run_queue")
            }
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.describe())
    }
}

/// Why detection failed.
#[derive(Debug, thiserror::Error)]
pub enum DetectError {
    /// The database could not be queried.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The database has none of Airflow's core tables.
    #[error("no Airflow metadata found (tables dag, dag_run, task_instance are missing)")]
    NotAirflow,
}

/// What detection found.
#[derive(Debug, Clone, PartialEq)]
pub struct Schema {
    /// Dialect of the database.
    pub dialect: Dialect,
    /// Server version string (`15.19 (Debian …)`, `10.11.19-MariaDB`, `3.50.4`).
    pub server_version: String,
    /// Core alembic revision, if the table exists.
    pub revision: Option<String>,
    /// FAB provider alembic revision (Airflow 3 with the FAB auth manager).
    pub fab_revision: Option<String>,
    /// The Airflow release(s) the revision belongs to; `None` if unknown.
    pub release: Option<&'static versions::Release>,
    /// Major version: from the release, else inferred from the schema.
    pub major: u8,
    /// Columns of every table, lowercased.
    pub tables: BTreeMap<String, BTreeSet<String>>,
    /// Capabilities present.
    pub capabilities: BTreeSet<Capability>,
}

impl Schema {
    /// Whether a table exists.
    pub fn has_table(&self, table: &str) -> bool {
        self.tables.contains_key(table)
    }

    /// Whether a column exists.
    pub fn has_column(&self, table: &str, column: &str) -> bool {
        self.tables.get(table).is_some_and(|c| c.contains(column))
    }

    /// Whether a capability is present.
    pub fn has(&self, cap: Capability) -> bool {
        self.capabilities.contains(&cap)
    }

    /// Airflow version for labels: the release range, or `unknown`.
    pub fn version_label(&self) -> String {
        self.release
            .map_or_else(|| "unknown".to_owned(), |r| r.label.to_owned())
    }

    /// Builds the capability set from the table map (also used by tests).
    pub fn from_catalog(
        dialect: Dialect,
        server_version: String,
        revision: Option<String>,
        fab_revision: Option<String>,
        tables: BTreeMap<String, BTreeSet<String>>,
    ) -> Schema {
        let release = revision.as_deref().and_then(versions::release_for);
        let mut schema = Schema {
            dialect,
            server_version,
            revision,
            fab_revision,
            release,
            major: 0,
            tables,
            capabilities: BTreeSet::new(),
        };
        schema.capabilities = Capability::ALL
            .into_iter()
            .filter(|c| c.present(&schema))
            .collect();
        schema.major = match release {
            Some(r) => r.major,
            // Airflow 3 introduced dag_version and dropped execution_date.
            None if schema.has(Capability::DagVersion) => 3,
            None => 2,
        };
        schema
    }
}

const CATALOG_PG: &str = "SELECT table_name, column_name FROM information_schema.columns \
     WHERE table_schema = current_schema()";
const CATALOG_MYSQL: &str = "SELECT table_name, column_name FROM information_schema.columns \
     WHERE table_schema = DATABASE()";
const CATALOG_SQLITE: &str = "SELECT m.name, p.name FROM sqlite_master m \
     JOIN pragma_table_info(m.name) p WHERE m.type = 'table'";

/// Reads the catalog and the alembic revisions of `db`.
pub async fn detect(db: &Db, timeout: Duration) -> Result<Schema, DetectError> {
    let dialect = db.dialect();
    let (catalog, version_sql) = match dialect {
        Dialect::Postgres => (CATALOG_PG, "SHOW server_version"),
        Dialect::MySql => (CATALOG_MYSQL, "SELECT VERSION()"),
        Dialect::Sqlite => (CATALOG_SQLITE, "SELECT sqlite_version()"),
    };
    let server_version = db
        .query(version_sql, timeout)
        .await?
        .rows
        .first()
        .and_then(|r| r.first())
        .map(Cell::as_label)
        .unwrap_or_default();
    let mut tables: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for row in db.query(catalog, timeout).await?.rows {
        if let [t, c] = row.as_slice() {
            tables
                .entry(t.as_label().to_ascii_lowercase())
                .or_default()
                .insert(c.as_label().to_ascii_lowercase());
        }
    }
    if !["dag", "dag_run", "task_instance"]
        .iter()
        .all(|t| tables.contains_key(*t))
    {
        return Err(DetectError::NotAirflow);
    }
    let revision = read_revision(db, &tables, "alembic_version", timeout).await?;
    let fab_revision = read_revision(db, &tables, "alembic_version_fab", timeout).await?;
    let schema = Schema::from_catalog(dialect, server_version, revision, fab_revision, tables);
    match (&schema.revision, schema.release) {
        (Some(rev), None) => tracing::warn!(
            revision = %rev,
            assumed_major = schema.major,
            "Unknown Airflow alembic revision; capabilities were probed from the catalog."
        ),
        (None, _) => tracing::warn!(
            assumed_major = schema.major,
            "No alembic_version row; capabilities were probed from the catalog."
        ),
        _ => {}
    }
    Ok(schema)
}

async fn read_revision(
    db: &Db,
    tables: &BTreeMap<String, BTreeSet<String>>,
    table: &str,
    timeout: Duration,
) -> Result<Option<String>, DbError> {
    if !tables.contains_key(table) {
        return Ok(None);
    }
    let rows = db
        .query(&format!("SELECT version_num FROM {table}"), timeout)
        .await?;
    Ok(rows
        .rows
        .iter()
        .filter_map(|r| r.first().map(Cell::as_label))
        .find(|v| !v.is_empty()))
}
