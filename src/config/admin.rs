//! `[admin]`: the user-management API and the interception of new users.
//! Everything here is off unless configured; see `docs/admin.md`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::humantime_serde_compat;

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// Address of the admin listener, separate from `/metrics`. Unset: no
    /// admin API.
    pub listen: Option<String>,
    /// The target (by `environment`) whose FAB user tables are managed.
    /// May be left out when there is one target.
    pub target: Option<String>,
    /// Report what every write would change, change nothing.
    pub dry_run: bool,
    /// Largest request body accepted (413 above).
    pub max_body_bytes: usize,
    /// Serve HTTPS with this certificate chain and key (PEM files).
    pub tls: Option<TlsSettings>,
    /// Who may call the API.
    pub auth: AuthSettings,
    /// What happens to newly created users.
    pub intercept: InterceptSettings,
    /// Timeouts and connection cap of the admin listener.
    pub limits: super::ListenerLimits,
}

impl Default for AdminSettings {
    fn default() -> Self {
        AdminSettings {
            listen: None,
            target: None,
            dry_run: false,
            max_body_bytes: 64 * 1024,
            tls: None,
            auth: AuthSettings::default(),
            intercept: InterceptSettings::default(),
            limits: super::ListenerLimits::default(),
        }
    }
}

/// `[admin.tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
}

/// `[admin.auth]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthSettings {
    /// Bearer tokens, stored as their SHA-256 (`windsock admin hash-token`).
    pub tokens: Vec<TokenSettings>,
    /// Accept HTTP basic auth checked against Airflow's own `ab_user`
    /// password hashes.
    pub basic: bool,
    /// Role a basic-auth user must hold. Anything but `Admin` needs
    /// `allow_non_admin_role = true`.
    pub required_role: String,
    /// Accept a `required_role` other than `Admin`. Such users act with
    /// their own roles: they may only change users whose roles they all
    /// hold, and grant or take only those roles.
    pub allow_non_admin_role: bool,
    /// What basic-auth users may do (`read`, `write`, `roles`, `delete`).
    pub basic_scopes: Vec<Scope>,
    /// Accept bearer tokens over plain HTTP from clients off loopback
    /// (behind a TLS-terminating proxy). Otherwise such requests get 403.
    pub allow_plain_http_tokens: bool,
    /// Failed attempts one client may make per `failure_window` before it
    /// gets 429 (counted per client address for tokens, per client address
    /// and username for basic auth). A valid token is never refused for it.
    pub max_failures: u32,
    /// Window of `max_failures`.
    #[serde(with = "humantime_serde_compat")]
    pub failure_window: Duration,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            tokens: Vec::new(),
            basic: false,
            required_role: "Admin".to_owned(),
            allow_non_admin_role: false,
            basic_scopes: Scope::ALL.to_vec(),
            allow_plain_http_tokens: false,
            max_failures: 5,
            failure_window: Duration::from_secs(60),
        }
    }
}

/// `[[admin.auth.tokens]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who holds the token (appears in the audit log as `token:<name>`).
    pub name: String,
    /// Hex SHA-256 of the token.
    pub sha256: String,
    /// What the token may do: `read` (GET, search), `write` (PATCH of
    /// names, email, password, active), `roles` (PATCH of roles),
    /// `delete` (DELETE). Required: there is no default.
    pub scopes: Vec<Scope>,
    /// The Airflow roles the token acts with, required with `write`,
    /// `roles` or `delete`: it may only change users whose roles are all
    /// in this list, and grant or take only these roles. `["Admin"]` lifts
    /// both limits.
    #[serde(default)]
    pub roles: Vec<String>,
}

/// One permission of an admin API caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// GET a user, search users.
    Read,
    /// PATCH names, email, password, active.
    Write,
    /// PATCH roles.
    Roles,
    /// DELETE a user.
    Delete,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [Scope::Read, Scope::Write, Scope::Roles, Scope::Delete];

    /// The name used in config and errors.
    pub fn name(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Roles => "roles",
            Scope::Delete => "delete",
        }
    }
}

/// `[admin.intercept]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InterceptSettings {
    /// Watch `ab_user` for new users and run `rules` on them.
    pub enabled: bool,
    /// How often `ab_user` is polled for users above the watermark.
    #[serde(with = "humantime_serde_compat")]
    pub interval: Duration,
    /// On start (and on taking over from another replica), also look at
    /// users created this long ago, so none created during a restart is
    /// missed. The rules are idempotent; a webhook may see such a user twice.
    #[serde(with = "humantime_serde_compat")]
    pub catch_up: Duration,
    /// PostgreSQL only: install an `AFTER INSERT` trigger on `ab_user`
    /// (function `windsock_ab_user_notify`, trigger
    /// `windsock_ab_user_created`) and LISTEN, so new users are handled at
    /// once. Polling continues as the safety net. Off: windsock adds
    /// nothing to Airflow's schema.
    pub postgres_notify: bool,
    /// Never rename a user (MWAA maps IAM principals to usernames; a
    /// renamed user can no longer log in). A `sanitize` rule is refused.
    pub mwaa_safe: bool,
    /// The rules, run in order on each new user.
    pub rules: Vec<RuleSettings>,
}

