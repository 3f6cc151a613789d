//! Everything that speaks AMQP 0-9-1 (lapin) lives here, so that another transport (the bank's
//! TIBCO EMS) can be added beside it without touching the rest of the relay.
//!
//! - [`Publisher`]: a channel in confirm mode; [`Publisher::send`] publishes a message and
//!   returns its [`PendingConfirm`] at once, so that many confirms can be in flight. A message
//!   counts as published only when the broker acked it and did not return it (every publish is
//!   `mandatory`, so an unroutable message comes back).
//! - [`Consumer`]: manual acknowledgements with a bounded prefetch.

use crate::config::QueueType;
use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::future::Future;
use std::pin::Pin;
use std::task::Poll;
use std::time::Duration;

/// A broker error: a failed connection, channel, publish, ack or nack. It shows the AMQP
/// library's message and keeps its causes, so that the rest of the relay needs no AMQP type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BrokerError(#[from] lapin::Error);

/// The arguments a queue of `queue_type` is declared with.
fn queue_arguments(queue_type: QueueType) -> FieldTable {
    let mut arguments = FieldTable::default();
    if queue_type == QueueType::Quorum {
        arguments.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
    }
    arguments
}

/// The broker refused to declare a queue: it exists with other arguments (another type, say),
/// or the login may not declare it. Says which queue, the type asked for, and the broker's
/// reason (which names the argument, what was asked and what the queue has).
#[derive(Debug, thiserror::Error)]
#[error("cannot declare the queue {queue:?} as a {asked} queue (--queue-type {asked}): {source}")]
pub struct DeclareError {
    /// The queue.
    pub queue: String,
    /// The type asked for.
    pub asked: &'static str,
    /// The broker's answer.
    #[source]
    pub source: BrokerError,
}

impl DeclareError {
    fn of(queue: &str, queue_type: QueueType, error: lapin::Error) -> DeclareError {
        DeclareError {
            queue: queue.to_string(),
            asked: queue_type.name(),
            source: error.into(),
        }
    }

    /// True when the broker refused the declaration itself (an existing queue with other
    /// arguments, or no permission), not when the connection failed.
    pub fn is_refusal(&self) -> bool {
        matches!(self.source.0.kind(), lapin::ErrorKind::ProtocolError(_))
    }
}

/// A connection to the broker.
pub struct Broker {
    connection: Connection,
    /// The channels opened for the sides, kept so that none closes by itself when its last
    /// user drops it (lapin then closes it in the background, racing [`Broker::close`], which
    /// logged a spurious ERROR at every shutdown); [`Broker::close`] closes them first.
    channels: std::sync::Mutex<Vec<Channel>>,
    /// The broker's reason while it blocks this connection (`connection.blocked`), and who
    /// is told when that changes.
    blocked: std::sync::Arc<std::sync::Mutex<Blocking>>,
    /// The task that follows the connection's events (blocked, unblocked).
    events: tokio::task::AbortHandle,
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.events.abort();
    }
}

/// One message to publish.
#[derive(Debug, Clone, Copy)]
pub struct Outgoing<'a> {
    /// The AMQP `message_id` (our requestID).
    pub message_id: &'a str,
    /// The body, sent unchanged.
    pub payload: &'a [u8],
}

/// What the broker said about one published message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublishOutcome {
    /// Acked and routed: the message is in the queue.
    Confirmed,
    /// Nacked, or the write or the confirm failed; the reason says which.
    Refused(String),
    /// Not written, or not confirmed, by the deadline: the broker connection is taken for dead
    /// (or blocked); the reason says which.
    TimedOut(String),
    /// Returned by the broker: no queue takes it (the queue is missing); the reason says so.
    Unroutable(String),
}

/// A published message whose confirm is awaited: [`PendingConfirm::outcome`] says what the
/// broker answered, or that it did not answer before the deadline.
pub struct PendingConfirm {
    state: Confirming,
    deadline: tokio::time::Instant,
    timeout: Duration,
}

/// lapin's publish, from the moment its frames are queued on the connection until it has
/// written them: it then resolves to the confirm to await.
type Writing =
    Pin<Box<dyn Future<Output = Result<lapin::PublisherConfirm, lapin::Error>> + Send + 'static>>;

