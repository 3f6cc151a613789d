//! A throwaway RabbitMQ cluster for one test binary: several nodes on 127.0.0.1, each with its
//! own ports and directory, joined to the first one; stopped and removed at process exit. Made
//! for failover tests with quorum queues: stop the broker application of one node, start it
//! again, then stop another.

use crate::postgres::free_port;
use crate::rabbitmq::{await_startup, ctl, spawn_server};
use serde_json::Value;
use std::collections::HashSet;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long `start` and `start_app` wait for the cluster to form again.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(120);

/// Quorum queues publish their message counts (which `list_queues` reports) on every tick, every
/// 5 s by default: every 250 ms instead, as RabbitMQ's own tests do.
const ADVANCED_CONFIG: &str = "[{rabbit, [{quorum_tick_interval, 250}]}].\n";

static VHOST_COUNTER: AtomicU32 = AtomicU32::new(0);

/// One node of a cluster.
#[derive(Debug)]
struct Member {
    /// The node name, e.g. `t1234_56789@localhost`.
    node: String,
    /// The AMQP port on 127.0.0.1.
    port: u16,
    /// Its HOME, data and logs.
    dir: PathBuf,
}

impl Member {
    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        ctl(&self.dir, &self.node, args).map_err(|e| format!("{}: {e}", self.node))
    }

    /// The nodes that this node sees running in its cluster.
    fn running_nodes(&self) -> Result<HashSet<String>, String> {
        let out = self.ctl(&["--quiet", "cluster_status", "--formatter", "json"])?;
        let status: Value = serde_json::from_str(&out)
            .map_err(|e| format!("cluster_status of {}: {e}: {out}", self.node))?;
        Ok(strings(&status["running_nodes"]))
    }

    /// The rows of `list_queues` with `columns` for a virtual host.
    fn list_queues(&self, vhost: &str, columns: &[&str]) -> Result<Vec<Value>, String> {
        let mut args = vec!["--quiet", "list_queues", "-p", vhost, "--formatter", "json"];
        args.extend_from_slice(columns);
        let out = self.ctl(&args)?;
        match serde_json::from_str(&out) {
            Ok(Value::Array(rows)) => Ok(rows),
            Ok(_) | Err(_) => Err(format!("list_queues on {}: {out}", self.node)),
        }
    }
}

/// The strings of a JSON array (none if it is not one).
fn strings(value: &Value) -> HashSet<String> {
    value
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes the Erlang cookie into `dir` (read-only for its owner, as Erlang demands).
fn write_cookie(dir: &Path, cookie: &str) -> Result<(), String> {
    let path = dir.join(".erlang.cookie");
    let _ = std::fs::remove_file(&path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o400)
        .open(&path)
        .and_then(|mut file| file.write_all(cookie.as_bytes()))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Calls `step` for every item at the same time (one thread each); the first error, if any.
fn in_parallel<T: Sync>(
    items: &[T],
    step: impl Fn(&T) -> Result<(), String> + Sync,
) -> Result<(), String> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .iter()
            .map(|item| scope.spawn(|| step(item)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|_| Err("a thread panicked".into())))
            .collect::<Result<Vec<()>, String>>()
            .map(|_| ())
    })
}