impl Default for InterceptSettings {
    fn default() -> Self {
        InterceptSettings {
            enabled: false,
            interval: Duration::from_secs(10),
            catch_up: Duration::from_secs(300),
            postgres_notify: false,
            mwaa_safe: true,
            rules: Vec::new(),
        }
    }
}

/// One `[[admin.intercept.rules]]` entry, selected by `type`.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum RuleSettings {
    /// Replace characters in the username (the original's `/` → `_`); on
    /// a collision a numeric suffix is added (`domain_user_2`).
    Sanitize {
        /// Characters to replace.
        #[serde(default = "default_sanitize_chars")]
        characters: String,
        /// What each becomes.
        #[serde(default = "default_replacement")]
        replacement: String,
    },
    /// Check the username against a regular expression.
    Validate {
        /// The pattern a username must match (anchored by you).
        pattern: String,
        /// `report` (audit log and counter) or `deactivate`.
        #[serde(default)]
        on_violation: Violation,
    },
    /// Add roles to users whose username or email matches.
    AssignRoles {
        /// Regular expression on the username.
        #[serde(default)]
        username_pattern: Option<String>,
        /// Regular expression on the email.
        #[serde(default)]
        email_pattern: Option<String>,
        /// Roles added (they must exist in `ab_role`).
        roles: Vec<String>,
    },
    /// POST a JSON event about the user and what the rules did.
    Webhook {
        /// `http://` or `https://` URL.
        url: String,
        /// Give up after this long.
        #[serde(default = "default_webhook_timeout", with = "humantime_serde_compat")]
        timeout: Duration,
        /// Proxy for the call (`http://proxy:3128`); default: `HTTPS_PROXY`,
        /// `HTTP_PROXY`, `ALL_PROXY` and `NO_PROXY` from the environment.
        #[serde(default)]
        proxy: Option<String>,
        /// PEM bundle of extra CA certificates trusted for `https://` (a
        /// private CA); the system's store is always trusted.
        #[serde(default)]
        ca_file: Option<std::path::PathBuf>,
        /// Sign every POST (`X-Windsock-Signature`) with the secret in
        /// this file (trailing newline ignored).
        #[serde(default)]
        secret_file: Option<std::path::PathBuf>,
        /// Sign with the secret in this environment variable instead.
        #[serde(default)]
        secret_env: Option<String>,
        /// Attempts after the first on no answer, 429 or 5xx (at most 10).
        #[serde(default = "default_webhook_retries")]
        retries: u32,
    },
}

/// The signing secret of a webhook rule, from `secret_file` or
/// `secret_env`; `None` when neither is set.
pub fn webhook_secret(
    file: Option<&std::path::Path>,
    env: Option<&str>,
) -> Result<Option<Vec<u8>>, String> {
    let raw = match (file, env) {
        (None, None) => return Ok(None),
        (Some(_), Some(_)) => return Err("set secret_file or secret_env, not both".to_owned()),
        (Some(path), None) => {
            std::fs::read(path).map_err(|e| format!("secret_file {}: {e}", path.display()))?
        }
        (None, Some(var)) => std::env::var(var)
            .map_err(|_| format!("secret_env: ${var} is not set"))?
            .into_bytes(),
    };
    let trimmed = raw.trim_ascii_end();
    if trimmed.len() < 16 {
        return Err("the webhook secret must be at least 16 bytes".to_owned());
    }
    Ok(Some(trimmed.to_vec()))
}

fn default_webhook_retries() -> u32 {
    3
}

impl RuleSettings {
    /// The `type` name.
    pub fn kind(&self) -> &'static str {
        match self {
            RuleSettings::Sanitize { .. } => "sanitize",
            RuleSettings::Validate { .. } => "validate",
            RuleSettings::AssignRoles { .. } => "assign_roles",
            RuleSettings::Webhook { .. } => "webhook",
        }
    }
}

fn default_sanitize_chars() -> String {
    "/".to_owned()
}

fn default_replacement() -> String {
    "_".to_owned()
}

fn default_webhook_timeout() -> Duration {
    Duration::from_secs(5)
}

/// What a failed `validate` rule does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// Audit log and counter only.
    #[default]
    Report,
    /// Also set `active = false`.
    Deactivate,
}
