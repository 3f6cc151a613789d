//! The simulator's own AMQP 0-9-1 client, written on lapin directly and sharing nothing with
//! the relay's (the crate's documentation says why). A [`Session`] is one connection with one
//! channel: it consumes the outbound queue with manual acks ([`Requests`], acked in runs with
//! [`Request::ack_through`]) and publishes the replies and pushes with publisher confirms
//! ([`Session::publish`]); a publish returns as soon as the message is written, with its
//! [`Confirm`] to await, so that many can be in flight.
//!
//! What it puts on the wire is what InforCRM sends and the relay reads (docs/contract.md): each
//! message goes through the default exchange with the inbound queue's name as routing key,
//! `mandatory` (a message no queue takes comes back, and counts as not sent), persistent
//! (`delivery_mode` 2), with `content_type` `application/json` and a `message_id`.

use crate::report::{redact, with_causes};
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{
    Acker, BasicProperties, Channel, Confirmation, Connection, ConnectionProperties,
    PublisherConfirm,
};
use std::fmt;
use std::future::Future;
use std::time::Duration;

/// How long the broker may take to accept a connection (TCP, TLS and AMQP handshakes).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// How long the broker may take to answer anything else but a confirm: opening the channel,
/// declaring a queue, an ack, a nack, a close. A broker that went silent would otherwise keep
/// the simulator waiting for ever.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a message may take to be written to the connection, and then to be confirmed.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(30);

/// AMQP's `delivery_mode` of a message the broker keeps on disk.
const PERSISTENT: u8 = 2;

/// Something the broker did not do: what the simulator was doing, and why it failed.
#[derive(Debug)]
pub struct BrokerError {
    doing: String,
    why: String,
}

impl BrokerError {
    pub(crate) fn new(doing: impl Into<String>, why: impl Into<String>) -> BrokerError {
        BrokerError {
            doing: doing.into(),
            why: why.into(),
        }
    }

    fn lapin(doing: impl Into<String>, error: &lapin::Error) -> BrokerError {
        BrokerError::new(doing, with_causes(error))
    }
}

impl fmt::Display for BrokerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.doing, self.why)
    }
}

impl std::error::Error for BrokerError {}

/// Reads `--amqp-url`, so that a URL that cannot work is refused at start instead of being
/// retried for ever. The error shows the URL without its password.
pub fn parse_url(url: &str) -> Result<AMQPUri, String> {
    url.parse::<AMQPUri>().map_err(|reason| {
        format!(
            "--amqp-url {} is not an AMQP URL (amqp://user:password@host:port/vhost): {}",
            redact(url),
            reason.replace(url, "…")
        )
    })
}

/// Waits for one of lapin's operations, at most `limit`.
async fn answered<T>(
    doing: &str,
    limit: Duration,
    operation: impl Future<Output = lapin::Result<T>>,
) -> Result<T, BrokerError> {
    match tokio::time::timeout(limit, operation).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(BrokerError::lapin(doing, &error)),
        Err(_) => Err(BrokerError::new(
            doing,
            format!("no answer from the broker within {limit:?}"),
        )),
    }
}

/// One connection to the broker and its channel.
pub struct Session {
    connection: Connection,
    channel: Channel,
}

/// The requests of the outbound queue, as the broker hands them over: at most the prefetch
/// of them unacknowledged at once.
pub struct Requests {
    consumer: lapin::Consumer,
}

/// A request taken from the outbound queue: the broker keeps it until it is acked, and hands
/// it out again if the connection ends first or it is requeued.
#[derive(Debug)]
pub struct Request {
    /// The body, as the relay published it.
    pub body: Vec<u8>,
    /// True when the broker hands it out again (it was delivered before, and not acked).
    pub redelivered: bool,
    acker: Acker,
}

/// The arguments the queues are declared with: `x-queue-type` for a quorum queue.
fn queue_arguments(quorum: bool) -> FieldTable {
    let mut arguments = FieldTable::default();
    if quorum {
        arguments.insert(
            "x-queue-type".into(),
            lapin::types::AMQPValue::LongString("quorum".into()),
        );
    }
    arguments
}

