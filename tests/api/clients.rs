//! Real clients deliver readings: curl (JSON), mosquitto_pub (MQTT through Debian's Mosquitto) and the Python
//! `influxdb` client from PyPI (line protocol on `/write`). `scripts/test` installs them and starts the broker; run
//! without them, the tests fail and say what is missing.

use std::{process::Command, time::Duration};

use serde_json::json;

use crate::helpers::{spawn_app_with, test_config, Backend};
use crate::ingest::{now_ms, readings, site_on};

/// The test broker that `scripts/test` starts.
pub fn broker() -> url::Url {
    let url = std::env::var("GANTRY_TEST_MQTT_URL")
        .expect("GANTRY_TEST_MQTT_URL is not set: run the tests with scripts/test, which starts Mosquitto and sets it");
    url::Url::parse(&url).expect("GANTRY_TEST_MQTT_URL is a URL")
}

/// A topic tree of this test's own, so tests sharing the broker never see each other's messages.
pub fn topic_root() -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "gantry-test-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn publish(broker: &url::Url, topic: &str, message: &str) {
    let status = Command::new("mosquitto_pub")
        .args([
            "-h",
            broker.host_str().unwrap(),
            "-p",
            &broker.port().unwrap().to_string(),
        ])
        .args(["-q", "1", "-t", topic, "-m", message])
        .status()
        .expect("mosquitto_pub runs");
    assert!(status.success());
}

async fn wait_for(site: &crate::ingest::Site, attribute: &str, count: usize) -> Vec<(i64, f64)> {
    for _ in 0..100 {
        let got = readings(site, attribute).await;
        if got.len() >= count {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    readings(site, attribute).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_mosquitto_pub_and_the_python_influxdb_client_deliver_readings() {
    let broker = broker();
    let python = std::env::var("GANTRY_TEST_PYTHON").expect(
        "GANTRY_TEST_PYTHON is not set: run the tests with scripts/test, which installs the influxdb client and sets it",
    );
    let root = topic_root();
    let (mut config, dir) = test_config(Backend::Sqlite).await;
    config.mqtt.url = Some(secrecy::SecretString::from(broker.to_string()));
    config.mqtt.client_id = root.clone();
    config.mqtt.topic = format!("{root}/+/telemetry");
    let site = site_on(spawn_app_with(config, dir).await).await;
    let t = now_ms() / 1000 * 1000 - 60_000;

    // curl, as a shell script would.
    let body = json!({ "readings": [{ "field": "q", "value": 1.5, "ts": t }] }).to_string();
    let output = Command::new("curl")
        .args(["-sS", "-X", "POST", "-H", "content-type: application/json"])
        .args(["-H", &format!("authorization: Bearer {}", site.token), "--data", &body])
        .arg(site.app.url("/api/v1/ingest"))
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout), r#"{"accepted":1}"#);

    // mosquitto_pub, QoS 1, on the device's topic; Gantry is subscribed and acknowledges once stored.
    tokio::time::sleep(Duration::from_millis(300)).await; // the subscription is made on connect
    let message = json!({ "readings": [{ "field": "q", "value": 2.5, "ts": t + 1000 }] }).to_string();
    publish(&broker, &format!("{root}/pump-1/telemetry"), &message);

    // The Python influxdb client, unchanged: `/write` with the token as the password.
    let script = format!(
        "from influxdb import InfluxDBClient\n\
         client = InfluxDBClient(host='127.0.0.1', port={port}, username='pump-1', password='{token}', database='plant')\n\
         client.write_points([{{'measurement': 'pump-1', 'fields': {{'q': 3.5}}, 'time': {time}}}], time_precision='ms')\n",
        port = site.app.address.rsplit(':').next().unwrap(),
        token = site.token,
        time = t + 2000,
    );
    let output = Command::new(python)
        .args(["-c", &script])
        .output()
        .expect("python runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    assert_eq!(
        wait_for(&site, "flow", 3).await,
        vec![(t, 1.5), (t + 1000, 2.5), (t + 2000, 3.5)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_messages_sent_while_gantry_is_down_arrive_when_it_returns() {
    let broker = broker();
    let root = topic_root();
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut config = server::config::Config::ephemeral(dir.path());
        config.mqtt.url = Some(secrecy::SecretString::from(broker.to_string()));
        config.mqtt.client_id = root.clone();
        config.mqtt.topic = format!("{root}/+/telemetry");
        config
    };
    // First run: the model, the device and Gantry's persistent session at the broker. The data dir is ours, so
    // the second run finds it (the temp dir handed to the helper is a spare).
    let site = site_on(spawn_app_with(config(), tempfile::tempdir().unwrap()).await).await;
    let crate::ingest::Site {
        app, engineer, pump, ..
    } = site;
    tokio::time::sleep(Duration::from_millis(300)).await;
    app.shutdown.cancel();
    app.server.await.unwrap().unwrap();
    drop(app.timeseries);
    tokio::time::sleep(Duration::from_millis(200)).await;

    // Gantry is down: the broker keeps QoS 1 messages for its session.
    let t = now_ms() / 1000 * 1000 - 30_000;
    for i in 0..3 {
        let message = json!({ "readings": [{ "field": "q", "value": i, "ts": t + i * 1000 }] }).to_string();
        publish(&broker, &format!("{root}/pump-1/telemetry"), &message);
    }

    // Second run on the same data dir and client id: the queued messages arrive and are stored.
    let app = server::startup::Application::build(config()).await.unwrap();
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    tokio::spawn(app.run_until_stopped());
    let url = format!(
        "{address}/api/v1/assets/{pump}/attributes/flow/data?from={}&to={}",
        t - 1,
        t + 10_000
    );
    let mut points = Vec::new();
    for _ in 0..100 {
        let body: serde_json::Value = engineer.get(&url).send().await.unwrap().json().await.unwrap();
        points = body["points"].as_array().cloned().unwrap_or_default();
        if points.len() == 3 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    shutdown.cancel();
    assert_eq!(points.len(), 3, "{points:?}");
}
