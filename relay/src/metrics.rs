//! Operability: Prometheus metrics, `/health` (the process lives) and `/ready` (the database
//! and the broker are connected, for both directions), served over HTTP.

use crate::shutdown::Shutdown;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Request, Response, StatusCode};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Requests the broker confirmed.
pub const PUBLISHED: &str = "infor_relay_published_total";
/// Requests the broker refused, or did not confirm in time.
pub const PUBLISH_FAILED: &str = "infor_relay_publish_failed_total";
/// Inbound messages applied, by outcome (reply, push, duplicate, orphan, rejected).
pub const INBOUND: &str = "infor_relay_inbound_total";
/// Inbound applies that failed (the message was held back and retried, or handed back to the
/// queue with its batch when the database failed).
pub const INBOUND_APPLY_FAILED: &str = "infor_relay_inbound_apply_failed_total";
/// Inbound bodies over `--max-message-bytes`, journaled by size, SHA-256 and head.
pub const INBOUND_OVERSIZED: &str = "infor_relay_inbound_oversized_total";
/// Inbound messages set aside after their apply kept failing, by `to` (inbox, dead_letter).
pub const INBOUND_SET_ASIDE: &str = "infor_relay_inbound_set_aside_total";
/// Unpublished requests in the outbox.
pub const OUTBOX_BACKLOG: &str = "infor_relay_outbox_backlog";
/// Age of the oldest unpublished request, in seconds.
pub const OUTBOX_OLDEST_AGE: &str = "infor_relay_outbox_oldest_age_seconds";
/// 1 when a connection is up, by `connection` (database, broker) and `direction`.
pub const CONNECTION_UP: &str = "infor_relay_connection_up";
/// 1 while the broker returns published requests as unroutable (the outbound queue is missing).
pub const OUTBOUND_UNROUTABLE: &str = "infor_relay_outbound_unroutable";
/// 1 while the broker blocks the outbound connection (`connection.blocked`: a memory or disk
/// alarm).
pub const BROKER_BLOCKED: &str = "infor_relay_broker_blocked";
/// Reconnection attempts, by `connection` and `direction`.
pub const RECONNECTS: &str = "infor_relay_reconnects_total";
/// 1 when `/ready` answers 200, else 0; computed when scraped.
pub const READY: &str = "infor_relay_ready";
/// Always 1, with the relay's `version` and the `extension_version` of infor_comm in the
/// database (empty until the relay has read it).
pub const BUILD_INFO: &str = "infor_relay_build_info";

/// The outcomes of applied inbound messages, the values of [`INBOUND`]'s `outcome` label.
pub const INBOUND_OUTCOMES: [&str; 5] = ["reply", "push", "duplicate", "orphan", "rejected"];

/// Every metric with its kind and its `# HELP` text.
pub const DESCRIPTIONS: [(&str, Kind, &str); 14] = [
    (PUBLISHED, Kind::Counter, "Requests published: acked by the broker and not returned."),
    (PUBLISH_FAILED, Kind::Counter, "Publishes that failed: nacked, returned (unroutable), not written or not confirmed within --confirm-timeout. The request is retried."),
    (INBOUND, Kind::Counter, "Inbound messages applied, by outcome: reply, push, duplicate, orphan (a push before its reply), rejected (journaled with its reason)."),
    (INBOUND_APPLY_FAILED, Kind::Counter, "Inbound applies that failed; the message was held back and retried, or handed back to the queue."),
    (INBOUND_OVERSIZED, Kind::Counter, "Inbound bodies over --max-message-bytes, journaled as rejected by size, SHA-256 and head."),
    (INBOUND_SET_ASIDE, Kind::Counter, "Inbound messages set aside after their apply kept failing, by where they went: inbox (journaled as rejected) or dead_letter (the dead-letter queue)."),
    (OUTBOX_BACKLOG, Kind::Gauge, "Requests not yet published, read from the database every --poll-interval; NaN while it cannot be read. The same for every relay of a database: aggregate with max."),
    (OUTBOX_OLDEST_AGE, Kind::Gauge, "Age in seconds of the oldest request not yet published (0 when none), read every --poll-interval; NaN while the database cannot be read. Aggregate with max."),
    (CONNECTION_UP, Kind::Gauge, "1 when the connection is up, by connection (database, broker) and direction (outbound, inbound)."),
    (OUTBOUND_UNROUTABLE, Kind::Gauge, "1 while the broker returns published requests as unroutable (the outbound queue is missing)."),
    (BROKER_BLOCKED, Kind::Gauge, "1 while the broker blocks the outbound connection (connection.blocked: a memory or disk alarm)."),
    (RECONNECTS, Kind::Counter, "Reconnection attempts, by connection and direction."),
    (READY, Kind::Gauge, "1 when /ready answers 200: every connection up, the queue routable, the broker not blocking, the extension accepting the relay; else 0."),
    (BUILD_INFO, Kind::Gauge, "Always 1: the relay's version and the version of the infor_comm extension in the database (empty until read)."),
];

