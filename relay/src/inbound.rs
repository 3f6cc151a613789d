//! Inbound: broker → infor_comm, in batches.
//!
//! - The messages the broker has handed over are recorded in ONE transaction, each under its own
//!   savepoint ([`Database::record_inbound`]); each is acked only after that transaction
//!   committed. A crash at any point leaves every unacked message in the queue, and a message
//!   applied twice is journaled as a `duplicate` the second time.
//! - A body over `--max-message-bytes` is never held whole (see [`crate::broker::limit_body_size`]):
//!   it is journaled as rejected with its size, SHA-256 and first 64 KiB, then acked.
//! - A message whose apply raises is held back, unacked, and retried alone after a pause; the
//!   others go on. When it has failed `--max-apply-attempts` times and other messages applied
//!   after its first failure (later in the same transaction, or since), it is set aside:
//!   journaled as rejected with its last error, or, if even that fails, published to
//!   `--dead-letter-queue`, then acked. Counted and logged once.
//! - When every message of a batch fails and none has applied since, the database is taken to be
//!   at fault: every unacked message goes back to the queue and the relay reconnects with
//!   back-off, as when the connection breaks. Nothing is set aside then: failures that no other
//!   message's apply followed before the session ended are forgotten when the next one begins.
//! - Messages the extension rejects are acked too: they are kept in the inbox with the reason.

use crate::broker::{Broker, BrokerError, Consumer, Incoming, Outgoing, PublishOutcome, Publisher};
use crate::database::{Database, DatabaseError, InboundItem};
use crate::errors::Chain;
use crate::failures::{lock, Failure};
use crate::metrics::{self, Direction, Link};
use crate::session::{Context, SessionEnd, Side};
use crate::shutdown::Shutdown;
use std::collections::HashMap;

use std::time::Duration;
use tokio::time::Instant;

/// The inbound side, for [`crate::session::supervise`].
pub struct Inbound;

/// The first pause before a held-back message is retried; it doubles with each failure.
const FIRST_RETRY: Duration = Duration::from_millis(200);
/// The longest pause before a held-back message is retried.
const MAX_RETRY: Duration = Duration::from_secs(10);

impl Side for Inbound {
    const DIRECTION: Direction = Direction::Inbound;
    const CONNECTED: &'static str = "consuming";
    const LISTEN: bool = false;
    type Channel = Consumer;

    async fn open(broker: &Broker, context: &Context) -> Result<Consumer, BrokerError> {
        let config = &context.config;
        crate::broker::limit_body_size(config.max_message_bytes);
        if config.declare_queues {
            // On every connection, not only at start: a queue deleted meanwhile comes back.
            let mut queues = vec![context.queue.as_str()];
            queues.extend(config.dead_letter_queue.as_deref());
            broker
                .declare_queues(&queues, config.queue_type)
                .await
                .map_err(|error| error.source)?;
        }
        broker
            .consumer(&context.queue, config.prefetch, "infor-relay")
            .await
    }

