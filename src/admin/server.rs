//! The admin listener: plain HTTP or rustls TLS ([`crate::tls`]), separate
//! from `/metrics`.

use std::net::SocketAddr;

use axum::extract::connect_info::Connected;
use axum::serve::IncomingStream;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use crate::tls::{TlsError, TlsListener};

use crate::config::TlsSettings;

/// The client address of a connection, for rate limiting and logs.
#[derive(Debug, Clone, Copy)]
pub struct Peer(pub SocketAddr);

impl Connected<IncomingStream<'_, TcpListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Peer(*stream.remote_addr())
    }
}

/// Loads the admin listener's certificate chain and key into an acceptor.
pub fn load_tls(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    crate::tls::acceptor(&crate::tls::TlsFiles::server(&s.cert, &s.key))
}
