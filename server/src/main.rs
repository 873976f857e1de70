//! `gantry`: the command line. Parses arguments, loads configuration, and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use server::{
    cli::{Cli, Command, CommonArgs, ServeArgs},
    metadata,
    startup::Application,
    telemetry,
};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => migrate(args).await,
        Command::CheckConfig(args) => check_config(args),
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
        // Seeding the demo plant arrives with the asset model; until then the flag only announces the address.
        tracing::info!(
            "Demo mode: the demo plant is seeded once the asset model exists in this version."
        );
    }
    println!("Gantry is running. Open {url} in your browser.");
    app.run_until_stopped().await
}

async fn migrate(args: CommonArgs) -> anyhow::Result<()> {
    let config = args.load_config(None, None)?;
    telemetry::init(&config.log);
    let store = metadata::connect(&config.database, &config.data_dir).await?;
    store.migrate().await?;
    store.close().await;
    println!("The {} metadata database is up to date.", store.backend());
    Ok(())
}

fn check_config(args: CommonArgs) -> anyhow::Result<()> {
    let config = args.load_config(None, None)?;
    println!("{config:#?}");
    println!("The configuration is valid.");
    Ok(())
}
