//! Configuration: built-in defaults < TOML/YAML file < `WINDSOCK_*` environment.
//!
//! Every struct denies unknown keys, so a typo is an error that names the key
//! rather than a setting that silently does nothing. Durations are humantime
//! strings (`"30s"`, `"5m"`, `"1h 30m"`). The fully commented reference is
//! `config/windsock.example.toml`; a test keeps it loadable.
//!
//! [`Settings::load`] only parses; [`Settings::validate`] checks the cross-field
//! rules and produces a [`ValidatedConfig`], the only form the daemon accepts.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::db::Dialect;
use crate::db::url::{DbUrl, UrlError};

mod admin;
mod diagnostics;
mod export;
pub mod sources;
pub mod web;
pub use admin::{
    AdminSettings, AuthSettings, InterceptSettings, RuleSettings, Scope, TlsSettings,
    TokenSettings, Violation, webhook_secret,
};
pub use diagnostics::{
    CardinalitySettings, DeadlineSettings, DiagnosticOverride, DiagnosticsSettings, PerDialectSql,
    QueryMetric, QuerySettings, QuerySql, Thresholds,
};
pub use export::{ExportFormat, ExportMode, ExportSettings, GlueSettings, S3Settings};

/// Why a configuration was rejected. Messages name the offending key.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or parsed at all.
    #[error("cannot read config {path}: {message}")]
    Read {
        /// The file.
        path: String,
        /// The parser's message.
        message: String,
    },
    /// A key has the wrong type or value, or is unknown.
    #[error("config key `{key}`: {message}")]
    Key {
        /// Dotted path of the key (`targets[0].url`).
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

impl ConfigError {
    fn key(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Key {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The HTTP listener for `/metrics`.
    pub server: ServerSettings,
    /// Logging.
    pub log: LogSettings,
    /// How diagnostics are scheduled.
    pub collection: CollectionSettings,
    /// Connection and session safety settings, shared by every target.
    pub database: DatabaseSettings,
    /// The registry: window and per-diagnostic overrides.
    pub diagnostics: DiagnosticsSettings,
    /// Values diagnostics and the report judge against.
    pub thresholds: Thresholds,
    /// Bounds on exported series.
    pub cardinality: CardinalitySettings,
    /// windsock deadlines (SLAs) per DAG.
    pub deadlines: Vec<DeadlineSettings>,
    /// User-defined queries.
    pub queries: Vec<QuerySettings>,
    /// The diagnostic report written on a schedule.
    pub report: ReportSettings,
    /// The Airflow metadata databases to watch.
    pub targets: Vec<TargetSettings>,
    /// The admin API and the interception of new users (off by default).
    pub admin: AdminSettings,
    /// Exports of metadata tables (off by default).
    pub export: ExportSettings,
}

/// `[server]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    /// Address for `/metrics`, `/healthz`, `/readyz`: `host:port`, or
    /// `:port` for every interface.
    pub listen: String,
    /// Path of the metrics endpoint.
    pub telemetry_path: String,
    /// TLS and basic auth for this listener, in the Prometheus
    /// exporter-toolkit's web config format ([`web`]).
    pub web_config_file: Option<PathBuf>,
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: Duration,
    /// Timeouts and connection cap of this listener.
    pub limits: ListenerLimits,
}

/// `[server.limits]`, `[admin.limits]`: what a client may cost a listener
/// ([`crate::serve`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ListenerLimits {
    /// Time to send a request's headers; also ends idle keep-alives.
    #[serde(with = "humantime_serde_compat")]
    pub header_read_timeout: Duration,
    /// Time for a whole request, body included, before a 503.
    #[serde(with = "humantime_serde_compat")]
    pub request_timeout: Duration,
    /// Open connections at most; above, the oldest idle one is pushed out.
    pub max_connections: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
        }
    }
}

impl ListenerLimits {
    /// Checks the section at `prefix` (`server.limits`).
    pub fn validate(&self, prefix: &str) -> Result<(), ConfigError> {
        for (key, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("request_timeout", self.request_timeout),
        ] {
            if d < Duration::from_millis(100) {
                return Err(ConfigError::key(
                    format!("{prefix}.{key}"),
                    "must be at least 100ms",
                ));
            }
        }
        if self.max_connections < 4 {
            return Err(ConfigError::key(
                format!("{prefix}.max_connections"),
                "must be at least 4",
            ));
        }
        Ok(())
    }

    /// The limits the listener applies.
    pub fn limits(&self) -> crate::serve::Limits {
        crate::serve::Limits {
            header_read_timeout: self.header_read_timeout,
            request_timeout: self.request_timeout,
            max_connections: self.max_connections,
        }
    }
}

