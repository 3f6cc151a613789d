//! High availability on the real engines: PostgreSQL 15 under Patroni (a primary and its
//! synchronous standby, etcd as the store), a three-node RabbitMQ cluster with quorum queues,
//! two relays given every node of both, and the simulator, all on 127.0.0.1 (docs/high-availability.md).
//!
//! Each round asks [`CLIENTS`] new thinking clients and strikes once the flow runs: a planned
//! failover, a crash of the primary, the stop of the broker node a relay is connected to, or a
//! crash and a broker stop at once. After each: every request published at least once, every
//! reply and push the simulator sent (its `--journal`) applied exactly once, no message left on a
//! queue, `/ready` false while a relay had no primary or no broker and true again after. A last
//! round crashes the primary with an asynchronous standby, to measure what that configuration
//! loses. pg_cron runs the daily job every minute throughout; it must run on the last promoted
//! node. The table of the rounds is printed, and docs/high-availability.md keeps a run of it.
//!
//! Ignored by `cargo test`: it needs Debian's `patroni` and `etcd-server`, which
//! `scripts/test-ha` installs before it runs this test.

use infor_comm_tests::patroni::{PatroniCluster, DATABASE};
use infor_comm_tests::postgres::{free_port, HOST_TABLES_SQL};
use infor_comm_tests::processes::Process;
use infor_comm_tests::rabbit_cluster::RabbitCluster;
use infor_comm_tests::scenario::http_get;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_postgres::Client;

/// Thinking clients asked in each round (`INFOR_HA_CLIENTS` changes it, for a quicker run by hand).
const CLIENTS: i64 = 20_000;

/// The share of a round's requests published before the fault strikes.
const STRIKE_AFTER: f64 = 0.3;

/// What strikes in a round.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// `patronictl failover` to the standby.
    PlannedFailover,
    /// SIGKILL to the primary's postmaster; Patroni promotes the standby.
    PrimaryKilled,
    /// `rabbitmqctl stop_app` on the broker node relay `n` is connected to, then `start_app`.
    BrokerNodeStopped(usize),
    /// Both at once: the primary killed and relay `n`'s broker node stopped.
    Both(usize),
}

impl Fault {
    fn describe(self) -> String {
        match self {
            Fault::PlannedFailover => "planned failover (patronictl failover)".into(),
            Fault::PrimaryKilled => "primary's postmaster killed (SIGKILL)".into(),
            Fault::BrokerNodeStopped(relay) => {
                format!("broker node of relay {} stopped, then started", relay + 1)
            }
            Fault::Both(relay) => format!(
                "primary killed and broker node of relay {} stopped at once",
                relay + 1
            ),
        }
    }

    fn database(self) -> bool {
        !matches!(self, Fault::BrokerNodeStopped(_))
    }

    fn broker_relay(self) -> Option<usize> {
        match self {
            Fault::BrokerNodeStopped(relay) | Fault::Both(relay) => Some(relay),
            _ => None,
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
struct Row {
    fault: String,
    standby: &'static str,
    recovered_in: Option<Duration>,
    requests: usize,
    replies: usize,
    pushes: usize,
    resent: usize,
    lost: usize,
    /// Pushes kept as orphans and never applied: their task's reply was lost.
    orphaned: usize,
    applied_twice: usize,
    /// The relays that answered `/ready` false after the fault, and were ready again at the end.
    not_ready: Vec<usize>,
    /// Problems found in the round (empty when it held).
    problems: Vec<String>,
}

/// A relay under test.
struct Relay {
    process: Process,
    metrics_port: u16,
}

/// Everything the rounds run on.
/// Its fields drop in order: the relays and the simulator stop before the servers.
struct Ha {
    relays: Vec<Relay>,
    simulator: Process,
    pg: PatroniCluster,
    rabbit: RabbitCluster,
    vhost: String,
    zone: String,
    journal: std::path::PathBuf,
    clients: i64,
    /// Push message ids seen in earlier rounds.
    pushes_seen: HashSet<String>,
    /// The highest inbox id of earlier rounds.
    inbox_seen: i64,
}

/// Connects to the test's database on the primary.
async fn primary(pg: &PatroniCluster) -> Client {
    primary_of(pg, DATABASE).await
}

/// Connects to `database` on the primary through the relay's kind of URL (every node,
/// `target_session_attrs=read-write`), retrying for up to 60 s while a failover goes on.
async fn primary_of(pg: &PatroniCluster, database: &str) -> Client {
    let url = pg.url("postgres", database);
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            Ok((client, connection)) => {
                tokio::spawn(connection);
                return client;
            }
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("no primary through {url}: {error}\n{}", pg.logs()),
        }
    }
}

/// A query on the primary, tried again on a new connection while a failover goes on.
async fn query_primary<T>(
    pg: &PatroniCluster,
    sql: &str,
    read: impl Fn(&[tokio_postgres::Row]) -> T,
) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let client = primary(pg).await;
        match client.query(sql, &[]).await {
            Ok(rows) => return read(&rows),
            Err(_) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("{sql}: {error}"),
        }
    }
}

