//! The `gantry` command line. Every subcommand takes `--config` and `--data-dir`, so an installation is addressed
//! the same way whatever one does with it.

use std::{net::SocketAddr, path::PathBuf};

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, ConfigError, Overrides, Role};

#[derive(Debug, Parser)]
#[command(name = "gantry", version, about = "Gantry: an industrial data platform.")]
pub struct Cli {
    /// Without a subcommand, `gantry` serves with the defaults (so `cargo run` and `cargo leptos watch` just work).
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start the server.
    Serve(ServeArgs),
    /// Apply pending metadata database migrations, then exit.
    Migrate(CommonArgs),
    /// Load and validate the configuration, print it with secrets redacted, then exit.
    CheckConfig(CommonArgs),
    /// Print the version. Takes the common options too, so scripts can pass the same flags to every subcommand.
    Version(CommonArgs),
    /// Manage user accounts.
    #[command(subcommand)]
    User(UserCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Move the plant model in and out as a YAML file.
    #[command(subcommand)]
    Model(ModelCommand),
    /// Manage devices and their tokens (for provisioning scripts).
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Inspect and exercise the embedded time-series store.
    #[command(subcommand)]
    Timeseries(TimeseriesCommand),
    /// Manage the search index.
    #[command(subcommand)]
    Search(SearchCommand),
}

#[derive(Debug, Subcommand)]
pub enum SearchCommand {
    /// Rebuild the search index from the metadata database: every running instance rebuilds its own (told through
    /// the change feed), and this data dir's index is rebuilt here when no `gantry serve` holds it.
    Reindex(SearchReindexArgs),
}

#[derive(Debug, Clone, Args)]
pub struct SearchReindexArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print how far the build is on standard error.
    #[arg(long)]
    pub progress: bool,
}

#[derive(Debug, Subcommand)]
pub enum DeviceCommand {
    /// Create a device bound to the asset at PATH.
    Create(DeviceCreateArgs),
    /// List devices with their assets and last-seen times.
    List(ListArgs),
    /// Token commands.
    #[command(subcommand)]
    Token(DeviceTokenCommand),
}

#[derive(Debug, Subcommand)]
pub enum DeviceTokenCommand {
    /// Create a token for a device and print it, alone, on standard output (it is shown once).
    Create(DeviceTokenCreateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct DeviceCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The device name (letters, digits and - _ . :).
    pub name: String,
    /// The asset's path, such as "/North Plant/Line 1/Pump 2".
    #[arg(long, value_name = "PATH")]
    pub asset: String,
}

#[derive(Debug, Clone, Args)]
pub struct DeviceTokenCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The device's name.
    pub device: String,
    /// A name for the token, to tell tokens apart when rotating.
    #[arg(long, default_value = "cli")]
    pub name: String,
}

#[derive(Debug, Subcommand)]
pub enum TimeseriesCommand {
    /// Write synthetic readings to the embedded store in the data dir, printing `acked N` once batch N is durable
    /// (crash tests and quick checks; Gantry must not be running on the same data dir).
    Stress(StressArgs),
}

#[derive(Debug, Clone, Args)]
pub struct StressArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Series per batch.
    #[arg(long, default_value_t = 100)]
    pub series: i64,
    /// Readings per series per batch (one a second).
    #[arg(long, default_value_t = 10)]
    pub seconds: i64,
    /// The number of the first batch; batch N covers seconds N×seconds onwards.
    #[arg(long, default_value_t = 0)]
    pub start: i64,
    /// How many batches to write (0: until stopped).
    #[arg(long, default_value_t = 0)]
    pub batches: i64,
}