/// A metric's Prometheus type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up.
    Counter,
    /// Goes up and down.
    Gauge,
}

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process), describes every metric and exports
/// each series at its starting value, so that a relay that never connected still exports its
/// state (its connections down) and a counter's first increase is seen by `increase()`.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    for (name, kind, help) in DESCRIPTIONS {
        match (kind, name) {
            // Rendered at scrape time by `route`, not recorded.
            (_, READY | BUILD_INFO) => {}
            (Kind::Counter, _) => metrics::describe_counter!(name, help),
            (Kind::Gauge, _) => metrics::describe_gauge!(name, help),
        }
    }
    for counter in [
        PUBLISHED,
        PUBLISH_FAILED,
        INBOUND_APPLY_FAILED,
        INBOUND_OVERSIZED,
    ] {
        metrics::counter!(counter).increment(0);
    }
    for outcome in INBOUND_OUTCOMES {
        metrics::counter!(INBOUND, "outcome" => outcome).increment(0);
    }
    for to in ["inbox", "dead_letter"] {
        metrics::counter!(INBOUND_SET_ASIDE, "to" => to).increment(0);
    }
    for link in [Link::Database, Link::Broker] {
        for direction in [Direction::Outbound, Direction::Inbound] {
            let labels = [
                ("connection", link.label()),
                ("direction", direction.label()),
            ];
            metrics::gauge!(CONNECTION_UP, &labels).set(0.0);
            metrics::counter!(RECONNECTS, &labels).increment(0);
        }
    }
    metrics::gauge!(OUTBOUND_UNROUTABLE).set(0.0);
    metrics::gauge!(BROKER_BLOCKED).set(0.0);
    metrics::gauge!(OUTBOX_BACKLOG).set(f64::NAN);
    metrics::gauge!(OUTBOX_OLDEST_AGE).set(f64::NAN);
    Ok(HANDLE.get_or_init(|| handle).clone())
}

/// The metrics computed when scraped, in the exposition format: [`READY`] and [`BUILD_INFO`].
fn scrape_time_metrics(health: &Health) -> String {
    let help = |name: &str| {
        DESCRIPTIONS
            .iter()
            .find(|(described, _, _)| *described == name)
            .map_or("", |(_, _, help)| help)
    };
    let extension_version = health.extension_version().unwrap_or_default();
    format!(
        "# HELP {READY} {}\n# TYPE {READY} gauge\n{READY} {}\n\
         # HELP {BUILD_INFO} {}\n# TYPE {BUILD_INFO} gauge\n\
         {BUILD_INFO}{{version=\"{}\",extension_version=\"{}\"}} 1\n",
        help(READY),
        u8::from(health.ready()),
        help(BUILD_INFO),
        label_value(env!("CARGO_PKG_VERSION")),
        label_value(&extension_version),
    )
}

