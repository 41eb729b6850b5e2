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

/// Runs until `shutdown` resolves.
pub async fn run(
    config: ValidatedConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let store = Arc::new(
        Store::new(config.targets.iter().map(|t| t.environment.as_str()))
            .with_max_series(config.settings.cardinality.max_series),
    );
    let runners = runners(&config, &store)?;
    // TLS files, rules and the writable pool are checked before any port
    // is bound, like the rest of the config.
    let admin = crate::admin::build(&config, &store)?;
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
    info!(listen = %bound, targets = runners.len(), version = crate::VERSION, revision = crate::REVISION, "Listening; metrics at http://{bound}{}", config.settings.server.telemetry_path);

    let cancel = CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for r in runners {
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
    if let Some(admin) = admin {
        if let Some((addr, state, tls)) = admin.api {
            let https = tls.is_some();
            let (bound, handle) = crate::admin::serve(addr, state, tls, cancel.clone()).await?;
            let scheme = if https { "https" } else { "http" };
            info!(listen = %bound, "Admin API listening at {scheme}://{bound}/api/v1/users-ext/");
            tasks.spawn(async move {
                if let Ok(Err(error)) = handle.await {
                    warn!(%error, "Admin API server stopped.");
                }
            });
        }
        if let Some(interceptor) = admin.interceptor {
            info!(
                rules = interceptor.rules.len(),
                dry_run = interceptor.dry_run,
                "New-user interception enabled."
            );
            tasks.spawn(interceptor.run(cancel.child_token()));
        }
    }

    let envs: Vec<String> = config
        .targets
        .iter()
        .map(|t| t.environment.clone())
        .collect();
    if let Some(path) = config.settings.report.path.clone() {
        let every = config.settings.report.interval;
        let (store, envs, th) = (
            store.clone(),
            envs.clone(),
            config.settings.thresholds.clone(),
        );
        let cancel = cancel.clone();
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
        let (store, envs, th) = (
            store.clone(),
            envs.clone(),
            config.settings.thresholds.clone(),
        );
        let cancel = cancel.clone();
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
    let app = router(
        AppState::new(store).with_report(envs, config.settings.thresholds.clone()),
        &config.settings.server.telemetry_path,
    );
    let http_cancel = cancel.clone();
    let mut server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(http_cancel.cancelled_owned())
            .await
    });

    tokio::select! {
        () = shutdown => info!("Shutdown requested; stopping."),
        res = &mut server => {
            warn!(result = ?res, "HTTP server stopped unexpectedly.");
        }
    }
    cancel.cancel();
    let grace = config.settings.server.shutdown_grace;
    let drain = async {
        let _ = (&mut server).await;
        while tasks.join_next().await.is_some() {}
    };
    if tokio::time::timeout(grace, drain).await.is_err() {
        warn!(grace = ?grace, "Shutdown grace period exceeded; exiting anyway.");
        server.abort();
        tasks.abort_all();
    }
    info!("Stopped.");
    Ok(())
}
