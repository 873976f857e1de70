//! The OpenAPI document against the routes: it lists exactly the API's endpoints, every schema it refers to is
//! defined, and every operation it documents is answered by a real route.

use std::collections::BTreeSet;

use serde_json::Value;
use server::api::{endpoint_specs, Access};

use crate::helpers::{spawn_app, Backend};

#[tokio::test]
async fn the_openapi_document_matches_the_routes() {
    let app = spawn_app(Backend::Sqlite).await;
    let response = app.get("/api/v1/openapi.json").await;
    assert_eq!(response.status(), 200);
    let doc: Value = response.json().await.unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Every schema an operation refers to exists.
            for reference in operation.to_string().split("\"$ref\":\"#/components/schemas/").skip(1) {
                let name = reference.split('"').next().unwrap();
                assert!(
                    doc["components"]["schemas"][name].is_object(),
                    "{method} {path} refers to a missing {name}"
                );
            }
        }
    }
    let specs = endpoint_specs();
    let declared: BTreeSet<(String, String)> = specs
        .iter()
        .map(|spec| (spec.method.to_string(), spec.path.to_string()))
        .collect();
    assert_eq!(documented, declared, "the document and the endpoint tables disagree");

    let client = reqwest::Client::new();
    for spec in &specs {
        let operation = &doc["paths"][spec.path][spec.method.as_str().to_lowercase()];
        assert_eq!(
            operation["security"].is_array(),
            spec.access != Access::Public,
            "{} {} documents its security wrongly",
            spec.method,
            spec.path
        );
        assert!(
            spec.answer.is_some(),
            "{} {} does not declare what it answers",
            spec.method,
            spec.path
        );
        assert_eq!(
            operation["requestBody"].is_object(),
            spec.body.is_some(),
            "{} {}",
            spec.method,
            spec.path
        );
        // The live router answers the documented operation (401, 403, 400 … but never "no such route").
        let url = app.url(&format!(
            "/api/v1{}",
            spec.path.replace("{id}", "1").replace("{name}", "flow")
        ));
        let response = client
            .request(spec.method.clone(), url)
            .header("origin", &app.address)
            .header(app::auth::CSRF_HEADER, "1")
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert!(
            !body.contains("There is no such API route"),
            "{} {} is documented but not routed",
            spec.method,
            spec.path
        );
        assert!(!status.is_server_error(), "{} {}: {status}", spec.method, spec.path);
    }
}

/// Schemathesis (PyPI, installed by the test command) generates requests from the OpenAPI document, valid and
/// not, against a server with a small plant in it: whatever it sends, the answer is never a 5xx, a request the
/// document allows is never refused with a 400 (the constraints it enforces are all published; see
/// `schemathesis.toml` for the statuses a schema cannot rule out), and every answer has the declared media type
/// and matches its declared schema.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_never_get_a_server_error() {
    use app::auth::Role;
    use serde_json::json;

    use crate::helpers::send;

    let python = std::env::var("GANTRY_TEST_PYTHON").expect(
        "GANTRY_TEST_PYTHON is not set: run the tests with scripts/test, which installs schemathesis and sets it",
    );
    let schemathesis = std::path::Path::new(&python).with_file_name("st");
    let app = spawn_app(Backend::Sqlite).await;
    let (admin, name) = app.api_client(Role::Admin, vec![]).await;
    let template = json!({ "name": "Pump", "attributes": [
        { "name": "flow", "value_type": "float", "unit": "m³/h", "limits": { "hi": 5.0 },
          "alarms": [{ "name": "High", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] }] });
    let (status, body) = send(admin.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = send(
        admin
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Site", "template": "Pump" })),
    )
    .await;
    let site = body["asset"]["id"].as_i64().unwrap();
    send(
        admin
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "d1", "asset_id": site })),
    )
    .await;
    let token = app.token_for(&name).await;
    let url = app.url("/api/v1/openapi.json");
    // Schemathesis keeps a cache in its working directory: a scratch one, not the source tree.
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().to_path_buf();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(schemathesis)
            .current_dir(cwd)
            .args([
                "--config-file",
                concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/api/schemathesis.toml"),
            ])
            .args(["run", &url, "--phases", "fuzzing"])
            .args([
                "--checks",
                "not_a_server_error,positive_data_acceptance,response_schema_conformance,content_type_conformance",
            ])
            .args([
                "--max-examples",
                "15",
                "--workers",
                "2",
                "--max-time",
                "120",
                "--seed",
                "7",
            ])
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .env("SCHEMATHESIS_TELEMETRY", "false")
            .output()
            .expect("schemathesis could not be started")
    })
    .await
    .unwrap();
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{report}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(report.contains("passed"), "{report}");
}

/// JSON Schema counts `3.0` as an integer, so a request the document allows may write one: it is read as 3. A
/// real fraction where an integer is expected is still refused.
#[tokio::test]
async fn integers_written_with_a_zero_fraction_are_read_as_integers() {
    use app::auth::Role;
    use serde_json::json;

    use crate::helpers::send;

    let app = spawn_app(Backend::Sqlite).await;
    let (viewer, _) = app.api_client(Role::Viewer, vec![]).await;
    let panel = |w: Value| {
        json!({ "name": "Mine", "panels": [{ "title": "Alarms", "x": 0.0, "y": 0, "w": w, "h": 2.0,
                                             "content": { "kind": "alarms", "subtree": "/Site" } }] })
    };
    let (status, body) = send(viewer.post(app.url("/api/v1/dashboards")).json(&panel(json!(3.0)))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["panels"][0]["w"], 3, "{body}");
    let (status, body) = send(viewer.post(app.url("/api/v1/dashboards")).json(&panel(json!(2.5)))).await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("panels[0].w"),
        "{body}"
    );
}
