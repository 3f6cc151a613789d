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
use tokio::net::TcpListener;

/// Requests the broker confirmed.
pub const PUBLISHED: &str = "infor_relay_published_total";
/// Requests the broker refused, or did not confirm in time.
pub const PUBLISH_FAILED: &str = "infor_relay_publish_failed_total";
/// Inbound messages applied, by outcome (reply, push, duplicate, orphan, rejected).
pub const INBOUND: &str = "infor_relay_inbound_total";
/// Inbound messages handed back to the queue because `apply_inbound` failed (a database fault).
/// Rising steadily, it means a message cannot be applied and holds up the queue behind it.
pub const INBOUND_APPLY_FAILED: &str = "infor_relay_inbound_apply_failed_total";
/// Unpublished requests in the outbox.
pub const OUTBOX_BACKLOG: &str = "infor_relay_outbox_backlog";
/// Age of the oldest unpublished request, in seconds.
pub const OUTBOX_OLDEST_AGE: &str = "infor_relay_outbox_oldest_age_seconds";
/// 1 when a connection is up, by `connection` (database, broker) and `direction`.
pub const CONNECTION_UP: &str = "infor_relay_connection_up";
/// Reconnection attempts, by `connection` and `direction`.
pub const RECONNECTS: &str = "infor_relay_reconnects_total";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the Prometheus recorder (once per process) and returns its handle.
pub fn install() -> Result<PrometheusHandle, String> {
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let handle = PrometheusBuilder::new()
        .install_recorder()
        .map_err(|e| format!("cannot install the metrics recorder: {e}"))?;
    Ok(HANDLE.get_or_init(|| handle).clone())
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

/// The state of the four connections, for `/ready` and the `connection_up` gauges.
#[derive(Debug, Default)]
pub struct Health {
    up: [AtomicBool; 4],
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
        "/metrics" => respond(StatusCode::OK, "text/plain; version=0.0.4", handle.render()),
        "/health" => respond(StatusCode::OK, "text/plain", "ok\n".into()),
        "/ready" if health.ready() => respond(StatusCode::OK, "text/plain", "ready\n".into()),
        "/ready" => respond(
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".into(),
        ),
        _ => respond(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
    }
}

/// Binds the HTTP endpoint (so that a port conflict fails the start-up).
pub async fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    TcpListener::bind(addr).await
}

/// Serves `/metrics`, `/health` and `/ready` until shutdown.
pub async fn serve(
    listener: TcpListener,
    handle: PrometheusHandle,
    health: Arc<Health>,
    mut shutdown: Shutdown,
) {
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "metrics endpoint: accept failed");
                    continue;
                }
            },
            _ = shutdown.recv() => return,
        };
        let (handle, health) = (handle.clone(), health.clone());
        tokio::spawn(async move {
            let service =
                hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                    let response = route(request.uri().path(), &handle, &health);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
            let io = hyper_util::rt::TokioIo::new(stream);
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
            {
                tracing::debug!(%error, "metrics endpoint: connection failed");
            }
        });
    }
}
