//! Configuration: built-in defaults, then a TOML file, then `GANTRY__SECTION__KEY` environment variables, then
//! command-line flags, each layer overriding the one before. Unknown keys are errors that name the key; secrets are
//! [`SecretString`]s, redacted in `Debug` and therefore in logs.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use figment::{
    providers::{Env, Format, Toml},
    Figment,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

/// The prefix of configuration environment variables; `__` separates the section from the key.
pub const ENV_PREFIX: &str = "GANTRY__";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where the embedded stores keep their files (SQLite metadata, time series, search index, reports).
    pub data_dir: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub sessions: SessionsConfig,
    pub auth: AuthConfig,
    pub timeseries: TimeseriesConfig,
    pub ingest: IngestConfig,
    pub mqtt: MqttConfig,
    pub alarms: AlarmsConfig,
    pub reports: ReportsConfig,
    pub cluster: ClusterConfig,
    pub log: LogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("data"),
            server: ServerConfig::default(),
            database: DatabaseConfig::default(),
            sessions: SessionsConfig::default(),
            auth: AuthConfig::default(),
            timeseries: TimeseriesConfig::default(),
            ingest: IngestConfig::default(),
            mqtt: MqttConfig::default(),
            alarms: AlarmsConfig::default(),
            reports: ReportsConfig::default(),
            cluster: ClusterConfig::default(),
            log: LogConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address and port to listen on.
    pub listen: SocketAddr,
    /// The address people and devices use to reach Gantry (behind a gateway, the gateway's address). Decides the
    /// origin that state-changing browser requests must come from and whether cookies are marked `Secure`.
    pub public_url: Option<String>,
    /// Which parts this instance serves: `all`, `web` (UI and REST API) or `ingest` (device data only).
    pub role: Role,
    /// After SIGTERM, how long readiness answers 503 before the listener stops accepting, so a gateway can take
    /// the instance out of rotation first.
    pub shutdown_drain_secs: u64,
    /// The longest a graceful shutdown may take before in-flight requests are abandoned (the whole stop stays
    /// under 30 s).
    pub shutdown_timeout_secs: u64,
    /// Where the browser bundle (`pkg/gantry.js`, `pkg/gantry_bg.wasm`, `pkg/gantry.css`) lives; by default the
    /// `site` folder beside the binary, or the workspace's `target/site` when run from a source checkout.
    pub site_dir: Option<PathBuf>,
    /// Gateways (addresses or networks) whose `X-Forwarded-For` names the client; from anyone else the header is
    /// ignored. Behind nginx, its address, so the login throttle and the audit log see each client apart.
    /// Each entry is an address (`10.0.0.5`) or a network (`10.0.0.0/24`).
    pub trusted_proxies: Vec<String>,
    /// The longest a request may take until its response starts (streams such as live feeds then run on);
    /// beyond it the request is abandoned with 503.
    pub request_timeout_secs: u64,
    /// Requests served at once; more get 503 with `Retry-After` at once instead of queueing.
    pub max_concurrent_requests: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            public_url: None,
            role: Role::All,
            shutdown_drain_secs: 2,
            shutdown_timeout_secs: 25,
            site_dir: None,
            trusted_proxies: Vec::new(),
            request_timeout_secs: 30,
            max_concurrent_requests: 1024,
        }
    }
}

impl ServerConfig {
    pub fn shutdown_drain(&self) -> Duration {
        Duration::from_secs(self.shutdown_drain_secs)
    }

