//! The interception webhook's client: a JSON POST through `reqwest`.
//!
//! - **Proxy**: `proxy` when set, otherwise `HTTPS_PROXY`/`HTTP_PROXY`/
//!   `ALL_PROXY` and `NO_PROXY` from the environment, as curl reads them.
//! - **Trust**: the system's CA store (rustls-platform-verifier: on Linux
//!   the distribution bundle, e.g. Debian's `ca-certificates`), plus the PEM
//!   certificates of `ca_file` for a private CA.
//! - **DNS**: hickory's asynchronous resolver (`/etc/resolv.conf` and
//!   `/etc/hosts`), so a slow DNS server holds no runtime thread.
//!
//! One client per rule, built at start (a bad `ca_file` or `proxy` stops
//! the config from loading) and reused, so connections are kept alive.
//! Errors never carry the URL: hook URLs often embed a token.

use std::path::Path;
use std::time::Duration;

/// Why a webhook could not be built or called (no URL in the message).
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// `ca_file` cannot be read or holds no PEM certificate.
    #[error("ca_file {path}: {message}")]
    CaFile { path: String, message: String },
    /// `proxy` is not a usable proxy URL.
    #[error("proxy: {0}")]
    Proxy(String),
    /// The client could not be built (TLS setup).
    #[error("webhook client: {0}")]
    Client(String),
    /// The call failed or was answered with a non-2xx status.
    #[error("webhook {host}: {message}")]
    Call { host: String, message: String },
}

/// One configured webhook.
#[derive(Debug, Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    timeout: Duration,
}

/// A reqwest error without its URL, with its causes (`connect: Connection
/// refused`).
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn load_ca(path: &Path) -> Result<Vec<reqwest::Certificate>, WebhookError> {
    let err = |message: String| WebhookError::CaFile {
        path: path.display().to_string(),
        message,
    };
    let pem = std::fs::read(path).map_err(|e| err(e.to_string()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

impl Webhook {
    /// Builds the client of one rule.
    pub fn new(
        url: url::Url,
        timeout: Duration,
        proxy: Option<&str>,
        ca_file: Option<&Path>,
    ) -> Result<Webhook, WebhookError> {
        // reqwest takes the process' rustls provider: ring, as the rest of
        // windsock (an error only means one is installed already).
        let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
        let mut b = reqwest::Client::builder()
            .user_agent(concat!("windsock/", env!("CARGO_PKG_VERSION")))
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .hickory_dns(true);
        if let Some(p) = proxy {
            let proxy = reqwest::Proxy::all(p)
                .map_err(|e| WebhookError::Proxy(describe(e)))?
                .no_proxy(reqwest::NoProxy::from_env());
            b = b.proxy(proxy);
        }
        if let Some(path) = ca_file {
            b = b.tls_certs_merge(load_ca(path)?);
        }
        let client = b.build().map_err(|e| WebhookError::Client(describe(e)))?;
        Ok(Webhook {
            client,
            url,
            timeout,
        })
    }

    /// The host, for logs and audit details.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("")
    }

    /// POSTs `body` as JSON; succeeds on any 2xx answer (redirects are not
    /// followed: a hook that moved is a configuration to fix).
    pub async fn post_json(&self, body: &serde_json::Value) -> Result<u16, WebhookError> {
        let err = |message: String| WebhookError::Call {
            host: self.host().to_owned(),
            message,
        };
        let resp = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_string())
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    err(format!("no answer within {:?}", self.timeout))
                } else {
                    err(describe(e))
                }
            })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(status)
        } else {
            Err(err(format!("answered HTTP {status}")))
        }
    }
}