/// Where a message is between [`Publisher::send`] and the broker's answer.
enum Confirming {
    /// Queued on the connection, not yet written to the socket.
    Writing(Writing),
    /// Written; the broker's confirm is awaited.
    Written(lapin::PublisherConfirm),
    /// The write failed or timed out: the outcome to report.
    NotWritten(PublishOutcome),
}

impl PendingConfirm {
    /// Waits until the message is written to the broker's connection (or the deadline
    /// passes), then keeps only its confirm: lapin's publish, over a kilobyte with its copy of
    /// the body, is dropped. Cancel-safe, like [`PendingConfirm::outcome`].
    pub async fn written(&mut self) {
        if let Confirming::Writing(writing) = &mut self.state {
            let timeout = self.timeout;
            self.state = match tokio::time::timeout_at(self.deadline, writing).await {
                Err(_) => Confirming::NotWritten(PublishOutcome::TimedOut(format!(
                    "not even written to the broker within {timeout:?}"
                ))),
                Ok(Err(error)) => Confirming::NotWritten(PublishOutcome::Refused(format!(
                    "publish failed: {}",
                    crate::errors::Chain(&error)
                ))),
                Ok(Ok(confirm)) => Confirming::Written(confirm),
            };
        }
    }

    /// Waits for the broker's confirm until the deadline (`timeout` after the publish):
    /// confirmed only when acked and not returned. Cancel-safe: dropped before it finishes, it
    /// can be awaited again; once it has returned, it must not be awaited again.
    pub async fn outcome(&mut self) -> PublishOutcome {
        let timeout = self.timeout;
        self.written().await;
        let confirm = match &mut self.state {
            Confirming::Written(confirm) => confirm,
            Confirming::NotWritten(outcome) => return outcome.clone(),
            // Not reached: `written` has settled the write.
            Confirming::Writing(_) => return PublishOutcome::Refused("publish failed".into()),
        };
        match tokio::time::timeout_at(self.deadline, confirm).await {
            Err(_) => {
                PublishOutcome::TimedOut(format!("no confirm from the broker within {timeout:?}"))
            }
            Ok(Err(error)) => {
                PublishOutcome::Refused(format!("confirm failed: {}", crate::errors::Chain(&error)))
            }
            Ok(Ok(confirmation)) if confirmation.is_nack() => {
                PublishOutcome::Refused("nacked by the broker".into())
            }
            Ok(Ok(confirmation)) => match confirmation.take_message() {
                None => PublishOutcome::Confirmed,
                Some(returned) => PublishOutcome::Unroutable(format!(
                    "returned by the broker: {} {} (does the queue exist?)",
                    returned.reply_code, returned.reply_text
                )),
            },
        }
    }
}

/// The largest frame the relay asks the broker for, unless `--amqp-url` says `frame_max`.
/// lapin keeps 32 frames of this size for each direction of a connection: RabbitMQ's default
/// of 128 KiB would cost 8 MiB a connection, 16 KiB costs 1 MiB. Requests and replies are under
/// 2 KB, so each still goes in one frame; a larger body is sent in several.
///
/// It also bounds a message's headers: the broker forwards a content header (the properties
/// and the header table) in one frame whatever the frame size it negotiated. A content header
/// frame over this size is not an error (a patch of lapin: vendor/lapin): its header table is
/// not kept, and the message is set aside ([`Incoming::headers_over_limit`]).
pub const FRAME_MAX: u32 = 16 * 1024;

/// The deepest nesting of tables and arrays the relay reads in a message's headers (the table
/// itself is level 1; a patch of amq-protocol-types: vendor/amq-protocol-types). A deeper table
/// is not read, and the message is set aside ([`Incoming::headers_over_limit`]).
pub const MAX_HEADER_NESTING: usize = lapin::types::parsing::MAX_NESTING;