/// Where [`Session::open`] connects, and what it sets up there.
#[derive(Debug, Clone, Copy)]
pub struct Setup<'a> {
    /// The broker's URL (`--amqp-url`).
    pub url: &'a str,
    /// The name the connection and the consumer show in the broker's lists.
    pub name: &'a str,
    /// The queue to consume: the outbound queue, with the requests.
    pub requests: &'a str,
    /// Queues to declare (durable) first; empty unless `--declare-queues`.
    pub declare: &'a [&'a str],
    /// Whether they are quorum queues (`--quorum-queues`).
    pub quorum: bool,
    /// The most requests unacknowledged at once (`--prefetch`).
    pub prefetch: u16,
}

impl Session {
    /// Connects, opens the channel in confirm mode, declares the queues asked for, and starts
    /// consuming the requests. On an error the connection, if made, is closed again.
    pub async fn open(setup: Setup<'_>) -> Result<(Session, Requests), BrokerError> {
        let uri = parse_url(setup.url).map_err(|reason| BrokerError::new("connecting", reason))?;
        let properties = ConnectionProperties::default().with_connection_name(setup.name.into());
        let connection = answered(
            &format!("connecting to {}", redact(setup.url)),
            CONNECT_TIMEOUT,
            Connection::connect_uri(uri, properties),
        )
        .await?;
        let channel = match answered(
            "opening a channel",
            ANSWER_TIMEOUT,
            connection.create_channel(),
        )
        .await
        {
            Ok(channel) => channel,
            Err(error) => {
                let _ = answered(
                    "closing the connection",
                    ANSWER_TIMEOUT,
                    connection.close(200, "no channel".into()),
                )
                .await;
                return Err(error);
            }
        };
        let session = Session {
            connection,
            channel,
        };
        match session.start(setup).await {
            Ok(requests) => Ok((session, requests)),
            Err(error) => {
                session.close().await;
                Err(error)
            }
        }
    }

    async fn start(&self, setup: Setup<'_>) -> Result<Requests, BrokerError> {
        answered(
            "asking for publisher confirms",
            ANSWER_TIMEOUT,
            self.channel.confirm_select(ConfirmSelectOptions::default()),
        )
        .await?;
        for queue in setup.declare {
            answered(
                &format!("declaring the queue {queue}"),
                ANSWER_TIMEOUT,
                self.channel.queue_declare(
                    (*queue).into(),
                    QueueDeclareOptions {
                        durable: true,
                        ..QueueDeclareOptions::default()
                    },
                    queue_arguments(setup.quorum),
                ),
            )
            .await?;
        }
        answered(
            "setting the prefetch",
            ANSWER_TIMEOUT,
            self.channel
                .basic_qos(setup.prefetch, BasicQosOptions::default()),
        )
        .await?;
        let consumer = answered(
            &format!("consuming the queue {}", setup.requests),
            ANSWER_TIMEOUT,
            self.channel.basic_consume(
                setup.requests.into(),
                setup.name.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ),
        )
        .await?;
        Ok(Requests { consumer })
    }

    /// True while the connection is up.
    pub fn is_open(&self) -> bool {
        self.connection.status().connected()
    }

    /// Publishes `body` to `queue`: returns once the message is written to the connection,
    /// with the broker's confirm to await ([`Confirm::confirmed`]).
    pub async fn publish(
        &self,
        queue: &str,
        message_id: &str,
        body: &[u8],
    ) -> Result<Confirm, BrokerError> {
        let doing = format!("publishing {message_id} to {queue}");
        let properties = BasicProperties::default()
            .with_message_id(message_id.into())
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = answered(
            &doing,
            CONFIRM_TIMEOUT,
            self.channel
                .basic_publish("".into(), queue.into(), options, body, properties),
        )
        .await?;
        Ok(Confirm { doing, confirm })
    }

    /// Closes the channel and the connection, each bounded in time; requests not acked go
    /// back to the queue.
    pub async fn close(self) {
        if self.is_open() {
            let _ = answered(
                "closing the channel",
                ANSWER_TIMEOUT,
                self.channel.close(200, "bye".into()),
            )
            .await;
        }
        let _ = answered(
            "closing the connection",
            ANSWER_TIMEOUT,
            self.connection.close(200, "bye".into()),
        )
        .await;
    }
}

