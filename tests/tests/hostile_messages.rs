//! Hostile inbound messages against the real relay, PostgreSQL and RabbitMQ: a
//! message id with a NUL byte, a message whose apply keeps failing, a database that fails every
//! apply, oversized bodies, headers nested too deep or in a frame too large, and a metrics
//! endpoint held open under a low descriptor limit.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::processes::Process;
use infor_comm_tests::scenario::{created_reply as reply, http_get};
use infor_comm_tests::{expect_logged, wait_until, Scenario};
use std::time::Duration;

async fn count(scenario: &Scenario, sql: &str) -> i64 {
    scenario
        .db
        .connect()
        .await
        .query_one(sql, &[])
        .await
        .expect(sql)
        .get(0)
}

/// Publishes the first request's reply with `first_id` as its message id, then the other
/// replies (ids `m-1`…).
async fn publish_replies(scenario: &Scenario, ids: &[String], first_id: &str) {
    scenario
        .publish_inbound(&[reply(0, &ids[0]).as_bytes()], first_id)
        .await;
    for (n, id) in ids.iter().enumerate().skip(1) {
        scenario
            .publish_inbound(&[reply(n, id).as_bytes()], &format!("m-{n}"))
            .await;
    }
}

/// Waits until `n` task rows have a reply; fails with the relay's log.
async fn expect_answered(scenario: &Scenario, relay: &Process, n: i64) {
    assert!(
        wait_until(Duration::from_secs(120), || async {
            scenario.progress().await.answered == n
        })
        .await,
        "{n} replies applied? {}",
        relay.output()
    );
}

/// Makes the task rows of these requests refuse every update (a trigger raises), so that the
/// apply of their replies raises.
async fn freeze_task_rows(scenario: &Scenario, request_ids: &[String]) {
    let ids: Vec<String> = request_ids.iter().map(|id| format!("'{id}'")).collect();
    scenario
        .db
        .connect()
        .await
        .batch_execute(&format!(
            "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'row % is frozen for the test', OLD.id; END $$;
             CREATE TRIGGER refuse BEFORE UPDATE ON infor_comm.infor_communication_task
                FOR EACH ROW WHEN (OLD.vtbc_request_id IN ({})) EXECUTE FUNCTION public.refuse();",
            ids.join(", ")
        ))
        .await
        .expect("trigger");
}

