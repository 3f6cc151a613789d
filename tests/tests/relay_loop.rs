//! The whole loop over a real RabbitMQ, with the real relay and simulator as processes:
//! every request published once and answered, malformed messages kept, two relays at once,
//! and a clean exit on SIGTERM.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::scenario::http_get;
use infor_comm_tests::{wait_until, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_whole_loop_answers_every_request_once() {
    let scenario = Scenario::new(300).await;
    let metrics_port = free_port();
    let _relay = scenario.relay_with_metrics("relay", &[], metrics_port);
    let _sim = scenario.simulator(&["--rate-not-found", "0.1", "--rate-error", "0.1"]);
    let progress = scenario.wait_until_done(Duration::from_secs(60)).await;
    assert_eq!(progress.requests, 300);
    assert_eq!(progress.published, 300);
    assert_eq!(progress.answered, 300);
    assert_eq!(progress.pushed, progress.created);
    assert!(
        progress.created > 150 && progress.created < 300,
        "{progress:?}"
    );
    // One reply per request and one push per created task: nothing twice.
    assert_eq!(scenario.inbox_count("reply").await, 300);
    assert_eq!(
        scenario.inbox_count("push").await + scenario.inbox_count("orphan").await,
        progress.created
    );
    assert_eq!(
        scenario.inbox_count("rejected").await,
        0,
        "{:?}",
        scenario.inbox_outcomes().await
    );
    assert_eq!(scenario.inbox_count("duplicate").await, 0);
    // Every request was valid for the simulator (an invalid one gets statusCode 2 with this text).
    let client = scenario.db.connect().await;
    let invalid: i64 = client
        .query_one(
            "SELECT count(*) FROM infor_comm.inbox WHERE body LIKE '%invalid request%'",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(invalid, 0);
    // The relay says it is ready, and counts what it did.
    assert_eq!(
        http_get(metrics_port, "/health").await.map(|r| r.0),
        Some(200)
    );
    assert_eq!(
        http_get(metrics_port, "/ready").await.map(|r| r.0),
        Some(200)
    );
    let (_, metrics) = http_get(metrics_port, "/metrics").await.expect("metrics");
    assert!(
        metrics.contains("infor_relay_published_total 300"),
        "{metrics}"
    );
    assert!(
        metrics.contains("infor_relay_inbound_total{outcome=\"reply\"} 300"),
        "{metrics}"
    );
    assert!(metrics.contains("infor_relay_connection_up{"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_inbound_messages_are_kept_and_the_relay_goes_on() {
    let scenario = Scenario::new(50).await;
    let mut relay = scenario.relay("relay", &[]);
    // Wait for the relay to declare the queues, then put garbage on the inbound queue.
    let client = scenario.db.connect().await;
    scenario
        .expect_published(50, Duration::from_secs(30), &relay)
        .await;
    scenario
        .publish_inbound(
            &[
                b"not json at all",
                b"{\"replyUID\": \"nobody\", \"requestID\": \"x\", \"statusCode\": \"0\", \"taskID\": \"1\"}",
                b"\xff\xfe\x00 binary",
                b"{\"taskStatus\": 3}",
            ],
            "garbage",
        )
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            scenario.inbox_count("rejected").await == 4
        })
        .await,
        "{:?}",
        scenario.inbox_outcomes().await
    );
    assert!(relay.is_running(), "the relay survived");
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM infor_comm.inbox
              WHERE message_id = 'garbage' AND outcome = 'rejected' AND reason IS NOT NULL
                AND (body IS NOT NULL OR body_bytes = '\\xfffe002062696e617279'::bytea)",
            &[],
        )
        .await
        .expect("query")
        .get(0);
    assert_eq!(kept, 4, "kept whole, with the reason");
    // And it still applies real answers.
    let _sim = scenario.simulator(&[]);
    let progress = scenario.wait_until_done(Duration::from_secs(60)).await;
    assert_eq!(progress.answered, 50, "{progress:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_applied_in_another_order_than_delivered_is_acked_whole() {
    // Messages whose CRM ids sort in the reverse of their delivery order, taken in one batch:
    // the relay applies them sorted by those ids, and must still ack every one of them. A
    // multiple ack of the batch's last applied message acked only the first delivered.
    let scenario = Scenario::new(0).await;
    let mut relay = scenario.relay("relay", &[]);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario
                .rabbit
                .queue_type(&scenario.amqp_url, &scenario.inbound_queue())
                .is_some()
        })
        .await,
        "the relay declared the inbound queue"
    );
    relay.terminate(Duration::from_secs(30));
    let bodies: Vec<String> = (0..20)
        .rev()
        .map(|n| format!(r#"{{"replyUID": "nobody", "requestID": "crm-{n:02}", "statusCode": "0", "taskID": "t"}}"#))
        .collect();
    let bodies: Vec<&[u8]> = bodies.iter().map(|b| b.as_bytes()).collect();
    scenario.publish_inbound(&bodies, "reversed").await;
    let _relay = scenario.relay("relay-again", &[]);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario.inbox_count("rejected").await + scenario.inbox_count("orphan").await == 20
        })
        .await,
        "{:?}",
        scenario.inbox_outcomes().await
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            scenario.inbound_depth() == 0
        })
        .await,
        "messages ready or unacked after all were recorded: {}",
        scenario.inbound_depth()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_relays_share_the_outbox_without_publishing_a_row_twice() {
    let scenario = Scenario::new(1000).await;
    let _first = scenario.relay("relay-1", &["--batch-size", "20"]);
    let _second = scenario.relay("relay-2", &["--batch-size", "20"]);
    let _sim = scenario.simulator(&[]);
    let progress = scenario.wait_until_done(Duration::from_secs(90)).await;
    assert_eq!(progress.answered, 1000, "{progress:?}");
    // A request published twice would be answered twice: the second reply would be rejected as
    // a conflict, or counted as a duplicate.
    assert_eq!(scenario.inbox_count("reply").await, 1000);
    assert_eq!(
        scenario.inbox_count("rejected").await,
        0,
        "{:?}",
        scenario.inbox_outcomes().await
    );
    assert_eq!(scenario.inbox_count("duplicate").await, 0);
}

