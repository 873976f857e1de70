//! `spawn_app` and friends: the real application on port 0 with its own data dir, and for PostgreSQL its own
//! database (the server named by `GANTRY_TEST_POSTGRES_URL`, which the test command starts).

use server::timeseries::tdengine::TdengineStore;
use std::{
    sync::atomic::{AtomicU32, Ordering},
    time::{SystemTime, UNIX_EPOCH},
};

use std::sync::Arc;

use app::auth::{NewToken, NewUser, Role as UserRole};
use secrecy::SecretString;
use server::{
    auth::{Accounts, COOKIE_NAME},
    config::{Config, Role},
    startup::Application,
};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    /// PostgreSQL for metadata and TDengine for readings: the HA form's stores.
    Tdengine,
}

impl Backend {
    /// The metadata backend's name.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres | Backend::Tdengine => "postgres",
        }
    }
}

pub struct TestApp {
    pub address: String,
    /// A client without cookies or credentials.
    pub client: reqwest::Client,
    pub accounts: Arc<Accounts>,
    pub timeseries: Arc<server::timeseries::Timeseries>,
    pub metadata: Arc<dyn server::metadata::MetadataStore>,
    /// The metadata database's URL (PostgreSQL), for tests that look at tables directly.
    pub database_url: Option<String>,
    pub shutdown: CancellationToken,
    pub server: JoinHandle<anyhow::Result<()>>,
    /// Kept so the data dir lives as long as the app.
    _data_dir: TempDir,
    /// The TDengine database the app writes to, dropped with it.
    _tdengine_database: Option<TdengineDatabase>,
}

/// A test's TDengine database, dropped when the test ends: each holds vnode memory, and left behind they exhaust
/// the test server's.
pub struct TdengineDatabase(String);

impl Drop for TdengineDatabase {
    fn drop(&mut self) {
        {
            let database = std::mem::take(&mut self.0);
            let dsn = crate::timeseries_store::tdengine_dsn();
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .ok()?;
                let store = runtime
                    .block_on(TdengineStore::connect_for_tests(&dsn, &database))
                    .ok()?;
                store.drop_database_blocking();
                Some(())
            })
            .join();
        }
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.expect("request failed")
    }

    /// A client carrying an API token of a new user with `role` (and grants), and that user's name.
    pub async fn api_client(&self, role: UserRole, grants: Vec<i64>) -> (reqwest::Client, String) {
        let (name, _) = self.create_user_with_grants(role, grants).await;
        let token = self.token_for(&name).await;
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
        (
            reqwest::Client::builder().default_headers(headers).build().unwrap(),
            name,
        )
    }

    /// Creates a user with `role` and returns its username and password.
    pub async fn create_user(&self, role: UserRole) -> (String, String) {
        self.create_user_with_grants(role, Vec::new()).await
    }

    pub async fn create_user_with_grants(&self, role: UserRole, grants: Vec<i64>) -> (String, String) {
        static USERS: AtomicU32 = AtomicU32::new(0);
        let username = format!("{}{}", role.as_str(), USERS.fetch_add(1, Ordering::Relaxed));
        let password = format!("{username} has a long password");
        let user = NewUser {
            username: username.clone(),
            display_name: format!("Test {username}"),
            password: password.clone(),
            role,
            grants,
            whole_plant: None,
        };
        self.accounts
            .create_user_from_cli(user)
            .await
            .expect("could not create a test user");
        (username, password)
    }

    /// An API token for `username`.
    pub async fn token_for(&self, username: &str) -> String {
        let token = NewToken {
            name: "test".into(),
            expires_at_ms: None,
        };
        self.accounts
            .create_token_from_cli(username, token)
            .await
            .expect("could not create a test token")
            .secret
    }

    /// A client that behaves like Gantry's own pages in a browser: it keeps cookies and sends the same origin
    /// and the CSRF header.
    pub fn browser(&self) -> reqwest::Client {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("origin", self.address.parse().unwrap());
        headers.insert(app::auth::CSRF_HEADER, "1".parse().unwrap());
        reqwest::Client::builder()
            .cookie_store(true)
            .default_headers(headers)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// A browser-like client signed in as a new user with `role`.
    pub async fn signed_in(&self, role: UserRole) -> reqwest::Client {
        let (username, password) = self.create_user(role).await;
        let client = self.browser();
        let response = self.login(&client, &username, &password).await;
        assert_eq!(
            response.status(),
            200,
            "sign-in failed: {}",
            response.text().await.unwrap()
        );
        client
    }

    /// Creates a device bound to `asset_id` (as `engineer`) and returns a fresh token of it.
    pub async fn device_token(&self, engineer: &reqwest::Client, name: &str, asset_id: i64) -> String {
        let device = serde_json::json!({ "name": name, "asset_id": asset_id });
        let (status, body) = send(engineer.post(self.url("/api/v1/devices")).json(&device)).await;
        assert_eq!(status, 201, "{body}");
        let id = body["device"]["id"].as_i64().unwrap();
        let token = serde_json::json!({ "name": "t" });
        let url = self.url(&format!("/api/v1/devices/{id}/tokens"));
        let (status, body) = send(engineer.post(url).json(&token)).await;
        assert_eq!(status, 201, "{body}");
        body["secret"].as_str().unwrap().to_string()
    }

    pub async fn login(&self, client: &reqwest::Client, username: &str, password: &str) -> reqwest::Response {
        client
            .post(self.url("/api/v1/auth/login"))
            .json(&serde_json::json!({ "username": username, "password": password }))
            .send()
            .await
            .unwrap()
    }
}

