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
    /// How often the scheduled export runs (UTC; the first run waits one
    /// interval).
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
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
}

impl Default for ExportSettings {
    fn default() -> Self {
        ExportSettings {
            enabled: false,
            mode: ExportMode::Direct,
            interval: Duration::from_secs(86_400),
            window: Duration::from_secs(86_400),
            format: ExportFormat::Csv,
            to: "./exports".to_owned(),
            tables: Vec::new(),
            page_rows: 5_000,
        }
    }
}

/// Who does the export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum ExportMode {
    /// windsock streams the rows itself.
    Direct,
}

impl ExportMode {
    /// Label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportMode::Direct => "direct",
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
}

impl ExportFormat {
    /// Name in the manifest.
    pub fn as_str(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv",
            ExportFormat::Jsonl => "jsonl",
        }
    }

    /// File extension.
    pub fn extension(self) -> &'static str {
        match self {
            ExportFormat::Csv => "csv.gz",
            ExportFormat::Jsonl => "jsonl.gz",
        }
    }
}
