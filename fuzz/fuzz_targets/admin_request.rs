//! The admin API router on the demo DB (global dry run, so nothing
//! changes between inputs): any method, query string, header and body get
//! a JSON answer with a stable code, never a 500 or a panic.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::Request;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;
use windsock::admin::api::{AdminState, router};
use windsock::admin::auth::{FailureLimiter, Tokens, hash_token};
use windsock::config::{DatabaseSettings, Scope, TokenSettings};

const TOKEN: &str = "fuzz-token-0123456789";

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn world() -> &'static World {
    static W: OnceLock<World> = OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let path = std::env::temp_dir().join(format!("windsock-fuzz-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&path);
        rt.block_on(windsock::demo::create(&path, 7)).unwrap();
        // The pool is made inside the runtime.
        let _inside = rt.enter();
        let url = windsock::db::url::DbUrl::sqlite_file(&path);
        let users = windsock::admin::users::UserStore::new(
            windsock::db::write::WriteDb::new(&url, &DatabaseSettings::default()).unwrap(),
        );
        let state = AdminState {
            users: Arc::new(users),
            tokens: Arc::new(Tokens::new(&[TokenSettings {
                name: "fuzz".into(),
                sha256: hash_token(TOKEN),
                scopes: Scope::ALL.to_vec(),
                roles: vec!["Op".into()],
            }])),
            basic: true,
            required_role: "Admin".into(),
            basic_scopes: Scope::ALL.to_vec(),
            tls: false,
            allow_plain_http_tokens: true,
            limiter: Arc::new(FailureLimiter::new(u32::MAX, Duration::from_secs(1))),
            metrics: Arc::new(windsock::metrics::Store::new(["fuzz"])),
            dry_run: true,
            max_body: 4096,
            environment: "fuzz".into(),
        };
        let app = router(state);
        drop(_inside);
        World { rt, app }
    })
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // method byte | auth byte | query \0 content-type \0 body
    let [m, a, rest @ ..] = data else {
        return;
    };
    let method = ["GET", "PATCH", "DELETE", "POST", "PUT"][usize::from(*m) % 5];
    let mut parts = rest.splitn(3, |b| *b == 0);
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default());
    let content_type = parts.next().unwrap_or_default().to_vec();
    let body = parts.next().unwrap_or_default().to_vec();
    let path = if a & 16 == 0 {
        "/api/v1/users-ext/"
    } else {
        "/api/v1/users-ext/search"
    };
    let uri = format!("{path}?{}", query.replace(['#', ' '], ""));
    let Ok(mut req) = Request::builder()
        .method(method)
        .uri(&uri)
        .body(Body::from(body))
    else {
        return;
    };
    // Mostly the token: basic auth costs a full password hash per input.
    let auth = match a % 16 {
        0 => Some("Basic YWRtaW46YWRtaW4=".to_owned()), // admin:admin, not its password
        1 | 2 => Some(String::from_utf8_lossy(&content_type).into_owned()),
        3 => None,
        _ => Some(format!("Bearer {TOKEN}")),
    };
    if let Some(v) = auth.and_then(|v| v.parse().ok()) {
        req.headers_mut().insert("authorization", v);
    }
    if let Ok(v) = axum::http::HeaderValue::from_bytes(&content_type) {
        req.headers_mut().insert("content-type", v);
    }
    let resp = w.rt.block_on(w.app.clone().oneshot(req)).unwrap();
    let status = resp.status();
    assert!(status != 500, "500 for {method} {uri}");
    if status.is_client_error() || status.is_server_error() {
        let bytes =
            w.rt.block_on(axum::body::to_bytes(resp.into_body(), 1 << 20))
                .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON error body");
        assert!(v["code"].is_string(), "{v}");
    }
});