impl Broker {
    /// Connects to the first node of `urls` that answers, starting with the one at `from`
    /// (modulo their number) and going round; returns it and its place in `urls`. A node that
    /// does not answer is logged, and the next one tried; the error is the last node's.
    pub async fn connect_first(
        urls: &[&str],
        from: usize,
        name: &str,
    ) -> Result<(Broker, usize), BrokerError> {
        let mut last = None;
        for step in 0..urls.len() {
            let node = (from + step) % urls.len();
            match Broker::connect(urls[node], name).await {
                Ok(broker) => {
                    if urls.len() > 1 {
                        tracing::info!(url = %crate::config::redact(urls[node]), "{name}: connected to this broker node");
                    }
                    return Ok((broker, node));
                }
                Err(error) => {
                    if urls.len() > 1 {
                        tracing::warn!(
                            error = %crate::errors::Chain(&error),
                            url = %crate::config::redact(urls[node]),
                            "{name}: cannot connect to this broker node; trying the next"
                        );
                    }
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| {
            BrokerError(lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "no broker URL",
            )))
        }))
    }

    /// Connects; `name` shows in the broker's connection list. Unless the URL says
    /// `frame_max`, frames are at most [`FRAME_MAX`] bytes.
    pub async fn connect(url: &str, name: &str) -> Result<Broker, BrokerError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let mut uri: lapin::uri::AMQPUri = url.parse().map_err(|reason: String| {
            lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                reason.replace(url, "<the URL>"),
            ))
        })?;
        uri.query.frame_max.get_or_insert(FRAME_MAX);
        // Bounded: a broker that accepts the TCP connection and then says nothing (a stopped
        // process, a held network path) would keep the relay waiting for ever.
        let tls = url.starts_with("amqps://");
        let connection = bounded(
            CONNECT_TIMEOUT,
            "the connection's handshake",
            Connection::connect_uri(uri, properties),
        )
        .await
        .map_err(|error| {
            // rustls's words for a server that answered in plain AMQP.
            let text = crate::errors::Chain(&error).to_string();
            if tls && (text.contains("InvalidContentType") || text.contains("corrupt message")) {
                BrokerError(lapin::Error::from(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!(
                        "the broker's port does not speak TLS (amqps:// against a plain AMQP port?): {text}"
                    ),
                )))
            } else {
                error
            }
        })?;
        let blocked = std::sync::Arc::new(std::sync::Mutex::new(Blocking::default()));
        let events = tokio::spawn(follow_blocking(
            connection.events_listener(),
            blocked.clone(),
            name.to_string(),
        ));
        Ok(Broker {
            connection,
            channels: std::sync::Mutex::new(Vec::new()),
            blocked,
            events: events.abort_handle(),
        })
    }

    /// The broker's reason while it blocks this connection (`connection.blocked`, sent on a
    /// memory or disk alarm): it then takes no message from it until it unblocks it.
    pub fn blocked(&self) -> Option<String> {
        lock_blocking(&self.blocked).reason.clone()
    }

    /// Calls `report` with the broker's reason each time it blocks this connection, and with
    /// `None` when it unblocks it (at once, with the present state, too).
    pub fn report_blocking(&self, report: impl Fn(Option<String>) + Send + 'static) {
        let mut blocking = lock_blocking(&self.blocked);
        report(blocking.reason.clone());
        blocking.report = Some(Box::new(report));
    }

    /// Checks `--amqp-url` before the relay starts: a URL that cannot be parsed is a
    /// configuration error, not a reason to retry for ever. The message never shows the password.
    pub fn check_url(url: &str) -> Result<(), String> {
        crate::config::check_at_signs("--amqp-url", url)?;
        match url.parse::<lapin::uri::AMQPUri>() {
            Ok(_) => Ok(()),
            Err(reason) => Err(format!(
                "invalid --amqp-url {}: {}",
                crate::config::redact(url),
                reason.replace(url, "<the URL>")
            )),
        }
    }

    /// True while the connection is open.
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Declares the queues durable (for RabbitMQ; TIBCO's queues are created by its admins).
    pub async fn declare_queues(
        &self,
        queues: &[&str],
        queue_type: QueueType,
    ) -> Result<(), DeclareError> {
        let channel = self
            .connection
            .create_channel()
            .await
            .map_err(|error| DeclareError::of("", queue_type, error))?;
        for queue in queues {
            channel
                .queue_declare(
                    (*queue).into(),
                    QueueDeclareOptions::durable(),
                    queue_arguments(queue_type),
                )
                .await
                .map_err(|error| DeclareError::of(queue, queue_type, error))?;
        }
        let _ = channel.close(200, "declared".into()).await;
        Ok(())
    }

    /// A channel in publisher-confirm mode.
    pub async fn publisher(&self) -> Result<Publisher, BrokerError> {
        let channel = self.connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.keep(&channel);
        Ok(Publisher { channel })
    }

    /// Starts consuming `queue` with manual acks and at most `prefetch` unacked messages.
    pub async fn consumer(
        &self,
        queue: &str,
        prefetch: u16,
        tag: &str,
    ) -> Result<Consumer, BrokerError> {
        let channel = self.connection.create_channel().await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        self.keep(&channel);
        Ok(Consumer {
            _channel: channel,
            consumer,
        })
    }

    /// Keeps a clone of a channel handed to a side, for [`Broker::close`].
    fn keep(&self, channel: &Channel) {
        lock_channels(&self.channels).push(channel.clone());
    }

    /// Closes the channels, then the connection, politely (errors are irrelevant at that point;
    /// unacked inbound messages go back to the queue).
    pub async fn close(&self) {
        self.close_within(ACK_TIMEOUT).await;
    }

    /// Closes a connection that failed (no answer in time, blocked): the connection alone,
    /// waiting at most a second for the broker's answer; the socket is closed anyway.
    pub async fn abort(&self) {
        lock_channels(&self.channels).clear();
        let _ = bounded(
            Duration::from_secs(1),
            "the connection's close",
            self.connection.close(200, "bye".into()),
        )
        .await;
    }

    async fn close_within(&self, limit: Duration) {
        let channels = std::mem::take(&mut *lock_channels(&self.channels));
        // A blocked connection is not read by the broker: a polite close would wait in vain.
        let blocked = self.blocked().is_some();
        if self.is_connected() && !blocked {
            for channel in channels {
                let _ = bounded(limit, "a channel close", channel.close(200, "bye".into())).await;
            }
        }
        // Bounded: a broker that stopped answering would keep this waiting for ever.
        let _ = bounded(
            if blocked {
                Duration::from_secs(1)
            } else {
                limit
            },
            "the connection's close",
            self.connection.close(200, "bye".into()),
        )
        .await;
    }
}

