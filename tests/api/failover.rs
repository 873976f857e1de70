//! TDengine failover for real: two `taosd` servers of the test's own (a primary and a secondary), readings posted
//! through Gantry while the primary gets SIGKILL, then the primary restarted. Every acknowledged reading must be on
//! one of the two servers, Gantry must resume writing within its reconnect settings, say so in its metric, log and
//! `/readyz`, and keep to its policy after the primary returns (stay on the secondary).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value};
use server::timeseries::{tdengine::TdengineStore, TimeRange, TimeSeriesStore};

use app::auth::Role as UserRole;

use crate::helpers::{send, spawn_app_with, test_config, Backend};

/// A `taosd` of this test's own, on a spare loopback port, in a temporary folder.
struct Taosd {
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
}

impl Taosd {
    fn home() -> PathBuf {
        PathBuf::from(
            std::env::var("GANTRY_TEST_TDENGINE_HOME").expect(
                "GANTRY_TEST_TDENGINE_HOME is not set: run the tests through scripts/test, which finds TDengine",
            ),
        )
    }

    /// The native client library's folder (scripts/test makes one of real links), for taosd's own libraries.
    fn library_dir() -> PathBuf {
        let library = std::env::var("TAOS_LIBRARY_PATH").expect("TAOS_LIBRARY_PATH is set by scripts/test");
        PathBuf::from(library).parent().unwrap().to_path_buf()
    }

    async fn start() -> Taosd {
        let port = {
            let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            socket.local_addr().unwrap().port()
        };
        let mut taosd = Taosd {
            child: None,
            dir: tempfile::tempdir().unwrap(),
            port,
        };
        for sub in ["cfg", "data", "log", "tmp"] {
            std::fs::create_dir_all(taosd.dir.path().join(sub)).unwrap();
        }
        let at = |sub: &str| taosd.dir.path().join(sub).display().to_string();
        let config = format!(
            "firstEp localhost:{port}\nfqdn localhost\nserverPort {port}\ndataDir {}\nlogDir {}\ntempDir {}\n\
             supportVnodes 64\ncharset UTF-8\ntelemetryReporting 0\ncrashReporting 0\nmonitor 0\naudit 0\nudf 0\n\
             enableCoreFile 0\nminimalLogDirGB 0.1\nminimalTmpDirGB 0.1\nminimalDataDirGB 0.5\nlogKeepDays 1\n",
            at("data"),
            at("log"),
            at("tmp")
        );
        std::fs::write(taosd.dir.path().join("cfg/taos.cfg"), config).unwrap();
        taosd.launch().await;
        taosd
    }

    /// Starts (or restarts) the server on its folder and port, and waits until it answers.
    async fn launch(&mut self) {
        let child = Command::new(Self::home().join("bin/taosd"))
            .arg("-c")
            .arg(self.dir.path().join("cfg"))
            .env("LD_LIBRARY_PATH", Self::library_dir())
            .env("TAOS_BIND_IP", "127.0.0.1")
            .env("TAOS_BIND_IP6", "::1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start taosd");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if TdengineStore::connect_for_tests(&self.dsn(), "gantry_probe")
                .await
                .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "taosd on port {} did not answer in 60 s",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }

    fn dsn(&self) -> String {
        format!("taos://root:taosdata@localhost:{}", self.port)
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill(); // SIGKILL
            let _ = child.wait();
        }
    }
}

impl Drop for Taosd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The instants of `series` that a server holds in `database`.
async fn instants_on(server: &Taosd, database: &str, series: i64, from: i64) -> BTreeSet<i64> {
    let store = TdengineStore::connect_for_tests(&server.dsn(), database)
        .await
        .expect("connect to one server");
    store
        .read_raw(series, TimeRange::new(from, from + 3_600_000).unwrap(), 100_000)
        .await
        .expect("read the series")
        .into_iter()
        .map(|point| point.ts)
        .collect()
}

