//! The interception webhook's client against real servers on loopback: a
//! plain HTTP receiver, an HTTPS one with a certificate of a private CA made
//! by openssl, and a receiver standing in for an HTTP proxy (it records the
//! absolute-form request a client sends to a proxy). Then the daemon: a new
//! Airflow user reaches both receivers, one through `HTTP_PROXY` from the
//! environment, one over HTTPS trusting `ca_file`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{StatusCode, Uri};
use windsock::admin::webhook::Webhook;

/// What a receiver saw of one request.
#[derive(Debug, Clone)]
struct Seen {
    /// The request target as sent: a path, or an absolute URL via a proxy.
    uri: String,
    body: serde_json::Value,
}

type Log = Arc<Mutex<Vec<Seen>>>;

/// An axum app that records every POST and answers `status`.
fn recorder(status: StatusCode) -> (axum::Router, Log) {
    let log: Log = Arc::default();
    let l = log.clone();
    let app = axum::Router::new().fallback(move |uri: Uri, body: String| {
        let l = l.clone();
        async move {
            l.lock().unwrap().push(Seen {
                uri: uri.to_string(),
                body: serde_json::from_str(&body).unwrap_or_default(),
            });
            status
        }
    });
    (app, log)
}

/// A plain HTTP receiver; its address and log.
async fn http_receiver(status: StatusCode) -> (std::net::SocketAddr, Log) {
    let (app, log) = recorder(status);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(tcp, app).await });
    (addr, log)
}

/// A private CA and a server certificate it signed for localhost and
/// 127.0.0.1 (openssl); returns (ca.pem, server cert, server key).
fn private_ca(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    std::fs::create_dir_all(dir).unwrap();
    let openssl = |args: &[&str]| {
        let ok = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .stderr(Stdio::null())
            .status()
            .expect("openssl");
        assert!(ok.success(), "openssl {args:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=windsock test CA",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
    ]);
    std::fs::write(
        dir.join("san.ext"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
    ]);
    (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    )
}

/// An HTTPS receiver (windsock's own rustls listener) with that certificate.
async fn https_receiver(cert: &Path, key: &Path) -> (u16, Log) {
    use windsock::tls::{TlsFiles, TlsListener, acceptor};
    let (app, log) = recorder(StatusCode::OK);
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = tcp.local_addr().unwrap().port();
    let tls = TlsListener::new(tcp, acceptor(&TlsFiles::server(cert, key)).unwrap()).unwrap();
    tokio::spawn(async move { axum::serve(tls, app).await });
    (port, log)
}

fn hook(url: &str, proxy: Option<&str>, ca: Option<&Path>) -> Webhook {
    Webhook::new(url.parse().unwrap(), Duration::from_secs(5), proxy, ca).unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    std::env::temp_dir().join(format!("windsock-webhook-{tag}-{}", std::process::id()))
}

#[tokio::test]
async fn posts_json_and_reports_the_answer_without_the_url() {
    let (addr, log) = http_receiver(StatusCode::ACCEPTED).await;
    let h = hook(&format!("http://{addr}/hook?token=s3cret"), None, None);
    let status = h.post_json(&serde_json::json!({"user": "team/ann"})).await;
    assert_eq!(status.unwrap(), 202);
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "/hook?token=s3cret");
    assert_eq!(seen[0].body["user"], "team/ann");

    let (addr, _) = http_receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let h = hook(&format!("http://{addr}/hook?token=s3cret"), None, None);
    let err = h.post_json(&serde_json::json!({})).await.unwrap_err();
    assert!(err.to_string().contains("answered HTTP 500"), "{err}");

    // Nothing listens: the cause is named, the URL's token is not.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let h = hook(
        &format!("http://127.0.0.1:{port}/hook?token=s3cret"),
        None,
        None,
    );
    let err = h
        .post_json(&serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("connection refused"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test]
async fn goes_through_the_configured_proxy() {
    // The "proxy" receives the absolute-form request for a host that does
    // not resolve: only a proxied call can get there.
    let (proxy, log) = http_receiver(StatusCode::OK).await;
    let h = hook(
        "http://hooks.invalid/users?token=s3cret",
        Some(&format!("http://{proxy}")),
        None,
    );
    assert_eq!(
        h.post_json(&serde_json::json!({"n": 1})).await.unwrap(),
        200
    );
    let seen = log.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].uri, "http://hooks.invalid/users?token=s3cret");
    assert_eq!(seen[0].body["n"], 1);
}

