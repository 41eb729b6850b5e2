//! Wiring and lifecycle of `windsock run`.
//!
//! Order matters: the config is validated and every pool is built before
//! the listener is bound, so a bad config never holds a port. Shutdown:
//! SIGTERM/SIGINT cancels one token; collection stops, the HTTP server
//! stops accepting and in-flight requests get `shutdown_grace` to finish.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::config::ValidatedConfig;
use crate::db::{Db, DbError};
use crate::diagnostics;
use crate::http::{AppState, router};
use crate::metrics::Store;
use crate::metrics::limits::Limits;
use crate::runner::TargetRunner;

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// No target configured.
    #[error("no targets configured: add a [[targets]] section or pass --db-url")]
    NoTargets,
    /// A pool could not be built.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The listener could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The registry is inconsistent (a bug).
    #[error("diagnostics registry: {0}")]
    Registry(String),
    /// The admin side could not be set up.
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    /// The metrics listener's TLS could not be set up.
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
}

/// Builds one runner per target.
pub fn runners(
    config: &ValidatedConfig,
    store: &Arc<Store>,
) -> Result<Vec<TargetRunner>, DaemonError> {
    if config.targets.is_empty() {
        return Err(DaemonError::NoTargets);
    }
    config
        .targets
        .iter()
        .map(|t| {
            Ok(TargetRunner {
                environment: t.environment.clone(),
                db: Db::new(&t.url, &config.settings.database)?,
                plan: Arc::new(
                    diagnostics::registry(&config.settings).map_err(DaemonError::Registry)?,
                ),
                store: store.clone(),
                settings: config.settings.collection.clone(),
                limits: Arc::new(Limits::new(&config.settings.cardinality)),
            })
        })
        .collect()
}

/// Writes the report to `<path>.json` and `<path>.txt` every `every`
/// (first after one interval, when collection has had time to run),
/// through a temporary file so a reader never sees half a report.
async fn write_reports(
    path: std::path::PathBuf,
    every: std::time::Duration,
    store: Arc<Store>,
    envs: Vec<String>,
    thresholds: crate::config::Thresholds,
    cancel: CancellationToken,
) {
    loop {
        tokio::select! {
            () = cancel.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let report = crate::report::build(&store, &envs, &thresholds);
        let json = serde_json::to_string_pretty(&report).unwrap_or_default();
        let text = crate::report::render_text(&report);
        for (ext, body) in [("json", json), ("txt", text)] {
            let target = path.with_extension(ext);
            let tmp = path.with_extension(format!("{ext}.tmp"));
            let res = match tokio::fs::write(&tmp, body).await {
                Ok(()) => tokio::fs::rename(&tmp, &target).await,
                Err(e) => Err(e),
            };
            match res {
                Ok(()) => info!(path = %target.display(), "Report written."),
                Err(error) => warn!(path = %target.display(), %error, "Cannot write the report."),
            }
        }
    }
}

/// Resolves when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Reads the configuration again (on SIGHUP): the same file, flags and
/// environment as at start.
pub type Reload = Box<
    dyn Fn() -> std::pin::Pin<
            Box<dyn std::future::Future<Output = Result<ValidatedConfig, String>> + Send>,
        > + Send
        + Sync,
>;

/// What a configuration runs in the background, stopped and started again
/// as a whole when the configuration is reloaded: the runners, scheduled
/// exports, the interception and the report writers. The listeners stay.
struct Workers {
    cancel: CancellationToken,
    tasks: tokio::task::JoinSet<()>,
}

impl Workers {
    fn start(
        config: &ValidatedConfig,
        store: &Arc<Store>,
        interceptor: Option<crate::admin::intercept::Interceptor>,
    ) -> Result<Workers, DaemonError> {
        let cancel = CancellationToken::new();
        let mut tasks = tokio::task::JoinSet::new();
        for r in runners(config, store)? {
            tasks.spawn(r.run(cancel.child_token()));
        }
        if config.settings.export.enabled {
            for t in &config.targets {
                let db = Db::new(&t.url, &config.settings.database)?;
                tasks.spawn(crate::export::schedule(
                    db,
                    t.url.clone(),
                    config.settings.database.clone(),
                    config.settings.export.clone(),
                    t.environment.clone(),
                    store.clone(),
                    cancel.child_token(),
                ));
            }
            info!(
                every = ?config.settings.export.interval,
                to = %config.settings.export.to,
                "Scheduled export enabled."
            );
        }
        if let Some(interceptor) = interceptor {
            info!(
                rules = interceptor.rules.len(),
                dry_run = interceptor.dry_run,
                "New-user interception enabled."
            );
            tasks.spawn(interceptor.run(cancel.child_token()));
        }
        spawn_reports(config, store, &cancel, &mut tasks);
        Ok(Workers { cancel, tasks })
    }

    /// Cancels everything and waits up to `grace` for it to finish.
    async fn stop(mut self, grace: std::time::Duration) {
        self.cancel.cancel();
        let drain = async { while self.tasks.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            warn!(grace = ?grace, "Background work did not stop in time; aborted.");
            self.tasks.abort_all();
        }
    }
}

fn environments(config: &ValidatedConfig) -> Vec<String> {
    config
        .targets
        .iter()
        .map(|t| t.environment.clone())
        .collect()
}

/// The report writers of `[report]` (files, S3).
fn spawn_reports(
    config: &ValidatedConfig,
    store: &Arc<Store>,
    cancel: &CancellationToken,
    tasks: &mut tokio::task::JoinSet<()>,
) {
    let envs = environments(config);
    let th = config.settings.thresholds.clone();
    if let Some(path) = config.settings.report.path.clone() {
        let every = config.settings.report.interval;
        let (store, envs, th, cancel) = (store.clone(), envs.clone(), th.clone(), cancel.clone());
        tasks.spawn(async move {
            write_reports(path, every, store, envs, th, cancel).await;
        });
    }
    #[cfg(feature = "aws")]
    if let Some(url) = config
        .settings
        .report
        .s3
        .as_deref()
        .and_then(crate::export::s3::S3Url::parse)
    {
        let every = config.settings.report.interval;
        let s3 = config.settings.export.s3.clone();
        let (store, cancel) = (store.clone(), cancel.clone());
        tasks.spawn(async move {
            let client = crate::export::s3::client(&crate::export::s3::sdk_config(&s3).await, &s3);
            loop {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    () = tokio::time::sleep(every) => {}
                }
                let now = crate::metrics::now_unix() as i64;
                match crate::report::to_s3(&client, &url, &store, &envs, &th, now).await {
                    Ok(keys) => {
                        info!(bucket = %url.bucket, objects = keys.len(), "Report written to S3.")
                    }
                    Err(error) => warn!(%error, "Cannot write the report to S3."),
                }
            }
        });
    }
}

