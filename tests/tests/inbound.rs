//! Inbound and outbox functions across sessions: one message applied by two sessions at once,
//! a reply racing its push, two relays claiming at once, leases that end, and the NOTIFY.

use futures_util::future::join_all;
use infor_comm_tests::{insert_thinking_clients, TestDb};
use std::time::Duration;
use tokio_postgres::{Client, GenericClient};

const AS_OF: &str = "2026-11-20 12:00:00+03";

async fn count(client: &Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// Enqueues `n` requests and returns their request ids.
async fn enqueued(db: &TestDb, n: i32) -> Vec<String> {
    let client = db.connect().await;
    insert_thinking_clients(&client, n, AS_OF).await;
    client
        .query_one(
            "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
            &[&AS_OF],
        )
        .await
        .expect("enqueue");
    client
        .query(
            "SELECT request_id::text FROM infor_comm.outbox ORDER BY outbox_id",
            &[],
        )
        .await
        .expect("ids")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

async fn apply(client: &Client, body: &str) -> String {
    client
        .query_one("SELECT infor_comm.apply_inbound($1::text)", &[&body])
        .await
        .expect("apply_inbound")
        .get(0)
}

fn reply(n: usize, request_id: &str) -> String {
    format!(
        r#"{{"requestID": "crm-{n}", "replyUID": "{request_id}", "dt": "2026-11-20T12:00:00.000+03:00", "statusCode": "0", "taskID": "task-{n}"}}"#
    )
}

fn push(n: usize) -> String {
    format!(
        r#"{{"requestID": "crm-{n}", "taskID": "task-{n}", "dt": "2026-11-21T12:00:00.000+03:00", "taskStatus": "3", "firstLevelClientReaction": "Недозвон", "secondLevelClientReaction": "Недоступен"}}"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_message_applied_by_two_sessions_at_once_is_applied_once() {
    let db = TestDb::new().await;
    let ids = enqueued(&db, 200).await;
    let (a, b) = (db.connect().await, db.connect().await);
    let mut outcomes = Vec::new();
    for (n, id) in ids.iter().enumerate() {
        let body = reply(n, id);
        let (x, y) = tokio::join!(apply(&a, &body), apply(&b, &body));
        outcomes.push((x, y));
        let body = push(n);
        let (x, y) = tokio::join!(apply(&a, &body), apply(&b, &body));
        outcomes.push((x, y));
    }
    for (n, (x, y)) in outcomes.iter().enumerate() {
        let mut pair = [x.as_str(), y.as_str()];
        pair.sort();
        let expected = if n % 2 == 0 {
            ["duplicate", "reply"]
        } else {
            ["duplicate", "push"]
        };
        assert_eq!(pair, expected, "message {n}");
    }
    let check = db.connect().await;
    assert_eq!(
        count(
            &check,
            "SELECT count(*) FROM infor_comm.infor_communication_task
                        WHERE status_code = '0' AND task_status = '3'"
        )
        .await,
        200
    );
    assert_eq!(
        count(&check, "SELECT count(*) FROM infor_comm.inbox").await,
        800
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_push_racing_its_reply_is_never_stranded() {
    let db = TestDb::new().await;
    let ids = enqueued(&db, 300).await;
    let sessions = [
        db.connect().await,
        db.connect().await,
        db.connect().await,
        db.connect().await,
    ];
    // Each reply and its push go to different sessions at the same moment.
    for (c, pair) in ids.chunks(2).enumerate() {
        let mut calls = Vec::new();
        for (i, id) in pair.iter().enumerate() {
            let n = c * 2 + i;
            let (push_session, reply_session) = (&sessions[i * 2], &sessions[i * 2 + 1]);
            let (push_body, reply_body) = (push(n), reply(n, id));
            calls.push((push_session, push_body));
            calls.push((reply_session, reply_body));
        }
        join_all(calls.iter().map(|(session, body)| apply(session, body))).await;
    }
    let check = db.connect().await;
    assert_eq!(
        count(
            &check,
            "SELECT count(*) FROM infor_comm.infor_communication_task
                        WHERE status_code = '0' AND task_status = '3'
                          AND second_level_client_reaction = 'Недоступен'"
        )
        .await,
        300,
        "every push applied"
    );
    assert_eq!(
        count(
            &check,
            "SELECT count(*) FROM infor_comm.inbox WHERE kind = 'push' AND applied_at IS NULL"
        )
        .await,
        0,
        "no orphan left behind"
    );
}

/// Claims one batch of up to 37 rows (in `client`'s transaction, if it has one); returns
/// their outbox ids.
async fn claim_batch(client: &impl GenericClient) -> Vec<i64> {
    client
        .query(
            "SELECT outbox_id FROM infor_comm.claim_outbox(37, '5 minutes')",
            &[],
        )
        .await
        .expect("claim")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// Two relays together were handed `rows` rows, none twice (how the work split between them
/// depends on timing).
fn assert_each_handed_out_once(mut x: Vec<i64>, y: Vec<i64>, rows: usize) {
    x.extend(y);
    let total = x.len();
    x.sort_unstable();
    x.dedup();
    assert_eq!(x.len(), total, "no row handed out twice");
    assert_eq!(total, rows, "every row handed out");
}

/// Claims batches until nothing is left; returns the outbox ids.
async fn claim_all(client: &Client) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let batch = claim_batch(client).await;
        if batch.is_empty() {
            return ids;
        }
        ids.extend(batch);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_claiming_at_once_get_disjoint_rows() {
    let db = TestDb::new().await;
    enqueued(&db, 1000).await;
    let (a, b) = (db.connect().await, db.connect().await);
    // How the work splits between the two depends on timing; that no row is handed out
    // twice and none is left out does not.
    let (x, y) = tokio::join!(claim_all(&a), claim_all(&b));
    assert_each_handed_out_once(x, y, 1000);
}

#[tokio::test]
async fn a_claim_not_yet_committed_is_skipped_not_waited_for() {
    let db = TestDb::new().await;
    enqueued(&db, 100).await;
    let (mut a, b) = (db.connect().await, db.connect().await);
    let held = a.transaction().await.expect("begin");
    let first = claim_batch(&held).await;
    // While the first claim is still open, the second relay must neither wait for its
    // locks nor be handed its rows.
    let second = tokio::time::timeout(Duration::from_secs(30), claim_all(&b))
        .await
        .expect("the second relay was blocked by a claim that had not committed");
    held.commit().await.expect("commit");
    assert_eq!(first.len(), 37);
    assert_eq!(second.len(), 63);
    assert!(
        second.iter().all(|id| !first.contains(id)),
        "a row locked by the first claim was handed to the second"
    );
    assert_eq!(
        claim_all(&b).await,
        Vec::<i64>::new(),
        "the committed first claim holds its lease"
    );
}

#[tokio::test]
async fn a_lease_that_ends_makes_the_row_claimable_again() {
    let db = TestDb::new().await;
    enqueued(&db, 1).await;
    let relay = db.connect().await;
    let claim = "SELECT count(*) FROM infor_comm.claim_outbox(10, '300 milliseconds')";
    assert_eq!(count(&relay, claim).await, 1);
    assert_eq!(count(&relay, claim).await, 0);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        count(&relay, claim).await,
        1,
        "claimable again once the lease ended"
    );
}

/// Locks one batch of up to 37 rows in `client`'s transaction (`lock_outbox`, as the relay
/// claims); returns their outbox ids.
async fn lock_batch(client: &impl GenericClient) -> Vec<i64> {
    client
        .query("SELECT outbox_id FROM infor_comm.lock_outbox(37)", &[])
        .await
        .expect("lock_outbox")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// As the relay does: a transaction per batch that locks it, marks it published and commits,
/// until nothing is left; returns the outbox ids.
async fn publish_all(client: &mut Client) -> Vec<i64> {
    let mut ids = Vec::new();
    loop {
        let batch = client.transaction().await.expect("begin");
        let locked = lock_batch(&batch).await;
        let marked: i32 = batch
            .query_one("SELECT infor_comm.mark_published($1)", &[&locked])
            .await
            .expect("mark_published")
            .get(0);
        batch.commit().await.expect("commit");
        assert_eq!(marked as usize, locked.len(), "every locked row marked");
        if locked.is_empty() {
            return ids;
        }
        ids.extend(locked);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_locking_batches_at_once_publish_each_row_once() {
    let db = TestDb::new().await;
    enqueued(&db, 1000).await;
    let (mut a, mut b) = (db.connect().await, db.connect().await);
    let (x, y) = tokio::join!(publish_all(&mut a), publish_all(&mut b));
    assert_each_handed_out_once(x, y, 1000);
    assert_eq!(
        count(
            &a,
            "SELECT count(*) FROM infor_comm.outbox WHERE published_at IS NULL"
        )
        .await,
        0
    );
}

#[tokio::test]
async fn a_locked_batch_is_skipped_while_held_and_claimable_at_once_when_its_relay_dies() {
    let db = TestDb::new().await;
    enqueued(&db, 100).await;
    let (mut a, b) = (db.connect().await, db.connect().await);
    let held = a.transaction().await.expect("begin");
    let first = lock_batch(&held).await;
    assert_eq!(first.len(), 37);
    // Neither claim_outbox nor lock_outbox waits for the held rows or hands them out.
    let leased = tokio::time::timeout(Duration::from_secs(30), claim_all(&b))
        .await
        .expect("claim_outbox was blocked by a batch another relay holds");
    assert_eq!(leased.len(), 63);
    assert!(leased.iter().all(|id| !first.contains(id)));
    let locked = tokio::time::timeout(Duration::from_secs(30), lock_batch(&b))
        .await
        .expect("lock_outbox was blocked by a batch another relay holds");
    assert_eq!(
        locked,
        Vec::<i64>::new(),
        "held and leased rows are not handed out"
    );
    // The relay dies with its batch unmarked (no ROLLBACK is sent: the connection just
    // closes): the rows are free at once, no lease to wait for.
    std::mem::forget(held);
    drop(a);
    let mut again = Vec::new();
    for _ in 0..100 {
        again = lock_batch(&b).await;
        if !again.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    again.sort_unstable();
    let mut first = first;
    first.sort_unstable();
    assert_eq!(again, first, "the dead relay's batch is claimable again");
}

#[tokio::test]
async fn lock_outbox_refuses_a_batch_size_out_of_range() {
    let db = TestDb::new().await;
    let client = db.connect().await;
    for size in ["0", "10001", "NULL"] {
        let error = client
            .query(
                &format!("SELECT * FROM infor_comm.lock_outbox({size})"),
                &[],
            )
            .await
            .expect_err("refused");
        let db_error = error.as_db_error().expect("a database error");
        assert_eq!(db_error.code().code(), "22023", "{db_error:?}");
        assert!(
            db_error.message().contains("invalid batch_size"),
            "{db_error:?}"
        );
    }
}

#[tokio::test]
async fn enqueue_notifies_a_listening_relay() {
    let db = TestDb::new().await;
    let (listener, mut connection) = tokio_postgres::connect(&db.url(), tokio_postgres::NoTls)
        .await
        .expect("connect");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        use futures_util::StreamExt;
        while let Some(Ok(message)) = messages.next().await {
            if let tokio_postgres::AsyncMessage::Notification(n) = message {
                let _ = tx.send((n.channel().to_string(), n.payload().to_string()));
            }
        }
    });
    listener
        .batch_execute("LISTEN infor_comm_outbox")
        .await
        .expect("listen");
    enqueued(&db, 3).await;
    let (channel, payload) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
        .await
        .expect("a notification within 5 s")
        .expect("a notification");
    assert_eq!(
        (channel.as_str(), payload.as_str()),
        ("infor_comm_outbox", "3")
    );
}
