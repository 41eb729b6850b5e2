//! Router tests: every endpoint, driven in-process with `oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use tower::ServiceExt as _;
use windsock::http::{AppState, router};
use windsock::metrics::Store;

async fn get(store: &Arc<Store>, path: &str, accept: Option<&str>) -> (StatusCode, String, String) {
    let mut req = Request::get(path);
    if let Some(a) = accept {
        req = req.header(header::ACCEPT, a);
    }
    let resp = router(AppState::new(store.clone()), "/metrics")
        .oneshot(req.body(Body::empty()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let ctype = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, ctype, String::from_utf8(body.to_vec()).unwrap())
}

#[tokio::test]
async fn metrics_negotiates_the_format() {
    let store = Arc::new(Store::new(["prod"]));
    store.set_up("prod", true);
    let (s, ct, body) = get(&store, "/metrics", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
    assert!(
        body.contains("windsock_up{environment=\"prod\"} 1"),
        "{body}"
    );
    assert!(body.contains("# TYPE windsock_build_info gauge"), "{body}");
    assert!(!body.contains("# EOF"));

    let (s, ct, body) = get(
        &store,
        "/metrics",
        Some("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        ct,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(body.contains("# TYPE windsock_build info"), "{body}");
    assert!(body.ends_with("# EOF\n"));
}

#[tokio::test]
async fn readiness_follows_the_first_collection() {
    let store = Arc::new(Store::new(["a", "b"]));
    assert_eq!(
        get(&store, "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    store.set_first_round_done("a");
    assert_eq!(
        get(&store, "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    store.set_first_round_done("b");
    // Every target tried, nothing collected (every query failed): not yet.
    assert_eq!(
        get(&store, "/readyz", None).await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    store.publish("a", "dags", Vec::new(), 0, 0.01);
    assert_eq!(get(&store, "/readyz", None).await.0, StatusCode::OK);
    // Liveness does not depend on collection.
    let fresh = Arc::new(Store::new(["x"]));
    assert_eq!(get(&fresh, "/healthz", None).await.0, StatusCode::OK);
}

#[tokio::test]
async fn landing_page_and_unknown_paths() {
    let store = Arc::new(Store::new(["prod"]));
    let (s, ct, body) = get(&store, "/", None).await;
    assert_eq!(s, StatusCode::OK);
    assert!(ct.starts_with("text/html"));
    for link in ["/metrics", "/healthz", "/readyz"] {
        assert!(body.contains(&format!("href=\"{link}\"")), "{body}");
    }
    assert_eq!(get(&store, "/nope", None).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        get(&store, "/metrics/extra", None).await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_target_that_was_never_reached_is_down() {
    let store = Arc::new(Store::new(["prod"]));
    let (_, _, body) = get(&store, "/metrics", None).await;
    assert!(
        body.contains("windsock_up{environment=\"prod\"} 0"),
        "{body}"
    );
    store.set_up("prod", false);
    let (_, _, body) = get(&store, "/metrics", None).await;
    assert!(
        body.contains("windsock_up{environment=\"prod\"} 0"),
        "{body}"
    );
}

#[tokio::test]
async fn report_endpoint() {
    let store = Arc::new(Store::new(["prod"]));
    store.set_up("prod", true);
    let spec = Arc::new(
        windsock::diagnostics::MetricSpec::gauge("airflow_zombie_task_candidates", "h", "n")
            .labels(&["dag_id", "task_id"]),
    );
    store.publish(
        "prod",
        "zombie_tasks",
        vec![windsock::diagnostics::Family {
            label_names: spec.label_names().into(),
            spec,
            samples: vec![(vec!["etl".into(), "load".into()], 2.0)],
        }],
        1,
        0.01,
    );
    let state = AppState::new(store.clone())
        .with_report(vec!["prod".into()], windsock::config::Thresholds::default());
    let call = |uri: &'static str| {
        let app = router(state.clone(), "/metrics");
        async move {
            let resp = app
                .oneshot(Request::get(uri).body(Body::empty()).unwrap())
                .await
                .unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8(body.to_vec()).unwrap())
        }
    };
    let (s, body) = call("/api/v1/report").await;
    assert_eq!(s, StatusCode::OK);
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let f = &v["environments"][0]["findings"][0];
    assert_eq!(f["severity"], "critical");
    assert_eq!(f["title"], "2 zombie candidate(s): etl.load");
    let (s, body) = call("/api/v1/report?format=text").await;
    assert_eq!(s, StatusCode::OK);
    assert!(
        body.contains("CRITICAL 2 zombie candidate(s): etl.load"),
        "{body}"
    );
    let (s, body) = call("/api/v1/report?format=xml").await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(body.contains("bad_format"));
}