/// A label value in the exposition format: backslash, double quote and newline escaped.
fn label_value(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Which side of the relay a connection serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Outbox → broker.
    Outbound,
    /// Broker → `apply_inbound`.
    Inbound,
}

impl Direction {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Outbound => "outbound",
            Direction::Inbound => "inbound",
        }
    }
}

/// Which connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// PostgreSQL.
    Database,
    /// The AMQP broker.
    Broker,
}

impl Link {
    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Link::Database => "database",
            Link::Broker => "broker",
        }
    }
}

/// The state of the four connections, for `/ready` and the `connection_up` gauges, and whether
/// the broker routes what the relay publishes.
#[derive(Debug, Default)]
pub struct Health {
    up: [AtomicBool; 4],
    unroutable: AtomicBool,
    /// The broker's reason, while it blocks the outbound connection.
    blocked: std::sync::Mutex<Option<String>>,
    /// The extension's refusal of the relay, until one of its calls succeeds again.
    refused: std::sync::Mutex<Option<String>>,
    /// The version of infor_comm in the database, once read.
    extension_version: std::sync::Mutex<Option<String>>,
}

impl Health {
    fn index(link: Link, direction: Direction) -> usize {
        (link as usize) * 2 + direction as usize
    }

    /// Records that a connection came up or went down.
    pub fn set(&self, link: Link, direction: Direction, up: bool) {
        self.up[Self::index(link, direction)].store(up, Ordering::Relaxed);
        metrics::gauge!(CONNECTION_UP, "connection" => link.label(), "direction" => direction.label())
            .set(if up { 1.0 } else { 0.0 });
    }

    /// Counts a reconnection attempt.
    pub fn reconnecting(&self, link: Link, direction: Direction) {
        self.set(link, direction, false);
        metrics::counter!(RECONNECTS, "connection" => link.label(), "direction" => direction.label())
            .increment(1);
    }

    /// True when every connection is up.
    pub fn ready(&self) -> bool {
        self.up.iter().all(|up| up.load(Ordering::Relaxed))
            && !self.unroutable.load(Ordering::Relaxed)
            && self.blocked().is_none()
            && self.refused().is_none()
    }

    /// Records that the extension refuses the relay's calls, and why (its SQL and library are of
    /// different versions, or this login may not use it here), or that a call succeeded again:
    /// `/ready` is false meanwhile, and says why.
    pub fn set_refused(&self, reason: Option<String>) {
        self.replace_refused(reason);
    }

    /// Records the version of infor_comm the database has.
    pub fn set_extension_version(&self, version: &str) {
        *self
            .extension_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(version.to_string());
    }

