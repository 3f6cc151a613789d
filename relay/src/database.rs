//! The relay's side of the database: it calls only the extension's relay functions
//! (`lock_outbox`, `mark_published`, `mark_failed`, `outbox_backlog`, `apply_delivery`, …), as a
//! member of `infor_comm_relay`, and listens on `infor_comm_outbox`.

use crate::config::redact;
use crate::errors::Chain;
use futures_util::StreamExt;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use tokio_postgres::config::SslMode;
use tokio_postgres::{AsyncMessage, Client, Connection, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

/// An error of tokio-postgres.
type PgError = tokio_postgres::Error;

/// A database error: one the server or the connection reported, or no answer in time.
#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    /// The server refused a statement, or the connection failed.
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    /// The server did not answer within `--database-timeout`: the connection is taken for
    /// dead (a silent network cut) and closed.
    #[error("no answer from the database within {0:?} (--database-timeout); the connection is taken for dead")]
    TimedOut(Duration),
}

/// When `error` is the extension refusing the relay itself rather than a message: its SQL and
/// its library are of different versions (SQLSTATE 55000, between a package and its `ALTER
/// EXTENSION … UPDATE`), or this login may not use it in this database (42501). The message
/// the extension raised.
pub fn refusal_of(error: &PgError) -> Option<String> {
    let db = error.as_db_error()?;
    let code = db.code().code();
    ((code == "55000" || code == "42501") && db.message().starts_with("infor_comm: "))
        .then(|| db.message().to_string())
}

impl DatabaseError {
    /// The extension's refusal of the relay itself, when that is what this is ([`refusal_of`]).
    pub fn refusal(&self) -> Option<String> {
        match self {
            DatabaseError::Postgres(error) => refusal_of(error),
            DatabaseError::TimedOut(_) => None,
        }
    }
}

/// The versions of the infor_comm extension this relay works with: the SQL functions it calls
/// exist in them with the signatures it calls them with. Against another version (a database
/// not yet `ALTER EXTENSION infor_comm UPDATE`d after a package upgrade, say), the relay claims
/// and applies nothing until the versions agree.
pub const EXTENSION_VERSIONS: &[&str] = &["0.3.0"];

/// How a refusal of the extension's version begins (`/ready` and the log say it).
pub const VERSION_REFUSAL: &str = "infor_comm's version in the database is";

/// How the refusal of a standby begins (`/ready` and the log say it).
pub const STANDBY_REFUSAL: &str = "the database server is a standby (in recovery)";

/// What the relay says of a standby it connected to: it works only on a primary.
pub fn standby_refusal() -> String {
    format!(
        "{STANDBY_REFUSAL}: the relay claims and applies nothing through it and tries again (list every node of the cluster in --database-url with target_session_attrs=read-write, and it finds the primary)"
    )
}

/// Accepts a version of the extension in [`EXTENSION_VERSIONS`]; else says which, against
/// which, and what to do.
pub fn check_extension_version(found: Option<&str>) -> Result<(), String> {
    let relay = env!("CARGO_PKG_VERSION");
    let known = EXTENSION_VERSIONS.join(", ");
    match found {
        Some(version) if EXTENSION_VERSIONS.contains(&version) => Ok(()),
        Some(version) => Err(format!(
            "{VERSION_REFUSAL} {version}; infor-relay {relay} works with {known}: nothing is claimed or applied, the messages wait in the queue (ALTER EXTENSION infor_comm UPDATE, or a relay of that version)"
        )),
        None => Err(format!(
            "{VERSION_REFUSAL} none (the extension is not created in this database); infor-relay {relay} works with {known}: nothing is claimed or applied (CREATE EXTENSION infor_comm, or check --database-url)"
        )),
    }
}

/// The default of `--database-timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The channel the extension notifies when it enqueues requests.
pub const OUTBOX_CHANNEL: &str = "infor_comm_outbox";

/// Where and how the relay connects to the database: the parsed `--database-url`, and the TLS
/// connector when the URL says `sslmode=require`.
///
/// With `sslmode=require` the connection is encrypted and the server's certificate is verified
/// against the system's trusted roots and `--database-ca-file`, including the host name (as
/// libpq's `verify-full`). Otherwise (`disable`, `prefer` or no `sslmode`) the relay connects
/// without TLS, as a sidecar beside the database does.
#[derive(Clone)]
pub struct DatabaseTarget {
    config: tokio_postgres::Config,
    tls: Option<MakeRustlsConnect>,
    url: String,
    timeout: Duration,
}

