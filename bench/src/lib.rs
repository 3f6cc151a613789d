//! Baselines for `scripts/bench`, written to do only what the relay must do and nothing else,
//! on the same broker and database, so that the relay's throughput can be given as a ratio:
//!
//! - `bare-publisher`: publishes the outbox's payloads as the relay does (default exchange,
//!   persistent, JSON, `message_id`, mandatory) with 1,000 confirms in flight;
//! - `bare-consumer`: consumes replies with the relay's prefetch, runs one autocommitted
//!   `UPDATE` of the task row per reply, and acks it;
//! - `bench-replies`: publishes one reply per task row to one or more queues, to feed both.
//!
//! Each prints one line, `messages=<n> seconds=<s> rate=<n/s>`, that `scripts/bench` reads.

use lapin::options::{ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::error::Error;
use std::time::Duration;
use tokio_postgres::{Client, NoTls};

/// Any error of a benchmark binary: it stops the run with a message.
pub type BenchError = Box<dyn Error + Send + Sync>;

/// Connects to the database; the connection is driven by a task of its own.
pub async fn connect_database(url: &str) -> Result<Client, BenchError> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            eprintln!("database connection ended: {error}");
        }
    });
    Ok(client)
}

/// Connects to the broker.
pub async fn connect_broker(url: &str, name: &str) -> Result<Connection, BenchError> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    Ok(Connection::connect(url, properties).await?)
}

/// Declares `queue` durable on `channel`, optionally emptying it first.
pub async fn declare(channel: &Channel, queue: &str, purge: bool) -> Result<(), BenchError> {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await?;
    if purge {
        channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await?;
    }
    Ok(())
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(connection: &Connection) -> Result<Channel, BenchError> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// The properties the relay publishes a request with.
pub fn request_properties(message_id: &str) -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_message_id(message_id.into())
}

/// Prints the line `scripts/bench` reads.
pub fn report(messages: usize, elapsed: Duration) {
    let seconds = elapsed.as_secs_f64();
    let rate = if seconds > 0.0 {
        messages as f64 / seconds
    } else {
        0.0
    };
    println!("messages={messages} seconds={seconds:.3} rate={rate:.0}");
}