/// The session cookie's value in a response, if it sets one.
pub fn session_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .cookies()
        .find(|c| c.name() == COOKIE_NAME)
        .map(|c| c.value().to_string())
}

/// A configuration for `backend` with a fresh data dir (and database), listening on a free port.
pub async fn test_config(backend: Backend) -> (Config, TempDir) {
    let data_dir = tempfile::tempdir().expect("temp dir");
    let mut config = Config::ephemeral(data_dir.path());
    if matches!(backend, Backend::Postgres | Backend::Tdengine) {
        config.database.url = Some(SecretString::from(fresh_postgres_database().await));
    }
    if backend == Backend::Tdengine {
        static DATABASES: AtomicU32 = AtomicU32::new(0);
        config.timeseries.kind = server::config::TimeseriesKind::Tdengine;
        config.timeseries.tdengine.dsn = Some(SecretString::from(crate::timeseries_store::tdengine_dsn()));
        config.timeseries.tdengine.database = format!(
            "gantry_api_{}_{}",
            std::process::id(),
            DATABASES.fetch_add(1, Ordering::Relaxed)
        );
    }
    (config, data_dir)
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    let (config, data_dir) = test_config(backend).await;
    spawn_app_with(config, data_dir).await
}

pub async fn spawn_app_with_role(backend: Backend, role: Role) -> TestApp {
    let (mut config, data_dir) = test_config(backend).await;
    config.server.role = role;
    spawn_app_with(config, data_dir).await
}

pub async fn spawn_app_with(config: Config, data_dir: TempDir) -> TestApp {
    let tdengine_database = (config.timeseries.kind == server::config::TimeseriesKind::Tdengine)
        .then(|| TdengineDatabase(config.timeseries.tdengine.database.clone()));
    let database_url = config
        .database
        .url
        .as_ref()
        .map(|url| secrecy::ExposeSecret::expose_secret(url).to_string());
    let app = Application::build(config)
        .await
        .expect("the application failed to build");
    let address = format!("http://127.0.0.1:{}", app.port());
    let shutdown = app.shutdown_token();
    let accounts = app.accounts();
    let timeseries = app.timeseries();
    let metadata = app.metadata();
    let server = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        accounts,
        timeseries,
        metadata,
        database_url,
        shutdown,
        server,
        _data_dir: data_dir,
        _tdengine_database: tdengine_database,
    }
}

