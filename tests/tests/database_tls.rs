//! The relay's database connection over TLS (`sslmode=require`): encrypted and verified against
//! `--database-ca-file`, and refused when the server's certificate cannot be verified.

use infor_comm_tests::{wait_until, Scenario};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reaches_the_database_over_verified_tls() {
    let scenario = Scenario::new(30).await;
    let url = format!("{}?sslmode=require", scenario.relay_database_url());
    let ca_file = scenario.db.cluster.ca_file.display().to_string();
    let relay = scenario.relay(
        "relay-tls",
        &["--database-url", &url, "--database-ca-file", &ca_file],
    );
    let _sim = scenario.simulator(&[]);
    let progress = scenario.wait_until_done(Duration::from_secs(60)).await;
    assert_eq!(progress.answered, 30, "{progress:?}: {}", relay.output());
    let client = scenario.db.connect().await;
    // Every connection of the relay (the inbound side's, the outbound side's and the one it
    // marks confirms on) is encrypted.
    let row = client
        .query_one(
            "SELECT count(*) FILTER (WHERE s.ssl), count(*) FILTER (WHERE NOT s.ssl)
               FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.datname = current_database() AND a.application_name LIKE 'infor-relay%'",
            &[],
        )
        .await
        .expect("pg_stat_ssl");
    let (encrypted, plain): (i64, i64) = (row.get(0), row.get(1));
    assert!(encrypted >= 2, "{encrypted} encrypted relay connections");
    assert_eq!(plain, 0, "every relay connection uses TLS");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_that_cannot_be_verified_is_refused() {
    let scenario = Scenario::new(5).await;
    let url = format!("{}?sslmode=require", scenario.relay_database_url());
    // Without the test CA, only the system's roots are trusted: they did not sign the server's
    // certificate. (With no system roots at all the relay refuses to start, also a refusal.)
    let mut relay = scenario.relay("relay-tls-unverified", &["--database-url", &url]);
    assert!(
        wait_until(Duration::from_secs(15), || async {
            let output = relay.output();
            output.contains("invalid peer certificate")
                || output.contains("no trusted certificate was found")
        })
        .await,
        "{}",
        relay.output()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(scenario.progress().await.published, 0, "nothing went out");
    if relay.is_running() {
        assert!(relay
            .output()
            .contains("cannot connect to the database; retrying"));
    }
}
