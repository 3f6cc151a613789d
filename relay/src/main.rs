//! `infor-relay`: parses the command line, sets up logging, and runs until SIGTERM or SIGINT.

use clap::Parser;
use infor_relay::config::Config;
use infor_relay::logging;
use std::process::ExitCode;

fn main() -> ExitCode {
    let config = Config::parse();
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
            tracing::error!(%error, "infor-relay cannot start");
            ExitCode::FAILURE
        }
    }
}