impl DatabaseTarget {
    /// Parses the URL and loads the trusted certificates, so that a configuration that can
    /// never work stops the relay at start with a clear error instead of being retried for ever.
    /// Errors never show the password.
    pub fn new(url: &str, ca_file: Option<&Path>) -> Result<DatabaseTarget, String> {
        let shown = redact(url);
        crate::config::check_at_signs("--database-url", url)?;
        let config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| format!("invalid --database-url {shown}: {}", Chain(&error)))?;
        let tls = match config.get_ssl_mode() {
            SslMode::Require => Some(MakeRustlsConnect::new(tls_config(ca_file)?)),
            _ if ca_file.is_some() => {
                return Err(format!(
                    "--database-ca-file is set but --database-url {shown} does not say \
                     sslmode=require, so the connection would not use TLS"
                ))
            }
            _ => None,
        };
        let mut target = DatabaseTarget {
            config,
            tls,
            url: url.to_string(),
            timeout: DEFAULT_TIMEOUT,
        };
        target.set_timeout(DEFAULT_TIMEOUT);
        Ok(target)
    }

    /// Sets the longest wait for an answer of the database (`--database-timeout`): every call
    /// of a [`Database`] that takes longer fails with [`DatabaseError::TimedOut`] and closes the
    /// connection. The connection's TCP keepalives (idle a third of it, then a probe every
    /// sixth, three probes) and its TCP user timeout (all of it) are derived from it, so that
    /// the kernel also drops a connection whose peer vanished, idle or not. A URL that sets its
    /// own `keepalives_idle` keeps it.
    pub fn with_timeout(mut self, timeout: Duration) -> DatabaseTarget {
        self.set_timeout(timeout);
        self
    }

    fn set_timeout(&mut self, timeout: Duration) {
        let timeout = timeout.max(Duration::from_secs(1));
        self.timeout = timeout;
        self.config
            .keepalives(true)
            .keepalives_interval(timeout / 6)
            .keepalives_retries(3)
            .tcp_user_timeout(timeout);
        // tokio-postgres's default idle time is 2 hours: unless the URL chose another.
        if self.config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
            self.config.keepalives_idle(timeout / 3);
        }
    }

    /// The URL as given (pass it through [`redact`] before showing it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when connections use TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }
}

/// A TLS client configuration trusting the system's roots and the certificates of `ca_file`.
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore::empty();
    // Unreadable system certificates are not fatal: the CA file may be all that is needed.
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    if let Some(path) = ca_file {
        let shown = path.display();
        let certs = CertificateDer::pem_file_iter(path)
            .map_err(|error| format!("cannot read --database-ca-file {shown}: {error}"))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| format!("cannot read --database-ca-file {shown}: {error}"))?;
        if certs.is_empty() {
            return Err(format!(
                "--database-ca-file {shown} holds no PEM certificate"
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|error| format!("--database-ca-file {shown}: {error}"))?;
        }
    }
    if roots.is_empty() {
        return Err(
            "sslmode=require, but no trusted certificate was found: give --database-ca-file".into(),
        );
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("TLS: {error}"))?
        .with_root_certificates(roots)
        .with_no_client_auth())
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

/// Runs a connection: forwards its notifications to `sender` until it ends; dropping the
/// sender then tells the owner the connection is gone.
async fn drive<S, T>(mut connection: Connection<S, T>, sender: mpsc::UnboundedSender<()>)
where
    S: AsyncRead + AsyncWrite + Unpin,
    T: AsyncRead + AsyncWrite + Unpin,
{
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(message) = messages.next().await {
        match message {
            Ok(AsyncMessage::Notification(_)) => {
                let _ = sender.send(());
            }
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(error = %Chain(&error), "database connection ended");
                break;
            }
        }
    }
}

/// A session with the bank's database.
pub struct Database {
    client: Client,
    /// The task that drives the connection, aborted when the server does not answer in time.
    driver: tokio::task::AbortHandle,
    timeout: Duration,
    notifications: mpsc::UnboundedReceiver<()>,
    inbound: tokio::sync::OnceCell<InboundStatements>,
    outbound: tokio::sync::OnceCell<OutboundStatements>,
}

