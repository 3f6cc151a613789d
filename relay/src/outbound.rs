//! Outbound: outbox → broker. Wakes on the extension's NOTIFY and polls as a fallback, and
//! publishes with publisher confirms as a pipeline of claimed batches.
//!
//! A batch is claimed in a transaction of its own (`lock_outbox`: row locks, `FOR UPDATE SKIP
//! LOCKED`, nothing written), on a session of its own; while the confirms of one batch are in
//! flight, the next is claimed and published on another session, up to `--publish-window`
//! requests awaiting their confirm, and one batch more is claimed ahead while the window is
//! full. Each claim of a busy period starts past the rows the relay already holds. When the
//! last confirm of a batch is in, the same transaction marks the rows the broker acked
//! published and those it refused failed, and commits. So each request is written once, a row
//! is marked published only after its ack, and several relays share the outbox (each skips the
//! rows another holds).
//!
//! When a connection fails, the batch's rows whose outcome is not recorded are released with
//! its transaction: whoever claims next publishes them again, so every request reaches the
//! broker at least once. A relay that stalls holds a batch at most `--lease`: PostgreSQL then
//! ends the session (`idle_in_transaction_session_timeout`).

use crate::broker::{Broker, BrokerError, Outgoing, PendingConfirm, PublishOutcome, Publisher};
use crate::database::{Database, DatabaseError, OutboxRow};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Link};
use crate::session::{Context, SessionEnd, Side};
use crate::shutdown::Shutdown;
use futures_util::stream::FuturesUnordered;
use futures_util::StreamExt;
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;

/// The outbound side, for [`crate::session::supervise`].
pub struct Outbound;

impl Side for Outbound {
    const DIRECTION: Direction = Direction::Outbound;
    const CONNECTED: &'static str = "connected";
    const LISTEN: bool = true;
    type Channel = Publisher;

    async fn open(broker: &Broker, context: &Context) -> Result<Publisher, BrokerError> {
        // /ready says at once when the broker blocks publishing, and why.
        let health = context.health.clone();
        broker.report_blocking(move |reason| health.set_blocked(reason));
        let publisher = broker.publisher().await?;
        if context.config.declare_queues {
            // On every connection, not only at start: a queue deleted meanwhile comes back.
            publisher
                .declare(&context.queue, context.config.queue_type)
                .await?;
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
        let mut sessions = Sessions::new(context);
        loop {
            if shutdown.is_shutdown() {
                return SessionEnd::Shutdown;
            }
            if !broker.is_connected() {
                return SessionEnd::closed(Link::Broker);
            }
            // While the broker blocks the connection, nothing is claimed: what would be
            // published would wait in the relay, its confirm deadline running.
            if broker.blocked().is_some() {
                tokio::select! {
                    _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
                    _ = shutdown.recv() => return SessionEnd::Shutdown,
                }
                continue;
            }
            let session = match sessions.take().await {
                Ok(session) => session,
                Err(error) => return database_error(&context.health, error),
            };
            let rows = match session.lock_batch(config.batch_size, None).await {
                Ok(rows) => {
                    context.health.set_refused(None);
                    rows
                }
                Err(error) => return database_error(&context.health, error),
            };
            if rows.is_empty() {
                sessions.put(session);
                let woke = tokio::select! {
                    woke = database.wait_for_work(config.poll_interval) => woke,
                    _ = shutdown.recv() => return SessionEnd::Shutdown,
                };
                if !woke {
                    return SessionEnd::closed(Link::Database);
                }
                continue;
            }
            // Publishes this batch and the next ones until the outbox has nothing claimable;
            // the batches in flight are finished even when shutdown is asked for meanwhile.
            let mut pipeline = Pipeline::new(context, &mut sessions, broker, &publisher);
            if let Err(end) = pipeline.run(session, rows, shutdown).await {
                return end;
            }
        }
    }
}

/// The database sessions that hold batches: idle ones are kept for the next batch, and at
/// most [`batch_sessions`] are open.
struct Sessions<'a> {
    context: &'a Context,
    idle: Vec<Database>,
    opened: usize,
    limit: usize,
}