/// Polls `check` every 250 ms until it answers `Ok(true)` or `timeout` passes; the error then
/// names `what` and the last answer.
fn poll(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> Result<bool, String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        let last = match check() {
            Ok(true) => return Ok(()),
            Ok(false) => "not yet".to_string(),
            Err(e) => e,
        };
        if Instant::now() >= deadline {
            return Err(format!("{what} after {timeout:?}: {last}"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A running RabbitMQ cluster owned by this test process; its nodes are stopped and their
/// directories removed when the process exits. Nodes are numbered from 0 in the order they
/// were started; node 0 is the one the others joined.
#[derive(Debug)]
pub struct RabbitCluster {
    members: Vec<Member>,
    /// Which nodes' broker applications `stop_app` stopped (and `start_app` did not start yet).
    stopped: Mutex<Vec<bool>>,
}

impl RabbitCluster {
    /// Starts `size` nodes at once, joins nodes 1.. to node 0 and waits until node 0 sees them
    /// all running.
    pub fn start(size: usize) -> Result<RabbitCluster, String> {
        if size == 0 {
            return Err("a RabbitMQ cluster needs at least one node".into());
        }
        let pid = std::process::id();
        let cookie = format!("INFORCOMM{}", uuid::Uuid::new_v4().simple()).to_uppercase();
        let mut ports = HashSet::new();
        let mut members = Vec::with_capacity(size);
        for _ in 0..size {
            let port = unique_port(&mut ports);
            let dist_port = unique_port(&mut ports);
            let node = format!("t{pid}_{port}@localhost");
            let dir = std::env::temp_dir().join(format!("infor-comm-rabbit-{pid}-{port}"));
            std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
            std::fs::write(dir.join("advanced.config"), ADVANCED_CONFIG)
                .map_err(|e| e.to_string())?;
            write_cookie(&dir, &cookie)?;
            spawn_server(&dir, &node, port, dist_port)?;
            members.push(Member { node, port, dir });
        }
        in_parallel(&members, |m| await_startup(&m.dir, &m.node))?;
        let first = &members[0];
        in_parallel(&members[1..], |m| m.ctl(&["stop_app"]).map(|_| ()))?;
        // One at a time: each join changes the cluster's membership.
        for member in &members[1..] {
            member.ctl(&["join_cluster", &first.node])?;
        }
        in_parallel(&members[1..], |m| m.ctl(&["start_app"]).map(|_| ()))?;
        let cluster = RabbitCluster {
            stopped: Mutex::new(vec![false; members.len()]),
            members,
        };
        let all: HashSet<String> = cluster.members.iter().map(|m| m.node.clone()).collect();
        poll("the cluster did not form", CLUSTER_TIMEOUT, || {
            Ok(cluster.members[0].running_nodes()?.is_superset(&all))
        })?;
        Ok(cluster)
    }

    /// A new virtual host where `guest` may do anything; returns its name.
    pub fn new_vhost(&self) -> String {
        let name = format!("v{}", VHOST_COUNTER.fetch_add(1, Ordering::SeqCst));
        let first = *self.running().first().expect("a running node");
        let member = &self.members[first];
        member.ctl(&["add_vhost", &name]).expect("add_vhost");
        member
            .ctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])
            .expect("set_permissions");
        name
    }

    /// The AMQP URL of a virtual host on node `node`.
    pub fn url(&self, node: usize, vhost: &str) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/{vhost}", self.port(node))
    }

    /// The AMQP URLs of a virtual host on the nodes of `order`, in that order, joined with `,`.
    pub fn urls(&self, order: &[usize], vhost: &str) -> String {
        order
            .iter()
            .map(|&node| self.url(node, vhost))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The AMQP port of node `node` (panics if there is no such node).
    pub fn port(&self, node: usize) -> u16 {
        self.members[node].port
    }

    /// The node whose AMQP port is `port`, if any.
    pub fn node_index_of_port(&self, port: u16) -> Option<usize> {
        self.members.iter().position(|m| m.port == port)
    }

    /// Stops the broker application of node `node` (the Erlang node stays up): its connections
    /// drop; quorum queues elect a leader among the other nodes if it led them.
    pub fn stop_app(&self, node: usize) {
        self.members[node].ctl(&["stop_app"]).expect("stop_app");
        self.set_stopped(node, true);
    }

    /// Starts the broker application of node `node` again and waits until it runs, sees every
    /// node not stopped by [`RabbitCluster::stop_app`] running in its cluster, and every quorum
    /// queue of every virtual host has all its members on those nodes online (`list_queues
    /// members online`): stopping one more node then keeps each queue's quorum.
    pub fn start_app(&self, node: usize) {
        let member = &self.members[node];
        member.ctl(&["start_app"]).expect("start_app");
        self.set_stopped(node, false);
        let up: HashSet<String> = self
            .running()
            .into_iter()
            .map(|i| self.members[i].node.clone())
            .collect();
        poll(
            "the node did not rejoin the cluster",
            CLUSTER_TIMEOUT,
            || Ok(member.running_nodes()?.is_superset(&up)),
        )
        .expect("node back in the cluster");
        poll(
            "quorum queue members are not all online",
            CLUSTER_TIMEOUT,
            || self.quorum_members_online(member, &up),
        )
        .expect("quorum queue members back online");
    }

    /// Messages (ready and unacknowledged) in a queue of a virtual host, asked of the first
    /// running node that answers; 0 if the queue does not exist. A quorum queue's count is at
    /// most a tick (250 ms) old. Fails the test if no running node can tell within 30 s.
    pub fn queue_depth(&self, vhost: &str, queue: &str) -> u64 {
        self.queue_column(vhost, queue, "messages")
            .and_then(|n| n.as_u64())
            .unwrap_or(0)
    }

    /// The type of a queue of a virtual host (`classic`, `quorum`), if it exists.
    pub fn queue_type(&self, vhost: &str, queue: &str) -> Option<String> {
        self.queue_column(vhost, queue, "type")
            .and_then(|t| t.as_str().map(str::to_string))
    }

    /// A column of `list_queues` for a queue, from the first running node that gives it; `None`
    /// if a node answered without the queue. Retries for 30 s while no node answers or the value
    /// is blank (a queue without a leader), then fails the test.
    fn queue_column(&self, vhost: &str, queue: &str, column: &str) -> Option<Value> {
        let known = |v: &Value| v.is_u64() || v.as_str().is_some_and(|s| !s.is_empty());
        let mut answer = None;
        let found = poll(
            &format!("no node gave {column} of queue {queue} in {vhost}"),
            Duration::from_secs(30),
            || {
                let mut last = Err("no node running".to_string());
                for i in self.running() {
                    let rows = match self.members[i].list_queues(vhost, &["name", column]) {
                        Ok(rows) => rows,
                        Err(e) => {
                            last = Err(e);
                            continue;
                        }
                    };
                    match rows.iter().find(|row| row["name"] == queue) {
                        None => {
                            answer = None;
                            return Ok(true);
                        }
                        Some(row) if known(&row[column]) => {
                            answer = Some(row[column].clone());
                            return Ok(true);
                        }
                        Some(row) => last = Err(format!("{}: {row}", self.members[i].node)),
                    }
                }
                last
            },
        );
        found.expect("a column of list_queues");
        answer
    }

    /// Whether every quorum queue of every virtual host has its members on the nodes `up`
    /// online, as `member` sees it.
    fn quorum_members_online(&self, member: &Member, up: &HashSet<String>) -> Result<bool, String> {
        let vhosts = member.ctl(&["--quiet", "list_vhosts", "--no-table-headers", "name"])?;
        for vhost in vhosts.lines().map(str::trim).filter(|v| !v.is_empty()) {
            for row in member.list_queues(vhost, &["name", "type", "members", "online"])? {
                if row["type"] != "quorum" {
                    continue;
                }
                let online = strings(&row["online"]);
                let missing: Vec<_> = strings(&row["members"])
                    .into_iter()
                    .filter(|m| up.contains(m) && !online.contains(m))
                    .collect();
                if !missing.is_empty() {
                    return Err(format!("{vhost}/{}: {missing:?} not online", row["name"]));
                }
            }
        }
        Ok(true)
    }

    /// The nodes whose broker application was not stopped by `stop_app`, in order.
    fn running(&self) -> Vec<usize> {
        let stopped = self.stopped.lock().expect("stopped nodes");
        (0..self.members.len()).filter(|&i| !stopped[i]).collect()
    }

    fn set_stopped(&self, node: usize, value: bool) {
        self.stopped.lock().expect("stopped nodes")[node] = value;
    }
}

/// A free port not in `taken`, which it joins.
fn unique_port(taken: &mut HashSet<u16>) -> u16 {
    loop {
        let port = free_port();
        if taken.insert(port) {
            return port;
        }
    }
}