/// Default listen address. Port 10112: Prometheus' default-port allocation
/// list has no free slot left in 9100-9999, so windsock takes a port outside
/// that range that no exporter on the list uses.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:10112";

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            listen: DEFAULT_LISTEN.to_owned(),
            telemetry_path: "/metrics".to_owned(),
            web_config_file: None,
            shutdown_grace: Duration::from_secs(10),
            limits: ListenerLimits::default(),
        }
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    /// A `tracing` filter such as `info` or `windsock=debug,sqlx=warn`.
    /// `RUST_LOG`, when set, wins.
    pub level: String,
    /// `text` for people, `json` for log pipelines.
    pub format: LogFormat,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings {
            level: "info".to_owned(),
            format: LogFormat::Text,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// `[collection]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CollectionSettings {
    /// Queries that may run at once against one target. Small on purpose:
    /// windsock must never be the load on the Airflow DB.
    pub max_concurrent_queries: usize,
    /// Deadline of one diagnostic run unless the diagnostic sets its own.
    #[serde(with = "humantime_serde_compat")]
    pub default_timeout: Duration,
    /// How often the schema (Airflow version, capabilities) is re-detected,
    /// so an Airflow upgrade is picked up without a restart.
    #[serde(with = "humantime_serde_compat")]
    pub detect_interval: Duration,
    /// Random delay of up to this much before a diagnostic's first run, so
    /// that diagnostics do not all hit the DB in the same second.
    #[serde(with = "humantime_serde_compat")]
    pub startup_jitter: Duration,
    /// Longest wait between retries of a failing diagnostic (backoff doubles
    /// the interval after each failure, up to this).
    #[serde(with = "humantime_serde_compat")]
    pub max_backoff: Duration,
}

impl Default for CollectionSettings {
    fn default() -> Self {
        CollectionSettings {
            max_concurrent_queries: 2,
            default_timeout: Duration::from_secs(30),
            detect_interval: Duration::from_secs(300),
            startup_jitter: Duration::from_secs(5),
            max_backoff: Duration::from_secs(600),
        }
    }
}

/// `[database]`: connection pool and session safety, for every target.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// Connections per target. One more than `max_concurrent_queries` leaves
    /// room for schema detection; more would only add load on Airflow's DB.
    pub max_connections: u32,
    /// Give up after this long when connecting, or waiting for a free pooled
    /// connection: a DB that does not answer must not stall collection.
    #[serde(with = "humantime_serde_compat")]
    pub acquire_timeout: Duration,
    /// Server-side limit of one statement (PostgreSQL `statement_timeout`,
    /// MySQL `max_execution_time`, MariaDB `max_statement_time`; SQLite is
    /// interrupted by a progress handler). Protects Airflow from a runaway
    /// diagnostic.
    #[serde(with = "humantime_serde_compat")]
    pub statement_timeout: Duration,
    /// How long a diagnostic may wait for a lock (PostgreSQL `lock_timeout`,
    /// MySQL `lock_wait_timeout`/`innodb_lock_wait_timeout`, SQLite busy
    /// timeout). Short, so windsock never queues behind Airflow's own writes.
    #[serde(with = "humantime_serde_compat")]
    pub lock_timeout: Duration,
    /// Close pooled connections idle for longer than this.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: Duration,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        DatabaseSettings {
            max_connections: 3,
            acquire_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(20),
            lock_timeout: Duration::from_secs(2),
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// `[report]`: the diagnostic report, also written to files on a schedule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReportSettings {
    /// Write `<path>.json` and `<path>.txt` here on every interval; unset:
    /// no files (the report is still served at /api/v1/report).
    pub path: Option<PathBuf>,
    /// Also put each report to S3 under
    /// `<prefix>/<environment>/reports/YYYY/MM/DD/` (JSON and text), with
    /// the client of `[export.s3]`.
    pub s3: Option<String>,
    /// How often the files are rewritten.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
}

impl Default for ReportSettings {
    fn default() -> Self {
        ReportSettings {
            path: None,
            s3: None,
            interval: Duration::from_secs(3600),
        }
    }
}

/// `[[targets]]`: one Airflow environment.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// Value of the `environment` label on every series of this target.
    #[serde(default = "default_environment")]
    pub environment: String,
    /// Database URL: sqlx form (`postgres://`, `mysql://`, `sqlite://`) or the
    /// SQLAlchemy form from Airflow's `sql_alchemy_conn`.
    #[serde(default)]
    pub url: String,
    /// Instead of `url`: the environment variable that holds it, resolved as
    /// Airflow resolves its options (`AIRFLOW__DATABASE__SQL_ALCHEMY_CONN`,
    /// then its `_CMD` and `_SECRET` forms) or connections
    /// (`AIRFLOW_CONN_<ID>`, URI or JSON). See [`sources`].
    #[serde(default)]
    pub url_env: Option<String>,
    /// Read the password from this AWS Secrets Manager secret (name or ARN;
    /// the secret string, or its `password` key when it holds JSON).
    #[serde(default)]
    pub password_secret_id: Option<String>,
    /// The password read from `password_secret_id` at start.
    #[serde(skip)]
    secret_password: Option<String>,
    /// Read the password from this file (trailing newline ignored).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Read the password from this environment variable.
    #[serde(default)]
    pub password_env: Option<String>,
    /// PostgreSQL: a URL that reaches the database without a transaction
    /// pooler, for the one session windsock keeps open to be woken on new
    /// users (`LISTEN`, with `[admin.intercept] notify`). Behind PgBouncer
    /// in transaction mode (Airflow's Helm chart) notifications reach
    /// whichever client holds the server connection, so without it the
    /// interception finds new users by polling alone. Everything else works
    /// through the pooler. Same user and password as `url`.
    #[serde(default)]
    pub direct_url: Option<String>,
}