/// Resolves on every SIGHUP (never elsewhere).
async fn hangup(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Runs until `shutdown` resolves; re-reads the configuration with
/// `reload` on SIGHUP.
pub async fn run(
    config: ValidatedConfig,
    reload: Option<Reload>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let store = Arc::new(
        Store::new(config.targets.iter().map(|t| t.environment.as_str()))
            .with_max_series(config.settings.cardinality.max_series),
    );
    // Pools, TLS files and rules are checked before any port is bound,
    // like the rest of the config.
    let admin = crate::admin::build(&config, &store)?;
    let (admin_api, interceptor) = match admin {
        Some(a) => (a.api, a.interceptor),
        None => (None, None),
    };
    let mut workers = Workers::start(&config, &store, interceptor)?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| DaemonError::Bind {
            addr: config.listen,
            source,
        })?;
    let bound = listener.local_addr().map_err(|source| DaemonError::Bind {
        addr: config.listen,
        source,
    })?;
    let scheme = if config.web.as_ref().is_some_and(|w| w.tls.is_some()) {
        "https"
    } else {
        "http"
    };
    info!(listen = %bound, targets = config.targets.len(), version = crate::VERSION, revision = crate::REVISION, "Listening; metrics at {scheme}://{bound}{}", config.settings.server.telemetry_path);

    let cancel = CancellationToken::new();
    let mut side = tokio::task::JoinSet::new();
    if let Some((addr, state, tls)) = admin_api {
        let https = tls.is_some();
        let (bound, handle) = crate::admin::serve(
            addr,
            state,
            tls,
            config.settings.admin.limits.limits(),
            cancel.clone(),
        )
        .await?;
        let scheme = if https { "https" } else { "http" };
        info!(listen = %bound, "Admin API listening at {scheme}://{bound}/api/v1/users-ext/");
        side.spawn(async move {
            if let Ok(Err(error)) = handle.await {
                warn!(%error, "Admin API server stopped.");
            }
        });
    }
    let state = AppState::new(store.clone())
        .with_report(environments(&config), config.settings.thresholds.clone());
    let mut server = serve_metrics(listener, &config, state.clone(), cancel.clone())?;

    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut current = config;
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => {
                info!("Shutdown requested; stopping.");
                break;
            }
            res = &mut server => {
                warn!(result = ?res, "HTTP server stopped unexpectedly.");
                break;
            }
            () = hangup(&mut hup) => {
                let Some(reload) = &reload else { continue };
                match reload().await {
                    Ok(new) => {
                        workers = apply(&current, &new, &store, &state, workers).await?;
                        current = new;
                    }
                    Err(error) => {
                        warn!(%error, "Configuration reload failed; the running configuration stays.");
                        store.set("windsock_config_last_reload_successful", &[], 0.0);
                    }
                }
            }
        }
    }
    cancel.cancel();
    let grace = current.settings.server.shutdown_grace;
    let drain = async {
        let _ = (&mut server).await;
        while side.join_next().await.is_some() {}
        workers.stop(grace).await;
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!(grace = ?grace, "Shutdown grace period exceeded; exiting anyway.");
        server.abort();
    }
    info!("Stopped.");
    Ok(())
}

