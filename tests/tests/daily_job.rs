//! The daily job across sessions: two runs at once, settings per database, and bad stored values.

use infor_comm_tests::{insert_thinking_clients, TestDb};
use std::time::Duration;

const AS_OF: &str = "2026-11-20 12:00:00+03";

async fn count(client: &tokio_postgres::Client, sql: &str) -> i64 {
    client.query_one(sql, &[]).await.expect(sql).get(0)
}

/// The number of clients with more than one open request (must be 0).
const DOUBLE_OPEN: &str = "SELECT count(*) FROM (SELECT organization_id FROM infor_comm.outbox
                            WHERE closed_at IS NULL GROUP BY 1 HAVING count(*) > 1) d";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_sessions_enqueueing_at_once_ask_each_client_once() {
    let db = TestDb::new().await;
    let setup = db.connect().await;
    insert_thinking_clients(&setup, 2000, AS_OF).await;

    let (a, b) = (db.connect().await, db.connect().await);
    let run = |client: tokio_postgres::Client| async move {
        let row = client
            .query_one(
                "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
                &[&AS_OF],
            )
            .await
            .expect("enqueue");
        row.get::<_, i32>(0)
    };
    let (first, second) = tokio::join!(run(a), run(b));
    assert_eq!(
        first + second,
        2000,
        "every client once: {first} + {second}"
    );
    assert_eq!(
        count(&setup, "SELECT count(*) FROM infor_comm.outbox").await,
        2000
    );
    assert_eq!(
        count(
            &setup,
            "SELECT count(*) FROM infor_comm.infor_communication_task"
        )
        .await,
        2000
    );
    assert_eq!(count(&setup, DOUBLE_OPEN).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_overlapping_run_waits_for_the_first_and_then_finds_nobody() {
    let db = TestDb::new().await;
    let setup = db.connect().await;
    insert_thinking_clients(&setup, 300, AS_OF).await;

    let first = db.connect().await;
    first.batch_execute("BEGIN").await.expect("begin");
    let n: i32 = first
        .query_one(
            "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
            &[&AS_OF],
        )
        .await
        .expect("first run")
        .get(0);
    assert_eq!(n, 300);

    // The second run starts while the first has not committed yet.
    let second = db.connect().await;
    let second_run = tokio::spawn(async move {
        second
            .query_one(
                "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
                &[&AS_OF],
            )
            .await
            .map(|row| row.get::<_, i32>(0))
    });
    // It waits on the enqueue lock.
    let mut waited = false;
    for _ in 0..100 {
        if count(
            &setup,
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted",
        )
        .await
            == 1
        {
            waited = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(waited, "the second run should wait for the first");
    assert!(!second_run.is_finished());
    first.batch_execute("COMMIT").await.expect("commit");
    let second_count = second_run.await.expect("join").expect("second run");
    assert_eq!(
        second_count, 0,
        "the second run finds every client already asked"
    );
    assert_eq!(
        count(&setup, "SELECT count(*) FROM infor_comm.outbox").await,
        300
    );
    assert_eq!(count(&setup, DOUBLE_OPEN).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_repeatable_read_run_that_overlaps_fails_rather_than_asking_twice() {
    let db = TestDb::new().await;
    let setup = db.connect().await;
    insert_thinking_clients(&setup, 50, AS_OF).await;

    let first = db.connect().await;
    let second = db.connect().await;
    first.batch_execute("BEGIN").await.expect("begin");
    // The second transaction takes its snapshot before the first run commits.
    second
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 1")
        .await
        .expect("begin rr");
    first
        .query_one(
            "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
            &[&AS_OF],
        )
        .await
        .expect("first run");
    let second_run = tokio::spawn(async move {
        let result = second
            .query_one(
                "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
                &[&AS_OF],
            )
            .await;
        let _ = second.batch_execute("ROLLBACK").await;
        result.map(|row| row.get::<_, i32>(0))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.batch_execute("COMMIT").await.expect("commit");
    let result = second_run.await.expect("join");
    let error = result.expect_err("the stale snapshot must not enqueue again");
    let code = error
        .code()
        .map(|c| c.code().to_string())
        .unwrap_or_default();
    // The enqueue refuses a snapshot older than its wait, with one clear error (run_daily on
    // its own sets READ COMMITTED and never meets it).
    assert_eq!(
        code, "25001",
        "the enqueue's READ COMMITTED error, got {error:?}"
    );
    assert_eq!(
        count(&setup, "SELECT count(*) FROM infor_comm.outbox").await,
        50
    );
    assert_eq!(count(&setup, DOUBLE_OPEN).await, 0);
}

#[tokio::test]
async fn thinking_days_can_be_set_per_database() {
    let db = TestDb::new().await;
    let setup = db.connect().await;
    insert_thinking_clients(&setup, 3, AS_OF).await; // thinking for 10 days
    let selected = "SELECT count(*) FROM infor_comm.thinking_clients_at('2026-11-20 12:00:00+03')";
    assert_eq!(count(&setup, selected).await, 3);
    setup
        .batch_execute(&format!(
            "ALTER DATABASE {} SET infor_comm.thinking_days = 11",
            db.name
        ))
        .await
        .expect("alter database");
    // A new session of this database has 11 days: nobody qualifies yet.
    let session = db.connect().await;
    assert_eq!(count(&session, selected).await, 0);
    let shown: String = session
        .query_one("SHOW infor_comm.thinking_days", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(shown, "11");
    // The session can still override the database's value.
    session
        .batch_execute("SET infor_comm.thinking_days = 10")
        .await
        .expect("set");
    assert_eq!(count(&session, selected).await, 3);
}

#[tokio::test]
async fn a_bad_value_stored_for_the_database_fails_the_job_instead_of_using_the_default() {
    let db = TestDb::new().await;
    // A session that has not loaded the library cannot check the value: it is stored as is.
    let admin = db.cluster.connect("postgres").await;
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} SET infor_comm.thinking_days = 'a week'",
            db.name
        ))
        .await
        .expect("stored unchecked");
    let session = db.connect().await;
    let error = session
        .query_one("SELECT infor_comm.enqueue_thinking_clients()", &[])
        .await
        .expect_err("a bad stored value must fail the job");
    let db_error = error.as_db_error().expect("a database error");
    assert_eq!(db_error.code().code(), "22023");
    assert_eq!(
        db_error.message(),
        "invalid value for parameter \"infor_comm.thinking_days\": \"a week\""
    );
    // A session that has loaded the library refuses such a value at once.
    session
        .batch_execute(&format!(
            "ALTER DATABASE {} RESET infor_comm.thinking_days",
            db.name
        ))
        .await
        .expect("reset");
    let error = session
        .batch_execute(&format!(
            "ALTER DATABASE {} SET infor_comm.timezone = 'Moscow/Kremlin'",
            db.name
        ))
        .await
        .expect_err("refused when set");
    let message = error.as_db_error().map(|e| e.message().to_string());
    assert_eq!(
        message.as_deref(),
        Some("invalid value for parameter \"infor_comm.timezone\": \"Moscow/Kremlin\"")
    );
}
