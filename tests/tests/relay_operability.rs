//! What an SRE sees of the relay, with the real binaries, PostgreSQL and RabbitMQ: the exit
//! status of a setting that can never work, URLs read from files, metrics that describe the
//! state now (also before the first connection), and a database whose extension is of a
//! version the relay does not know.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::scenario::http_get;
use infor_comm_tests::{wait_until, Process, RabbitNode, Scenario};
use std::time::Duration;

/// The exit status of a setting that can never work (the relay's `EXIT_CONFIG`).
const EXIT_CONFIG: i32 = 78;

/// Starts the relay with exactly `env` (no URL from the scenario) and `args`.
fn relay_with(name: &str, args: &[&str], env: &[(&str, String)]) -> Process {
    let args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    Process::start(name, "infor-relay", &args, env)
}

/// The relay exits by itself within 20 s, with `EXIT_CONFIG`; returns its output.
fn expect_config_exit(mut relay: Process, what: &str) -> String {
    let status = relay.wait(Duration::from_secs(20));
    let output = relay.output();
    assert_eq!(
        status.and_then(|status| status.code()),
        Some(EXIT_CONFIG),
        "{what}: exits {EXIT_CONFIG} by itself\n{output}"
    );
    output
}

/// The value of the sample `series` (name and labels, as exported) in a /metrics text.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

async fn metrics(port: u16) -> String {
    http_get(port, "/metrics")
        .await
        .map(|(_, body)| body)
        .unwrap_or_default()
}

/// The relay's `/ready` answers 200 within 20 s, and its log says it went on by itself.
async fn expect_ready_again(port: u16, relay: &Process) {
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(port, "/ready").await.map(|(status, _)| status) == Some(200)
        })
        .await,
        "{}",
        relay.output()
    );
    assert!(relay.output().contains("going on"), "{}", relay.output());
}

