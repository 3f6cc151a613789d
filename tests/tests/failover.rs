//! The daily job across a failover, on a real streaming standby (its own cluster: this file's
//! primary is crashed): a run cut by the failover is reported as interrupted by `health` on the
//! promoted standby, and running the job again there the same day asks nobody twice.

use infor_comm_tests::postgres::connect;
use infor_comm_tests::{insert_thinking_clients, wait_until, TestDb};
use std::time::Duration;

/// The enqueue's advisory lock ("inforcom" in ASCII), which a run takes before it enqueues.
const ENQUEUE_LOCK: i64 = 7_597_122_250_267_127_661;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_cut_by_a_failover_is_interrupted_and_the_same_days_rerun_asks_nobody_twice() {
    let db = TestDb::new().await;
    let client = db.connect().await;
    insert_thinking_clients(&client, 50, "2026-11-20 12:00:00+03").await;
    let primary = db.cluster;
    let standby = tokio::task::block_in_place(|| primary.standby()).expect("a standby");
    let standby_url = format!(
        "postgresql://postgres@127.0.0.1:{}/{}",
        standby.port, db.name
    );

    // A run that has recorded itself and waits for the enqueue's lock when the primary dies.
    let holder = db.connect().await;
    holder
        .execute("SELECT pg_advisory_lock($1)", &[&ENQUEUE_LOCK])
        .await
        .expect("hold the enqueue's lock");
    let runner = db.connect().await;
    let run =
        tokio::spawn(async move { runner.batch_execute("CALL infor_comm.run_daily()").await });
    assert!(
        wait_until(Duration::from_secs(30), || async {
            connect(&standby_url)
                .await
                .query_one(
                    "SELECT count(*) FROM infor_comm.daily_runs WHERE status = 'running'",
                    &[],
                )
                .await
                .is_ok_and(|row| row.get::<_, i64>(0) == 1)
        })
        .await,
        "the standby has the running run"
    );
    tokio::task::block_in_place(|| primary.crash());
    assert!(
        run.await.expect("the run's task").is_err(),
        "the run is cut"
    );
    tokio::task::block_in_place(|| standby.promote()).expect("promote");

    let promoted = connect(&standby_url).await;
    let status: String = promoted
        .query_one("SELECT last_run_status FROM infor_comm.health", &[])
        .await
        .expect("health")
        .get(0);
    assert_eq!(status, "interrupted");
    let problems: String = promoted
        .query_one(
            "SELECT array_to_string(problems, ' | ') FROM infor_comm.health",
            &[],
        )
        .await
        .expect("problems")
        .get(0);
    assert!(problems.contains("interrupted"), "{problems}");

    // The same day, on the new primary: the job asks each client once, and once only.
    for _ in 0..2 {
        promoted
            .batch_execute("CALL infor_comm.run_daily()")
            .await
            .expect("run_daily on the promoted standby");
    }
    let row = promoted
        .query_one(
            "SELECT count(*), count(DISTINCT organization_id) FROM infor_comm.outbox WHERE closed_at IS NULL",
            &[],
        )
        .await
        .expect("requests");
    let (open, clients): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((open, clients), (50, 50));
    let runs: String = promoted
        .query_one(
            "SELECT string_agg(status || ' ' || coalesce(sent, 0), ', ' ORDER BY run_id) FROM infor_comm.daily_runs",
            &[],
        )
        .await
        .expect("runs")
        .get(0);
    assert_eq!(runs, "running 0, succeeded 50, succeeded 0");
    let status: String = promoted
        .query_one("SELECT last_run_status FROM infor_comm.health", &[])
        .await
        .expect("health")
        .get(0);
    assert_eq!(status, "succeeded");
}
