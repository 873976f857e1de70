//! The plant model through the REST API: template inheritance, the asset tree (paths, moves, renames, deletes),
//! grants (objects outside answer 404) and the audit trail, on every metadata backend.

use app::auth::Role;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{send, spawn_app, without_markers, Backend, TestApp};

backend_tests!(
    templates_inherit_and_override_by_name,
    the_tree_has_paths_moves_and_guarded_deletes,
    grants_hide_everything_outside_the_subtree,
    the_explorer_pages_render_the_tree_and_attributes,
    the_model_file_round_trips_and_imports_idempotently,
    writes_based_on_an_old_version_answer_409_and_edits_lose_nothing,
);

async fn templates_inherit_and_override_by_name(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let base = json!({
        "name": "Rotating equipment",
        "categories": ["mechanical"],
        "attributes": [
            { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 3000.0, "hihi": 3600.0 } },
            { "name": "vibration", "value_type": "float", "unit": "mm/s", "limits": { "hi": 4.5 } }
        ]
    });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&base)).await;
    assert_eq!(status, 201, "{body}");
    let base_id = body["template"]["id"].as_i64().unwrap();
    let pump = json!({
        "name": "Centrifugal pump",
        "base": "Rotating equipment",
        "naming_pattern": "Pump {n}",
        "attributes": [
            { "name": "flow", "value_type": "float", "unit": "m³/h", "limits": { "lo": 5.0, "hi": 120.0 } },
            { "name": "vibration", "value_type": "float", "unit": "mm/s", "limits": { "hi": 7.1, "hihi": 11.0 } }
        ]
    });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&pump)).await;
    assert_eq!(status, 201, "{body}");
    let pump_id = body["template"]["id"].as_i64().unwrap();
    let effective = body["template"]["effective_attributes"].as_array().unwrap().clone();
    let names: Vec<&str> = effective.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["speed", "vibration", "flow"], "base first, overrides in place");
    assert_eq!(effective[0]["inherited"], true);
    assert_eq!(effective[0]["defined_in"], "Rotating equipment");
    assert_eq!(effective[1]["defined_in"], "Centrifugal pump", "the override wins");
    assert_eq!(effective[1]["limits"]["hi"], 7.1);
    assert_eq!(effective[2]["inherited"], false);

    // An asset sees the template's attributes, and a later change to the base at once.
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Pump 1", "template": "Centrifugal pump" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let asset_id = body["asset"]["id"].as_i64().unwrap();
    let mut changed = base.clone();
    changed["attributes"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "name": "bearing temperature", "value_type": "float", "unit": "°C" }));
    let (status, body) = send(
        engineer
            .put(app.url(&format!("/api/v1/templates/{base_id}")))
            .json(&changed),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/assets/{asset_id}/attributes")))).await;
    let names: Vec<&str> = body["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"bearing temperature"), "{names:?}");

    // No inheritance cycles, no duplicate names, no disordered limits, no deleting a template in use.
    let mut cyclic = base.clone();
    cyclic["base"] = json!("Centrifugal pump");
    let (status, body) = send(
        engineer
            .put(app.url(&format!("/api/v1/templates/{base_id}")))
            .json(&cyclic),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, _) = send(
        engineer
            .post(app.url("/api/v1/templates"))
            .json(&json!({ "name": "centrifugal PUMP" })),
    )
    .await;
    assert_eq!(status, 409);
    let disordered = json!({ "name": "Bad", "attributes": [{ "name": "x", "value_type": "float", "limits": { "lo": 9.0, "hi": 1.0 } }] });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&disordered)).await;
    assert_eq!(status, 422, "limits out of order: a rule across fields; {body}");
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/templates/{pump_id}")))).await;
    assert_eq!(status, 409, "the template is in use");

    // Viewers read but do not write.
    let (viewer, _) = app.api_client(Role::Viewer, vec![]).await;
    let (status, body) = send(viewer.get(app.url("/api/v1/templates"))).await;
    assert_eq!(status, 200);
    assert_eq!(body["templates"].as_array().unwrap().len(), 2);
    let (status, _) = send(
        viewer
            .post(app.url("/api/v1/templates"))
            .json(&json!({ "name": "Mine" })),
    )
    .await;
    assert_eq!(status, 403);
}

async fn create(app: &TestApp, client: &reqwest::Client, parent: Option<i64>, name: &str) -> i64 {
    let (status, body) = send(
        client
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": parent, "name": name })),
    )
    .await;
    assert_eq!(status, 201, "{name}: {body}");
    body["asset"]["id"].as_i64().unwrap()
}