#[derive(Debug, Subcommand)]
pub enum ModelCommand {
    /// Write the model (or a subtree) as YAML to standard output or a file.
    Export(ModelExportArgs),
    /// Read a model file and apply it, matching templates by name and assets by path.
    Import(ModelImportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct ModelExportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only the subtree at this path, such as "/North Plant/Line 1".
    #[arg(long, value_name = "PATH")]
    pub subtree: Option<String>,
    /// Write to this file instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct ModelImportArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The model file.
    pub file: PathBuf,
    /// Print the changes the import would make, and make none.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user. The password comes from GANTRY_PASSWORD, or else the first line of standard input.
    Create(UserCreateArgs),
    /// List users with their roles and last sign-in.
    List(ListArgs),
}

#[derive(Debug, Clone, Args)]
pub struct UserCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// The username (letters, digits, '.', '_', '-', '@').
    pub username: String,
    /// Make the user an administrator (same as --role admin).
    #[arg(long, conflicts_with = "role")]
    pub admin: bool,
    /// admin, engineer, operator or viewer.
    #[arg(long, default_value = "viewer")]
    pub role: String,
    /// The name shown in the UI; defaults to the username.
    #[arg(long)]
    pub display_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for a user and print it, alone, on standard output.
    Create(TokenCreateArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TokenCreateArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Whose token it is.
    #[arg(long)]
    pub user: String,
    /// A name to tell the token apart.
    #[arg(long, default_value = "command line")]
    pub name: String,
    /// Days until the token expires; without it the token does not expire.
    #[arg(long, value_name = "DAYS")]
    pub expires: Option<u32>,
}

/// Options every subcommand that touches an installation takes.
#[derive(Debug, Clone, Default, Args)]
pub struct CommonArgs {
    /// A TOML configuration file (see config/gantry.example.toml).
    #[arg(long, env = "GANTRY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Where embedded stores keep their files; overrides `data_dir` in the configuration.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The options of every list command.
#[derive(Debug, Clone, Default, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Print the list as one JSON array (times as milliseconds UTC), for scripts.
    #[arg(long)]
    pub json: bool,
}

/// An instant as people read it, in this machine's time zone (`TZ`, else the system's):
/// `2026-12-03 23:40:12 CET (3 min ago)`.
pub fn human_time(ms: i64, now_ms: i64, zone: &jiff::tz::TimeZone) -> String {
    let Ok(instant) = jiff::Timestamp::from_millisecond(ms) else {
        return ms.to_string();
    };
    let shown = instant
        .to_zoned(zone.clone())
        .strftime("%Y-%m-%d %H:%M:%S %Z")
        .to_string();
    let ago = (now_ms - ms) / 1000;
    let relative = match ago {
        i64::MIN..=-1 => "in the future".to_string(),
        0..=59 => "just now".to_string(),
        60..=3_599 => format!("{} min ago", ago / 60),
        3_600..=86_399 => format!("{} h ago", ago / 3_600),
        _ => format!("{} days ago", ago / 86_400),
    };
    format!("{shown} ({relative})")
}

#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Address to listen on, such as 127.0.0.1:3000 or 0.0.0.0:8080; overrides `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    /// Which parts to serve; overrides `server.role`.
    #[arg(long, value_enum)]
    pub role: Option<Role>,
    /// Seed a demonstration plant on first start.
    #[arg(long)]
    pub demo: bool,
}

impl CommonArgs {
    pub fn load_config(&self, listen: Option<SocketAddr>, role: Option<Role>) -> Result<Config, ConfigError> {
        let overrides = Overrides {
            data_dir: self.data_dir.clone(),
            listen,
            role,
        };
        Config::load(self.config.as_deref(), &overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn times_read_as_people_read_them() {
        let utc = jiff::tz::TimeZone::UTC;
        let at = 1_795_323_732_032; // 2026-11-22 05:02:12 UTC
        assert_eq!(human_time(at, at + 30_000, &utc), "2026-11-22 05:02:12 UTC (just now)");
        assert_eq!(
            human_time(at, at + 3 * 60_000, &utc),
            "2026-11-22 05:02:12 UTC (3 min ago)"
        );
        assert_eq!(
            human_time(at, at + 5 * 86_400_000, &utc),
            "2026-11-22 05:02:12 UTC (5 days ago)"
        );
        let berlin = jiff::tz::TimeZone::get("Europe/Berlin").unwrap();
        assert_eq!(human_time(at, at, &berlin), "2026-11-22 06:02:12 CET (just now)");
        assert_eq!(
            human_time(at - 150 * 86_400_000, at, &berlin),
            "2026-06-25 07:02:12 CEST (150 days ago)"
        );
    }

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn serve_takes_every_documented_flag() {
        let cli = Cli::try_parse_from([
            "gantry",
            "serve",
            "--config",
            "g.toml",
            "--data-dir",
            "/tmp/d",
            "--listen",
            "0.0.0.0:8080",
            "--role",
            "ingest",
            "--demo",
        ])
        .unwrap();
        let Some(Command::Serve(args)) = cli.command else {
            panic!("expected serve")
        };
        assert_eq!(args.common.config.as_deref(), Some(std::path::Path::new("g.toml")));
        assert_eq!(args.common.data_dir.as_deref(), Some(std::path::Path::new("/tmp/d")));
        assert_eq!(args.listen, Some("0.0.0.0:8080".parse().unwrap()));
        assert_eq!(args.role, Some(Role::Ingest));
        assert!(args.demo);
    }

    #[test]
    fn no_subcommand_means_serve() {
        assert!(Cli::try_parse_from(["gantry"]).unwrap().command.is_none());
    }

    #[test]
    fn bad_role_is_refused() {
        let err = Cli::try_parse_from(["gantry", "serve", "--role", "everything"]).unwrap_err();
        assert!(err.to_string().contains("everything"), "{err}");
    }
}
