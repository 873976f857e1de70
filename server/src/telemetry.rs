//! Logs: tracing with human-readable or JSON output, chosen by configuration. Per the project's log discipline
//! (vector's STYLE.md), messages are sentences, ERROR means an operator must act, and secrets never reach a log.

use std::io::IsTerminal;

use tracing_subscriber::{fmt, layer::SubscriberExt, util::SubscriberInitExt, EnvFilter};

use crate::config::{LogConfig, LogFormat};

/// Installs the global subscriber, writing to stderr (stdout is for what commands print, such as a new token). `RUST_LOG`, when set, wins over `log.level`. Safe to call more than once (the
/// tests spawn many apps in one process): later calls keep the first subscriber.
pub fn init(config: &LogConfig) {
    let mut filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&config.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    // Tantivy logs every file it writes and deletes at `info`: noise to an operator, unless asked for by name.
    if !filter.to_string().contains("tantivy") {
        if let Ok(quiet) = "tantivy=warn".parse() {
            filter = filter.add_directive(quiet);
        }
    }
    let registry = tracing_subscriber::registry().with(filter);
    let result = match config.format {
        LogFormat::Pretty => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_target(false),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .with_writer(std::io::stderr)
                    .flatten_event(true)
                    .with_current_span(true),
            )
            .try_init(),
    };
    // Err only means a subscriber is already installed.
    drop(result);
}
