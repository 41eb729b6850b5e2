//! windsock watches an Apache Airflow installation through its metadata
//! database and publishes what it finds as Prometheus metrics.
//!
//! # Layout
//!
//! - [`cli`]: the command line (`run`, `check`, `report`, `config validate`,
//!   `demo`, `bench`, `export run`, `admin hash-token`).
//! - [`config`]: the strict, layered configuration (defaults < file < env).
//! - [`db`]: connections to PostgreSQL, MySQL/MariaDB and SQLite: URL parsing
//!   (SQLAlchemy forms included), redaction, read-only sessions with timeouts,
//!   and a dialect-neutral row type.
//! - [`airflow`]: schema detection: alembic revision → Airflow release, and
//!   the capability flags the diagnostics depend on.
//! - [`diagnostics`]: the registry of diagnostics. Each one declares its SQL
//!   per dialect beside the metrics it produces; one explicit list registers
//!   them all.
//! - [`runner`]: runs the registry against every target on its schedule and
//!   publishes results into the [`metrics::Store`].
//! - [`metrics`]: the in-memory snapshot and its encoding (OpenMetrics and the
//!   classic Prometheus text format).
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and the landing page.
//! - [`daemon`]: wiring and lifecycle (signals, graceful shutdown).
//! - [`check`]: the one-shot `windsock check` and `windsock report`.
//! - [`report`]: findings against thresholds, from the store (also served
//!   at `/api/v1/report`).
//! - [`demo`]: builds a demo SQLite metadata DB from a real Airflow schema.
//! - [`bench`]: the measurements of `windsock bench`.
//! - [`export`]: exports of metadata tables (direct, or through AWS Glue).
//! - [`admin`]: the admin API on Airflow's FAB users and the interception of
//!   new users (the only writes to the Airflow database).
//! - [`digest`]: hex and SHA-256 helpers.
//! - [`tls`]: rustls listeners (`/metrics` with `--web.config.file`, admin).
//!
//! Data flows one way: `runner` → `db` → `diagnostics` → `metrics::Store`
//! → `http`. A scrape never touches the database.

#![forbid(unsafe_code)]
#![warn(unreachable_pub)]

pub mod admin;
pub mod airflow;
pub mod bench;
pub mod check;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod db;
pub mod demo;
pub mod diagnostics;
pub mod digest;
pub mod docs;
pub mod export;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod report;
pub mod runner;
pub mod serve;
pub mod tls;

/// The crate version, as reported by `--version` and `windsock_build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git revision windsock was built from (`unknown` without one).
pub const REVISION: &str = env!("WINDSOCK_REVISION");
