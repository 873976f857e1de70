//! Two instances on one PostgreSQL database, as the HA form runs them: what is changed through one, the other acts
//! on within a second (the change feed, `server/src/changes.rs`). Each instance has its own data dir.

use std::future::Future;
use std::time::{Duration, Instant};

use app::auth::Role;
use serde_json::{json, Value};

use crate::helpers::{send, spawn_app_with, test_config, Backend, TestApp};

/// How soon a change made through one instance must take effect on another.
const WITHIN: Duration = Duration::from_secs(1);

/// Two instances on one PostgreSQL database and one Redis, as the HA form runs them (each with its own data dir).
async fn two_instances() -> (TestApp, TestApp) {
    let (mut config_a, dir_a) = test_config(Backend::Postgres).await;
    config_a.cluster = shared_cluster();
    config_a.cluster.instance_name = Some("a".into());
    let (mut config_b, dir_b) = test_config(Backend::Sqlite).await;
    config_b.database = config_a.database.clone();
    config_b.cluster = config_a.cluster.clone();
    config_b.cluster.instance_name = Some("b".into());
    (
        spawn_app_with(config_a, dir_a).await,
        spawn_app_with(config_b, dir_b).await,
    )
}

/// The name of the instance that evaluates an asset's alarm points (`a` or `b`, see [`two_instances`]).
async fn owner_of(app: &TestApp, asset: i64) -> String {
    let url = app.database_url.as_deref().expect("the instances share PostgreSQL");
    let pool = sqlx::PgPool::connect(url).await.unwrap();
    let holders = partition_holders(&pool).await;
    holders
        .into_iter()
        .find(|(_, partitions)| partitions.contains(&asset.rem_euclid(32)))
        .map(|(holder, _)| holder)
        .expect("nobody evaluates the asset's partition")
}

/// Readings in the test TDengine, in a database of this test process's own.
fn use_shared_tdengine(config: &mut server::config::Config) {
    config.timeseries.kind = server::config::TimeseriesKind::Tdengine;
    let dsn = crate::timeseries_store::tdengine_dsn();
    config.timeseries.tdengine.dsn = Some(secrecy::SecretString::from(dsn));
    config.timeseries.tdengine.database = format!("gantry_cluster_{}", std::process::id());
}

