//! Outbound: outbox → broker. Wakes on the extension's NOTIFY and polls as a fallback, and
//! publishes with publisher confirms as a pipeline: while the confirms of one claimed batch are
//! in flight, the next batch is claimed and published, and the rows the broker acked are marked
//! published as the acks arrive. At most `--publish-window` rows are claimed and not yet
//! recorded at any time, so a batch is published as soon as it is claimed (well within its
//! lease).
//!
//! A row is marked published only after the broker acked it without returning it; a nack, a
//! return or a missing confirm marks the row failed, to be retried after a back-off. When a
//! connection fails, rows whose outcome is not recorded are left as they are: their lease ends
//! and they are claimed again, so every request reaches the broker at least once.

use crate::broker::{Broker, BrokerError, Outgoing, PendingConfirm, PublishOutcome, Publisher};
use crate::database::{Database, DatabaseError, OutboxRow};
use crate::errors::Chain;
use crate::metrics::{self, Direction, Link};
use crate::session::{Context, SessionEnd, Side};
use crate::shutdown::Shutdown;
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
        let mut marks: Option<Database> = None;
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
            // A second session marks the acked rows, so that marking and claiming run side by
            // side in the database instead of one after the other.
            if marks.as_ref().is_none_or(Database::is_closed) {
                let name = format!("infor-relay {} marks", Direction::Outbound.label());
                match Database::connect(&context.target, &name, false).await {
                    Ok(connected) => marks = Some(connected),
                    Err(error) => return database_error(error),
                }
            }
            let Some(marks) = marks.as_ref() else {
                return SessionEnd::closed(Link::Database);
            };
            // Publishes this batch and the next ones until the outbox has nothing claimable;
            // the batches in flight are finished even when shutdown is asked for meanwhile.
            let mut pipeline = Pipeline::new(context, &database, marks, broker, &publisher);
            if let Err(end) = pipeline.run(rows, shutdown).await {
                return end;
            }
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

type Claim<'a> = Pin<Box<dyn Future<Output = Result<Vec<OutboxRow>, DatabaseError>> + Send + 'a>>;
type Mark<'a> = Pin<Box<dyn Future<Output = Result<(usize, i32), DatabaseError>> + Send + 'a>>;

/// A published row whose confirm is awaited.
struct InFlight {
    outbox_id: i64,
    /// The claimed batch it belongs to (an index into [`Pipeline::batches`], counted from
    /// [`Pipeline::first_batch`]).
    batch: u64,
    confirm: PendingConfirm,
}

/// What the broker said about the rows of one claimed batch, for its log line and `/ready`.
#[derive(Debug, Default)]
struct Tally {
    rows: usize,
    answered: usize,
    confirmed: usize,
    refused: usize,
    unroutable: usize,
    first_reason: Option<String>,
}

/// The batches of one busy period: claimed, published, confirmed and marked as a pipeline.
struct Pipeline<'a> {
    context: &'a Context,
    /// The session that claims (and marks rows failed).
    database: &'a Database,
    /// The session that marks rows published.
    marks: &'a Database,
    broker: &'a Broker,
    publisher: &'a Publisher,
    /// Published rows, oldest first (the broker confirms in publishing order).
    in_flight: VecDeque<InFlight>,
    /// Acked rows not yet handed to `mark_published`.
    acked: Vec<i64>,
    /// Rows being marked by the `mark_published` call in progress.
    marking: usize,
    /// Batches whose confirms are not all in, oldest first.
    batches: VecDeque<Tally>,
    /// The number of the oldest batch in `batches`.
    first_batch: u64,
    window: usize,
}

