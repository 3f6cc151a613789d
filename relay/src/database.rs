//! The relay's side of the database: it calls only the extension's relay functions
//! (`claim_outbox`, `mark_published`, `mark_failed`, `outbox_backlog`, `apply_inbound`), as a
//! member of `infor_comm_relay`, and listens on `infor_comm_outbox`.

use futures_util::StreamExt;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// A database error.
pub type DatabaseError = tokio_postgres::Error;

/// The channel the extension notifies when it enqueues requests.
pub const OUTBOX_CHANNEL: &str = "infor_comm_outbox";

/// Checks `--database-url` before the relay starts, so that a URL that can never work stops
/// the relay with a clear error instead of being retried for ever. The relay connects without
/// TLS, so a URL that requires TLS (`sslmode=require`) is refused here.
pub fn check_url(url: &str) -> Result<(), String> {
    let config: tokio_postgres::Config = url.parse().map_err(|error| {
        format!(
            "invalid --database-url {}: {}",
            crate::config::redact(url),
            crate::errors::Chain(&error)
        )
    })?;
    if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
        return Err(format!(
            "--database-url {} asks for sslmode=require, but the relay connects to PostgreSQL \
             without TLS: run it beside the database (loopback or the Unix socket) and drop \
             sslmode=require",
            crate::config::redact(url)
        ));
    }
    Ok(())
}

/// One claimed outbox row.
#[derive(Debug, Clone)]
pub struct OutboxRow {
    /// The row's id, for `mark_published` / `mark_failed`.
    pub outbox_id: i64,
    /// Our requestID, used as the AMQP message id.
    pub request_id: String,
    /// The request JSON, published unchanged.
    pub payload: String,
}

/// A session with the bank's database.
pub struct Database {
    client: Client,
    notifications: mpsc::UnboundedReceiver<()>,
}

impl Database {
    /// Connects; with `listen`, also subscribes to [`OUTBOX_CHANNEL`].
    pub async fn connect(
        url: &str,
        application_name: &str,
        listen: bool,
    ) -> Result<Database, DatabaseError> {
        let mut config: tokio_postgres::Config = url.parse()?;
        config.application_name(application_name);
        config.connect_timeout(Duration::from_secs(10));
        let (client, mut connection) = config.connect(NoTls).await?;
        let (sender, notifications) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
            while let Some(message) = messages.next().await {
                match message {
                    Ok(AsyncMessage::Notification(_)) => {
                        let _ = sender.send(());
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(error = %crate::errors::Chain(&error), "database connection ended");
                        break;
                    }
                }
            }
            // Dropping the sender tells the owner the connection is gone.
        });
        if listen {
            client
                .batch_execute(&format!("LISTEN {OUTBOX_CHANNEL}"))
                .await?;
        }
        Ok(Database {
            client,
            notifications,
        })
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed()
    }

    /// Waits for a notification or `timeout`; returns false when the connection ended.
    pub async fn wait_for_work(&mut self, timeout: Duration) -> bool {
        match tokio::time::timeout(timeout, self.notifications.recv()).await {
            Ok(Some(())) => {
                // Several notifications may have piled up; one claim serves them all.
                while self.notifications.try_recv().is_ok() {}
                true
            }
            Ok(None) => false,
            Err(_) => !self.client.is_closed(),
        }
    }

    /// Claims up to `batch_size` requests for `lease`.
    pub async fn claim(
        &self,
        batch_size: i32,
        lease: Duration,
    ) -> Result<Vec<OutboxRow>, DatabaseError> {
        let lease = format!("{} milliseconds", lease.as_millis());
        let rows = self
            .client
            .query(
                "SELECT outbox_id, request_id, payload FROM infor_comm.claim_outbox($1, $2::text::interval)",
                &[&batch_size, &lease],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| OutboxRow {
                outbox_id: row.get(0),
                request_id: row.get(1),
                payload: row.get(2),
            })
            .collect())
    }

    /// Marks requests the broker confirmed; returns how many were newly marked.
    pub async fn mark_published(&self, ids: &[i64]) -> Result<i32, DatabaseError> {
        let row = self
            .client
            .query_one("SELECT infor_comm.mark_published($1)", &[&ids])
            .await?;
        Ok(row.get(0))
    }

    /// Records a failed publish; the row is retried after the extension's back-off.
    pub async fn mark_failed(&self, id: i64, error: &str) -> Result<(), DatabaseError> {
        self.client
            .execute("SELECT infor_comm.mark_failed($1, $2)", &[&id, &error])
            .await?;
        Ok(())
    }

    /// The unpublished requests and the age of the oldest, in seconds.
    pub async fn backlog(&self) -> Result<(i64, f64), DatabaseError> {
        let row = self
            .client
            .query_one(
                "SELECT pending, oldest_age_seconds FROM infor_comm.outbox_backlog()",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Journals and applies one inbound message (committed when this returns); returns the
    /// outcome: reply, push, duplicate, orphan or rejected.
    pub async fn apply_inbound(
        &self,
        body: &[u8],
        message_id: Option<&str>,
    ) -> Result<String, DatabaseError> {
        let row = self
            .client
            .query_one(
                "SELECT infor_comm.apply_inbound($1::bytea, $2::text)",
                &[&body, &message_id],
            )
            .await?;
        Ok(row.get(0))
    }
}

#[cfg(test)]
mod tests {
    use super::check_url;

    #[test]
    fn a_plain_url_or_key_value_string_is_accepted() {
        assert_eq!(check_url("postgresql://relay:pw@db.bank:5432/bank"), Ok(()));
        assert_eq!(
            check_url("host=/var/run/postgresql dbname=bank user=relay"),
            Ok(())
        );
        assert_eq!(
            check_url("postgresql://relay@db/bank?sslmode=disable"),
            Ok(())
        );
    }

    #[test]
    fn sslmode_require_is_refused_without_the_password() {
        let error =
            check_url("postgresql://relay:s3cret@db/bank?sslmode=require").expect_err("refused");
        assert!(error.contains("sslmode=require"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn an_unparseable_url_names_the_problem_without_the_password() {
        let error =
            check_url("postgresql://relay:s3cret@db/bank?sslmode=sometimes").expect_err("refused");
        assert!(error.starts_with("invalid --database-url"), "{error}");
        assert!(error.contains("sslmode"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }
}
