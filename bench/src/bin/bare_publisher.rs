//! The outbound baseline: reads the outbox's payloads into memory, then publishes them as the
//! relay does (default exchange, persistent, JSON, `message_id`, mandatory) with up to
//! `--in-flight` confirms outstanding, and checks that every one is an ack and none came back.
//! Only the publishing is timed. Nothing is written to the database.

use clap::Parser;
use infor_bench::{connect_database, publish_requests, BenchError};

/// Flags.
#[derive(Parser, Debug)]
struct Args {
    /// The database whose infor_comm.outbox holds the payloads (read as a superuser).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The broker.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The queue to publish to; declared durable and emptied first.
    #[arg(long)]
    queue: String,
    /// Confirms outstanding at most.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    let database = connect_database(&args.database_url).await?;
    let rows = database
        .query(
            "SELECT request_id::text, payload::text FROM infor_comm.outbox ORDER BY outbox_id",
            &[],
        )
        .await?;
    let messages: Vec<(String, String)> = rows.iter().map(|row| (row.get(0), row.get(1))).collect();
    publish_requests(
        &args.amqp_url,
        "bare-publisher",
        &args.queue,
        &messages,
        args.in_flight,
    )
    .await
}