impl<'a> Sessions<'a> {
    fn new(context: &'a Context) -> Sessions<'a> {
        let config = &context.config;
        Sessions {
            context,
            idle: Vec::new(),
            opened: 0,
            limit: batch_sessions(config.publish_window, config.batch_size),
        }
    }

    /// True when a batch can be claimed now without waiting for one to finish.
    fn available(&self) -> bool {
        !self.idle.is_empty() || self.opened < self.limit
    }

    /// An idle session, or a new one.
    async fn take(&mut self) -> Result<Database, DatabaseError> {
        while let Some(session) = self.idle.pop() {
            if !session.is_closed() {
                return Ok(session);
            }
            self.opened -= 1;
        }
        let name = format!("infor-relay {} batches", Direction::Outbound.label());
        let session = Database::connect(&self.context.target, &name, false).await?;
        session.hold_batches_for(self.context.config.lease).await?;
        self.opened += 1;
        Ok(session)
    }

    /// Gives back a session whose batch is finished.
    fn put(&mut self, session: Database) {
        if session.is_closed() {
            self.opened -= 1;
        } else {
            self.idle.push(session);
        }
    }
}

/// The end of a session whose database call failed. When the extension refused the relay
/// itself (its SQL and library of different versions, or this login not meant for this
/// database), `/ready` says so until a call succeeds.
fn database_error(health: &crate::metrics::Health, error: DatabaseError) -> SessionEnd {
    if let Some(refusal) = error.refusal() {
        health.set_refused(Some(refusal));
    }
    SessionEnd::failed(
        Link::Database,
        "database error; reconnecting",
        Chain(&error),
    )
}

/// The log line of a batch the broker did not confirm within `--confirm-timeout`.
const CONFIRM_TIMED_OUT: &str =
    "the broker did not confirm a batch within --confirm-timeout; reconnecting";

fn broker_error(error: BrokerError) -> SessionEnd {
    SessionEnd::failed(Link::Broker, "broker error; reconnecting", Chain(&error))
}

/// A claim in progress: the session and the rows it locked.
type Claim =
    Pin<Box<dyn Future<Output = (Database, Result<Vec<OutboxRow>, DatabaseError>)> + Send>>;
/// A batch being finished: its session, its row count and how many rows were marked published.
type Finish = Pin<Box<dyn Future<Output = (Database, usize, Result<usize, DatabaseError>)> + Send>>;

/// How many published messages may wait to be written to the broker's connection.
const UNWRITTEN: usize = 64;

/// Sessions beyond the window's batches: one for the batch claimed ahead, one for a batch
/// being marked and committed after its last confirm.
const AHEAD_SESSIONS: usize = 2;

/// Batches in the window at most, whatever `--publish-window / --batch-size` says: each holds a
/// database session, and small batches in a large window would take hundreds of them.
const MAX_WINDOW_BATCHES: usize = 16;

/// The batch sessions a relay opens at most: one per batch that fits the window (at least one,
/// at most [`MAX_WINDOW_BATCHES`]), and [`AHEAD_SESSIONS`].
fn batch_sessions(publish_window: u32, batch_size: i32) -> usize {
    let batch_size = batch_size.max(1) as usize;
    let window = (publish_window as usize).max(batch_size);
    window.div_ceil(batch_size).min(MAX_WINDOW_BATCHES) + AHEAD_SESSIONS
}

/// Every this many claims of a busy period, the claim starts from the oldest pending request
/// again instead of past the last batch claimed, and the claims go on from the oldest while
/// they find requests below it: so requests released below it meanwhile (by a relay that
/// stopped) wait for at most this many batches before they are claimed.
const RESCAN_EVERY: u32 = 16;

/// Where the claims of a busy period start: past the largest outbox_id claimed so far (the
/// rows below are this relay's, published or held), except every [`RESCAN_EVERY`]th claim and
/// after a claim from the oldest that found requests below it (released meanwhile).
#[derive(Debug, Default)]
struct ClaimCursor {
    /// The largest outbox_id claimed in this busy period.
    up_to: Option<i64>,
    /// Claims made in this busy period.
    claims: u32,
    /// The last claim from the oldest found requests below `up_to`.
    rescanning: bool,
}

impl ClaimCursor {
    /// The `after_id` of the next claim (None: from the oldest), counting it.
    fn next_claim(&mut self) -> Option<i64> {
        self.claims += 1;
        let rescan = self.rescanning || self.claims.is_multiple_of(RESCAN_EVERY);
        self.up_to.filter(|_| !rescan)
    }

