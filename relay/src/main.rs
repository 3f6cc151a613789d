//! `infor-relay`: parses the command line, sets up logging, and runs until SIGTERM or SIGINT.
//!
//! Exit statuses: 0 after a shutdown; [`infor_relay::EXIT_CONFIG`] (78) for a setting that can
//! never work (a missing, malformed or conflicting flag, an unreadable file, a metrics address
//! in use, queues the broker refuses to declare), which the packaged unit does not restart on;
//! 1 when the process itself cannot run (no async runtime).

use clap::Parser;
use infor_relay::config::Config;
use infor_relay::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(error) => {
            // --help and --version print and succeed; any other error says which flag and why.
            let _ = error.print();
            return if error.use_stderr() {
                ExitCode::from(infor_relay::EXIT_CONFIG)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    logging::init(config.log_format, config.log_client_data);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(infor_relay::run(config, infor_relay::shutdown::signal()));
    // Tasks still waiting on a connection that does not answer (after --shutdown-timeout) are
    // dropped, not awaited.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "infor-relay cannot start; not retried: correct the setting, then start it again");
            ExitCode::from(infor_relay::EXIT_CONFIG)
        }
    }
}