/// The test Redis, under a prefix of this test's own.
fn shared_cluster() -> server::config::ClusterConfig {
    let redis = std::env::var("GANTRY_TEST_REDIS_URL")
        .expect("GANTRY_TEST_REDIS_URL is not set: run the tests with scripts/test, which starts Redis");
    static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    server::config::ClusterConfig {
        redis_url: Some(secrecy::SecretString::from(redis)),
        channel_prefix: format!(
            "gantry-test-{}-{}-{}",
            std::process::id(),
            server::metadata::now_ms(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ),
        instance_name: None,
    }
}

/// Checks until `holds` is true; how long that took, or `None` after twice [`WITHIN`].
async fn time_until<F, Fut>(mut holds: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < 2 * WITHIN {
        if holds().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

fn pump_template(hi: f64) -> Value {
    json!({ "name": "Pump", "attributes": [
        { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": hi },
          "alarms": [{ "name": "Fast", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] }
    ]})
}

/// `/Pump 7` built through `app` from `template` (made there first): a whole-plant engineer's client, the ids of
/// the template and the asset, and a token of the pump's device.
struct Pump7 {
    engineer: reqwest::Client,
    template: i64,
    asset: i64,
    device: String,
}

async fn pump_7(app: &TestApp, template: &Value) -> Pump7 {
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(template)).await;
    assert_eq!(status, 201, "{body}");
    let template = body["template"]["id"].as_i64().unwrap();
    let asset = json!({ "name": "Pump 7", "template": "Pump" });
    let (status, body) = send(engineer.post(app.url("/api/v1/assets")).json(&asset)).await;
    assert_eq!(status, 201, "{body}");
    let asset = body["asset"]["id"].as_i64().unwrap();
    let device = app.device_token(&engineer, "pump-7", asset).await;
    Pump7 {
        engineer,
        template,
        asset,
        device,
    }
}

/// Posts one `speed` reading (now) for the pump's device to `app`, and checks it was acknowledged.
async fn post_speed(app: &TestApp, device: &str, speed: f64) {
    let reading = json!({ "readings": [{ "field": "speed", "value": speed }] });
    let (status, body) = send(
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(device)
            .json(&reading),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_made_through_one_instance_take_effect_on_another_within_a_second() {
    let (a, b) = two_instances().await;
    let Pump7 {
        engineer,
        template,
        asset: pump,
        device,
    } = pump_7(&a, &pump_template(100.0)).await;

    // B evaluates the rule as it was: 100 rpm.
    let t0 = server::metadata::now_ms() - 60_000;
    let tick = std::sync::atomic::AtomicI64::new(0);
    let post_to_b = |speed: f64| {
        let ts = t0 + 1_000 * tick.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let body = json!({ "readings": [{ "field": "speed", "value": speed, "ts": ts }] });
        b.client
            .post(b.url("/api/v1/ingest"))
            .bearer_auth(&device)
            .json(&body)
            .send()
    };
    assert_eq!(post_to_b(60.0).await.unwrap().status(), 200);
    let alarms_on_b = || async {
        let (status, body) = send(engineer.get(b.url("/api/v1/alarms"))).await;
        assert_eq!(status, 200, "{body}");
        body["alarms"].as_array().cloned().unwrap_or_default()
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(alarms_on_b().await.is_empty(), "60 rpm is under the 100 rpm limit");

    // The limit is lowered through A: B raises the alarm on its next reading.
    let (status, body) = send(
        engineer
            .put(a.url(&format!("/api/v1/templates/{template}")))
            .json(&pump_template(40.0)),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = time_until(|| async {
        assert_eq!(post_to_b(60.0).await.unwrap().status(), 200);
        tokio::time::sleep(Duration::from_millis(50)).await;
        !alarms_on_b().await.is_empty()
    })
    .await;
    assert!(took.is_some_and(|t| t < WITHIN), "B used the old limit for {took:?}");

    // The asset is moved through A: B lists its alarm under the new path.
    let (_, body) = send(
        engineer
            .post(a.url("/api/v1/assets"))
            .json(&json!({ "name": "Line 9" })),
    )
    .await;
    let line = body["asset"]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .patch(a.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "parent_id": line })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = time_until(|| async { alarms_on_b().await[0]["asset_path"] == "/Line 9/Pump 7" }).await;
    assert!(took.is_some_and(|t| t < WITHIN), "B showed the old path for {took:?}");

    // An operator granted Line 9 sees the alarm on B; their grant is narrowed through A: B stops showing it.
    let (operator, operator_name) = b.api_client(Role::Operator, vec![line]).await;
    let operator_sees = || async {
        let (status, body) = send(operator.get(b.url("/api/v1/alarms"))).await;
        assert_eq!(status, 200, "{body}");
        body["alarms"].as_array().map_or(0, Vec::len)
    };
    assert_eq!(operator_sees().await, 1);
    let (admin, _) = a.api_client(Role::Admin, vec![]).await;
    let (_, body) = send(admin.get(a.url("/api/v1/users"))).await;
    let operator_id = body["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|user| user["username"] == operator_name.as_str())
        .and_then(|user| user["id"].as_i64())
        .unwrap();
    let (status, body) = send(
        admin
            .patch(a.url(&format!("/api/v1/users/{operator_id}")))
            .json(&json!({ "grants": [] })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = time_until(|| async { operator_sees().await == 0 }).await;
    assert!(took.is_some_and(|t| t < WITHIN), "B kept the old grant for {took:?}");

    // The alarm is shelved through the instance that does not evaluate it: within a second its owner suppresses
    // what the point does next (the next occurrence raises no event).
    let owner = owner_of(&a, pump).await;
    let (owner_app, other_app) = if owner == "a" { (&a, &b) } else { (&b, &a) };
    let mut feed = engineer
        .get(owner_app.url("/api/v1/alarms/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(feed.status(), 200);
    let alarm = alarms_on_b().await[0]["id"].as_i64().unwrap();
    let (status, body) = send(
        engineer
            .post(other_app.url(&format!("/api/v1/alarms/{alarm}/shelve")))
            .json(&json!({ "minutes": 10 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(WITHIN).await;
    assert_eq!(post_to_b(1.0).await.unwrap().status(), 200);
    assert_eq!(post_to_b(60.0).await.unwrap().status(), 200);
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_millis(500);
    while let Ok(Ok(Some(chunk))) = tokio::time::timeout_at(deadline.into(), feed.chunk()).await {
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains(r#""kind":"shelved""#), "{seen}");
    assert!(
        !seen.contains(r#""kind":"raised""#) && !seen.contains(r#""kind":"returned""#),
        "the owner announced a shelved point's alarms: {seen}"
    );

    // The device's token is revoked through A: B refuses it.
    let (_, body) = send(engineer.get(a.url("/api/v1/devices"))).await;
    let device_id = body["devices"][0]["id"].as_i64().unwrap();
    let (_, body) = send(engineer.get(a.url(&format!("/api/v1/devices/{device_id}/tokens")))).await;
    let token_id = body["tokens"][0]["id"].as_i64().unwrap();
    let (status, _) = send(engineer.delete(a.url(&format!("/api/v1/device-tokens/{token_id}")))).await;
    assert_eq!(status, 204);
    let took = time_until(|| async { post_to_b(1.0).await.unwrap().status() == 401 }).await;
    assert!(
        took.is_some_and(|t| t < WITHIN),
        "B accepted the revoked token for {took:?}"
    );
}

/// An alarm raised on the instance that received the reading reaches a browser connected to another instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarm_events_reach_browsers_on_every_instance() {
    let (a, b) = two_instances().await;
    let Pump7 { engineer, device, .. } = pump_7(&a, &pump_template(40.0)).await;

    let mut feed = engineer.get(b.url("/api/v1/alarms/events")).send().await.unwrap();
    assert_eq!(feed.status(), 200);
    post_speed(&a, &device, 60.0).await;

    let mut seen = String::new();
    let deadline = Instant::now() + 2 * WITHIN;
    while !seen.contains("event: alarm") && Instant::now() < deadline {
        match tokio::time::timeout_at(deadline.into(), feed.chunk()).await {
            Ok(Ok(Some(chunk))) => seen.push_str(&String::from_utf8_lossy(&chunk)),
            _ => break,
        }
    }
    assert!(
        seen.contains("event: alarm"),
        "B's browser saw no alarm event: {seen:?}"
    );
    assert!(seen.contains("Pump 7"), "{seen}");
}

/// A reading posted to one instance appears live on a chart open on another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_readings_reach_charts_on_every_instance() {
    let (a, b) = two_instances().await;
    let Pump7 { engineer, device, .. } = pump_7(&a, &pump_template(100.0)).await;

    let mut chart = engineer
        .get(b.url("/api/v1/charts/live"))
        .query(&[("s", "/Pump 7|speed")])
        .send()
        .await
        .unwrap();
    assert_eq!(chart.status(), 200);
    // B's interest in the series reaches A within one refresh; until then A's readings are not fanned out.
    let start = Instant::now();
    let mut seen = String::new();
    while !seen.contains("42.5") && start.elapsed() < 3 * WITHIN {
        post_speed(&a, &device, 42.5).await;
        if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(200), chart.chunk()).await {
            seen.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
    assert!(
        seen.contains("event: readings") && seen.contains("42.5"),
        "B's chart saw no reading posted to A in {:?}: {seen:?}",
        start.elapsed()
    );
}

/// The setup token one instance printed opens setup on another, once: the tokens live in the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_setup_token_printed_by_one_instance_opens_setup_on_another_once() {
    let (a, b) = two_instances().await;
    let token = a
        .accounts
        .open_setup_if_empty()
        .await
        .unwrap()
        .expect("no account exists yet");
    let setup = |app: &TestApp, token: &str, username: &str| {
        let body = json!({ "setup_token": token, "username": username, "display_name": username,
                           "password": "a long enough password" });
        app.client
            .post(app.url("/api/v1/auth/setup"))
            .header("origin", &app.address)
            .header(app::auth::CSRF_HEADER, "1")
            .json(&body)
            .send()
    };
    let (_, body) = send(b.client.get(b.url("/api/v1/auth/setup"))).await;
    assert_eq!(body["setup_required"], true, "{body}");
    assert_eq!(setup(&b, "0123456789abcdef", "guess").await.unwrap().status(), 403);
    let response = setup(&b, &token, "ada").await.unwrap();
    assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
    // Consumed: neither instance opens setup again, with this token or any other.
    assert_eq!(setup(&a, &token, "eve").await.unwrap().status(), 404);
    let (_, body) = send(a.client.get(a.url("/api/v1/auth/setup"))).await;
    assert_eq!(body["setup_required"], false, "{body}");
}

/// Guesses spread over two instances count as one: the login throttle's attempts live in the shared database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_guesses_spread_over_instances_share_one_throttle() {
    let (a, b) = two_instances().await;
    let guess = json!({ "username": "anna", "password": "not the password at all" });
    let mut statuses = Vec::new();
    for i in 0..12 {
        let app = if i % 2 == 0 { &a } else { &b };
        let response = app
            .client
            .post(app.url("/api/v1/auth/login"))
            .header("origin", &app.address)
            .header(app::auth::CSRF_HEADER, "1")
            .json(&guess)
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
    }
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 10, "{statuses:?}");
    assert_eq!(refused, 2, "{statuses:?}");
}

/// A reminder that several instances find due is sent once: the one whose claim succeeds sends it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_reminder_is_claimed_by_exactly_one_instance() {
    let (config, dir) = test_config(Backend::Postgres).await;
    let database = config.database.clone();
    let app = spawn_app_with(config, dir).await;
    let mut template = pump_template(40.0);
    template["attributes"][0]["alarms"][0]["renotify_minutes"] = json!(1);
    let Pump7 { engineer, device, .. } = pump_7(&app, &template).await;
    post_speed(&app, &device, 60.0).await;
    let raised = time_until(|| async {
        let (_, body) = send(engineer.get(app.url("/api/v1/alarms"))).await;
        body["alarms"].as_array().is_some_and(|a| !a.is_empty())
    })
    .await;
    assert!(raised.is_some(), "no alarm was raised");
    // The instance stops (its own reminder pass must not take part); its reminder falls due.
    app.shutdown.cancel();
    let url = secrecy::ExposeSecret::expose_secret(database.url.as_ref().unwrap()).to_string();
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query("UPDATE alarms SET notified_at = notified_at - 120000")
        .execute(&pool)
        .await
        .unwrap();

    // Two instances' reminder passes find it due at once; exactly one claim succeeds.
    let scratch = tempfile::tempdir().unwrap();
    let store = server::metadata::connect(&database, scratch.path())
        .await
        .unwrap()
        .alarm_store();
    let now = server::metadata::now_ms();
    let due = store.due_reminders(now).await.unwrap();
    assert_eq!(due.len(), 1);
    let (first, second) = tokio::join!(
        store.claim_reminder(due[0].id, now),
        store.claim_reminder(due[0].id, now)
    );
    assert_eq!(
        [first.unwrap(), second.unwrap()]
            .iter()
            .filter(|claimed| **claimed)
            .count(),
        1,
        "a reminder was claimed twice, or not at all"
    );
    assert!(store.due_reminders(now).await.unwrap().is_empty());
}

/// A `gantry serve` process that a failing test does not leave running.
struct KilledOnDrop(std::process::Child);

impl Drop for KilledOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Who holds each alarm partition's lease now: holder → partitions.
async fn partition_holders(pool: &sqlx::PgPool) -> std::collections::BTreeMap<String, Vec<i64>> {
    let rows: Vec<(String, String)> =
        sqlx::query_as("SELECT name, holder FROM leases WHERE name LIKE 'alarm-partition:%' AND until_ms > $1")
            .bind(server::metadata::now_ms())
            .fetch_all(pool)
            .await
            .unwrap();
    let mut holders = std::collections::BTreeMap::<String, Vec<i64>>::new();
    for (name, holder) in rows {
        let partition = name.trim_start_matches("alarm-partition:").parse().unwrap();
        holders.entry(holder).or_default().push(partition);
    }
    holders
}

/// Every occurrence of `rule`, oldest first, as (started_at, ended_at).
async fn occurrences(app: &TestApp, client: &reqwest::Client, rule: &str) -> Vec<(i64, Option<i64>)> {
    let (status, body) = send(client.get(app.url("/api/v1/alarms?state=all&limit=500"))).await;
    assert_eq!(status, 200, "{body}");
    let mut found: Vec<(i64, Option<i64>)> = body["alarms"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|alarm| alarm["rule"] == rule)
        .map(|alarm| (alarm["started_at"].as_i64().unwrap(), alarm["ended_at"].as_i64()))
        .collect();
    found.sort_unstable();
    found
}

/// Alarm rules run once per reading whichever instance receives it (the instance holding the series' partition
/// evaluates it; the other forwards), and when that instance is killed the other takes its points over with their
/// state: an on-delay pending at the kill fires once, at its deadline. Both instances share PostgreSQL, Redis and
/// TDengine, as in the HA form; A is a real `gantry serve`, killed with SIGKILL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alarm_point_has_one_owner_and_a_killed_owner_hands_its_points_over() {
    let (mut config_b, dir_b) = test_config(Backend::Postgres).await;
    config_b.cluster = shared_cluster();
    config_b.cluster.instance_name = Some("b".into());
    use_shared_tdengine(&mut config_b);
    let dsn = crate::timeseries_store::tdengine_dsn();
    let database_url = secrecy::ExposeSecret::expose_secret(config_b.database.url.as_ref().unwrap()).to_string();
    let redis_url = secrecy::ExposeSecret::expose_secret(config_b.cluster.redis_url.as_ref().unwrap()).to_string();

    let dir_a = tempfile::tempdir().unwrap();
    let env = [
        ("GANTRY__DATABASE__URL", database_url.as_str()),
        ("GANTRY__CLUSTER__REDIS_URL", redis_url.as_str()),
        (
            "GANTRY__CLUSTER__CHANNEL_PREFIX",
            config_b.cluster.channel_prefix.as_str(),
        ),
        ("GANTRY__CLUSTER__INSTANCE_NAME", "a"),
        ("GANTRY__TIMESERIES__KIND", "tdengine"),
        ("GANTRY__TIMESERIES__TDENGINE__DSN", dsn.as_str()),
        (
            "GANTRY__TIMESERIES__TDENGINE__DATABASE",
            config_b.timeseries.tdengine.database.as_str(),
        ),
    ];
    let (process_a, url_a) = crate::cli::start_server(dir_a.path(), &env, std::process::Stdio::inherit());
    let mut process_a = KilledOnDrop(process_a);
    let b = spawn_app_with(config_b, dir_b).await;
    let pool = sqlx::PgPool::connect(&database_url).await.unwrap();

    // The partitions are shared out: 16 each.
    let start = Instant::now();
    let mut holders = partition_holders(&pool).await;
    while holders.values().map(Vec::len).collect::<Vec<_>>() != [16, 16] {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "partitions never shared out: {holders:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        holders = partition_holders(&pool).await;
    }

    // A pump whose partition A holds.
    let (engineer, _) = b.api_client(Role::Engineer, vec![]).await;
    let template = json!({ "name": "Pump", "attributes": [
        { "name": "speed", "value_type": "float", "unit": "rpm", "limits": { "hi": 40.0 },
          "alarms": [{ "name": "Fast", "condition": { "type": "limit", "level": "hi" }, "severity": "high" }] },
        { "name": "temperature", "value_type": "float", "unit": "°C", "limits": { "hi": 80.0 },
          "alarms": [{ "name": "Held", "condition": { "type": "limit", "level": "hi" }, "severity": "high",
                       "on_delay_seconds": 6 }] }
    ]});
    let (status, body) = send(engineer.post(b.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let mut pump = None;
    for n in 0..40 {
        let (status, body) = send(
            engineer
                .post(b.url("/api/v1/assets"))
                .json(&json!({ "name": format!("Pump {n}"), "template": "Pump" })),
        )
        .await;
        assert_eq!(status, 201, "{body}");
        let id = body["asset"]["id"].as_i64().unwrap();
        if holders["a"].contains(&id.rem_euclid(32)) {
            pump = Some(id);
            break;
        }
    }
    let pump = pump.expect("no asset landed in A's partitions");
    let device = b.device_token(&engineer, "pump", pump).await;
    let post = |url: String, field: &'static str, value: f64, ts: i64| {
        let client = b.client.clone();
        let device = device.clone();
        async move {
            let body = json!({ "readings": [{ "field": field, "value": value, "ts": ts }] });
            let response = client
                .post(format!("{url}/api/v1/ingest"))
                .bearer_auth(&device)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        }
    };

    // Readings alternate between the instances; A evaluates all of them, in the device's order.
    let t0 = server::metadata::now_ms() - 100_000;
    let speeds = [10.0, 50.0, 55.0, 10.0, 60.0, 10.0, 50.0, 10.0];
    for (i, speed) in speeds.into_iter().enumerate() {
        let url = if i % 2 == 0 { url_a.clone() } else { b.address.clone() };
        post(url, "speed", speed, t0 + 1_000 * i as i64).await;
    }
    let expected = vec![
        (t0 + 1_000, Some(t0 + 3_000)),
        (t0 + 4_000, Some(t0 + 5_000)),
        (t0 + 6_000, Some(t0 + 7_000)),
    ];
    assert_eq!(occurrences(&b, &engineer, "Fast").await, expected);

    // A over-temperature reading starts the 6 s on-delay on A; A is killed; two more readings reach B.
    let t1 = server::metadata::now_ms();
    post(b.address.clone(), "temperature", 90.0, t1).await;
    process_a.0.kill().unwrap();
    process_a.0.wait().unwrap();
    post(b.address.clone(), "temperature", 95.0, t1 + 1_000).await;
    post(b.address.clone(), "temperature", 85.0, t1 + 2_000).await;

    // B takes A's partitions once their leases end, and the delay fires once, at its deadline.
    let start = Instant::now();
    let mut held = occurrences(&b, &engineer, "Held").await;
    while held.is_empty() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        held = occurrences(&b, &engineer, "Held").await;
    }
    assert_eq!(
        held,
        vec![(t1 + 6_000, None)],
        "the pending delay did not fire exactly once"
    );
    assert_eq!(
        partition_holders(&pool).await.get("b").map(Vec::len),
        Some(32),
        "B did not take A's partitions"
    );
    // Nothing was evaluated twice in the handover.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(occurrences(&b, &engineer, "Fast").await, expected);
    assert_eq!(occurrences(&b, &engineer, "Held").await, vec![(t1 + 6_000, None)]);
}

/// A retention pass over a shared store (TDengine) runs on one instance per interval, whichever claims it; each
/// instance's embedded store is its own, so each runs its own passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_of_a_shared_store_runs_on_one_instance_per_interval() {
    let (mut config_a, dir_a) = test_config(Backend::Postgres).await;
    config_a.cluster.instance_name = Some("a".into());
    use_shared_tdengine(&mut config_a);
    let (mut config_b, dir_b) = test_config(Backend::Sqlite).await;
    config_b.database = config_a.database.clone();
    config_b.timeseries = config_a.timeseries.clone();
    config_b.cluster.instance_name = Some("b".into());
    let (a, b) = (
        spawn_app_with(config_a, dir_a).await,
        spawn_app_with(config_b, dir_b).await,
    );
    let (ran_a, ran_b) = tokio::join!(
        a.timeseries.claimed_retention_pass(),
        b.timeseries.claimed_retention_pass()
    );
    let (ran_a, ran_b) = (ran_a.unwrap(), ran_b.unwrap());
    assert!(
        ran_a != ran_b,
        "a pass ran on {} instances",
        u8::from(ran_a) + u8::from(ran_b)
    );
    let idle = if ran_a { &b } else { &a };
    assert!(
        !idle.timeseries.claimed_retention_pass().await.unwrap(),
        "two passes in one interval"
    );

    let (a, b) = two_instances().await;
    assert!(a.timeseries.claimed_retention_pass().await.unwrap());
    assert!(b.timeseries.claimed_retention_pass().await.unwrap());
}

/// The cap on one user's live streams counts the streams on every instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_users_live_streams_are_capped_across_instances() {
    let (a, b) = two_instances().await;
    let (viewer, _) = a.api_client(Role::Viewer, vec![]).await;
    let open = |app: &TestApp| viewer.get(app.url("/api/v1/alarms/events")).send();
    let mut feeds = Vec::new();
    for i in 0..16 {
        let feed = open(if i % 2 == 0 { &a } else { &b }).await.unwrap();
        assert_eq!(feed.status(), 200, "stream {i}");
        feeds.push(feed);
    }
    assert_eq!(open(&b).await.unwrap().status(), 429, "a 17th stream was admitted");
    assert_eq!(open(&a).await.unwrap().status(), 429, "a 17th stream was admitted");
    // A stream that ends frees its place on every instance.
    drop(feeds.remove(0));
    let took = time_until(|| async { open(&b).await.unwrap().status() == 200 }).await;
    assert!(
        took.is_some(),
        "the freed place was not given to another instance's stream"
    );
}

/// Searches `app` for `q` until `done` holds; returns how long that took (panics after 5 s).
async fn searched_within(app: &TestApp, client: &reqwest::Client, q: &str, done: impl Fn(&Value) -> bool) -> Duration {
    let start = Instant::now();
    loop {
        let (status, body) = send(client.get(app.url("/api/v1/search")).query(&[("q", q)])).await;
        assert_eq!(status, 200, "{q}: {body}");
        if done(&body) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{q} on the other instance: still {body}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instance_s_search_index_follows_changes_and_values_made_through_another() {
    let (a, b) = two_instances().await;
    let Pump7 {
        engineer,
        asset: pump,
        device,
        ..
    } = pump_7(&a, &pump_template(100.0)).await;
    let is_pump = |body: &Value| body["hits"][0]["id"] == pump && body["total"] == 1;
    searched_within(&b, &engineer, "pump 7 kind:asset", is_pump).await;

    // A rename through A is found by its new name on B within a second.
    let (status, body) = send(
        engineer
            .patch(a.url(&format!("/api/v1/assets/{pump}")))
            .json(&json!({ "name": "Booster 7" })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let took = searched_within(&b, &engineer, "booster kind:asset", is_pump).await;
    assert!(
        took < Duration::from_secs(1),
        "the rename reached B's index after {took:?}"
    );

    // A reading acknowledged by A is B's current value within a second.
    post_speed(&a, &device, 1500.0).await;
    let took = searched_within(&b, &engineer, "speed > 1000 rpm", is_pump).await;
    assert!(
        took < Duration::from_secs(1),
        "the value reached B's index after {took:?}"
    );
}

/// A report whose schedule comes due while two instances run: exactly one run is made for the due time, worked
/// out once, and its files (in the folder both share) come from either instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_report_runs_once_across_instances() {
    let shared = tempfile::tempdir().unwrap();
    let (mut config_a, dir_a) = test_config(Backend::Postgres).await;
    config_a.cluster = shared_cluster();
    config_a.cluster.instance_name = Some("a".into());
    config_a.reports.files_dir = Some(shared.path().to_path_buf());
    let (mut config_b, dir_b) = test_config(Backend::Sqlite).await;
    config_b.database = config_a.database.clone();
    config_b.cluster = config_a.cluster.clone();
    config_b.cluster.instance_name = Some("b".into());
    config_b.reports = config_a.reports.clone();
    let (a, b) = (
        spawn_app_with(config_a, dir_a).await,
        spawn_app_with(config_b, dir_b).await,
    );
    let (engineer, _) = a.api_client(Role::Engineer, vec![]).await;
    let (status, body) = send(engineer.post(a.url("/api/v1/assets")).json(&json!({ "name": "Site" }))).await;
    assert_eq!(status, 201, "{body}");
    // Due three seconds from now (UTC), once a day.
    let due = (server::metadata::now_ms() / 1000 + 3) * 1000;
    let at = jiff::Timestamp::from_millisecond(due)
        .unwrap()
        .to_zoned(jiff::tz::TimeZone::UTC);
    let cron = format!("{} {} {} * * *", at.second(), at.minute(), at.hour());
    let spec = json!({
        "name": "Site hourly", "scope": { "under": "/Site" }, "range": { "kind": "hours", "hours": 1 },
        "time_zone": "UTC", "schedule": { "cron": cron },
        "sections": [{ "kind": "text", "heading": "{scope} from {from} to {to}" }]
    });
    let (status, made) = send(engineer.post(a.url("/api/v1/reports")).json(&spec)).await;
    assert_eq!(status, 201, "{made}");
    let id = made["id"].as_i64().unwrap();

    let deadline = Instant::now() + Duration::from_secs(20);
    let run = loop {
        let (_, body) = send(engineer.get(b.url(&format!("/api/v1/reports/{id}/runs")))).await;
        if let Some(run) = body["runs"]
            .as_array()
            .and_then(|runs| runs.first())
            .filter(|r| r["status"] == "done")
        {
            break run.clone();
        }
        assert!(Instant::now() < deadline, "no scheduled run is done: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(run["scheduled_for"], due, "{run}");
    assert_eq!(run["to"], due, "the last hour up to the due time: {run}");
    // Both instances kept looking for due runs a while longer; still one run.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, body) = send(engineer.get(a.url(&format!("/api/v1/reports/{id}/runs")))).await;
    assert_eq!(body["runs"].as_array().unwrap().len(), 1, "{body}");
    assert_eq!(
        body["runs"][0]["requester"], made["owner"],
        "it ran as the report's owner: {body}"
    );
    for app in [&a, &b] {
        let response = engineer
            .get(app.url(&format!("/api/v1/reports/{id}/runs/{}/report.pdf", run["id"])))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert!(response.bytes().await.unwrap().starts_with(b"%PDF-"));
    }
}
