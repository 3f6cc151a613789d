//! The relay under broken conditions, with the real binaries, PostgreSQL and RabbitMQ: a
//! deleted outbound queue, client data kept out of a debug log, a database or broker connection
//! cut without a word, a broker that blocks publishing, and a shutdown during a cut.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::scenario::http_get;
use infor_comm_tests::{expect_logged, wait_until, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_outbound_queue_makes_the_relay_unready_logs_once_a_batch_and_is_declared_again()
{
    let scenario = Scenario::new(10).await;
    let mut first = scenario.relay("declares", &[]);
    scenario
        .expect_published(10, Duration::from_secs(30), &first)
        .await;
    first.terminate(Duration::from_secs(10));

    // The outbound queue is deleted; a relay that does not declare queues meets it missing.
    scenario
        .rabbit
        .delete_queue(&scenario.amqp_url, &scenario.outbound_queue());
    scenario.enqueue_more("second", 30).await;
    let metrics_port = free_port();
    let mut relay = scenario.relay_with_metrics(
        "no-declare",
        &["--no-declare", "--batch-size", "50"],
        metrics_port,
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(metrics_port, "/ready")
                .await
                .is_some_and(|(status, _)| status == 503)
        })
        .await,
        "/ready is false while every publish comes back unroutable: {}",
        relay.output()
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let output = relay.output();
    let batches = output.matches("outbound: requests not published").count();
    assert!(
        (1..=3).contains(&batches),
        "one line per batch of 30 rows, not one per row: {batches} lines\n{output}"
    );
    assert!(output.contains("unroutable=30"), "{output}");
    let (_, metrics) = http_get(metrics_port, "/metrics").await.expect("metrics");
    assert!(
        metrics.contains("infor_relay_outbound_unroutable 1"),
        "{metrics}"
    );
    relay.terminate(Duration::from_secs(10));

    // A relay with --declare-queues declares the queue when it connects: everything is published.
    let metrics_port = free_port();
    let relay = scenario.relay_with_metrics("declares-again", &[], metrics_port);
    scenario
        .expect_published(40, Duration::from_secs(60), &relay)
        .await;
    // Deleted while it runs: the returns make it declare the queue again, and the retries land.
    scenario
        .rabbit
        .delete_queue(&scenario.amqp_url, &scenario.outbound_queue());
    scenario.enqueue_more("third", 5).await;
    scenario
        .expect_published(45, Duration::from_secs(60), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            http_get(metrics_port, "/ready")
                .await
                .is_some_and(|(status, _)| status == 200)
        })
        .await,
        "ready again: {}",
        relay.output()
    );
    assert_eq!(
        scenario
            .rabbit
            .queue_depth(&scenario.amqp_url, &scenario.outbound_queue()),
        5
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_log_holds_no_message_body_unless_asked_for() {
    let scenario = Scenario::new(1).await;
    let marker = "TAX-ID-7700000000-SECRET";
    let body = format!(
        r#"{{"requestID": "CRM-1", "replyUID": "nobody", "statusCode": "1", "statusMsg": "{marker}"}}"#
    );
    let mut quiet = scenario.relay_with_env("quiet", &[], &[("RUST_LOG", "trace")]);
    // Publish once the relay consumes (it declares the queue).
    expect_logged(&quiet, "consuming", Duration::from_secs(20)).await;
    scenario.publish_inbound(&[body.as_bytes()], "m-1").await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            scenario.inbox_count("rejected").await == 1
        })
        .await,
        "{}",
        quiet.output()
    );
    quiet.terminate(Duration::from_secs(10));
    let output = quiet.output();
    // tokio-postgres logs every statement with its parameters (the body, byte for byte) and
    // lapin every frame, at debug and trace level: none of those lines.
    let library_debug_lines: Vec<&str> = output
        .lines()
        .filter(|line| line.contains(" DEBUG ") || line.contains(" TRACE "))
        .filter(|line| {
            [
                "tokio_postgres",
                "postgres_protocol",
                "lapin",
                "amq_protocol",
            ]
            .iter()
            .any(|library| line.contains(library))
        })
        .collect();
    assert!(library_debug_lines.is_empty(), "{library_debug_lines:#?}");
    assert!(
        !output.contains(marker),
        "the body leaked into the log:\n{output}"
    );

    let mut verbose =
        scenario.relay_with_env("verbose", &["--log-client-data"], &[("RUST_LOG", "debug")]);
    scenario.publish_inbound(&[body.as_bytes()], "m-2").await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            scenario.inbox_count("rejected").await == 2
        })
        .await,
        "{}",
        verbose.output()
    );
    verbose.terminate(Duration::from_secs(10));
    assert!(
        verbose.output().contains("executing statement"),
        "--log-client-data lets tokio-postgres log its statements: {}",
        verbose.output()
    );
}

