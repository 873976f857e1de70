//! Search over the REST API, on every metadata backend: words with prefixes and typos, filters, facets, grants,
//! errors that say where, and a rename found by its new name shortly after.

use std::time::Duration;

use app::auth::Role;
use serde_json::{json, Value};

use crate::backend_tests;
use crate::helpers::{send, spawn_app, Backend, TestApp};

backend_tests!(
    words_prefixes_and_typos_find_assets_ranked_by_name,
    filters_and_facets_narrow_within_grants,
    bad_queries_say_what_and_where,
    a_rename_is_found_by_its_new_name,
    a_burst_of_overlapping_changes_is_indexed_together,
    moves_deletes_devices_and_templates_reach_the_index,
    attribute_conditions_compare_current_values,
    results_come_in_pages,
    open_alarms_are_found_and_narrow_assets,
    dashboards_are_found_by_those_who_may_open_them,
    alarm_rules_are_found_within_grants,
);

struct Plant {
    app: TestApp,
    engineer: reqwest::Client,
    north: i64,
    south: i64,
    pump: i64,
    pump_9: i64,
}

async fn post(client: &reqwest::Client, app: &TestApp, path: &str, body: Value) -> Value {
    let (status, body) = send(client.post(app.url(path)).json(&body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {body}");
    body
}

async fn plant(backend: Backend) -> Plant {
    let app = spawn_app(backend).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let rotating = json!({ "name": "Rotating equipment", "categories": ["mechanical"],
        "attributes": [{ "name": "speed", "value_type": "float", "unit": "rpm" }] });
    post(&engineer, &app, "/api/v1/templates", rotating).await;
    let pump = json!({ "name": "Centrifugal pump", "base": "Rotating equipment", "categories": ["utilities"],
        "attributes": [{ "name": "outlet temperature", "value_type": "float", "unit": "°C" }] });
    post(&engineer, &app, "/api/v1/templates", pump).await;
    post(
        &engineer,
        &app,
        "/api/v1/templates",
        json!({ "name": "Compressor", "attributes": [] }),
    )
    .await;
    let asset = |parent: Option<i64>, name: &str, template: Option<&str>| json!({ "parent_id": parent, "name": name, "template": template, "labels": ["demo"] });
    let id = |body: Value| body["asset"]["id"].as_i64().unwrap();
    let north = id(post(&engineer, &app, "/api/v1/assets", asset(None, "North Plant", None)).await);
    let line = id(post(&engineer, &app, "/api/v1/assets", asset(Some(north), "Line 2", None)).await);
    let pump = id(post(
        &engineer,
        &app,
        "/api/v1/assets",
        asset(Some(line), "Pump 7", Some("Centrifugal pump")),
    )
    .await);
    post(
        &engineer,
        &app,
        "/api/v1/assets",
        asset(Some(line), "Pumphouse heater", None),
    )
    .await;
    let south = id(post(&engineer, &app, "/api/v1/assets", asset(None, "South Plant", None)).await);
    let pump_9 = id(post(
        &engineer,
        &app,
        "/api/v1/assets",
        asset(Some(south), "Pump 9", Some("Centrifugal pump")),
    )
    .await);
    post(
        &engineer,
        &app,
        "/api/v1/assets",
        asset(Some(south), "Compressor 1", Some("Compressor")),
    )
    .await;
    let plant = Plant {
        app,
        engineer,
        north,
        south,
        pump,
        pump_9,
    };
    // The index follows the change feed: wait until the last asset is searchable.
    search_until(&plant.engineer, &plant.app, "compressor 1", |body| {
        body["total"].as_u64() > Some(0)
    })
    .await;
    plant
}

async fn search(client: &reqwest::Client, app: &TestApp, q: &str) -> (u16, Value) {
    send(client.get(app.url("/api/v1/search")).query(&[("q", q)])).await
}

/// Searches until `done` holds (the index is rebuilt shortly after each change), for at most 5 s.
async fn search_until(client: &reqwest::Client, app: &TestApp, q: &str, done: impl Fn(&Value) -> bool) -> Value {
    let started = std::time::Instant::now();
    loop {
        let (status, body) = search(client, app, q).await;
        assert_eq!(status, 200, "{q}: {body}");
        if done(&body) {
            return body;
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{q}: still {body}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn names(body: &Value) -> Vec<String> {
    body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| hit["name"].as_str().unwrap().to_string())
        .collect()
}

fn facet(body: &Value, facet: &str, value: &str) -> u64 {
    body["facets"][facet]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["value"] == value)
        .map_or(0, |f| f["count"].as_u64().unwrap())
}

async fn words_prefixes_and_typos_find_assets_ranked_by_name(backend: Backend) {
    let Plant {
        app, engineer, pump, ..
    } = plant(backend).await;
    // Every word must match, in the name or the path: "north" is an ancestor's name.
    let (_, body) = search(&engineer, &app, "pump 7 north").await;
    assert_eq!(names(&body), vec!["Pump 7"], "{body}");
    let hit = &body["hits"][0];
    assert_eq!(hit["kind"], "asset");
    assert_eq!(hit["id"], pump);
    assert_eq!(hit["path"], "/North Plant/Line 2/Pump 7");
    assert_eq!(hit["template"], "Centrifugal pump");
    assert_eq!(hit["href"], format!("/assets/{pump}"));
    // A prefix, and one typo in a word of four letters or more.
    let (_, body) = search(&engineer, &app, "compr").await;
    assert!(names(&body).contains(&"Compressor 1".to_string()), "{body}");
    let (_, body) = search(&engineer, &app, "pmup 7").await;
    assert_eq!(names(&body).first().map(String::as_str), Some("Pump 7"), "{body}");
    // A name match ranks over a path match: "pump" names Pump 7 and Pump 9 and starts "Pumphouse heater".
    let (_, body) = search(&engineer, &app, "pump").await;
    let found = names(&body);
    assert!(
        found.iter().position(|n| n == "Pump 7") < found.iter().position(|n| n == "Pumphouse heater"),
        "{body}"
    );
    // Attribute names and units are found too, and a phrase keeps its order.
    let (_, body) = search(&engineer, &app, "\"outlet temperature\" kind:asset").await;
    assert_eq!(names(&body).len(), 2, "{body}");
    let (_, body) = search(&engineer, &app, "\"temperature outlet\" kind:asset").await;
    assert_eq!(body["total"], 0, "{body}");
}

async fn filters_and_facets_narrow_within_grants(backend: Backend) {
    let Plant {
        app,
        engineer,
        north,
        south,
        ..
    } = plant(backend).await;
    // `template:` includes the templates based on it.
    let (_, body) = search(&engineer, &app, "template:\"Rotating equipment\" kind:asset").await;
    assert_eq!(names(&body).len(), 2, "{body}");
    let (_, body) = search(&engineer, &app, "under:\"/South Plant\" -kind:template").await;
    let mut found = names(&body);
    found.sort();
    assert_eq!(found, vec!["Compressor 1", "Pump 9", "South Plant"], "{body}");
    let (_, body) = search(&engineer, &app, "category:utilities kind:asset").await;
    assert_eq!(names(&body).len(), 2, "{body}");
    let (_, body) = search(&engineer, &app, "label:demo").await;
    assert_eq!(body["total"], 7, "{body}");
    assert_eq!(facet(&body, "kind", "asset"), 7);
    assert_eq!(facet(&body, "template", "Centrifugal pump"), 2);
    assert_eq!(facet(&body, "category", "utilities"), 2);
    assert_eq!(facet(&body, "site", "North Plant"), 4, "{body}");
    assert_eq!(facet(&body, "site", "South Plant"), 3, "{body}");
    // Templates are listed for everyone; assets only within grants, in results and in counts.
    let (viewer, _) = app.api_client(Role::Viewer, vec![south]).await;
    let (_, body) = search(&viewer, &app, "pump").await;
    let found = names(&body);
    assert!(found.contains(&"Pump 9".to_string()), "{body}");
    assert!(!found.contains(&"Pump 7".to_string()), "{body}");
    assert!(!found.contains(&"Pumphouse heater".to_string()), "{body}");
    assert_eq!(facet(&body, "template", "Centrifugal pump"), 1, "{body}");
    let (_, body) = search(&viewer, &app, "label:demo").await;
    assert_eq!(body["total"], 3, "{body}");
    assert_eq!(facet(&body, "site", "South Plant"), 3, "{body}");
    assert_eq!(facet(&body, "site", "North Plant"), 0, "{body}");
    let (_, body) = search(&viewer, &app, &format!("under:\"/North Plant\" kind:asset {}", "")).await;
    assert_eq!(body["total"], 0, "{body}");
    // A viewer granted a line sees its path with the ancestors above the grant hidden.
    let (_, lines) = search(&engineer, &app, "\"line 2\" kind:asset").await;
    let line = lines["hits"][0]["id"].as_i64().unwrap();
    let (narrow, _) = app.api_client(Role::Viewer, vec![line]).await;
    let (_, body) = search(&narrow, &app, "pump 7").await;
    assert_eq!(body["hits"][0]["path"], "/…/Line 2/Pump 7", "{body}");
    // Nor does a site facet name the site above the grant.
    assert_eq!(body["facets"]["site"], json!([]), "{body}");
    let _ = north;
}

async fn bad_queries_say_what_and_where(backend: Backend) {
    let Plant { app, engineer, .. } = plant(backend).await;
    for (q, says) in [
        ("pump colour:red", "`colour:` is not a filter"),
        ("name \"north", "a quote is not closed (at character 5)"),
        ("kind:pump", "`pump` is not a kind"),
        ("speed > fast", "`fast` is not a number"),
    ] {
        let (status, body) = search(&engineer, &app, q).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["error"]["message"].as_str().unwrap().contains(says), "{q}: {body}");
    }
    let (status, body) = send(engineer.get(app.url("/api/v1/search?q=pump&limit=1000"))).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = send(app.client.get(app.url("/api/v1/search?q=pump"))).await;
    assert_eq!(status, 401);
}

async fn a_rename_is_found_by_its_new_name(backend: Backend) {
    let Plant {
        app, engineer, pump, ..
    } = plant(backend).await;
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "name": "Booster 7" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let started = std::time::Instant::now();
    let body = search_until(&engineer, &app, "booster", |body| body["total"] == 1).await;
    assert_eq!(body["hits"][0]["id"], pump);
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(3), "found after {elapsed:?}");
    let (_, body) = search(&engineer, &app, "\"pump 7\"").await;
    assert_eq!(body["total"], 0, "the old name is gone: {body}");
}

async fn a_burst_of_overlapping_changes_is_indexed_together(backend: Backend) {
    let Plant {
        app,
        engineer,
        north,
        south,
        pump,
        ..
    } = plant(backend).await;
    let (_, body) = search(&engineer, &app, "pumphouse").await;
    let heater = body["hits"][0]["id"].as_i64().unwrap();
    let (_, body) = search(&engineer, &app, "\"compressor 1\" kind:asset").await;
    let compressor = body["hits"][0]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "flowmeter-b", "asset_id": pump })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    // One burst, without waiting: a site renamed and an asset below it renamed too (overlapping subtrees), an
    // asset moved to the other site, another deleted, a device renamed.
    let patch = |id: i64, body: Value| send(engineer.patch(app.url(&format!("/api/v1/assets/{id}"))).json(&body));
    assert_eq!(patch(north, json!({ "name": "Nord Plant" })).await.0, 200);
    assert_eq!(patch(pump, json!({ "name": "Booster 7" })).await.0, 200);
    assert_eq!(patch(heater, json!({ "parent_id": south })).await.0, 200);
    let device = body["device"]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/devices/{device}")))
            .json(&json!({ "name": "flowmeter-c" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{compressor}?confirm=true")))).await;
    assert_eq!(status, 200, "{body}");

    let body = search_until(&engineer, &app, "booster kind:asset", |body| {
        body["hits"][0]["path"] == "/Nord Plant/Line 2/Booster 7"
    })
    .await;
    assert_eq!(body["total"], 1, "{body}");
    let body = search_until(&engineer, &app, "flowmeter", |body| {
        body["hits"][0]["name"] == "flowmeter-c"
    })
    .await;
    assert_eq!(body["total"], 1, "the old name is gone: {body}");
    assert_eq!(body["hits"][0]["path"], "/Nord Plant/Line 2/Booster 7", "{body}");
    let body = search_until(&engineer, &app, "pumphouse", |body| {
        body["hits"][0]["path"] == "/South Plant/Pumphouse heater"
    })
    .await;
    assert_eq!(body["total"], 1, "{body}");
    search_until(&engineer, &app, "\"compressor 1\" kind:asset", |body| {
        body["total"] == 0
    })
    .await;
    let (_, body) = search(&engineer, &app, "north kind:asset").await;
    assert_eq!(body["total"], 0, "no path keeps the old site name: {body}");
    let (_, body) = search(&engineer, &app, "nord kind:asset").await;
    assert_eq!(
        body["total"],
        3,
        "the site, its line and the booster: {names:?}",
        names = names(&body)
    );
}

/// Posts readings `(field, value, ts)` as the device whose token is `device`.
async fn ingest(app: &TestApp, device: &str, readings: &[(&str, f64, i64)]) {
    let readings: Vec<Value> = readings
        .iter()
        .map(|(field, value, ts)| json!({ "field": field, "value": value, "ts": ts }))
        .collect();
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(device)
            .json(&json!({ "readings": readings })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

async fn attribute_conditions_compare_current_values(backend: Backend) {
    let Plant {
        app,
        engineer,
        pump,
        pump_9,
        ..
    } = plant(backend).await;
    let seven = app.device_token(&engineer, "pump-7", pump).await;
    let nine = app.device_token(&engineer, "pump-9", pump_9).await;
    let now = server::metadata::now_ms();
    ingest(
        &app,
        &seven,
        &[
            ("outlet temperature", 104.5, now - 1_000),
            ("speed", 1450.0, now - 1_000),
        ],
    )
    .await;
    ingest(&app, &nine, &[("outlet temperature", 80.0, now - 1_000)]).await;
    let hot = "\"outlet temperature\" > 100";
    let body = search_until(&engineer, &app, hot, |body| body["total"] != 0).await;
    assert_eq!(names(&body), vec!["Pump 7"], "{body}");
    // The unit must be the attribute's when the condition names one; `°C` and `C` are the same unit.
    let (_, body) = search(&engineer, &app, "\"outlet temperature\" > 100 °C").await;
    assert_eq!(names(&body), vec!["Pump 7"], "{body}");
    let (_, body) = search(&engineer, &app, "\"Outlet Temperature\" >= 104.5 C").await;
    assert_eq!(names(&body), vec!["Pump 7"], "{body}");
    let (_, body) = search(&engineer, &app, "\"outlet temperature\" > 100 rpm").await;
    assert_eq!(body["total"], 0, "{body}");
    let (_, body) = search(&engineer, &app, "speed < 1500 rpm").await;
    assert_eq!(names(&body), vec!["Pump 7"], "{body}");
    // Pump 9's reading may come in the next quarter second's batch.
    let cool = "\"outlet temperature\" < 100 under:\"/South Plant\"";
    let body = search_until(&engineer, &app, cool, |body| body["total"] != 0).await;
    assert_eq!(names(&body), vec!["Pump 9"], "{body}");
    // A new latest value is searchable shortly; an older reading arriving late does not replace it.
    ingest(&app, &seven, &[("outlet temperature", 50.0, now - 60_000)]).await;
    let started = std::time::Instant::now();
    ingest(&app, &nine, &[("outlet temperature", 120.0, now)]).await;
    let body = search_until(&engineer, &app, hot, |body| body["total"] == 2).await;
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(2), "found after {elapsed:?}");
    let mut found = names(&body);
    found.sort();
    assert_eq!(found, vec!["Pump 7", "Pump 9"], "{body}");
    // A viewer granted the south plant finds only Pump 9, and counts only it.
    let south = body["hits"]
        .as_array()
        .unwrap()
        .iter()
        .find(|hit| hit["name"] == "Pump 9")
        .and_then(|hit| hit["path"].as_str())
        .map(|path| path.starts_with("/South Plant"));
    assert_eq!(south, Some(true), "{body}");
    let (viewer, _) = app.api_client(Role::Viewer, vec![pump_9]).await;
    let (_, body) = search(&viewer, &app, hot).await;
    assert_eq!(names(&body), vec!["Pump 9"], "{body}");
    assert_eq!(body["total"], 1, "{body}");
    // A full rebuild (any model change) reads current values from the store.
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "name": "Booster 7" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body = search_until(&engineer, &app, &format!("booster {hot}"), |body| body["total"] == 1).await;
    assert_eq!(body["hits"][0]["id"], pump, "{body}");
}

async fn results_come_in_pages(backend: Backend) {
    let Plant { app, engineer, .. } = plant(backend).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for page in 0.. {
        let mut query = vec![("q", "label:demo".to_string()), ("limit", "3".to_string())];
        if let Some(cursor) = &cursor {
            query.push(("cursor", cursor.clone()));
        }
        let (status, body) = send(engineer.get(app.url("/api/v1/search")).query(&query)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 7, "{body}");
        seen.extend(names(&body));
        cursor = body["next_cursor"].as_str().map(str::to_string);
        if cursor.is_none() {
            assert_eq!(page, 2, "seven results come in three pages of three: {body}");
            break;
        }
    }
    // `kind=` narrows as `kind:` does; `facets=false` answers the same results without counting facets.
    let (_, with) = send(
        engineer
            .get(app.url("/api/v1/search"))
            .query(&[("q", "label:demo kind:asset")]),
    )
    .await;
    let (_, without) = send(engineer.get(app.url("/api/v1/search")).query(&[
        ("q", "label:demo"),
        ("kind", "asset"),
        ("facets", "false"),
    ]))
    .await;
    assert_eq!(without["total"], with["total"], "{without}");
    assert_eq!(without["hits"], with["hits"], "{without}");
    assert_eq!(without["facets"]["kind"], json!([]), "{without}");
    assert_ne!(with["facets"]["kind"], json!([]), "{with}");
    let (status, body) = send(
        engineer
            .get(app.url("/api/v1/search"))
            .query(&[("q", "pump"), ("kind", "pump")]),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["details"]["field"], "kind", "{body}");
    let mut distinct = seen.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(distinct.len(), 7, "every result once: {seen:?}");
    assert_eq!(seen.len(), 7, "every result once: {seen:?}");
    for cursor in ["x", "-1", "99999999"] {
        let (status, body) = send(
            engineer
                .get(app.url("/api/v1/search"))
                .query(&[("q", "pump"), ("cursor", cursor)]),
        )
        .await;
        assert_eq!(status, 400, "{cursor}: {body}");
        assert_eq!(body["error"]["details"]["field"], "cursor", "{body}");
    }
}

async fn moves_deletes_devices_and_templates_reach_the_index(backend: Backend) {
    let Plant {
        app,
        engineer,
        south,
        pump,
        ..
    } = plant(backend).await;
    // Moving Line 2 under the South Plant moves Pump 7's path with it.
    let (_, lines) = search(&engineer, &app, "\"line 2\" kind:asset").await;
    let line = lines["hits"][0]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .patch(app.url(&format!("/api/v1/assets/{line}")))
            .json(&json!({ "parent_id": south })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let body = search_until(&engineer, &app, "pump 7 under:\"/South Plant\"", |body| {
        body["total"] == 1
    })
    .await;
    assert_eq!(body["hits"][0]["path"], "/South Plant/Line 2/Pump 7", "{body}");
    let (_, body) = search(&engineer, &app, "pump 7 north kind:asset").await;
    assert_eq!(body["total"], 0, "the old path is gone: {body}");

    // A device is found by its name and its asset's path; deleted, it is gone.
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/devices"))
            .json(&json!({ "name": "flowmeter-x", "asset_id": pump })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let device = body["device"]["id"].as_i64().unwrap();
    let body = search_until(&engineer, &app, "flowmeter", |body| body["total"] == 1).await;
    assert_eq!(body["hits"][0]["path"], "/South Plant/Line 2/Pump 7", "{body}");
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/devices/{device}")))).await;
    assert_eq!(status, 204);
    search_until(&engineer, &app, "flowmeter", |body| body["total"] == 0).await;

    // Deleting Line 2 removes it and everything below it.
    let (status, body) = send(engineer.delete(app.url(&format!("/api/v1/assets/{line}?confirm=true")))).await;
    assert_eq!(status, 200, "{body}");
    search_until(&engineer, &app, "pump 7 kind:asset", |body| body["total"] == 0).await;
    let (_, body) = search(&engineer, &app, "pump 9 kind:asset").await;
    assert_eq!(body["total"], 1, "the rest stays: {body}");

    // A new template is found, and the assets of a template renamed follow it.
    post(
        &engineer,
        &app,
        "/api/v1/templates",
        json!({ "name": "Heat exchanger", "attributes": [] }),
    )
    .await;
    search_until(&engineer, &app, "exchanger kind:template", |body| body["total"] == 1).await;
}

async fn open_alarms_are_found_and_narrow_assets(backend: Backend) {
    let Plant {
        app,
        engineer,
        north,
        south,
        ..
    } = plant(backend).await;
    let fan = json!({ "name": "Fan", "attributes": [
        { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 100.0 },
          "alarms": [{ "name": "Overspeed", "condition": { "type": "limit", "level": "hi" }, "severity": "critical" }] }
    ]});
    post(&engineer, &app, "/api/v1/templates", fan).await;
    let fan = |parent: i64, name: &str| json!({ "parent_id": parent, "name": name, "template": "Fan" });
    let fan_1 = post(&engineer, &app, "/api/v1/assets", fan(north, "Fan 1")).await["asset"]["id"]
        .as_i64()
        .unwrap();
    post(&engineer, &app, "/api/v1/assets", fan(south, "Fan 2")).await;
    let device = app.device_token(&engineer, "fan-1", fan_1).await;
    let now = server::metadata::now_ms();
    ingest(&app, &device, &[("speed", 150.0, now - 2_000)]).await;

    // The asset with the alarm, and the alarm itself on the asset's path.
    let body = search_until(&engineer, &app, "has:alarm kind:asset", |body| body["total"] != 0).await;
    assert_eq!(names(&body), vec!["Fan 1"], "{body}");
    assert_eq!(facet(&body, "alarm_state", "active"), 1, "{body}");
    assert_eq!(facet(&body, "alarm_state", "unacknowledged"), 1, "{body}");
    let (_, body) = search(&engineer, &app, "overspeed kind:alarm").await;
    assert_eq!(names(&body), vec!["Overspeed"], "{body}");
    let alarm = body["hits"][0]["id"].as_i64().unwrap();
    assert_eq!(body["hits"][0]["path"], "/North Plant/Fan 1", "{body}");
    assert_eq!(body["hits"][0]["href"], format!("/alarms/{alarm}"), "{body}");
    let (_, body) = search(
        &engineer,
        &app,
        "under:\"/North Plant\" severity:critical state:active kind:asset",
    )
    .await;
    assert_eq!(names(&body), vec!["Fan 1"], "{body}");
    let (_, body) = search(&engineer, &app, "severity:high kind:asset").await;
    assert_eq!(body["total"], 0, "{body}");
    // Someone granted the south plant neither sees nor counts it.
    let (viewer, _) = app.api_client(Role::Viewer, vec![south]).await;
    let (_, body) = search(&viewer, &app, "has:alarm").await;
    assert_eq!(body["total"], 0, "{body}");

    // Returned, not yet acknowledged: still open, no longer active; `severity:` and `state:` name one alarm.
    ingest(&app, &device, &[("speed", 50.0, now - 1_000)]).await;
    let returned = "severity:critical state:returned kind:asset";
    search_until(&engineer, &app, returned, |body| body["total"] == 1).await;
    let (_, body) = search(&engineer, &app, "severity:critical state:active kind:asset").await;
    assert_eq!(body["total"], 0, "{body}");
    // Acknowledged after it returned, it is over: nothing has an alarm any more.
    let (operator, _) = app.api_client(Role::Operator, vec![]).await;
    let (status, body) = send(
        operator
            .post(app.url(&format!("/api/v1/alarms/{alarm}/ack")))
            .json(&json!({})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    search_until(&engineer, &app, "has:alarm", |body| body["total"] == 0).await;

    let (status, body) = search(&engineer, &app, "severity:urgent").await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`urgent` is not a severity"),
        "{body}"
    );
}

async fn dashboards_are_found_by_those_who_may_open_them(backend: Backend) {
    let Plant {
        app, engineer, south, ..
    } = plant(backend).await;
    let dashboard = |name: &str, shared: bool| {
        json!({ "name": name, "shared": shared, "panels": [
            { "title": "Line 2 throughput", "x": 0, "y": 0, "w": 6, "h": 4,
              "content": { "kind": "alarms", "subtree": "/North Plant" } }
        ]})
    };
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/dashboards"))
            .json(&dashboard("Morning round", true)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let shared = body["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/dashboards"))
            .json(&dashboard("Scratch pad", false)),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let private = body["id"].as_i64().unwrap();

    // By name and by a panel's title; the owner finds both.
    let body = search_until(&engineer, &app, "throughput kind:dashboard", |body| body["total"] == 2).await;
    let mut found = names(&body);
    found.sort();
    assert_eq!(found, vec!["Morning round", "Scratch pad"], "{body}");
    let (_, body) = search(&engineer, &app, "morning").await;
    assert_eq!(body["hits"][0]["href"], format!("/dashboards/{shared}"), "{body}");
    // Someone else, even granted only the south plant, finds the shared one and neither sees nor counts the other.
    let (viewer, _) = app.api_client(Role::Viewer, vec![south]).await;
    let (_, body) = search(&viewer, &app, "throughput kind:dashboard").await;
    assert_eq!(names(&body), vec!["Morning round"], "{body}");
    assert_eq!(facet(&body, "kind", "dashboard"), 1, "{body}");
    let (_, body) = search(&viewer, &app, "scratch").await;
    assert_eq!(body["total"], 0, "{body}");

    // By its panels' assets, for those who may see all of them.
    let board = |name: &str, subtree: &str| {
        json!({ "name": name, "shared": true, "panels": [
            { "title": "Alarms", "x": 0, "y": 0, "w": 6, "h": 4, "content": { "kind": "alarms", "subtree": subtree } }
        ]})
    };
    for (name, subtree) in [("Pump board", "/North Plant/Line 2"), ("Yard board", "/South Plant")] {
        let (status, body) = send(engineer.post(app.url("/api/v1/dashboards")).json(&board(name, subtree))).await;
        assert_eq!(status, 201, "{body}");
    }
    let body = search_until(&engineer, &app, "north kind:dashboard", |body| body["total"] == 3).await;
    let mut found = names(&body);
    found.sort();
    assert_eq!(found, vec!["Morning round", "Pump board", "Scratch pad"], "{body}");
    // The two boards may be indexed in separate bursts: wait for the second too.
    let body = search_until(&viewer, &app, "south plant kind:dashboard", |body| body["total"] == 1).await;
    assert_eq!(names(&body), vec!["Yard board"], "{body}");
    let (_, body) = search(&viewer, &app, "north kind:dashboard").await;
    assert_eq!(
        body["total"], 0,
        "the north plant is outside the viewer's grant: {body}"
    );

    // Renamed and deleted, it follows.
    let (status, body) = send(
        engineer
            .put(app.url(&format!("/api/v1/dashboards/{shared}")))
            .json(&dashboard("Evening round", true)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    search_until(&viewer, &app, "evening", |body| body["total"] == 1).await;
    let (status, _) = send(engineer.delete(app.url(&format!("/api/v1/dashboards/{private}")))).await;
    assert!((200..300).contains(&status), "{status}");
    search_until(&engineer, &app, "scratch", |body| body["total"] == 0).await;
}

async fn alarm_rules_are_found_within_grants(backend: Backend) {
    let Plant {
        app,
        engineer,
        south,
        pump,
        ..
    } = plant(backend).await;
    // A template's rule is found by its name, attribute and severity, by everyone.
    let fan = json!({ "name": "Fan", "attributes": [
        { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 100.0 },
          "alarms": [{ "name": "Overspeed", "condition": { "type": "limit", "level": "hi" }, "severity": "critical" }] }
    ]});
    post(&engineer, &app, "/api/v1/templates", fan).await;
    let body = search_until(&engineer, &app, "overspeed", |body| body["total"] == 1).await;
    let hit = &body["hits"][0];
    assert_eq!(hit["kind"], "rule", "{body}");
    assert_eq!(hit["name"], "Overspeed (speed)", "{body}");
    assert_eq!(hit["template"], "Fan", "{body}");
    assert_eq!(hit["href"], "/templates", "{body}");
    assert_eq!(facet(&body, "kind", "rule"), 1, "{body}");

    // An asset's own rule is found on the asset's path, and only by those who may see the asset.
    let own = json!({ "rules": [
        { "attribute": "speed", "rule": { "name": "Bearing silent", "condition": { "type": "no_data", "after_seconds": 60 },
          "severity": "low" } }
    ]});
    let url = app.url(&format!("/api/v1/assets/{pump}/rules"));
    let (status, body) = send(engineer.put(&url).json(&own)).await;
    assert_eq!(status, 200, "{body}");
    let body = search_until(&engineer, &app, "bearing silent kind:rule", |body| body["total"] == 1).await;
    let hit = &body["hits"][0];
    assert_eq!(hit["path"], "/North Plant/Line 2/Pump 7", "{body}");
    assert_eq!(hit["href"], format!("/assets/{pump}"), "{body}");
    let (_, body) = search(&engineer, &app, "severity:critical kind:rule").await;
    assert_eq!(names(&body), ["Overspeed (speed)"], "{body}");
    let (_, body) = search(&engineer, &app, "\"no data\" kind:rule").await;
    assert_eq!(names(&body), ["Bearing silent (speed)"], "by its condition: {body}");
    let (viewer, _) = app.api_client(Role::Viewer, vec![south]).await;
    let (_, body) = search(&viewer, &app, "kind:rule").await;
    assert_eq!(
        names(&body),
        ["Overspeed (speed)"],
        "not the north pump's own rule: {body}"
    );
    assert_eq!(facet(&body, "kind", "rule"), 1, "nor counted: {body}");

    // Taken away, it is gone.
    let (status, body) = send(engineer.put(&url).json(&json!({ "rules": [] }))).await;
    assert_eq!(status, 200, "{body}");
    search_until(&engineer, &app, "bearing silent kind:rule", |body| body["total"] == 0).await;
    let (_, body) = search(&engineer, &app, "pump 7 kind:asset").await;
    assert_eq!(body["total"], 1, "the asset stays: {body}");
}
