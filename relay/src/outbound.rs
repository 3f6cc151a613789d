//! Outbound: outbox → broker. Wakes on the extension's NOTIFY and polls as a fallback, claims a
//! batch, publishes it with confirms, and marks each row published only after the broker's ack;
//! a nack, a return or a missing confirm marks the row failed, to be retried after a back-off.
//!
//! When a connection fails mid-batch, rows are left as they are: their lease ends and they are
//! claimed again, so every request reaches the broker at least once.

use crate::broker::{Broker, BrokerError, Outgoing, PublishOutcome, Publisher};
use crate::database::{Database, DatabaseError, OutboxRow};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Link};
use crate::session::{Context, SessionEnd, Side};
use crate::shutdown::Shutdown;

/// The outbound side, for [`crate::session::supervise`].
pub struct Outbound;

impl Side for Outbound {
    const DIRECTION: Direction = Direction::Outbound;
    const CONNECTED: &'static str = "connected";
    const LISTEN: bool = true;
    type Channel = Publisher;

    async fn open(broker: &Broker, context: &Context) -> Result<Publisher, BrokerError> {
        let publisher = broker.publisher().await?;
        if context.config.declare_queues {
            // On every connection, not only at start: a queue deleted meanwhile comes back.
            publisher.declare(&context.queue).await?;
        }
        Ok(publisher)
    }

    /// Claims and publishes until a connection fails or shutdown is asked for.
    async fn session(
        context: &Context,
        mut database: Database,
        broker: &Broker,
        publisher: Publisher,
        shutdown: &mut Shutdown,
    ) -> SessionEnd {
        let config = &context.config;
        loop {
            if shutdown.is_shutdown() {
                return SessionEnd::Shutdown;
            }
            if !broker.is_connected() {
                return SessionEnd::closed(Link::Broker);
            }
            let rows = match database.claim(config.batch_size, config.lease).await {
                Ok(rows) => rows,
                Err(error) => return database_error(error),
            };
            if rows.is_empty() {
                report_backlog(&database).await;
                let woke = tokio::select! {
                    woke = database.wait_for_work(config.poll_interval) => woke,
                    _ = shutdown.recv() => return SessionEnd::Shutdown,
                };
                if !woke {
                    return SessionEnd::closed(Link::Database);
                }
                continue;
            }
            // A batch in flight is finished even when shutdown is asked for meanwhile.
            if let Err(end) = publish(context, &database, &publisher, &rows).await {
                return end;
            }
            context
                .health
                .set(Link::Broker, Direction::Outbound, broker.is_connected());
        }
    }
}

fn database_error(error: DatabaseError) -> SessionEnd {
    SessionEnd::failed(
        Link::Database,
        "database error; reconnecting",
        Chain(&error),
    )
}

fn broker_error(error: BrokerError) -> SessionEnd {
    SessionEnd::failed(Link::Broker, "broker error; reconnecting", Chain(&error))
}

/// Publishes one claimed batch and records what the broker said.
async fn publish(
    context: &Context,
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
        .publish_batch(&context.queue, &messages, context.config.confirm_timeout)
        .await
        .map_err(broker_error)?;
    let mut confirmed = Vec::with_capacity(rows.len());
    let (mut refused, mut unroutable) = (0usize, 0usize);
    let mut first_reason = None;
    for (row, outcome) in rows.iter().zip(outcomes) {
        let reason = match outcome {
            PublishOutcome::Confirmed => {
                confirmed.push(row.outbox_id);
                continue;
            }
            PublishOutcome::Refused(reason) => {
                refused += 1;
                reason
            }
            PublishOutcome::Unroutable(reason) => {
                unroutable += 1;
                reason
            }
        };
        ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
        database
            .mark_failed(row.outbox_id, &reason)
            .await
            .map_err(database_error)?;
        first_reason.get_or_insert(reason);
    }
    // One line per batch, however many rows failed.
    if let Some(reason) = first_reason {
        tracing::warn!(
            refused,
            unroutable,
            batch = rows.len(),
            %reason,
            "outbound: requests not published; they are retried after a back-off"
        );
    }
    let was_unroutable = context.health.is_unroutable();
    context
        .health
        .set_unroutable(unroutable > 0 && confirmed.is_empty());
    if unroutable > 0 && context.config.declare_queues {
        // The queue was deleted under us: declare it again, as at start.
        if let Err(error) = publisher.declare(&context.queue).await {
            tracing::warn!(error = %Chain(&error), "outbound: cannot declare the queue again");
        }
    } else if was_unroutable && unroutable == 0 && !confirmed.is_empty() {
        tracing::info!("outbound: the broker routes the requests again");
    }
    if !confirmed.is_empty() {
        let marked = database
            .mark_published(&confirmed)
            .await
            .map_err(database_error)?;
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
