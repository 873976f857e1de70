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
