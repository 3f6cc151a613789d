//! The broker restarted mid-run: the relay reconnects, loses nothing, and finishes.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::scenario::http_get;
use infor_comm_tests::{wait_until, RabbitNode, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_run_loses_nothing() {
    let scenario = Scenario::new(2000).await;
    let _sim = scenario.simulator(&[]);
    let metrics_port = free_port();
    let relay = scenario.relay_with_metrics("relay", &["--batch-size", "100"], metrics_port);
    scenario
        .expect_published(1, Duration::from_secs(60), &relay)
        .await;
    let rabbit: &RabbitNode = scenario.rabbit;
    tokio::task::block_in_place(|| rabbit.stop_app());
    assert!(
        wait_until(Duration::from_secs(10), || async {
            http_get(metrics_port, "/ready").await.map(|r| r.0) == Some(503)
        })
        .await,
        "/ready reports the broker down"
    );
    assert_eq!(
        http_get(metrics_port, "/health").await.map(|r| r.0),
        Some(200)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::task::block_in_place(|| rabbit.start_app());
    scenario
        .assert_finishes(Duration::from_secs(120), &relay)
        .await;
    assert!(
        relay.output().contains("reconnecting"),
        "the relay noticed the restart"
    );
}