impl<'a> Pipeline<'a> {
    fn new(
        context: &'a Context,
        database: &'a Database,
        marks: &'a Database,
        broker: &'a Broker,
        publisher: &'a Publisher,
    ) -> Pipeline<'a> {
        let batch_size = context.config.batch_size.max(1) as usize;
        Pipeline {
            context,
            database,
            marks,
            broker,
            publisher,
            in_flight: VecDeque::new(),
            acked: Vec::new(),
            marking: 0,
            batches: VecDeque::new(),
            first_batch: 0,
            window: (context.config.publish_window as usize).max(batch_size),
        }
    }

    /// Rows claimed and not yet recorded.
    fn outstanding(&self) -> usize {
        self.in_flight.len() + self.acked.len() + self.marking
    }

    /// Publishes `rows`, then claims and publishes more while there is room in the window,
    /// marks acked rows as their confirms arrive, and returns once the outbox had nothing more
    /// to claim and every row claimed is recorded. On a lost connection, the acked rows are
    /// still marked when the database allows it; the others wait for their lease to end.
    async fn run(
        &mut self,
        rows: Vec<OutboxRow>,
        shutdown: &mut Shutdown,
    ) -> Result<(), SessionEnd> {
        let batch_size = self.context.config.batch_size.max(1) as usize;
        let config = &self.context.config;
        let database = self.database;
        let marks = self.marks;
        let mut exhausted = rows.len() < batch_size;
        if let Err(error) = self.publish(rows).await {
            return Err(self.abandon(broker_error(error)).await);
        }
        let mut claim: Option<Claim<'a>> = None;
        let mut mark: Option<Mark<'a>> = None;
        let mut stopping = shutdown.is_shutdown();
        loop {
            if claim.is_none()
                && !exhausted
                && !stopping
                && self.outstanding() + batch_size <= self.window
            {
                if self.broker.is_connected() {
                    claim = Some(Box::pin(database.claim(config.batch_size, config.lease)));
                } else {
                    // Nothing more is claimed; what is in flight fails and is recorded below.
                    exhausted = true;
                }
            }
            if mark.is_none() && !self.acked.is_empty() {
                // Whatever was acked meanwhile goes in one call: small at idle, large under load.
                let ids = std::mem::take(&mut self.acked);
                self.marking = ids.len();
                mark = Some(Box::pin(async move {
                    let marked = marks.mark_published(&ids).await?;
                    Ok((ids.len(), marked))
                }));
            }
            if claim.is_none() && mark.is_none() && self.in_flight.is_empty() {
                if !self.broker.is_connected() {
                    return Err(SessionEnd::closed(Link::Broker));
                }
                return Ok(());
            }
            let has_front = !self.in_flight.is_empty();
            let front = self.in_flight.front_mut().map(|row| &mut row.confirm);
            tokio::select! {
                claimed = async { claim.as_mut().expect("guarded").await }, if claim.is_some() => {
                    claim = None;
                    let rows = match claimed {
                        Ok(rows) => rows,
                        Err(error) => return Err(self.abandon_with(mark, database_error(error)).await),
                    };
                    exhausted = rows.len() < batch_size;
                    if let Err(error) = self.publish(rows).await {
                        return Err(self.abandon_with(mark, broker_error(error)).await);
                    }
                }
                outcome = async { front.expect("guarded").outcome().await }, if has_front => {
                    if let Some(row) = self.in_flight.pop_front() {
                        if let Err(error) = self.record(row, outcome).await {
                            return Err(self.abandon_with(mark, database_error(error)).await);
                        }
                    }
                }
                marked = async { mark.as_mut().expect("guarded").await }, if mark.is_some() => {
                    mark = None;
                    self.marking = 0;
                    match marked {
                        Ok((published, _)) => {
                            ::metrics::counter!(metrics::PUBLISHED).increment(published as u64);
                        }
                        Err(error) => return Err(database_error(error)),
                    }
                }
                _ = shutdown.recv(), if !stopping => {
                    // Finish what is claimed, claim nothing more.
                    stopping = true;
                }
            }
        }
    }

    /// Publishes a claimed batch without waiting for its confirms.
    async fn publish(&mut self, rows: Vec<OutboxRow>) -> Result<(), BrokerError> {
        if rows.is_empty() {
            return Ok(());
        }
        let batch = self.first_batch + self.batches.len() as u64;
        self.batches.push_back(Tally {
            rows: rows.len(),
            ..Tally::default()
        });
        let timeout = self.context.config.confirm_timeout;
        for row in rows {
            let message = Outgoing {
                message_id: &row.request_id,
                payload: row.payload.as_bytes(),
            };
            let confirm = self
                .publisher
                .send(&self.context.queue, message, timeout)
                .await;
            let confirm = match confirm {
                Ok(confirm) => confirm,
                Err(error) => {
                    // The rest of the batch was not sent: its rows wait for their lease.
                    return Err(error);
                }
            };
            self.in_flight.push_back(InFlight {
                outbox_id: row.outbox_id,
                batch,
                confirm,
            });
        }
        Ok(())
    }

    /// Records what the broker said about one row: acked rows wait to be marked, others are
    /// marked failed at once. Closes the row's batch when it was the last of it.
    async fn record(
        &mut self,
        row: InFlight,
        outcome: PublishOutcome,
    ) -> Result<(), DatabaseError> {
        let index = (row.batch - self.first_batch) as usize;
        let reason = match outcome {
            PublishOutcome::Confirmed => {
                self.acked.push(row.outbox_id);
                if let Some(tally) = self.batches.get_mut(index) {
                    tally.confirmed += 1;
                }
                None
            }
            PublishOutcome::Refused(reason) => {
                if let Some(tally) = self.batches.get_mut(index) {
                    tally.refused += 1;
                }
                Some(reason)
            }
            PublishOutcome::Unroutable(reason) => {
                if let Some(tally) = self.batches.get_mut(index) {
                    tally.unroutable += 1;
                }
                Some(reason)
            }
        };
        if let Some(reason) = reason {
            ::metrics::counter!(metrics::PUBLISH_FAILED).increment(1);
            self.database.mark_failed(row.outbox_id, &reason).await?;
            if let Some(tally) = self.batches.get_mut(index) {
                tally.first_reason.get_or_insert(reason);
            }
        }
        if let Some(tally) = self.batches.get_mut(index) {
            tally.answered += 1;
        }
        while self
            .batches
            .front()
            .is_some_and(|tally| tally.answered >= tally.rows)
        {
            if let Some(tally) = self.batches.pop_front() {
                self.first_batch += 1;
                self.close_batch(tally).await;
            }
        }
        Ok(())
    }

    /// One log line per batch, `/ready`'s view of routing, and the queue declared again when
    /// the batch came back unroutable.
    async fn close_batch(&self, tally: Tally) {
        let context = self.context;
        if let Some(reason) = &tally.first_reason {
            tracing::warn!(
                refused = tally.refused,
                unroutable = tally.unroutable,
                batch = tally.rows,
                %reason,
                "outbound: requests not published; they are retried after a back-off"
            );
        }
        let was_unroutable = context.health.is_unroutable();
        context
            .health
            .set_unroutable(tally.unroutable > 0 && tally.confirmed == 0);
        if tally.unroutable > 0 && context.config.declare_queues {
            // The queue was deleted under us: declare it again, as at start.
            if let Err(error) = self.publisher.declare(&context.queue).await {
                tracing::warn!(error = %Chain(&error), "outbound: cannot declare the queue again");
            }
        } else if was_unroutable && tally.unroutable == 0 && tally.confirmed > 0 {
            tracing::info!("outbound: the broker routes the requests again");
        }
        if tally.confirmed > 0 {
            tracing::info!(
                published = tally.confirmed,
                batch = tally.rows,
                "outbound: batch confirmed"
            );
        }
        context.health.set(
            Link::Broker,
            Direction::Outbound,
            self.broker.is_connected(),
        );
    }

    /// Ends the busy period on `end`: rows already acked are still marked when the database
    /// allows it, so that they are not published again; the others wait for their lease.
    async fn abandon(&mut self, end: SessionEnd) -> SessionEnd {
        self.abandon_with(None, end).await
    }

    async fn abandon_with(&mut self, mark: Option<Mark<'a>>, end: SessionEnd) -> SessionEnd {
        let mut published = 0;
        if let Some(mark) = mark {
            if let Ok((count, _)) = mark.await {
                published += count;
            }
        }
        // Confirms that are already in count too; the others are not awaited.
        while let Some(row) = self.in_flight.front_mut() {
            match futures_util::FutureExt::now_or_never(row.confirm.outcome()) {
                Some(PublishOutcome::Confirmed) => {
                    if let Some(row) = self.in_flight.pop_front() {
                        self.acked.push(row.outbox_id);
                    }
                }
                _ => break,
            }
        }
        let ids = std::mem::take(&mut self.acked);
        if !ids.is_empty() && !self.marks.is_closed() {
            if let Ok(_marked) = self.marks.mark_published(&ids).await {
                published += ids.len();
            }
        }
        ::metrics::counter!(metrics::PUBLISHED).increment(published as u64);
        self.in_flight.clear();
        self.marking = 0;
        end
    }
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