#[tokio::test]
async fn trusts_a_private_ca_only_when_given() {
    let dir = scratch("ca");
    let (ca, cert, key) = private_ca(&dir);
    let (port, log) = https_receiver(&cert, &key).await;
    // By name: hickory resolves localhost from /etc/hosts.
    let url = format!("https://localhost:{port}/hook");
    let err = hook(&url, None, None)
        .post_json(&serde_json::json!({}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.to_lowercase().contains("certificate"), "{err}");
    assert!(log.lock().unwrap().is_empty());
    assert_eq!(
        hook(&url, None, Some(&ca))
            .post_json(&serde_json::json!({"tls": true}))
            .await
            .unwrap(),
        200
    );
    assert_eq!(log.lock().unwrap()[0].body["tls"], true);

    // A file without certificates is refused when the client is built.
    std::fs::write(dir.join("empty.pem"), "not a certificate\n").unwrap();
    let err = Webhook::new(
        url.parse().unwrap(),
        Duration::from_secs(1),
        None,
        Some(&dir.join("empty.pem")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("ca_file") && err.contains("empty.pem"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Through the daemon: `[admin.intercept]` with two webhook rules; a new
/// Airflow user reaches the HTTP one through `HTTP_PROXY` (the daemon's
/// environment) and the HTTPS one trusting `ca_file`. Bad `ca_file` and
/// `proxy` values stop the config with exit 64, naming the key.
#[tokio::test(flavor = "multi_thread")]
async fn daemon_calls_webhooks_through_env_proxy_and_private_ca() {
    let dir = scratch("daemon");
    let (ca, cert, key) = private_ca(&dir);
    let (tls_port, tls_log) = https_receiver(&cert, &key).await;
    let (proxy, proxy_log) = http_receiver(StatusCode::OK).await;
    let db = common::fab::airflow_db(windsock::db::Dialect::Sqlite, "3.1.8").await;
    let rules = format!(
        "[[admin.intercept.rules]]\ntype = \"webhook\"\nurl = \"http://hooks.invalid/airflow-users\"\n\
         [[admin.intercept.rules]]\ntype = \"webhook\"\nurl = \"https://localhost:{tls_port}/users\"\n\
         ca_file = \"{}\"\n",
        ca.display()
    );
    let config = |extra: &str| {
        let path = dir.join(format!("windsock-{}.toml", extra.len()));
        std::fs::write(
            &path,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\n[[targets]]\nenvironment = \"hooks\"\nurl = \"{}\"\n\
                 [admin.intercept]\nenabled = true\ninterval = \"200ms\"\ncatch_up = \"0s\"\n{rules}{extra}",
                db.url
            ),
        )
        .unwrap();
        path
    };
    let ok = config("");
    let proxy_url = format!("http://{proxy}");
    let ws = common::Windsock::start(
        &["run", "--config", ok.to_str().unwrap()],
        &[("HTTP_PROXY", proxy_url.as_str()), ("NO_PROXY", "")],
    );
    // Let the interceptor take its watermark before the user appears.
    for _ in 0..100 {
        if ws.log().contains("New-user interception enabled.") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    common::fab::add_user(&db, "team/hooked", "hooked@example.com", "Viewer").await;
    for _ in 0..100 {
        if !proxy_log.lock().unwrap().is_empty() && !tls_log.lock().unwrap().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let via_proxy = proxy_log.lock().unwrap().clone();
    let via_tls = tls_log.lock().unwrap().clone();
    assert_eq!(via_proxy.len(), 1, "{via_proxy:?}\n{}", ws.log());
    assert_eq!(via_proxy[0].uri, "http://hooks.invalid/airflow-users");
    assert_eq!(via_proxy[0].body["username"], "team/hooked");
    assert_eq!(via_tls.len(), 1, "{via_tls:?}\n{}", ws.log());
    assert_eq!(via_tls[0].body["username"], "team/hooked");
    let (status, log) = ws.terminate();
    assert!(status.success(), "{log}");
    assert_eq!(log.matches("outcome=\"notified\"").count(), 2, "{log}");
    assert!(log.contains("detail=hooks.invalid answered 200"), "{log}");

    for (extra, key) in [
        ("ca_file = \"/nonexistent/ca.pem\"\n", "ca_file"),
        ("proxy = \"::not a url::\"\n", "proxy"),
    ] {
        let bad = config(&format!(
            "[[admin.intercept.rules]]\ntype = \"webhook\"\nurl = \"http://x.invalid/\"\n{extra}"
        ));
        let out = Command::new(env!("CARGO_BIN_EXE_windsock"))
            .args(["config", "validate", "--config"])
            .arg(&bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{extra}: {err}");
        assert!(
            err.contains(&format!("admin.intercept.rules[2].{key}")),
            "{err}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A signed hook with retries: the receiver answers 503 twice, then 200.
/// Every attempt carries a timestamp and an HMAC-SHA256 signature the
/// receiver can check with the shared secret; the event is delivered by
/// the hook's own task, and the report names the three attempts.
#[tokio::test]
async fn signed_deliveries_are_retried_on_5xx() {
    use hmac::{Hmac, Mac as _};
    type Seen = Arc<Mutex<Vec<(String, String, String)>>>;
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap, body: String| {
        let s = s.clone();
        async move {
            let h = |n: &str| {
                headers
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned()
            };
            let mut s = s.lock().unwrap();
            s.push((h("x-windsock-timestamp"), h("x-windsock-signature"), body));
            if s.len() < 3 {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            }
        }
    });
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(tcp, app).await });

    let secret = b"0123456789abcdef-shared";
    let h = hook(&format!("http://{addr}/u"), None, None)
        .signed(secret)
        .with_retries(3);
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.enqueue(
        serde_json::json!({"username": "team/ann"}),
        Box::new(move |res, attempts| {
            let _ = tx.send((res.map_err(|e| e.to_string()), attempts));
        }),
    );
    let (res, attempts) = tokio::time::timeout(Duration::from_secs(20), rx)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((res, attempts), (Ok(200), 3));
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 3);
    for (ts, sig, body) in &seen {
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(format!("{ts}.{body}").as_bytes());
        let want: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sig, &format!("sha256={want}"));
        let age = windsock::metrics::now_unix() - ts.parse::<f64>().unwrap();
        assert!((0.0..60.0).contains(&age), "timestamp {ts}");
    }
    // A 4xx is the receiver refusing: not retried.
    let (addr, log) = http_receiver(StatusCode::FORBIDDEN).await;
    let h = hook(&format!("http://{addr}/u"), None, None).with_retries(3);
    let (tx, rx) = tokio::sync::oneshot::channel();
    h.enqueue(
        serde_json::json!({}),
        Box::new(move |res, attempts| {
            let _ = tx.send((res.is_err(), attempts));
        }),
    );
    assert_eq!(rx.await.unwrap(), (true, 1));
    assert_eq!(log.lock().unwrap().len(), 1);
}
