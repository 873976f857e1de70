//! Graceful shutdown: readiness answers 503 first, then the server stops on its own, well within 30 s.

use std::time::{Duration, Instant};

use crate::helpers::{spawn_app_with, test_config, Backend};

#[tokio::test]
async fn shutdown_drains_then_stops() {
    let (mut config, data_dir) = test_config(Backend::Sqlite).await;
    config.server.shutdown_drain_secs = 2;
    let app = spawn_app_with(config, data_dir).await;
    assert_eq!(app.get("/readyz").await.status(), 200);

    let started = Instant::now();
    app.shutdown.cancel();
    // During the drain the listener still answers, and readiness says to stop sending traffic.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let response = app.get("/readyz").await;
    assert_eq!(response.status(), 503);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["status"], "shutting_down");
    assert_eq!(app.get("/healthz").await.status(), 200, "liveness holds while draining");

    let health_url = app.url("/healthz");
    let result = tokio::time::timeout(Duration::from_secs(30), app.server)
        .await
        .expect("the server did not stop within 30 s")
        .expect("the server task panicked");
    result.expect("the server stopped with an error");
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the drain period was skipped"
    );
    assert!(
        app.client.get(health_url).send().await.is_err(),
        "the listener is closed"
    );
}
