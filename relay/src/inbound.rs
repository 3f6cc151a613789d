//! Inbound: broker → `apply_inbound`. Each message is applied in its own transaction and acked
//! only after that transaction committed. When the database fails, the message is handed back
//! to the queue and the relay stops consuming until the database is back, so it never spins and
//! never loses a message. Messages the extension rejects are still acked: they are kept in the
//! inbox with the reason.

use crate::backoff::{connect_until_up, Backoff};
use crate::broker::{Broker, BrokerError, Consumer, Incoming};
use crate::config::Config;
use crate::database::{Database, DatabaseError, DatabaseTarget};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Health, Link};
use crate::shutdown::Shutdown;
use std::sync::Arc;
use std::time::{Duration, Instant};

enum SessionEnd {
    Shutdown,
    Database(DatabaseError),
    DatabaseClosed,
    Broker(Option<BrokerError>),
}

/// Runs the inbound loop until shutdown, reconnecting as needed.
pub async fn run(
    config: Arc<Config>,
    target: DatabaseTarget,
    queue: String,
    health: Arc<Health>,
    mut shutdown: Shutdown,
) {
    let mut backoff = Backoff::new(Duration::from_millis(200), config.max_backoff);
    while !shutdown.is_shutdown() {
        let connect_database = || Database::connect(&target, "infor-relay inbound", false);
        let Some(database) = connect_until_up(
            connect_database,
            Link::Database,
            Direction::Inbound,
            target.url(),
            &health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        let Some((broker, consumer)) = connect_until_up(
            || connect_consumer(&config, &queue),
            Link::Broker,
            Direction::Inbound,
            &config.amqp_url,
            &health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        tracing::info!(queue = %queue, "inbound: consuming");
        let started = Instant::now();
        let end = session(database, &broker, consumer, &mut shutdown).await;
        // Closing the channel hands every unacked message back to the queue.
        broker.close().await;
        backoff.session_ended(started.elapsed());
        match end {
            SessionEnd::Shutdown => break,
            SessionEnd::Database(error) => {
                tracing::warn!(error = %Chain(&error), "inbound: database error; the message goes back to the queue");
                health.reconnecting(Link::Database, Direction::Inbound);
            }
            SessionEnd::DatabaseClosed => {
                tracing::warn!("inbound: database connection lost; reconnecting");
                health.reconnecting(Link::Database, Direction::Inbound);
            }
            SessionEnd::Broker(error) => {
                let error = error
                    .map(|e| Chain(&e).to_string())
                    .unwrap_or_else(|| "consumer ended".into());
                tracing::warn!(%error, "inbound: broker connection lost; reconnecting");
                health.reconnecting(Link::Broker, Direction::Inbound);
            }
        }
        if !shutdown.sleep(backoff.next_delay()).await {
            break;
        }
    }
    health.set(Link::Database, Direction::Inbound, false);
    health.set(Link::Broker, Direction::Inbound, false);
    tracing::info!("inbound: stopped");
}

async fn connect_consumer(config: &Config, queue: &str) -> Result<(Broker, Consumer), BrokerError> {
    let broker = Broker::connect(&config.amqp_url, "infor-relay inbound").await?;
    let consumer = broker
        .consumer(queue, config.prefetch, "infor-relay")
        .await?;
    Ok((broker, consumer))
}

async fn session(
    database: Database,
    broker: &Broker,
    mut consumer: Consumer,
    shutdown: &mut Shutdown,
) -> SessionEnd {
    // A consumer whose connection died without a word would wait forever: look every second.
    let mut watchdog = tokio::time::interval(Duration::from_secs(1));
    loop {
        let message = tokio::select! {
            message = consumer.next() => message,
            _ = watchdog.tick() => {
                if !broker.is_connected() {
                    return SessionEnd::Broker(None);
                }
                if database.is_closed() {
                    return SessionEnd::DatabaseClosed;
                }
                continue;
            }
            _ = shutdown.recv() => return SessionEnd::Shutdown,
        };
        let message = match message {
            None => return SessionEnd::Broker(None),
            Some(Err(error)) => return SessionEnd::Broker(Some(error)),
            Some(Ok(message)) => message,
        };
        // Once taken, a message is finished even when shutdown is asked for meanwhile.
        if let Err(end) = handle(&database, &message).await {
            return end;
        }
    }
}

/// Applies one message, then acks it; on a database fault hands it back.
async fn handle(database: &Database, message: &Incoming) -> Result<(), SessionEnd> {
    match database
        .apply_inbound(&message.body, message.message_id.as_deref())
        .await
    {
        Ok(outcome) => {
            ::metrics::counter!(metrics::INBOUND, "outcome" => outcome.clone()).increment(1);
            tracing::info!(
                message_id = message.message_id.as_deref().unwrap_or(""),
                redelivered = message.redelivered,
                %outcome,
                "inbound: applied"
            );
            // If this ack is lost, the message comes again and is applied as a duplicate.
            message.ack().await.map_err(|e| SessionEnd::Broker(Some(e)))
        }
        Err(error) => {
            ::metrics::counter!(metrics::INBOUND_APPLY_FAILED).increment(1);
            let _ = message.requeue().await;
            Err(SessionEnd::Database(error))
        }
    }
}
