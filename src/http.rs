//! The HTTP side: `/metrics`, `/healthz`, `/readyz` and a landing page.
//!
//! `/metrics` is served from encodings of the in-memory store shared by all
//! scrapes ([`ScrapeCache`]); a scrape never queries the database. Content negotiation: a scraper that accepts
//! `application/openmetrics-text` (Prometheus does) gets OpenMetrics, anything
//! else (curl, older scrapers) the classic text format 0.0.4.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::config::Thresholds;
use crate::metrics::{CLASSIC_CONTENT_TYPE, Format, OPENMETRICS_CONTENT_TYPE, ScrapeCache, Store};

/// Shared state of the handlers.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The snapshot.
    pub store: Arc<Store>,
    /// Its encodings, shared by all scrapes.
    pub cache: Arc<ScrapeCache>,
    /// Environments and thresholds of `/api/v1/report` (replaced when the
    /// configuration is reloaded).
    pub report: Arc<std::sync::RwLock<(Vec<String>, Thresholds)>>,
}

impl AppState {
    /// State for a store, with default thresholds.
    pub fn new(store: Arc<Store>) -> AppState {
        AppState {
            cache: Arc::new(ScrapeCache::new(store.clone())),
            store,
            report: Arc::new(std::sync::RwLock::new((Vec::new(), Thresholds::default()))),
        }
    }

    /// Sets what `/api/v1/report` covers.
    #[must_use]
    pub fn with_report(self, environments: Vec<String>, thresholds: Thresholds) -> AppState {
        self.set_report(environments, thresholds);
        self
    }

    /// Changes what `/api/v1/report` covers.
    pub fn set_report(&self, environments: Vec<String>, thresholds: Thresholds) {
        *self.report.write().unwrap_or_else(|p| p.into_inner()) = (environments, thresholds);
    }
}

/// The router, with the metrics endpoint at `telemetry_path`.
pub fn router(state: AppState, telemetry_path: &str) -> Router {
    let path = telemetry_path.to_owned();
    Router::new()
        .route("/", get(move || landing(path)))
        .route(telemetry_path, get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/v1/report", get(report))
        .fallback(not_found)
        .with_state(state)
}

/// Whether a list header (`Accept`, `Accept-Encoding`) names `token`
/// without refusing it by `q=0`.
fn lists(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| {
            let mut fields = part.split(';').map(str::trim);
            let value = fields.next().unwrap_or("");
            let refused = fields.any(|f| {
                f.strip_prefix("q=")
                    .and_then(|q| q.parse::<f32>().ok())
                    .is_some_and(|q| q <= 0.0)
            });
            value.eq_ignore_ascii_case(token) && !refused
        })
}

/// Whether the `Accept` header asks for OpenMetrics.
pub fn wants_openmetrics(headers: &HeaderMap) -> bool {
    lists(headers, header::ACCEPT, "application/openmetrics-text")
}

/// Whether `Accept-Encoding` allows gzip.
pub fn accepts_gzip(headers: &HeaderMap) -> bool {
    lists(headers, header::ACCEPT_ENCODING, "gzip")
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let (format, ctype) = if wants_openmetrics(&headers) {
        (Format::OpenMetrics, OPENMETRICS_CONTENT_TYPE)
    } else {
        (Format::Classic, CLASSIC_CONTENT_TYPE)
    };
    let encoded = state.cache.get(format);
    let mut response = if accepts_gzip(&headers) {
        let mut r = encoded.gzip.clone().into_response();
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        r
    } else {
        encoded.body.clone().into_response()
    };
    let h = response.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    response
}

/// `GET /api/v1/report[?format=text]`: findings from the current snapshot.
async fn report(State(state): State<AppState>, query: Query<ReportQuery>) -> Response {
    let (envs, thresholds) = state
        .report
        .read()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    let report = crate::report::build(&state.store, &envs, &thresholds);
    match query.format.as_deref() {
        Some("text") => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            crate::report::render_text(&report),
        )
            .into_response(),
        None | Some("json") => axum::Json(report).into_response(),
        Some(_) => (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "error": "bad_format",
                "message": "format is json (default) or text"
            })),
        )
            .into_response(),
    }
}

/// Query string of `/api/v1/report`.
#[derive(Debug, serde::Deserialize)]
struct ReportQuery {
    format: Option<String>,
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.store.ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first collection is running, or nothing has been collected yet\n",
        )
            .into_response()
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        "not found; see / for the endpoints\n",
    )
        .into_response()
}