async fn the_tree_has_paths_moves_and_guarded_deletes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let site = create(&app, &engineer, None, "Site A").await;
    let line = create(&app, &engineer, Some(site), "Line 2").await;
    let pump = create(&app, &engineer, Some(line), "Pumpe 7 – Kühlwasser").await;

    let (status, body) = send(
        engineer
            .get(app.url("/api/v1/assets"))
            .query(&[("path", "/Site A/Line 2/Pumpe 7 – Kühlwasser")]),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["asset"]["id"], pump);
    assert_eq!(body["asset"]["path"], "/Site A/Line 2/Pumpe 7 – Kühlwasser");
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/assets?parent={site}")))).await;
    assert_eq!(body["assets"][0]["name"], "Line 2");
    assert_eq!(body["assets"][0]["child_count"], 1);

    // Sibling names are unique; names never hold '/'.
    let (status, _) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": site, "name": "Line 2" })),
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": site, "name": "A/B" })),
    )
    .await;
    assert_eq!(status, 400);

    // Move and rename keep the id; moving under itself is refused.
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "parent_id": site, "name": "Pump 7" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["asset"]["path"], "/Site A/Pump 7");
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{site}")))
            .json(&json!({ "parent_id": line })),
    )
    .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{line}")))
            .json(&json!({ "parent_id": null })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["asset"]["path"], "/Line 2");

    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/assets/{site}/subtree")))).await;
    let paths: Vec<&str> = body["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["/Site A", "/Site A/Pump 7"]);

    // Deleting a subtree needs confirmation and then removes it all.
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{site}")))).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["error"]["details"]["assets"], 2);
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{site}?confirm=true")))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["deleted"], 2);
    let (status, _) = send(engineer.get(app.url(&format!("/api/v1/assets/{pump}")))).await;
    assert_eq!(status, 404);

    // Every change is in the audit log with its diff.
    let (admin, _) = app.api_client(Role::Admin, vec![]).await;
    let (_, body) = send(admin.get(app.url("/api/v1/audit?action=asset.update&limit=10"))).await;
    let pump_id = pump.to_string();
    let moves: Vec<&Value> = body["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["target_id"] == pump_id.as_str())
        .collect();
    assert_eq!(
        moves[0]["diff"]["path"],
        json!({ "from": "/Site A/Line 2/Pumpe 7 – Kühlwasser", "to": "/Site A/Pump 7" })
    );
}

async fn grants_hide_everything_outside_the_subtree(backend: Backend) {
    let app = spawn_app(backend).await;
    let (admin, _) = app.api_client(Role::Engineer, vec![]).await;
    let site = create(&app, &admin, None, "Site A").await;
    let line = create(&app, &admin, Some(site), "Line 1").await;
    let pump = create(&app, &admin, Some(line), "Pump 1").await;
    let other = create(&app, &admin, Some(site), "Line 2").await;

    let (scoped, _) = app.api_client(Role::Engineer, vec![line]).await;
    let (_, body) = send(scoped.get(app.url("/api/v1/assets"))).await;
    let tops: Vec<&str> = body["assets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        tops,
        ["/\u{2026}/Line 1"],
        "a scoped user's tree starts at the grant, its ancestors' names hidden"
    );
    for (id, expected) in [(pump, 200), (line, 200), (site, 404), (other, 404)] {
        let (status, _) = send(scoped.get(app.url(&format!("/api/v1/assets/{id}")))).await;
        assert_eq!(status, expected, "asset {id}");
    }
    let (status, _) = send(
        scoped
            .get(app.url("/api/v1/assets"))
            .query(&[("path", "/Site A/Line 2")]),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(scoped.get(app.url(&format!("/api/v1/assets?parent={site}")))).await;
    assert_eq!(status, 404);
    // Writes: inside the grant yes; under, into or onto anything outside, as if it did not exist.
    let (status, _) = send(
        scoped
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": line, "name": "Pump 2" })),
    )
    .await;
    assert_eq!(status, 201);
    let (status, _) = send(
        scoped
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": other, "name": "Sneaky" })),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(
        scoped
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "New site" })),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = send(
        scoped
            .patch(app.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "parent_id": other })),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = send(scoped.delete(app.url(&format!("/api/v1/assets/{other}?confirm=true")))).await;
    assert_eq!(status, 404);
    let (status, _) = send(admin.get(app.url(&format!("/api/v1/assets/{other}")))).await;
    assert_eq!(status, 200, "the refused delete left it alone");
}

