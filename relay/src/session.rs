//! The reconnect loop both sides of the relay run: connect to the database and then to the
//! broker, with back-off; run a session until a connection fails or shutdown is asked for;
//! log how it ended, count the reconnect and pause before the next attempt. A [`Side`] says
//! what its session does; [`supervise`] does the rest, the same way for both.

use crate::backoff::{connect_until_up, Backoff};
use crate::broker::{Broker, BrokerError};
use crate::config::Config;
use crate::database::{Database, DatabaseTarget};
use crate::metrics::{Direction, Health, Link};
use crate::shutdown::Shutdown;
use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a side's session works with besides its connections.
#[derive(Clone)]
pub struct Context {
    /// The relay's configuration.
    pub config: Arc<Config>,
    /// Where the database is.
    pub target: DatabaseTarget,
    /// The side's queue: where requests go, or where replies and pushes come from.
    pub queue: String,
    /// The connections' state, for `/ready` and the metrics.
    pub health: Arc<Health>,
    /// The inbound side's memory of failing messages, kept across its sessions.
    pub inbound_failures: crate::failures::SharedFailureLog,
}

/// One side of the relay: what it opens on the broker and what it does while connected.
pub trait Side {
    /// Which side: the label of its log lines and metrics.
    const DIRECTION: Direction;
    /// What the side logs once both connections are up ("consuming", "connected").
    const CONNECTED: &'static str;
    /// Whether its database connection listens for the outbox's notifications.
    const LISTEN: bool;
    /// What the side opens on the broker connection: a publisher or a consumer.
    type Channel: Send;

    /// Opens the side's channel on a new broker connection.
    fn open(
        broker: &Broker,
        context: &Context,
    ) -> impl Future<Output = Result<Self::Channel, BrokerError>> + Send;

    /// Works until a connection fails or shutdown is asked for, and says which.
    fn session(
        context: &Context,
        database: Database,
        broker: &Broker,
        channel: Self::Channel,
        shutdown: &mut Shutdown,
    ) -> impl Future<Output = SessionEnd> + Send;
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// Shutdown was asked for: the loop stops.
    Shutdown,
    /// A connection failed or was found closed: the loop reconnects after a pause.
    Lost(Lost),
}

/// A connection a session lost, and what to log about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lost {
    /// Which connection.
    pub link: Link,
    /// What happened and what follows, as the log line says it after the side's name.
    pub what: &'static str,
    /// The error with its causes, when there is one.
    pub error: Option<String>,
}

impl SessionEnd {
    /// `link` failed with `error`; `what` says so in the log line.
    pub fn failed(link: Link, what: &'static str, error: impl Display) -> SessionEnd {
        SessionEnd::Lost(Lost {
            link,
            what,
            error: Some(error.to_string()),
        })
    }

    /// `link` was found closed, without an error to show.
    pub fn closed(link: Link) -> SessionEnd {
        let what = match link {
            Link::Database => "database connection lost; reconnecting",
            Link::Broker => "broker connection lost; reconnecting",
        };
        SessionEnd::Lost(Lost {
            link,
            what,
            error: None,
        })
    }
}