/// /ready's status code, 0 when it does not answer.
async fn ready(metrics_port: u16) -> u16 {
    http_get(metrics_port, "/ready")
        .await
        .map_or(0, |(status, _)| status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_cut_to_the_database_is_noticed_within_the_database_timeout() {
    let scenario = Scenario::new(5).await;
    let db_port = scenario.db.cluster.port;
    let proxy = infor_comm_tests::proxy::Proxy::start(&format!("127.0.0.1:{db_port}")).await;
    let url = scenario
        .relay_database_url()
        .replace(&format!(":{db_port}/"), &format!(":{}/", proxy.port));
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    // The setting by its environment variable: a relay without it runs on and never notices.
    let relay = scenario.relay_with_env(
        "silent-cut",
        &["--metrics-addr", &metrics_addr],
        &[
            ("DATABASE_URL", url.as_str()),
            ("INFOR_DATABASE_TIMEOUT", "6s"),
        ],
    );
    scenario
        .expect_published(5, Duration::from_secs(30), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            ready(metrics_port).await == 200
        })
        .await,
        "ready before the cut: {}",
        relay.output()
    );

    // Packets held, no reset: only the relay's own timeouts can tell.
    proxy.pause();
    let cut = std::time::Instant::now();
    assert!(
        wait_until(Duration::from_secs(30), || async {
            ready(metrics_port).await == 503
        })
        .await,
        "/ready false within the timeout of 6 s and a poll interval: {}",
        relay.output()
    );
    let noticed = cut.elapsed();
    eprintln!("the cut was noticed after {noticed:?}");
    assert!(
        noticed < Duration::from_secs(15),
        "noticed after {noticed:?}"
    );
    expect_logged(
        &relay,
        "no answer from the database within 6s",
        Duration::from_secs(10),
    )
    .await;
    // Both connections of a side are down while it reconnects, the broker's too.
    let broker_down = || async {
        let metrics = http_get(metrics_port, "/metrics")
            .await
            .map(|(_, body)| body)
            .unwrap_or_default();
        metrics.contains(r#"infor_relay_connection_up{connection="broker",direction="outbound"} 0"#)
            || metrics
                .contains(r#"infor_relay_connection_up{connection="broker",direction="inbound"} 0"#)
    };
    assert!(
        wait_until(Duration::from_secs(5), broker_down).await,
        "a broker connection marked down while its side reconnects: {}",
        relay.output()
    );

    // Back: the relay reconnects by itself and publishes what came meanwhile.
    proxy.resume();
    scenario.enqueue_more("after", 5).await;
    scenario
        .expect_published(10, Duration::from_secs(60), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            ready(metrics_port).await == 200
        })
        .await,
        "ready again: {}",
        relay.output()
    );
}