impl std::fmt::Debug for TargetSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TargetSettings")
            .field("environment", &self.environment)
            .field("url", &crate::db::url::redact(&self.url))
            .field("password_file", &self.password_file)
            .field("password_env", &self.password_env)
            .field("url_env", &self.url_env)
            .field("password_secret_id", &self.password_secret_id)
            .field(
                "direct_url",
                &self.direct_url.as_deref().map(crate::db::url::redact),
            )
            .finish()
    }
}

fn default_environment() -> String {
    "default".to_owned()
}

impl TargetSettings {
    /// A target watching the database at `url`.
    pub fn from_url(environment: &str, url: &str) -> TargetSettings {
        TargetSettings {
            environment: environment.to_owned(),
            url: url.to_owned(),
            ..TargetSettings::default()
        }
    }

    /// The password from whichever single source is configured.
    fn password(&self, prefix: &str) -> Result<Option<String>, ConfigError> {
        let sources = [
            self.password_file.is_some(),
            self.password_env.is_some(),
            self.password_secret_id.is_some(),
        ];
        if sources.iter().filter(|s| **s).count() > 1 {
            return Err(ConfigError::key(
                format!("{prefix}.password_file"),
                "set one of password_file, password_env and password_secret_id",
            ));
        }
        if let Some(path) = &self.password_file {
            return read_password_file(path)
                .map(Some)
                .map_err(|m| ConfigError::key(format!("{prefix}.password_file"), m));
        }
        if let Some(var) = &self.password_env {
            return std::env::var(var).map(Some).map_err(|_| {
                ConfigError::key(
                    format!("{prefix}.password_env"),
                    format!("environment variable `{var}` is not set"),
                )
            });
        }
        match (&self.password_secret_id, &self.secret_password) {
            (Some(_), None) => Err(ConfigError::key(
                format!("{prefix}.password_secret_id"),
                "was not read (Settings::resolve_sources)",
            )),
            (_, p) => Ok(p.clone()),
        }
    }
}

impl Settings {
    /// Reads what the configuration points to outside itself: URLs from
    /// the environment (`url_env`, Airflow's way) and passwords from AWS
    /// Secrets Manager. With no target at all and Airflow's
    /// `AIRFLOW__DATABASE__SQL_ALCHEMY_CONN` (or its `_CMD`/`_SECRET`) in
    /// the environment, that database becomes the `default` target.
    pub async fn resolve_sources(&mut self) -> Result<(), ConfigError> {
        if self.targets.is_empty() && sources::env_url_present(sources::SQL_ALCHEMY_CONN) {
            tracing::info!(
                variable = sources::SQL_ALCHEMY_CONN,
                "No target configured: watching Airflow's own metadata DB connection."
            );
            self.targets.push(TargetSettings {
                url_env: Some(sources::SQL_ALCHEMY_CONN.to_owned()),
                ..TargetSettings::from_url("default", "")
            });
        }
        for (i, t) in self.targets.iter_mut().enumerate() {
            let key = |k: &str| format!("targets[{i}].{k}");
            if let Some(var) = &t.url_env {
                if !t.url.is_empty() {
                    return Err(ConfigError::key(
                        key("url_env"),
                        "set url or url_env, not both",
                    ));
                }
                t.url = sources::env_url(var).await.map_err(|e| {
                    ConfigError::key(key("url_env"), crate::db::url::redact(&e.to_string()))
                })?;
            }
            if let Some(id) = &t.password_secret_id {
                t.secret_password = Some(
                    sources::secret_password(id)
                        .await
                        .map_err(|e| ConfigError::key(key("password_secret_id"), e.to_string()))?,
                );
            }
        }
        Ok(())
    }
}

/// A configuration that passed [`Settings::validate`].
#[derive(Debug, Clone)]
pub struct ValidatedConfig {
    /// The settings as loaded.
    pub settings: Settings,
    /// The parsed listen address.
    pub listen: SocketAddr,
    /// One entry per target, URL parsed and password resolved.
    pub targets: Vec<Target>,
    /// The admin listener's parsed address, when the admin API is on.
    pub admin_listen: Option<SocketAddr>,
    /// TLS and basic auth of the metrics listener.
    pub web: Option<web::WebConfig>,
}

/// A target ready to connect to.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `environment` label value.
    pub environment: String,
    /// Parsed URL with its password.
    pub url: DbUrl,
    /// The URL without a pooler in between, when one is configured.
    pub direct_url: Option<DbUrl>,
}

impl Target {
    /// The URL for sessions that must stay on one server connection
    /// (`LISTEN`): `direct_url`, else `url`.
    pub fn session_url(&self) -> &DbUrl {
        self.direct_url.as_ref().unwrap_or(&self.url)
    }
}

/// Whether a top-level key is a plain name. The `config` crate reads a
/// top-level key as a path, so `x[99999999999]` would make it allocate an
/// array that long (found by the `config` fuzz target): such keys are
/// refused before it sees them.
fn plain_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A config file's text as a `config` source, its top-level keys checked.
fn file_source(
    text: &str,
    format: config::FileFormat,
    path: &str,
) -> Result<config::File<config::FileSourceString, config::FileFormat>, ConfigError> {
    use config::Source as _;
    let file = config::File::from_str(text, format);
    let keys = file.collect().map_err(|e| ConfigError::Read {
        path: path.to_owned(),
        message: crate::db::url::redact(&e.to_string()),
    })?;
    if let Some(bad) = keys.keys().find(|k| !plain_key(k)) {
        return Err(ConfigError::key(
            bad.escape_debug().to_string(),
            "is not a setting: keys are letters, digits, '_' and '-'",
        ));
    }
    Ok(file)
}