/// `count` (a `SELECT count(*) …`) in database `db` of the server on `port`; -1 when it cannot
/// be read.
async fn count_on(port: u16, db: &str, count: &str) -> i64 {
    infor_comm_tests::postgres::connect(&format!("postgresql://postgres@127.0.0.1:{port}/{db}"))
        .await
        .query_one(count, &[])
        .await
        .map_or(-1, |row| row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settings_that_can_never_work_exit_78_and_say_which_once() {
    let amqp = ("AMQP_URL", "amqp://guest:guest@127.0.0.1:1/v".to_string());
    let zone = ("INFOR_ZONE", "T".to_string());
    let database = (
        "DATABASE_URL",
        "postgresql://relay@127.0.0.1:1/bank".to_string(),
    );

    let output = expect_config_exit(
        relay_with("no-url", &[], &[amqp.clone(), zone.clone()]),
        "no database URL",
    );
    assert!(output.contains("DATABASE_URL"), "{output}");

    let missing = std::env::temp_dir().join(format!("no-such-url-{}", free_port()));
    let output = expect_config_exit(
        relay_with(
            "unreadable-file",
            &[],
            &[
                amqp.clone(),
                zone.clone(),
                ("DATABASE_URL_FILE", missing.display().to_string()),
            ],
        ),
        "an unreadable URL file",
    );
    assert!(
        output.contains(&missing.display().to_string()),
        "names the file: {output}"
    );

    let output = expect_config_exit(
        relay_with(
            "url-twice",
            &[],
            &[
                amqp.clone(),
                zone.clone(),
                database.clone(),
                ("DATABASE_URL_FILE", missing.display().to_string()),
            ],
        ),
        "a URL and its file",
    );
    assert!(output.contains("database-url"), "{output}");

    let output = expect_config_exit(
        relay_with(
            "bad-duration",
            &["--poll-interval", "soon"],
            &[amqp.clone(), zone.clone(), database.clone()],
        ),
        "a malformed flag",
    );
    assert!(output.contains("soon"), "{output}");

    // The metrics address in use: one line says so, and the relay does not wait for anything.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let address = taken.local_addr().expect("address").to_string();
    let output = expect_config_exit(
        relay_with(
            "port-in-use",
            &["--metrics-addr", &address],
            &[amqp, zone, database],
        ),
        "the metrics address in use",
    );
    assert_eq!(
        output
            .matches(&format!("cannot listen on {address}"))
            .count(),
        1,
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_urls_can_come_from_files() {
    let scenario = Scenario::new(5).await;
    let dir = std::env::temp_dir().join(format!("infor-relay-credentials-{}", free_port()));
    std::fs::create_dir_all(&dir).expect("credentials directory");
    let database_file = dir.join("database-url");
    let amqp_file = dir.join("amqp-url");
    // Written as `echo` would: a trailing newline, which the relay ignores.
    std::fs::write(
        &database_file,
        format!("{}\n", scenario.relay_database_url()),
    )
    .expect("write");
    std::fs::write(&amqp_file, format!("{}\n", scenario.amqp_url)).expect("write");
    let metrics_addr = format!("127.0.0.1:{}", free_port());
    let relay = relay_with(
        "from-files",
        &[
            "--declare-queues",
            "--poll-interval",
            "500ms",
            "--metrics-addr",
            &metrics_addr,
        ],
        &[
            ("DATABASE_URL_FILE", database_file.display().to_string()),
            ("AMQP_URL_FILE", amqp_file.display().to_string()),
            ("INFOR_ZONE", scenario.zone.clone()),
        ],
    );
    scenario
        .expect_published(5, Duration::from_secs(60), &relay)
        .await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_down_the_metrics_say_so_and_the_backlog_ages() {
    // A node of the test's own, stopped before the relay starts: the relay never connects to
    // the broker, and must still export its state.
    let rabbit: &'static RabbitNode =
        Box::leak(Box::new(RabbitNode::start().expect("a RabbitMQ node")));
    let scenario = Scenario::on_node(4, rabbit).await;
    tokio::task::block_in_place(|| rabbit.stop_app());
    let port = free_port();
    let relay = scenario.relay_with_metrics("broker-down", &["--no-declare"], port);

    assert!(
        wait_until(Duration::from_secs(20), || async {
            let text = metrics(port).await;
            sample(&text, "infor_relay_outbox_oldest_age_seconds").is_some_and(|age| age > 0.0)
                && sample(&text, "infor_relay_outbox_backlog") == Some(4.0)
        })
        .await,
        "the backlog is read although the broker is down: {}\n{}",
        metrics(port).await,
        relay.output()
    );
    let text = metrics(port).await;
    let first = sample(&text, "infor_relay_outbox_oldest_age_seconds");
    for direction in ["outbound", "inbound"] {
        assert_eq!(
            sample(
                &text,
                &format!(
                    "infor_relay_connection_up{{connection=\"broker\",direction=\"{direction}\"}}"
                )
            ),
            Some(0.0),
            "{text}"
        );
    }
    assert_eq!(sample(&text, "infor_relay_ready"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "infor_relay_published_total"),
        Some(0.0),
        "counters start at 0: {text}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        text.contains(&format!(
            "infor_relay_build_info{{version=\"{version}\",extension_version=\"{version}\"}} 1"
        )),
        "{text}"
    );
    for line in text.lines().filter(|line| line.starts_with("# TYPE ")) {
        let name = line.split_whitespace().nth(2).unwrap_or_default();
        assert!(
            text.contains(&format!("# HELP {name} ")),
            "{name} has no HELP text"
        );
    }
    // The age grows while nothing is published.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let later = sample(
        &metrics(port).await,
        "infor_relay_outbox_oldest_age_seconds",
    );
    assert!(
        later
            .zip(first)
            .is_some_and(|(later, first)| later >= first + 1.0),
        "{first:?} then {later:?}"
    );

    // Back up: everything is published, and the backlog says so.
    tokio::task::block_in_place(|| rabbit.start_app());
    let declarer = scenario.relay("declares", &[]);
    scenario
        .expect_published(4, Duration::from_secs(60), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(20), || async {
            let text = metrics(port).await;
            sample(&text, "infor_relay_outbox_backlog") == Some(0.0)
                && sample(&text, "infor_relay_outbox_oldest_age_seconds") == Some(0.0)
        })
        .await,
        "{}",
        metrics(port).await
    );
    drop(declarer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extension_version_the_relay_does_not_know_holds_everything_until_they_agree() {
    let scenario = Scenario::new(3).await;
    let superuser = scenario.db.connect().await;
    // What a database not yet updated after a package upgrade looks like to the relay.
    superuser
        .batch_execute(
            "UPDATE pg_catalog.pg_extension SET extversion = '0.2.9' WHERE extname = 'infor_comm'",
        )
        .await
        .expect("pretend another version");
    let port = free_port();
    let relay = scenario.relay_with_metrics("unknown-version", &[], port);
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(port, "/ready")
                .await
                .is_some_and(|(status, body)| {
                    status == 503 && body.contains("0.2.9") && body.contains(version)
                })
        })
        .await,
        "/ready names both versions: {:?}\n{}",
        http_get(port, "/ready").await,
        relay.output()
    );
    scenario
        .publish_inbound(&[br#"{"requestID": "unknown"}"#], "m-1")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(scenario.progress().await.published, 0, "{}", relay.output());
    assert_eq!(
        scenario.inbound_depth(),
        1,
        "the message waits in the queue"
    );
    assert_eq!(scenario.inbox_count("rejected").await, 0);
    let output = relay.output();
    assert_eq!(
        output
            .matches("infor_comm's version in the database is 0.2.9")
            .count(),
        1,
        "said once: {output}"
    );
    let text = metrics(port).await;
    assert!(
        text.contains(&format!(
            "infor_relay_build_info{{version=\"{version}\",extension_version=\"0.2.9\"}} 1"
        )),
        "{text}"
    );

    // The versions agree again: the relay goes on by itself.
    superuser
        .batch_execute(&format!(
            "UPDATE pg_catalog.pg_extension SET extversion = '{version}' WHERE extname = 'infor_comm'"
        ))
        .await
        .expect("the real version");
    scenario
        .expect_published(3, Duration::from_secs(60), &relay)
        .await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            scenario.inbox_count("rejected").await == 1
        })
        .await,
        "the message waiting in the queue is applied: {}",
        relay.output()
    );
    expect_ready_again(port, &relay).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quorum_queues_are_declared_and_a_queue_of_another_type_stops_the_relay_once() {
    let scenario = Scenario::new(3).await;
    let quorum = scenario.relay("quorum", &["--queue-type", "quorum"]);
    scenario
        .expect_published(3, Duration::from_secs(60), &quorum)
        .await;
    let rabbit = scenario.rabbit;
    for queue in [scenario.outbound_queue(), scenario.inbound_queue()] {
        assert_eq!(
            rabbit.queue_type(&scenario.amqp_url, &queue).as_deref(),
            Some("quorum"),
            "{queue}"
        );
    }
    drop(quorum);
    // The same queues asked for as classic ones: one error that says which queue, what was
    // asked and what it is, and the relay stops instead of retrying.
    let classic = scenario.relay("classic", &["--queue-type", "classic"]);
    let output = expect_config_exit(classic, "a queue of another type");
    assert!(
        output.contains(&format!(
            "cannot declare the queue \"{}\" as a classic queue",
            scenario.outbound_queue()
        )),
        "{output}"
    );
    assert!(output.contains("x-queue-type"), "{output}");
    assert!(output.contains("quorum"), "{output}");
    assert_eq!(
        output.matches("cannot declare the queue").count(),
        1,
        "{output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_of_broker_nodes_is_tried_in_turn() {
    let scenario = Scenario::new(4).await;
    // The first node of the list does not answer (nothing listens there); the second does.
    let dead = format!("amqp://guest:guest@127.0.0.1:{}/nowhere", free_port());
    let nodes = format!("{dead},{}", scenario.amqp_url);
    let relay = scenario.relay_with_env("two-nodes", &[], &[("AMQP_URL", &nodes)]);
    scenario
        .expect_published(4, Duration::from_secs(60), &relay)
        .await;
    let output = relay.output();
    assert!(
        output.contains("cannot connect to this broker node; trying the next"),
        "{output}"
    );
    assert!(output.contains("connected to this broker node"), "{output}");
    assert!(
        !output.contains("guest:guest"),
        "no password in the log: {output}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_never_works_through_a_standby_and_follows_it_when_it_is_promoted() {
    let scenario = Scenario::new(3).await;
    let primary = scenario.db.cluster;
    let standby = tokio::task::block_in_place(|| primary.standby()).expect("a standby");
    let on = |port: u16| {
        format!(
            "postgresql://relay_login@127.0.0.1:{port}/{}",
            scenario.db.name
        )
    };
    let db = scenario.db.name.as_str();
    const REQUESTS: &str = "SELECT count(*) FROM infor_comm.outbox";
    const PUBLISHED: &str = "SELECT count(*) FROM infor_comm.outbox WHERE published_at IS NOT NULL";
    // Wait until the standby has replayed the requests.
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count_on(standby.port, db, REQUESTS).await == 3
        })
        .await,
        "the standby replays the requests"
    );

    // Given the standby alone, the relay claims nothing, and says why once.
    let port = free_port();
    let relay = scenario.relay_with_metrics_env(
        "standby-only",
        &[],
        port,
        &[("DATABASE_URL", &on(standby.port))],
    );
    assert!(
        wait_until(Duration::from_secs(20), || async {
            http_get(port, "/ready")
                .await
                .is_some_and(|(status, body)| status == 503 && body.contains("standby"))
        })
        .await,
        "{:?}\n{}",
        http_get(port, "/ready").await,
        relay.output()
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        count_on(primary.port, db, PUBLISHED).await,
        0,
        "{}",
        relay.output()
    );
    assert_eq!(
        relay
            .output()
            .matches("the database server is a standby (in recovery)")
            .count(),
        1,
        "said once: {}",
        relay.output()
    );

    // The cluster's nodes, standby first, with target_session_attrs=read-write: the primary.
    let both = format!(
        "postgresql://relay_login@127.0.0.1:{},127.0.0.1:{}/{}?target_session_attrs=read-write",
        standby.port, primary.port, scenario.db.name
    );
    let listed = scenario.relay_with_env("both-nodes", &[], &[("DATABASE_URL", &both)]);
    scenario
        .expect_published(3, Duration::from_secs(60), &listed)
        .await;
    drop(listed);

    // The standby is promoted (the primary's published marks were replayed): the first relay
    // finds a primary and goes on by itself.
    scenario.enqueue_more("after", 2).await;
    assert!(
        wait_until(Duration::from_secs(30), || async {
            count_on(standby.port, db, REQUESTS).await == 5
        })
        .await,
        "the standby replays the new requests"
    );
    tokio::task::block_in_place(|| standby.promote()).expect("promote");
    assert!(
        wait_until(Duration::from_secs(60), || async {
            count_on(standby.port, db, PUBLISHED).await == 5
        })
        .await,
        "{}",
        relay.output()
    );
    expect_ready_again(port, &relay).await;
}