    /// Records the rows a claim that started past `after_id` handed over.
    fn claimed(&mut self, rows: &[OutboxRow], after_id: Option<i64>) {
        let first = rows.iter().map(|row| row.outbox_id).min();
        let last = rows.iter().map(|row| row.outbox_id).max();
        self.rescanning = after_id.is_none()
            && matches!((first, self.up_to), (Some(first), Some(up_to)) if first < up_to);
        if let Some(last) = last {
            self.up_to = Some(self.up_to.map_or(last, |up_to| up_to.max(last)));
        }
    }
}

/// A published row whose confirm is awaited.
struct InFlight {
    outbox_id: i64,
    /// The claimed batch it belongs to (an index into [`Pipeline::batches`], counted from
    /// [`Pipeline::first_batch`]).
    batch: u64,
    confirm: PendingConfirm,
}

/// A claimed batch whose confirms are not all in, and what the broker said so far.
struct Batch {
    /// The session whose transaction holds the batch's rows.
    session: Database,
    rows: usize,
    answered: usize,
    acked: Vec<i64>,
    refused: Vec<(i64, String)>,
    unroutable: usize,
    first_reason: Option<String>,
}

/// The batches of one busy period: claimed, published, confirmed and marked as a pipeline.
struct Pipeline<'a, 's> {
    context: &'a Context,
    sessions: &'a mut Sessions<'s>,
    broker: &'a Broker,
    publisher: &'a Publisher,
    /// Published rows, oldest first (the broker confirms in publishing order).
    in_flight: VecDeque<InFlight>,
    /// Batches whose confirms are not all in, oldest first.
    batches: VecDeque<Batch>,
    /// The number of the oldest batch in `batches`.
    first_batch: u64,
    /// Batches being marked and committed.
    finishing: FuturesUnordered<Finish>,
    /// A batch claimed ahead: published as soon as the window has room for it.
    ready: Option<(Database, Vec<OutboxRow>)>,
    /// Where the next claim of this busy period starts.
    cursor: ClaimCursor,
    window: usize,
}

impl<'a, 's> Pipeline<'a, 's> {
    fn new(
        context: &'a Context,
        sessions: &'a mut Sessions<'s>,
        broker: &'a Broker,
        publisher: &'a Publisher,
    ) -> Pipeline<'a, 's> {
        let batch_size = context.config.batch_size.max(1) as usize;
        Pipeline {
            context,
            sessions,
            broker,
            publisher,
            in_flight: VecDeque::new(),
            batches: VecDeque::new(),
            first_batch: 0,
            finishing: FuturesUnordered::new(),
            ready: None,
            cursor: ClaimCursor::default(),
            window: (context.config.publish_window as usize).max(batch_size),
        }
    }