impl Settings {
    /// Loads defaults, then `file` (if any), then `WINDSOCK_*` variables.
    ///
    /// Environment keys use `__` between levels:
    /// `WINDSOCK_SERVER__LISTEN=127.0.0.1:9999`,
    /// `WINDSOCK_DATABASE__STATEMENT_TIMEOUT=5s`.
    pub fn load(file: Option<&Path>) -> Result<Settings, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(path) = file {
            let format = match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml") => config::FileFormat::Yaml,
                _ => config::FileFormat::Toml,
            };
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: path.display().to_string(),
                message: e.to_string(),
            })?;
            builder = builder.add_source(file_source(&text, format, &path.display().to_string())?);
        }
        // Only nested keys (`WINDSOCK_SECTION__KEY`) are settings; flat
        // variables such as `WINDSOCK_CONFIG` and `WINDSOCK_DB_URL` belong to
        // the command line and must not be mistaken for unknown keys.
        let vars: config::Map<String, String> = std::env::vars()
            .filter(|(k, _)| {
                k.strip_prefix("WINDSOCK_")
                    .is_some_and(|rest| rest.contains("__"))
                    && plain_key(k)
            })
            .collect();
        builder = builder.add_source(
            config::Environment::with_prefix("WINDSOCK")
                .prefix_separator("_")
                .separator("__")
                .try_parsing(true)
                .source(Some(vars)),
        );
        Self::build(
            builder,
            file.map_or_else(|| "<env>".to_owned(), |p| p.display().to_string()),
        )
    }

    /// Parses a config text alone (no file, no environment): what `load`
    /// does with a file's content. For tests and the fuzz targets.
    pub fn from_text(text: &str, yaml: bool) -> Result<Settings, ConfigError> {
        let format = if yaml {
            config::FileFormat::Yaml
        } else {
            config::FileFormat::Toml
        };
        let builder = config::Config::builder().add_source(file_source(text, format, "<text>")?);
        Self::build(builder, "<text>".to_owned())
    }

    fn build(
        builder: config::ConfigBuilder<config::builder::DefaultState>,
        path: String,
    ) -> Result<Settings, ConfigError> {
        let built = builder.build().map_err(|e| ConfigError::Read {
            path,
            message: crate::db::url::redact(&e.to_string()),
        })?;
        serde_path_to_error::deserialize::<_, Settings>(built).map_err(|e| {
            let key = e.path().to_string();
            ConfigError::key(
                if key == "." { "<root>".to_owned() } else { key },
                crate::db::url::redact(&e.into_inner().to_string()),
            )
        })
    }

    /// Checks the rules a parser cannot, resolves passwords and URLs.
    pub fn validate(self) -> Result<ValidatedConfig, ConfigError> {
        let listen = parse_listen(&self.server.listen).ok_or_else(|| {
            ConfigError::key(
                "server.listen",
                format!(
                    "`{}` is not an address like 0.0.0.0:10112 or :10112",
                    self.server.listen
                ),
            )
        })?;
        let path = &self.server.telemetry_path;
        if !path.starts_with('/')
            || path.len() < 2
            || ["/healthz", "/readyz", "/api/v1/report"].contains(&path.as_str())
            || path
                .chars()
                .any(|c| c.is_whitespace() || c == '?' || c == '#')
        {
            return Err(ConfigError::key(
                "server.telemetry_path",
                format!(
                    "`{path}` must be a path like /metrics, and not /healthz, /readyz or /api/v1/report"
                ),
            ));
        }
        self.server.limits.validate("server.limits")?;
        let c = &self.collection;
        if c.max_concurrent_queries == 0 || c.max_concurrent_queries > 16 {
            return Err(ConfigError::key(
                "collection.max_concurrent_queries",
                "must be between 1 and 16",
            ));
        }
        for (key, d) in [
            ("collection.default_timeout", c.default_timeout),
            ("collection.detect_interval", c.detect_interval),
            ("collection.max_backoff", c.max_backoff),
            ("database.acquire_timeout", self.database.acquire_timeout),
            (
                "database.statement_timeout",
                self.database.statement_timeout,
            ),
            ("database.lock_timeout", self.database.lock_timeout),
        ] {
            if d.is_zero() {
                return Err(ConfigError::key(key, "must be greater than zero"));
            }
        }
        let db = &self.database;
        if db.max_connections == 0 || db.max_connections > 20 {
            return Err(ConfigError::key(
                "database.max_connections",
                "must be between 1 and 20",
            ));
        }
        if db.lock_timeout > db.statement_timeout {
            return Err(ConfigError::key(
                "database.lock_timeout",
                "must not be longer than database.statement_timeout",
            ));
        }
        let mut seen = BTreeSet::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        for (i, t) in self.targets.iter().enumerate() {
            let prefix = format!("targets[{i}]");
            if !valid_label_value(&t.environment) {
                return Err(ConfigError::key(
                    format!("{prefix}.environment"),
                    "must be 1-64 characters of letters, digits, '-', '_' or '.', starting with \
                     a letter or digit (it names directories of exports and reports)",
                ));
            }
            if !seen.insert(t.environment.clone()) {
                return Err(ConfigError::key(
                    format!("{prefix}.environment"),
                    format!("`{}` is used by two targets", t.environment),
                ));
            }
            if t.url.is_empty() {
                return Err(ConfigError::key(
                    format!("{prefix}.url"),
                    match &t.url_env {
                        Some(var) => format!("url_env `{var}` was not resolved"),
                        None => "is missing: set url, or url_env".to_owned(),
                    },
                ));
            }
            let mut url = DbUrl::parse(&t.url).map_err(|e| url_error(&prefix, e))?;
            let password = t.password(&prefix)?;
            let mut direct_url = match &t.direct_url {
                None => None,
                Some(raw) => {
                    let d = DbUrl::parse(raw).map_err(|e| {
                        ConfigError::key(format!("{prefix}.direct_url"), e.to_string())
                    })?;
                    if d.dialect() != Dialect::Postgres || url.dialect() != Dialect::Postgres {
                        return Err(ConfigError::key(
                            format!("{prefix}.direct_url"),
                            "is for PostgreSQL targets behind a pooler (PgBouncer)",
                        ));
                    }
                    Some(d)
                }
            };
            if let Some(password) = password {
                for u in std::iter::once(&mut url).chain(direct_url.as_mut()) {
                    u.set_password(password.clone())
                        .map_err(|e| url_error(&prefix, e))?;
                }
            }
            targets.push(Target {
                environment: t.environment.clone(),
                url,
                direct_url,
            });
        }
        self.validate_registry()?;
        let admin_listen = self.validate_admin(listen)?;
        self.validate_export()?;
        let web = self
            .server
            .web_config_file
            .as_deref()
            .map(web::load)
            .transpose()
            .map_err(|m| ConfigError::key("server.web_config_file", m))?;
        Ok(ValidatedConfig {
            listen,
            targets,
            admin_listen,
            web,
            settings: self,
        })
    }
}

