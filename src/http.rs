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
    /// Environments and thresholds of `/api/v1/report`.
    pub report: Arc<(Vec<String>, Thresholds)>,
}

impl AppState {
    /// State for a store, with default thresholds.
    pub fn new(store: Arc<Store>) -> AppState {
        AppState {
            cache: Arc::new(ScrapeCache::new(store.clone())),
            store,
            report: Arc::new((Vec::new(), Thresholds::default())),
        }
    }

    /// Sets what `/api/v1/report` covers.
    #[must_use]
    pub fn with_report(mut self, environments: Vec<String>, thresholds: Thresholds) -> AppState {
        self.report = Arc::new((environments, thresholds));
        self
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
    let (envs, thresholds) = &*state.report;
    let report = crate::report::build(&state.store, envs, thresholds);
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
            "not ready: first collection still running\n",
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
