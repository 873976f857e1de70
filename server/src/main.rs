//! `gantry`: the command line. Parses arguments, loads configuration, and hands over to the library.

use std::io::BufRead;
use std::process::ExitCode;
use std::sync::Arc;

use app::auth::{Actor, NewToken, NewUser, Role};
use app::services::{DevicesService, ModelService};
use clap::Parser;
use server::{
    assets::Model,
    auth::Accounts,
    charts::Dashboards,
    cli::{
        human_time, Cli, Command, CommonArgs, DeviceCommand, DeviceCreateArgs, DeviceTokenCommand,
        DeviceTokenCreateArgs, ListArgs, ModelCommand, ModelExportArgs, ModelImportArgs, SearchCommand,
        SearchReindexArgs, ServeArgs, StressArgs, TimeseriesCommand, TokenCommand, TokenCreateArgs, UserCommand,
        UserCreateArgs,
    },
    config::Config,
    metadata,
    startup::Application,
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command.unwrap_or_else(|| Command::Serve(ServeArgs::default())) {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::CheckConfig(args) => check_config(args),
        Command::User(UserCommand::Create(args)) => create_user(args).await,
        Command::User(UserCommand::List(args)) => list_users(args).await,
        Command::Token(TokenCommand::Create(args)) => create_token(args).await,
        Command::Model(ModelCommand::Export(args)) => export_model(args).await,
        Command::Model(ModelCommand::Import(args)) => import_model(args).await,
        Command::Timeseries(TimeseriesCommand::Stress(args)) => stress(args).await,
        Command::Search(SearchCommand::Reindex(args)) => reindex_search(args).await,
        Command::Device(DeviceCommand::Create(args)) => create_device(args).await,
        Command::Device(DeviceCommand::List(args)) => list_devices(args).await,
        Command::Device(DeviceCommand::Token(DeviceTokenCommand::Create(args))) => create_device_token(args).await,
        Command::Version(_) => {
            println!("gantry {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(args.listen, args.role)?;
    telemetry::init(&config.log);
    let app = Application::build(config).await?;
    let url = format!("http://{}", app.address());
    tracing::info!(%url, "Gantry is listening.");
    if args.demo {
        let (username, password, admin) = app.accounts().ensure_demo_admin().await?;
        let created = app.model().seed_demo(&admin).await?;
        app.reports().seed_demo(&admin).await?;
        tracing::info!(created, "The demo plant is ready.");
        let (devices, history) = server::ingest::demo::start(
            app.model(),
            app.devices(),
            app.alarms(),
            admin,
            url.clone(),
            app.shutdown_token(),
        )
        .await?;
        tracing::info!(devices, "Filling in the demo plant's last day…");
        // The simulator posts through the server itself: serve while it fills in the day, and send people to it
        // only once the plant looks as a well-run shift left it.
        let server = tokio::spawn(app.run_until_stopped());
        if history.await.is_ok() {
            tracing::info!(devices, "Simulated devices are sending readings every second.");
        }
        // Printed once, to the terminal that started the demo; never logged.
        println!(
            "Gantry is running. Open {url} in your browser and sign in as {username:?} with password {password:?}."
        );
        return server.await?;
    } else {
        app.announce_setup_if_needed().await?;
        println!("Gantry is running. Open {url} in your browser.");
    }
    app.run_until_stopped().await
}

async fn migrate(args: CommonArgs) -> anyhow::Result<()> {
    let config = args.load_config(None, None)?;
    telemetry::init(&config.log);
    let store = metadata::connect(&config.database, &config.data_dir).await?.metadata();
    store.migrate().await?;
    store.close().await;
    println!("The {} metadata database is up to date.", store.backend());
    Ok(())
}

/// The accounts service on the configured, migrated metadata database, for commands that run without a server.
async fn accounts(config: &Config) -> anyhow::Result<Accounts> {
    let database = metadata::connect(&config.database, &config.data_dir).await?;
    database.metadata().migrate().await?;
    Ok(Accounts::new(
        database.auth_store(),
        config.auth.login_failures_per_minute,
        config.sessions.absolute_timeout(),
    ))
}

async fn create_user(args: UserCreateArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let role = if args.admin {
        Role::Admin
    } else {
        Role::parse(&args.role)?
    };
    let password = match std::env::var("GANTRY_PASSWORD") {
        Ok(password) => password,
        Err(_) => {
            eprintln!("Password for {} (one line on standard input):", args.username);
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let user = NewUser {
        display_name: args.display_name.unwrap_or_else(|| args.username.clone()),
        username: args.username,
        password,
        role,
        grants: Vec::new(),
        whole_plant: None,
    };
    let created = accounts(&config).await?.create_user_from_cli(user).await?;
    println!(
        "Created {} ({}) with id {}.",
        created.username,
        created.role.as_str(),
        created.id
    );
    Ok(())
}

async fn list_users(args: ListArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let users = accounts(&config).await?.list_users_from_cli().await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&users)?);
        return Ok(());
    }
    let (now, zone) = (metadata::now_ms(), jiff::tz::TimeZone::system());
    for user in users {
        let status = if user.enabled { "active" } else { "disabled" };
        let last = user.last_login_at_ms.map_or("never signed in".to_string(), |ms| {
            format!("signed in {}", human_time(ms, now, &zone))
        });
        println!(
            "{}\t{}\t{}\t{status}\t{last}",
            user.id,
            user.username,
            user.role.as_str()
        );
    }
    Ok(())
}

async fn create_token(args: TokenCreateArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let expires_at_ms = args
        .expires
        .map(|days| metadata::now_ms() + i64::from(days) * 86_400_000);
    let token = NewToken {
        name: args.name,
        expires_at_ms,
    };
    let created = accounts(&config)
        .await?
        .create_token_from_cli(&args.user, token)
        .await?;
    // The token alone on stdout, so scripts can capture it; everything else goes to stderr.
    println!("{}", created.secret);
    Ok(())
}

fn check_config(args: CommonArgs) -> anyhow::Result<()> {
    let config = args.load_config(None, None)?;
    println!("{config:#?}");
    println!("The configuration is valid.");
    Ok(())
}

/// The model service on the configured, migrated metadata database, for commands that run without a server.
async fn model(config: &Config) -> anyhow::Result<Model> {
    let database = metadata::connect(&config.database, &config.data_dir).await?;
    database.metadata().migrate().await?;
    let accounts = Accounts::new(
        database.auth_store(),
        config.auth.login_failures_per_minute,
        config.sessions.absolute_timeout(),
    );
    let dashboards = Arc::new(Dashboards::new(database.dashboard_store(), accounts.audit_handle()));
    Ok(Model::open(&database, accounts.audit_handle(), dashboards))
}

async fn export_model(args: ModelExportArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let yaml = model(&config)
        .await?
        .export(&Actor::command_line(), args.subtree.as_deref())
        .await?;
    match args.output {
        Some(path) => std::fs::write(&path, yaml)?,
        None => print!("{yaml}"),
    }
    Ok(())
}

async fn import_model(args: ModelImportArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let text = std::fs::read_to_string(&args.file)
        .map_err(|e| anyhow::anyhow!("could not read {}: {e}", args.file.display()))?;
    // Large imports say how far they are, every thousand items, on stderr.
    let progress = |done: usize, total: usize| {
        if done.is_multiple_of(1000) || done == total {
            eprintln!("{done}/{total} items");
        }
    };
    let report = model(&config)
        .await?
        .import(&Actor::command_line(), &text, args.dry_run, &progress)
        .await?;
    for change in &report.changes {
        println!("{change}");
    }
    let verb = if report.dry_run { "would make" } else { "made" };
    eprintln!("The import {verb} {} changes.", report.changes.len());
    Ok(())
}

async fn reindex_search(args: SearchReindexArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let show = args.progress;
    let progress = Arc::new(move |done: usize, total: usize| {
        if show {
            eprintln!("{done}/{total} documents");
        }
    });
    let started = std::time::Instant::now();
    match server::search::reindex(&config, progress).await? {
        Some(documents) => eprintln!(
            "The search index holds {documents} documents (built in {:.1} s); running instances rebuild theirs.",
            started.elapsed().as_secs_f64()
        ),
        None => eprintln!(
            "A running gantry serve holds this data dir's search index: it rebuilds it now, as does every other \
             running instance (progress is in their logs)."
        ),
    }
    Ok(())
}

async fn stress(args: StressArgs) -> anyhow::Result<()> {
    use server::timeseries::{
        embedded::{synthetic_batch, EmbeddedOptions, EmbeddedStore},
        TimeSeriesStore,
    };
    use std::io::Write;
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let store = EmbeddedStore::open(&config.data_dir, EmbeddedOptions::default())?;
    let mut stdout = std::io::stdout().lock();
    let mut batch = args.start;
    while args.batches == 0 || batch < args.start + args.batches {
        store.write(synthetic_batch(batch, args.series, args.seconds)).await?;
        writeln!(stdout, "acked {batch}")?;
        stdout.flush()?;
        batch += 1;
    }
    Ok(())
}

/// The devices service on the configured, migrated metadata database, for commands that run without a server.
async fn devices(config: &Config) -> anyhow::Result<server::devices::Devices> {
    let database = metadata::connect(&config.database, &config.data_dir).await?;
    database.metadata().migrate().await?;
    let accounts = Accounts::new(
        database.auth_store(),
        config.auth.login_failures_per_minute,
        config.sessions.absolute_timeout(),
    );
    let dashboards = Arc::new(Dashboards::new(database.dashboard_store(), accounts.audit_handle()));
    let model = Arc::new(Model::open(&database, accounts.audit_handle(), dashboards));
    Ok(server::devices::Devices::new(
        database.device_store(),
        model,
        accounts.audit_handle(),
    ))
}

async fn create_device(args: DeviceCreateArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let device = devices(&config).await?.create_from_cli(&args.name, &args.asset).await?;
    eprintln!(
        "Created device {} (id {}) on {}.",
        device.name, device.id, device.asset_path
    );
    Ok(())
}

async fn list_devices(args: ListArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let devices = devices(&config).await?.list(&Actor::command_line()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&devices)?);
        return Ok(());
    }
    let (now, zone) = (metadata::now_ms(), jiff::tz::TimeZone::system());
    for device in devices {
        let seen = device
            .last_seen_at
            .map_or("never".to_string(), |ms| human_time(ms, now, &zone));
        println!(
            "{}\t{}\t{}\tlast seen {seen}",
            device.id, device.name, device.asset_path
        );
    }
    Ok(())
}

async fn create_device_token(args: DeviceTokenCreateArgs) -> anyhow::Result<()> {
    let config = args.common.load_config(None, None)?;
    telemetry::init(&config.log);
    let created = devices(&config)
        .await?
        .create_token_from_cli(&args.device, &args.name)
        .await?;
    println!("{}", created.secret);
    Ok(())
}
