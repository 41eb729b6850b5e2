//! TLS for windsock's listeners (`/metrics` with `--web.config.file`, the
//! admin API): rustls with the ring provider, certificates from PEM files,
//! optional client certificates, and a listener that completes handshakes
//! concurrently so a slow client cannot hold up others.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::serve::Listener;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::server::TlsStream;
use tracing::debug;

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {0}")]
pub struct TlsError(pub String);

/// Whether and how clients must present certificates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    /// No client certificate asked for.
    None,
    /// A certificate is verified against the CA when one is given.
    VerifyIfGiven,
    /// A certificate signed by the CA is required.
    Require,
}

/// What a TLS listener is built from.
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM certificate chain.
    pub cert: PathBuf,
    /// PEM private key.
    pub key: PathBuf,
    /// PEM CA bundle for client certificates.
    pub client_ca: Option<PathBuf>,
    /// Client certificate policy.
    pub client_auth: ClientAuth,
    /// Oldest protocol version accepted (TLS 1.3 only when false).
    pub allow_tls12: bool,
}

impl TlsFiles {
    /// Server certificate only, TLS 1.2 and 1.3.
    pub fn server(cert: &Path, key: &Path) -> TlsFiles {
        TlsFiles {
            cert: cert.to_owned(),
            key: key.to_owned(),
            client_ca: None,
            client_auth: ClientAuth::None,
            allow_tls12: true,
        }
    }
}

fn certs(path: &Path) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, TlsError> {
    use rustls::pki_types::pem::PemObject as _;
    let certs: Vec<_> = rustls::pki_types::CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect)
        .map_err(|e| TlsError(format!("certificate {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "certificate {}: no PEM certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

/// Loads the files into an acceptor.
pub fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject as _;
    let chain = certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| TlsError(format!("key {}: {e}", files.key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = if files.allow_tls12 {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    } else {
        &[&rustls::version::TLS13]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError(e.to_string()))?;
    let builder = match (&files.client_ca, files.client_auth) {
        (_, ClientAuth::None) => builder.with_no_client_auth(),
        (None, _) => return Err(TlsError("client certificates need a client CA file".into())),
        (Some(ca), auth) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs(ca)? {
                roots
                    .add(c)
                    .map_err(|e| TlsError(format!("client CA {}: {e}", ca.display())))?;
            }
            let v = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            );
            let v = if auth == ClientAuth::VerifyIfGiven {
                v.allow_unauthenticated()
            } else {
                v
            };
            builder.with_client_cert_verifier(
                v.build()
                    .map_err(|e| TlsError(format!("client CA {}: {e}", ca.display())))?,
            )
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| TlsError(format!("certificate and key do not fit: {e}")))?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener that completes TLS handshakes concurrently (a slow client
/// cannot hold up others) and yields only finished ones.
pub struct TlsListener {
    local: SocketAddr,
    rx: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Longest a client may take for its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at most; connections beyond are closed at once
/// (a flood of silent TCP clients costs at most this many sockets for
/// [`HANDSHAKE_TIMEOUT`]).
const MAX_HANDSHAKES: usize = 256;

impl TlsListener {
    /// Wraps a bound TCP listener.
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let handshakes = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, peer)) = tcp.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let Ok(permit) = handshakes.clone().try_acquire_owned() else {
                    debug!(client = %peer, "Too many TLS handshakes in progress; connection closed.");
                    continue;
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => debug!(client = %peer, error = %e, "TLS handshake failed."),
                        Err(_) => debug!(client = %peer, "TLS handshake timed out."),
                    }
                });
            }
        });
        Ok(TlsListener { local, rx, task })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.rx.recv().await {
            Some(conn) => conn,
            // The accept task only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
