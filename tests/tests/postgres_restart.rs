//! PostgreSQL restarted mid-run: the relay stops taking messages while the database is away,
//! reconnects, and finishes; inbound messages are not acked until applied, so none is lost.

use infor_comm_tests::{wait_until, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_restart_mid_run_loses_nothing() {
    let scenario = Scenario::new(2000).await;
    let _sim = scenario.simulator(&[]);
    let relay = scenario.relay("relay", &["--batch-size", "100"]);
    assert!(
        wait_until(Duration::from_secs(60), || async {
            let progress = scenario.progress().await;
            progress.answered > 0
        })
        .await,
        "{}",
        relay.output()
    );
    let cluster = scenario.db.cluster;
    tokio::task::block_in_place(|| {
        cluster.stop();
        std::thread::sleep(Duration::from_secs(3));
        cluster.restart().expect("PostgreSQL back");
    });
    scenario
        .assert_finishes(Duration::from_secs(120), &relay)
        .await;
    assert!(
        relay.output().contains("reconnecting"),
        "the relay noticed the restart"
    );
}
