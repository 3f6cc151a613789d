//! Test harness for the integration tests. Each test binary starts what it needs on its own
//! ports and in its own directories, and removes it at exit:
//! - a PostgreSQL 15 cluster with pg_cron preloaded, and a fresh database per test with the
//!   `infor_comm` extension and the bank's host tables ([`postgres`]);
//! - a RabbitMQ node, and a fresh virtual host per test ([`rabbitmq`]);
//! - for the high-availability test, etcd and PostgreSQL nodes under Patroni ([`patroni`]);
//! - the real `infor-relay` and `infor-crm-sim` binaries as child processes ([`processes`]);
//! - Debian's Prometheus, promtool and postgres_exporter for the alert tests ([`prometheus`]).
//!
//! The extension must be installed into the PostgreSQL that `PG_CONFIG` (or `pg_config`) names,
//! and the binaries built: the README's test command does both. PostgreSQL refuses to run as
//! root: when the tests run as root, the server runs as the `postgres` user.

pub mod patroni;
pub mod postgres;
pub mod processes;
pub mod prometheus;
pub mod proxy;
pub mod rabbit_cluster;
pub mod rabbitmq;
pub mod raw_amqp;
pub mod scenario;

pub use postgres::{insert_thinking_clients, PgCluster, TestDb};
pub use processes::Process;
pub use rabbit_cluster::RabbitCluster;
pub use rabbitmq::RabbitNode;
pub use scenario::{Progress, Scenario};

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `check` every 100 ms until it returns true or `timeout` passes; returns the last answer.
pub async fn wait_until<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits up to `timeout` until `process` has logged `text`; fails the test with its log if not.
pub async fn expect_logged(process: &Process, text: &str, timeout: Duration) {
    assert!(
        wait_until(timeout, || async { process.output().contains(text) }).await,
        "{} did not log {text:?}: {}",
        process.name,
        process.output()
    );
}
