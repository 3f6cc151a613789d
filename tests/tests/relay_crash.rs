//! The relay killed with SIGKILL in the middle of its work, then restarted: every request
//! reaches the broker at least once, and every reply and push is applied once.

use infor_comm_tests::scenario::created_reply;
use infor_comm_tests::Scenario;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_mid_batch_loses_nothing() {
    let scenario = Scenario::new(3000).await;
    let _sim = scenario.simulator(&[]);
    // Small batches and a small window, so that the relay is still publishing when it is
    // killed: with its defaults it publishes the 3,000 requests faster than the test looks.
    let slow = [
        "--batch-size",
        "50",
        "--publish-window",
        "100",
        "--lease",
        "2s",
    ];
    let mut relay = scenario.relay("relay-1", &slow);
    let client = scenario.db.connect().await;
    scenario
        .expect_published(1, Duration::from_secs(60), &relay)
        .await;
    relay.kill();
    let before = scenario.progress().await;
    assert!(before.published < 3000, "killed before the end: {before:?}");
    let relay = scenario.relay("relay-2", &slow);
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_killed_in_a_batched_inbound_transaction_applies_every_message_once() {
    const REPLIES: usize = 3000;
    let scenario = Scenario::new(REPLIES as i32).await;
    let client = scenario.db.connect().await;
    let ids = scenario.request_ids().await;
    // Declare the queues, then queue every reply while no relay runs.
    let mut declare = scenario.relay("declare", &[]);
    infor_comm_tests::expect_logged(&declare, "consuming", Duration::from_secs(30)).await;
    declare.terminate(Duration::from_secs(10));
    let bodies: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(n, id)| created_reply(n, id))
        .collect();
    let refs: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    scenario.publish_inbound(&refs, "crash").await;
    let mut relay = scenario.relay("inbound-1", &[]);
    assert!(
        infor_comm_tests::wait_until(Duration::from_secs(60), || async {
            scenario.progress().await.answered >= 100
        })
        .await,
        "{}",
        relay.output()
    );
    // Mid-stream: batches are being applied, some committed and not yet acked.
    relay.kill();
    let before = scenario.progress().await.answered;
    assert!(before < REPLIES as i64, "killed before the end: {before}");
    let relay = scenario.relay("inbound-2", &[]);
    assert!(
        infor_comm_tests::wait_until(Duration::from_secs(120), || async {
            scenario.progress().await.answered == REPLIES as i64
        })
        .await,
        "{}",
        relay.output()
    );
    let outcomes = scenario.inbox_outcomes().await;
    // Each reply applied exactly once; a message whose ack the kill lost came again and was
    // journaled as a duplicate; nothing else.
    let applied: i64 = client
        .query_one(
            "SELECT count(DISTINCT task_row_id) FROM infor_comm.inbox WHERE outcome = 'reply'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(applied, REPLIES as i64, "{outcomes:?}");
    let other: i64 = client
        .query_one(
            "SELECT count(*) FROM infor_comm.inbox WHERE outcome NOT IN ('reply', 'duplicate')
                OR (outcome = 'reply' AND task_row_id IN (SELECT task_row_id FROM infor_comm.inbox
                                                           WHERE outcome = 'reply'
                                                           GROUP BY 1 HAVING count(*) > 1))",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(other, 0, "{outcomes:?}");
    assert!(
        infor_comm_tests::wait_until(Duration::from_secs(10), || async {
            scenario.inbound_depth() == 0
        })
        .await
    );
}