async fn metric(app: &crate::helpers::TestApp, name: &str) -> f64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_tdengine_primary_hands_writes_to_the_secondary_and_nothing_acknowledged_is_lost() {
    let mut primary = Taosd::start().await;
    let secondary = Taosd::start().await;
    let database = format!("gantry_failover_{}", std::process::id());
    let (mut config, data_dir) = test_config(Backend::Sqlite).await;
    config.timeseries.kind = server::config::TimeseriesKind::Tdengine;
    config.timeseries.tdengine.dsn = Some(SecretString::from(primary.dsn()));
    config.timeseries.tdengine.secondary_dsn = Some(SecretString::from(secondary.dsn()));
    config.timeseries.tdengine.database = database.clone();
    config.timeseries.tdengine.reconnect_interval_ms = 1000;
    config.timeseries.tdengine.retry_count = 3;
    let app = spawn_app_with(config, data_dir).await;

    let (engineer, _) = app.api_client(UserRole::Engineer, vec![]).await;
    let template = json!({ "name": "Meter", "attributes": [{ "name": "flow", "value_type": "float" }] });
    let (status, body) = send(engineer.post(app.url("/api/v1/templates")).json(&template)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = send(
        engineer
            .post(app.url("/api/v1/assets"))
            .json(&json!({ "name": "Meter 1", "template": "Meter" })),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let asset = body["asset"]["id"].as_i64().unwrap();
    let device = app.device_token(&engineer, "meter-1", asset).await;

    // One reading per request, each at its own instant; the ones answered 200 are the acknowledged ones.
    let t0 = server::metadata::now_ms() - 600_000;
    let mut acknowledged = BTreeSet::new();
    let mut refused = 0;
    let mut next = 0;
    let post = |i: i64| {
        let request = app
            .client
            .post(app.url("/api/v1/ingest"))
            .bearer_auth(&device)
            .json(&json!({ "readings": [{ "field": "flow", "value": i as f64, "ts": t0 + i * 10 }] }));
        async move {
            let (status, body) = send(request).await;
            assert!(status == 200 || status == 503, "{status}: {body}");
            (i, status == 200)
        }
    };
    for _ in 0..50 {
        let (i, ok) = post(next).await;
        next += 1;
        assert!(ok, "reading {i} refused before any failure");
        acknowledged.insert(t0 + i * 10);
    }
    assert!(
        app.get("/readyz")
            .await
            .text()
            .await
            .unwrap()
            .contains("\"timeseries\":\"ok\""),
        "on the primary the store is simply ok"
    );

    primary.kill();
    let killed = Instant::now();
    let mut resumed = None;
    while acknowledged.len() < 150 {
        let (i, ok) = post(next).await;
        next += 1;
        if ok {
            acknowledged.insert(t0 + i * 10);
            resumed.get_or_insert_with(|| killed.elapsed());
        } else {
            refused += 1;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "writes did not resume within 60 s"
        );
    }
    let resumed = resumed.unwrap();
    assert!(
        resumed <= Duration::from_secs(30),
        "writing resumed only after {resumed:?}"
    );
    eprintln!("writes resumed {resumed:?} after the primary's SIGKILL ({refused} requests answered 503 meanwhile)");
    assert!(metric(&app, "gantry_timeseries_failovers_total").await >= 1.0);
    let readiness: Value = app.get("/readyz").await.json().await.unwrap();
    assert_eq!(readiness["status"], "ready", "{readiness}");
    assert_eq!(readiness["checks"]["timeseries"], "degraded", "{readiness}");

    // The primary comes back. Policy: stay on the secondary (no fail-back while the primary catches up).
    primary.launch().await;
    for _ in 0..20 {
        let (i, ok) = post(next).await;
        next += 1;
        assert!(ok, "reading {i} refused after the primary returned");
        acknowledged.insert(t0 + i * 10);
    }
    let series = app
        .timeseries
        .registry()
        .find(asset, "flow")
        .await
        .unwrap()
        .expect("the series exists");
    let on_primary = instants_on(&primary, &database, series, t0).await;
    let on_secondary = instants_on(&secondary, &database, series, t0).await;
    let last_twenty: Vec<i64> = acknowledged.iter().rev().take(20).copied().collect();
    assert!(
        last_twenty
            .iter()
            .all(|ts| on_secondary.contains(ts) && !on_primary.contains(ts)),
        "after the primary returned, writes stayed on the secondary"
    );
    let lost: Vec<&i64> = acknowledged
        .iter()
        .filter(|ts| !on_primary.contains(ts) && !on_secondary.contains(ts))
        .collect();
    assert!(lost.is_empty(), "acknowledged readings on neither server: {lost:?}");
    assert_eq!(
        app.get("/readyz").await.json::<Value>().await.unwrap()["checks"]["timeseries"],
        "degraded",
        "still on the secondary"
    );
    app.shutdown.cancel();
}