    /// Publishes `rows` (locked by `session`), then claims and publishes more while there is
    /// room in the window, finishes each batch when its last confirm is in, and returns once
    /// the outbox had nothing more to claim and every batch is committed. On a lost
    /// connection, the acked rows are still marked when the database allows it; the others are
    /// released.
    async fn run(
        &mut self,
        session: Database,
        rows: Vec<OutboxRow>,
        shutdown: &mut Shutdown,
    ) -> Result<(), SessionEnd> {
        let batch_size = self.context.config.batch_size.max(1) as usize;
        let mut exhausted = rows.len() < batch_size;
        self.cursor.claimed(&rows, None);
        if let Err(error) = self.publish(session, rows).await {
            return Err(self.abandon(None, broker_error(error)).await);
        }
        let mut claim: Option<Claim> = None;
        // Where the claim in progress started (None: from the oldest pending request).
        let mut claim_after: Option<i64> = None;
        let mut stopping = shutdown.is_shutdown();
        loop {
            // One batch is claimed ahead while the window is full, so that it is published as
            // soon as confirms make room, without waiting for a commit and a claim.
            if claim.is_none()
                && self.ready.is_none()
                && !exhausted
                && !stopping
                && self.in_flight.len() <= self.window
                && self.sessions.available()
                && self.broker.blocked().is_none()
            {
                if self.broker.is_connected() {
                    let session = match self.sessions.take().await {
                        Ok(session) => session,
                        Err(error) => {
                            return Err(self
                                .abandon(None, database_error(&self.context.health, error))
                                .await)
                        }
                    };
                    let size = self.context.config.batch_size;
                    let after_id = self.cursor.next_claim();
                    claim_after = after_id;
                    tracing::debug!(
                        in_flight = self.in_flight.len(),
                        after_id,
                        "outbound: claiming"
                    );
                    claim = Some(Box::pin(async move {
                        let rows = session.lock_batch(size, after_id).await;
                        (session, rows)
                    }));
                } else {
                    // Nothing more is claimed; what is in flight fails and is recorded below.
                    exhausted = true;
                }
            }
            if claim.is_none()
                && self.ready.is_none()
                && self.finishing.is_empty()
                && self.batches.is_empty()
            {
                if !self.broker.is_connected() {
                    return Err(SessionEnd::closed(Link::Broker));
                }
                return Ok(());
            }
            let has_front = !self.in_flight.is_empty();
            let front = self.in_flight.front_mut().map(|row| &mut row.confirm);
            tokio::select! {
                (session, claimed) = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    let rows = match claimed {
                        Ok(rows) => {
                            self.context.health.set_refused(None);
                            rows
                        }
                        Err(error) => {
                            drop(session);
                            return Err(self.abandon(None, database_error(&self.context.health, error)).await);
                        }
                    };
                    exhausted = rows.len() < batch_size;
                    self.cursor.claimed(&rows, claim_after);
                    tracing::debug!(rows = rows.len(), "outbound: claimed");
                    if rows.is_empty() {
                        self.sessions.put(session);
                    } else {
                        self.ready = Some((session, rows));
                    }
                }
                outcome = async { front.expect("guarded").outcome().await }, if has_front => {
                    match outcome {
                        // The broker took longer than --confirm-timeout for this batch, and it
                        // does not say it blocks the connection: the connection is taken for
                        // dead. Nothing more is published into it; the acked rows are marked,
                        // the others released, and the side reconnects.
                        PublishOutcome::TimedOut(reason) if self.broker.blocked().is_none() => {
                            ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
                            self.in_flight.pop_front();
                            let end = SessionEnd::failed(Link::Broker, CONFIRM_TIMED_OUT, reason);
                            return Err(self.abandon(claim, end).await);
                        }
                        // Blocked (a memory or disk alarm): another connection would be blocked
                        // too. The batch's rows are marked failed, retried after the back-off,
                        // and nothing is claimed until the broker unblocks the connection.
                        outcome => {
                            if let Some(row) = self.in_flight.pop_front() {
                                self.record(row, outcome).await;
                            }
                        }
                    }
                }
                Some((session, rows, finished)) = self.finishing.next(), if !self.finishing.is_empty() => {
                    tracing::debug!(rows, "outbound: batch committed");
                    match finished {
                        Ok(published) => {
                            ::metrics::counter!(metrics::PUBLISHED).increment(published as u64);
                            self.sessions.put(session);
                        }
                        Err(error) => {
                            self.sessions.put(session);
                            return Err(self.abandon(claim, database_error(&self.context.health, error)).await);
                        }
                    }
                }
                _ = shutdown.recv(), if !stopping => {
                    // Finish what is published, publish and claim nothing more.
                    stopping = true;
                }
            }
            if stopping {
                // A batch not published yet is released, not published: the one waiting when
                // the shutdown came, and one whose claim was still running then.
                if let Some((session, _)) = self.ready.take() {
                    if let Err(error) = session.finish_batch(&[], &[]).await {
                        self.sessions.put(session);
                        return Err(self
                            .abandon(claim, database_error(&self.context.health, error))
                            .await);
                    }
                    self.sessions.put(session);
                }
            } else if self
                .ready
                .as_ref()
                .is_some_and(|(_, rows)| self.in_flight.len() + rows.len() <= self.window)
            {
                if let Some((session, rows)) = self.ready.take() {
                    if let Err(error) = self.publish(session, rows).await {
                        return Err(self.abandon(claim, broker_error(error)).await);
                    }
                }
            }
        }
    }

