//! Connection handling of both HTTP listeners (`/metrics` and the admin
//! API), so stalled or hostile clients cost little and cannot lock out a
//! scraper:
//!
//! - **header read timeout** (hyper): a client has this long to send a
//!   request's headers; it also ends idle keep-alive connections;
//! - **request timeout**: a response (reading the body included) within
//!   this long, or 503;
//! - **connection cap**: at `max_connections`, a new connection pushes out
//!   the oldest one that is not in a request (stalled half-sent headers,
//!   idle keep-alives); when every connection is in a request the new one
//!   is closed. Both are counted in `windsock_http_connections_shed_total`.
//!
//! TLS handshakes happen before a connection counts ([`crate::tls`]
//! bounds them on its own).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::serve::Listener;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::debug;

use crate::metrics::Store;

/// The client address of a connection, as a request extension
/// (`ConnectInfo<Peer>`), for rate limiting and logs.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

/// The limits of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time to send a request's headers; also the idle keep-alive limit.
    pub header_read_timeout: Duration,
    /// Time for a whole request, from its headers to the response.
    pub request_timeout: Duration,
    /// Open connections at most.
    pub max_connections: usize,
}

/// One open connection.
#[derive(Debug)]
struct Conn {
    /// Requests in progress on it.
    active: AtomicUsize,
    /// Cancelled to push it out.
    evict: CancellationToken,
}

/// The open connections of a listener, oldest first (ids increase).
#[derive(Debug, Default)]
struct Conns {
    next: u64,
    open: BTreeMap<u64, Arc<Conn>>,
}

impl Conns {
    /// Registers a new connection, making room at the cap; `None` when every
    /// open connection is in a request.
    fn admit(&mut self, max: usize) -> Option<(u64, Arc<Conn>, Option<Arc<Conn>>)> {
        let mut pushed_out = None;
        if self.open.len() >= max {
            let (&id, _) = self
                .open
                .iter()
                .find(|(_, c)| c.active.load(Ordering::Acquire) == 0)?;
            pushed_out = self.open.remove(&id);
        }
        let id = self.next;
        self.next += 1;
        let conn = Arc::new(Conn {
            active: AtomicUsize::new(0),
            evict: CancellationToken::new(),
        });
        self.open.insert(id, conn.clone());
        Some((id, conn, pushed_out))
    }
}

/// Counts one shed connection.
fn shed(store: Option<&Arc<Store>>, listener: &'static str, reason: &'static str) {
    debug!(
        listener,
        reason, "HTTP connection shed at the connection cap."
    );
    if let Some(s) = store {
        s.add(
            "windsock_http_connections_shed",
            &[("listener", listener), ("reason", reason)],
            1.0,
        );
    }
}

/// Serves `app` on `listener` with `limits` until `shutdown`; then lets
/// open requests finish (connections close as they do).
pub async fn serve<L>(
    mut listener: L,
    app: Router,
    limits: Limits,
    name: &'static str,
    store: Option<Arc<Store>>,
    shutdown: CancellationToken,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
{
    let conns = Arc::new(Mutex::new(Conns::default()));
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let (io, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        while tasks.try_join_next().is_some() {}
        let admitted = conns
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(limits.max_connections);
        let Some((id, conn, pushed_out)) = admitted else {
            shed(store.as_ref(), name, "refused");
            drop(io);
            continue;
        };
        if let Some(old) = pushed_out {
            old.evict.cancel();
            shed(store.as_ref(), name, "evicted");
        }
        let (app, conns, shutdown) = (app.clone(), conns.clone(), shutdown.clone());
        tasks.spawn(async move {
            serve_one(io, peer, app, limits, &conn, &shutdown).await;
            conns
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .open
                .remove(&id);
        });
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

/// One connection: HTTP/1.1 with the timeouts, until it closes, is pushed
/// out, or the listener shuts down (then gracefully).
async fn serve_one<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    conn: &Arc<Conn>,
    shutdown: &CancellationToken,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let counter = conn.clone();
    let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(ConnectInfo(Peer(peer)));
        let (app, counter) = (app.clone(), counter.clone());
        async move {
            counter.active.fetch_add(1, Ordering::AcqRel);
            let res =
                tokio::time::timeout(limits.request_timeout, app.oneshot(req.map(Body::new))).await;
            counter.active.fetch_sub(1, Ordering::AcqRel);
            Ok::<_, Infallible>(match res {
                Ok(Ok(resp)) => resp,
                Ok(Err(never)) => match never {},
                Err(_) => timed_out(limits.request_timeout),
            })
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let connection = builder.serve_connection(TokioIo::new(io), svc);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => {}
        () = conn.evict.cancelled() => {}
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// The answer to a request that outlived `request_timeout`.
fn timed_out(after: Duration) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    (
        axum::http::StatusCode::SERVICE_UNAVAILABLE,
        [(axum::http::header::CONNECTION, "close")],
        format!("request not completed within {after:?}\n"),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_pushes_out_the_oldest_idle_connection() {
        let mut c = Conns::default();
        let (a, ca, none) = c.admit(2).unwrap();
        assert!(none.is_none());
        let (_, cb, _) = c.admit(2).unwrap();
        ca.active.store(1, Ordering::Release);
        // Full: the oldest idle one (b, since a is in a request) goes.
        let (_, _, out) = c.admit(2).unwrap();
        assert!(Arc::ptr_eq(&out.unwrap(), &cb));
        assert!(c.open.contains_key(&a));
        // Every connection in a request: the new one is refused.
        for conn in c.open.values() {
            conn.active.store(1, Ordering::Release);
        }
        assert!(c.admit(2).is_none());
        assert_eq!(c.open.len(), 2);
    }
}