fn lock_channels(
    channels: &std::sync::Mutex<Vec<Channel>>,
) -> std::sync::MutexGuard<'_, Vec<Channel>> {
    channels
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether the broker blocks a connection, and who is told when that changes.
#[derive(Default)]
struct Blocking {
    reason: Option<String>,
    report: Option<Box<dyn Fn(Option<String>) + Send>>,
}

fn lock_blocking(blocking: &std::sync::Mutex<Blocking>) -> std::sync::MutexGuard<'_, Blocking> {
    blocking
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Follows a connection's events: records in `blocked` whether the broker blocks it (and
/// reports it), and logs each block (one WARN) and unblock (one INFO).
async fn follow_blocking(
    events: impl futures_util::Stream<Item = lapin::Event> + Send + 'static,
    blocked: std::sync::Arc<std::sync::Mutex<Blocking>>,
    connection: String,
) {
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let state = match event {
            lapin::Event::ConnectionBlocked(reason) => {
                tracing::warn!(
                    %connection,
                    %reason,
                    "the broker blocks this connection (connection.blocked: a memory or disk alarm): it takes no message until it unblocks; /ready is false and no batch is claimed meanwhile"
                );
                Some(reason)
            }
            lapin::Event::ConnectionUnblocked => {
                tracing::info!(%connection, "the broker unblocked this connection");
                None
            }
            _ => continue,
        };
        let mut blocking = lock_blocking(&blocked);
        if let Some(report) = &blocking.report {
            report(state.clone());
        }
        blocking.reason = state;
    }
}

