//! Baselines for `scripts/bench`, written to do only what the relay must do and nothing else,
//! on the same broker and database, so that the relay's throughput can be given as a ratio:
//!
//! - `bare-publisher`: publishes the outbox's payloads as the relay does (default exchange,
//!   persistent, JSON, `message_id`, mandatory) with 1,000 confirms in flight;
//! - `bare-consumer`: consumes replies with the relay's prefetch, runs one autocommitted
//!   `UPDATE` of the task row per reply, and acks it;
//! - `bench-replies`: publishes one reply per task row to one or more queues, to feed both;
//! - `bench-requests`: publishes generated requests, valid under the contract, to feed the
//!   simulator's benchmark (`scripts/bench-crm-sim`).
//!
//! Each prints one line, `messages=<n> seconds=<s> rate=<n/s>`, that `scripts/bench` reads.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, PublisherConfirm};
use std::collections::VecDeque;
use std::error::Error;
use std::time::{Duration, Instant};
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

/// Publishes each `(properties, body)` of `messages` to `queue` through the default exchange,
/// mandatory, with up to `in_flight` confirms outstanding (at least one), and waits for the
/// last. Returns how many the broker nacked or returned.
pub async fn publish_confirmed<B: AsRef<[u8]>>(
    channel: &Channel,
    queue: &str,
    messages: impl IntoIterator<Item = (BasicProperties, B)>,
    in_flight: usize,
) -> Result<usize, BenchError> {
    let in_flight = in_flight.max(1);
    let mut pending = VecDeque::with_capacity(in_flight);
    let mut refused = 0usize;
    for (properties, body) in messages {
        if pending.len() >= in_flight {
            if let Some(confirm) = pending.pop_front() {
                refused += usize::from(!confirmed(confirm).await?);
            }
        }
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = channel
            .basic_publish("".into(), queue.into(), options, body.as_ref(), properties)
            .await?;
        pending.push_back(confirm);
    }
    for confirm in pending {
        refused += usize::from(!confirmed(confirm).await?);
    }
    Ok(refused)
}

/// True when the broker acked the message and did not return it.
async fn confirmed(confirm: PublisherConfirm) -> Result<bool, BenchError> {
    let confirmation = confirm.await?;
    Ok(confirmation.is_ack() && confirmation.take_message().is_none())
}

/// Publishes `requests` (each a message id and its payload) to `queue`, declared durable and
/// emptied first, as the relay publishes requests, on a connection of its own named `name`,
/// with up to `in_flight` confirms outstanding. Times it from the first publish to the last
/// confirm and prints the line `scripts/bench` reads; an error when any came back nacked or
/// returned.
pub async fn publish_requests(
    amqp_url: &str,
    name: &str,
    queue: &str,
    requests: &[(String, String)],
    in_flight: usize,
) -> Result<(), BenchError> {
    let connection = connect_broker(amqp_url, name).await?;
    let channel = confirm_channel(&connection).await?;
    declare(&channel, queue, true).await?;
    let started = Instant::now();
    let messages = requests
        .iter()
        .map(|(message_id, payload)| (request_properties(message_id), payload.as_bytes()));
    let refused = publish_confirmed(&channel, queue, messages, in_flight).await?;
    let elapsed = started.elapsed();
    if refused > 0 {
        return Err(format!("{refused} messages were nacked or returned").into());
    }
    report(requests.len(), elapsed);
    let _ = connection.close(200, "done".into()).await;
    Ok(())
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
