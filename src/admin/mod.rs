//! The admin side: user management on Airflow's FAB tables and the
//! interception of new users. Off unless `[admin]` is configured; see
//! `docs/admin.md`.
//!
//! - [`password`]: the werkzeug hash formats FAB writes and checks.
//! - [`users`]: lookup, search, change and delete, each one transaction.
//! - [`auth`]: bearer tokens, basic auth against `ab_user`, failure limits.
//! - [`api`]: the HTTP endpoints; [`server`]: its listener (optionally TLS).
//! - [`intercept`]: the new-user rule pipeline; [`webhook`]: its client.
//!
//! All writes go through [`crate::db::write`], a separate two-connection
//! pool; the diagnostics' pool stays read-only.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_rustls::TlsAcceptor;

use crate::config::ValidatedConfig;
use crate::db::DbError;
use crate::db::write::WriteDb;
use crate::metrics::Store;

pub mod api;
pub mod auth;
pub mod intercept;
pub mod password;
pub mod server;
pub mod users;
pub mod webhook;

/// Why the admin side could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// TLS files unusable.
    #[error(transparent)]
    Tls(#[from] server::TlsError),
    /// The writable pool could not be built.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Rules that do not compile.
    #[error("admin.intercept.rules: {0}")]
    Rules(String),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The admin side, built from config before any port is bound.
pub struct Admin {
    /// The API and where it listens, when configured.
    pub api: Option<(SocketAddr, api::AdminState, Option<TlsAcceptor>)>,
    /// The interception loop, when enabled.
    pub interceptor: Option<intercept::Interceptor>,
}

/// Builds the admin side (`None` when nothing of it is configured).
pub fn build(config: &ValidatedConfig, metrics: &Arc<Store>) -> Result<Option<Admin>, AdminError> {
    let a = &config.settings.admin;
    if config.admin_listen.is_none() && !a.intercept.enabled {
        return Ok(None);
    }
    let Some(env) = config.settings.admin_environment() else {
        return Ok(None);
    };
    let Some(target) = config.targets.iter().find(|t| t.environment == env) else {
        return Ok(None);
    };
    let users = Arc::new(users::UserStore::new(WriteDb::new(
        &target.url,
        &config.settings.database,
    )?));
    let api = match config.admin_listen {
        None => None,
        Some(addr) => {
            let tls = a.tls.as_ref().map(server::load_tls).transpose()?;
            let state = api::AdminState {
                users: users.clone(),
                tokens: Arc::new(auth::Tokens::new(&a.auth.tokens)),
                basic: a.auth.basic,
                required_role: a.auth.required_role.trim().to_owned(),
                basic_scopes: a.auth.basic_scopes.clone(),
                tls: tls.is_some(),
                allow_plain_http_tokens: a.auth.allow_plain_http_tokens,
                limiter: Arc::new(auth::FailureLimiter::new(
                    a.auth.max_failures,
                    a.auth.failure_window,
                )),
                metrics: metrics.clone(),
                dry_run: a.dry_run,
                max_body: a.max_body_bytes,
                environment: env.to_owned(),
            };
            Some((addr, state, tls))
        }
    };
    let interceptor = if a.intercept.enabled {
        Some(intercept::Interceptor {
            users,
            url: target.url.clone(),
            session_url: target.session_url().clone(),
            database: config.settings.database.clone(),
            rules: intercept::compile(&a.intercept).map_err(AdminError::Rules)?,
            settings: a.intercept.clone(),
            metrics: metrics.clone(),
            dry_run: a.dry_run,
            state: std::sync::Mutex::default(),
        })
    } else {
        None
    };
    Ok(Some(Admin { api, interceptor }))
}

/// Binds the admin listener and serves until `shutdown`; returns the bound
/// address once listening.
pub async fn serve(
    addr: SocketAddr,
    state: api::AdminState,
    tls: Option<TlsAcceptor>,
    limits: crate::serve::Limits,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>), AdminError> {
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| AdminError::Bind { addr, source })?;
    let bound = tcp
        .local_addr()
        .map_err(|source| AdminError::Bind { addr, source })?;
    let store = Some(state.metrics.clone());
    let app = api::router(state);
    let handle = match tls {
        None => tokio::spawn(crate::serve::serve(
            tcp, app, limits, "admin", store, shutdown,
        )),
        Some(acceptor) => {
            let listener = server::TlsListener::new(tcp, acceptor)
                .map_err(|source| AdminError::Bind { addr, source })?;
            tokio::spawn(crate::serve::serve(
                listener, app, limits, "admin", store, shutdown,
            ))
        }
    };
    Ok((bound, handle))
}
