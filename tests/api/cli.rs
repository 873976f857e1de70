//! The real `gantry` binary: subcommands, configuration errors, and a SIGTERM during service.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

const GANTRY: &str = env!("CARGO_BIN_EXE_gantry");

/// The binary under test: this build's, or the one `GANTRY_BIN_UNDER_TEST` names (the reliability figures in
/// BENCHMARKS.md come from the release build).
pub(crate) fn gantry() -> Command {
    let bin = std::env::var("GANTRY_BIN_UNDER_TEST").unwrap_or_else(|_| GANTRY.to_string());
    let mut command = Command::new(bin);
    // The suite's own environment must not leak configuration into the binary under test.
    for (key, _) in std::env::vars() {
        if key.starts_with("GANTRY_") {
            command.env_remove(key);
        }
    }
    command
}

/// Starts `gantry serve` on a free port with data in `dir`; returns the process and the address it printed.
pub(crate) fn start_server(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Stdio,
) -> (std::process::Child, String) {
    let (child, url, _) = start_server_with(dir, env, stderr, &[]);
    (child, url)
}

/// As [`start_server`], with extra arguments; also returns the whole first line it printed.
fn start_server_with(
    dir: &std::path::Path,
    env: &[(&str, &str)],
    stderr: Stdio,
    extra: &[&str],
) -> (std::process::Child, String, String) {
    let mut child = gantry()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .args(extra)
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(stderr)
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
        .trim_end_matches('.')
        .to_string();
    (child, url, first_line)
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
    let (mut child, url) = start_server(
        dir.path(),
        &[("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "1")],
        Stdio::null(),
    );
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

fn user_create(dir: &std::path::Path, name: &str, password: &str) -> std::process::Output {
    gantry()
        .args(["user", "create", "--admin", name, "--data-dir"])
        .arg(dir)
        .env("GANTRY_PASSWORD", password)
        .output()
        .unwrap()
}

#[test]
fn user_and_token_commands_provision_accounts_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let output = user_create(dir.path(), "ops", "a long enough password");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));

    let weak = user_create(dir.path(), "weak", "short");
    assert!(!weak.status.success());
    assert!(
        String::from_utf8_lossy(&weak.stderr).contains("12"),
        "{}",
        String::from_utf8_lossy(&weak.stderr)
    );
    let taken = user_create(dir.path(), "OPS", "a long enough password");
    assert!(!taken.status.success(), "usernames are unique regardless of case");

    // The password can come on standard input too.
    let mut child = gantry()
        .args(["user", "create", "viewer1", "--role", "viewer", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"from standard input\n").unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let output = gantry()
        .args(["token", "create", "--user", "ops", "--expires", "30", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    let token = stdout.trim_end();
    assert_eq!(stdout, format!("{token}\n"), "the token alone, on one line");
    assert!(token.starts_with("gantry_") && token.len() == 71, "{token:?}");

    let list = gantry()
        .args(["user", "list", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("ops\tadmin\tactive\tnever signed in") && list.contains("viewer1\tviewer"),
        "{list}"
    );
    let json = gantry()
        .args(["user", "list", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let users: serde_json::Value = serde_json::from_slice(&json.stdout).expect("--json prints JSON");
    let names: Vec<&str> = users
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ops", "viewer1"]);
    assert_eq!(users[0]["role"], "admin");
}

/// `device list` shows when each device was last seen as people read it, and JSON for scripts with `--json`.
#[test]
fn device_lists_read_as_people_read_them_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.yaml");
    std::fs::write(
        &model,
        "schema_version: 1\nassets:\n- path: /Plant\n- path: /Plant/Pump 1\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = gantry().args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    run(&["model", "import", model.to_str().unwrap()]);
    run(&["device", "create", "pump-1", "--asset", "/Plant/Pump 1"]);
    let list = run(&["device", "list"]);
    assert!(list.contains("pump-1\t/Plant/Pump 1\tlast seen never"), "{list}");
    let devices: serde_json::Value = serde_json::from_str(&run(&["device", "list", "--json"])).unwrap();
    assert_eq!(devices[0]["name"], "pump-1");
    assert_eq!(devices[0]["asset_path"], "/Plant/Pump 1");
}

/// Passwords and tokens pass through the server at debug log level without reaching the log.
#[test]
fn secrets_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let password = "correct horse battery staple 42";
    assert!(user_create(dir.path(), "auditor", password).status.success());
    let (child, url) = start_server(
        dir.path(),
        &[("RUST_LOG", "debug"), ("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "0")],
        Stdio::piped(),
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let secret = runtime.block_on(async {
        let client = reqwest::Client::builder().cookie_store(true).build().unwrap();
        let login = client
            .post(format!("{url}/api/v1/auth/login"))
            .header("origin", &url)
            .header(app::auth::CSRF_HEADER, "1")
            .json(&serde_json::json!({ "username": "auditor", "password": password }))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200);
        let created: serde_json::Value = client
            .post(format!("{url}/api/v1/tokens"))
            .header("origin", &url)
            .header(app::auth::CSRF_HEADER, "1")
            .json(&serde_json::json!({ "name": "log test" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let secret = created["secret"].as_str().unwrap().to_string();
        let me = reqwest::Client::new()
            .get(format!("{url}/api/v1/auth/me"))
            .bearer_auth(&secret)
            .send()
            .await
            .unwrap();
        assert_eq!(me.status(), 200);
        secret
    });
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains("DEBUG") || log.contains("debug"),
        "the log is not at debug level: {log}"
    );
    assert!(!log.contains(password), "the password reached the log");
    assert!(!log.contains(&secret[7..]), "the API token reached the log");
}

/// `--demo` prints a sign-in that works and seeds the demo plant once; a restart changes the password only.
#[test]
fn demo_mode_seeds_a_plant_and_prints_a_working_sign_in() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut asset_counts = Vec::new();
    let mut passwords = Vec::new();
    for _ in 0..2 {
        let env = [("GANTRY__SERVER__SHUTDOWN_DRAIN_SECS", "0")];
        let (mut child, url, line) = start_server_with(dir.path(), &env, Stdio::null(), &["--demo"]);
        let password = line
            .split('"')
            .nth(3)
            .unwrap_or_else(|| panic!("no password in {line:?}"))
            .to_string();
        assert!(line.contains("\"demo\""), "{line}");
        let (count, tank) = runtime.block_on(async {
            let client = reqwest::Client::new();
            let token_of = |response: serde_json::Value| response["user"]["id"].as_i64();
            let login: serde_json::Value = client
                .post(format!("{url}/api/v1/auth/login"))
                .header("origin", &url)
                .header(app::auth::CSRF_HEADER, "1")
                .json(&serde_json::json!({ "username": "demo", "password": password }))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert!(token_of(login.clone()).is_some(), "the printed sign-in failed: {login}");
            // Read the plant as the demo admin, with a token from the command line.
            let token = String::from_utf8(
                gantry()
                    .args(["token", "create", "--user", "demo", "--data-dir"])
                    .arg(dir.path())
                    .output()
                    .unwrap()
                    .stdout,
            )
            .unwrap();
            let get = |path: String| {
                let client = client.clone();
                let token = token.trim().to_string();
                async move {
                    client
                        .get(path)
                        .bearer_auth(token)
                        .send()
                        .await
                        .unwrap()
                        .json::<serde_json::Value>()
                        .await
                        .unwrap()
                }
            };
            let sites = get(format!("{url}/api/v1/assets")).await;
            let mut count = 0;
            for site in sites["assets"].as_array().unwrap() {
                let subtree = get(format!("{url}/api/v1/assets/{}/subtree", site["id"])).await;
                count += subtree["assets"].as_array().unwrap().len();
            }
            let tank = get(format!("{url}/api/v1/assets?path=/South%20Plant/Tank%20Farm/Tank%201")).await;
            // Simulated devices fill in the last day and then send every second, through the HTTP endpoint.
            let id = tank["asset"]["id"].as_i64().unwrap();
            let mut history = 0;
            for _ in 0..100 {
                let data = get(format!("{url}/api/v1/assets/{id}/attributes/level/data?points=5000")).await;
                history = data["points"].as_array().map_or(0, Vec::len);
                if history > 1440 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            assert!(history > 1440, "a day of history and live readings: {history}");
            // A well-run plant, not a flood: once the day is filled in, what returned is acknowledged (by the demo
            // operator) and only a handful of alarms stand open.
            let (mut open, mut handled) = (Vec::new(), 0);
            for _ in 0..150 {
                let answer = get(format!("{url}/api/v1/alarms?state=unacknowledged&limit=1000")).await;
                open = answer["alarms"].as_array().unwrap().clone();
                let day = get(format!("{url}/api/v1/alarms?state=all&limit=1000")).await;
                handled = day["alarms"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|alarm| alarm["active"] == false && alarm["acknowledged_by"].is_string())
                    .count();
                if handled > 0 && open.iter().all(|alarm| alarm["active"] == true) {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            assert!(handled > 0, "the demo day has alarms that were handled");
            assert!(
                open.iter().all(|alarm| alarm["active"] == true),
                "returned alarms of the back-filled day are acknowledged: {open:?}"
            );
            let active = get(format!("{url}/api/v1/alarms?state=active&limit=1000")).await;
            let active = active["alarms"].as_array().unwrap().len();
            assert!(active < 20, "{active} alarms active at once in the demo plant");
            let devices = get(format!("{url}/api/v1/assets/{id}/devices")).await;
            assert_eq!(devices["devices"][0]["online"], true, "{devices}");
            // One shared demo dashboard, whose every series exists.
            let dashboards = get(format!("{url}/api/v1/dashboards")).await;
            let dashboards = dashboards["dashboards"].as_array().unwrap().clone();
            assert_eq!(dashboards.len(), 1, "{dashboards:?}");
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            for panel in dashboards[0]["panels"].as_array().unwrap() {
                let content = &panel["content"];
                let series = match content["series"].as_array() {
                    Some(list) => list.clone(),
                    None if content["series"].is_object() => vec![content["series"].clone()],
                    None => continue,
                };
                for s in series {
                    query.append_pair(
                        "s",
                        &format!("{}|{}", s["asset"].as_str().unwrap(), s["attribute"].as_str().unwrap()),
                    );
                }
            }
            let values = get(format!("{url}/api/v1/charts/values?{}", query.finish())).await;
            let values = values["values"].as_array().unwrap();
            assert!(
                values.len() >= 8 && values.iter().all(|v| v["error"].is_null()),
                "{values:?}"
            );
            (count, tank)
        });
        let level = tank["asset"]["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["name"] == "level")
            .unwrap()
            .clone();
        assert_eq!(level["unit"], "%");
        assert_eq!(level["limits"]["hihi"], 95.0);
        asset_counts.push(count);
        passwords.push(password);
        Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .unwrap();
        child.wait().unwrap();
    }
    assert!(asset_counts[0] >= 30, "a plausible plant: {asset_counts:?}");
    assert_eq!(
        asset_counts[0], asset_counts[1],
        "a second --demo start duplicated the plant"
    );
    assert_ne!(passwords[0], passwords[1], "each start prints a fresh password");
}

/// `gantry model import/export` on the command line: a dry run changes nothing, the round trip keeps the bytes.
#[test]
fn model_files_move_between_installations() {
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    let file = first.path().join("model.yaml");
    std::fs::write(
        &file,
        "schema_version: 1\ntemplates:\n- name: Tank\n  attributes:\n  - name: level\n    value_type: float\n    unit: '%'\n\
         assets:\n- path: /Site\n- path: /Site/Tank 1\n  template: Tank\n",
    )
    .unwrap();
    let run = |dir: &std::path::Path, args: &[&str]| {
        let output = gantry().args(args).arg("--data-dir").arg(dir).output().unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    };
    let dry = run(first.path(), &["model", "import", file.to_str().unwrap(), "--dry-run"]);
    assert_eq!(dry.lines().count(), 3, "{dry}");
    assert_eq!(
        run(first.path(), &["model", "export"]),
        "schema_version: 1\ntemplates: []\nassets: []\n"
    );
    run(first.path(), &["model", "import", file.to_str().unwrap()]);
    let exported = run(first.path(), &["model", "export"]);
    let copy = second.path().join("copy.yaml");
    std::fs::write(&copy, &exported).unwrap();
    run(second.path(), &["model", "import", copy.to_str().unwrap()]);
    assert_eq!(run(second.path(), &["model", "export"]), exported);
    assert_eq!(
        run(second.path(), &["model", "import", copy.to_str().unwrap()]),
        "",
        "the second import changed something"
    );
}

#[test]
fn search_reindex_rebuilds_here_or_tells_the_running_server() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.yaml");
    std::fs::write(
        &model,
        "schema_version: 1\ntemplates:\n- name: Pump\n  attributes: []\nassets:\n- path: /Plant\n- path: /Plant/Pump 1\n  template: Pump\n",
    )
    .unwrap();
    let run = |args: &[&str]| {
        let output = gantry().args(args).arg("--data-dir").arg(dir.path()).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).to_string();
        assert!(output.status.success(), "{args:?}: {stderr}");
        stderr
    };
    run(&["model", "import", model.to_str().unwrap()]);
    // No server: the command builds the index itself (two assets and a template).
    let said = run(&["search", "reindex", "--progress"]);
    assert!(said.contains("The search index holds 3 documents"), "{said}");
    // A server holds the index: the command leaves it to the server, which rebuilds from the change feed.
    let (mut server, _) = start_server(dir.path(), &[], Stdio::null());
    let said = run(&["search", "reindex"]);
    assert!(
        said.contains("A running gantry serve holds this data dir's search index"),
        "{said}"
    );
    server.kill().unwrap();
    server.wait().unwrap();
}