    pub fn shutdown_timeout(&self) -> Duration {
        Duration::from_secs(self.shutdown_timeout_secs)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// `trusted_proxies` as networks (a bare address is a network of one).
    pub fn trusted_proxy_networks(&self) -> Result<Vec<ipnet::IpNet>, ConfigError> {
        self.trusted_proxies
            .iter()
            .map(|entry| {
                entry
                    .parse::<ipnet::IpNet>()
                    .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
                    .map_err(|_| {
                        ConfigError::Invalid(format!(
                            "server.trusted_proxies: {entry:?} is neither an IP address nor a network such as 10.0.0.0/24"
                        ))
                    })
            })
            .collect()
    }
}

/// The parts of Gantry an instance serves (brief §2: ingestion may run on its own nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    #[default]
    All,
    Web,
    Ingest,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::All => "all",
            Role::Web => "web",
            Role::Ingest => "ingest",
        }
    }

    pub fn serves_web(self) -> bool {
        matches!(self, Role::All | Role::Web)
    }

    pub fn serves_ingest(self) -> bool {
        matches!(self, Role::All | Role::Ingest)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host/db` for PostgreSQL (the HA form); unset means a SQLite file in the data dir.
    /// A secret: it may carry a password.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: Option<SecretString>,
    /// Most connections the pool opens.
    pub max_connections: u32,
    /// How long a request waits for a free connection before answering 503.
    pub acquire_timeout_secs: u64,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig {
            url: None,
            max_connections: 8,
            acquire_timeout_secs: 5,
        }
    }
}

impl DatabaseConfig {
    pub fn acquire_timeout(&self) -> Duration {
        Duration::from_secs(self.acquire_timeout_secs)
    }

    /// The database kind this configuration selects.
    pub fn kind(&self) -> DatabaseKind {
        match &self.url {
            None => DatabaseKind::Sqlite,
            Some(url) if url.expose_secret().starts_with("sqlite:") => DatabaseKind::Sqlite,
            Some(_) => DatabaseKind::Postgres,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatabaseKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// `redis://host:6379/0` keeps sessions in Redis (the HA form). Unset: in the metadata database. A secret.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: Option<SecretString>,
    /// A session ends after this many minutes without a request.
    pub idle_timeout_mins: u32,
    /// A session ends this many hours after sign-in, however active.
    pub absolute_timeout_hours: u32,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        SessionsConfig {
            redis_url: None,
            idle_timeout_mins: 8 * 60,
            absolute_timeout_hours: 24,
        }
    }
}

/// What instances share besides the metadata database.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// `redis://host:6379/0` carries live events (alarm events, live chart readings) between instances, so a
    /// browser sees what happened on any of them. Unset: in-process, for a single instance. A secret.
    #[serde(serialize_with = "serialize_redacted")]
    pub redis_url: Option<SecretString>,
    /// The prefix of Gantry's pub/sub channels, so several installations can share one Redis.
    pub channel_prefix: String,
    /// This instance's name in the cluster's leases (who holds which alarm partition, retention). Unset: made
    /// from the host name and process id (`local` on SQLite, which has one server process).
    pub instance_name: Option<String>,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            redis_url: None,
            channel_prefix: "gantry".into(),
            instance_name: None,
        }
    }
}

impl SessionsConfig {
    pub fn absolute_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.absolute_timeout_hours) * 3600)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Failed sign-ins allowed per minute for one account from one client; the next answers 429.
    pub login_failures_per_minute: u32,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            login_failures_per_minute: 10,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TimeseriesConfig {
    /// `embedded` (a store in the data dir, the single-instance default) or `tdengine` (the HA form).
    pub kind: TimeseriesKind,
    /// How long each resolution is kept unless an attribute's retention tier says otherwise.
    pub retention: TierConfig,
    /// Named retention tiers that attribute templates refer to with `retention_tier`.
    pub tiers: std::collections::BTreeMap<String, TierConfig>,
    /// Minutes between retention passes.
    pub retention_interval_mins: u32,
    pub tdengine: TdengineConfig,
}