/// Serves `/metrics` and the rest on `listener`, with the web config's TLS
/// and basic auth when one is set, until `cancel`.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    config: &ValidatedConfig,
    state: AppState,
    cancel: CancellationToken,
) -> Result<tokio::task::JoinHandle<std::io::Result<()>>, DaemonError> {
    let store = Some(state.store.clone());
    let limits = config.settings.server.limits.limits();
    let mut app = router(state, &config.settings.server.telemetry_path);
    if let Some(web) = &config.web {
        app = crate::http::with_web(app, Arc::new(crate::http::WebLayer::new(web)));
        if let Some(files) = &web.tls {
            let acceptor = crate::tls::acceptor(files)?;
            let addr = config.listen;
            let tls = crate::tls::TlsListener::new(listener, acceptor)
                .map_err(|source| DaemonError::Bind { addr, source })?;
            let serve = crate::serve::serve(tls, app, limits, "metrics", store, cancel);
            return Ok(tokio::spawn(serve));
        }
    }
    let serve = crate::serve::serve(listener, app, limits, "metrics", store, cancel);
    Ok(tokio::spawn(serve))
}

/// Switches to a reloaded configuration: background work stops and starts
/// again with it, the store keeps the targets that stay, and the report
/// follows. What the listeners were built from needs a restart.
async fn apply(
    old: &ValidatedConfig,
    new: &ValidatedConfig,
    store: &Arc<Store>,
    state: &AppState,
    workers: Workers,
) -> Result<Workers, DaemonError> {
    let fixed = [
        ("server.listen", old.listen != new.listen),
        (
            "server.telemetry_path",
            old.settings.server.telemetry_path != new.settings.server.telemetry_path,
        ),
        ("admin.listen", old.admin_listen != new.admin_listen),
        (
            "server.web_config_file",
            old.settings.server.web_config_file != new.settings.server.web_config_file,
        ),
        ("log", old.settings.log != new.settings.log),
    ];
    for (key, changed) in fixed {
        if changed {
            warn!(
                key,
                "This setting changed but takes effect only after a restart."
            );
        }
    }
    // The interception comes from the new config; the admin API stays.
    let interceptor = crate::admin::build(new, store)?.and_then(|a| a.interceptor);
    workers.stop(old.settings.server.shutdown_grace).await;
    store.retain_targets(new.targets.iter().map(|t| t.environment.as_str()));
    store.set_max_series(new.settings.cardinality.max_series);
    state.set_report(environments(new), new.settings.thresholds.clone());
    let workers = Workers::start(new, store, interceptor)?;
    store.set("windsock_config_last_reload_successful", &[], 1.0);
    store.set(
        "windsock_config_last_reload_success_timestamp_seconds",
        &[],
        crate::metrics::now_unix(),
    );
    info!(targets = new.targets.len(), "Configuration reloaded.");
    Ok(workers)
}