impl Settings {
    /// The environment whose users the admin side manages.
    pub fn admin_environment(&self) -> Option<&str> {
        match (&self.admin.target, self.targets.as_slice()) {
            (Some(t), _) => Some(t.as_str()),
            (None, [only]) => Some(only.environment.as_str()),
            _ => None,
        }
    }

    fn validate_admin(&self, listen: SocketAddr) -> Result<Option<SocketAddr>, ConfigError> {
        let a = &self.admin;
        a.limits.validate("admin.limits")?;
        let addr = match &a.listen {
            None => None,
            Some(text) => {
                let addr: SocketAddr = text.parse().map_err(|_| {
                    ConfigError::key(
                        "admin.listen",
                        format!("`{text}` is not an address like 127.0.0.1:10113"),
                    )
                })?;
                if addr.port() != 0 && addr == listen {
                    return Err(ConfigError::key(
                        "admin.listen",
                        "must differ from server.listen: the admin API gets its own listener",
                    ));
                }
                if a.auth.basic && a.tls.is_none() && !addr.ip().is_loopback() {
                    return Err(ConfigError::key(
                        "admin.auth.basic",
                        "basic auth sends Airflow passwords: configure [admin.tls] or listen on loopback",
                    ));
                }
                if a.auth.tokens.is_empty() && !a.auth.basic {
                    return Err(ConfigError::key(
                        "admin.auth",
                        "the admin API needs authentication: add [[admin.auth.tokens]] or set basic = true",
                    ));
                }
                Some(addr)
            }
        };
        if addr.is_none() && !a.intercept.enabled {
            return Ok(None);
        }
        match a.target.as_deref() {
            Some(t) if !self.targets.iter().any(|x| x.environment == t) => {
                return Err(ConfigError::key(
                    "admin.target",
                    format!("no [[targets]] entry has environment `{t}`"),
                ));
            }
            None if self.targets.len() > 1 => {
                return Err(ConfigError::key(
                    "admin.target",
                    "several targets are configured: name the one whose users are managed",
                ));
            }
            _ => {}
        }
        if a.max_body_bytes < 256 {
            return Err(ConfigError::key(
                "admin.max_body_bytes",
                "must be at least 256",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, t) in a.auth.tokens.iter().enumerate() {
            let key = |k: &str| format!("admin.auth.tokens[{i}].{k}");
            if !valid_label_value(&t.name) || !names.insert(t.name.as_str()) {
                return Err(ConfigError::key(
                    key("name"),
                    "must be a unique name of 1-64 letters, digits, '-', '_' or '.'",
                ));
            }
            if t.sha256.len() != 64 || !t.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ConfigError::key(
                    key("sha256"),
                    "must be the 64 hex digits `windsock admin hash-token` prints, not the token",
                ));
            }
            if t.scopes.is_empty() {
                return Err(ConfigError::key(
                    key("scopes"),
                    "say what the token may do: any of \"read\", \"write\", \"roles\", \"delete\"",
                ));
            }
            let writes = t.scopes.iter().any(|s| *s != Scope::Read);
            if writes && t.roles.iter().all(|r| r.trim().is_empty()) {
                return Err(ConfigError::key(
                    key("roles"),
                    "a token that may change users must name the Airflow roles it acts with \
                     (roles = [\"Admin\"] for full control)",
                ));
            }
        }
        let required = a.auth.required_role.trim();
        if required.is_empty() {
            return Err(ConfigError::key("admin.auth.required_role", "is empty"));
        }
        if a.auth.basic && a.auth.basic_scopes.is_empty() {
            return Err(ConfigError::key(
                "admin.auth.basic_scopes",
                "is empty: basic-auth users could do nothing; set basic = false instead",
            ));
        }
        if required != crate::admin::users::ADMIN_ROLE && !a.auth.allow_non_admin_role {
            return Err(ConfigError::key(
                "admin.auth.required_role",
                format!(
                    "`{required}` is not Admin: set allow_non_admin_role = true to let its \
                     holders manage the users whose roles they hold"
                ),
            ));
        }
        if a.auth.max_failures == 0 || a.auth.failure_window.is_zero() {
            return Err(ConfigError::key(
                "admin.auth.max_failures",
                "max_failures and failure_window must be greater than zero",
            ));
        }
        if let Some(tls) = &a.tls {
            for (k, p) in [("cert", &tls.cert), ("key", &tls.key)] {
                if let Err(e) = std::fs::metadata(p) {
                    return Err(ConfigError::key(
                        format!("admin.tls.{k}"),
                        format!("cannot read {}: {e}", p.display()),
                    ));
                }
            }
        }
        let ic = &a.intercept;
        if ic.interval < Duration::from_millis(100) {
            return Err(ConfigError::key(
                "admin.intercept.interval",
                "must be at least 100ms (each poll is a query on ab_user)",
            ));
        }
        for (i, rule) in ic.rules.iter().enumerate() {
            let key = |k: &str| format!("admin.intercept.rules[{i}].{k}");
            let regex = |k: &str, p: &str| {
                regex::Regex::new(p)
                    .map(|_| ())
                    .map_err(|e| ConfigError::key(key(k), format!("invalid pattern: {e}")))
            };
            match rule {
                RuleSettings::Sanitize {
                    characters,
                    replacement,
                } => {
                    if ic.mwaa_safe {
                        return Err(ConfigError::key(
                            key("type"),
                            "a sanitize rule renames users, and admin.intercept.mwaa_safe is on \
                             (the default): on MWAA a renamed user can no longer log in. Set \
                             mwaa_safe = false if this is not MWAA",
                        ));
                    }
                    if characters.is_empty()
                        || characters.contains(replacement.as_str()) && !replacement.is_empty()
                    {
                        return Err(ConfigError::key(
                            key("characters"),
                            "must be non-empty and must not contain the replacement",
                        ));
                    }
                }
                RuleSettings::Validate { pattern, .. } => regex("pattern", pattern)?,
                RuleSettings::AssignRoles {
                    username_pattern,
                    email_pattern,
                    roles,
                } => {
                    if username_pattern.is_none() && email_pattern.is_none() {
                        return Err(ConfigError::key(
                            key("username_pattern"),
                            "set username_pattern, email_pattern or both",
                        ));
                    }
                    for (k, p) in [
                        ("username_pattern", username_pattern),
                        ("email_pattern", email_pattern),
                    ] {
                        if let Some(p) = p {
                            regex(k, p)?;
                        }
                    }
                    if roles.is_empty() {
                        return Err(ConfigError::key(key("roles"), "is empty"));
                    }
                }
                RuleSettings::Webhook {
                    url,
                    timeout,
                    proxy,
                    ca_file,
                    secret_file,
                    secret_env,
                    retries,
                } => {
                    admin::webhook_secret(secret_file.as_deref(), secret_env.as_deref())
                        .map_err(|m| ConfigError::key(key("secret_file"), m))?;
                    if *retries > 10 {
                        return Err(ConfigError::key(key("retries"), "must be at most 10"));
                    }
                    let parsed = url::Url::parse(url)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
                    let Some(parsed) = parsed else {
                        return Err(ConfigError::key(
                            key("url"),
                            "must be an http:// or https:// URL",
                        ));
                    };
                    // Builds the client once: reads ca_file, parses proxy.
                    use crate::admin::webhook::{Webhook, WebhookError};
                    match Webhook::new(parsed, *timeout, proxy.as_deref(), ca_file.as_deref()) {
                        Ok(_) => {}
                        Err(e @ WebhookError::CaFile { .. }) => {
                            return Err(ConfigError::key(key("ca_file"), e.to_string()));
                        }
                        Err(e) => return Err(ConfigError::key(key("proxy"), e.to_string())),
                    }
                }
            }
        }
        Ok(addr)
    }

