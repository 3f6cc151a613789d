//! `infor-relay`: the sidecar between infor_comm's outbox and InforCRM's queues.
//!
//! - [`outbound`]: outbox → broker, with publisher confirms;
//! - [`inbound`]: broker → `infor_comm.apply_delivery`, in batches, acked after the commit; a
//!   message that keeps failing is set aside, an oversized one journaled by size and digest;
//! - [`failures`]: what the inbound side remembers of failing messages across its sessions;
//! - [`session`]: the reconnect loop both sides run (connect, work, reconnect with back-off);
//! - [`backoff`]: capped, jittered back-off, and connecting with it;
//! - [`broker`]: all the AMQP code, behind the relay's own types and error;
//! - [`database`]: all the SQL, as a member of `infor_comm_relay`, with TLS when asked for;
//! - [`config`]: command-line flags, queue names, durations, passwords hidden from logs;
//! - [`metrics`]: Prometheus metrics, `/health` and `/ready`;
//! - [`backlog`]: the outbox's backlog for the metrics, read on a timer of its own;
//! - [`logging`]: text or JSON logs, and the guard that keeps client data out of them;
//! - [`shutdown`]: SIGTERM and SIGINT, and the handle every task watches;
//! - [`errors`]: error messages with their causes.
//!
//! The simulator of InforCRM (`infor-crm-sim`) is a crate of its own, `crm-sim/`, and shares no
//! code with this one: it is the other side of the contract, so a mistake in this library's
//! broker code cannot hide from the end-to-end tests behind the same mistake on both sides.

#![warn(missing_docs)]

pub mod backlog;
pub mod backoff;
pub mod broker;
pub mod config;
pub mod database;
#[cfg(test)]
mod docs_agree;
pub mod errors;
pub mod failures;
pub mod inbound;
pub mod logging;
pub mod metrics;
pub mod outbound;
pub mod session;
pub mod shutdown;

use config::{redact, Config};
use errors::Chain;
use std::future::Future;
use std::sync::Arc;

/// The exit status of a relay that cannot start because of a setting that can never work
/// (`EX_CONFIG` of sysexits.h): a missing or malformed setting, an unreadable file, a metrics
/// address in use, queues the broker refuses to declare. The packaged unit does not restart on
/// it (`RestartPreventExitStatus=`); a database or broker that cannot be reached yet is
/// retried inside the process instead.
pub const EXIT_CONFIG: u8 = 78;

/// Errors that stop the relay from starting: each is a setting that can never work, and
/// ends the process with [`EXIT_CONFIG`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The flags do not make sense.
    #[error("configuration: {0}")]
    Config(String),
    /// The metrics endpoint cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address of `--metrics-addr`.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The broker refused to declare the queues (`--declare-queues`): they exist with other
    /// arguments, or the login may not declare them.
    #[error("the broker refuses to declare the queues: {0}")]
    Declare(String),
}

/// Runs the relay until `shutdown` resolves, then lets in-flight work finish and returns.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), StartError> {
    let mut config = config;
    config.read_secret_files().map_err(StartError::Config)?;
    let queues = config.queues().map_err(StartError::Config)?;
    let database =
        database::DatabaseTarget::new(config.database_url(), config.database_ca_file.as_deref())
            .map_err(StartError::Config)?
            .with_timeout(config.database_timeout);
    if config.amqp_urls().is_empty() {
        return Err(StartError::Config("AMQP_URL (--amqp-url) is empty".into()));
    }
    for url in config.amqp_urls() {
        broker::Broker::check_url(url).map_err(StartError::Config)?;
    }
    let handle = metrics::install().map_err(StartError::Config)?;
    let listener =
        metrics::bind(config.metrics_addr)
            .await
            .map_err(|source| StartError::Listen {
                addr: config.metrics_addr,
                source,
            })?;
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        database = %redact(config.database_url()),
        database_tls = database.uses_tls(),
        broker = %config.amqp_urls_shown(),
        outbound = %queues.outbound,
        inbound = %queues.inbound,
        metrics = %config.metrics_addr,
        "infor-relay starting"
    );
    // /health and /ready answer from the first second, also while the queues are declared.
    let health = Arc::new(metrics::Health::default());
    let (trigger, stop) = shutdown::channel();
    let server = tokio::spawn(metrics::serve(
        listener,
        handle,
        health.clone(),
        stop.clone(),
    ));
    let mut shutdown = std::pin::pin!(shutdown);
    if config.declare_queues {
        let names = [queues.outbound.as_str(), queues.inbound.as_str()];
        let declared = tokio::select! {
            declared = declare_queues(&config, &names) => declared,
            _ = &mut shutdown => {
                trigger.trigger();
                tracing::info!("infor-relay stopped before it declared the queues");
                return Ok(());
            }
        };
        if let Err(error) = declared {
            trigger.trigger();
            return Err(error);
        }
    }
    let config = Arc::new(config);
    let inbound_failures = failures::SharedFailureLog::default();
    let context = |queue: String| session::Context {
        config: config.clone(),
        target: database.clone(),
        queue,
        health: health.clone(),
        inbound_failures: inbound_failures.clone(),
    };
    let tasks = [
        tokio::spawn(backlog::watch(
            database.clone(),
            config.poll_interval,
            stop.clone(),
        )),
        tokio::spawn(session::supervise::<outbound::Outbound>(
            context(queues.outbound),
            stop.clone(),
        )),
        tokio::spawn(session::supervise::<inbound::Inbound>(
            context(queues.inbound),
            stop.clone(),
        )),
        server,
    ];
    shutdown.await;
    tracing::info!(
        timeout = ?config.shutdown_timeout,
        "shutting down: finishing the work in flight"
    );
    trigger.trigger();
    let stopping = async {
        for task in tasks {
            if let Err(error) = task.await {
                tracing::error!(%error, "a relay task failed");
            }
        }
    };
    if tokio::time::timeout(config.shutdown_timeout, stopping)
        .await
        .is_err()
    {
        // What is unconfirmed stays for the next start: PostgreSQL releases the claimed rows
        // when the connections close, the broker redelivers the unacked messages.
        tracing::warn!(
            timeout = ?config.shutdown_timeout,
            "the work in flight did not finish within --shutdown-timeout; stopping anyway, as a SIGKILL would"
        );
        return Ok(());
    }
    tracing::info!("infor-relay stopped");
    Ok(())
}

/// Declares the queues, retrying for as long as the broker cannot be reached: a refusal of the
/// declaration itself is the only error.
async fn declare_queues(config: &Config, queues: &[&str]) -> Result<(), StartError> {
    let mut backoff =
        backoff::Backoff::new(std::time::Duration::from_millis(200), config.max_backoff);
    loop {
        match broker::Broker::connect_first(&config.amqp_urls(), 0, "infor-relay declare").await {
            Ok((broker, _)) => {
                let declared = broker.declare_queues(queues, config.queue_type).await;
                broker.close().await;
                match declared {
                    Ok(()) => return Ok(()),
                    // The broker answered no: another try would get the same answer.
                    Err(error) if error.is_refusal() => {
                        return Err(StartError::Declare(Chain(&error).to_string()))
                    }
                    Err(error) => {
                        tracing::warn!(error = %Chain(&error), "the connection failed while declaring the queues; retrying");
                        tokio::time::sleep(backoff.next_delay()).await;
                    }
                }
            }
            Err(error) => {
                tracing::warn!(
                    error = %Chain(&error),
                    url = %config.amqp_urls_shown(),
                    "cannot reach the broker to declare the queues; retrying"
                );
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