/// A publishing channel with confirms.
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Declares `queue` durable on this channel (for RabbitMQ, with `--declare-queues`).
    pub async fn declare(&self, queue: &str, queue_type: QueueType) -> Result<(), BrokerError> {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                queue_arguments(queue_type),
            )
            .await?;
        Ok(())
    }

    /// Publishes one message to `queue` (default exchange, persistent, JSON, mandatory) without
    /// waiting for its confirm: the returned [`PendingConfirm`] resolves to the broker's answer,
    /// so that many messages can be in flight at once. The call does not wait either for the
    /// connection to write the message: it returns once the message's frames are queued on the
    /// connection, in the order of the calls, so that many messages go out in one write
    /// instead of one round trip to lapin's I/O thread per message (which took half of the
    /// relay's CPU time). [`PendingConfirm::written`] waits for the write; a failed or late
    /// write is reported by [`PendingConfirm::outcome`] as refused. An error means the channel
    /// had already failed: nothing was sent.
    pub fn send(
        &self,
        queue: &str,
        message: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<PendingConfirm, BrokerError> {
        self.send_until(
            queue,
            message,
            tokio::time::Instant::now() + timeout,
            timeout,
        )
    }

    /// [`Publisher::send`] with the deadline of a whole batch: the message's write and confirm
    /// must come by `deadline`, `timeout` after the batch's first message was sent (the time
    /// the reason of a [`PublishOutcome::TimedOut`] shows).
    pub fn send_until(
        &self,
        queue: &str,
        message: Outgoing<'_>,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<PendingConfirm, BrokerError> {
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(message.message_id.into());
        let channel = self.channel.clone();
        let queue: lapin::types::ShortString = queue.into();
        let payload = message.payload.to_vec();
        let mut writing: Writing = Box::pin(async move {
            channel
                .basic_publish(
                    "".into(),
                    queue,
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &payload,
                    properties,
                )
                .await
        });
        // lapin takes the delivery tag and queues the frames before its first await, so this
        // one poll puts the message on the connection, after the ones sent before it, without
        // waiting. The waker is a no-op: the write is awaited, with the task's waker, by
        // `written`.
        let mut context = std::task::Context::from_waker(futures_util::task::noop_waker_ref());
        let state = match writing.as_mut().poll(&mut context) {
            Poll::Ready(Err(error)) => return Err(error.into()),
            Poll::Ready(Ok(confirm)) => Confirming::Written(confirm),
            Poll::Pending => Confirming::Writing(writing),
        };
        Ok(PendingConfirm {
            state,
            deadline,
            timeout,
        })
    }

    /// Publishes a batch to `queue` and waits up to `timeout` for all the confirms. Returns one
    /// outcome per message, in order. An error means the channel failed while sending: no
    /// outcome is known and none may be marked.
    pub async fn publish_batch(
        &self,
        queue: &str,
        messages: &[Outgoing<'_>],
        timeout: Duration,
    ) -> Result<Vec<PublishOutcome>, BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            pending.push(self.send_until(queue, *message, deadline, timeout)?);
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for mut confirm in pending {
            outcomes.push(confirm.outcome().await);
        }
        Ok(outcomes)
    }

    /// Publishes one message and waits for its confirm.
    pub async fn publish_one(
        &self,
        queue: &str,
        message: Outgoing<'_>,
        timeout: Duration,
    ) -> Result<PublishOutcome, BrokerError> {
        let mut outcomes = self.publish_batch(queue, &[message], timeout).await?;
        Ok(outcomes
            .pop()
            .unwrap_or(PublishOutcome::Refused("no outcome".into())))
    }
}

/// A consumer with manual acknowledgements.
pub struct Consumer {
    _channel: Channel,
    consumer: lapin::Consumer,
}

/// The most of an oversized body the relay keeps in memory and the inbox keeps: its first
/// 64 KiB (docs/contract.md, "Oversized messages").
pub const OVERSIZED_HEAD_BYTES: usize = 64 * 1024;

/// Sets the largest inbound body the relay holds whole, for every consumer of the process. A
/// larger body is never held in memory: only its first [`OVERSIZED_HEAD_BYTES`] are kept, and
/// its SHA-256 is computed as its frames arrive (a patch of lapin: vendor/lapin).
pub fn limit_body_size(limit: u64) {
    lapin::message::set_consumer_body_limit(limit, OVERSIZED_HEAD_BYTES);
}

/// What is known of a body over the limit besides its head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Oversized {
    /// The body's full size in bytes.
    pub size: u64,
    /// The SHA-256 of the whole body.
    pub sha256: [u8; 32],
}

/// One received message, to ack once it is safely applied, or to hand back.
pub struct Incoming {
    /// The body as received; for an oversized one, only its first bytes.
    pub body: Vec<u8>,
    /// The AMQP `message_id`, when the sender set one, as text for logs (it may hold any
    /// character, NUL too; bytes that were not UTF-8 show as U+F780–U+F7FF).
    pub message_id: Option<String>,
    /// The AMQP `message_id` exactly as the sender wrote it, byte for byte.
    pub message_id_bytes: Option<Vec<u8>>,
    /// True when the broker delivered it before.
    pub redelivered: bool,
    /// Its delivery tag on its channel: the order the broker handed the messages over in.
    pub delivery_tag: u64,
    /// Set when the body was over the limit of [`limit_body_size`].
    pub oversized: Option<Oversized>,
    /// Set, to the reason, when the message's header table is over the relay's limits
    /// ([`MAX_HEADER_NESTING`], [`FRAME_MAX`]): the table was not read, the message is set aside.
    pub headers_over_limit: Option<String>,
    acker: lapin::Acker,
}

