//! The Prometheus side of the alerts: the rules, the promtool unit tests and the
//! postgres_exporter queries that the relay's package ships (`packaging/prometheus/`), checked by
//! Debian 12's promtool, and run by a real Prometheus against a real relay, a real broker and a
//! real postgres_exporter reading `infor_comm.health`.
//!
//! The tools come from Debian's packages, unpacked by scripts/lib.sh's `install_prometheus_tools`
//! into `INFOR_PROMETHEUS_TOOLS` (the README's test command does it); without them every test
//! here fails and says how to get them.

use infor_comm_tests::postgres::free_port;
use infor_comm_tests::prometheus::{
    alert_names, promtool, read_shipped, shipped, tool, with_for, PostgresExporter, Prometheus,
    EXPORTER_JOB, EXPORTER_QUERIES, RELAY_JOB, RULES, RULES_TEST,
};
use infor_comm_tests::{RabbitNode, Scenario};
use std::time::{Duration, Instant};

/// Every alert the shipped rules define, the names the runbook and the unit tests must cover.
const ALERTS: [&str; 12] = [
    "InforRelayAbsent",
    "InforRelayNotReady",
    "InforRelayOutboxBacklogOld",
    "InforRelayPublishFailures",
    "InforRelayInboundSetAside",
    "InforRelayInboundApplyFailing",
    "InforCommHealthUnknown",
    "InforCommDailyJobFailed",
    "InforCommDailyJobMissed",
    "InforCommInboundRejected",
    "InforCommRepliesOverdue",
    "InforCommUnhealthy",
];

#[test]
fn the_shipped_rules_pass_promtool_check_and_their_unit_tests() {
    let rules = shipped(RULES);
    let rules = rules.to_str().expect("a UTF-8 path");
    match promtool(&["check", "rules", rules]) {
        Ok(output) => assert!(output.contains("SUCCESS: 12 rules found"), "{output}"),
        Err(failure) => panic!("{failure}"),
    }
    let tests = shipped(RULES_TEST);
    if let Err(failure) = promtool(&["test", "rules", tests.to_str().expect("a UTF-8 path")]) {
        panic!("{failure}");
    }
}

/// The alerts' form: each has a `for:`, a severity, a summary and a description that names its
/// runbook section, and that section is in docs/operations.md; the unit tests fire each alert
/// and keep each quiet at least once.
#[test]
fn every_alert_has_its_runbook_section_and_unit_tests_that_fire_it_and_keep_it_quiet() {
    let rules = read_shipped(RULES);
    assert_eq!(alert_names(&rules), ALERTS, "the alerts of {RULES}");
    let operations = include_str!("../../docs/operations.md");
    let tests = read_shipped(RULES_TEST);
    let test_lines: Vec<&str> = tests.lines().map(str::trim).collect();
    let blocks: Vec<&str> = rules.split("- alert:").skip(1).collect();
    for (name, block) in ALERTS.iter().zip(blocks) {
        for field in ["for: ", "severity: ", "summary: ", "description: "] {
            assert!(block.contains(field), "{name} has no {field:?}");
        }
        let severity = block
            .lines()
            .find_map(|line| line.trim().strip_prefix("severity: "))
            .unwrap_or_default();
        assert!(
            ["critical", "warning"].contains(&severity),
            "{name}: severity {severity:?}"
        );
        assert!(
            block.contains(&format!("Runbook: docs/operations.md, section {name}.")),
            "{name}'s description does not name its runbook section"
        );
        assert!(
            operations.contains(&format!("\n### {name}\n")),
            "docs/operations.md has no section ### {name}"
        );
        // `alertname: NAME` then `exp_alerts: []` (quiet) or `exp_alerts:` and a list (fires).
        let cases: Vec<&str> = test_lines
            .windows(2)
            .filter(|pair| pair[0] == format!("alertname: {name}"))
            .map(|pair| pair[1])
            .collect();
        assert!(
            cases.contains(&"exp_alerts: []"),
            "{RULES_TEST} never checks that {name} stays quiet"
        );
        assert!(
            cases.contains(&"exp_alerts:"),
            "{RULES_TEST} never fires {name}"
        );
    }
}

