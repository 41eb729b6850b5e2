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
//! - **Signature**: with a `secret`, every POST carries
//!   `X-Windsock-Timestamp: <unix seconds>` and
//!   `X-Windsock-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>`,
//!   so a receiver can check the sender and refuse replays.
//! - **Delivery**: [`Webhook::enqueue`] hands the event to the hook's own
//!   task and returns at once, so a slow or black-holed receiver never
//!   delays the polling loop. The task tries `1 + retries` times (1 s, 2 s,
//!   4 s … apart, at most 30 s) on connection errors, timeouts, 429 and
//!   5xx; other 4xx answers are not retried. At most [`QUEUE`] events wait;
//!   beyond that an event is dropped (and reported). Events still queued at
//!   shutdown are dropped.
//!
//! One client per rule, built at start (a bad `ca_file` or `proxy` stops
//! the config from loading) and reused, so connections are kept alive.
//! Errors never carry the URL: hook URLs often embed a token.

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use hmac::{Hmac, Mac as _};
use tokio::sync::mpsc;

/// Events waiting for delivery per hook, at most.
pub const QUEUE: usize = 256;

/// Longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_secs(30);

/// What became of one event: the answering status, or the last error; and
/// the attempts made.
pub type Report = Box<dyn FnOnce(Result<u16, WebhookError>, u32) + Send>;

struct Job {
    body: serde_json::Value,
    report: Report,
}

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
    Call {
        host: String,
        message: String,
        /// The answer's status, when there was one.
        status: Option<u16>,
    },
    /// The delivery queue was full; the event was not sent.
    #[error("webhook {host}: {QUEUE} events already wait; this one is dropped")]
    QueueFull { host: String },
}

impl WebhookError {
    /// Whether another attempt may succeed: no answer, 429 or 5xx.
    fn retryable(&self) -> bool {
        match self {
            WebhookError::Call { status, .. } => {
                status.is_none_or(|s| s == 429 || (500..600).contains(&s))
            }
            _ => false,
        }
    }
}

/// One configured webhook.
#[derive(Clone)]
pub struct Webhook {
    client: reqwest::Client,
    url: url::Url,
    timeout: Duration,
    secret: Option<Arc<[u8]>>,
    retries: u32,
    queue: Arc<OnceLock<mpsc::Sender<Job>>>,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the URL (it may embed a token) nor the secret.
        f.debug_struct("Webhook")
            .field("host", &self.host())
            .field("signed", &self.secret.is_some())
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

/// `sha256=<hex>` of HMAC-SHA256(`secret`, `"<timestamp>.<body>"`): the
/// `X-Windsock-Signature` value.
pub fn signature(secret: &[u8], timestamp: u64, body: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
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
            secret: None,
            retries: 0,
            queue: Arc::default(),
        })
    }

    /// Signs every POST with `secret`.
    #[must_use]
    pub fn signed(mut self, secret: &[u8]) -> Webhook {
        self.secret = Some(secret.into());
        self
    }

    /// Retries a failed delivery up to `retries` times.
    #[must_use]
    pub fn with_retries(mut self, retries: u32) -> Webhook {
        self.retries = retries;
        self
    }

    /// Queues `body` for delivery and returns at once; `report` is called
    /// with the outcome once the last attempt is made (or at once, with
    /// [`WebhookError::QueueFull`]). Needs a Tokio runtime.
    pub fn enqueue(&self, body: serde_json::Value, report: Report) {
        let tx = self.queue.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            // The task holds no sender of its own queue: when the rules are
            // dropped (a reload), it delivers what waits, then ends.
            let sender = Webhook {
                queue: Arc::default(),
                ..self.clone()
            };
            tokio::spawn(sender.deliver(rx));
            tx
        });
        if let Err(e) = tx.try_send(Job { body, report }) {
            let job = match e {
                mpsc::error::TrySendError::Full(j) | mpsc::error::TrySendError::Closed(j) => j,
            };
            (job.report)(
                Err(WebhookError::QueueFull {
                    host: self.host().to_owned(),
                }),
                0,
            );
        }
    }

    /// The delivery task: one event at a time, in order, with retries.
    async fn deliver(self, mut rx: mpsc::Receiver<Job>) {
        while let Some(job) = rx.recv().await {
            let mut attempts = 0;
            let outcome = loop {
                attempts += 1;
                match self.post_json(&job.body).await {
                    Err(e) if e.retryable() && attempts <= self.retries => {
                        let pause = Duration::from_secs(1 << (attempts - 1).min(5));
                        tokio::time::sleep(pause.min(MAX_PAUSE)).await;
                    }
                    other => break other,
                }
            };
            (job.report)(outcome, attempts);
        }
    }

    /// The host, for logs and audit details.
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("")
    }

    /// POSTs `body` as JSON; succeeds on any 2xx answer (redirects are not
    /// followed: a hook that moved is a configuration to fix).
    pub async fn post_json(&self, body: &serde_json::Value) -> Result<u16, WebhookError> {
        let err = |message: String, status: Option<u16>| WebhookError::Call {
            host: self.host().to_owned(),
            message,
            status,
        };
        let body = body.to_string();
        let mut req = self
            .client
            .post(self.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some(secret) = &self.secret {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            req = req
                .header("X-Windsock-Timestamp", now.to_string())
                .header("X-Windsock-Signature", signature(secret, now, &body));
        }
        let resp = req.body(body).send().await.map_err(|e| {
            if e.is_timeout() {
                err(format!("no answer within {:?}", self.timeout), None)
            } else {
                err(describe(e), None)
            }
        })?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            Ok(status)
        } else {
            Err(err(format!("answered HTTP {status}"), Some(status)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_and_body() {
        // Python: hmac.new(b"secret", b'1700000000.{"event":"user_created"}',
        // hashlib.sha256).hexdigest()
        assert_eq!(
            signature(b"secret", 1_700_000_000, r#"{"event":"user_created"}"#),
            "sha256=dae4f5102f8cff51756b5f055ea28dcf8b89bf9682c546cc3b869f2b42df2505"
        );
        assert_ne!(signature(b"k", 1, "{}"), signature(b"k", 2, "{}"));
    }
}
