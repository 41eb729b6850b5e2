//! The command line.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// windsock: Prometheus metrics, alerts and exports from an Apache Airflow
/// metadata database (PostgreSQL, MySQL/MariaDB or SQLite; Airflow 2.7-3.x).
///
/// Start with `windsock demo` to see it work on a generated database, then
/// point `windsock run` at your Airflow's `sql_alchemy_conn`.
#[derive(Debug, Parser)]
#[command(
    name = "windsock",
    version = concat!(
        env!("CARGO_PKG_VERSION"),
        " (revision ",
        env!("WINDSOCK_REVISION"),
        ", rustc ",
        env!("WINDSOCK_RUSTC_VERSION"),
        ")"
    ),
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: collect diagnostics on schedule and serve /metrics.
    ///
    /// Validates the configuration before binding any port; a bad config
    /// exits with status 64. Stops gracefully on SIGTERM or SIGINT.
    Run(RunArgs),
    /// Connect to every target once, detect its Airflow version, run every
    /// diagnostic once and print a readable summary.
    ///
    /// Exit status: 0 when everything ran, 1 when some diagnostic failed,
    /// 69 when a database cannot be reached, 64 on a bad config.
    Check(CheckArgs),
    /// Run every diagnostic once and print the findings against the
    /// thresholds, grouped by category, with recommendations.
    ///
    /// The daemon serves the same report at /api/v1/report.
    Report(ReportArgs),
    /// Configuration tools.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Build a demo Airflow metadata DB (SQLite, from a real Airflow schema,
    /// with weeks of generated history) and serve metrics from it.
    Demo(DemoArgs),
    /// Measure windsock's cost: registry cycles against a database,
    /// /metrics under concurrent scrapers, start-up time (docs/benchmarks.md).
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Export Airflow metadata tables (see docs/export.md).
    #[command(subcommand)]
    Export(ExportCommand),
    /// Admin API helpers (see docs/admin.md).
    #[command(subcommand)]
    Admin(AdminCommand),
}

/// `windsock export …`
#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Export once, now: the tables of `[export]` (or --tables) for the
    /// window ending at the last window boundary (or --end), into --to.
    ///
    /// Needs a target: --db-url, [[targets]] in the config, Airflow's
    /// AIRFLOW__DATABASE__SQL_ALCHEMY_CONN, or --demo (the demo database,
    /// windsock-demo.db, created when missing). The manifest is written
    /// last; exit status 0 when every table was exported, 1 when some
    /// failed, 64 on a bad configuration or no target, 69 when the
    /// database cannot be reached.
    Run(ExportRunArgs),
}

/// `windsock export run`
#[derive(Debug, Args, Clone)]
pub struct ExportRunArgs {
    #[command(flatten)]
    /// Targets.
    pub target: TargetArgs,
    /// Who does the export (overrides export.mode).
    #[arg(long, value_enum)]
    pub mode: Option<crate::config::ExportMode>,
    /// Destination directory (overrides export.to).
    #[arg(long, value_name = "DIR")]
    pub to: Option<String>,
    /// File format (overrides export.format).
    #[arg(long, value_enum)]
    pub format: Option<crate::config::ExportFormat>,
    /// Window length in whole days, e.g. 1d or 7d (overrides export.window).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub window: Option<std::time::Duration>,
    /// Window end (UTC), e.g. 2026-11-25 or 2026-11-25T06:00:00Z; default:
    /// the last window boundary before now.
    #[arg(long, value_name = "TIME")]
    pub end: Option<String>,
    /// Comma-separated tables (overrides export.tables).
    #[arg(long, value_delimiter = ',', value_name = "TABLES")]
    pub tables: Vec<String>,
    /// Export the demo database (windsock-demo.db, created when missing)
    /// instead of a configured target.
    #[arg(long, conflicts_with = "db_url")]
    pub demo: bool,
}

/// `windsock admin …`
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Read a bearer token from standard input and print the SHA-256 to put
    /// into `[[admin.auth.tokens]] sha256 = "…"`. The token itself never goes
    /// into the config file.
    HashToken,
}

