//! The whole loop in one test: a database with enqueued requests, a virtual host, and the real
//! relay and simulator as processes.

use crate::postgres::{free_port, insert_thinking_clients, TestDb};
use crate::processes::Process;
use crate::rabbitmq::RabbitNode;
use std::time::Duration;

/// InforCRM's reply '0' (task created) to request `request_id`, with CRM ids numbered `n`.
pub fn created_reply(n: usize, request_id: &str) -> String {
    format!(
        r#"{{"requestID": "crm-{n}", "replyUID": "{request_id}", "dt": "2026-11-20T12:00:00.000+03:00", "statusCode": "0", "taskID": "task-{n}"}}"#
    )
}

/// When the requests were enqueued.
pub const AS_OF: &str = "2026-11-20 12:00:00+03";

/// One database, one virtual host, one zone.
#[derive(Debug)]
pub struct Scenario {
    /// The database.
    pub db: TestDb,
    /// The AMQP URL of the virtual host.
    pub amqp_url: String,
    /// The zone that names the queues.
    pub zone: String,
    /// The broker node.
    pub rabbit: &'static RabbitNode,
}

/// Where the loop stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Progress {
    /// Requests enqueued.
    pub requests: i64,
    /// Requests the relay saw confirmed.
    pub published: i64,
    /// Task rows with a reply.
    pub answered: i64,
    /// Task rows with statusCode 0.
    pub created: i64,
    /// Task rows with a push applied.
    pub pushed: i64,
}

impl Scenario {
    /// A database with `clients` enqueued requests, and an empty virtual host.
    pub async fn new(clients: i32) -> Scenario {
        Scenario::on_node(clients, RabbitNode::shared()).await
    }

    /// [`Scenario::new`] on a broker node of the test's own (one configured differently).
    pub async fn on_node(clients: i32, rabbit: &'static RabbitNode) -> Scenario {
        let db = TestDb::new().await;
        let client = db.connect().await;
        insert_thinking_clients(&client, clients, AS_OF).await;
        client
            .batch_execute(
                "DO $$ BEGIN
                     CREATE ROLE relay_login LOGIN IN ROLE infor_comm_relay;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$;
                 DO $$ BEGIN
                     EXECUTE format('GRANT CONNECT ON DATABASE %I TO relay_login', current_database());
                 END $$;",
            )
            .await
            .expect("relay role");
        let amqp_url = rabbit.new_vhost();
        let zone = format!("T{}", free_port());
        let scenario = Scenario {
            db,
            amqp_url,
            zone,
            rabbit,
        };
        assert_eq!(scenario.enqueue().await, clients);
        scenario
    }

    /// Runs the daily job at [`AS_OF`]; returns how many requests it enqueued.
    pub async fn enqueue(&self) -> i32 {
        self.db
            .connect()
            .await
            .query_one(
                "SELECT infor_comm.enqueue_thinking_clients($1::text::timestamptz)",
                &[&AS_OF],
            )
            .await
            .expect("enqueue")
            .get(0)
    }

    /// Enqueues `count` more requests for new clients (named `tag-1`…), as the next daily job would.
    pub async fn enqueue_more(&self, tag: &str, count: i32) {
        let client = self.db.connect().await;
        client
            .batch_execute(&format!(
                "INSERT INTO product_migration_clients
                 SELECT '{tag}-' || n, '{tag}-M' || n, 'in_wizard', 'OK' FROM generate_series(1, {count}) n;
                 INSERT INTO wizard_status_change_log
                 SELECT organization_id, 'OK', ('{AS_OF}'::timestamptz - interval '10 days') AT TIME ZONE 'Europe/Moscow'
                   FROM product_migration_clients WHERE organization_id LIKE '{tag}-%';
                 INSERT INTO clientsnapshot
                 SELECT organization_id, '1200009193', '1231200000844', '120001001', NULL
                   FROM product_migration_clients WHERE organization_id LIKE '{tag}-%';"
            ))
            .await
            .expect("new clients");
        assert_eq!(self.enqueue().await, count);
    }

