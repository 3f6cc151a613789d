//! The broker restarted mid-run: the relay reconnects, loses nothing, and finishes.

use infor_comm_tests::{wait_until, RabbitNode, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_run_loses_nothing() {
    let scenario = Scenario::new(2000).await;
    let _sim = scenario.simulator(&[]);
    let relay = scenario.relay("relay", &["--batch-size", "100"]);
    let client = scenario.db.connect().await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            let published: i64 = client
                .query_one(
                    "SELECT count(*) FROM infor_comm.outbox WHERE published_at IS NOT NULL",
                    &[],
                )
                .await
                .expect("query")
                .get(0);
            published > 0
        })
        .await,
        "{}",
        relay.output()
    );
    let rabbit: &RabbitNode = scenario.rabbit;
    tokio::task::block_in_place(|| rabbit.restart(Duration::from_secs(2)));
    let progress = scenario.wait_until_done(Duration::from_secs(120)).await;
    assert_eq!(progress.published, 2000, "{progress:?}\n{}", relay.output());
    assert_eq!(progress.answered, 2000, "{progress:?}");
    assert_eq!(progress.pushed, progress.created);
    assert_eq!(scenario.inbox_count("reply").await, 2000);
    assert!(
        relay.output().contains("reconnecting"),
        "the relay noticed the restart"
    );
}