async fn count(pg: &PatroniCluster, sql: &str) -> i64 {
    query_primary(pg, sql, |rows| rows[0].get::<_, i64>(0)).await
}

/// The sum of a relay's counters of messages moved (published and applied).
fn moved(metrics: &str) -> f64 {
    metrics
        .lines()
        .filter(|line| {
            line.starts_with("infor_relay_published_total")
                || line.starts_with("infor_relay_inbound_total")
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// What the watcher saw of one relay: when it answered `/ready`, and its counters.
#[derive(Debug, Default, Clone)]
struct Watched {
    /// (when, ready)
    ready: Vec<(Instant, bool)>,
    /// (when, messages moved so far)
    moved: Vec<(Instant, f64)>,
}

/// Polls each relay's `/ready` every 25 ms and its `/metrics` every 100 ms until `stop`.
fn watch(ports: Vec<u16>, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<Watched>> {
    tokio::spawn(async move {
        let mut watched = vec![Watched::default(); ports.len()];
        let mut tick = 0u64;
        while !stop.load(Ordering::SeqCst) {
            for (n, port) in ports.iter().enumerate() {
                let ready = matches!(http_get(*port, "/ready").await, Some((200, _)));
                watched[n].ready.push((Instant::now(), ready));
                if tick.is_multiple_of(4) {
                    if let Some((200, body)) = http_get(*port, "/metrics").await {
                        watched[n].moved.push((Instant::now(), moved(&body)));
                    }
                }
            }
            tick += 1;
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        watched
    })
}

/// For a relay that was not ready after `fault`: the time from the fault to the first message it
/// moved once ready again. `None` when it never went unready.
fn recovery(watched: &Watched, fault: Instant) -> Option<Option<Duration>> {
    let down = watched
        .ready
        .iter()
        .find(|(when, ready)| *when >= fault && !ready)?
        .0;
    let Some(up) = watched
        .ready
        .iter()
        .find(|(when, ready)| *when > down && *ready)
        .map(|(when, _)| *when)
    else {
        return Some(None);
    };
    let before = watched
        .moved
        .iter()
        .rev()
        .find(|(when, _)| *when <= up)
        .map(|(_, moved)| *moved)
        .unwrap_or(0.0);
    Some(
        watched
            .moved
            .iter()
            .find(|(when, moved)| *when > up && *moved > before)
            .map(|(when, _)| *when - fault),
    )
}

/// The broker nodes (their indexes) the relay's connections went to last, from its log (the
/// connection that declares the queues at start is closed at once, and left out).
fn broker_nodes_of(relay: &Relay, rabbit: &RabbitCluster) -> BTreeSet<usize> {
    let mut last: HashMap<String, usize> = HashMap::new();
    for line in relay.process.output().lines() {
        let Some((before, after)) = line.split_once(": connected to this broker node") else {
            continue;
        };
        let name = before.rsplit(": ").next().unwrap_or_default().to_string();
        if name.ends_with("declare") {
            continue;
        }
        let port = after
            .split("@127.0.0.1:")
            .nth(1)
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse::<u16>().ok());
        if let Some(node) = port.and_then(|port| rabbit.node_index_of_port(port)) {
            last.insert(name, node);
        }
    }
    last.into_values().collect()
}

/// The journal's lines, split on tabs.
fn journal(path: &std::path::Path) -> Vec<Vec<String>> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| line.split('\t').map(str::to_string).collect())
        .collect()
}

impl Ha {
    async fn start(clients: i64) -> Ha {
        let rabbit = tokio::task::spawn_blocking(|| RabbitCluster::start(3));
        let pg = PatroniCluster::start(2)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let rabbit = rabbit
            .await
            .expect("the RabbitMQ cluster's task")
            .unwrap_or_else(|e| panic!("{e}"));
        let admin = primary_of(&pg, "postgres").await;
        for statement in [
            format!("CREATE DATABASE {DATABASE}"),
            "CREATE ROLE relay_login LOGIN".to_string(),
            format!("GRANT CONNECT ON DATABASE {DATABASE} TO relay_login"),
        ] {
            admin
                .batch_execute(&statement)
                .await
                .unwrap_or_else(|e| panic!("{statement}: {e}"));
        }
        let db = primary(&pg).await;
        db.batch_execute("CREATE EXTENSION pg_cron; CREATE EXTENSION infor_comm;")
            .await
            .expect("CREATE EXTENSION pg_cron, infor_comm");
        db.batch_execute(HOST_TABLES_SQL)
            .await
            .expect("host tables");
        db.batch_execute(
            "GRANT infor_comm_relay TO relay_login;
             SELECT infor_comm.schedule_daily('* * * * *');",
        )
        .await
        .expect("relay role and the pg_cron job");

        let vhost = rabbit.new_vhost();
        let zone = format!("HA{}", free_port());
        let journal = std::env::temp_dir().join(format!(
            "infor-comm-ha-journal-{}-{}",
            std::process::id(),
            free_port()
        ));
        let simulator = Process::start(
            "crm-sim",
            "infor-crm-sim",
            &[
                "--declare-queues",
                "--quorum-queues",
                "--push-delay",
                "500ms",
                "--journal",
                &journal.display().to_string(),
            ]
            .map(str::to_string),
            &[
                ("DATABASE_URL", pg.url("postgres", DATABASE)),
                ("AMQP_URL", rabbit.urls(&[2, 0, 1], &vhost)),
                ("INFOR_ZONE", zone.clone()),
            ],
        );
        let relay_url = pg.url("relay_login", DATABASE);
        let relays = [[0, 1, 2], [1, 2, 0]]
            .iter()
            .enumerate()
            .map(|(n, order)| {
                let metrics_port = free_port();
                let process = Process::start(
                    &format!("relay-{}", n + 1),
                    "infor-relay",
                    &[
                        "--declare-queues",
                        "--queue-type",
                        "quorum",
                        "--poll-interval",
                        "1s",
                        "--lease",
                        "10s",
                        "--max-backoff",
                        "1s",
                        "--metrics-addr",
                        &format!("127.0.0.1:{metrics_port}"),
                    ]
                    .map(str::to_string),
                    &[
                        ("DATABASE_URL", relay_url.clone()),
                        ("AMQP_URL", rabbit.urls(order, &vhost)),
                        ("INFOR_ZONE", zone.clone()),
                    ],
                );
                Relay {
                    process,
                    metrics_port,
                }
            })
            .collect();
        Ha {
            pg,
            rabbit,
            vhost,
            zone,
            relays,
            simulator,
            journal,
            clients,
            pushes_seen: HashSet::new(),
            inbox_seen: 0,
        }
    }

    fn queues(&self) -> [String; 2] {
        let base = "Application.Send.Communication.Migration.Async";
        [
            format!("{}.{base}.VTB_Client.TIBCO.Rq", self.zone),
            format!("{}.{base}.TIBCO.VTB_Client.Rq", self.zone),
        ]
    }

    fn relay_logs(&self) -> String {
        let mut text = String::new();
        for relay in &self.relays {
            let out = relay.process.output();
            let tail: Vec<&str> = out.lines().rev().take(40).collect();
            let _ = writeln!(
                text,
                "--- {}:\n{}",
                relay.process.name,
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
        text
    }

    async fn all_ready(&self) -> bool {
        for relay in &self.relays {
            if !matches!(http_get(relay.metrics_port, "/ready").await, Some((200, _))) {
                return false;
            }
        }
        true
    }

    /// Everything enqueued is published and answered, and every created task has its push.
    async fn done(&self) -> bool {
        count(
            &self.pg,
            "SELECT count(*) FROM infor_comm.outbox o
               LEFT JOIN infor_comm.infor_communication_task t ON t.id = o.task_row_id
              WHERE o.published_at IS NULL OR t.status_code IS NULL
                 OR (t.status_code = '0' AND t.task_status IS NULL)",
        )
        .await
            == 0
    }

    /// Runs one round: new clients, the daily job, the fault once the flow runs, and the count.
    async fn round(&mut self, tag: &str, fault: Fault, synchronous: bool) -> Row {
        let mut problems = Vec::new();
        let leader = self
            .pg
            .wait_healthy(synchronous, Duration::from_secs(120))
            .await
            .unwrap_or_else(|state| panic!("the cluster is not healthy before {tag}: {state}"));
        assert!(
            infor_comm_tests::wait_until(Duration::from_secs(60), || self.all_ready()).await,
            "the relays are not ready before {tag}:\n{}",
            self.relay_logs()
        );

        // New thinking clients, asked by the daily job.
        let db = primary(&self.pg).await;
        db.batch_execute(&format!(
            "INSERT INTO product_migration_clients
             SELECT '{tag}-' || n, '{tag}-M' || n, 'in_wizard', 'OK' FROM generate_series(1, {n}) n;
             INSERT INTO wizard_status_change_log
             SELECT organization_id, 'OK', (now() - interval '10 days') AT TIME ZONE 'Europe/Moscow'
               FROM product_migration_clients WHERE organization_id LIKE '{tag}-%';
             INSERT INTO clientsnapshot
             SELECT organization_id, '1200009193', '1231200000844', '120001001', NULL
               FROM product_migration_clients WHERE organization_id LIKE '{tag}-%';
             CALL infor_comm.run_daily();",
            n = self.clients
        ))
        .await
        .expect("new clients and the daily job");
        let in_round = format!("o.organization_id LIKE '{tag}-%'");
        let requests = count(
            &self.pg,
            &format!("SELECT count(*) FROM infor_comm.outbox o WHERE {in_round}"),
        )
        .await;
        assert_eq!(
            requests, self.clients,
            "the daily job asked every new client"
        );

        let stop = Arc::new(AtomicBool::new(false));
        let watcher = watch(
            self.relays.iter().map(|r| r.metrics_port).collect(),
            stop.clone(),
        );
        let strike_at = (requests as f64 * STRIKE_AFTER) as i64;
        let published_sql = format!(
            "SELECT count(*) FROM infor_comm.outbox o WHERE {in_round} AND published_at IS NOT NULL"
        );
        assert!(
            infor_comm_tests::wait_until(Duration::from_secs(120), || async {
                count(&self.pg, &published_sql).await >= strike_at
            })
            .await,
            "{strike_at} requests of {tag} not published:\n{}",
            self.relay_logs()
        );

        // The fault.
        let broker_node = fault.broker_relay().map(|relay| {
            let nodes = broker_nodes_of(&self.relays[relay], &self.rabbit);
            *nodes
                .iter()
                .next()
                .unwrap_or_else(|| panic!("relay {} is on no broker node", relay + 1))
        });
        let struck = Instant::now();
        let standby = 1 - leader;
        match fault {
            Fault::PlannedFailover => {
                let out = tokio::task::block_in_place(|| self.pg.failover(standby));
                if let Err(error) = out {
                    problems.push(error);
                }
            }
            Fault::PrimaryKilled | Fault::Both(_) => {
                self.pg.kill_postmaster(leader).expect("kill the primary")
            }
            Fault::BrokerNodeStopped(_) => {}
        }
        if let Some(node) = broker_node {
            tokio::task::block_in_place(|| self.rabbit.stop_app(node));
        }

        // Recovery: the relays flow again; the stopped broker node comes back.
        let flowing = infor_comm_tests::wait_until(Duration::from_secs(90), || async {
            let before = self.moved_now().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            self.all_ready().await && self.moved_now().await > before
        })
        .await;
        if !flowing {
            problems.push("the relays did not flow again within 90 s".into());
        }
        if let Some(node) = broker_node {
            tokio::task::block_in_place(|| self.rabbit.start_app(node));
        }

        // With an asynchronous standby, a reply whose commit the failover lost never comes
        // again: the round cannot finish, and the count below says what was lost.
        let timeout = if synchronous { 240 } else { 60 };
        let done = infor_comm_tests::wait_until(Duration::from_secs(timeout), || self.done()).await;
        if !done && synchronous {
            problems.push(format!(
                "not every request, reply and push done within {timeout} s"
            ));
        }
        let queues = self.queues();
        let empty = infor_comm_tests::wait_until(Duration::from_secs(30), || async {
            queues
                .iter()
                .all(|queue| self.rabbit.queue_depth(&self.vhost, queue) == 0)
        })
        .await;
        if !empty {
            let depths: Vec<String> = queues
                .iter()
                .map(|queue| format!("{queue}: {}", self.rabbit.queue_depth(&self.vhost, queue)))
                .collect();
            problems.push(format!("messages left on a queue: {depths:?}"));
        }
        // The journal's last lines are written just after the broker's confirm.
        tokio::time::sleep(Duration::from_secs(1)).await;
        stop.store(true, Ordering::SeqCst);
        let watched = watcher.await.expect("the watcher");

        let mut not_ready = Vec::new();
        let mut recovered_in: Option<Duration> = None;
        for (n, relay) in watched.iter().enumerate() {
            if let Some(recovered) = recovery(relay, struck) {
                not_ready.push(n);
                match recovered {
                    Some(after) => {
                        recovered_in = Some(recovered_in.map_or(after, |r| r.max(after)));
                    }
                    None => problems.push(format!("relay {} never flowed again", n + 1)),
                }
            }
        }
        if !self.all_ready().await {
            problems.push("a relay is not ready at the end".into());
        }
        let expected: Vec<usize> = if fault.database() {
            (0..self.relays.len()).collect()
        } else {
            fault.broker_relay().into_iter().collect()
        };
        for relay in expected {
            if !not_ready.contains(&relay) {
                problems.push(format!("relay {} never said it was not ready", relay + 1));
            }
        }

        let mut row = self.count_round(tag, &in_round).await;
        row.fault = fault.describe();
        row.standby = if synchronous {
            "synchronous"
        } else {
            "asynchronous"
        };
        row.recovered_in = recovered_in;
        row.not_ready = not_ready;
        row.problems.extend(problems);
        row
    }

    async fn moved_now(&self) -> f64 {
        let mut sum = 0.0;
        for relay in &self.relays {
            if let Some((200, body)) = http_get(relay.metrics_port, "/metrics").await {
                sum += moved(&body);
            }
        }
        sum
    }

    /// The round's figures: the simulator's journal against the database.
    async fn count_round(&mut self, tag: &str, in_round: &str) -> Row {
        let mut problems = Vec::new();
        let round_requests: HashSet<String> = query_primary(
            &self.pg,
            &format!("SELECT request_id::text FROM infor_comm.outbox o WHERE {in_round}"),
            |rows| rows.iter().map(|r| r.get::<_, String>(0)).collect(),
        )
        .await;
        let unpublished = count(
            &self.pg,
            &format!("SELECT count(*) FROM infor_comm.outbox o WHERE {in_round} AND published_at IS NULL"),
        )
        .await;
        if unpublished > 0 {
            problems.push(format!(
                "{unpublished} requests of {tag} never marked published"
            ));
        }
        let lines = journal(&self.journal);
        let mut received: HashMap<&str, usize> = HashMap::new();
        let mut replies: HashSet<&str> = HashSet::new();
        let mut pushes: HashSet<&str> = HashSet::new();
        for line in &lines {
            match line.as_slice() {
                [kind, id, redelivered] if kind == "request" && round_requests.contains(id) => {
                    let fresh = received.entry(id).or_default();
                    if redelivered == "0" {
                        *fresh += 1;
                    }
                }
                [kind, message, request] if kind == "reply" && round_requests.contains(request) => {
                    replies.insert(message);
                }
                [kind, message] if kind == "push" && !self.pushes_seen.contains(message) => {
                    pushes.insert(message);
                }
                _ => {}
            }
        }
        let never_received = round_requests.len() - received.len();
        let resent: usize = received.values().map(|n| n.saturating_sub(1)).sum();

        // The inbox: every message the relays applied (or set aside) since the last round.
        // An orphan is a push that came before its task's reply; it is applied when the reply
        // comes (applied_at), and waits for good when the reply was lost.
        let inbox: Vec<(String, String)> = query_primary(
            &self.pg,
            &format!(
                "SELECT coalesce(message_id, ''),
                        CASE WHEN outcome = 'orphan' AND applied_at IS NOT NULL THEN 'push'
                             ELSE outcome END
                   FROM infor_comm.inbox WHERE inbox_id > {}",
                self.inbox_seen
            ),
            |rows| rows.iter().map(|r| (r.get(0), r.get(1))).collect(),
        )
        .await;
        let mut applied: HashMap<&str, usize> = HashMap::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (message, outcome) in &inbox {
            seen.insert(message);
            if outcome == "reply" || outcome == "push" {
                *applied.entry(message).or_default() += 1;
            }
        }
        let applied_twice = applied.values().filter(|n| **n > 1).count();
        let lost_messages = replies
            .iter()
            .chain(pushes.iter())
            .filter(|message| !seen.contains(**message))
            .count();
        let orphaned = inbox
            .iter()
            .filter(|(_, outcome)| outcome == "orphan")
            .count();
        let odd: Vec<String> = inbox
            .iter()
            .filter(|(_, outcome)| {
                !matches!(outcome.as_str(), "reply" | "push" | "duplicate" | "orphan")
            })
            .map(|(message, outcome)| format!("{message}: {outcome}"))
            .take(5)
            .collect();
        if !odd.is_empty() {
            problems.push(format!(
                "inbox outcomes other than applied or duplicate: {odd:?}"
            ));
        }
        let row = Row {
            fault: String::new(),
            standby: "",
            recovered_in: None,
            requests: round_requests.len(),
            replies: replies.len(),
            pushes: pushes.len(),
            resent,
            lost: never_received + lost_messages,
            orphaned,
            applied_twice,
            not_ready: Vec::new(),
            problems,
        };
        self.pushes_seen
            .extend(pushes.into_iter().map(str::to_string));
        self.inbox_seen = count(
            &self.pg,
            "SELECT coalesce(max(inbox_id), 0) FROM infor_comm.inbox",
        )
        .await;
        row
    }
}

fn table(rows: &[Row]) -> String {
    let mut text = String::from(
        "| Fault | Standby | Time to recover | Requests | Replies | Pushes | Resent | Lost | Orphaned pushes | Applied twice |\n\
         |---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let recovered = row
            .recovered_in
            .map_or("-".to_string(), |d| format!("{:.1} s", d.as_secs_f64()));
        let _ = writeln!(
            text,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            row.fault,
            row.standby,
            recovered,
            row.requests,
            row.replies,
            row.pushes,
            row.resent,
            row.lost,
            row.orphaned,
            row.applied_twice
        );
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's patroni and etcd-server: scripts/test-ha installs them and runs it"]
async fn failovers_and_broker_node_stops_lose_nothing_with_a_synchronous_standby() {
    let started = Instant::now();
    let clients = std::env::var("INFOR_HA_CLIENTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(CLIENTS);
    let mut ha = Ha::start(clients).await;
    eprintln!("cluster up in {:.0} s", started.elapsed().as_secs_f64());
    assert!(
        infor_comm_tests::wait_until(Duration::from_secs(60), || ha.all_ready()).await,
        "the relays are not ready:\n{}",
        ha.relay_logs()
    );
    for queue in ha.queues() {
        assert_eq!(
            ha.rabbit.queue_type(&ha.vhost, &queue).as_deref(),
            Some("quorum"),
            "{queue}"
        );
    }

    let rounds = [
        ("R1", Fault::PlannedFailover, true),
        ("R2", Fault::PrimaryKilled, true),
        ("R3", Fault::BrokerNodeStopped(0), true),
        ("R4", Fault::BrokerNodeStopped(1), true),
        ("R5", Fault::Both(0), true),
        ("R6", Fault::PrimaryKilled, false),
    ];
    // INFOR_HA_ROUNDS=R1,R3 runs only those rounds (by hand, to look at one fault).
    let only = std::env::var("INFOR_HA_ROUNDS").unwrap_or_default();
    let mut rows = Vec::new();
    for (tag, fault, synchronous) in rounds {
        if !only.is_empty() && !only.split(',').any(|r| r == tag) {
            continue;
        }
        if !synchronous {
            tokio::task::block_in_place(|| ha.pg.set_synchronous(false))
                .expect("synchronous_mode off");
        }
        let round_started = Instant::now();
        let row = ha.round(tag, fault, synchronous).await;
        eprintln!(
            "{tag} ({}) in {:.0} s: {row:?}",
            row.fault,
            round_started.elapsed().as_secs_f64()
        );
        rows.push(row);
    }
    let after_last_failover = chrono::Utc::now();

    // pg_cron runs the daily job on the node promoted last (its runs are recorded in
    // cron.job_run_details, which only a primary writes).
    let cron_ran = infor_comm_tests::wait_until(Duration::from_secs(75), || async {
        count(
            &ha.pg,
            &format!(
                "SELECT count(*) FROM cron.job_run_details d JOIN cron.job j USING (jobid)
                  WHERE j.jobname = 'infor_comm_daily' AND d.status = 'succeeded'
                    AND d.start_time > '{}'",
                after_last_failover.to_rfc3339()
            ),
        )
        .await
            > 0
    })
    .await;
    let health: String = query_primary(
        &ha.pg,
        "SELECT last_run_status || ' ' || array_to_string(problems, ' | ') FROM infor_comm.health",
        |rows| rows[0].get(0),
    )
    .await;

    let text = table(&rows);
    eprintln!(
        "{text}\nwhole run: {:.0} s",
        started.elapsed().as_secs_f64()
    );

    let mut failures = Vec::new();
    for row in &rows {
        for problem in &row.problems {
            failures.push(format!("{} ({}): {problem}", row.fault, row.standby));
        }
        if row.applied_twice > 0 {
            failures.push(format!(
                "{}: {} applied twice",
                row.fault, row.applied_twice
            ));
        }
        if row.standby == "synchronous" && (row.lost > 0 || row.orphaned > 0) {
            failures.push(format!(
                "{}: {} lost, {} pushes orphaned",
                row.fault, row.lost, row.orphaned
            ));
        }
    }
    if !cron_ran {
        failures.push("pg_cron did not run the daily job on the last promoted node".into());
    }
    assert!(
        failures.is_empty(),
        "{}\n{text}\nhealth: {health}\n{}\n{}",
        failures.join("\n"),
        ha.relay_logs(),
        ha.pg.logs()
    );
    ha.simulator.terminate(Duration::from_secs(10));
}