    /// The request ids of the enqueued requests, in order.
    pub async fn request_ids(&self) -> Vec<String> {
        self.db
            .connect()
            .await
            .query(
                "SELECT request_id::text FROM infor_comm.outbox ORDER BY outbox_id",
                &[],
            )
            .await
            .expect("request ids")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// Messages in the inbound queue (ready or unacked).
    pub fn inbound_depth(&self) -> u64 {
        self.rabbit
            .queue_depth(&self.amqp_url, &self.inbound_queue())
    }

    /// The relay's database URL: a login role that is only a member of infor_comm_relay.
    pub fn relay_database_url(&self) -> String {
        format!(
            "postgresql://relay_login@127.0.0.1:{}/{}",
            self.db.cluster.port, self.db.name
        )
    }

    /// Puts raw messages on the inbound queue, as InforCRM would (with publisher confirms), each
    /// with `message_id`.
    pub async fn publish_inbound(&self, bodies: &[&[u8]], message_id: &str) {
        let connection =
            lapin::Connection::connect(&self.amqp_url, lapin::ConnectionProperties::default())
                .await
                .expect("connect to the broker");
        let channel = connection.create_channel().await.expect("channel");
        channel
            .confirm_select(lapin::options::ConfirmSelectOptions::default())
            .await
            .expect("confirm mode");
        for body in bodies {
            channel
                .basic_publish(
                    "".into(),
                    self.inbound_queue().as_str().into(),
                    lapin::options::BasicPublishOptions::default(),
                    body,
                    lapin::BasicProperties::default().with_message_id(message_id.into()),
                )
                .await
                .expect("publish")
                .await
                .expect("confirm");
        }
        let _ = connection.close(200, "done".into()).await;
    }

    /// The inbound queue's name.
    pub fn inbound_queue(&self) -> String {
        format!(
            "{}.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq",
            self.zone
        )
    }

    /// The outbound queue's name.
    pub fn outbound_queue(&self) -> String {
        format!(
            "{}.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq",
            self.zone
        )
    }

    /// Starts a relay; `extra` flags override the test defaults (`--no-declare`: without
    /// `--declare-queues`).
    pub fn relay(&self, name: &str, extra: &[&str]) -> Process {
        self.relay_with_metrics(name, extra, free_port())
    }

    /// Starts a relay with more environment variables (`RUST_LOG`, say).
    pub fn relay_with_env(&self, name: &str, extra: &[&str], env: &[(&str, &str)]) -> Process {
        self.relay_with_metrics_env(name, extra, free_port(), env)
    }

    /// Starts a relay whose /metrics, /health and /ready listen on `metrics_port`.
    pub fn relay_with_metrics(&self, name: &str, extra: &[&str], metrics_port: u16) -> Process {
        self.relay_with_metrics_env(name, extra, metrics_port, &[])
    }

    /// Starts a relay whose metrics listen on `metrics_port`, with more environment variables
    /// (which win over the scenario's: `DATABASE_URL`, say).
    pub fn relay_with_metrics_env(
        &self,
        name: &str,
        extra: &[&str],
        metrics_port: u16,
        env: &[(&str, &str)],
    ) -> Process {
        let metrics_addr = format!("127.0.0.1:{metrics_port}");
        let defaults = [
            ("--poll-interval", "500ms"),
            ("--lease", "3s"),
            ("--batch-size", "50"),
            ("--max-backoff", "1s"),
            ("--metrics-addr", metrics_addr.as_str()),
        ];
        // "--no-declare" (a test flag, not the relay's) leaves the queues as they are.
        let mut args = if extra.contains(&"--no-declare") {
            Vec::new()
        } else {
            vec!["--declare-queues".to_string()]
        };
        let extra: Vec<&str> = extra
            .iter()
            .copied()
            .filter(|flag| *flag != "--no-declare")
            .collect();
        for (flag, value) in defaults {
            if !extra.contains(&flag) {
                args.extend([flag.to_string(), value.to_string()]);
            }
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Process::start(
            name,
            "infor-relay",
            &args,
            &[
                ("DATABASE_URL", self.relay_database_url()),
                ("AMQP_URL", self.amqp_url.clone()),
                ("INFOR_ZONE", self.zone.clone()),
            ]
            .into_iter()
            .chain(env.iter().map(|(key, value)| (*key, value.to_string())))
            .collect::<Vec<_>>(),
        )
    }

    /// Starts the CRM simulator; `extra` flags are appended.
    pub fn simulator(&self, extra: &[&str]) -> Process {
        let mut args: Vec<String> = ["--declare-queues", "--push-delay", "200ms"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        Process::start(
            "crm-sim",
            "infor-crm-sim",
            &args,
            &[
                ("DATABASE_URL", self.db.url()),
                ("AMQP_URL", self.amqp_url.clone()),
                ("INFOR_ZONE", self.zone.clone()),
            ],
        )
    }

    /// Where the loop stands now.
    pub async fn progress(&self) -> Progress {
        let client = self.db.connect().await;
        let row = client
            .query_one(
                "SELECT (SELECT count(*) FROM infor_comm.outbox),
                        (SELECT count(*) FROM infor_comm.outbox WHERE published_at IS NOT NULL),
                        count(*) FILTER (WHERE status_code IS NOT NULL),
                        count(*) FILTER (WHERE status_code = '0'),
                        count(*) FILTER (WHERE task_status IS NOT NULL)
                   FROM infor_comm.infor_communication_task",
                &[],
            )
            .await
            .expect("progress");
        Progress {
            requests: row.get(0),
            published: row.get(1),
            answered: row.get(2),
            created: row.get(3),
            pushed: row.get(4),
        }
    }

    /// Waits until every request is published and answered and every created task has its push.
    pub async fn wait_until_done(&self, timeout: Duration) -> Progress {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let progress = self.progress().await;
            let done = progress.requests > 0
                && progress.published == progress.requests
                && progress.answered == progress.requests
                && progress.pushed == progress.created;
            if done || std::time::Instant::now() >= deadline {
                return progress;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Waits until the relay has published at least `count` requests; false on timeout.
    pub async fn wait_until_published(&self, count: i64, timeout: Duration) -> bool {
        crate::wait_until(timeout, || async {
            self.progress().await.published >= count
        })
        .await
    }

    /// Waits until the relay has published at least `count` requests; on timeout, fails the
    /// test with the progress and `relay`'s output.
    pub async fn expect_published(&self, count: i64, timeout: Duration, relay: &Process) {
        if !self.wait_until_published(count, timeout).await {
            panic!(
                "{count} requests not published within {timeout:?}: {:?}\nrelay output: {}",
                self.progress().await,
                relay.output()
            );
        }
    }

    /// Waits until the loop is done, and checks that every request was published and answered
    /// once and every created task got its push; returns the final progress.
    pub async fn assert_finishes(&self, timeout: Duration, relay: &Process) -> Progress {
        let progress = self.wait_until_done(timeout).await;
        let requests = progress.requests;
        assert_eq!(
            progress.published,
            requests,
            "{progress:?}\n{}",
            relay.output()
        );
        assert_eq!(
            progress.answered, requests,
            "every request answered: {progress:?}"
        );
        assert_eq!(
            progress.pushed, progress.created,
            "every created task pushed: {progress:?}"
        );
        assert_eq!(
            self.inbox_count("reply").await,
            requests,
            "one reply applied per request"
        );
        progress
    }

    /// Inbox rows by outcome, as `outcome:count` sorted.
    pub async fn inbox_outcomes(&self) -> Vec<String> {
        let client = self.db.connect().await;
        client
            .query(
                "SELECT outcome || ':' || count(*) FROM infor_comm.inbox GROUP BY outcome ORDER BY outcome",
                &[],
            )
            .await
            .expect("inbox")
            .iter()
            .map(|row| row.get(0))
            .collect()
    }

    /// How many inbox rows have this outcome.
    pub async fn inbox_count(&self, outcome: &str) -> i64 {
        let client = self.db.connect().await;
        client
            .query_one(
                "SELECT count(*) FROM infor_comm.inbox WHERE outcome = $1",
                &[&outcome],
            )
            .await
            .expect("inbox count")
            .get(0)
    }
}

/// A plain HTTP GET on 127.0.0.1; returns the status code and the body.
pub async fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Some((status, body))
}
