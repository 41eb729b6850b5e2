//! A minimal JSON POST client for the interception webhook (HTTP/1.1 over
//! TCP, or rustls with the webpki roots for `https://`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::rustls;

/// Why a webhook call failed (no URL credentials in the message).
#[derive(Debug, thiserror::Error)]
#[error("webhook {host}: {message}")]
pub struct WebhookError {
    host: String,
    message: String,
}

/// POSTs `body` as JSON to `url`; succeeds on any 2xx answer.
pub async fn post_json(
    url: &url::Url,
    body: &serde_json::Value,
    timeout: Duration,
) -> Result<u16, WebhookError> {
    let host = url.host_str().unwrap_or("").to_owned();
    let err = |m: String| WebhookError {
        host: host.clone(),
        message: m,
    };
    let fut = async {
        let addrs = url
            .socket_addrs(|| None)
            .map_err(|e| err(format!("resolve: {e}")))?;
        let tcp = TcpStream::connect(&*addrs)
            .await
            .map_err(|e| err(format!("connect: {e}")))?;
        // Host header: with the port when it is not the scheme's default.
        let host_header = match url.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.clone(),
        };
        let path = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        };
        let req = hyper::Request::post(path)
            .header(hyper::header::HOST, host_header.as_str())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("windsock/", env!("CARGO_PKG_VERSION")),
            )
            .body(Full::new(Bytes::from(body.to_string())))
            .map_err(|e| err(e.to_string()))?;
        let status = if url.scheme() == "https" {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| err(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            let name =
                rustls::pki_types::ServerName::try_from(host.trim_matches(['[', ']']).to_owned())
                    .map_err(|e| err(e.to_string()))?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| err(format!("TLS: {e}")))?;
            send(TokioIo::new(tls), req).await
        } else {
            send(TokioIo::new(tcp), req).await
        }
        .map_err(|e| err(e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(err(format!("answered HTTP {status}")))
        }
    };
    tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| err(format!("no answer within {timeout:?}")))?
}

async fn send<T>(io: T, req: hyper::Request<Full<Bytes>>) -> Result<u16, hyper::Error>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await?;
    let driver = tokio::spawn(conn);
    let resp = sender.send_request(req).await;
    driver.abort();
    Ok(resp?.status().as_u16())
}
