//! The app logs to a daily-rotated file in the data directory (a week kept) and warnings to
//! stderr. Header values never reach a log line (see `tusker_core::redact`).

use std::path::Path;
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

/// Installs the subscriber; keep the guard alive for the app's lifetime.
pub fn init(data_dir: &Path) -> tracing_appender::non_blocking::WorkerGuard {
    let _ = std::fs::create_dir_all(data_dir.join("logs"));
    let appender = tracing_appender::rolling::Builder::new()
        .rotation(tracing_appender::rolling::Rotation::DAILY)
        .filename_prefix("tusker")
        .filename_suffix("log")
        .max_log_files(7)
        .build(data_dir.join("logs"))
        .unwrap_or_else(|_| tracing_appender::rolling::never(std::env::temp_dir(), "tusker.log"));
    let (writer, guard) = tracing_appender::non_blocking(appender);
    let file_filter =
        EnvFilter::try_from_env("TUSKER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::registry()
        .with(
            fmt::layer()
                .with_ansi(false)
                .with_writer(writer)
                .with_filter(file_filter),
        )
        .with(
            fmt::layer()
                .with_writer(std::io::stderr)
                .with_filter(EnvFilter::new("warn")),
        )
        .try_init();
    guard
}