impl Default for TimeseriesConfig {
    fn default() -> Self {
        TimeseriesConfig {
            kind: TimeseriesKind::Embedded,
            retention: TierConfig::default(),
            tiers: Default::default(),
            retention_interval_mins: 60,
            tdengine: TdengineConfig::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeseriesKind {
    Embedded,
    Tdengine,
}

/// Days each resolution is kept; 0 keeps it forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TierConfig {
    pub raw_days: u32,
    pub minute_days: u32,
    pub hour_days: u32,
}

impl Default for TierConfig {
    fn default() -> Self {
        TierConfig {
            raw_days: 90,
            minute_days: 730,
            hour_days: 0,
        }
    }
}

impl TierConfig {
    pub fn retention(&self) -> crate::timeseries::TierRetention {
        let ms = |days: u32| (days > 0).then_some(i64::from(days) * crate::timeseries::DAY_MS);
        crate::timeseries::TierRetention {
            raw_ms: ms(self.raw_days),
            minute_ms: ms(self.minute_days),
            hour_ms: ms(self.hour_days),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TdengineConfig {
    /// The primary endpoint: `ws://host:6041` (taosAdapter) or `taos://host:6030` (native client, loaded at run
    /// time). A secret: it may carry a password.
    #[serde(serialize_with = "serialize_redacted")]
    pub dsn: Option<SecretString>,
    /// The endpoint to fail over to when the primary is lost. A secret.
    #[serde(serialize_with = "serialize_redacted")]
    pub secondary_dsn: Option<SecretString>,
    /// The database Gantry creates and writes to.
    pub database: String,
    /// Milliseconds between reconnection attempts.
    pub reconnect_interval_ms: u64,
    /// Attempts per endpoint before a call fails with 503.
    pub retry_count: u32,
}

impl Default for TdengineConfig {
    fn default() -> Self {
        TdengineConfig {
            dsn: None,
            secondary_dsn: None,
            database: "gantry".into(),
            reconnect_interval_ms: 2000,
            retry_count: 3,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct IngestConfig {
    /// Largest request body accepted (413 above), as sent (compressed or not).
    pub max_body_bytes: usize,
    /// Largest body after gzip decompression (413 above).
    pub max_decompressed_bytes: usize,
    /// Readings waiting to be stored, across all requests, before new ones are answered 503 with Retry-After.
    pub queue_readings: usize,
    /// Most readings written to the store as one batch.
    pub max_batch: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            max_body_bytes: 16 * 1024 * 1024,
            max_decompressed_bytes: 64 * 1024 * 1024,
            queue_readings: 1_000_000,
            max_batch: 50_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmsConfig {
    /// The wait before a failed webhook delivery is retried; it doubles with each further failure (up to 10 min).
    pub webhook_retry_ms: u64,
    /// Attempts per delivery before it is marked failed in the delivery log.
    pub webhook_max_attempts: u32,
    /// How long one webhook request may take.
    pub webhook_timeout_ms: u64,
}

impl Default for AlarmsConfig {
    fn default() -> Self {
        AlarmsConfig {
            webhook_retry_ms: 1_000,
            webhook_max_attempts: 10,
            webhook_timeout_ms: 10_000,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReportsConfig {
    /// Where report runs keep their files, a folder per run. Unset: `reports` in the data dir. With several
    /// instances, a folder they all share (any instance may be asked for a file another wrote).
    pub files_dir: Option<PathBuf>,
    /// How long a finished run and its files are kept.
    pub keep_days: u32,
    /// Attempts per run before it is marked failed.
    pub max_attempts: u32,
    /// The wait before a failed attempt is retried; it doubles with each further failure (up to an hour).
    pub retry_ms: u64,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig {
            files_dir: None,
            keep_days: 30,
            max_attempts: 3,
            retry_ms: 30_000,
        }
    }
}

impl ReportsConfig {
    pub fn files_dir(&self, data_dir: &Path) -> PathBuf {
        self.files_dir.clone().unwrap_or_else(|| data_dir.join("reports"))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MqttConfig {
    /// `mqtt://host:1883` (optionally `mqtt://user:password@host:1883`): Gantry subscribes to device telemetry
    /// there. Unset: no MQTT. A secret.
    #[serde(serialize_with = "serialize_redacted")]
    pub url: Option<SecretString>,
    /// The client id, which names Gantry's persistent session at the broker: unique per Gantry instance.
    pub client_id: String,
    /// The subscription; `+` stands for the device name.
    pub topic: String,
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: None,
            client_id: "gantry".into(),
            topic: "gantry/+/telemetry".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogConfig {
    /// `pretty` for people at a terminal, `json` for log collectors.
    pub format: LogFormat,
    /// A tracing filter: `info`, or per module such as `info,server::metadata=debug`. `RUST_LOG` overrides it.
    pub level: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            format: LogFormat::Pretty,
            level: "info".to_string(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub data_dir: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub role: Option<Role>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the configuration file {0} does not exist")]
    MissingFile(PathBuf),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// The defaults, with data in `data_dir`, listening on a free loopback port and stopping without a drain:
    /// what tests and benchmarks run.
    pub fn ephemeral(data_dir: &Path) -> Config {
        Config {
            data_dir: data_dir.to_path_buf(),
            server: ServerConfig {
                listen: SocketAddr::from(([127, 0, 0, 1], 0)),
                shutdown_drain_secs: 0,
                ..ServerConfig::default()
            },
            ..Config::default()
        }
    }

    /// Loads the layers in order: defaults, `file`, the environment, `overrides`.
    pub fn load(file: Option<&Path>, overrides: &Overrides) -> Result<Config, ConfigError> {
        let mut figment = Figment::new();
        if let Some(file) = file {
            // figment quietly skips a missing file; a path someone typed must exist.
            if !file.is_file() {
                return Err(ConfigError::MissingFile(file.to_path_buf()));
            }
            figment = figment.merge(Toml::file_exact(file));
        }
        // `GANTRY__SERVER__LISTEN` → `server.listen`; `GANTRY__DATA_DIR` → `data_dir`.
        figment = figment.merge(Env::prefixed(ENV_PREFIX).split("__"));
        if let Some(dir) = &overrides.data_dir {
            figment = figment.merge(("data_dir", dir));
        }
        if let Some(listen) = overrides.listen {
            figment = figment.merge(("server.listen", listen.to_string()));
        }
        if let Some(role) = overrides.role {
            figment = figment.merge(("server.role", role.as_str()));
        }
        let config: Config = figment.extract().map_err(|err| ConfigError::Invalid(describe(err)))?;
        config.validate()?;
        Ok(config)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if let Some(url) = &self.server.public_url {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(ConfigError::Invalid(format!(
                    "server.public_url must start with http:// or https://, got {url:?}"
                )));
            }
        }
        if let Some(url) = &self.database.url {
            let url = url.expose_secret();
            if !["postgres://", "postgresql://", "sqlite:"]
                .iter()
                .any(|p| url.starts_with(p))
            {
                return Err(ConfigError::Invalid(
                    "database.url must start with postgres://, postgresql:// or sqlite:".into(),
                ));
            }
        }
        for (key, url) in [
            ("sessions.redis_url", &self.sessions.redis_url),
            ("cluster.redis_url", &self.cluster.redis_url),
        ] {
            if let Some(url) = url {
                let url = url.expose_secret();
                if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
                    return Err(ConfigError::Invalid(format!(
                        "{key} must start with redis:// or rediss://"
                    )));
                }
            }
        }
        if self.cluster.channel_prefix.is_empty() || self.cluster.channel_prefix.chars().any(char::is_whitespace) {
            return Err(ConfigError::Invalid(
                "cluster.channel_prefix is a non-empty name without spaces".into(),
            ));
        }
        if self.sessions.idle_timeout_mins == 0 || self.sessions.absolute_timeout_hours == 0 {
            return Err(ConfigError::Invalid(
                "sessions.idle_timeout_mins and sessions.absolute_timeout_hours must be at least 1".into(),
            ));
        }
        self.server.trusted_proxy_networks()?;
        if self.server.request_timeout_secs == 0 || self.server.max_concurrent_requests == 0 {
            return Err(ConfigError::Invalid(
                "server.request_timeout_secs and server.max_concurrent_requests must be at least 1".into(),
            ));
        }
        if self.auth.login_failures_per_minute == 0 {
            return Err(ConfigError::Invalid(
                "auth.login_failures_per_minute must be at least 1".into(),
            ));
        }
        if self.database.max_connections == 0 {
            return Err(ConfigError::Invalid(
                "database.max_connections must be at least 1".into(),
            ));
        }
        let ts = &self.timeseries;
        if ts.kind == TimeseriesKind::Tdengine && ts.tdengine.dsn.is_none() {
            return Err(ConfigError::Invalid(
                "timeseries.kind = \"tdengine\" needs timeseries.tdengine.dsn".into(),
            ));
        }
        for dsn in [&ts.tdengine.dsn, &ts.tdengine.secondary_dsn].into_iter().flatten() {
            let dsn = dsn.expose_secret();
            if !["ws://", "wss://", "taos://", "taosws://"]
                .iter()
                .any(|p| dsn.starts_with(p))
            {
                return Err(ConfigError::Invalid(
                    "timeseries.tdengine.dsn and secondary_dsn must start with ws://, wss://, taos:// or taosws://"
                        .into(),
                ));
            }
        }
        if !crate::timeseries::tdengine::is_identifier(&ts.tdengine.database) {
            return Err(ConfigError::Invalid(format!(
                "timeseries.tdengine.database must be letters, digits and underscores, starting with a letter; got {:?}",
                ts.tdengine.database
            )));
        }
        if let Some(url) = &self.mqtt.url {
            if !url.expose_secret().starts_with("mqtt://") {
                return Err(ConfigError::Invalid("mqtt.url must start with mqtt://".into()));
            }
        }
        if self.ingest.queue_readings == 0 || self.ingest.max_batch == 0 || self.ingest.max_body_bytes == 0 {
            return Err(ConfigError::Invalid(
                "ingest.queue_readings, ingest.max_batch and ingest.max_body_bytes must be at least 1".into(),
            ));
        }
        if ts.retention_interval_mins == 0 {
            return Err(ConfigError::Invalid(
                "timeseries.retention_interval_mins must be at least 1".into(),
            ));
        }
        if self.server.shutdown_drain_secs + self.server.shutdown_timeout_secs > 30 {
            return Err(ConfigError::Invalid(
                "server.shutdown_drain_secs + server.shutdown_timeout_secs must not exceed 30".into(),
            ));
        }
        Ok(())
    }

    /// Whether session cookies must be `Secure`: only when people reach Gantry over https.
    pub fn public_url_is_https(&self) -> bool {
        self.server
            .public_url
            .as_deref()
            .is_some_and(|url| url.starts_with("https://"))
    }
}

/// Secrets serialize as a marker, so a printed configuration shows that one is set but never what it is.
fn serialize_redacted<S: serde::Serializer>(secret: &Option<SecretString>, serializer: S) -> Result<S::Ok, S::Error> {
    secret.as_ref().map(|_| "[REDACTED]").serialize(serializer)
}

/// figment's errors list every problem with its key path; say them in one line each.
fn describe(err: figment::Error) -> String {
    err.into_iter()
        .map(|e| {
            let key = e.path.join(".");
            let source = e
                .metadata
                .as_ref()
                .and_then(|m| m.source.as_ref())
                .map(|s| format!(" (from {s})"))
                .unwrap_or_default();
            if key.is_empty() {
                format!("{}{source}", e.kind)
            } else {
                format!("{key}: {}{source}", e.kind)
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
// figment's `Jail` closures return its (large) error type; that is its API, not ours.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use figment::Jail;

    fn load(file: Option<&str>, overrides: &Overrides) -> Result<Config, ConfigError> {
        Config::load(file.map(Path::new), overrides)
    }

    #[test]
    fn no_configuration_gives_the_single_instance_defaults() {
        Jail::expect_with(|_| {
            let config = load(None, &Overrides::default()).unwrap();
            assert_eq!(config.server.listen, "127.0.0.1:3000".parse().unwrap());
            assert_eq!(config.data_dir, PathBuf::from("data"));
            assert_eq!(config.database.kind(), DatabaseKind::Sqlite);
            assert_eq!(config.server.role, Role::All);
            Ok(())
        });
    }

    #[test]
    fn layers_override_in_order_file_env_flags() {
        Jail::expect_with(|jail| {
            jail.create_file(
                "gantry.toml",
                "data_dir = \"/from/file\"\n[server]\nlisten = \"127.0.0.1:4000\"\nrole = \"web\"\n\
                 [log]\nlevel = \"debug\"\n",
            )?;
            jail.set_env("GANTRY__SERVER__LISTEN", "127.0.0.1:5000");
            jail.set_env("GANTRY__LOG__FORMAT", "json");
            let from_env = load(Some("gantry.toml"), &Overrides::default()).unwrap();
            assert_eq!(
                from_env.server.listen,
                "127.0.0.1:5000".parse().unwrap(),
                "env beats file"
            );
            assert_eq!(from_env.log.format, LogFormat::Json);
            assert_eq!(from_env.log.level, "debug", "file beats defaults");
            assert_eq!(from_env.server.role, Role::Web);

            let overrides = Overrides {
                data_dir: Some("/from/flag".into()),
                listen: Some("127.0.0.1:6000".parse().unwrap()),
                role: Some(Role::Ingest),
            };
            let from_flags = load(Some("gantry.toml"), &overrides).unwrap();
            assert_eq!(
                from_flags.server.listen,
                "127.0.0.1:6000".parse().unwrap(),
                "flags beat env"
            );
            assert_eq!(from_flags.data_dir, PathBuf::from("/from/flag"));
            assert_eq!(from_flags.server.role, Role::Ingest);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_key() {
        Jail::expect_with(|jail| {
            jail.create_file("gantry.toml", "[server]\nlistne = \"127.0.0.1:1\"\n")?;
            let err = load(Some("gantry.toml"), &Overrides::default())
                .unwrap_err()
                .to_string();
            assert!(err.contains("listne"), "{err}");

            jail.create_file("ok.toml", "")?;
            jail.set_env("GANTRY__DATABSE__URL", "postgres://x");
            let err = load(Some("ok.toml"), &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("databse"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn a_missing_file_is_an_error() {
        Jail::expect_with(|_| {
            let err = load(Some("nowhere.toml"), &Overrides::default()).unwrap_err();
            assert!(matches!(err, ConfigError::MissingFile(_)), "{err}");
            Ok(())
        });
    }

    #[test]
    fn bad_values_are_refused_with_the_key() {
        Jail::expect_with(|jail| {
            jail.set_env("GANTRY__SERVER__LISTEN", "not an address");
            let err = load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("server.listen"), "{err}");
            Ok(())
        });
        Jail::expect_with(|jail| {
            jail.set_env("GANTRY__DATABASE__URL", "mysql://nope");
            let err = load(None, &Overrides::default()).unwrap_err().to_string();
            assert!(err.contains("database.url"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn secrets_never_show_in_debug_or_serialized_output() {
        Jail::expect_with(|jail| {
            jail.set_env("GANTRY__DATABASE__URL", "postgres://gantry:hunter2@db/gantry");
            let config = load(None, &Overrides::default()).unwrap();
            assert_eq!(config.database.kind(), DatabaseKind::Postgres);
            let debug = format!("{config:?}");
            let json = serde_json::to_string(&config).unwrap();
            for shown in [debug, json] {
                assert!(!shown.contains("hunter2"), "{shown}");
                assert!(shown.contains("REDACTED"), "{shown}");
            }
            Ok(())
        });
    }

    fn example_path() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/gantry.example.toml")
    }

    #[test]
    fn the_example_file_loads_and_states_the_defaults() {
        Jail::expect_with(|_| {
            let example = Config::load(Some(&example_path()), &Overrides::default()).unwrap();
            let defaults = Config::default();
            assert_eq!(
                serde_json::to_value(&example).unwrap(),
                serde_json::to_value(&defaults).unwrap(),
                "the example's values must be the built-in defaults"
            );
            Ok(())
        });
    }

    #[test]
    fn the_example_file_documents_every_key() {
        let text = std::fs::read_to_string(example_path()).unwrap();
        // Which keys (set or commented out) appear under which `[section]`.
        let mut documented = std::collections::HashSet::new();
        let mut section = String::new();
        for line in text.lines().map(|l| l.trim().trim_start_matches('#').trim()) {
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = format!("{name}.");
            } else if let Some((key, _)) = line.split_once(" = ") {
                documented.insert(format!("{section}{key}"));
            }
        }
        // Every leaf key, at any depth; an empty table (named tiers) needs one documented example entry.
        fn check(value: &serde_json::Value, path: &str, documented: &std::collections::HashSet<String>) {
            match value.as_object() {
                Some(table) if table.is_empty() => assert!(
                    documented.iter().any(|key| key.starts_with(&format!("{path}."))),
                    "{path} has no example in the example file"
                ),
                Some(table) => {
                    for (key, inner) in table {
                        let inner_path = if path.is_empty() {
                            key.clone()
                        } else {
                            format!("{path}.{key}")
                        };
                        check(inner, &inner_path, documented);
                    }
                }
                None => assert!(documented.contains(path), "{path} is missing from the example file"),
            }
        }
        check(&serde_json::to_value(Config::default()).unwrap(), "", &documented);
    }
}
