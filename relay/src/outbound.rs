//! Outbound: outbox → broker. Wakes on the extension's NOTIFY and polls as a fallback, claims a
//! batch, publishes it with confirms, and marks each row published only after the broker's ack;
//! a nack, a return or a missing confirm marks the row failed, to be retried after a back-off.
//!
//! When a connection fails mid-batch, rows are left as they are: their lease ends and they are
//! claimed again, so every request reaches the broker at least once.

use crate::backoff::{connect_until_up, Backoff};
use crate::broker::{Broker, BrokerError, Outgoing, PublishOutcome, Publisher};
use crate::config::Config;
use crate::database::{Database, DatabaseError, DatabaseTarget, OutboxRow};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Health, Link};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Why the session with the database and the broker ended.
enum SessionEnd {
    Shutdown,
    Database(DatabaseError),
    Broker(BrokerError),
    DatabaseClosed,
    BrokerClosed,
}

/// Runs the outbound loop until shutdown, reconnecting as needed.
pub async fn run(
    config: Arc<Config>,
    target: DatabaseTarget,
    queue: String,
    health: Arc<Health>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), config.max_backoff);
    while !shutdown.is_shutdown() {
        let connect_database = || Database::connect(&target, "infor-relay outbound", true);
        let Some(database) = connect_until_up(
            connect_database,
            Link::Database,
            Direction::Outbound,
            target.url(),
            &health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        let Some(broker) = connect_until_up(
            || connect_publisher(&config),
            Link::Broker,
            Direction::Outbound,
            &config.amqp_url,
            &health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        tracing::info!(queue = %queue, "outbound: connected");
        let started = Instant::now();
        let (broker, publisher) = broker;
        let end = session(
            &config,
            &queue,
            database,
            &broker,
            &publisher,
            &health,
            &mut shutdown,
        )
        .await;
        broker.close().await;
        backoff.session_ended(started.elapsed());
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Database(error) => {
                tracing::warn!(error = %Chain(&error), "outbound: database error; reconnecting");
                health.reconnecting(Link::Database, Direction::Outbound);
            }
            SessionEnd::DatabaseClosed => {
                tracing::warn!("outbound: database connection lost; reconnecting");
                health.reconnecting(Link::Database, Direction::Outbound);
            }
            SessionEnd::Broker(error) => {
                tracing::warn!(error = %Chain(&error), "outbound: broker error; reconnecting");
                health.reconnecting(Link::Broker, Direction::Outbound);
            }
            SessionEnd::BrokerClosed => {
                tracing::warn!("outbound: broker connection lost; reconnecting");
                health.reconnecting(Link::Broker, Direction::Outbound);
            }
        }
        if !shutdown.sleep(backoff.next_delay()).await {
            break;
        }
    }
    health.set(Link::Database, Direction::Outbound, false);
    health.set(Link::Broker, Direction::Outbound, false);
    tracing::info!("outbound: stopped");
}

async fn connect_publisher(config: &Config) -> Result<(Broker, Publisher), BrokerError> {
    let broker = Broker::connect(&config.amqp_url, "infor-relay outbound").await?;
    let publisher = broker.publisher().await?;
    Ok((broker, publisher))
}

/// Claims and publishes until a connection fails or shutdown is asked for.
async fn session(
    config: &Config,
    queue: &str,
    mut database: Database,
    broker: &Broker,
    publisher: &Publisher,
    health: &Health,
    shutdown: &mut Shutdown,
) -> SessionEnd {
    loop {
        if shutdown.is_shutdown() {
            return SessionEnd::Shutdown;
        }
        if !broker.is_connected() {
            return SessionEnd::BrokerClosed;
        }
        let rows = match database.claim(config.batch_size, config.lease).await {
            Ok(rows) => rows,
            Err(error) => return SessionEnd::Database(error),
        };
        if rows.is_empty() {
            report_backlog(&database).await;
            let woke = tokio::select! {
                woke = database.wait_for_work(config.poll_interval) => woke,
                _ = shutdown.recv() => return SessionEnd::Shutdown,
            };
            if !woke {
                return SessionEnd::DatabaseClosed;
            }
            continue;
        }
        // A batch in flight is finished even when shutdown is asked for meanwhile.
        if let Err(end) = publish(config, queue, &database, publisher, &rows).await {
            return end;
        }
        health.set(Link::Broker, Direction::Outbound, broker.is_connected());
    }
}

/// Publishes one claimed batch and records what the broker said.
async fn publish(
    config: &Config,
    queue: &str,
    database: &Database,
    publisher: &Publisher,
    rows: &[OutboxRow],
) -> Result<(), SessionEnd> {
    let messages: Vec<Outgoing<'_>> = rows
        .iter()
        .map(|row| Outgoing {
            message_id: &row.request_id,
            payload: row.payload.as_bytes(),
        })
        .collect();
    let outcomes = publisher
        .publish_batch(queue, &messages, config.confirm_timeout)
        .await
        .map_err(SessionEnd::Broker)?;
    let mut confirmed = Vec::with_capacity(rows.len());
    for (row, outcome) in rows.iter().zip(outcomes) {
        match outcome {
            PublishOutcome::Confirmed => confirmed.push(row.outbox_id),
            PublishOutcome::Refused(reason) => {
                tracing::warn!(outbox_id = row.outbox_id, request_id = %row.request_id, %reason, "outbound: not published");
                ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
                database
                    .mark_failed(row.outbox_id, &reason)
                    .await
                    .map_err(SessionEnd::Database)?;
            }
        }
    }
    if !confirmed.is_empty() {
        let marked = database
            .mark_published(&confirmed)
            .await
            .map_err(SessionEnd::Database)?;
        ::metrics::counter!(metrics::PUBLISHED).increment(confirmed.len() as u64);
        tracing::info!(
            published = confirmed.len(),
            marked,
            "outbound: batch confirmed"
        );
    }
    Ok(())
}

async fn report_backlog(database: &Database) {
    match database.backlog().await {
        Ok((pending, oldest)) => {
            ::metrics::gauge!(metrics::OUTBOX_BACKLOG).set(pending as f64);
            ::metrics::gauge!(metrics::OUTBOX_OLDEST_AGE).set(oldest);
        }
        Err(error) => tracing::debug!(error = %Chain(&error), "outbound: cannot read the backlog"),
    }
}