/// Within a busy period each claim starts past the rows the relay holds; requests another relay
/// held and released meanwhile are still claimed in that busy period (every 16th claim starts
/// from the oldest again), not only once the backlog is gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_released_during_a_busy_period_are_published_in_it() {
    let scenario = Scenario::new(6000).await;
    // Another relay's batch: the 50 oldest requests, locked until its transaction ends.
    let holder = scenario.db.connect().await;
    holder.batch_execute("BEGIN").await.expect("begin");
    let held: Vec<i64> = holder
        .query("SELECT outbox_id FROM infor_comm.lock_outbox(50)", &[])
        .await
        .expect("lock_outbox")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(held.len(), 50);
    let relay = scenario.relay("relay", &["--batch-size", "20", "--publish-window", "40"]);
    scenario
        .expect_published(1000, Duration::from_secs(60), &relay)
        .await;
    holder.batch_execute("ROLLBACK").await.expect("release");
    scenario
        .expect_published(6000, Duration::from_secs(120), &relay)
        .await;
    let published_after: i64 = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM infor_comm.outbox
              WHERE published_at > (SELECT max(published_at) FROM infor_comm.outbox
                                     WHERE outbox_id = ANY($1))",
            &[&held],
        )
        .await
        .expect("query")
        .get(0);
    // Released at 1,000 or more of 6,000; claimed again within 16 + 3 claims of 20.
    assert!(
        published_after >= 1000,
        "the released requests waited for the end of the backlog: {published_after} published after them"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_and_exits_zero() {
    let scenario = Scenario::new(200).await;
    let mut relay = scenario.relay("relay", &[]);
    scenario
        .wait_until_published(1, Duration::from_secs(30))
        .await;
    let status = relay
        .terminate(Duration::from_secs(20))
        .expect("exits within 20 s");
    assert!(
        status.success(),
        "exit status {status:?}: {}",
        relay.output()
    );
    assert!(relay.output().contains("infor-relay stopped"));
    // lapin logged "Connection error … invalid channel state: Closing" at every clean shutdown.
    assert!(
        !relay.output().contains(" ERROR "),
        "a clean shutdown logs no error: {}",
        relay.output()
    );
}

/// SIGTERM while a claim is running: the claim finishes after the shutdown began, and the batch
/// it locked is released unpublished; the relay exits cleanly. (The relay once panicked here:
/// "all branches are disabled".)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_claim_releases_its_batch_and_exits_zero() {
    const HELD: i64 = 4242;
    let scenario = Scenario::new(300).await;
    let client = scenario.db.connect().await;
    // A claim past the rows the relay holds (every claim of a busy period but its first) waits
    // for an advisory lock that this session holds: it is running for as long as the test says.
    client
        .batch_execute(&format!(
            "ALTER FUNCTION infor_comm.lock_outbox(integer, bigint) RENAME TO lock_outbox_unblocked;
             CREATE FUNCTION infor_comm.lock_outbox(batch_size integer, after_id bigint DEFAULT NULL)
             RETURNS TABLE (outbox_id bigint, request_id text, payload text)
             LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
             BEGIN
                 IF after_id IS NOT NULL THEN PERFORM pg_advisory_xact_lock_shared({HELD}); END IF;
                 RETURN QUERY SELECT * FROM infor_comm.lock_outbox_unblocked(batch_size, after_id);
             END $$;
             GRANT EXECUTE ON FUNCTION infor_comm.lock_outbox(integer, bigint) TO infor_comm_relay;
             SELECT pg_advisory_lock({HELD});"
        ))
        .await
        .expect("a claim that waits");
    let mut relay = scenario.relay("relay", &["--batch-size", "100", "--publish-window", "100"]);
    // The first batch is published and marked; the claim of the second waits.
    scenario
        .expect_published(100, Duration::from_secs(30), &relay)
        .await;
    let claim_waits = wait_until(Duration::from_secs(30), || async {
        client
            .query_one(
                "SELECT count(*) FROM pg_stat_activity
                  WHERE usename = 'relay_login' AND wait_event = 'advisory'",
                &[],
            )
            .await
            .expect("pg_stat_activity")
            .get::<_, i64>(0)
            == 1
    })
    .await;
    assert!(claim_waits, "no claim waits: {}", relay.output());
    // Shutdown begins while the claim runs; then the claim gets its rows.
    let early = relay.terminate(Duration::from_millis(500));
    client
        .batch_execute(&format!("SELECT pg_advisory_unlock({HELD})"))
        .await
        .expect("unlock");
    let status = early
        .or_else(|| relay.wait(Duration::from_secs(20)))
        .expect("exits within 20 s");
    let output = relay.output();
    assert!(status.success(), "exit status {status:?}: {output}");
    assert!(!output.contains("panicked"), "{output}");
    assert!(!output.contains(" ERROR "), "{output}");
    assert!(output.contains("infor-relay stopped"), "{output}");
    // The claimed batch was neither published nor left locked: the other 200 are claimable.
    assert_eq!(scenario.progress().await.published, 100);
    assert_eq!(
        scenario
            .rabbit
            .queue_depth(&scenario.amqp_url, &scenario.outbound_queue()),
        100
    );
    let claimable: i64 = client
        .query_one(
            "SELECT count(*) FROM infor_comm.lock_outbox_unblocked(1000)",
            &[],
        )
        .await
        .expect("claim")
        .get(0);
    assert_eq!(claimable, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_to_start_without_queue_names() {
    let scenario = Scenario::new(1).await;
    let mut relay = infor_comm_tests::Process::start(
        "relay-no-zone",
        "infor-relay",
        &["--metrics-addr".into(), "127.0.0.1:0".into()],
        &[
            ("DATABASE_URL", scenario.relay_database_url()),
            ("AMQP_URL", "amqp://guest:s3cret@127.0.0.1:1/%2f".into()),
        ],
    );
    let status = relay.wait(Duration::from_secs(10));
    let output = relay.output();
    assert!(
        output.contains("no outbound queue: pass --zone or --outbound-queue"),
        "{output}"
    );
    assert!(!output.contains("s3cret"), "the password leaked: {output}");
    assert!(
        status.is_some_and(|s| !s.success()),
        "exits with an error: {status:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_database_cannot_apply_waits_in_the_queue_without_spinning() {
    let scenario = Scenario::new(1).await;
    let client = scenario.db.connect().await;
    // A fault that repeats: every attempt to journal this message raises.
    client
        .batch_execute(
            "CREATE FUNCTION public.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
               IF NEW.body LIKE '%poison%' THEN RAISE EXCEPTION 'injected fault'; END IF;
               RETURN NEW;
             END $$;
             CREATE TRIGGER refuse_poison BEFORE INSERT ON infor_comm.inbox
               FOR EACH ROW EXECUTE FUNCTION public.refuse_poison();",
        )
        .await
        .expect("fault injection");
    let metrics_port = free_port();
    let mut relay = scenario.relay_with_metrics("relay", &["--max-backoff", "3s"], metrics_port);
    scenario
        .expect_published(1, Duration::from_secs(30), &relay)
        .await;
    scenario
        .publish_inbound(&[b"{\"poison\": true}"], "poison")
        .await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let attempts = relay
        .output()
        .matches("inbound: every apply of a batch failed; the messages go back to the queue")
        .count();
    // Back-off of 0.2, 0.4, 0.8, 1.6, then 3 s: about six attempts in 8 s. Retrying at the
    // first step every time would be about thirty.
    assert!(
        (2..=12).contains(&attempts),
        "{attempts} attempts in 8 s: {}",
        relay.output()
    );
    assert!(relay.is_running(), "the relay survived");
    assert!(
        relay.output().contains("injected fault"),
        "the log names the database's own message: {}",
        relay.output()
    );
    let (_, metrics) = http_get(metrics_port, "/metrics").await.expect("metrics");
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("infor_relay_inbound_apply_failed_total "))
        .and_then(|value| value.trim().parse::<u64>().ok());
    assert!(
        counted.is_some_and(|n| n >= 2),
        "the failures are counted: {metrics}"
    );
    // Once the fault is fixed, the message is applied: it was never lost.
    client
        .batch_execute("DROP TRIGGER refuse_poison ON infor_comm.inbox")
        .await
        .expect("fix the fault");
    assert!(
        wait_until(Duration::from_secs(15), || async {
            let kept: i64 = client
                .query_one(
                    "SELECT count(*) FROM infor_comm.inbox
                      WHERE message_id = 'poison' AND outcome = 'rejected'",
                    &[],
                )
                .await
                .expect("query")
                .get(0);
            kept == 1
        })
        .await,
        "relay output: {}",
        relay.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_refuses_urls_it_can_never_use() {
    let cases = [
        (
            "postgresql://relay:s3cret@127.0.0.1:1/bank?sslmode=sometimes",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            None,
            "invalid --database-url postgresql://relay:***@127.0.0.1:1/bank",
        ),
        (
            "postgresql://relay:s3cret@127.0.0.1:1/bank?sslmode=require",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            Some("/nonexistent/infor-comm-ca.pem"),
            "cannot read --database-ca-file /nonexistent/infor-comm-ca.pem",
        ),
        (
            "postgresql://relay:s3cret@127.0.0.1:1/bank",
            "amqp://guest:guest@127.0.0.1:1/%2f",
            Some("/nonexistent/infor-comm-ca.pem"),
            "does not say sslmode=require",
        ),
        (
            "postgresql://relay:s3cret@127.0.0.1:1/bank",
            "amqp://guest:s3cret@127.0.0.1:notaport/%2f",
            None,
            "invalid --amqp-url amqp://guest:***@127.0.0.1:notaport/%2f",
        ),
    ];
    for (database_url, amqp_url, ca_file, expected) in cases {
        let mut env = vec![
            ("DATABASE_URL", database_url.to_string()),
            ("AMQP_URL", amqp_url.to_string()),
        ];
        if let Some(ca_file) = ca_file {
            env.push(("DATABASE_CA_FILE", ca_file.to_string()));
        }
        let mut relay = infor_comm_tests::Process::start(
            "relay-bad-url",
            "infor-relay",
            &[
                "--zone".into(),
                "T1".into(),
                "--metrics-addr".into(),
                "127.0.0.1:0".into(),
            ],
            &env,
        );
        let status = relay.wait(Duration::from_secs(10));
        let output = relay.output();
        assert!(output.contains(expected), "{output}");
        assert!(!output.contains("s3cret"), "the password leaked: {output}");
        assert!(
            status.is_some_and(|s| !s.success()),
            "exits with an error at once, not retrying: {status:?}"
        );
    }
}
