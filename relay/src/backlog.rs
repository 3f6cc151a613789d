//! The outbox's backlog for the metrics ([`crate::metrics::OUTBOX_BACKLOG`],
//! [`crate::metrics::OUTBOX_OLDEST_AGE`]), read every `--poll-interval` over a database
//! connection of its own, so that the gauges say how things are now whatever the two sides'
//! connections are doing: with the broker down, the oldest request's age keeps growing. While
//! the database cannot be read, both gauges are NaN (not a frozen value); `/ready` and
//! `infor_relay_connection_up` say why.

use crate::database::{Database, DatabaseTarget};
use crate::errors::Chain;
use crate::metrics;
use crate::shutdown::Shutdown;
use std::time::Duration;

/// Reads the backlog every `interval` until shutdown.
pub async fn watch(target: DatabaseTarget, interval: Duration, mut shutdown: Shutdown) {
    let mut database: Option<Database> = None;
    loop {
        if database.as_ref().is_none_or(Database::is_closed) {
            database = match Database::connect(&target, "infor-relay backlog", false).await {
                Ok(database) => Some(database),
                Err(error) => {
                    tracing::debug!(error = %Chain(&error), "backlog: cannot connect");
                    None
                }
            };
        }
        let reading = match &database {
            Some(connected) => match connected.backlog().await {
                Ok(reading) => Some(reading),
                Err(error) => {
                    tracing::debug!(error = %Chain(&error), "backlog: cannot read it");
                    None
                }
            },
            None => None,
        };
        let (pending, oldest) = match reading {
            Some((pending, oldest)) => (pending as f64, oldest),
            None => {
                // Connect again at the next reading.
                database = None;
                (f64::NAN, f64::NAN)
            }
        };
        ::metrics::gauge!(metrics::OUTBOX_BACKLOG).set(pending);
        ::metrics::gauge!(metrics::OUTBOX_OLDEST_AGE).set(oldest);
        if !shutdown.sleep(interval).await {
            return;
        }
    }
}
