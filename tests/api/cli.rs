//! The real `gantry` binary: subcommands, configuration errors, and a SIGTERM during service.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");

fn gantry() -> Command {
    let mut command = Command::new(GANTRY);
    // The suite's own environment must not leak configuration into the binary under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("GANTRY_") {
            command.env_remove(key);
        }
    }
    command
}

#[test]
fn version_prints_the_version() {
    let output = gantry().arg("version").output().unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8(output.stdout).unwrap().trim(),
        format!("gantry {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn check_config_accepts_the_example_and_redacts_secrets() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/gantry.example.toml");
    let output = gantry()
        .args(["check-config", "--config", example])
        .env(
            "GANTRY__DATABASE__URL",
            "postgres://gantry:s3cr3t-pw@db.internal/gantry",
        )
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(output.status.success(), "{stdout}");
    assert!(stdout.contains("The configuration is valid."), "{stdout}");
    assert!(!stdout.contains("s3cr3t-pw"), "{stdout}");
    assert!(stdout.contains("REDACTED"), "{stdout}");
}

#[test]
fn configuration_errors_name_the_key_and_fail() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.toml");
    std::fs::write(&file, "[server]\nlisten = \"127.0.0.1:3000\"\nport = 3000\n").unwrap();
    let output = gantry().args(["check-config", "--config"]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("port"), "{stderr}");

    let output = gantry()
        .args(["serve", "--config", "/no/such/file.toml"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains("/no/such/file.toml") && stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn migrate_creates_the_metadata_database_in_the_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let output = gantry()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("gantry.db").is_file());
    // A second run finds nothing to do and still succeeds.
    let again = gantry()
        .args(["migrate", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(again.status.success());
}

#[test]
fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = gantry()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .env("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first_line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut first_line)
        .unwrap();
    let url = first_line
        .split_whitespace()
        .find(|word| word.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in {first_line:?}"))
        .to_string();
    let ready = http_status(&format!("{url}/readyz"));
    assert_eq!(ready, 200);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "gantry exited with {status}");
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "gantry did not stop within 30 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The status of a GET, from synchronous test code (without reqwest's blocking client).
fn http_status(url: &str) -> u16 {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async { reqwest::get(url).await.unwrap().status().as_u16() })
}
