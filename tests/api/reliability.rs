//! The reliability suite: a real `gantry serve` killed with SIGKILL again and again under mixed load (HTTP JSON,
//! line protocol, MQTT, and a device whose readings raise and clear an alarm), and a full disk under ingest. Every
//! reading the server (or, for MQTT, the broker) acknowledged must be stored exactly once, and every alarm
//! occurrence those readings imply must exist exactly once.

use std::{
    collections::{BTreeMap, BTreeSet},
    process::{Command, Stdio},
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use serde_json::{json, Value};

use crate::cli::{gantry, start_server};
use crate::clients::{broker, topic_root};

const CYCLES: usize = 20;

/// Meters for each source, and a boiler whose `v` over 5 raises an alarm.
const MODEL: &str = r#"schema_version: 1
templates:
- name: Meter
  attributes:
  - name: v
    value_type: float
- name: Boiler
  attributes:
  - name: v
    value_type: float
    limits:
      hi: 5.0
    alarms:
    - name: High
      condition:
        type: limit
        level: hi
      severity: high
assets:
- path: /Site
- path: /Site/Json
  template: Meter
- path: /Site/Lines
  template: Meter
- path: /Site/Mqtt
  template: Meter
- path: /Site/Boiler
  template: Boiler
"#;
/// JSON batches acknowledged per cycle before the kill.
const BATCHES_PER_CYCLE: usize = 40;

/// Runs a `gantry` subcommand on the data dir and returns its standard output.
fn run(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> String {
    let output = gantry()
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap().trim().to_string()
}

/// Reads one attribute's readings back as `value → count`.
async fn stored_values(client: &reqwest::Client, url: &str, token: &str, path: &str, from: i64) -> BTreeMap<i64, u32> {
    let asset: Value = client
        .get(format!("{url}/api/v1/assets?path={}", path.replace(' ', "%20")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = asset["asset"]["id"]
        .as_i64()
        .unwrap_or_else(|| panic!("{path}: {asset}"));
    let csv = client
        .get(format!(
            "{url}/api/v1/assets/{id}/attributes/v/data.csv?from={from}&to={}",
            from + 100_000_000
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut values = BTreeMap::new();
    for line in csv.lines().skip(1) {
        let (_, value) = line.split_once(',').unwrap();
        *values.entry(value.parse::<f64>().unwrap() as i64).or_insert(0) += 1;
    }
    values
}

/// Waits until `/readyz` answers 200 and returns how long that took.
async fn ready(client: &reqwest::Client, url: &str, started: Instant) -> Duration {
    loop {
        if let Ok(response) = client.get(format!("{url}/readyz")).send().await {
            if response.status() == 200 {
                return started.elapsed();
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the server never became ready"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_under_mixed_load_loses_and_doubles_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let model = dir.join("model.yaml");
    std::fs::write(&model, MODEL).unwrap();
    run(dir, &["model", "import", model.to_str().unwrap()], &[]);
    let mut tokens = BTreeMap::new();
    for (device, asset) in [
        ("json-1", "/Site/Json"),
        ("lines-1", "/Site/Lines"),
        ("mqtt-1", "/Site/Mqtt"),
        ("boiler-1", "/Site/Boiler"),
    ] {
        run(dir, &["device", "create", device, "--asset", asset], &[]);
        tokens.insert(device, run(dir, &["device", "token", "create", device], &[]));
    }
    run(
        dir,
        &["user", "create", "reader", "--role", "viewer"],
        &[("GANTRY_PASSWORD", "a long reader password")],
    );
    let reader = run(dir, &["token", "create", "--user", "reader"], &[]);
    let broker = broker();
    let root = topic_root();
    let mqtt_url = broker.to_string();
    let topic = format!("{root}/+/telemetry");
    let env = [
        ("GANTRY__MQTT__URL", mqtt_url.as_str()),
        ("GANTRY__MQTT__CLIENT_ID", root.as_str()),
        ("GANTRY__MQTT__TOPIC", topic.as_str()),
        ("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "0"),
    ];

    let start = server::metadata::now_ms() - 3_600_000;
    // JSON batch n: readings at start + n*100 + i ms, value n*100 + i. Line-protocol and MQTT batches likewise on
    // their own series. The boiler's reading n is 10 (over Hi) for odd n, 0 for even n, at start + n s.
    let json_batch = move |n: i64| json!({ "readings": (0..100).map(|i| json!({ "field": "v", "value": n * 100 + i, "ts": start + n * 100 + i })).collect::<Vec<_>>() });
    let lines_batch = move |n: i64| {
        (0..100)
            .map(|i| format!("lines-1 v={} {}\n", n * 100 + i, start + n * 100 + i))
            .collect::<String>()
    };
    let acked_json = Arc::new(Mutex::new(BTreeSet::new()));
    let acked_lines = Arc::new(Mutex::new(BTreeSet::new()));
    let acked_mqtt = Arc::new(Mutex::new(BTreeSet::new()));
    let next_json = Arc::new(AtomicI64::new(0));
    let next_lines = Arc::new(AtomicI64::new(0));
    // The boiler's device sends one reading at a time and re-sends an unanswered one, as a real device would.
    let next_boiler = Arc::new(AtomicI64::new(0));
    let mut next_mqtt = 0i64;
    let client = reqwest::Client::new();
    let mut restarts = Vec::new();
    let publish = |n: i64, readings: Value| {
        let message = json!({ "readings": readings });
        let published = Command::new("mosquitto_pub")
            .args([
                "-h",
                broker.host_str().unwrap(),
                "-p",
                &broker.port().unwrap().to_string(),
            ])
            .args([
                "-q",
                "1",
                "-t",
                &format!("{root}/mqtt-1/telemetry"),
                "-m",
                &message.to_string(),
            ])
            .status()
            .unwrap();
        assert!(published.success(), "the broker refused message {n}");
    };

    // Gantry's session at the broker must exist before messages count: from then on the broker keeps what
    // arrives while Gantry is down. A probe message (value -1) says the subscription is in place.
    {
        let (mut server, url) = start_server(dir, &env, Stdio::null());
        ready(&client, &url, Instant::now()).await;
        let deadline = Instant::now() + Duration::from_secs(20);
        while !stored_values(&client, &url, &reader, "/Site/Mqtt", start - 1)
            .await
            .contains_key(&-1)
        {
            assert!(Instant::now() < deadline, "Gantry never subscribed at the broker");
            publish(-1, json!([{ "field": "v", "value": -1, "ts": start - 1 }]));
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
    }

    for cycle in 0..CYCLES {
        let started = Instant::now();
        let (mut server, url) = start_server(dir, &env, Stdio::null());
        restarts.push(ready(&client, &url, started).await);
        let mut writers = Vec::new();
        for _ in 0..2 {
            let (client, url, token, acked, next) = (
                client.clone(),
                url.clone(),
                tokens["json-1"].clone(),
                acked_json.clone(),
                next_json.clone(),
            );
            writers.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let sent = client
                        .post(format!("{url}/api/v1/ingest"))
                        .bearer_auth(&token)
                        .json(&json_batch(n))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => {
                            acked.lock().unwrap().insert(n);
                        }
                        _ => return,
                    }
                }
            }));
        }
        {
            let (client, url, token, acked, next) = (
                client.clone(),
                url.clone(),
                tokens["lines-1"].clone(),
                acked_lines.clone(),
                next_lines.clone(),
            );
            writers.push(tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let sent = client
                        .post(format!("{url}/api/v2/write?precision=ms"))
                        .header("authorization", format!("Token {token}"))
                        .body(lines_batch(n))
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 204 => {
                            acked.lock().unwrap().insert(n);
                        }
                        _ => return,
                    }
                }
            }));
        }
        {
            let (client, url, token, next) = (
                client.clone(),
                url.clone(),
                tokens["boiler-1"].clone(),
                next_boiler.clone(),
            );
            writers.push(tokio::spawn(async move {
                loop {
                    let n = next.load(Ordering::Relaxed);
                    let value = if n % 2 == 1 { 10.0 } else { 0.0 };
                    let body = json!({ "readings": [{ "field": "v", "value": value, "ts": start + n * 1000 }] });
                    let sent = client
                        .post(format!("{url}/api/v1/ingest"))
                        .bearer_auth(&token)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(response) if response.status() == 200 => next.store(n + 1, Ordering::Relaxed),
                        _ => return,
                    }
                }
            }));
        }
        // MQTT: a few messages per cycle through the broker; a message counts as acknowledged when the broker
        // took it (mosquitto_pub -q 1 waits for PUBACK). Gantry acknowledges it to the broker only once durable.
        for _ in 0..3 {
            let n = next_mqtt;
            next_mqtt += 1;
            let readings = (0..10).map(|i| json!({ "field": "v", "value": n * 10 + i, "ts": start + n * 10 + i }));
            publish(n, readings.collect());
            acked_mqtt.lock().unwrap().insert(n);
        }
        let target = (cycle + 1) * BATCHES_PER_CYCLE;
        let deadline = Instant::now() + Duration::from_secs(60);
        while acked_json.lock().unwrap().len() < target {
            assert!(Instant::now() < deadline, "cycle {cycle}: ingestion stalled");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.kill().unwrap();
        server.wait().unwrap();
        for writer in writers {
            writer.await.unwrap();
        }
    }

    // A last start: the boiler's device re-sends its unanswered reading, MQTT messages queued at the broker arrive.
    let started = Instant::now();
    let (mut server, url) = start_server(dir, &env, Stdio::null());
    restarts.push(ready(&client, &url, started).await);
    let n = next_boiler.load(Ordering::Relaxed);
    let value = if n % 2 == 1 { 10.0 } else { 0.0 };
    let body = json!({ "readings": [{ "field": "v", "value": value, "ts": start + n * 1000 }] });
    let response = client
        .post(format!("{url}/api/v1/ingest"))
        .bearer_auth(&tokens["boiler-1"])
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let boiler_readings = n + 1;

    let json_values = stored_values(&client, &url, &reader, "/Site/Json", start).await;
    let lines_values = stored_values(&client, &url, &reader, "/Site/Lines", start).await;
    let mqtt_expected: usize = acked_mqtt.lock().unwrap().len() * 10;
    let mut mqtt_values = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        mqtt_values = stored_values(&client, &url, &reader, "/Site/Mqtt", start).await;
        if mqtt_values.len() >= mqtt_expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let alarms: Value = client
        .get(format!("{url}/api/v1/alarms?state=all&limit=500&subtree=/Site/Boiler"))
        .bearer_auth(&reader)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    server.kill().unwrap();
    server.wait().unwrap();

    for (what, values, acked, per_batch) in [
        ("JSON", &json_values, &acked_json, 100),
        ("line protocol", &lines_values, &acked_lines, 100),
        ("MQTT", &mqtt_values, &acked_mqtt, 10),
    ] {
        if let Some((value, count)) = values.iter().find(|(_, count)| **count > 1) {
            panic!("{what}: reading {value} is stored {count} times");
        }
        let acked = acked.lock().unwrap();
        assert!(!acked.is_empty(), "{what}: nothing was acknowledged");
        for n in acked.iter() {
            for i in 0..per_batch {
                assert!(
                    values.contains_key(&(n * per_batch + i)),
                    "{what}: acknowledged batch {n} lost reading {i}"
                );
            }
        }
    }
    // Every reading over Hi opened exactly one occurrence, at its own time, and the next reading closed it.
    let mut starts: Vec<i64> = alarms["alarms"]
        .as_array()
        .unwrap_or_else(|| panic!("{alarms}"))
        .iter()
        .map(|a| a["started_at"].as_i64().unwrap())
        .collect();
    starts.sort_unstable();
    let expected: Vec<i64> = (0..boiler_readings)
        .filter(|n| n % 2 == 1)
        .map(|n| start + n * 1000)
        .collect();
    assert_eq!(starts, expected, "alarm occurrences lost or doubled");
    let slowest = restarts.iter().max().unwrap();
    assert!(
        *slowest < Duration::from_secs(5),
        "a restart took {slowest:?} to be ready"
    );
    eprintln!(
        "{CYCLES} kills: {} JSON, {} line-protocol, {} MQTT batches and {boiler_readings} alarm readings acknowledged; slowest restart {slowest:?}",
        acked_json.lock().unwrap().len(),
        acked_lines.lock().unwrap().len(),
        acked_mqtt.lock().unwrap().len(),
    );
}

/// Fills `dir`'s file system: a reserve of `keep` bytes is set aside, the rest filled, then the reserve freed.
fn fill_disk(dir: &std::path::Path, keep: usize) -> std::path::PathBuf {
    use std::io::Write;
    let reserve = dir.join("reserve");
    std::fs::write(&reserve, vec![0u8; keep]).unwrap();
    let ballast = dir.join("ballast");
    let mut file = std::fs::File::create(&ballast).unwrap();
    let chunk = vec![0u8; 64 * 1024];
    while file.write_all(&chunk).and_then(|_| file.flush()).is_ok() {}
    drop(file);
    std::fs::remove_file(reserve).unwrap();
    ballast
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_503_loses_nothing_and_recovers_without_restart() {
    use app::auth::Role;

    use crate::helpers::{send, spawn_app_with, Tmpfs};

    let disk = Tmpfs::mount(48);
    let config = server::config::Config::ephemeral(&disk.path().join("data"));
    let app = spawn_app_with(config, tempfile::tempdir().unwrap()).await;
    let (engineer, _) = app.api_client(Role::Engineer, vec![]).await;
    let (reader, _) = app.create_user(Role::Viewer).await;
    let reader = app.token_for(&reader).await;
    let template = json!({ "name": "Meter", "attributes": [{ "name": "v", "value_type": "float" }] });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Meter", "template": "Meter" })),
    )
    .await;
    let meter = body["asset"]["id"].as_i64().unwrap();
    let token = app.device_token(&engineer, "m", meter).await;
    let start = server::metadata::now_ms() - 3_600_000;
    let batch = |n: i64| json!({ "readings": (0..100).map(|i| json!({ "field": "v", "value": n * 100 + i, "ts": start + n * 100 + i })).collect::<Vec<_>>() });
    let post = |n: i64| {
        app.client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&token)
            .json(&batch(n))
            .send()
    };
    assert_eq!(post(0).await.unwrap().status(), 200);
    let ballast = fill_disk(disk.path(), 512 * 1024);

    // Ingest until the disk is full: the refusal is 503 with Retry-After, and the server stays up.
    let mut acked = vec![0];
    let mut refused = None;
    for n in 1..2_000 {
        let response = post(n).await.unwrap();
        match response.status().as_u16() {
            200 => acked.push(n),
            503 => {
                assert!(response.headers().contains_key("retry-after"));
                let body: Value = response.json().await.unwrap();
                assert_eq!(body["error"]["code"], "unavailable", "{body}");
                refused = Some(n);
                break;
            }
            other => panic!("batch {n}: {other} {}", response.text().await.unwrap()),
        }
    }
    let refused = refused.expect("the disk never filled");
    assert_eq!(app.get("/healthz").await.status(), 200);

    // Space comes back: the refused batch goes through without a restart.
    std::fs::remove_file(ballast).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let status = post(refused).await.unwrap().status();
        if status == 200 {
            acked.push(refused);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "writes did not resume once space was freed ({status})"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Every acknowledged reading is there, once.
    let values = stored_values(&app.client, &app.address, &reader, "/Meter", start).await;
    assert!(
        acked.len() > 1,
        "nothing was acknowledged between filling the disk and the refusal"
    );
    for n in &acked {
        for i in 0..100 {
            assert_eq!(
                values.get(&(n * 100 + i)),
                Some(&1),
                "acknowledged batch {n}, reading {i}"
            );
        }
    }
    assert_eq!(
        values.len(),
        acked.len() * 100,
        "readings that were never acknowledged are stored"
    );
}

/// Overload: three times the concurrency that saturates the server, with big batches and a small queue. Accepted
/// requests stay fast, the rest are refused at once with 503 and `Retry-After`, memory stays bounded, and
/// `/healthz` answers throughout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_excess_quickly_and_keeps_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let model = dir.join("model.yaml");
    std::fs::write(&model, MODEL).unwrap();
    run(dir, &["model", "import", model.to_str().unwrap()], &[]);
    run(dir, &["device", "create", "json-1", "--asset", "/Site/Json"], &[]);
    let token = run(dir, &["device", "token", "create", "json-1"], &[]);
    let env = [
        ("GANTRY__INGEST__QUEUE_READINGS", "20000"),
        ("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "0"),
    ];
    let (mut server, url) = start_server(dir, &env, Stdio::null());
    let client = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    ready(&client, &url, Instant::now()).await;
    let start = server::metadata::now_ms() - 3_600_000;
    let next = Arc::new(AtomicI64::new(0));
    let batch = move |n: i64| {
        json!({ "readings": (0..1000).map(|i| json!({ "field": "v", "value": 1.0, "ts": start + n * 1000 + i })).collect::<Vec<_>>() }).to_string()
    };

    /// Runs `clients` closed-loop senders for `seconds`: accepted latencies, refusals, and any other answer.
    async fn load(
        clients: usize,
        seconds: u64,
        client: &reqwest::Client,
        url: &str,
        token: &str,
        next: &Arc<AtomicI64>,
        batch: impl Fn(i64) -> String + Send + Sync + Clone + 'static,
    ) -> (Vec<Duration>, usize, Vec<String>) {
        let until = Instant::now() + Duration::from_secs(seconds);
        let mut senders = Vec::new();
        for _ in 0..clients {
            let (client, url, token, next, batch) = (
                client.clone(),
                url.to_string(),
                token.to_string(),
                next.clone(),
                batch.clone(),
            );
            senders.push(tokio::spawn(async move {
                let (mut accepted, mut refused, mut odd) = (Vec::new(), 0, Vec::new());
                while Instant::now() < until {
                    let body = batch(next.fetch_add(1, Ordering::Relaxed));
                    let sent = Instant::now();
                    let response = client
                        .post(format!("{url}/api/v1/ingest"))
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await;
                    match response {
                        Ok(r) if r.status() == 200 => accepted.push(sent.elapsed()),
                        Ok(r) if r.status() == 503 && r.headers().contains_key("retry-after") => {
                            refused += 1;
                            // A well-behaved client waits a little before the next try.
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Ok(r) => odd.push(format!("{} {}", r.status(), r.text().await.unwrap_or_default())),
                        Err(err) => odd.push(err.to_string()),
                    }
                }
                (accepted, refused, odd)
            }));
        }
        let (mut accepted, mut refused, mut odd) = (Vec::new(), 0, Vec::new());
        for sender in senders {
            let (a, r, o) = sender.await.unwrap();
            accepted.extend(a);
            refused += r;
            odd.extend(o);
        }
        (accepted, refused, odd)
    }

    let rss = |what: &str| -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", server.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with(what)).unwrap().to_string();
        line.split_whitespace().nth(1).unwrap().parse::<u64>().unwrap() / 1024
    };
    // The rate a handful of clients reach, then three times as many clients.
    let (calibration, _, odd) = load(8, 3, &client, &url, &token, &next, batch).await;
    assert!(odd.is_empty(), "{odd:?}");
    let sustained = calibration.len() as f64 * 1000.0 / 3.0;
    let health = {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let mut slowest = Duration::ZERO;
            let until = Instant::now() + Duration::from_secs(5);
            while Instant::now() < until {
                let asked = Instant::now();
                let status = client.get(format!("{url}/healthz")).send().await.unwrap().status();
                assert_eq!(status, 200);
                slowest = slowest.max(asked.elapsed());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            slowest
        })
    };
    let (mut accepted, refused, odd) = load(24, 5, &client, &url, &token, &next, batch).await;
    let slowest_health = health.await.unwrap();
    let peak_mb = rss("VmHWM:");
    server.kill().unwrap();
    server.wait().unwrap();

    assert!(
        odd.is_empty(),
        "answers other than 200 and 503 with Retry-After: {:?}",
        &odd[..odd.len().min(5)]
    );
    assert!(!accepted.is_empty(), "nothing was accepted under overload");
    accepted.sort_unstable();
    let p99 = accepted[(accepted.len() * 99 / 100).min(accepted.len() - 1)];
    eprintln!(
        "overload: sustained {sustained:.0} readings/s with 8 clients; with 24: {} accepted ({:.0}/s), {refused} refused, \
         accepted p99 {p99:?}, slowest /healthz {slowest_health:?}, peak RSS {peak_mb} MiB",
        accepted.len(),
        accepted.len() as f64 * 1000.0 / 5.0
    );
    assert!(p99 < Duration::from_secs(1), "accepted p99 {p99:?}");
    assert!(
        slowest_health < Duration::from_secs(1),
        "/healthz took {slowest_health:?}"
    );
    assert!(peak_mb < 1024, "peak RSS {peak_mb} MiB");
}
