//! Liveness, readiness, metrics, the JSON error body and migrations, on every metadata backend.

use server::metadata;

use crate::backend_tests;
use crate::helpers::{spawn_app, test_config, Backend};

backend_tests!(
    healthz_answers_ok,
    readyz_checks_the_metadata_store,
    unknown_api_routes_answer_the_json_error_body,
    migrations_are_idempotent_and_record_the_installation,
    metrics_count_requests_by_matched_route,
);

async fn healthz_answers_ok(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/healthz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ok");
}

async fn readyz_checks_the_metadata_store(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["metadata"], "ok");
}

async fn unknown_api_routes_answer_the_json_error_body(backend: Backend) {
    let app = spawn_app(backend).await;
    let response = app.get("/api/v1/no-such-thing").await;
    assert_eq!(response.status(), 404);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    assert!(body["error"]["message"].as_str().unwrap().contains("API route"));
}

async fn migrations_are_idempotent_and_record_the_installation(backend: Backend) {
    let (config, _data_dir) = test_config(backend).await;
    let store = metadata::connect(&config.database, &config.data_dir)
        .await
        .unwrap()
        .metadata();
    assert_eq!(store.backend(), backend.name());
    store.migrate().await.unwrap();
    let installed_at = store
        .setting("installed_at")
        .await
        .unwrap()
        .expect("installed_at is recorded");
    // Running the migrations again changes nothing.
    store.migrate().await.unwrap();
    assert_eq!(store.setting("installed_at").await.unwrap(), Some(installed_at.clone()));
    assert!(
        installed_at.ends_with('Z') && installed_at.contains('T'),
        "{installed_at}"
    );
    assert_eq!(store.setting("no_such_key").await.unwrap(), None);
    store.close().await;
}

async fn metrics_count_requests_by_matched_route(backend: Backend) {
    let app = spawn_app(backend).await;
    app.get("/healthz").await;
    app.get("/no-such-page-7f3a").await;
    let response = app.get("/metrics").await;
    assert_eq!(response.status(), 200);
    let text = response.text().await.unwrap();
    assert!(
        text.contains(r#"http_requests_total{method="GET",route="/healthz",status="200"}"#),
        "{text}"
    );
    assert!(text.contains("http_request_duration_seconds_bucket"), "{text}");
    // Raw paths never become label values.
    assert!(!text.contains("7f3a"), "{text}");
    assert!(text.contains(r#"route="unmatched""#), "{text}");
}