/// A relay whose broker connection goes through a proxy that can hold its traffic; its
/// metrics port; `extra` flags.
fn relay_behind_a_broker_proxy(
    scenario: &Scenario,
    proxy: &infor_comm_tests::proxy::Proxy,
    name: &str,
    extra: &[&str],
) -> (infor_comm_tests::Process, u16) {
    let broker_port = scenario.rabbit.port;
    let url = scenario
        .amqp_url
        .replace(&format!(":{broker_port}/"), &format!(":{}/", proxy.port));
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let mut args = vec!["--metrics-addr", metrics_addr.as_str()];
    args.extend_from_slice(extra);
    let relay = scenario.relay_with_env(name, &args, &[("AMQP_URL", url.as_str())]);
    (relay, metrics_port)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_timeout_reconnects_instead_of_publishing_into_a_dead_connection() {
    let scenario = Scenario::new(20).await;
    let proxy =
        infor_comm_tests::proxy::Proxy::start(&format!("127.0.0.1:{}", scenario.rabbit.port)).await;
    let (relay, metrics_port) = relay_behind_a_broker_proxy(
        &scenario,
        &proxy,
        "confirm-timeout",
        &["--confirm-timeout", "3s", "--batch-size", "10"],
    );
    scenario
        .expect_published(20, Duration::from_secs(30), &relay)
        .await;

    // The broker stops answering (its traffic held): the batch published now gets no confirm.
    proxy.pause();
    let cut = std::time::Instant::now();
    scenario.enqueue_more("cut", 200).await;
    expect_logged(
        &relay,
        "the broker did not confirm a batch within --confirm-timeout; reconnecting",
        Duration::from_secs(20),
    )
    .await;
    let noticed = cut.elapsed();
    eprintln!("the confirm timeout ended the session after {noticed:?}");
    assert!(noticed < Duration::from_secs(10), "after {noticed:?}");
    assert!(
        wait_until(Duration::from_secs(5), || async {
            ready(metrics_port).await == 503
        })
        .await,
        "/ready false while the broker is away: {}",
        relay.output()
    );
    // Nothing more was claimed into the dead connection: no row was marked failed (the
    // unconfirmed ones were released, unmarked).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let failed: i64 = scenario
        .db
        .connect()
        .await
        .query_one(
            "SELECT count(*) FROM infor_comm.outbox WHERE last_error IS NOT NULL",
            &[],
        )
        .await
        .expect("failed rows")
        .get(0);
    assert_eq!(failed, 0, "{}", relay.output());

    proxy.resume();
    scenario
        .expect_published(220, Duration::from_secs(90), &relay)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_is_logged_once_makes_the_relay_unready_and_stops_the_claims() {
    // A node of the test's own: an alarm blocks every publishing connection of its node.
    let node: &'static infor_comm_tests::RabbitNode = Box::leak(Box::new(
        infor_comm_tests::RabbitNode::start().expect("a RabbitMQ node"),
    ));
    let scenario = Scenario::on_node(10, node).await;
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let relay = scenario.relay_with_env(
        "blocked",
        &[
            "--confirm-timeout",
            "3s",
            "--lease",
            "30s",
            "--batch-size",
            "10",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[],
    );
    scenario
        .expect_published(10, Duration::from_secs(30), &relay)
        .await;

    node.set_memory_alarm(true);
    let alarm = std::time::Instant::now();
    scenario.enqueue_more("blocked", 100).await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(metrics_port, "/ready")
                .await
                .is_some_and(|(status, body)| status == 503 && body.contains("connection.blocked"))
        })
        .await,
        "/ready says the broker blocks publishing: {}",
        relay.output()
    );
    eprintln!("/ready false with the reason after {:?}", alarm.elapsed());
    assert!(alarm.elapsed() < Duration::from_secs(10));
    // The batch published into the block ends within --confirm-timeout (3 s) as a whole; no
    // more is claimed while the block lasts.
    tokio::time::sleep(Duration::from_secs(8)).await;
    let output = relay.output();
    let blocked_lines = output.matches("the broker blocks this connection").count();
    assert_eq!(blocked_lines, 1, "logged once: {output}");
    assert!(!output.contains("reconnecting"), "no reconnect: {output}");
    // The batches published before the broker's notice came are marked failed (retried after
    // the back-off); after it, nothing more is claimed.
    let marked = || async {
        scenario
            .db
            .connect()
            .await
            .query_one(
                "SELECT count(*) FROM infor_comm.outbox WHERE last_error IS NOT NULL",
                &[],
            )
            .await
            .expect("failed rows")
            .get::<_, i64>(0)
    };
    let before = marked().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = marked().await;
    eprintln!("rows marked failed during the block: {before}, 5 s later {after}");
    assert!(before < 100 && after == before, "{before} then {after}");

    node.set_memory_alarm(false);
    scenario
        .expect_published(110, Duration::from_secs(120), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(10), || async {
            ready(metrics_port).await == 200
        })
        .await,
        "ready again: {}",
        relay.output()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_silent_broker_cut_stops_within_the_shutdown_timeout() {
    let scenario = Scenario::new(10).await;
    let proxy =
        infor_comm_tests::proxy::Proxy::start(&format!("127.0.0.1:{}", scenario.rabbit.port)).await;
    // The setting by its environment variable, so that the previous binary runs this test too.
    let broker_port = scenario.rabbit.port;
    let url = scenario
        .amqp_url
        .replace(&format!(":{broker_port}/"), &format!(":{}/", proxy.port));
    let mut relay = scenario.relay_with_env(
        "sigterm-cut",
        &[],
        &[("AMQP_URL", url.as_str()), ("INFOR_SHUTDOWN_TIMEOUT", "5s")],
    );
    scenario
        .expect_published(10, Duration::from_secs(30), &relay)
        .await;
    proxy.pause();
    scenario.enqueue_more("cut", 50).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let asked = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| relay.terminate(Duration::from_secs(30)));
    let took = asked.elapsed();
    eprintln!("SIGTERM during the cut: stopped after {took:?} with {status:?}");
    assert!(
        status.is_some(),
        "still running 30 s after SIGTERM: {}",
        relay.output()
    );
    assert!(took < Duration::from_secs(10), "stopped after {took:?}");
    // What was not confirmed is published by the next relay.
    proxy.resume();
    let next = scenario.relay("next", &[]);
    scenario
        .expect_published(60, Duration::from_secs(60), &next)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_at_start_health_answers_at_once_and_sigterm_stops_the_declare() {
    let scenario = Scenario::new(1).await;
    let metrics_port = free_port();
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let nobody = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    let mut relay = scenario.relay_with_env(
        "broker-down",
        &["--metrics-addr", &metrics_addr],
        &[("AMQP_URL", nobody.as_str())],
    );
    assert!(
        wait_until(Duration::from_secs(3), || async {
            http_get(metrics_port, "/health")
                .await
                .is_some_and(|(status, _)| status == 200)
        })
        .await,
        "/health answers while the queues cannot be declared: {}",
        relay.output()
    );
    assert_eq!(ready(metrics_port).await, 503);
    let asked = std::time::Instant::now();
    let status = tokio::task::block_in_place(|| relay.terminate(Duration::from_secs(10)));
    assert!(
        status.is_some_and(|status| status.success()),
        "{}",
        relay.output()
    );
    assert!(asked.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqps_against_a_plain_port_is_named_as_such() {
    let scenario = Scenario::new(1).await;
    let tls_url = scenario.amqp_url.replacen("amqp://", "amqps://", 1);
    let relay = scenario.relay_with_env(
        "amqps-plain",
        &["--no-declare"],
        &[("AMQP_URL", tls_url.as_str())],
    );
    expect_logged(
        &relay,
        "does not speak TLS (amqps:// against a plain AMQP port?)",
        Duration::from_secs(30),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_the_extension_refuses_holds_every_message_says_why_and_loses_nothing() {
    // The relay's login is a member of infor_comm_relay but was not granted CONNECT on this
    // database (a login for another database): the extension refuses each of its calls.
    let scenario = Scenario::new(5).await;
    let admin = scenario.db.connect().await;
    let database: String = admin
        .query_one("SELECT current_database()::text", &[])
        .await
        .expect("database")
        .get(0);
    admin
        .batch_execute(&format!(
            "REVOKE CONNECT ON DATABASE \"{database}\" FROM relay_login"
        ))
        .await
        .expect("revoke");
    let ids = scenario.request_ids().await;
    let replies = ids
        .iter()
        .enumerate()
        .map(|(n, id)| infor_comm_tests::scenario::created_reply(n, id))
        .collect::<Vec<_>>();
    let bodies = replies.iter().map(String::as_bytes).collect::<Vec<_>>();
    let metrics_port = free_port();
    let mut relay = scenario.relay_with_metrics("refused", &[], metrics_port);
    // Published once the relay consumes (it declares the queue).
    expect_logged(&relay, "consuming", Duration::from_secs(20)).await;
    scenario.publish_inbound(&bodies, "refused").await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            http_get(metrics_port, "/ready")
                .await
                .is_some_and(|(status, body)| {
                    status == 503
                        && body.contains("the database refuses the relay")
                        && body.contains("may not use infor_comm in database")
                })
        })
        .await,
        "/ready says why the relay waits: {}",
        relay.output()
    );
    // Held, not set aside: nothing journaled, nothing published, the replies still queued.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let journaled: i64 = admin
        .query_one("SELECT count(*) FROM infor_comm.inbox", &[])
        .await
        .expect("inbox")
        .get(0);
    assert_eq!(journaled, 0, "{}", relay.output());
    assert_eq!(scenario.inbound_depth(), 5, "{}", relay.output());
    // Granted: every reply is applied, every request published.
    admin
        .batch_execute(&format!(
            "GRANT CONNECT ON DATABASE \"{database}\" TO relay_login"
        ))
        .await
        .expect("grant");
    scenario
        .expect_published(5, Duration::from_secs(60), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(60), || async {
            scenario.inbox_count("reply").await == 5
        })
        .await,
        "every reply applied once the login may use infor_comm: {}",
        relay.output()
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(metrics_port, "/ready").await.map(|r| r.0) == Some(200)
        })
        .await,
        "/ready again: {}",
        relay.output()
    );
    relay.terminate(Duration::from_secs(10));
}