/// `windsock bench …`
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A cold registry cycle, then steady cycles, timed per diagnostic; with
    /// pg_stat_statements, the DB time each cycle cost.
    Cycle {
        /// The database.
        #[arg(long, value_name = "URL")]
        db_url: String,
        /// Steady cycles after --between.
        #[arg(long, default_value_t = 3)]
        cycles: usize,
        /// Shell command run after the cold cycle, e.g. one that adds rows.
        #[arg(long, value_name = "CMD")]
        between: Option<String>,
        /// diagnostics.window for the run (e.g. 7d).
        #[arg(long, value_parser = humantime::parse_duration)]
        window: Option<std::time::Duration>,
    },
    /// /metrics latency and throughput with N series and C concurrent scrapers.
    Scrape {
        /// Series in the store.
        #[arg(long, default_value_t = 100_000)]
        series: usize,
        /// Concurrent scrapers.
        #[arg(long, default_value_t = 100)]
        concurrency: usize,
        /// How long to scrape.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        duration: std::time::Duration,
    },
    /// Time from starting `windsock run` to a ready /readyz.
    Startup {
        /// The database.
        #[arg(long, value_name = "URL")]
        db_url: String,
        /// Repetitions.
        #[arg(long, default_value_t = 5)]
        runs: usize,
    },
}

/// `windsock config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check a configuration file (and WINDSOCK_* variables) without
    /// connecting anywhere. Exit status 64 when it is invalid.
    Validate(ConfigArgs),
}

/// Where the configuration comes from.
#[derive(Debug, Args, Clone)]
pub struct ConfigArgs {
    /// Configuration file (TOML, or YAML by extension). Without one,
    /// built-in defaults and WINDSOCK_* variables apply.
    #[arg(short, long, env = "WINDSOCK_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// Configuration plus an optional single database.
#[derive(Debug, Args, Clone)]
pub struct TargetArgs {
    #[command(flatten)]
    /// Configuration source.
    pub config: ConfigArgs,
    /// Watch this one database instead of the config's targets. Accepts
    /// Airflow's sql_alchemy_conn form, e.g. postgresql+psycopg2://u@h/airflow.
    #[arg(
        long,
        env = "WINDSOCK_DB_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub db_url: Option<String>,
    /// The `environment` label for --db-url.
    #[arg(long, default_value = "default", value_name = "NAME")]
    pub environment: String,
    #[command(flatten)]
    /// Logging.
    pub log: LogArgs,
}

/// Logging flags, as Prometheus exporters name them.
#[derive(Debug, Args, Clone, Default)]
pub struct LogArgs {
    /// Log level or `tracing` filter (error, warn, info, debug, or e.g.
    /// windsock=debug,sqlx=warn); overrides log.level. RUST_LOG wins over both.
    #[arg(id = "log_level", long = "log.level", value_name = "LEVEL")]
    pub level: Option<String>,
    /// Log line format (text for people, json for log pipelines); overrides
    /// log.format.
    #[arg(
        id = "log_format",
        long = "log.format",
        value_enum,
        value_name = "FORMAT"
    )]
    pub format: Option<crate::config::LogFormat>,
}

/// `windsock check`
#[derive(Debug, Args, Clone)]
pub struct CheckArgs {
    #[command(flatten)]
    /// Targets.
    pub target: TargetArgs,
    /// Series printed per metric family; the rest are counted. 0 prints
    /// every series.
    #[arg(long, default_value_t = 10, value_name = "N")]
    pub samples: usize,
}

/// `windsock report`
#[derive(Debug, Args, Clone)]
pub struct ReportArgs {
    #[command(flatten)]
    /// Targets.
    pub target: TargetArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: ReportFormat,
}

/// Report formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// For people.
    Text,
    /// For machines (the same as GET /api/v1/report).
    Json,
}

/// `windsock run`
#[derive(Debug, Args, Clone)]
pub struct RunArgs {
    #[command(flatten)]
    /// Targets.
    pub target: TargetArgs,
    /// Address to listen on: host:port, or :port for every interface
    /// (port 0 picks a free one); overrides server.listen.
    #[arg(long = "web.listen-address", alias = "listen", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Path of the metrics endpoint; overrides server.telemetry_path.
    #[arg(long = "web.telemetry-path", value_name = "PATH")]
    pub telemetry_path: Option<String>,
    /// TLS and basic auth for the metrics listener, in the Prometheus
    /// exporter-toolkit's web config format; overrides
    /// server.web_config_file.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config: Option<PathBuf>,
}

/// `windsock demo`
#[derive(Debug, Args, Clone)]
pub struct DemoArgs {
    /// Where to create the demo database.
    #[arg(long, default_value = "windsock-demo.db", value_name = "FILE")]
    pub path: PathBuf,
    /// Rebuild the database even if the file exists.
    #[arg(long)]
    pub regenerate: bool,
    /// Seed of the generated history (same seed, same data).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Only build the database, do not serve.
    #[arg(long)]
    pub generate_only: bool,
    /// Listen address of the demo's /metrics.
    #[arg(long, default_value = "127.0.0.1:10112", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }
}