    /// Publishes a claimed batch without waiting for its confirms.
    async fn publish(
        &mut self,
        session: Database,
        rows: Vec<OutboxRow>,
    ) -> Result<(), BrokerError> {
        let batch = self.first_batch + self.batches.len() as u64;
        self.batches.push_back(Batch {
            session,
            rows: rows.len(),
            answered: 0,
            acked: Vec::with_capacity(rows.len()),
            refused: Vec::new(),
            unroutable: 0,
            first_reason: None,
        });
        // The batch as a whole has --confirm-timeout: its writes and confirms.
        let timeout = self.context.config.confirm_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        for row in rows {
            let message = Outgoing {
                message_id: &row.request_id,
                payload: row.payload.as_bytes(),
            };
            // On an error the rest of the batch is not sent: its rows are released.
            let confirm =
                self.publisher
                    .send_until(&self.context.queue, message, deadline, timeout)?;
            self.in_flight.push_back(InFlight {
                outbox_id: row.outbox_id,
                batch,
                confirm,
            });
            // At most UNWRITTEN messages queued on the connection and not yet written: enough
            // for large writes, and lapin's publishes are dropped as they are written.
            if let Some(index) = self.in_flight.len().checked_sub(UNWRITTEN + 1) {
                if let Some(earlier) = self.in_flight.get_mut(index) {
                    earlier.confirm.written().await;
                }
            }
        }
        tracing::debug!(
            batch,
            in_flight = self.in_flight.len(),
            "outbound: batch published"
        );
        Ok(())
    }

    /// Records what the broker said about one row, and finishes its batch when it was the
    /// last of it.
    async fn record(&mut self, row: InFlight, outcome: PublishOutcome) {
        let index = (row.batch - self.first_batch) as usize;
        let Some(batch) = self.batches.get_mut(index) else {
            return;
        };
        batch.answered += 1;
        match outcome {
            PublishOutcome::Confirmed => batch.acked.push(row.outbox_id),
            PublishOutcome::Refused(reason) | PublishOutcome::TimedOut(reason) => {
                ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
                batch.first_reason.get_or_insert_with(|| reason.clone());
                batch.refused.push((row.outbox_id, reason));
            }
            PublishOutcome::Unroutable(reason) => {
                ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
                batch.unroutable += 1;
                batch.first_reason.get_or_insert_with(|| reason.clone());
                batch.refused.push((row.outbox_id, reason));
            }
        }
        while self
            .batches
            .front()
            .is_some_and(|batch| batch.answered >= batch.rows)
        {
            if let Some(batch) = self.batches.pop_front() {
                self.first_batch += 1;
                close_batch(self.context, self.broker, self.publisher, &batch).await;
                self.finish(batch);
            }
        }
    }

    /// Marks and commits a batch in the background.
    fn finish(&mut self, batch: Batch) {
        let Batch {
            session,
            rows,
            acked,
            refused,
            ..
        } = batch;
        self.finishing.push(Box::pin(async move {
            let result = session.finish_batch(&acked, &refused).await;
            let published = result.map(|_| acked.len());
            (session, rows, published)
        }));
    }

    /// Ends the busy period on `end`: the batches being finished are awaited, a claim in
    /// progress is released, and the other batches mark the rows already acked (so that they
    /// are not published again) when the database allows it; their other rows are released.
    async fn abandon(&mut self, claim: Option<Claim>, end: SessionEnd) -> SessionEnd {
        let mut published = 0;
        if let Some(claim) = claim {
            let (session, _) = claim.await;
            let _ = session.finish_batch(&[], &[]).await;
        }
        if let Some((session, _)) = self.ready.take() {
            let _ = session.finish_batch(&[], &[]).await;
        }
        while let Some((_, _, finished)) = self.finishing.next().await {
            published += finished.unwrap_or(0);
        }
        // Confirms that are already in count too; the others are not awaited.
        while let Some(row) = self.in_flight.front_mut() {
            match futures_util::FutureExt::now_or_never(row.confirm.outcome()) {
                Some(PublishOutcome::Confirmed) => {
                    if let Some(row) = self.in_flight.pop_front() {
                        let index = (row.batch - self.first_batch) as usize;
                        if let Some(batch) = self.batches.get_mut(index) {
                            batch.acked.push(row.outbox_id);
                        }
                    }
                }
                _ => break,
            }
        }
        self.in_flight.clear();
        for batch in std::mem::take(&mut self.batches) {
            if !batch.session.is_closed()
                && batch.session.finish_batch(&batch.acked, &[]).await.is_ok()
            {
                published += batch.acked.len();
            }
        }
        ::metrics::counter!(metrics::PUBLISHED).increment(published as u64);
        end
    }
}