/// Publishes, on one channel in confirm mode and all in flight at once, `count` mandatory
/// messages whose ids are their numbers: those that `missing(i)` picks go to a queue that does
/// not exist (the broker returns them), the others to one that does. Returns, for each message
/// in order, the id of the returned message its confirm carries, if any.
async fn returns_by_confirm(
    amqp_url: &str,
    count: usize,
    missing: impl Fn(usize) -> bool,
) -> Vec<Option<String>> {
    use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
    let connection = lapin::Connection::connect(amqp_url, lapin::ConnectionProperties::default())
        .await
        .expect("connect to the broker");
    let channel = connection.create_channel().await.expect("channel");
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm mode");
    channel
        .queue_declare(
            "present".into(),
            QueueDeclareOptions::durable(),
            lapin::types::FieldTable::default(),
        )
        .await
        .expect("declare");
    let mut confirms = Vec::with_capacity(count);
    for i in 0..count {
        let queue = if missing(i) { "missing" } else { "present" };
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                format!("{{\"n\": {i}}}").as_bytes(),
                lapin::BasicProperties::default()
                    .with_delivery_mode(2)
                    .with_message_id(i.to_string().into()),
            )
            .await
            .expect("publish");
        confirms.push(confirm);
    }
    let mut returned = Vec::with_capacity(count);
    for confirm in confirms {
        let confirmation = confirm.await.expect("confirm");
        assert!(confirmation.is_ack(), "acked: {confirmation:?}");
        returned.push(confirmation.take_message().map(|message| {
            match message.properties.message_id() {
                Some(id) => id.to_string(),
                None => "a return without an id".to_string(),
            }
        }));
    }
    let _ = connection.close(200, "done".into()).await;
    returned
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_returned_message_is_told_to_its_own_confirm_whatever_the_acks_cover() {
    // The relay counts a request as published when its confirm is an ack that carries no
    // returned message. The broker acks several messages at once (`multiple`), and sends the
    // return of an unroutable one before the ack that covers it: were the return told to
    // another message of that ack, the unroutable request would be marked published and lost.
    let rabbit = infor_comm_tests::RabbitNode::shared();
    let amqp_url = rabbit.new_vhost();
    for (name, missing) in [
        (
            "every seventh",
            Box::new(|i: usize| i % 7 == 3) as Box<dyn Fn(usize) -> bool>,
        ),
        ("one in the middle", Box::new(|i: usize| i == 1_234)),
        ("a run", Box::new(|i: usize| (1_000..1_040).contains(&i))),
    ] {
        let count = 3_000;
        let returned = returns_by_confirm(&amqp_url, count, &missing).await;
        let wrong: Vec<String> = returned
            .iter()
            .enumerate()
            .filter(|(i, id)| id.as_deref() != missing(*i).then(|| i.to_string()).as_deref())
            .map(|(i, id)| format!("message {i}: its confirm carries {id:?}"))
            .take(10)
            .collect();
        assert!(wrong.is_empty(), "{name}: {wrong:#?}");
    }
}