    /// The version of infor_comm the database has, once read.
    pub fn extension_version(&self) -> Option<String> {
        self.extension_version
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// [`Health::set_refused`], and whether that changed the refusal: of two sides finding
    /// the same refusal, only the first is told it is new.
    pub fn replace_refused(&self, reason: Option<String>) -> bool {
        let mut refused = self
            .refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = *refused != reason;
        *refused = reason;
        changed
    }

    /// The extension's refusal of the relay, while it lasts.
    pub fn refused(&self) -> Option<String> {
        self.refused
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Records whether the broker blocks the outbound connection, and why: `/ready` is false
    /// while it does, and says why.
    pub fn set_blocked(&self, reason: Option<String>) {
        metrics::gauge!(BROKER_BLOCKED).set(if reason.is_some() { 1.0 } else { 0.0 });
        *self
            .blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    /// The broker's reason while it blocks the outbound connection.
    pub fn blocked(&self) -> Option<String> {
        self.blocked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// True while published requests come back unroutable.
    pub fn is_unroutable(&self) -> bool {
        self.unroutable.load(Ordering::Relaxed)
    }

    /// Records whether the last batch's messages came back unroutable (the outbound queue is
    /// missing): `/ready` is false while they do.
    pub fn set_unroutable(&self, unroutable: bool) {
        self.unroutable.store(unroutable, Ordering::Relaxed);
        metrics::gauge!(OUTBOUND_UNROUTABLE).set(if unroutable { 1.0 } else { 0.0 });
    }
}

fn respond(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

fn route(path: &str, handle: &PrometheusHandle, health: &Health) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4",
            handle.render() + &scrape_time_metrics(health),
        ),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/ready" if health.ready() => respond(StatusCode::OK, "text/plain", "ready\n".into()),
        "/ready" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            match (health.blocked(), health.refused()) {
                (Some(reason), _) => format!(
                    "not ready: the broker blocks publishing (connection.blocked: {reason})\n"
                ),
                (None, Some(refusal)) => format!(
                    "not ready: the database refuses the relay; its messages wait in the queue ({refusal})\n"
                ),
                (None, None) => "not ready\n".into(),
            },
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds the HTTP endpoint (so that a port conflict fails the start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// The most connections the endpoint serves at once; more are answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 32;
/// How long a client may take to send its request's headers.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// How long one connection may stay open, idle or not (a scrape takes milliseconds).
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest pause after a failed accept (out of file descriptors, for example).
const MAX_ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// How often a streak of failed accepts is logged.
const ACCEPT_LOG_INTERVAL: Duration = Duration::from_secs(60);

/// What is answered, then closed, when [`MAX_CONNECTIONS`] are open.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nbusy\n";

/// Failed accepts: a pause that doubles up to [`MAX_ACCEPT_PAUSE`], and a log line at most every
/// [`ACCEPT_LOG_INTERVAL`] that says how many failed since the last one.
#[derive(Debug, Default)]
struct AcceptFailures {
    pause: Duration,
    unlogged: u64,
    last_logged: Option<Instant>,
}

impl AcceptFailures {
    /// Records a failed accept; returns how long to pause before the next one.
    fn failed(&mut self, error: &std::io::Error) -> Duration {
        self.unlogged += 1;
        let due = self
            .last_logged
            .is_none_or(|at| at.elapsed() >= ACCEPT_LOG_INTERVAL);
        if due {
            tracing::warn!(
                %error,
                failed_accepts = self.unlogged,
                "metrics endpoint: accept failed; pausing accepts (logged at most once a minute)"
            );
            self.unlogged = 0;
            self.last_logged = Some(Instant::now());
        }
        self.pause = (self.pause * 2).clamp(Duration::from_millis(10), MAX_ACCEPT_PAUSE);
        self.pause
    }

    /// Records a successful accept: the pause starts small again.
    fn succeeded(&mut self) {
        self.pause = Duration::ZERO;
    }
}

/// Serves `/metrics`, `/health` and `/ready` until shutdown. At most [`MAX_CONNECTIONS`] at once,
/// each with a header timeout and a lifetime limit; a failed accept (no file descriptors left)
/// pauses accepting instead of spinning, and is logged at most once a minute.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
    mut shutdown: Shutdown,
) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut failures = AcceptFailures::default();
    loop {
        let (mut stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => {
                    failures.succeeded();
                    accepted
                }
                Err(error) => {
                    let pause = failures.failed(&error);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = shutdown.recv() => return,
                    }
                }
            },
            _ = shutdown.recv() => return,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                // Answer, close our side, and read what the client sent (briefly), so that the
                // close does not reset the connection before the client reads the answer.
                let _ = tokio::time::timeout(HEADER_TIMEOUT, async {
                    stream.write_all(BUSY).await?;
                    stream.shutdown().await?;
                    let mut sink = [0u8; 1024];
                    while stream.read(&mut sink).await? > 0 {}
                    Ok::<_, std::io::Error>(())
                })
                .await;
            });
            continue;
        };
        let (handle, health) = (handle.clone(), health.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = route(request.uri().path(), &handle, &health);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(io, service);
            match tokio::time::timeout(CONNECTION_TIMEOUT, connection).await {
                Ok(Err(error)) => tracing::debug!(%error, "metrics endpoint: connection failed"),
                Err(_) => tracing::debug!("metrics endpoint: connection open too long; closed"),
                Ok(Ok(())) => {}
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;

    /// Sends one request and returns the status line of the answer.
    async fn status_line(addr: SocketAddr, path: &str) -> String {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer)
            .lines()
            .next()
            .unwrap_or_default()
            .to_string()
    }

    #[tokio::test]
    async fn a_flood_of_idle_connections_is_capped_and_the_endpoint_keeps_answering() {
        let handle = install().expect("recorder");
        let listener = bind("127.0.0.1:0".parse().expect("addr"))
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (trigger, shutdown) = crate::shutdown::channel();
        let server = tokio::spawn(serve(
            listener,
            handle,
            Arc::new(Health::default()),
            shutdown,
        ));
        // Many more idle connections than the cap: they send nothing.
        let mut idle = Vec::new();
        for _ in 0..(MAX_CONNECTIONS * 4) {
            idle.push(TcpStream::connect(addr).await.expect("connect"));
        }
        // A probe is answered at once: 503 busy while the cap is reached, never left hanging.
        let answer = tokio::time::timeout(Duration::from_secs(2), status_line(addr, "/health"))
            .await
            .expect("answered within 2 s");
        assert_eq!(answer, "HTTP/1.1 503 Service Unavailable");
        // The idle connections over the cap were closed by the endpoint.
        let mut closed = 0;
        for stream in &mut idle {
            let mut byte = [0u8; 64];
            if let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_millis(50), stream.read(&mut byte)).await
            {
                closed += 1;
            }
        }
        assert!(closed >= MAX_CONNECTIONS * 3, "{closed} closed");
        // The ones within the cap are closed after the header timeout; then it answers 200.
        drop(idle);
        let answer = tokio::time::timeout(Duration::from_secs(2), status_line(addr, "/health"))
            .await
            .expect("answered within 2 s");
        assert_eq!(answer, "HTTP/1.1 200 OK");
        trigger.trigger();
        server.await.expect("server stops");
    }