/// Creates an empty database on the test PostgreSQL server and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let admin_url = std::env::var("GANTRY_TEST_POSTGRES_URL").expect(
        "GANTRY_TEST_POSTGRES_URL is not set: run the tests with scripts/test, which starts PostgreSQL and sets it",
    );
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let name = format!(
        "gantry_test_{}_{}_{}",
        std::process::id(),
        nanos,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = PgConnection::connect(&admin_url)
        .await
        .expect("could not connect to the test PostgreSQL server");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("could not create a test database");
    let mut url = url::Url::parse(&admin_url).expect("GANTRY_TEST_POSTGRES_URL is not a URL");
    url.set_path(&format!("/{name}"));
    url.to_string()
}

/// A server-rendered page without the empty hydration markers (`<!>`) Leptos writes after text nodes of erased
/// view types (`--cfg erase_components`), so that tests can look for markup as a person reads it.
pub fn without_markers(html: &str) -> String {
    html.replace("<!>", "")
}

/// Sends a request and returns its status and JSON body (`null` when the body is not JSON).
pub async fn send(request: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
    let response = request.send().await.expect("request failed");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// Writes each test once and runs it against every metadata backend: `backend_tests!(a, b)` expands to
/// `sqlite::a`, `postgres::a`, … calling `a(Backend::Sqlite)` and `a(Backend::Postgres)`.
#[macro_export]
macro_rules! backend_tests {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The same tests once more on the HA form's stores (PostgreSQL metadata, TDengine readings): `tdengine_tests!(a)`
/// expands to `tdengine::a`, calling `a(Backend::Tdengine)`.
#[macro_export]
macro_rules! tdengine_tests {
    ($($test:ident),* $(,)?) => {
        mod tdengine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() {
                    super::$test($crate::helpers::Backend::Tdengine).await
                }
            )*
        }
    };
}

/// A small tmpfs mounted for one test (disk-full tests), unmounted when dropped. The test command runs as root;
/// where mounting is impossible the test fails and says why.
pub struct Tmpfs(TempDir);

impl Tmpfs {
    pub fn mount(megabytes: u32) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={megabytes}m"), "tmpfs"])
            .arg(dir.path())
            .status();
        match status {
            Ok(status) if status.success() => Tmpfs(dir),
            other => panic!("cannot mount a tmpfs for the disk-full test (it needs root): {other:?}"),
        }
    }

    pub fn path(&self) -> &std::path::Path {
        self.0.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.0.path())
            .status();
    }
}

/// A PNG's pixels as RGB rows (RGBA and grey converted): width, height, pixels.
pub fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    let mut reader = decoder.read_info().unwrap();
    let mut buffer = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buffer).unwrap();
    buffer.truncate(info.buffer_size());
    let rgb = match info.color_type {
        png::ColorType::Rgb => buffer,
        png::ColorType::Rgba => buffer.chunks(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
        png::ColorType::Grayscale => buffer.iter().flat_map(|g| [*g, *g, *g]).collect(),
        other => panic!("an unexpected PNG colour type {other:?}"),
    };
    (info.width, info.height, rgb)
}

/// Checks a PNG against the stored reference picture `tests/data/{name}`: the same size, and at most `max_share`
/// of the pixels differing by more than a small drawing difference. `GANTRY_BLESS=1` rewrites the reference after
/// an intended change of the picture. Returns the reference's RGB pixels, for checks of what it shows.
pub fn assert_matches_reference(png: &[u8], name: &str, max_share: f64) -> Vec<u8> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/data")
        .join(name);
    if std::env::var_os("GANTRY_BLESS").is_some() {
        std::fs::write(&path, png).unwrap();
    }
    let reference = std::fs::read(&path).unwrap_or_else(|_| panic!("tests/data/{name} (GANTRY_BLESS=1 writes it)"));
    let (width, height, expected) = decode_png(&reference);
    let (actual_width, actual_height, actual) = decode_png(png);
    assert_eq!((actual_width, actual_height), (width, height));
    let differing = expected
        .chunks(3)
        .zip(actual.chunks(3))
        .filter(|(a, b)| a.iter().zip(b.iter()).any(|(x, y)| x.abs_diff(*y) > 40))
        .count();
    let share = differing as f64 / f64::from(width * height);
    assert!(
        share <= max_share,
        "{differing} pixels ({:.2} %) differ from tests/data/{name}",
        share * 100.0
    );
    expected
}
