//! Everything that speaks AMQP 0-9-1 (lapin) lives here, so that another transport (the bank's
//! TIBCO EMS) can be added beside it without touching the rest of the relay.
//!
//! - [`Publisher`]: a channel in confirm mode; a batch is published, then its confirms are
//!   awaited together. A message counts as published only when the broker acked it and did not
//!   return it (every publish is `mandatory`, so an unroutable message comes back).
//! - [`Consumer`]: manual acknowledgements with a bounded prefetch.

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// A broker error: a failed connection, channel, publish, ack or nack. It shows the AMQP
/// library's message and keeps its causes, so that the rest of the relay needs no AMQP type.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct BrokerError(#[from] lapin::Error);

/// A connection to the broker.
pub struct Broker {
    connection: Connection,
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
    /// Nacked, or not confirmed in time; the reason says which.
    Refused(String),
    /// Returned by the broker: no queue takes it (the queue is missing); the reason says so.
    Unroutable(String),
}

impl Broker {
    /// Connects; `name` shows in the broker's connection list.
    pub async fn connect(url: &str, name: &str) -> Result<Broker, BrokerError> {
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection = Connection::connect(url, properties).await?;
        Ok(Broker { connection })
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
    pub async fn declare_queues(&self, queues: &[&str]) -> Result<(), BrokerError> {
        let channel = self.connection.create_channel().await?;
        for queue in queues {
            channel
                .queue_declare(
                    (*queue).into(),
                    QueueDeclareOptions::durable(),
                    FieldTable::default(),
                )
                .await?;
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
        Ok(Consumer {
            _channel: channel,
            consumer,
        })
    }

    /// Closes the connection politely (errors are irrelevant at that point).
    pub async fn close(&self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// A publishing channel with confirms.
pub struct Publisher {
    channel: Channel,
}

impl Publisher {
    /// Declares `queue` durable on this channel (for RabbitMQ, with `--declare-queues`).
    pub async fn declare(&self, queue: &str) -> Result<(), BrokerError> {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?;
        Ok(())
    }

    /// Publishes a batch to `queue` (default exchange, persistent, JSON, mandatory) and waits up
    /// to `timeout` for all the confirms. Returns one outcome per message, in order. An error
    /// means the channel failed while sending: no outcome is known and none may be marked.
    pub async fn publish_batch(
        &self,
        queue: &str,
        messages: &[Outgoing<'_>],
        timeout: Duration,
    ) -> Result<Vec<PublishOutcome>, BrokerError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let mut pending = Vec::with_capacity(messages.len());
        for message in messages {
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(message.message_id.into());
            let send = self.channel.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                message.payload,
                properties,
            );
            let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
            let confirm = bounded(remaining, "a publish", send).await?;
            pending.push(confirm);
        }
        let mut outcomes = Vec::with_capacity(pending.len());
        for confirm in pending {
            let outcome = match tokio::time::timeout_at(deadline, confirm).await {
                Err(_) => PublishOutcome::Refused(format!(
                    "no confirm from the broker within {timeout:?}"
                )),
                Ok(Err(error)) => PublishOutcome::Refused(format!(
                    "confirm failed: {}",
                    crate::errors::Chain(&error)
                )),
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
            };
            outcomes.push(outcome);
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

/// One received message, to ack once it is safely applied, or to hand back.
pub struct Incoming {
    /// The body as received.
    pub body: Vec<u8>,
    /// The AMQP `message_id`, when the sender set one.
    pub message_id: Option<String>,
    /// True when the broker delivered it before.
    pub redelivered: bool,
    acker: lapin::Acker,
}

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
    /// The next message; `None` when the consumer or its connection ended.
    pub async fn next(&mut self) -> Option<Result<Incoming, BrokerError>> {
        let delivery = self.consumer.next().await?;
        Some(delivery.map_err(BrokerError).map(|delivery| {
            Incoming {
                message_id: delivery
                    .properties
                    .message_id()
                    .as_ref()
                    .map(|id| id.to_string()),
                redelivered: delivery.redelivered,
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
        ] {
            let error = Broker::check_url(url).expect_err(url);
            assert!(error.starts_with("invalid --amqp-url"), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }
}
