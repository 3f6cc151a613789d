//! The simulator's command-line flags.

use clap::Parser;
use infor_relay::config::{parse_duration, QueueNames};
use std::time::Duration;

/// The simulator's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "infor-crm-sim",
    version,
    about = "A simulator of InforCRM for demos and tests"
)]
pub struct Args {
    /// AMQP URL of the broker.
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: String,
    /// Database with infor_comm, to read the client reactions from.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The queues, named as for the relay: the requests come from the outbound queue, the
    /// replies and pushes go to the inbound queue.
    #[command(flatten)]
    pub queue_names: QueueNames,
    /// Share of requests answered with statusCode 1 (client not found).
    #[arg(long, default_value_t = 0.05)]
    pub rate_not_found: f64,
    /// Share of requests answered with statusCode 2 (other error).
    #[arg(long, default_value_t = 0.03)]
    pub rate_error: f64,
    /// Delay between a created task's reply and its push.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub push_delay: Duration,
    /// Declare both queues (durable) at start.
    #[arg(long)]
    pub declare_queues: bool,
    /// Requests handled at once.
    #[arg(long, default_value_t = 64)]
    pub prefetch: u16,
}
