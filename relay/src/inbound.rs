//! Inbound: broker → `apply_inbound`. Each message is applied in its own transaction and acked
//! only after that transaction committed. When the database fails, the message is handed back
//! to the queue and the relay stops consuming until the database is back, so it never spins and
//! never loses a message. Messages the extension rejects are still acked: they are kept in the
//! inbox with the reason.

use crate::broker::{Broker, BrokerError, Consumer, Incoming};
use crate::database::{Database, DatabaseError};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Link};
use crate::session::{Context, SessionEnd, Side};
use crate::shutdown::Shutdown;
use std::time::Duration;

/// The inbound side, for [`crate::session::supervise`].
pub struct Inbound;

impl Side for Inbound {
    const DIRECTION: Direction = Direction::Inbound;
    const CONNECTED: &'static str = "consuming";
    const LISTEN: bool = false;
    type Channel = Consumer;

    async fn open(broker: &Broker, context: &Context) -> Result<Consumer, BrokerError> {
        if context.config.declare_queues {
            // On every connection, not only at start: a queue deleted meanwhile comes back.
            broker.declare_queues(&[&context.queue]).await?;
        }
        broker
            .consumer(&context.queue, context.config.prefetch, "infor-relay")
            .await
    }

    /// Applies messages until a connection fails or shutdown is asked for.
    async fn session(
        _context: &Context,
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
                        return consumer_ended();
                    }
                    if database.is_closed() {
                        return SessionEnd::closed(Link::Database);
                    }
                    continue;
                }
                _ = shutdown.recv() => return SessionEnd::Shutdown,
            };
            let message = match message {
                None => return consumer_ended(),
                Some(Err(error)) => return broker_lost(error),
                Some(Ok(message)) => message,
            };
            // Once taken, a message is finished even when shutdown is asked for meanwhile.
            if let Err(end) = handle(&database, &message).await {
                return end;
            }
        }
    }
}

const BROKER_LOST: &str = "broker connection lost; reconnecting";

fn broker_lost(error: BrokerError) -> SessionEnd {
    SessionEnd::failed(Link::Broker, BROKER_LOST, Chain(&error))
}

fn consumer_ended() -> SessionEnd {
    SessionEnd::failed(Link::Broker, BROKER_LOST, "consumer ended")
}

fn database_error(error: DatabaseError) -> SessionEnd {
    SessionEnd::failed(
        Link::Database,
        "database error; the message goes back to the queue",
        Chain(&error),
    )
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
            message.ack().await.map_err(broker_lost)
        }
        Err(error) => {
            ::metrics::counter!(metrics::INBOUND_APPLY_FAILED).increment(1);
            let _ = message.requeue().await;
            Err(database_error(error))
        }
    }
}
