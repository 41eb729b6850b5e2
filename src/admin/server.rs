//! The admin listener: plain HTTP or rustls TLS ([`crate::tls`]), separate
//! from `/metrics`.

use tokio_rustls::TlsAcceptor;

pub use crate::serve::Peer;
pub use crate::tls::{TlsError, TlsListener};

use crate::config::TlsSettings;

/// Loads the admin listener's certificate chain and key into an acceptor.
pub fn load_tls(s: &TlsSettings) -> Result<TlsAcceptor, TlsError> {
    crate::tls::acceptor(&crate::tls::TlsFiles::server(&s.cert, &s.key))
}
