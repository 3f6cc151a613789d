//! The outbound baseline: reads the outbox's payloads into memory, then publishes them as the
//! relay does (default exchange, persistent, JSON, `message_id`, mandatory) with up to
//! `--in-flight` confirms outstanding, and checks that every one is an ack and none came back.
//! Only the publishing is timed. Nothing is written to the database.

use clap::Parser;
use infor_bench::{
    confirm_channel, connect_broker, connect_database, declare, report, request_properties,
    BenchError,
};
use lapin::options::BasicPublishOptions;
use std::collections::VecDeque;
use std::time::Instant;

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
    let connection = connect_broker(&args.amqp_url, "bare-publisher").await?;
    let channel = confirm_channel(&connection).await?;
    declare(&channel, &args.queue, true).await?;
    let started = Instant::now();
    let mut pending = VecDeque::with_capacity(args.in_flight);
    let mut refused = 0usize;
    for (message_id, payload) in &messages {
        if pending.len() >= args.in_flight.max(1) {
            if let Some(confirm) = pending.pop_front() {
                refused += usize::from(!confirmed(confirm).await?);
            }
        }
        let confirm = channel
            .basic_publish(
                "".into(),
                args.queue.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                payload.as_bytes(),
                request_properties(message_id),
            )
            .await?;
        pending.push_back(confirm);
    }
    for confirm in pending {
        refused += usize::from(!confirmed(confirm).await?);
    }
    let elapsed = started.elapsed();
    if refused > 0 {
        return Err(format!("{refused} messages were nacked or returned").into());
    }
    report(messages.len(), elapsed);
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}

/// True when the broker acked the message and did not return it.
async fn confirmed(confirm: lapin::PublisherConfirm) -> Result<bool, BenchError> {
    let confirmation = confirm.await?;
    Ok(confirmation.is_ack() && confirmation.take_message().is_none())
}
