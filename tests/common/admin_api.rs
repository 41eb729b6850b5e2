//! The admin router in process, as the listener would serve it: requests
//! carry the peer address (`ConnectInfo`) the listener adds, loopback unless
//! a test says otherwise.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode, header};
use base64::Engine as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use windsock::admin::api::{AdminState, router};
use windsock::admin::auth::{FailureLimiter, Tokens, hash_token};
use windsock::admin::server::Peer;
use windsock::admin::users::UserStore;
use windsock::config::{Scope, TokenSettings};
use windsock::db::write::WriteDb;
use windsock::metrics::Store;

use super::{TestDb, fast_settings};

/// The token of [`state`]: every scope, acting as Admin.
pub const TOKEN: &str = "test-token-0123456789abcdef";

/// A router and its counters.
pub struct Api {
    pub app: axum::Router,
    pub metrics: Arc<Store>,
}

impl Api {
    /// The router of `state`.
    pub fn new(state: AdminState) -> Api {
        Api {
            metrics: state.metrics.clone(),
            app: router(state),
        }
    }
}

/// A token entry for [`Tokens::new`].
pub fn token(name: &str, secret: &str, scopes: &[Scope], roles: &[&str]) -> TokenSettings {
    TokenSettings {
        name: name.into(),
        sha256: hash_token(secret),
        scopes: scopes.to_vec(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    }
}

/// The state of an admin API on `users`: [`TOKEN`], basic auth as given,
/// required role Admin, plain HTTP.
pub fn state(users: Arc<UserStore>, basic: bool, dry_run: bool, max_failures: u32) -> AdminState {
    AdminState {
        users,
        tokens: Arc::new(Tokens::new(&[token("ci", TOKEN, &Scope::ALL, &["Admin"])])),
        basic,
        required_role: "Admin".into(),
        basic_scopes: Scope::ALL.to_vec(),
        tls: false,
        allow_plain_http_tokens: false,
        limiter: Arc::new(FailureLimiter::new(max_failures, Duration::from_secs(60))),
        metrics: Arc::new(Store::new(["t"])),
        dry_run,
        max_body: 4096,
        environment: "t".into(),
    }
}

/// The user store of `db`.
pub fn users(db: &TestDb) -> Arc<UserStore> {
    Arc::new(UserStore::new(
        WriteDb::new(&db.db_url(), &fast_settings()).unwrap(),
    ))
}

/// An admin API on `db`.
pub fn api(db: &TestDb, basic: bool, dry_run: bool) -> Api {
    Api::new(state(users(db), basic, dry_run, 100))
}

/// URL-encodes a query value.
pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// `Bearer <TOKEN>`.
pub fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

/// `Basic base64(user:pw)`.
pub fn basic(user: &str, pw: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}"))
    )
}

/// One request from loopback; the answer's status and JSON body.
pub async fn call(
    api: &Api,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    call_from(api, peer, method, uri, auth, body).await
}

/// One request from `peer`.
pub async fn call_from(
    api: &Api,
    peer: SocketAddr,
    method: &str,
    uri: &str,
    auth: Option<&str>,
    body: Option<(&str, String)>,
) -> (StatusCode, Value) {
    let mut req = Request::builder()
        .method(method)
        .uri(uri)
        .extension(ConnectInfo(Peer(peer)));
    if let Some(a) = auth {
        req = req.header(header::AUTHORIZATION, a);
    }
    let req = match body {
        Some((ct, b)) => req.header(header::CONTENT_TYPE, ct).body(Body::from(b)),
        None => req.body(Body::empty()),
    }
    .unwrap();
    let resp = api.app.clone().oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(&bytes)}))
    };
    (status, v)
}

/// GET a user with [`TOKEN`].
pub async fn get(api: &Api, username: &str) -> (StatusCode, Value) {
    call(
        api,
        "GET",
        &format!("/api/v1/users-ext/?username={}", enc(username)),
        Some(&bearer()),
        None,
    )
    .await
}

/// PATCH with [`TOKEN`].
pub async fn patch(api: &Api, query: &str, body: Value) -> (StatusCode, Value) {
    patch_as(api, &bearer(), query, body).await
}

/// PATCH with these credentials.
pub async fn patch_as(api: &Api, auth: &str, query: &str, body: Value) -> (StatusCode, Value) {
    call(
        api,
        "PATCH",
        &format!("/api/v1/users-ext/?{query}"),
        Some(auth),
        Some(("application/json", body.to_string())),
    )
    .await
}

/// The role names of a user JSON.
pub fn roles(v: &Value) -> Vec<String> {
    v["roles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect()
}
