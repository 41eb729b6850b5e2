//! `[export]`: exports of Airflow metadata tables (docs/export.md).

use std::time::Duration;

use serde::Deserialize;

use super::humantime_serde_compat;

/// `[export]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportSettings {
    /// Run the export on a schedule inside `windsock run`.
    pub enabled: bool,
    /// `direct`: windsock reads and writes the rows itself.
    pub mode: ExportMode,
    /// How often the scheduled export runs, at UTC multiples of it (the
    /// first run waits for the next one).
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// A five-field cron expression in UTC (`30 2 * * *`), used instead of
    /// `interval` when set.
    pub cron: Option<String>,
    /// How much time one export covers, ending at the last whole interval
    /// boundary before now (with the defaults: yesterday, 00:00 to 24:00 UTC).
    #[serde(with = "humantime_serde_compat")]
    pub window: Duration,
    /// Output format.
    pub format: ExportFormat,
    /// Destination: a local directory (`./exports`, `file:///data/exports`).
    pub to: String,
    /// Tables to export; empty: the default list (docs/export.md). Tables
    /// holding secrets are refused.
    pub tables: Vec<String>,
    /// Rows per keyset page (smaller for wide tables automatically).
    pub page_rows: usize,
    /// Per-table column allowlists (`log = ["id", "dttm", "event"]`): a
    /// listed table exports only these columns; the column policy
    /// (`export/glue/policy.json`) still drops and masks among them.
    pub columns: std::collections::BTreeMap<String, Vec<String>>,
    /// S3 client settings (destinations `s3://…`, Glue mode, reports).
    pub s3: S3Settings,
    /// Glue mode.
    pub glue: GlueSettings,
}

/// `[export.s3]`: the AWS client. Credentials and region come from the
/// standard chain (environment, profile, IMDS, ECS, web identity).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Settings {
    /// Region, overriding the chain's.
    pub region: Option<String>,
    /// Endpoint override (an S3-compatible store, a local emulator). Also
    /// read from `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on when an
    /// endpoint is set.
    pub force_path_style: Option<bool>,
}

/// `[export.glue]`: the Glue job windsock maintains and starts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GlueSettings {
    /// Glue job name.
    pub job_name: String,
    /// IAM role the job runs as.
    pub role_arn: Option<String>,
    /// `s3://bucket/prefix` the job script is uploaded under (its key
    /// carries the script's hash).
    pub script_location: Option<String>,
    /// Glue JDBC connection name.
    pub connection_name: String,
    /// Secrets Manager secret with `username`/`password` for the
    /// connection; without it, the target's user and password are stored in
    /// the connection (Glue encrypts them; windsock never logs them).
    pub secret_id: Option<String>,
    /// JDBC URL the job uses; default: derived from the target's URL.
    pub jdbc_url: Option<String>,
    /// VPC subnet of the connection.
    pub subnet_id: Option<String>,
    /// Security groups of the connection.
    pub security_group_ids: Vec<String>,
    /// Availability zone of the subnet.
    pub availability_zone: Option<String>,
    /// Glue version (5.0: Spark 3.5, Python 3.11).
    pub glue_version: String,
    /// Worker type.
    pub worker_type: String,
    /// Workers.
    pub number_of_workers: i32,
    /// Job timeout, minutes.
    pub timeout_minutes: i32,
    /// Parallel reads per table with an integer key.
    pub partitions: u32,
    /// Longest wait between two polls of a running job.
    #[serde(with = "humantime_serde_compat")]
    pub poll_max: Duration,
}

impl Default for GlueSettings {
    fn default() -> Self {
        GlueSettings {
            job_name: "windsock-export".to_owned(),
            role_arn: None,
            script_location: None,
            connection_name: "windsock-airflow-metadata".to_owned(),
            secret_id: None,
            jdbc_url: None,
            subnet_id: None,
            security_group_ids: Vec::new(),
            availability_zone: None,
            glue_version: "5.0".to_owned(),
            worker_type: "G.1X".to_owned(),
            number_of_workers: 2,
            timeout_minutes: 120,
            partitions: 8,
            poll_max: Duration::from_secs(60),
        }
    }
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            enabled: false,
            mode: ExportMode::Direct,
            interval: Duration::from_secs(86_400),
            cron: None,
            window: Duration::from_secs(86_400),
            format: ExportFormat::Csv,
            to: "./exports".to_owned(),
            tables: Vec::new(),
            page_rows: 5_000,
            columns: std::collections::BTreeMap::new(),
            s3: S3Settings::default(),
            glue: GlueSettings::default(),
        }
    }
}

/// Who does the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportMode {
    /// windsock streams the rows itself.
    Direct,
    /// windsock starts the Glue job (`export/glue/`), which does the work.
    Glue,
}

impl ExportMode {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportMode::Direct => "direct",
            ExportMode::Glue => "glue",
        }
    }
}

/// File format of exported tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    /// gzip-compressed CSV with a header line (`.csv.gz`).
    Csv,
    /// gzip-compressed JSON Lines (`.jsonl.gz`).
    Jsonl,
    /// Parquet, Snappy-compressed (`.parquet`).
    Parquet,
}

impl ExportFormat {
    /// Name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
            ExportFormat::Parquet => "parquet",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv.gz",
            ExportFormat::Jsonl => "jsonl.gz",
            ExportFormat::Parquet => "parquet",
        }
    }
}