async fn the_explorer_pages_render_the_tree_and_attributes(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let spec = json!({ "name": "Tank", "attributes": [{ "name": "level", "value_type": "float", "unit": "%", "limits": { "lolo": 5.0, "hihi": 95.0 } }] });
    assert_eq!(
        send(engineer.post(app.url("/api/v1/templates")).json(&spec)).await.0,
        201
    );
    let site = create(&app, &engineer, None, "Site <i>A").await;
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "parent_id": site, "name": "Tank 1", "template": "Tank" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let tank = body["asset"]["id"].as_i64().unwrap();

    let browser = app.signed_in(Role::Viewer).await;
    let html = browser
        .get(app.url("/assets"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(&format!("href=\"/assets/{site}\"")), "{html}");
    assert!(html.contains("Site &lt;i&gt;A"), "names are escaped: {html}");
    let html = browser
        .get(app.url(&format!("/assets/{tank}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let html = without_markers(&html);
    assert!(html.contains("<table id=\"attributes\">"), "{html}");
    assert!(html.contains("<td>level</td><td>%</td><td>5</td>"), "{html}");
    assert!(
        html.contains(&format!("href=\"/assets/{site}\"")),
        "breadcrumbs link the parent: {html}"
    );

    // A user granted only the tank sees it without the site above it.
    let (name, password) = app.create_user_with_grants(Role::Viewer, vec![tank]).await;
    let scoped = app.browser();
    assert_eq!(app.login(&scoped, &name, &password).await.status(), 200);
    let html = scoped
        .get(app.url(&format!("/assets/{tank}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let html = without_markers(&html);
    assert!(html.contains("<table id=\"attributes\">"), "{html}");
    assert!(
        !html.contains(&format!("href=\"/assets/{site}\"")),
        "a breadcrumb leads outside the grant: {html}"
    );
    let html = scoped
        .get(app.url(&format!("/assets/{site}")))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("there is no such asset"), "{html}");
}

async fn export(app: &TestApp, client: &reqwest::Client) -> String {
    let response = client.get(app.url("/api/v1/model/export")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/yaml"));
    response.text().await.unwrap()
}

async fn import(app: &TestApp, client: &reqwest::Client, yaml: &str, dry_run: bool) -> (u16, Value) {
    send(
        client
            .post(app.url(&format!("/api/v1/model/import?dry_run={dry_run}")))
            .body(yaml.to_string()),
    )
    .await
}

async fn the_model_file_round_trips_and_imports_idempotently(backend: Backend) {
    let source = spawn_app(backend).await;
    let (engineer, _) = source.api_client(Role::Engineer, vec![]).await;
    let base = json!({ "name": "Machine", "attributes": [{ "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 3000.0 } }] });
    let pump = json!({ "name": "Pump", "base": "Machine", "categories": ["process"], "attributes": [{ "name": "flow", "value_type": "float", "unit": "m³/h" }] });
    for template in [&base, &pump] {
        assert_eq!(
            send(engineer.post(source.url("/api/v1/templates")).json(template))
                .await
                .0,
            201
        );
    }
    let site = create(&source, &engineer, None, "Werk Nord").await;
    let line = create(&source, &engineer, Some(site), "Linie 1").await;
    let (status, _) = send(engineer.post(source.url("/api/v1/assets")).json(&json!({ "parent_id": line, "name": "Pumpe 1", "template": "Pump", "description": "Kühlwasser", "labels": ["critical"] }))).await;
    assert_eq!(status, 201);
    let exported = export(&source, &engineer).await;
    assert!(exported.starts_with("schema_version: 1\n"), "{exported}");
    assert!(exported.contains("path: /Werk Nord/Linie 1/Pumpe 1"), "{exported}");

    // Into an empty system: a dry run changes nothing, the import creates everything, and the export is the same.
    let target = spawn_app(backend).await;
    let (target_engineer, _) = target.api_client(Role::Engineer, vec![]).await;
    let (status, report) = import(&target, &target_engineer, &exported, true).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        report["changes"].as_array().unwrap().len(),
        5,
        "2 templates and 3 assets: {report}"
    );
    assert_eq!(
        send(target_engineer.get(target.url("/api/v1/assets"))).await.1["assets"],
        json!([])
    );
    let (status, report) = import(&target, &target_engineer, &exported, false).await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(
        export(&target, &target_engineer).await,
        exported,
        "export → import → export changed the bytes"
    );
    let (_, report) = import(&target, &target_engineer, &exported, false).await;
    assert_eq!(report["changes"], json!([]), "a second import changed something");

    // A bad file is refused whole, with where and why.
    let bad = exported.replace("schema_version: 1\n", "schema_version: 1\ncolour: red\n");
    let (status, body) = import(&target, &target_engineer, &bad, false).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("line 2"), "{body}");
    let half_good = format!("{exported}- path: /Werk Süd\n  template: Nowhere\n");
    let (status, body) = import(&target, &target_engineer, &half_good, false).await;
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("Nowhere"), "{body}");
    assert_eq!(
        export(&target, &target_engineer).await,
        exported,
        "a refused file changed the model"
    );

    // Viewers export but do not import.
    let (viewer, _) = target.api_client(Role::Viewer, vec![]).await;
    assert_eq!(export(&target, &viewer).await, exported);
    assert_eq!(import(&target, &viewer, &exported, true).await.0, 403);
}

async fn writes_based_on_an_old_version_answer_409_and_edits_lose_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let pump = json!({ "name": "Pump", "attributes": [{ "name": "speed", "value_type": "float" }] });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&pump)).await;
    assert_eq!(status, 201, "{body}");
    let id = body["template"]["id"].as_i64().unwrap();
    assert_eq!(body["template"]["version"], 1);

    // Two people open the templates page at version 1 and each changes an attribute.
    let browser = app.signed_in(Role::Engineer).await;
    let set_attribute = |name: &str, version: Option<i64>| {
        let mut form = vec![
            ("attribute[template]", "Pump".to_string()),
            ("attribute[name]", name.to_string()),
            ("attribute[value_type]", "float".to_string()),
            ("attribute[unit]", "bar".to_string()),
        ];
        if let Some(version) = version {
            form.push(("attribute[version]", version.to_string()));
        }
        browser.post(app.url("/_fn/assets/set_attribute")).form(&form).send()
    };
    let first = set_attribute("flow", Some(1)).await.unwrap();
    assert_eq!(first.status(), 200, "{}", first.text().await.unwrap());
    let second = set_attribute("pressure", Some(1)).await.unwrap();
    assert_eq!(second.status(), 409);
    let refusal: serde_json::Value = second.json().await.unwrap();
    assert_eq!(refusal["details"]["current_version"], 2, "{refusal}");
    // Without a version the change is made to the template as stored: nothing of the first is lost.
    let third = set_attribute("pressure", None).await.unwrap();
    assert_eq!(third.status(), 200, "{}", third.text().await.unwrap());
    let (_, body) = send(engineer.get(app.url(&format!("/api/v1/templates/{id}")))).await;
    let names: Vec<&str> = body["template"]["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["speed", "flow", "pressure"], "{body}");
    assert_eq!(body["template"]["version"], 3);

    // REST writes name the version they are based on in If-Match.
    let put = |version: &str| {
        engineer
            .put(app.url(&format!("/api/v1/templates/{id}")))
            .header("if-match", version)
            .json(&pump)
    };
    let (status, body) = send(put("\"1\"")).await;
    assert_eq!(
        (status, body["error"]["details"]["current_version"].as_i64()),
        (409, Some(3)),
        "{body}"
    );
    let (status, body) = send(put("\"3\"")).await;
    assert_eq!((status, body["template"]["version"].as_i64()), (200, Some(4)), "{body}");
    let (status, body) = send(put("yesterday")).await;
    assert_eq!(status, 400, "{body}");

    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Pump 1", "template": "Pump" })),
    )
    .await;
    let asset = body["asset"]["id"].as_i64().unwrap();
    assert_eq!(body["asset"]["version"], 1);
    let rename = |name: &str, version: i64| {
        engineer
            .patch(app.url(&format!("/api/v1/assets/{asset}")))
            .header("if-match", version.to_string())
            .json(&json!({ "name": name }))
    };
    let (status, body) = send(rename("Pump 2", 1)).await;
    assert_eq!((status, body["asset"]["version"].as_i64()), (200, Some(2)), "{body}");
    let (status, body) = send(rename("Pump 3", 1)).await;
    assert_eq!(
        (status, body["error"]["details"]["current_version"].as_i64()),
        (409, Some(2)),
        "{body}"
    );

    let dashboard = json!({ "name": "Line 2", "panels": [] });
    let (status, body) = send(engineer.post(app.url("/api/v1/dashboards")).json(&dashboard)).await;
    assert_eq!(status, 201, "{body}");
    let (dashboard_id, version) = (body["id"].as_i64().unwrap(), body["version"].as_i64().unwrap());
    let save = |version: i64| {
        engineer
            .put(app.url(&format!("/api/v1/dashboards/{dashboard_id}")))
            .header("if-match", version.to_string())
            .json(&dashboard)
    };
    let (status, body) = send(save(version)).await;
    assert_eq!((status, body["version"].as_i64()), (200, Some(version + 1)), "{body}");
    let (status, body) = send(save(version)).await;
    assert_eq!(status, 409, "{body}");

    // One reading of a value type for every form: an unknown one is refused, never taken for a float.
    let response = browser
        .post(app.url("/_fn/assets/create_template"))
        .form(&[
            ("name", "Valve"),
            ("base", ""),
            ("attribute", "position"),
            ("value_type", "percent"),
            ("unit", ""),
            ("lo", ""),
            ("hi", ""),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
}