    /// Applies messages until a connection fails or shutdown is asked for.
    async fn session(
        context: &Context,
        database: Database,
        broker: &Broker,
        mut consumer: Consumer,
        shutdown: &mut Shutdown,
    ) -> SessionEnd {
        lock(&context.inbound_failures).new_session();
        let mut work = Work {
            context,
            database: &database,
            broker,
            held: Vec::new(),
            dead_letter: None,
        };
        // A consumer whose connection died without a word would wait forever: look every second.
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        // A database connection cut without a word is found by a round trip every
        // --poll-interval while no message comes (each bounded by --database-timeout).
        let mut last_round_trip = Instant::now();
        // Half the prefetch: while one half is applied, the broker hands over the other, so the
        // next batch is in hand when this one is acked.
        let batch_limit = usize::from(context.config.prefetch).div_ceil(2);
        loop {
            let retry_at = work.held.iter().map(|held| held.retry_at).min();
            let first = tokio::select! {
                message = consumer.next() => Some(message),
                _ = sleep_until(retry_at), if retry_at.is_some() => None,
                _ = watchdog.tick() => {
                    if !broker.is_connected() {
                        return consumer_ended();
                    }
                    if database.is_closed() {
                        return SessionEnd::closed(Link::Database);
                    }
                    if last_round_trip.elapsed() >= context.config.poll_interval {
                        if let Err(error) = database.ping().await {
                            return database_error(&context.health, error);
                        }
                        last_round_trip = Instant::now();
                    }
                    continue;
                }
                _ = shutdown.recv() => return SessionEnd::Shutdown,
            };
            let mut batch = Vec::new();
            match first {
                Some(None) => return consumer_ended(),
                Some(Some(Err(error))) => return broker_lost(error),
                Some(Some(Ok(message))) => batch.push(message),
                None => {}
            }
            // Whatever else the broker has already handed over joins this transaction.
            while batch.len() < batch_limit {
                match consumer.ready() {
                    Some(Ok(message)) => batch.push(message),
                    Some(Err(error)) => return broker_lost(error),
                    None => break,
                }
            }
            last_round_trip = Instant::now();
            // Once taken, messages are finished even when shutdown is asked for meanwhile.
            if !batch.is_empty() {
                if let Err(end) = work.record(batch, false).await {
                    return end;
                }
            }
            let now = Instant::now();
            let (due, waiting): (Vec<_>, Vec<_>) =
                work.held.drain(..).partition(|held| held.retry_at <= now);
            work.held = waiting;
            for held in due {
                if let Err(end) = work.record(vec![held.message], true).await {
                    return end;
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A message whose apply failed, unacked, waiting to be retried alone.
struct Held {
    message: Incoming,
    retry_at: Instant,
}

/// What a session works with.
struct Work<'a> {
    context: &'a Context,
    database: &'a Database,
    broker: &'a Broker,
    held: Vec<Held>,
    dead_letter: Option<Publisher>,
}

/// How the relay records one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Plan {
    Apply,
    Oversized,
    SetAside,
    /// Its header table is over the relay's limits: set aside at once, never applied.
    HeadersOverLimit,
}

impl Work<'_> {
    /// Records `batch` in one transaction, then acks what was recorded and holds back what failed.
    /// `retry`: the batch is one held-back message tried again.
    async fn record(&mut self, mut batch: Vec<Incoming>, retry: bool) -> Result<(), SessionEnd> {
        // Applied in the order of the CRM's ids: the extension locks each message's requestID,
        // then its taskID, until the transaction ends, so two relays whose batches hold the same
        // ids take them in one order and never deadlock. A stable sort: two messages of one
        // request keep the order they arrived in (of two pushes with one dt, the later received
        // wins).
        batch.sort_by_cached_key(|message| lock_order(&message.body));
        let config = &self.context.config;
        let failures = self.context.inbound_failures.clone();
        let mut set_aside_errors = HashMap::new();
        let plans: Vec<Plan> = {
            let log = lock(&failures);
            batch
                .iter()
                .enumerate()
                .map(|(index, message)| {
                    if message.oversized.is_some() {
                        Plan::Oversized
                    } else if message.headers_over_limit.is_some() {
                        Plan::HeadersOverLimit
                    } else if let Some(failure) =
                        log.message_due_for_set_aside(message, config.max_apply_attempts)
                    {
                        set_aside_errors.insert(index, failure);
                        Plan::SetAside
                    } else {
                        Plan::Apply
                    }
                })
                .collect()
        };
        let limit = i64::try_from(config.max_message_bytes).unwrap_or(i64::MAX);
        let header_errors: Vec<Option<String>> = batch
            .iter()
            .map(|message| {
                message.headers_over_limit.as_ref().map(|reason| {
                    format!("its headers are over the relay's limits and were not read: {reason}")
                })
            })
            .collect();
        let items: Vec<InboundItem<'_>> = batch
            .iter()
            .zip(&plans)
            .enumerate()
            .map(|(index, (message, plan))| {
                let message_id = message.message_id_bytes.as_deref();
                match (plan, &message.oversized, set_aside_errors.get(&index)) {
                    (Plan::Oversized, Some(oversized), _) => InboundItem::Oversized {
                        head: &message.body,
                        message_id,
                        size: i64::try_from(oversized.size).unwrap_or(i64::MAX),
                        sha256: &oversized.sha256,
                        limit,
                    },
                    (Plan::SetAside, _, Some(failure)) => InboundItem::SetAside {
                        body: &message.body,
                        message_id,
                        attempts: i32::try_from(failure.attempts).unwrap_or(i32::MAX),
                        error: &failure.last_error,
                    },
                    (Plan::HeadersOverLimit, _, _) => InboundItem::SetAside {
                        body: &message.body,
                        message_id,
                        attempts: 0,
                        error: header_errors[index].as_deref().unwrap_or(""),
                    },
                    _ => InboundItem::Deliver {
                        body: &message.body,
                        message_id,
                    },
                }
            })
            .collect();
        let started = Instant::now();
        let recorded = self.database.record_inbound(&items).await;
        tracing::debug!(
            batch = items.len(),
            elapsed_us = started.elapsed().as_micros() as u64,
            "inbound: batch recorded"
        );
        let outcomes = match recorded {
            Ok(outcomes) => {
                self.context.health.set_refused(None);
                outcomes
            }
            Err(error) => {
                ::metrics::counter!(metrics::INBOUND_APPLY_FAILED).increment(batch.len() as u64);
                // The extension may refuse the relay itself (its SQL and library differ, or this
                // login may not use it in this database): then every message is held, none is
                // set aside, and /ready says why until a call succeeds (database_error).
                // Closing the connection (the session ends) hands every unacked message back.
                return Err(database_error(&self.context.health, error));
            }
        };
        drop(items);
        let mut applied = 0usize;
        let mut failed = Vec::new();
        let mut committed = Vec::with_capacity(batch.len());
        for (index, ((message, plan), outcome)) in
            batch.into_iter().zip(plans).zip(outcomes).enumerate()
        {
            match outcome {
                Ok(outcome) => {
                    applied += 1;
                    self.recorded(&message, plan, &outcome, set_aside_errors.get(&index));
                    lock(&failures).message_done(&message, plan == Plan::Apply);
                    committed.push(message);
                }
                Err(error) => {
                    // Counted now, in the batch's order, so that the messages applied after it
                    // in this transaction count as applied since its failure.
                    let attempts = (plan != Plan::SetAside)
                        .then(|| lock(&failures).message_failed(&message, &error));
                    failed.push((message, plan, error, attempts));
                }
            }
        }
        // If an ack is lost, the message comes again and is journaled as a duplicate.
        if failed.is_empty() && self.held.is_empty() && !retry {
            // Every message delivered before the batch's last delivered one is in the batch or
            // acked already (a batch takes the oldest in hand; none is held back): one frame acks
            // them all. The last delivered, not the last applied: the batch was sorted by the
            // CRM's ids, and a multiple ack of its last message would leave the ones delivered
            // after it unacked, held by this relay until a later batch's ack covered them.
            if let Some(last) = committed.iter().max_by_key(|message| message.delivery_tag) {
                last.ack_up_to().await.map_err(broker_lost)?;
            }
        } else {
            futures_util::future::try_join_all(committed.iter().map(Incoming::ack))
                .await
                .map_err(broker_lost)?;
        }
        drop(committed);
        if failed.is_empty() {
            return Ok(());
        }
        let every_one_failed = applied == 0 && !retry;
        for (message, plan, error, attempts) in failed {
            ::metrics::counter!(metrics::INBOUND_APPLY_FAILED).increment(1);
            // A message with headers over the limits whose journaling keeps failing (while
            // others apply) goes the way of a set-aside one.
            let headers_due = plan == Plan::HeadersOverLimit
                && lock(&failures)
                    .message_due_for_set_aside(&message, config.max_apply_attempts)
                    .is_some();
            if plan == Plan::SetAside || headers_due {
                // Even journaling it failed: the dead-letter queue, if there is one.
                if self.dead_letter(&message, &error).await? {
                    lock(&failures).message_done(&message, false);
                    message.ack().await.map_err(broker_lost)?;
                    continue;
                }
            }
            let attempts = match attempts {
                Some(attempts) => attempts,
                None => lock(&failures).message_failed(&message, &error),
            };
            tracing::warn!(
                message_id = message.message_id.as_deref().unwrap_or(""),
                attempts,
                error = %error,
                "inbound: apply failed; the message is held back and retried alone"
            );
            let pause = FIRST_RETRY
                .saturating_mul(1 << attempts.saturating_sub(1).min(16))
                .min(MAX_RETRY);
            self.held.push(Held {
                message,
                retry_at: Instant::now() + pause,
            });
        }
        if every_one_failed {
            // No message applied: most likely the database, not the messages. Hand everything
            // back and reconnect with back-off; nothing is set aside while nothing applies.
            return Err(SessionEnd::failed(
                Link::Database,
                "every apply of a batch failed; the messages go back to the queue",
                "see the warnings above",
            ));
        }
        Ok(())
    }

    /// Counts and logs one recorded message.
    fn recorded(&self, message: &Incoming, plan: Plan, outcome: &str, set_aside: Option<&Failure>) {
        ::metrics::counter!(metrics::INBOUND, "outcome" => outcome.to_string()).increment(1);
        let message_id = message.message_id.as_deref().unwrap_or("");
        match plan {
            Plan::Apply => tracing::debug!(
                message_id,
                redelivered = message.redelivered,
                outcome,
                "inbound: applied"
            ),
            Plan::Oversized => {
                ::metrics::counter!(metrics::INBOUND_OVERSIZED).increment(1);
                tracing::warn!(
                    message_id,
                    size = message.oversized.map_or(0, |o| o.size),
                    limit = self.context.config.max_message_bytes,
                    "inbound: a body over the size limit was journaled as rejected (size, SHA-256, first 64 KiB)"
                );
            }
            Plan::HeadersOverLimit => {
                ::metrics::counter!(metrics::INBOUND_SET_ASIDE, "to" => "inbox").increment(1);
                tracing::warn!(
                    message_id,
                    reason = message.headers_over_limit.as_deref().unwrap_or(""),
                    "inbound: a message whose headers are over the relay's limits was set aside: journaled as rejected, not applied"
                );
            }
            Plan::SetAside => {
                ::metrics::counter!(metrics::INBOUND_SET_ASIDE, "to" => "inbox").increment(1);
                tracing::warn!(
                    message_id,
                    attempts = set_aside.map_or(0, |failure| failure.attempts),
                    last_error = set_aside.map_or("", |failure| failure.last_error.as_str()),
                    "inbound: a message whose apply kept failing was set aside: journaled as rejected with its last error"
                );
            }
        }
    }

    /// Publishes a message that cannot even be journaled to `--dead-letter-queue`; true when the
    /// broker confirmed it (the original may then be acked).
    async fn dead_letter(&mut self, message: &Incoming, error: &str) -> Result<bool, SessionEnd> {
        let Some(queue) = self.context.config.dead_letter_queue.as_deref() else {
            return Ok(false);
        };
        if self.dead_letter.is_none() {
            self.dead_letter = Some(self.broker.publisher().await.map_err(broker_lost)?);
        }
        let Some(publisher) = &self.dead_letter else {
            return Ok(false);
        };
        let outgoing = Outgoing {
            message_id: message.message_id.as_deref().unwrap_or(""),
            payload: &message.body,
        };
        let timeout = self.context.config.confirm_timeout;
        match publisher
            .publish_one(queue, outgoing, timeout)
            .await
            .map_err(broker_lost)?
        {
            PublishOutcome::Confirmed => {
                ::metrics::counter!(metrics::INBOUND_SET_ASIDE, "to" => "dead_letter").increment(1);
                tracing::warn!(
                    message_id = outgoing.message_id,
                    queue,
                    error,
                    "inbound: a message that could not be applied nor journaled was moved to the dead-letter queue"
                );
                Ok(true)
            }
            PublishOutcome::Refused(reason)
            | PublishOutcome::TimedOut(reason)
            | PublishOutcome::Unroutable(reason) => {
                tracing::warn!(queue, %reason, "inbound: the dead-letter queue refused a message; it stays in the inbound queue");
                Ok(false)
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

/// The key a message is applied in, within a batch: the values of its `"requestID"` and
/// `"taskID"` (the ids the extension locks, in that order), read from its first 16 KiB without
/// parsing it; empty when it has none.
fn lock_order(body: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let text = &body[..body.len().min(16 * 1024)];
    (
        json_string_after(text, b"\"requestID\"").unwrap_or_default(),
        json_string_after(text, b"\"taskID\"").unwrap_or_default(),
    )
}

/// The bytes of the first JSON string value written after `key` and a colon in `text`.
fn json_string_after(text: &[u8], key: &[u8]) -> Option<Vec<u8>> {
    let at = text.windows(key.len()).position(|window| window == key)?;
    let rest = &text[at + key.len()..];
    let rest = &rest[rest.iter().position(|byte| !byte.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b":")?;
    let rest = &rest[rest.iter().position(|byte| !byte.is_ascii_whitespace())?..];
    let rest = rest.strip_prefix(b"\"")?;
    let end = rest
        .iter()
        .position(|&byte| byte == b'"' || byte == b'\\')?;
    Some(rest[..end].to_vec())
}

/// The end of a session whose database call failed (the messages go back to the queue). When
/// the extension refused the relay itself, `/ready` says so until a call succeeds.
fn database_error(health: &crate::metrics::Health, error: DatabaseError) -> SessionEnd {
    if let Some(refusal) = error.refusal() {
        health.set_refused(Some(refusal));
    }
    SessionEnd::failed(
        Link::Database,
        "database error; the messages go back to the queue",
        Chain(&error),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_batch_is_applied_in_the_order_of_its_ids() {
        assert_eq!(
            lock_order(br#"{"requestID": "R-2", "replyUID": "U", "taskID" : "T-9"}"#),
            (b"R-2".to_vec(), b"T-9".to_vec())
        );
        assert_eq!(
            lock_order(br#"{"taskID":"T-1","taskStatus":"3"}"#),
            (Vec::new(), b"T-1".to_vec())
        );
        assert_eq!(lock_order(b"not json"), (Vec::new(), Vec::new()));
        assert_eq!(lock_order(br#"{"requestID": 5}"#), (Vec::new(), Vec::new()));
        assert_eq!(lock_order(br#"{"requestID": "a\"b"}"#).0, b"a".to_vec());
        // A stable sort: [reply X, push Y] and [push X, reply Y] both start with X, and two
        // messages of one request keep their order.
        let mut a = [
            br#"{"requestID": "Y", "taskID": "TY", "taskStatus": "3"}"#.to_vec(),
            br#"{"requestID": "X", "replyUID": "U"}"#.to_vec(),
            br#"{"requestID": "X", "taskID": "TX", "dt": "first"}"#.to_vec(),
            br#"{"requestID": "X", "taskID": "TX", "dt": "second"}"#.to_vec(),
        ];
        a.sort_by_cached_key(|body| lock_order(body));
        let keys = a.iter().map(|body| lock_order(body).0).collect::<Vec<_>>();
        assert_eq!(
            keys,
            vec![b"X".to_vec(), b"X".to_vec(), b"X".to_vec(), b"Y".to_vec()]
        );
        assert!(String::from_utf8_lossy(&a[1]).contains("first"));
        assert!(String::from_utf8_lossy(&a[2]).contains("second"));
    }
}