/// Runs side `S` until shutdown, reconnecting as needed. A session that ends within
/// [`crate::backoff::STABLE_SESSION`] of connecting does not start the back-off over.
pub async fn supervise<S: Side>(context: Context, mut shutdown: Shutdown) {
    let direction = S::DIRECTION;
    let name = format!("infor-relay {}", direction.label());
    let config = &context.config;
    let health = &context.health;
    let mut backoff = Backoff::new(Duration::from_millis(200), config.max_backoff);
    // The broker node (of --amqp-url's list) the next connection tries first.
    let mut next_node = 0;
    while !shutdown.is_shutdown() {
        let Some(database) = connect_until_up(
            || Database::connect(&context.target, &name, S::LISTEN),
            Link::Database,
            direction,
            &crate::config::redact(context.target.url()),
            health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        // The extension's version first: against one the relay does not know, nothing is
        // claimed or applied (its messages wait in the queue) until the two agree.
        match database.extension_version().await {
            Ok((version, standby)) => {
                if let Some(version) = &version {
                    health.set_extension_version(version);
                }
                // Never through a standby: a server demoted under a relay, or a URL naming one.
                let checked = if standby {
                    Err(crate::database::standby_refusal())
                } else {
                    crate::database::check_extension_version(version.as_deref())
                };
                if let Err(refusal) = checked {
                    // Said once, by the first side to find it.
                    if health.replace_refused(Some(refusal.clone())) {
                        tracing::error!("{}: {refusal}", direction.label());
                    }
                    drop(database);
                    if !shutdown
                        .sleep(config.poll_interval.max(Duration::from_secs(1)))
                        .await
                    {
                        break;
                    }
                    continue;
                }
                if health.refused().is_some_and(|refusal| {
                    refusal.starts_with(crate::database::VERSION_REFUSAL)
                        || refusal.starts_with(crate::database::STANDBY_REFUSAL)
                }) && health.replace_refused(None)
                {
                    tracing::info!(
                        version = version.as_deref().unwrap_or_default(),
                        "{}: the database is a primary with an extension this relay knows; going on",
                        direction.label()
                    );
                }
            }
            Err(error) => {
                tracing::warn!(error = %crate::errors::Chain(&error), "{}: cannot read the extension's version; reconnecting", direction.label());
                health.reconnecting(Link::Database, direction);
                if !shutdown.sleep(backoff.next_delay()).await {
                    break;
                }
                continue;
            }
        }
        let urls = config.amqp_urls();
        let connect_broker = || async {
            let (broker, node) = Broker::connect_first(&urls, next_node, &name).await?;
            let channel = S::open(&broker, &context).await?;
            Ok::<_, BrokerError>((broker, channel, node))
        };
        let Some((broker, channel, node)) = connect_until_up(
            connect_broker,
            Link::Broker,
            direction,
            &config.amqp_urls_shown(),
            health,
            &mut backoff,
            &mut shutdown,
        )
        .await
        else {
            break;
        };
        tracing::info!(queue = %context.queue, "{}: {}", direction.label(), S::CONNECTED);
        let started = Instant::now();
        let end = S::session(&context, database, &broker, channel, &mut shutdown).await;
        backoff.session_ended(started.elapsed());
        // Said first, then the connection is closed, which hands every unacked inbound message
        // back to the queue: politely after a shutdown or a database failure, at once when the
        // broker failed (a close it does not answer would wait in vain).
        match end {
            SessionEnd::Shutdown => {
                broker.close().await;
                break;
            }
            SessionEnd::Lost(lost) => {
                // A broker node that failed: the next connection starts with the next node.
                if lost.link == Link::Broker {
                    next_node = node + 1;
                }
                match &lost.error {
                    Some(error) => tracing::warn!(%error, "{}: {}", direction.label(), lost.what),
                    None => tracing::warn!("{}: {}", direction.label(), lost.what),
                }
                health.reconnecting(lost.link, direction);
                // The broker connection is closed too: it is down from now on, not only once
                // the broker has answered the close, until it is opened again.
                health.set(Link::Broker, direction, false);
                match lost.link {
                    Link::Broker => broker.abort().await,
                    Link::Database => broker.close().await,
                }
            }
        }
        if !shutdown.sleep(backoff.next_delay()).await {
            break;
        }
    }
    health.set(Link::Database, direction, false);
    health.set(Link::Broker, direction, false);
    tracing::info!("{}: stopped", direction.label());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_closed_connection_is_named_in_the_log_line() {
        assert_eq!(
            SessionEnd::closed(Link::Database),
            SessionEnd::Lost(Lost {
                link: Link::Database,
                what: "database connection lost; reconnecting",
                error: None,
            })
        );
        let SessionEnd::Lost(lost) = SessionEnd::closed(Link::Broker) else {
            panic!("not a lost connection");
        };
        assert_eq!(lost.what, "broker connection lost; reconnecting");
    }

    #[test]
    fn a_failure_keeps_its_error() {
        let error = std::io::Error::other("broken pipe");
        assert_eq!(
            SessionEnd::failed(Link::Broker, "broker error; reconnecting", &error),
            SessionEnd::Lost(Lost {
                link: Link::Broker,
                what: "broker error; reconnecting",
                error: Some("broken pipe".into()),
            })
        );
    }
}
