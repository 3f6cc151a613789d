//! The relay killed with SIGKILL in the middle of its work, then restarted: every request
//! reaches the broker at least once, and every reply and push is applied once.

use infor_comm_tests::Scenario;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_loses_nothing() {
    let scenario = Scenario::new(3000).await;
    let _sim = scenario.simulator(&[]);
    let mut relay = scenario.relay("relay-1", &["--batch-size", "400", "--lease", "2s"]);
    let client = scenario.db.connect().await;
    assert!(
        scenario
            .wait_until_published(1, Duration::from_secs(60))
            .await,
        "{}",
        relay.output()
    );
    relay.kill();
    let before = scenario.progress().await;
    assert!(before.published < 3000, "killed before the end: {before:?}");
    let relay = scenario.relay("relay-2", &["--batch-size", "400", "--lease", "2s"]);
    // Every request reached the broker, and each task row got exactly one reply applied;
    // anything more is a duplicate, or the answer to a request that was published twice (at
    // least once delivery), kept as rejected.
    scenario
        .assert_finishes(Duration::from_secs(120), &relay)
        .await;
    let unexplained: i64 = client
        .query_one(
            "SELECT count(*) FROM infor_comm.inbox
              WHERE outcome = 'rejected' AND reason NOT LIKE 'conflicts with the reply already applied%'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(unexplained, 0, "{:?}", scenario.inbox_outcomes().await);
    let applied_twice: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT task_row_id FROM infor_comm.inbox
                                    WHERE kind = 'reply' AND applied_at IS NOT NULL
                                    GROUP BY 1 HAVING count(*) > 1) t",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(applied_twice, 0);
}
