//! Structured logs with `tracing`: readable on a terminal, JSON lines otherwise (for log
//! collectors). `RUST_LOG` filters as usual.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How logs are written (`BRIGADE_LOG_FORMAT`: `auto`, `text` or `json`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Text on a terminal, JSON lines otherwise.
    #[default]
    Auto,
    Text,
    Json,
}

/// Installs the global subscriber once, in the automatic format; later calls do nothing.
pub fn init_logging() {
    init_logging_as(LogFormat::Auto);
}

/// Installs the global subscriber once, in the given format; later calls do nothing.
pub fn init_logging_as(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,async_nats=warn,poem=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let text = match format {
        LogFormat::Auto => std::io::stderr().is_terminal(),
        LogFormat::Text => true,
        LogFormat::Json => false,
    };
    let _ = if text {
        builder.try_init()
    } else {
        builder.json().try_init()
    };
}