    fn validate_export(&self) -> Result<(), ConfigError> {
        let e = &self.export;
        if e.interval.is_zero() || e.window.is_zero() {
            return Err(ConfigError::key(
                "export.window",
                "interval and window must be greater than zero",
            ));
        }
        if let Some(c) = &e.cron {
            crate::export::cron::Cron::parse(c).map_err(|m| ConfigError::key("export.cron", m))?;
        }
        if !e.window.as_secs().is_multiple_of(86_400) {
            return Err(ConfigError::key(
                "export.window",
                "must be whole days (1d, 2d, ...): exports are partitioned by export_date",
            ));
        }
        if e.page_rows == 0 || e.page_rows > 100_000 {
            return Err(ConfigError::key(
                "export.page_rows",
                "must be between 1 and 100000",
            ));
        }
        crate::export::check_tables(&e.tables).map_err(|m| ConfigError::key("export.tables", m))?;
        for (table, cols) in &e.columns {
            let key = format!("export.columns.{table}");
            crate::export::check_tables(std::slice::from_ref(table))
                .map_err(|m| ConfigError::key(key.clone(), m))?;
            let plain = |c: &String| {
                !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            };
            if cols.is_empty() || !cols.iter().all(plain) {
                return Err(ConfigError::key(
                    key,
                    "must list column names (letters, digits, '_'); the key and window columns are always exported",
                ));
            }
        }
        crate::export::local_root(&e.to)
            .map_err(|m| ConfigError::key("export.to", m.to_string()))?;
        match e.mode {
            ExportMode::Direct => {}
            ExportMode::Glue => {
                if !cfg!(feature = "aws") {
                    return Err(ConfigError::key(
                        "export.mode",
                        "this windsock was built without the `aws` feature",
                    ));
                }
                if !e.to.starts_with("s3://") {
                    return Err(ConfigError::key(
                        "export.to",
                        "Glue mode writes to s3://bucket/prefix",
                    ));
                }
                if self.targets.len() > 1 {
                    return Err(ConfigError::key(
                        "export.mode",
                        "Glue mode manages one connection and one job: use one windsock configuration per environment",
                    ));
                }
                let g = &e.glue;
                if g.role_arn.is_none() {
                    return Err(ConfigError::key(
                        "export.glue.role_arn",
                        "Glue mode needs the job's IAM role",
                    ));
                }
                if !g
                    .script_location
                    .as_deref()
                    .is_some_and(|l| l.starts_with("s3://"))
                {
                    return Err(ConfigError::key(
                        "export.glue.script_location",
                        "Glue mode needs s3://bucket/prefix for the job script",
                    ));
                }
                if g.number_of_workers < 2 || g.timeout_minutes < 1 || g.poll_max.is_zero() {
                    return Err(ConfigError::key(
                        "export.glue.number_of_workers",
                        "needs at least 2 workers, a timeout of at least 1 minute and poll_max > 0",
                    ));
                }
            }
        }
        if e.enabled && self.targets.is_empty() {
            return Err(ConfigError::key(
                "export.enabled",
                "no [[targets]] to export",
            ));
        }
        Ok(())
    }

