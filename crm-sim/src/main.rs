//! `infor-crm-sim`: a simulator of InforCRM for the demo and the tests (see the library's
//! documentation). Parses the flags, sets up logging, and runs until SIGTERM or SIGINT.

use clap::Parser;
use infor_crm_sim::args::Args;
use std::io::IsTerminal;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_ansi(std::io::stdout().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            tracing::error!(%error, "cannot start the async runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(infor_crm_sim::simulator::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "infor-crm-sim stopped");
            ExitCode::FAILURE
        }
    }
}
