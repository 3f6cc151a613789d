//! Logging: text or JSON lines, the level from `RUST_LOG` (default `info`), and a guard that
//! keeps client data out of the log.
//!
//! At debug and trace level, tokio-postgres logs every statement's parameters (each inbound
//! body, whole) and lapin logs frames with their payloads. Those events are dropped unless
//! `--log-client-data` asks for them, whatever `RUST_LOG` says. The relay's own events never
//! carry a message body or a tax id.

use crate::config::LogFormat;
use std::io::IsTerminal;
use tracing::Level;
use tracing_subscriber::filter::{filter_fn, EnvFilter, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

/// The libraries whose debug and trace events can carry statement parameters or message bodies
/// (a prefix: `amq_protocol` covers `amq_protocol_tcp` and `amq_protocol_types` too).
pub const CLIENT_DATA_TARGETS: [&str; 4] = [
    "tokio_postgres",
    "postgres_protocol",
    "lapin",
    "amq_protocol",
];

/// True when an event of `target` at `level` may carry client data and must be dropped.
pub fn carries_client_data(target: &str, level: Level, log_client_data: bool) -> bool {
    !log_client_data
        && level > Level::INFO
        && CLIENT_DATA_TARGETS
            .iter()
            .any(|library| target.starts_with(library))
}

/// Installs the global subscriber; call once, first thing in `main`.
pub fn init(format: LogFormat, log_client_data: bool) {
    let levels = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let guard =
        filter_fn(move |meta| !carries_client_data(meta.target(), *meta.level(), log_client_data));
    let filter = levels.and(guard);
    match format {
        // Colours only for a person at a terminal, never in a log file or a collector.
        LogFormat::Text => tracing_subscriber::registry()
            .with(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stdout().is_terminal())
                    .with_filter(filter),
            )
            .init(),
        LogFormat::Json => tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().json().with_filter(filter))
            .init(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_parameters_and_frames_are_dropped_below_info_unless_asked_for() {
        for target in [
            "tokio_postgres::query",
            "tokio_postgres",
            "lapin::channel",
            "amq_protocol::frame",
        ] {
            assert!(carries_client_data(target, Level::DEBUG, false), "{target}");
            assert!(carries_client_data(target, Level::TRACE, false), "{target}");
            assert!(!carries_client_data(target, Level::INFO, false), "{target}");
            assert!(!carries_client_data(target, Level::WARN, false), "{target}");
            assert!(!carries_client_data(target, Level::DEBUG, true), "{target}");
        }
        assert!(!carries_client_data(
            "infor_relay::inbound",
            Level::DEBUG,
            false
        ));
        assert!(carries_client_data("amq_protocol_tcp", Level::TRACE, false));
        assert!(!carries_client_data("hyper", Level::DEBUG, false));
    }
}