/// Starts a relay and waits until it consumes (it declares the queues).
async fn consuming_relay(scenario: &Scenario, name: &str, extra: &[&str]) -> Process {
    let relay = scenario.relay(name, extra);
    expect_logged(&relay, "consuming", Duration::from_secs(30)).await;
    relay
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_with_a_nul_byte_is_journaled_and_never_blocks_the_queue() {
    let scenario = Scenario::new(3).await;
    let ids = scenario.request_ids().await;
    let relay = consuming_relay(&scenario, "nul", &[]).await;
    // This id once made apply_inbound fail, and the replies behind it waited.
    publish_replies(&scenario, &ids, "ab\u{0}cd").await;
    expect_answered(&scenario, &relay, 3).await;
    let kept = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT message_id, message_id_bytes, outcome FROM infor_comm.inbox
              WHERE message_id_bytes IS NOT NULL",
            &[],
        )
        .await
        .expect("the NUL id's row");
    assert_eq!(kept.get::<_, Option<String>>(0), None);
    assert_eq!(kept.get::<_, Vec<u8>>(1), b"ab\0cd", "the id round-trips");
    assert_eq!(kept.get::<_, String>(2), "reply");
    assert_eq!(scenario.inbound_depth(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_id_that_is_not_utf8_no_longer_breaks_the_connection_and_round_trips() {
    let scenario = Scenario::new(2).await;
    let ids = scenario.request_ids().await;
    let relay = consuming_relay(&scenario, "not-utf8", &[]).await;
    // lapin used to fail the whole frame on this id and close the connection; the broker then
    // delivered the message again, for ever, and nothing behind it was applied.
    let id: &[u8] = b"ab\xff\xc3cd";
    infor_comm_tests::raw_amqp::publish_with_raw_message_id(
        &scenario.amqp_url,
        &scenario.inbound_queue(),
        id,
        reply(0, &ids[0]).as_bytes(),
    );
    scenario
        .publish_inbound(&[reply(1, &ids[1]).as_bytes()], "m-1")
        .await;
    expect_answered(&scenario, &relay, 2).await;
    let kept: Vec<u8> = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT message_id_bytes FROM infor_comm.inbox WHERE message_id_bytes IS NOT NULL",
            &[],
        )
        .await
        .expect("the id's row")
        .get(0);
    assert_eq!(kept, id, "the id round-trips byte for byte");
    assert!(
        !relay.output().contains("reconnecting"),
        "the connection held: {}",
        relay.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_whose_apply_keeps_failing_is_set_aside_while_the_others_apply() {
    let scenario = Scenario::new(4).await;
    let ids = scenario.request_ids().await;
    // The task row of the first client cannot be updated: its reply raises, the others apply.
    freeze_task_rows(&scenario, &ids[..1]).await;
    let metrics_port = free_port();
    let relay =
        scenario.relay_with_metrics("set-aside", &["--max-apply-attempts", "3"], metrics_port);
    expect_logged(&relay, "consuming", Duration::from_secs(30)).await;
    publish_replies(&scenario, &ids, "poison").await;
    expect_answered(&scenario, &relay, 3).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count(
                &scenario,
                "SELECT count(*) FROM infor_comm.inbox WHERE message_id = 'poison'",
            )
            .await
                == 1
        })
        .await,
        "{}",
        relay.output()
    );
    let reason: String = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT reason FROM infor_comm.inbox WHERE message_id = 'poison' AND outcome = 'rejected'",
            &[],
        )
        .await
        .expect("set aside")
        .get(0);
    assert!(
        reason.starts_with("set aside by the relay after 3 failed applies; last error:")
            && reason.contains("is frozen for the test"),
        "{reason}"
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            scenario.inbound_depth() == 0
        })
        .await
    );
    let (_, metrics) = http_get(metrics_port, "/metrics").await.expect("metrics");
    assert!(
        metrics.contains(r#"infor_relay_inbound_set_aside_total{to="inbox"} 1"#),
        "{metrics}"
    );
    let output = relay.output();
    assert_eq!(
        output.matches("was set aside").count(),
        1,
        "logged once: {output}"
    );
    // Three counted tries, and one more for each time the poison reply came first and alone:
    // its batch failed whole, which the relay takes for a database fault and does not count.
    let uncounted = output.matches("every apply of a batch failed").count();
    assert!(
        output.matches("apply failed").count() <= 3 + uncounted,
        "one line per failed try: {output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_messages_spread_through_full_batches_never_cost_the_others_or_repeat_them() {
    // The relay pipelines a whole batch; a message whose apply raises aborts what was sent
    // after it, which is sent again. Every 10th reply here raises, in batches of 32.
    let scenario = Scenario::new(200).await;
    let ids = scenario.request_ids().await;
    let poison: Vec<String> = ids.iter().skip(3).step_by(10).cloned().collect();
    freeze_task_rows(&scenario, &poison).await;
    // All queued before the relay starts, so that it gets them in full batches.
    let relay = consuming_relay(&scenario, "declare", &[]).await;
    drop(relay);
    for (n, id) in ids.iter().enumerate() {
        scenario
            .publish_inbound(&[reply(n, id).as_bytes()], &format!("m-{n}"))
            .await;
    }
    let relay = consuming_relay(&scenario, "poison-batches", &["--max-apply-attempts", "2"]).await;
    expect_answered(&scenario, &relay, 200 - poison.len() as i64).await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            count(
                &scenario,
                "SELECT count(*) FROM infor_comm.inbox WHERE reason LIKE 'set aside by the relay%'",
            )
            .await
                == poison.len() as i64
        })
        .await,
        "every poison message set aside: {}",
        relay.output()
    );
    assert_eq!(
        count(&scenario, "SELECT count(*) FROM infor_comm.inbox").await,
        200,
        "each message journaled exactly once"
    );
    assert_eq!(
        count(
            &scenario,
            "SELECT count(DISTINCT message_id) FROM infor_comm.inbox WHERE outcome = 'reply'"
        )
        .await,
        200 - poison.len() as i64
    );
    assert!(
        wait_until(Duration::from_secs(10), || async {
            scenario.inbound_depth() == 0
        })
        .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_the_database_cannot_even_journal_goes_to_the_dead_letter_queue() {
    let scenario = Scenario::new(2).await;
    let ids = scenario.request_ids().await;
    scenario
        .db
        .connect()
        .await
        .batch_execute(
            "CREATE FUNCTION public.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN RAISE EXCEPTION 'no journal for %', NEW.message_id; END $$;
             CREATE TRIGGER refuse BEFORE INSERT ON infor_comm.inbox
                FOR EACH ROW WHEN (NEW.message_id = 'poison') EXECUTE FUNCTION public.refuse();",
        )
        .await
        .expect("trigger");
    let dead_letters = format!("{}.dead-letters", scenario.zone);
    let relay = consuming_relay(
        &scenario,
        "dead-letter",
        &[
            "--max-apply-attempts",
            "2",
            "--dead-letter-queue",
            &dead_letters,
        ],
    )
    .await;
    scenario
        .publish_inbound(&[b"{\"not\": \"a reply\"}"], "poison")
        .await;
    scenario
        .publish_inbound(&[reply(1, &ids[1]).as_bytes()], "m-1")
        .await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario
                .rabbit
                .queue_depth(&scenario.amqp_url, &dead_letters)
                == 1
        })
        .await,
        "{}",
        relay.output()
    );
    assert_eq!(scenario.progress().await.answered, 1);
    assert!(
        wait_until(Duration::from_secs(10), || async {
            scenario.inbound_depth() == 0
        })
        .await,
        "{}",
        relay.output()
    );
    assert!(relay.output().contains("moved to the dead-letter queue"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_every_apply_fails_nothing_is_set_aside_or_lost() {
    let scenario = Scenario::new(3).await;
    let ids = scenario.request_ids().await;
    let admin = scenario.db.connect().await;
    admin
        .batch_execute(
            "REVOKE EXECUTE ON FUNCTION infor_comm.apply_delivery(bytea, bytea),
                                        infor_comm.apply_deliveries(bytea[], bytea[])
                FROM infor_comm_relay",
        )
        .await
        .expect("revoke");
    let relay = consuming_relay(&scenario, "all-fail", &["--max-apply-attempts", "2"]).await;
    for (n, id) in ids.iter().enumerate() {
        scenario
            .publish_inbound(&[reply(n, id).as_bytes()], &format!("m-{n}"))
            .await;
    }
    // Long enough for many more tries than --max-apply-attempts.
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert_eq!(
        count(&scenario, "SELECT count(*) FROM infor_comm.inbox").await,
        0,
        "nothing is set aside while nothing applies: {}",
        relay.output()
    );
    assert_eq!(scenario.inbound_depth(), 3);
    admin
        .batch_execute(
            "GRANT EXECUTE ON FUNCTION infor_comm.apply_delivery(bytea, bytea),
                                       infor_comm.apply_deliveries(bytea[], bytea[])
                TO infor_comm_relay",
        )
        .await
        .expect("grant");
    expect_answered(&scenario, &relay, 3).await;
    assert_eq!(
        count(
            &scenario,
            "SELECT count(*) FROM infor_comm.inbox WHERE outcome = 'rejected'"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_journaled_by_size_and_digest_and_the_relay_stays_small() {
    use sha2::{Digest, Sha256};
    let scenario = Scenario::new(1).await;
    let ids = scenario.request_ids().await;
    // Declare the queue, then queue the bodies while no relay runs.
    let mut first = consuming_relay(&scenario, "declare", &[]).await;
    first.terminate(Duration::from_secs(10));
    let big: Vec<Vec<u8>> = (0..3u8)
        .map(|n| {
            let mut body = vec![b'a' + n; 100 * 1024 * 1024];
            body[..2].copy_from_slice(b"{\"");
            body
        })
        .collect();
    for (n, body) in big.iter().enumerate() {
        scenario.publish_inbound(&[body], &format!("big-{n}")).await;
    }
    let just_over = vec![b' '; 1_048_577];
    scenario
        .publish_inbound(&[&just_over], "just-over-the-limit")
        .await;
    scenario
        .publish_inbound(&[reply(0, &ids[0]).as_bytes()], "m-0")
        .await;
    let relay = scenario.relay("oversized", &[]);
    expect_answered(&scenario, &relay, 1).await;
    let peak_kb = relay.status_kb("VmHWM").expect("the relay's peak RSS");
    eprintln!("the relay's peak RSS with 300 MB queued: {peak_kb} kB");
    assert!(
        peak_kb < 64 * 1024,
        "peak RSS {peak_kb} kB with 300 MB queued"
    );
    let rows = scenario
        .db
        .connect()
        .await
        .query(
            "SELECT message_id, body_size, body_sha256, length(body_bytes), reason
               FROM infor_comm.inbox WHERE body_size IS NOT NULL ORDER BY inbox_id",
            &[],
        )
        .await
        .expect("oversized rows");
    assert_eq!(rows.len(), 4, "{}", relay.output());
    for (n, body) in big.iter().enumerate() {
        let row = &rows[n];
        assert_eq!(row.get::<_, String>(0), format!("big-{n}"));
        assert_eq!(row.get::<_, i64>(1), 100 * 1024 * 1024);
        assert_eq!(row.get::<_, Vec<u8>>(2), Sha256::digest(body).to_vec());
        assert_eq!(row.get::<_, i32>(3), 65536);
    }
    assert_eq!(rows[3].get::<_, i64>(1), 1_048_577);
    assert_eq!(
        rows[3].get::<_, String>(4),
        "the body is 1048577 bytes, over the relay's limit of 1048576 bytes; kept: its size, its SHA-256 and its first 65536 bytes"
    );
    assert_eq!(scenario.inbound_depth(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_metrics_endpoint_neither_spins_nor_floods_the_log() {
    let scenario = Scenario::new(1).await;
    let metrics_port = free_port();
    let relay = scenario.relay_with_metrics("fds", &[], metrics_port);
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario.progress().await.published == 1
        })
        .await,
        "{}",
        relay.output()
    );
    // systemd's default soft limit is 1024; this one is low enough that the held connections
    // exhaust it.
    let pid = relay.pid().expect("pid").to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--nofile=64:64", "--pid", &pid])
        .status()
        .expect("prlimit");
    assert!(status.success());
    let lines_before = relay.output().lines().count();
    let mut held = Vec::new();
    for _ in 0..300 {
        if let Ok(stream) = tokio::net::TcpStream::connect(("127.0.0.1", metrics_port)).await {
            held.push(stream);
        }
    }
    let cpu_before = relay.cpu_ticks().expect("cpu");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let cpu_used = relay.cpu_ticks().expect("cpu") - cpu_before;
    // 100 ticks a second: a spinning accept loop would use about 500.
    assert!(cpu_used < 100, "{cpu_used} ticks in 5 s");
    let output = relay.output();
    assert!(
        output.contains("metrics endpoint: accept failed")
            && output.contains("Too many open files"),
        "the descriptors ran out (else this test proves nothing): {output}"
    );
    let new_lines = output.lines().count() - lines_before;
    assert!(new_lines < 20, "{new_lines} log lines:\n{output}");
    // Publishing goes on meanwhile.
    scenario.enqueue_more("later", 4).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario.progress().await.published == 5
        })
        .await,
        "{}",
        relay.output()
    );
    // Once the connections are gone, the endpoint answers again.
    drop(held);
    assert!(
        wait_until(Duration::from_secs(40), || async {
            matches!(http_get(metrics_port, "/ready").await, Some((200, _)))
        })
        .await,
        "{}",
        relay.output()
    );
}

/// The inbox row of `message_id` (`""`: the row without one): its outcome and its reason.
async fn inbox_row(scenario: &Scenario, message_id: &str) -> (String, String) {
    let row = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT outcome, coalesce(reason, '') FROM infor_comm.inbox
              WHERE coalesce(message_id, '') = $1",
            &[&message_id],
        )
        .await
        .expect("the message's inbox row");
    (row.get(0), row.get(1))
}

/// Publishes the first reply with `headers` (raw) as message `hostile`, then the second reply
/// with ordinary headers; expects the second applied, the first journaled as rejected with a
/// reason that contains `why`, the queue empty and the relay alive on its first connection.
async fn expect_set_aside_for_its_headers(name: &str, headers: &[u8], why: &str) {
    expect_set_aside_on(Scenario::new(2).await, name, headers, why, true).await;
}

/// [`expect_set_aside_for_its_headers`] in `scenario` (2 requests); `id_kept`: whether the
/// journal keeps the hostile message's id (its properties could be read).
async fn expect_set_aside_on(
    scenario: Scenario,
    name: &str,
    headers: &[u8],
    why: &str,
    id_kept: bool,
) {
    let ids = scenario.request_ids().await;
    let mut relay = consuming_relay(&scenario, name, &[]).await;
    infor_comm_tests::raw_amqp::publish_with_raw_headers(
        &scenario.amqp_url,
        &scenario.inbound_queue(),
        b"hostile",
        headers,
        reply(0, &ids[0]).as_bytes(),
    );
    infor_comm_tests::raw_amqp::publish_with_raw_headers(
        &scenario.amqp_url,
        &scenario.inbound_queue(),
        b"m-1",
        &infor_comm_tests::raw_amqp::wide_table(3),
        reply(1, &ids[1]).as_bytes(),
    );
    expect_answered(&scenario, &relay, 1).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count(&scenario, "SELECT count(*) FROM infor_comm.inbox").await == 2
        })
        .await,
        "both journaled: {}",
        relay.output()
    );
    let hostile = if id_kept { "hostile" } else { "" };
    let (outcome, reason) = inbox_row(&scenario, hostile).await;
    assert_eq!(outcome, "rejected", "{reason}");
    assert!(reason.contains(why), "{reason}");
    assert_eq!(inbox_row(&scenario, "m-1").await.0, "reply");
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario.inbound_depth() == 0
        })
        .await,
        "the queue is empty"
    );
    assert!(relay.is_running(), "the relay lives: {}", relay.output());
    let output = relay.output();
    assert!(!output.contains("reconnecting"), "one connection: {output}");
    assert!(
        output.contains("whose headers are over the relay's limits was set aside"),
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nesting_1500_arrays_are_set_aside_and_never_abort_the_relay() {
    // 1,500 nested arrays, 7.5 KB: the parser recursed once per level and overflowed the stack
    // of lapin's I/O thread; the relay aborted, and again at every restart (redelivered).
    expect_set_aside_for_its_headers(
        "deep-headers",
        &infor_comm_tests::raw_amqp::nested_arrays(1_500),
        "deeper than 32 levels",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_nested_to_the_limit_are_read_and_the_message_applied() {
    let scenario = Scenario::new(1).await;
    let ids = scenario.request_ids().await;
    let relay = consuming_relay(&scenario, "limit-headers", &[]).await;
    // The table is level 1, its 31 arrays levels 2 to 32: the limit, not over it.
    infor_comm_tests::raw_amqp::publish_with_raw_headers(
        &scenario.amqp_url,
        &scenario.inbound_queue(),
        b"m-0",
        &infor_comm_tests::raw_amqp::nested_arrays(31),
        reply(0, &ids[0]).as_bytes(),
    );
    expect_answered(&scenario, &relay, 1).await;
    assert_eq!(inbox_row(&scenario, "m-0").await.0, "reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_frame_over_the_frame_size_is_set_aside_and_never_holds_the_queue() {
    // 2,000 ordinary headers: a 42 KB content header frame, under RabbitMQ's 128 KiB but over
    // the relay's 16 KiB frames. lapin closed the connection (FRAME-ERROR), the broker
    // delivered the message again, for ever.
    expect_set_aside_for_its_headers(
        "wide-headers",
        &infor_comm_tests::raw_amqp::wide_table(2_000),
        "over the 16384 bytes (frame_max)",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_frame_larger_than_the_receive_buffer_neither_stalls_nor_holds_the_queue() {
    // A broker that takes frames of 1 MiB from publishers (RabbitMQ's default is 128 KiB) can
    // hand the relay a content header frame larger than lapin's whole receive buffer (32 frames
    // of 16 KiB): lapin could never parse it, and the connection stalled.
    let node: &'static infor_comm_tests::RabbitNode = Box::leak(Box::new(
        infor_comm_tests::RabbitNode::start_with_conf("frame_max = 1048576\n")
            .expect("a RabbitMQ node with frames of 1 MiB"),
    ));
    // 24,000 headers: a 720 KB frame.
    expect_set_aside_on(
        Scenario::on_node(2, node).await,
        "huge-headers",
        &infor_comm_tests::raw_amqp::wide_table(24_000),
        "more than the 524288 bytes of the receive buffer",
        false,
    )
    .await;
}