    #[test]
    fn every_metric_has_its_help_and_type_from_the_start() {
        let handle = install().expect("recorder");
        let health = Health::default();
        health.set_extension_version("0.3.0\"\n");
        let text = handle.render() + &scrape_time_metrics(&health);
        for (name, kind, _) in DESCRIPTIONS {
            let kind = match kind {
                Kind::Counter => "counter",
                Kind::Gauge => "gauge",
            };
            assert!(text.contains(&format!("# HELP {name} ")), "{name}: {text}");
            assert!(
                text.contains(&format!("# TYPE {name} {kind}\n")),
                "{name}: {text}"
            );
        }
        assert!(text.contains("\ninfor_relay_ready 0\n"), "{text}");
        assert!(
            text.contains("extension_version=\"0.3.0\\\"\\n\"} 1\n"),
            "a label value is escaped: {text}"
        );
    }

    #[test]
    fn failed_accepts_pause_longer_each_time_and_are_logged_once_a_minute() {
        let mut failures = AcceptFailures::default();
        let error = std::io::Error::from_raw_os_error(24); // EMFILE
        let pauses: Vec<Duration> = (0..10).map(|_| failures.failed(&error)).collect();
        assert_eq!(pauses[0], Duration::from_millis(10));
        assert_eq!(pauses[1], Duration::from_millis(20));
        assert_eq!(*pauses.last().expect("pauses"), MAX_ACCEPT_PAUSE);
        // The first failure was logged; the nine after it wait for the next log line.
        assert_eq!(failures.unlogged, 9);
        failures.succeeded();
        assert_eq!(failures.failed(&error), Duration::from_millis(10));
    }
}
