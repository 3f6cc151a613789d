//! The relay under broken conditions, with the real binaries, PostgreSQL and RabbitMQ: a
//! deleted outbound queue, client data kept out of a debug log, and a database connection cut
//! without a word.

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