/// The relay's package ships the three files and the runbook, and docs/packaging.md says where.
#[test]
fn the_relay_package_ships_the_prometheus_files() {
    let script = include_str!("../../scripts/package");
    let packaging = include_str!("../../docs/packaging.md");
    assert!(script.contains("/usr/share/$RELAY_PACKAGE/prometheus"));
    assert!(packaging.contains("/usr/share/infor-relay/prometheus/"));
    // The runbook the alerts' descriptions name, beside relay.md.
    assert!(script.contains("install -m 0644 docs/operations.md"));
    assert!(packaging.contains("`docs/operations.md`"));
    for file in [RULES, RULES_TEST, EXPORTER_QUERIES] {
        assert!(
            script.contains(&format!("packaging/prometheus/{file}")),
            "scripts/package does not ship {file}"
        );
        assert!(
            packaging.contains(&format!("{file}`")),
            "docs/packaging.md does not name {file}"
        );
    }
}

/// The `for:` every rule gets in the end-to-end test instead of its minutes: the test shows
/// that each alert fires on the real series, not how long an operator waits.
const SHORT_FOR: &str = "3s";
/// How long past [`SHORT_FOR`] an alert may take to fire: a scrape and an evaluation (a second
/// each), the relay noticing the broker is gone (a second or two), on a loaded machine.
const MARGIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_prometheus_fires_the_shipped_alerts_on_a_real_relay_and_database() {
    let began = Instant::now();
    // Missing tools fail the test before anything is started.
    tool("prometheus");
    tool("prometheus-postgres-exporter");
    // The test stops the broker: a node of its own, not the shared one of this test binary.
    let node: &'static RabbitNode = Box::leak(Box::new(
        RabbitNode::start().expect("a RabbitMQ node of this test's own"),
    ));
    let scenario = Scenario::on_node(5, node).await;
    let admin = scenario.db.connect().await;
    // The exporter's login as docs/operations.md says: infor_comm_reader and CONNECT on the
    // database. A second login lacks the grant: infor_comm refuses it (one database per login),
    // and its exporter cannot read health.
    admin
        .batch_execute(
            "DO $$ BEGIN
                 CREATE ROLE alerts_exporter LOGIN IN ROLE infor_comm_reader;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;
             DO $$ BEGIN
                 CREATE ROLE alerts_exporter_ungranted LOGIN IN ROLE infor_comm_reader;
             EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
             END $$;
             DO $$ BEGIN
                 EXECUTE format('GRANT CONNECT ON DATABASE %I TO alerts_exporter', current_database());
             END $$;",
        )
        .await
        .expect("the exporters' logins");

    let metrics_port = free_port();
    let mut relay = scenario.relay_with_metrics("relay", &[], metrics_port);
    scenario
        .expect_published(5, Duration::from_secs(60), &relay)
        .await;
    let dsn = |login: &str| {
        format!(
            "postgresql://{login}@127.0.0.1:{}/{}?sslmode=disable",
            scenario.db.cluster.port, scenario.db.name
        )
    };
    let queries = shipped(EXPORTER_QUERIES);
    let exporter = PostgresExporter::start(&dsn("alerts_exporter"), &queries).await;
    let ungranted = PostgresExporter::start(&dsn("alerts_exporter_ungranted"), &queries).await;

    let (rules, shortened) = with_for(&read_shipped(RULES), SHORT_FOR);
    assert_eq!(shortened, ALERTS.len(), "one for: per alert");
    let relay_target = format!("127.0.0.1:{metrics_port}");
    let prometheus = Prometheus::start(
        &[
            (RELAY_JOB, vec![relay_target.clone()]),
            (EXPORTER_JOB, vec![exporter.target(), ungranted.target()]),
        ],
        &rules,
    )
    .await;
    // What a failing step prints besides what Prometheus saw.
    let (relay_log, exporter_log) = (relay.log.clone(), exporter.process.log.clone());
    let context = || {
        let read = |path: &std::path::Path| std::fs::read_to_string(path).unwrap_or_default();
        format!(
            "relay output ({}):\n{}\nexporter output:\n{}",
            relay_log.display(),
            read(&relay_log),
            read(&exporter_log)
        )
    };
    eprintln!("set up after {:?}", began.elapsed());

    // Everything scraped: the relay ready, health read through the granted login.
    let startup = Duration::from_secs(60);
    prometheus
        .expect_result(
            &format!("up{{job=\"{RELAY_JOB}\"}} == 1"),
            startup,
            &context,
        )
        .await;
    prometheus
        .expect_result("infor_relay_ready == 1", startup, &context)
        .await;
    prometheus
        .expect_result(
            &format!("infor_comm_health_ok{{instance=\"{}\"}}", exporter.target()),
            startup,
            &context,
        )
        .await;
    // Nothing ran the daily job in this database (the scenario enqueued directly): health says
    // no run succeeded in 25 hours, and the exporter's reading of its problems says so too.
    let good_exporter = exporter.target();
    let (missed, _) = prometheus
        .expect_firing(
            "InforCommDailyJobMissed",
            &[
                ("instance", good_exporter.as_str()),
                ("severity", "critical"),
            ],
            startup,
            &context,
        )
        .await;
    assert_eq!(
        missed.annotations.get("summary").and_then(|v| v.as_str()),
        Some("the infor_comm daily job did not run when due")
    );
    // The login without CONNECT on the database reads nothing: that exporter's health is unknown.
    let ungranted_target = ungranted.target();
    prometheus
        .expect_firing(
            "InforCommHealthUnknown",
            &[("instance", ungranted_target.as_str())],
            startup,
            &context,
        )
        .await;
    // Past SHORT_FOR and a few evaluations, nothing else of the relay or the job is active.
    tokio::time::sleep(Duration::from_secs(3)).await;
    prometheus
        .expect_inactive(
            &[
                "InforRelayAbsent",
                "InforRelayNotReady",
                "InforRelayOutboxBacklogOld",
                "InforRelayPublishFailures",
                "InforRelayInboundSetAside",
                "InforRelayInboundApplyFailing",
                "InforCommDailyJobFailed",
                "InforCommInboundRejected",
                "InforCommRepliesOverdue",
            ],
            &context,
        )
        .await;
    let unknown_for_the_granted = prometheus
        .alerts()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|a| {
            a.name == "InforCommHealthUnknown" && a.has_labels(&[("instance", &good_exporter)])
        })
        .count();
    assert_eq!(
        unknown_for_the_granted,
        0,
        "the granted exporter reads health:\n{}",
        prometheus.report().await
    );
    eprintln!("baseline checked after {:?}", began.elapsed());

    // The labels of the relay's critical alerts.
    let relay_critical = [
        ("instance", relay_target.as_str()),
        ("job", RELAY_JOB),
        ("severity", "critical"),
    ];

    // The broker stops: the relay is not ready.
    tokio::task::block_in_place(|| node.stop_app());
    let (not_ready, took) = prometheus
        .expect_firing("InforRelayNotReady", &relay_critical, MARGIN, &context)
        .await;
    eprintln!("InforRelayNotReady fired {took:?} after the broker stopped");
    assert!(
        not_ready
            .annotations
            .get("description")
            .and_then(|v| v.as_str())
            .is_some_and(|d| d.contains(&relay_target)),
        "{not_ready:?}"
    );
    prometheus
        .expect_inactive(&["InforRelayAbsent"], &context)
        .await;
    tokio::task::block_in_place(|| node.start_app());
    prometheus
        .expect_result("infor_relay_ready == 1", startup, &context)
        .await;
    eprintln!("ready again after {:?}", began.elapsed());

    // The relay stops: it is absent.
    relay.terminate(Duration::from_secs(30));
    let (_, took) = prometheus
        .expect_firing("InforRelayAbsent", &relay_critical, MARGIN, &context)
        .await;
    eprintln!("InforRelayAbsent fired {took:?} after the relay stopped");

    // A daily run fails (its host schema does not exist), as pg_cron would run it.
    prometheus
        .expect_inactive(&["InforCommDailyJobFailed"], &context)
        .await;
    admin
        .batch_execute("SET infor_comm.host_schema = 'nowhere'")
        .await
        .expect("set");
    let error = admin
        .batch_execute("CALL infor_comm.run_daily()")
        .await
        .expect_err("a run without its host tables fails");
    let status: String = admin
        .query_one(
            "SELECT status FROM infor_comm.daily_runs ORDER BY run_id DESC LIMIT 1",
            &[],
        )
        .await
        .expect("the run's row")
        .get(0);
    assert_eq!(status, "failed", "{error}");
    let (_, took) = prometheus
        .expect_firing(
            "InforCommDailyJobFailed",
            &[
                ("instance", good_exporter.as_str()),
                ("severity", "critical"),
            ],
            MARGIN,
            &context,
        )
        .await;
    eprintln!("InforCommDailyJobFailed fired {took:?} after the run failed");
    eprintln!("the whole test took {:?}", began.elapsed());
}
