//! The server-rendered UI and its server functions (the browser side is tested in `end2end/`).

use app::auth::Role as UserRole;
use server::config::Role;

use crate::backend_tests;
use crate::helpers::{spawn_app, spawn_app_with_role, without_markers, Backend};

backend_tests!(
    signed_out_visitors_are_sent_to_sign_in,
    the_landing_page_renders_on_the_server,
    every_section_renders_with_a_heading_and_its_empty_state,
    unknown_pages_answer_404_with_a_page,
    the_status_server_function_reports_the_backend,
    the_ingest_role_serves_no_ui,
);

async fn signed_out_visitors_are_sent_to_sign_in(backend: Backend) {
    let app = spawn_app(backend).await;
    for path in ["/", "/assets", "/admin/audit?x=1"] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 303, "{path}");
        let location = response.headers()["location"].to_str().unwrap();
        assert!(location.starts_with("/login?next=%2F"), "{path} -> {location}");
    }
    let response = app.get("/login").await;
    assert_eq!(response.status(), 200);
    let html = response.text().await.unwrap();
    assert!(html.contains("id=\"login-form\""), "{html}");
    assert!(html.contains("name=\"password\""), "{html}");
}

async fn the_landing_page_renders_on_the_server(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.signed_in(UserRole::Viewer).await;
    let response = client.get(app.url("/")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let csp = response.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("script-src 'self' 'nonce-") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let html = without_markers(&response.text().await.unwrap());
    // The hydration script carries the nonce the policy names.
    let nonce = csp.split("'nonce-").nth(1).unwrap().split('\'').next().unwrap();
    assert!(html.contains(&format!("nonce=\"{nonce}\"")), "{html}");
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(html.contains("<h1 id=\"home-title\">Plant overview</h1>"), "{html}");
    // The status card is filled on the server, so the first paint shows it.
    assert!(html.contains(backend.name()), "{html}");
    // The hydration bundle is referenced.
    assert!(
        html.contains("/pkg/gantry.js") && html.contains("gantry_bg.wasm"),
        "{html}"
    );
    // Landmarks and navigation.
    assert!(html.contains("<main id=\"main\""), "{html}");
    for label in ["Assets", "Alarms", "Trends", "Search", "Reports", "Admin"] {
        assert!(html.contains(&format!(">{label}</a>")), "navigation lacks {label}");
    }
}

async fn every_section_renders_with_a_heading_and_its_empty_state(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.signed_in(UserRole::Viewer).await;
    for (path, _) in app::shell::SECTIONS {
        if path == "/admin" {
            continue; // user administration, not an empty section
        }
        let response = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let html = response.text().await.unwrap();
        assert!(html.contains("<h1 id=\"page-title\">"), "{path} has no heading");
        assert!(
            html.contains("class=\"empty\""),
            "{path} does not say what it will hold"
        );
        assert!(!html.to_lowercase().contains("todo"), "{path} says TODO");
        // The current section is marked for assistive technology.
        assert!(
            html.contains(&format!("<a href=\"{path}\" aria-current=\"page\">")),
            "{path} is not marked current"
        );
    }
}

async fn unknown_pages_answer_404_with_a_page(backend: Backend) {
    let app = spawn_app(backend).await;
    let client = app.signed_in(UserRole::Viewer).await;
    let response = client.get(app.url("/no/such/page")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    let html = response.text().await.unwrap();
    assert!(html.contains("Page not found"), "{html}");
}

async fn the_status_server_function_reports_the_backend(backend: Backend) {
    let app = spawn_app(backend).await;
    // Signed out, the server function refuses.
    let anonymous = app
        .browser()
        .post(app.url("/_fn/system/status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert!(anonymous.status().is_client_error(), "{}", anonymous.status());
    let body = anonymous.text().await.unwrap();
    assert!(body.contains("unauthorized"), "{body}");

    let client = app.signed_in(UserRole::Viewer).await;
    let response = client
        .post(app.url("/_fn/system/status"))
        .header("content-type", "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let status: app::system::SystemStatus = response.json().await.unwrap();
    assert_eq!(status.metadata_backend, backend.name());
    assert!(status.metadata_reachable);
    assert_eq!(status.role, "all");
    assert_eq!(status.version, env!("CARGO_PKG_VERSION"));
}

async fn the_ingest_role_serves_no_ui(backend: Backend) {
    let app = spawn_app_with_role(backend, Role::Ingest).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let response = app.get("/").await;
    assert_eq!(response.status(), 404);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found");
    let response = app.browser().post(app.url("/_fn/system/status")).send().await.unwrap();
    assert_eq!(response.status(), 404);
}