/// The broker's confirm of one published message, still to come.
pub struct Confirm {
    doing: String,
    confirm: PublisherConfirm,
}

impl Confirm {
    /// Waits for the confirm, at most 30 seconds from the first wait: done only when the broker
    /// acked the message and did not return it as unroutable.
    pub async fn confirmed(self) -> Result<(), BrokerError> {
        let confirmation = answered(&self.doing, CONFIRM_TIMEOUT, self.confirm).await?;
        sent(self.doing, confirmation)
    }
}

/// What a confirmation means: sent only when acked and not returned.
fn sent(doing: String, confirmation: Confirmation) -> Result<(), BrokerError> {
    match confirmation {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => Err(BrokerError::new(
            doing,
            format!(
                "the broker returned it ({} {}): does the queue exist?",
                returned.reply_code, returned.reply_text
            ),
        )),
        Confirmation::Nack(_) => Err(BrokerError::new(doing, "the broker refused it (nack)")),
        Confirmation::NotRequested => Err(BrokerError::new(
            doing,
            "the channel is not in confirm mode",
        )),
    }
}

impl Requests {
    /// The next request; `None` when the broker ended the consumer. Cancel-safe: a request is
    /// taken from the consumer only when this returns it.
    pub async fn next(&mut self) -> Option<Result<Request, BrokerError>> {
        let delivery = self.consumer.next().await?;
        Some(match delivery {
            Ok(delivery) => Ok(Request::from(delivery)),
            Err(error) => Err(BrokerError::lapin("receiving a request", &error)),
        })
    }
}

impl From<Delivery> for Request {
    fn from(delivery: Delivery) -> Request {
        Request {
            body: delivery.data,
            redelivered: delivery.redelivered,
            acker: delivery.acker,
        }
    }
}

impl Request {
    /// Acknowledges this request and every request delivered before it on the session (AMQP
    /// `multiple`): the broker forgets them all.
    pub async fn ack_through(&self) -> Result<(), BrokerError> {
        let options = BasicAckOptions { multiple: true };
        answered("acking requests", ANSWER_TIMEOUT, self.acker.ack(options))
            .await
            .map(|_| ())
    }

    /// Hands the request back to the queue, to be delivered again.
    pub async fn requeue(&self) -> Result<(), BrokerError> {
        let options = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        answered(
            "handing a request back",
            ANSWER_TIMEOUT,
            self.acker.nack(options),
        )
        .await
        .map(|_| ())
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn amqp_urls_are_read() {
        for url in [
            "amqp://127.0.0.1:5672/%2f",
            "amqp://crm:s3cret@mq.bank:5672/crm",
            "amqps://crm:s3cret@mq.bank/crm",
        ] {
            assert!(parse_url(url).is_ok(), "{url}");
        }
    }

    #[test]
    fn a_bad_url_is_refused_without_its_password() {
        for url in [
            "http://crm:s3cret@mq.bank/crm",
            "amqp://crm:s3cret@mq.bank:notaport/crm",
        ] {
            let error = parse_url(url).expect_err(url);
            assert!(error.starts_with("--amqp-url "), "{error}");
            assert!(!error.contains("s3cret"), "{error}");
        }
    }

    #[test]
    fn only_an_ack_without_a_return_counts_as_sent() {
        assert!(sent("publishing 7 to answers".into(), Confirmation::Ack(None)).is_ok());
        let nacked = sent("publishing 7 to answers".into(), Confirmation::Nack(None));
        assert_eq!(
            nacked.expect_err("a nack").to_string(),
            "publishing 7 to answers: the broker refused it (nack)"
        );
        assert!(sent("publishing 7".into(), Confirmation::NotRequested).is_err());
    }

    #[test]
    fn a_broker_error_says_what_failed_and_why() {
        let error = BrokerError::new("publishing 7 to answers", "the broker refused it (nack)");
        assert_eq!(
            error.to_string(),
            "publishing 7 to answers: the broker refused it (nack)"
        );
    }
}