    fn validate_registry(&self) -> Result<(), ConfigError> {
        if let Some(s3) = &self.report.s3
            && (!s3.starts_with("s3://") || s3.len() <= 5 || !cfg!(feature = "aws"))
        {
            return Err(ConfigError::key(
                "report.s3",
                "must be s3://bucket/prefix (and windsock built with the `aws` feature)",
            ));
        }
        if self.report.interval < Duration::from_secs(1) {
            return Err(ConfigError::key("report.interval", "must be at least 1s"));
        }
        let d = &self.diagnostics;
        if d.window.is_zero() {
            return Err(ConfigError::key(
                "diagnostics.window",
                "must be greater than zero",
            ));
        }
        let t = &self.thresholds;
        for (key, d) in [
            ("thresholds.scheduler_alive", t.scheduler_alive),
            ("thresholds.triggerer_alive", t.triggerer_alive),
            ("thresholds.dag_processor_alive", t.dag_processor_alive),
            ("thresholds.zombie_heartbeat_age", t.zombie_heartbeat_age),
        ] {
            if d.is_zero() {
                return Err(ConfigError::key(key, "must be greater than zero"));
            }
            if d > t.component_lookback && key != "thresholds.zombie_heartbeat_age" {
                return Err(ConfigError::key(
                    key,
                    "must not be longer than thresholds.component_lookback",
                ));
            }
        }
        if !(0.0..=1.0).contains(&t.min_success_rate) {
            return Err(ConfigError::key(
                "thresholds.min_success_rate",
                "is a fraction between 0 and 1 (0.95 for 95 %)",
            ));
        }
        if t.large_dag_bytes > t.critical_dag_bytes {
            return Err(ConfigError::key(
                "thresholds.large_dag_bytes",
                "must not exceed thresholds.critical_dag_bytes",
            ));
        }
        let mut names = BTreeSet::new();
        for (i, dl) in self.deadlines.iter().enumerate() {
            let key = |k: &str| format!("deadlines[{i}].{k}");
            if !valid_label_value(&dl.name) {
                return Err(ConfigError::key(
                    key("name"),
                    "must be 1-64 characters of letters, digits, '-', '_' or '.', starting with \
                     a letter or digit (it names directories of exports and reports)",
                ));
            }
            if !names.insert(dl.name.clone()) {
                return Err(ConfigError::key(
                    key("name"),
                    format!("`{}` is used twice", dl.name),
                ));
            }
            if dl.dag_id.trim().is_empty() {
                return Err(ConfigError::key(key("dag_id"), "is empty"));
            }
            if dl.succeed_by.is_none()
                && dl.max_run_duration.is_none()
                && dl.max_age_since_success.is_none()
            {
                return Err(ConfigError::key(
                    key("name"),
                    "set at least one of succeed_by, max_run_duration, max_age_since_success",
                ));
            }
            if let Some(t) = &dl.succeed_by
                && parse_time_of_day(t).is_none()
            {
                return Err(ConfigError::key(
                    key("succeed_by"),
                    format!("`{t}` is not a UTC time of day like 06:30"),
                ));
            }
        }
        for (key, globs) in [
            ("cardinality.include_dags", &self.cardinality.include_dags),
            ("cardinality.exclude_dags", &self.cardinality.exclude_dags),
        ] {
            if globs.iter().any(|g| g.is_empty()) {
                return Err(ConfigError::key(key, "contains an empty pattern"));
            }
        }
        crate::diagnostics::registry(self).map_err(|e| {
            let (key, msg) = e.split_once(": ").unwrap_or(("queries", e.as_str()));
            ConfigError::key(key, msg)
        })?;
        Ok(())
    }
}