/// One log line per batch, `/ready`'s view of routing, and the queue declared again when the
/// batch came back unroutable.
async fn close_batch(context: &Context, broker: &Broker, publisher: &Publisher, batch: &Batch) {
    let confirmed = batch.acked.len();
    let refused = batch.refused.len() - batch.unroutable;
    if let Some(reason) = &batch.first_reason {
        tracing::warn!(
            refused,
            unroutable = batch.unroutable,
            batch = batch.rows,
            %reason,
            "outbound: requests not published; they are retried after a back-off"
        );
    }
    let was_unroutable = context.health.is_unroutable();
    context
        .health
        .set_unroutable(batch.unroutable > 0 && confirmed == 0);
    if batch.unroutable > 0 && context.config.declare_queues {
        // The queue was deleted under us: declare it again, as at start.
        if let Err(error) = publisher
            .declare(&context.queue, context.config.queue_type)
            .await
        {
            tracing::warn!(error = %Chain(&error), "outbound: cannot declare the queue again");
        }
    } else if was_unroutable && batch.unroutable == 0 && confirmed > 0 {
        tracing::info!("outbound: the broker routes the requests again");
    }
    if confirmed > 0 {
        tracing::info!(
            published = confirmed,
            batch = batch.rows,
            "outbound: batch confirmed"
        );
    }
    context
        .health
        .set(Link::Broker, Direction::Outbound, broker.is_connected());
}

#[cfg(test)]
mod tests {
    use super::{batch_sessions, ClaimCursor, RESCAN_EVERY};
    use crate::database::OutboxRow;

    fn rows(ids: std::ops::RangeInclusive<i64>) -> Vec<OutboxRow> {
        ids.map(|outbox_id| OutboxRow {
            outbox_id,
            request_id: String::new(),
            payload: String::new(),
        })
        .collect()
    }

    #[test]
    fn claims_start_past_the_rows_held_and_from_the_oldest_every_sixteenth_time() {
        let mut cursor = ClaimCursor::default();
        cursor.claimed(&rows(1..=20), None);
        let mut from_oldest = 0;
        for n in 1..=(2 * RESCAN_EVERY) {
            let after_id = cursor.next_claim();
            if after_id.is_none() {
                from_oldest += 1;
            } else {
                assert_eq!(after_id, Some(20 * i64::from(n)), "claim {n}");
            }
            let first = 20 * i64::from(n) + 1;
            cursor.claimed(&rows(first..=first + 19), after_id);
        }
        assert_eq!(from_oldest, 2);
    }

    #[test]
    fn a_claim_from_the_oldest_that_finds_released_rows_is_followed_by_another() {
        let mut cursor = ClaimCursor::default();
        cursor.claimed(&rows(101..=120), None);
        for _ in 1..RESCAN_EVERY {
            let after_id = cursor.next_claim();
            assert!(after_id.is_some());
            cursor.claimed(&[], after_id);
        }
        // The 16th starts from the oldest and finds rows released below 120 …
        assert_eq!(cursor.next_claim(), None);
        cursor.claimed(&rows(1..=20), None);
        // … so the next one looks again, and finds the rest …
        assert_eq!(cursor.next_claim(), None);
        cursor.claimed(&rows(21..=30), None);
        assert_eq!(cursor.next_claim(), None);
        // … until one finds none below.
        cursor.claimed(&rows(121..=140), None);
        assert_eq!(cursor.next_claim(), Some(140));
    }

    #[test]
    fn one_session_per_batch_of_the_window_and_two_more() {
        assert_eq!(batch_sessions(3000, 1000), 5);
        assert_eq!(batch_sessions(3001, 1000), 6);
        // The window is at least one batch.
        assert_eq!(batch_sessions(1, 1000), 3);
    }

    #[test]
    fn small_batches_in_a_large_window_take_at_most_sixteen_sessions() {
        assert_eq!(batch_sessions(3000, 20), 18);
        assert_eq!(batch_sessions(100_000, 1), 18);
        assert_eq!(batch_sessions(16_000, 1000), 18);
    }
}