/// How long the broker may take to open a connection (TCP, TLS and AMQP handshakes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);

/// How long an ack or a nack may take before the connection is taken for dead: on a
/// connection that died without a word, lapin would wait for it forever.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Waits for `operation` at most `limit`; a timeout is an IO error, as a dead connection is.
async fn bounded<T>(
    limit: Duration,
    what: &str,
    operation: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, operation).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(BrokerError(lapin::Error::from(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            format!("no answer from the broker to {what} within {limit:?}"),
        )))),
    }
}

impl Incoming {
    /// Acknowledges: the broker forgets the message.
    pub async fn ack(&self) -> Result<(), BrokerError> {
        bounded(
            ACK_TIMEOUT,
            "an ack",
            self.acker.ack(BasicAckOptions::default()),
        )
        .await
        .map(|_| ())
    }

    /// Acknowledges this message and every message delivered before it on its channel that is
    /// not yet acknowledged, in one frame. Only for a message none of whose predecessors may
    /// still go back to the queue.
    pub async fn ack_up_to(&self) -> Result<(), BrokerError> {
        bounded(
            ACK_TIMEOUT,
            "an ack",
            self.acker.ack(BasicAckOptions { multiple: true }),
        )
        .await
        .map(|_| ())
    }

    /// Hands the message back to the queue, for this or another consumer.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        let nack = self.acker.nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        });
        bounded(ACK_TIMEOUT, "a nack", nack).await.map(|_| ())
    }
}

impl Consumer {
    /// A message the broker has already handed over, without waiting; `None` when there is
    /// none yet (or the consumer ended: the next [`Consumer::next`] says which).
    pub fn ready(&mut self) -> Option<Result<Incoming, BrokerError>> {
        use futures_util::FutureExt;
        self.next().now_or_never().flatten()
    }

    /// The next message; `None` when the consumer or its connection ended.
    pub async fn next(&mut self) -> Option<Result<Incoming, BrokerError>> {
        let delivery = self.consumer.next().await?;
        Some(delivery.map_err(BrokerError).map(|delivery| {
            let message_id = delivery
                .properties
                .message_id()
                .as_ref()
                .map(|id| id.to_string());
            // A header table over the limits is not read: the patched parser (vendor/) puts a
            // marker with the reason in its place.
            let headers_over_limit = delivery
                .properties
                .headers()
                .as_ref()
                .and_then(lapin::types::parsing::over_limit_reason);
            Incoming {
                headers_over_limit,
                // Undoes the escapes of a patched amq-protocol-types (vendor/): the bytes of an
                // id that is not UTF-8 reach the database as they were sent.
                message_id_bytes: message_id
                    .as_deref()
                    .map(lapin::types::parsing::unescape_invalid_utf8),
                message_id,
                redelivered: delivery.redelivered,
                delivery_tag: delivery.delivery_tag,
                oversized: delivery.oversized.map(|o| Oversized {
                    size: o.size,
                    sha256: o.sha256,
                }),
                body: delivery.data,
                acker: delivery.acker,
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::Broker;

    #[test]
    fn amqp_and_amqps_urls_are_accepted() {
        assert_eq!(
            Broker::check_url("amqp://guest:guest@127.0.0.1:5672/%2f"),
            Ok(())
        );
        assert_eq!(Broker::check_url("amqps://relay:pw@mq.bank/prod"), Ok(()));
    }

    #[test]
    fn a_bad_url_is_refused_without_the_password() {
        for url in [
            "http://relay:s3cret@mq.bank/prod",
            "amqp://relay:s3cret@mq.bank:notaport/prod",
            // An unescaped '@' in the password (config::check_at_signs).
            "amqp://relay:p@ss@mq.bank/prod",
        ] {
            let error = Broker::check_url(url).expect_err(url);
            assert!(error.starts_with("invalid --amqp-url"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