async fn landing(metrics: String) -> Html<String> {
    Html(format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>windsock</title></head>\n\
         <body><h1>windsock {}</h1>\n\
         <p>Prometheus metrics from an Apache Airflow metadata database.</p>\n<ul>\n\
         <li><a href=\"{metrics}\">{metrics}</a> (OpenMetrics or Prometheus text)</li>\n\
         <li><a href=\"/healthz\">/healthz</a> (process alive)</li>\n\
         <li><a href=\"/readyz\">/readyz</a> (first collection done)</li>\n\
         <li><a href=\"/api/v1/report?format=text\">/api/v1/report</a> (findings; JSON by default)</li>\n\
         </ul></body></html>\n",
        crate::VERSION
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::ACCEPT, HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn negotiation() {
        // What Prometheus 2.42 sends.
        assert!(wants_openmetrics(&accept(
            "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
        )));
        assert!(!wants_openmetrics(&accept("*/*")));
        assert!(!wants_openmetrics(&accept("text/plain")));
        assert!(!wants_openmetrics(&accept(
            "application/openmetrics-text;q=0,text/plain"
        )));
        assert!(!wants_openmetrics(&HeaderMap::new()));
    }

    #[test]
    fn gzip_negotiation() {
        let enc = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::ACCEPT_ENCODING, HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(accepts_gzip(&enc("gzip")));
        assert!(accepts_gzip(&enc("deflate, gzip;q=1.0, *;q=0.5")));
        assert!(!accepts_gzip(&enc("gzip;q=0")));
        assert!(!accepts_gzip(&enc("identity")));
        assert!(!accepts_gzip(&HeaderMap::new()));
    }
}

/// `--web.config.file`'s HTTP side: basic auth on every path but the
/// probes, and the configured response headers.
#[derive(Debug)]
pub struct WebLayer {
    users: std::collections::BTreeMap<String, String>,
    headers: Vec<(header::HeaderName, HeaderValue)>,
    /// bcrypt of a password nobody has, checked for unknown users so they
    /// cost what a wrong password costs.
    dummy: String,
    /// SHA-256 of `user:password` pairs that passed, and when: scrapes
    /// every few seconds do not each pay bcrypt.
    passed: std::sync::Mutex<std::collections::HashMap<[u8; 32], std::time::Instant>>,
    /// At most two bcrypt checks at a time, off the async workers.
    checks: Arc<tokio::sync::Semaphore>,
}

/// How long a checked password is remembered.
const PASSED_FOR: std::time::Duration = std::time::Duration::from_secs(60);

impl WebLayer {
    /// From a validated web config.
    pub fn new(web: &crate::config::web::WebConfig) -> WebLayer {
        let cost = web
            .users
            .values()
            .find_map(|h| h.parse::<bcrypt::HashParts>().ok().map(|p| p.get_cost()))
            .unwrap_or(10);
        WebLayer {
            users: web.users.clone(),
            headers: web
                .headers
                .iter()
                .filter_map(|(k, v)| Some((k.parse().ok()?, HeaderValue::from_str(v).ok()?)))
                .collect(),
            dummy: bcrypt::hash("windsock: no such user", cost).unwrap_or_default(),
            passed: std::sync::Mutex::default(),
            checks: Arc::new(tokio::sync::Semaphore::new(2)),
        }
    }

    async fn allowed(&self, auth: Option<&HeaderValue>) -> bool {
        use base64::Engine as _;
        let Some((user, password)) = auth
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Basic "))
            .and_then(|b| {
                base64::engine::general_purpose::STANDARD
                    .decode(b.trim())
                    .ok()
            })
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
        else {
            return false;
        };
        let key = crate::digest::sha256(format!("{user}:{password}").as_bytes());
        {
            let passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
            if passed.get(&key).is_some_and(|t| t.elapsed() < PASSED_FOR) {
                return true;
            }
        }
        let (known, hash) = match self.users.get(&user) {
            Some(h) => (true, h.clone()),
            None => (false, self.dummy.clone()),
        };
        let Ok(_permit) = self.checks.acquire().await else {
            return false;
        };
        let ok =
            tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash).unwrap_or(false))
                .await
                .unwrap_or(false)
                && known;
        if ok {
            let mut passed = self.passed.lock().unwrap_or_else(|p| p.into_inner());
            passed.retain(|_, t| t.elapsed() < PASSED_FOR);
            passed.insert(key, std::time::Instant::now());
        }
        ok
    }
}

/// Wraps the router in the web config's basic auth and headers.
pub fn with_web(app: Router, layer: Arc<WebLayer>) -> Router {
    app.layer(axum::middleware::from_fn_with_state(layer, web_guard))
}

async fn web_guard(
    State(layer): State<Arc<WebLayer>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let probe = matches!(req.uri().path(), "/healthz" | "/readyz");
    let mut resp = if probe
        || layer.users.is_empty()
        || layer
            .allowed(req.headers().get(header::AUTHORIZATION))
            .await
    {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Basic realm=\"windsock\"")],
            "unauthorized\n",
        )
            .into_response()
    };
    for (k, v) in &layer.headers {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp
}