impl Database {
    /// Connects; with `listen`, also subscribes to [`OUTBOX_CHANNEL`].
    pub async fn connect(
        target: &DatabaseTarget,
        application_name: &str,
        listen: bool,
    ) -> Result<Database, DatabaseError> {
        let mut config = target.config.clone();
        config.application_name(application_name);
        config.connect_timeout(Duration::from_secs(10).min(target.timeout));
        let (sender, notifications) = mpsc::unbounded_channel();
        let connecting = async {
            Ok::<_, PgError>(match &target.tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls.clone()).await?;
                    (client, tokio::spawn(drive(connection, sender)))
                }
                None => {
                    let (client, connection) = config.connect(NoTls).await?;
                    (client, tokio::spawn(drive(connection, sender)))
                }
            })
        };
        // The connect timeout covers the TCP connection; this bound the whole handshake.
        let (client, driver) = tokio::time::timeout(target.timeout, connecting)
            .await
            .map_err(|_| DatabaseError::TimedOut(target.timeout))??;
        let database = Database {
            client,
            driver: driver.abort_handle(),
            timeout: target.timeout,
            notifications,
            inbound: tokio::sync::OnceCell::new(),
            outbound: tokio::sync::OnceCell::new(),
        };
        if listen {
            database
                .bounded(
                    database
                        .client
                        .batch_execute(&format!("LISTEN {OUTBOX_CHANNEL}")),
                )
                .await?;
        }
        Ok(database)
    }

    /// Waits for `work` at most `--database-timeout`. When the server has not answered by
    /// then, the connection is closed (its task aborted): every other call on it fails at
    /// once, and [`Database::is_closed`] says so.
    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, PgError>>,
    ) -> Result<T, DatabaseError> {
        match tokio::time::timeout(self.timeout, work).await {
            Ok(result) => Ok(result?),
            Err(_) => {
                self.driver.abort();
                Err(DatabaseError::TimedOut(self.timeout))
            }
        }
    }

    /// The version of infor_comm created in this database, if any, and whether the server is a
    /// standby (in recovery).
    pub async fn extension_version(&self) -> Result<(Option<String>, bool), DatabaseError> {
        let row = self
            .bounded(self.client.query_one(
                "SELECT (SELECT extversion::text FROM pg_catalog.pg_extension WHERE extname = 'infor_comm'),
                        pg_catalog.pg_is_in_recovery()",
                &[],
            ))
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// One round trip (`SELECT 1`), to find out that a connection idle for a while still works.
    pub async fn ping(&self) -> Result<(), DatabaseError> {
        self.bounded(self.client.batch_execute("SELECT 1")).await
    }

    /// True once the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.client.is_closed() || self.driver.is_finished()
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

    /// Makes this session fit to hold batches: PostgreSQL ends it, and so releases the rows of
    /// its batch, when a batch's transaction waits longer than `lease` (a relay that stalls
    /// never holds requests for longer).
    pub async fn hold_batches_for(&self, lease: Duration) -> Result<(), DatabaseError> {
        self.bounded(self.hold_batches_for_unbounded(lease)).await
    }

    async fn hold_batches_for_unbounded(&self, lease: Duration) -> Result<(), PgError> {
        let millis = lease.as_millis().clamp(1, i32::MAX as u128);
        self.client
            .batch_execute(&format!(
                "SET idle_in_transaction_session_timeout = {millis}"
            ))
            .await
    }

    /// Opens a transaction and locks up to `batch_size` requests in it (`lock_outbox`), oldest
    /// first and past `after_id` when given: they are this session's, skipped by every other
    /// relay, until [`Database::finish_batch`] ends the transaction. With nothing to lock, the
    /// transaction is ended at once.
    pub async fn lock_batch(
        &self,
        batch_size: i32,
        after_id: Option<i64>,
    ) -> Result<Vec<OutboxRow>, DatabaseError> {
        self.bounded(self.lock_batch_unbounded(batch_size, after_id))
            .await
    }

    async fn lock_batch_unbounded(
        &self,
        batch_size: i32,
        after_id: Option<i64>,
    ) -> Result<Vec<OutboxRow>, PgError> {
        let statements = self.outbound_statements().await?;
        // Pipelined: one round trip.
        let begin = self.client.batch_execute("BEGIN");
        let lock = async {
            self.client
                .query(&statements.lock, &[&batch_size, &after_id])
                .await
        };
        let (begin, rows) = tokio::join!(begin, lock);
        begin?;
        let rows = match rows {
            Ok(rows) => rows,
            Err(error) => {
                let _ = self.client.batch_execute("ROLLBACK").await;
                return Err(error);
            }
        };
        if rows.is_empty() {
            self.client.batch_execute("COMMIT").await?;
        }
        rows.iter()
            .map(|row| {
                Ok(OutboxRow {
                    outbox_id: row.try_get(0)?,
                    request_id: row.try_get(1)?,
                    payload: row.try_get(2)?,
                })
            })
            .collect()
    }

    /// Ends the transaction of [`Database::lock_batch`]: marks the rows the broker acked
    /// published and those it refused failed (retried after the extension's back-off), and
    /// commits. The batch's other rows (no confirm came) are released unmarked, claimable again
    /// at once. Returns how many rows were newly marked published.
    pub async fn finish_batch(
        &self,
        acked: &[i64],
        failed: &[(i64, String)],
    ) -> Result<i32, DatabaseError> {
        self.bounded(self.finish_batch_unbounded(acked, failed))
            .await
    }

    async fn finish_batch_unbounded(
        &self,
        acked: &[i64],
        failed: &[(i64, String)],
    ) -> Result<i32, PgError> {
        let statements = self.outbound_statements().await?;
        // Pipelined: the marks and the commit go in one round trip.
        let published = async {
            if acked.is_empty() {
                return Ok(0);
            }
            let row = self
                .client
                .query_one(&statements.mark_published, &[&acked])
                .await?;
            row.try_get::<_, i32>(0)
        };
        let refused =
            futures_util::future::try_join_all(failed.iter().map(|(id, error)| async move {
                self.client
                    .execute(&statements.mark_failed, &[id, error])
                    .await
            }));
        let commit = self.client.batch_execute("COMMIT");
        let (published, refused, commit) = tokio::join!(published, refused, commit);
        let published = published?;
        refused?;
        commit?;
        Ok(published)
    }

    /// The outbound statements, prepared once per connection.
    async fn outbound_statements(&self) -> Result<&OutboundStatements, PgError> {
        self.outbound
            .get_or_try_init(|| async {
                Ok::<_, PgError>(OutboundStatements {
                    lock: self
                        .client
                        .prepare("SELECT outbox_id, request_id, payload FROM infor_comm.lock_outbox($1::integer, $2::bigint)")
                        .await?,
                    mark_published: self
                        .client
                        .prepare("SELECT infor_comm.mark_published($1::bigint[])")
                        .await?,
                    mark_failed: self
                        .client
                        .prepare("SELECT infor_comm.mark_failed($1::bigint, $2::text)")
                        .await?,
                })
            })
            .await
    }

    /// The unpublished requests and the age of the oldest, in seconds.
    pub async fn backlog(&self) -> Result<(i64, f64), DatabaseError> {
        self.bounded(self.backlog_unbounded()).await
    }

    async fn backlog_unbounded(&self) -> Result<(i64, f64), PgError> {
        let row = self
            .client
            .query_one(
                "SELECT pending, oldest_age_seconds FROM infor_comm.outbox_backlog()",
                &[],
            )
            .await?;
        Ok((row.get(0), row.get(1)))
    }

    /// Records inbound messages in ONE transaction. A batch of deliveries goes first in one
    /// statement (`apply_deliveries`); when that raises, or the batch holds other items, each
    /// message goes under its own savepoint so that one whose apply raises never takes the
    /// others with it. The statements of every message are then pipelined: one round trip for
    /// the batch while nothing raises. When a message's apply
    /// raises, the statements sent after it fail too (the transaction is aborted until the
    /// savepoint is rolled back): they are sent again after the rollback. Returns, once the
    /// transaction has committed, each item's outcome (`reply`, `push`, `duplicate`, `orphan`,
    /// `rejected`) or the error its apply raised (nothing of that item was kept). An `Err`
    /// means the batch as a whole failed (the connection broke, or the commit did not
    /// succeed): no outcome may be acked.
    pub async fn record_inbound(
        &self,
        items: &[InboundItem<'_>],
    ) -> Result<Vec<Result<String, String>>, DatabaseError> {
        self.bounded(self.record_inbound_unbounded(items)).await
    }

    async fn record_inbound_unbounded(
        &self,
        items: &[InboundItem<'_>],
    ) -> Result<Vec<Result<String, String>>, PgError> {
        let statements = self.inbound_statements().await?;
        if items.len() > 1 && items.iter().all(InboundItem::is_delivery) {
            if let Some(outcomes) = self.apply_in_one_statement(statements, items).await? {
                return Ok(outcomes);
            }
        }
        self.client.batch_execute("BEGIN").await?;
        let mut outcomes = Vec::with_capacity(items.len());
        while outcomes.len() < items.len() {
            let rest = &items[outcomes.len()..];
            let results = in_order(
                rest.iter()
                    .map(|item| self.apply_under_savepoint(statements, item)),
            )
            .await;
            for (savepoint, apply, release) in results {
                // Everything sent before this savepoint succeeded (the loop stops at the first
                // apply that raised), so a savepoint that fails is a fault of the session.
                savepoint?;
                match apply.and_then(|row| row.try_get::<_, String>(0)) {
                    Ok(outcome) => {
                        release?;
                        outcomes.push(Ok(outcome));
                    }
                    // The extension refuses the relay itself, not this message: the batch fails
                    // as a whole and nothing of it counts against a message.
                    Err(error) if refusal_of(&error).is_some() => return Err(error),
                    // The server refused this message alone (the function raised, a lock or
                    // statement timed out, a privilege is missing): undo it; what was sent
                    // after it failed with it and is sent again.
                    Err(error) if error.as_db_error().is_some() => {
                        self.client
                            .batch_execute("ROLLBACK TO SAVEPOINT inbound")
                            .await?;
                        outcomes.push(Err(Chain(&error).to_string()));
                        break;
                    }
                    Err(error) => return Err(error),
                }
            }
        }
        self.client.batch_execute("COMMIT").await?;
        Ok(outcomes)
    }

    /// A batch of deliveries in one transaction and one statement (`apply_deliveries`), without
    /// a savepoint per message: a subtransaction each would cost the server its bookkeeping,
    /// and more than 64 in one transaction slow down every other session's snapshots. Content
    /// never makes it raise; when it raises all the same (a fault of the database, a lock or
    /// statement timeout), the transaction is rolled back and `None` says so: the batch is then
    /// recorded message by message under savepoints, which tells which one raised.
    async fn apply_in_one_statement(
        &self,
        statements: &InboundStatements,
        items: &[InboundItem<'_>],
    ) -> Result<Option<Vec<Result<String, String>>>, PgError> {
        let (bodies, message_ids): (Vec<&[u8]>, Vec<Option<&[u8]>>) = items
            .iter()
            .filter_map(|item| match item {
                InboundItem::Deliver { body, message_id } => Some((*body, *message_id)),
                _ => None,
            })
            .unzip();
        self.client.batch_execute("BEGIN").await?;
        match self
            .client
            .query_one(&statements.deliver_batch, &[&bodies, &message_ids])
            .await
            .and_then(|row| row.try_get::<_, Vec<String>>(0))
        {
            Ok(outcomes) if outcomes.len() == items.len() => {
                self.client.batch_execute("COMMIT").await?;
                Ok(Some(outcomes.into_iter().map(Ok).collect()))
            }
            // Not what the extension promises: nothing of it is kept, each goes alone.
            Ok(_) => {
                self.client.batch_execute("ROLLBACK").await?;
                Ok(None)
            }
            // The extension refuses the relay itself: the batch fails as a whole.
            Err(error) if refusal_of(&error).is_some() => Err(error),
            Err(error) if error.as_db_error().is_some() => {
                tracing::debug!(error = %Chain(&error), "a batch raised; its messages go one by one");
                self.client.batch_execute("ROLLBACK").await?;
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// SAVEPOINT, the apply and RELEASE of one inbound item; sent when first polled.
    async fn apply_under_savepoint(
        &self,
        statements: &InboundStatements,
        item: &InboundItem<'_>,
    ) -> (
        Result<(), PgError>,
        Result<tokio_postgres::Row, PgError>,
        Result<(), PgError>,
    ) {
        let savepoint = self.client.batch_execute("SAVEPOINT inbound");
        let apply = async {
            match item {
                InboundItem::Deliver { body, message_id } => {
                    self.client
                        .query_one(&statements.deliver, &[body, message_id])
                        .await
                }
                InboundItem::Oversized {
                    head,
                    message_id,
                    size,
                    sha256,
                    limit,
                } => {
                    self.client
                        .query_one(
                            &statements.oversized,
                            &[head, message_id, size, sha256, limit],
                        )
                        .await
                }
                InboundItem::SetAside {
                    body,
                    message_id,
                    attempts,
                    error,
                } => {
                    self.client
                        .query_one(&statements.set_aside, &[body, message_id, attempts, error])
                        .await
                }
            }
        };
        let release = self.client.batch_execute("RELEASE SAVEPOINT inbound");
        tokio::join!(savepoint, apply, release)
    }

    /// The inbound statements, prepared once per connection.
    async fn inbound_statements(&self) -> Result<&InboundStatements, PgError> {
        self.inbound
            .get_or_try_init(|| async {
                Ok::<_, PgError>(InboundStatements {
                    deliver_batch: self
                        .client
                        .prepare("SELECT infor_comm.apply_deliveries($1::bytea[], $2::bytea[])")
                        .await?,
                    deliver: self
                        .client
                        .prepare("SELECT infor_comm.apply_delivery($1::bytea, $2::bytea)")
                        .await?,
                    oversized: self
                        .client
                        .prepare(
                            "SELECT infor_comm.reject_oversized($1::bytea, $2::bytea, $3::bigint, $4::bytea, $5::bigint)",
                        )
                        .await?,
                    set_aside: self
                        .client
                        .prepare(
                            "SELECT infor_comm.set_aside_inbound($1::bytea, $2::bytea, $3::integer, $4::text)",
                        )
                        .await?,
                })
            })
            .await
    }
}

/// Awaits `futures`, polling them in the order given every time, so that each sends its
/// statements before the next does (tokio-postgres sends a request when its future is first
/// polled, and the server runs them in the order sent); returns their outputs in that order.
async fn in_order<F: Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut slots: Vec<_> = futures
        .map(|future| futures_util::future::maybe_done(Box::pin(future)))
        .collect();
    futures_util::future::poll_fn(|cx| {
        let mut done = true;
        for slot in slots.iter_mut() {
            done &= Pin::new(slot).poll(cx).is_ready();
        }
        if done {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    slots
        .iter_mut()
        .filter_map(|slot| Pin::new(slot).take_output())
        .collect()
}

/// One inbound message to record, as [`Database::record_inbound`] takes it.
#[derive(Debug, Clone, Copy)]
pub enum InboundItem<'a> {
    /// Journal and apply (`infor_comm.apply_delivery`).
    Deliver {
        /// The body as received.
        body: &'a [u8],
        /// The AMQP message id's bytes (any bytes: the extension keeps them so they round-trip).
        message_id: Option<&'a [u8]>,
    },
    /// A body over the size limit: journaled as rejected with its size, digest and head
    /// (`infor_comm.reject_oversized`).
    Oversized {
        /// The body's first bytes.
        head: &'a [u8],
        /// The AMQP message id's bytes.
        message_id: Option<&'a [u8]>,
        /// The body's full size in bytes.
        size: i64,
        /// The SHA-256 of the whole body.
        sha256: &'a [u8],
        /// The relay's limit, in bytes.
        limit: i64,
    },
    /// A message whose apply kept failing: journaled as rejected with the last error, not
    /// applied (`infor_comm.set_aside_inbound`).
    SetAside {
        /// The body as received.
        body: &'a [u8],
        /// The AMQP message id's bytes.
        message_id: Option<&'a [u8]>,
        /// How many applies failed.
        attempts: i32,
        /// The last one's error.
        error: &'a str,
    },
}

impl InboundItem<'_> {
    /// True for a message to journal and apply (not an oversized or set-aside one).
    pub fn is_delivery(&self) -> bool {
        matches!(self, InboundItem::Deliver { .. })
    }
}

/// The prepared statements of [`Database::lock_batch`] and [`Database::finish_batch`].
struct OutboundStatements {
    lock: Statement,
    mark_published: Statement,
    mark_failed: Statement,
}

/// The prepared statements of [`Database::record_inbound`].
struct InboundStatements {
    deliver_batch: Statement,
    deliver: Statement,
    oversized: Statement,
    set_aside: Statement,
}

#[cfg(test)]
mod tests {
    use super::{check_extension_version, DatabaseTarget, VERSION_REFUSAL};
    use std::path::Path;

    fn check(url: &str) -> Result<(), String> {
        DatabaseTarget::new(url, None).map(|_| ())
    }

    #[test]
    fn keepalives_and_the_tcp_user_timeout_follow_the_database_timeout() {
        use std::time::Duration;
        let target = DatabaseTarget::new("postgresql://relay@db/bank", None)
            .expect("url")
            .with_timeout(Duration::from_secs(30));
        assert_eq!(target.timeout, Duration::from_secs(30));
        assert_eq!(target.config.get_keepalives_idle(), Duration::from_secs(10));
        assert_eq!(
            target.config.get_keepalives_interval(),
            Some(Duration::from_secs(5))
        );
        assert_eq!(
            target.config.get_tcp_user_timeout(),
            Some(&Duration::from_secs(30))
        );
        // A URL's own keepalives_idle is kept.
        let target = DatabaseTarget::new("postgresql://relay@db/bank?keepalives_idle=7", None)
            .expect("url")
            .with_timeout(Duration::from_secs(30));
        assert_eq!(target.config.get_keepalives_idle(), Duration::from_secs(7));
    }

    #[test]
    fn a_plain_url_or_key_value_string_is_accepted() {
        assert_eq!(check("postgresql://relay:pw@db.bank:5432/bank"), Ok(()));
        assert_eq!(
            check("host=/var/run/postgresql dbname=bank user=relay"),
            Ok(())
        );
        assert_eq!(check("postgresql://relay@db/bank?sslmode=disable"), Ok(()));
        let target =
            DatabaseTarget::new("postgresql://relay@db/bank?sslmode=prefer", None).expect("prefer");
        assert!(!target.uses_tls(), "prefer connects without TLS");
    }

    #[test]
    fn an_unparseable_url_names_the_problem_without_the_password() {
        let error =
            check("postgresql://relay:s3cret@db/bank?sslmode=sometimes").expect_err("refused");
        assert!(error.starts_with("invalid --database-url"), "{error}");
        assert!(error.contains("sslmode"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn an_extension_version_the_relay_does_not_know_is_refused_naming_both() {
        assert!(check_extension_version(Some(env!("CARGO_PKG_VERSION"))).is_ok());
        let refusal = check_extension_version(Some("0.2.0")).expect_err("refused");
        assert!(refusal.starts_with(VERSION_REFUSAL), "{refusal}");
        assert!(refusal.contains("0.2.0") && refusal.contains(env!("CARGO_PKG_VERSION")));
        assert!(
            refusal.contains("ALTER EXTENSION infor_comm UPDATE"),
            "{refusal}"
        );
        let none = check_extension_version(None).expect_err("refused");
        assert!(none.contains("CREATE EXTENSION"), "{none}");
    }

    #[test]
    fn an_unescaped_at_sign_in_the_password_is_refused() {
        let error = DatabaseTarget::new("postgresql://r:a@b@db/bank", None)
            .err()
            .expect("refused");
        assert!(error.contains("more than one '@'"), "{error}");
    }

    #[test]
    fn a_ca_file_without_sslmode_require_is_refused() {
        let error = DatabaseTarget::new(
            "postgresql://relay:s3cret@db/bank",
            Some(Path::new("/etc/ssl/certs/ca-certificates.crt")),
        )
        .err()
        .expect("refused");
        assert!(error.contains("does not say sslmode=require"), "{error}");
        assert!(!error.contains("s3cret"), "{error}");
    }

    #[test]
    fn a_missing_or_empty_ca_file_is_named() {
        let url = "postgresql://relay@db/bank?sslmode=require";
        let missing = Path::new("/nonexistent/infor-comm-ca.pem");
        let error = DatabaseTarget::new(url, Some(missing))
            .err()
            .expect("refused");
        assert!(error.contains("/nonexistent/infor-comm-ca.pem"), "{error}");
        let empty =
            std::env::temp_dir().join(format!("infor-comm-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let error = DatabaseTarget::new(url, Some(&empty))
            .err()
            .expect("refused");
        let _ = std::fs::remove_file(&empty);
        assert!(error.contains("holds no PEM certificate"), "{error}");
    }
}