/// A listen address as Prometheus exporters take it: `host:port`,
/// `[v6]:port`, or `:port` for every interface; a host name is resolved.
pub fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        return Some(SocketAddr::from(([0, 0, 0, 0], port.parse().ok()?)));
    }
    if let Ok(addr) = text.parse() {
        return Some(addr);
    }
    use std::net::ToSocketAddrs as _;
    text.to_socket_addrs().ok()?.next()
}

/// `"HH:MM"` (UTC) as seconds after midnight.
pub fn parse_time_of_day(text: &str) -> Option<u32> {
    let (h, m) = text.trim().split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 3600 + m * 60)
}

fn url_error(prefix: &str, e: UrlError) -> ConfigError {
    ConfigError::key(format!("{prefix}.url"), e.to_string())
}

fn read_password_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let password = text.trim_end_matches(['\n', '\r']).to_owned();
    if password.is_empty() {
        return Err(format!("{} is empty", path.display()));
    }
    Ok(password)
}

/// An environment name: also a directory name under exports and reports,
/// so it starts with a letter or digit (never `.`, `..` or a hidden name).
fn valid_label_value(s: &str) -> bool {
    s.len() <= 64
        && s.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// serde adapter: humantime strings to [`Duration`].
mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    fn parse<E: serde::de::Error>(text: &str) -> Result<Duration, E> {
        humantime::parse_duration(text.trim()).map_err(|e| {
            E::custom(format!(
                "invalid duration `{text}` ({e}); use a form like 30s, 5m or 1h"
            ))
        })
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        parse(&String::deserialize(d)?)
    }

    /// The same for optional keys.
    pub(crate) mod option {
        use super::*;

        pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Duration>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|t| parse(&t))
                .transpose()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscripted_top_level_keys_are_refused_not_allocated() {
        // Found by the `config` fuzz target: the YAML below made the config
        // crate allocate an array of 99,999,099,991 entries and abort.
        for (text, yaml) in [
            ("99999[99999099990]: 1", true),
            ("\"x[99999999999]\" = 1", false),
            ("\"a.b\" = 1", false),
        ] {
            let e = Settings::from_text(text, yaml).unwrap_err().to_string();
            assert!(e.contains("is not a setting"), "{text}: {e}");
        }
        assert!(Settings::from_text("[server]\nlisten = \"127.0.0.1:1\"\n", false).is_ok());
    }

    fn load_str(toml: &str) -> Result<Settings, ConfigError> {
        let dir = std::env::temp_dir().join(format!("windsock-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", toml.len()));
        std::fs::write(&path, toml).unwrap();
        Settings::load(Some(&path))
    }

    #[test]
    fn defaults_validate() {
        let v = Settings::default().validate().unwrap();
        assert_eq!(v.listen.port(), 10112);
        assert!(v.targets.is_empty());
    }

    #[test]
    fn unknown_key_is_named() {
        let err = load_str("[server]\nlisten_addr = \"x\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("server.listen_addr"), "{text}");
        assert!(text.contains("unknown field"), "{text}");
    }

    #[test]
    fn bad_duration_is_named() {
        let err = load_str("[database]\nstatement_timeout = \"ten seconds\"\n").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("database.statement_timeout"), "{text}");
        assert!(text.contains("invalid duration"), "{text}");
    }

    #[test]
    fn lock_timeout_longer_than_statement_timeout_is_rejected() {
        let s =
            load_str("[database]\nstatement_timeout = \"1s\"\nlock_timeout = \"5s\"\n").unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("database.lock_timeout"), "{err}");
    }

    #[test]
    fn duplicate_environment_is_rejected() {
        let s = load_str(
            "[[targets]]\nurl = \"sqlite:///a.db\"\n[[targets]]\nurl = \"sqlite:///b.db\"\n",
        )
        .unwrap();
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("targets[1].environment"), "{err}");
    }

    #[test]
    fn password_file_overrides_url_password_and_is_not_printed() {
        let dir = std::env::temp_dir().join(format!("windsock-pw-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pw = dir.join("pw");
        std::fs::write(&pw, "from-file-secret\n").unwrap();
        let s = load_str(&format!(
            "[[targets]]\nurl = \"postgresql+psycopg2://airflow:in-url-secret@db/airflow\"\npassword_file = \"{}\"\n",
            pw.display()
        ))
        .unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains("in-url-secret"), "{debug}");
        let v = s.validate().unwrap();
        assert_eq!(v.targets[0].url.password(), Some("from-file-secret"));
        let debug = format!("{v:?}");
        for secret in ["from-file-secret", "in-url-secret"] {
            assert!(!debug.contains(secret), "{debug}");
        }
    }
}
