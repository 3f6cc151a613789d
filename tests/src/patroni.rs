//! A PostgreSQL cluster as banks run it, for the high-availability test: etcd (one member) and
//! PostgreSQL 15 nodes, each under its own Patroni (Debian's `patroni` and `etcd-server`
//! packages), a primary and its synchronous standby, all on 127.0.0.1 on free ports, in one
//! directory removed when the cluster is dropped.
//!
//! Patroni is set as a bank sets it for a synchronous standby:
//! - `synchronous_mode: true`: the primary's commits wait for the standby's flush;
//! - `primary_start_timeout: 0`: a crashed primary is not restarted in place; its synchronous
//!   standby is promoted at once;
//! - `use_pg_rewind: true` (with `wal_log_hints`): the old primary comes back as the new one's
//!   standby without a new base backup;
//! - `ttl: 20`, `loop_wait: 1`, `retry_timeout: 5`: the smallest values Patroni accepts, so
//!   that a lost leader is noticed within seconds.

use crate::postgres::{free_port, new_base_dir, running_as_root};
use crate::processes::Process;
use crate::scenario::http_get;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The database the test works in (pg_cron's `cron.database_name` too).
pub const DATABASE: &str = "infor";

/// One PostgreSQL node and its Patroni.
#[derive(Debug)]
pub struct PatroniNode {
    /// The member's name in the cluster (`pg1`, `pg2`).
    pub name: String,
    /// PostgreSQL's port on 127.0.0.1.
    pub pg_port: u16,
    /// Patroni's REST API port on 127.0.0.1.
    pub api_port: u16,
    config: PathBuf,
    data_dir: PathBuf,
    patroni: Process,
}

/// etcd and the PostgreSQL nodes under Patroni.
#[derive(Debug)]
pub struct PatroniCluster {
    /// The nodes, in the order they were started.
    pub nodes: Vec<PatroniNode>,
    etcd: Process,
    dir: PathBuf,
}

/// A member of the cluster as Patroni's `GET /cluster` describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name.
    pub name: String,
    /// `leader`, `sync_standby` or `replica`.
    pub role: String,
    /// `running`, `stopped`, `starting`…
    pub state: String,
    /// Its PostgreSQL timeline.
    pub timeline: Option<i64>,
}

/// The user and group ids of `postgres`, which Patroni and PostgreSQL run as when we are root.
fn postgres_ids() -> Option<(u32, u32)> {
    if !running_as_root() {
        return None;
    }
    let name = std::ffi::CString::new("postgres").ok()?;
    // SAFETY: getpwnam returns a pointer into static storage (or null), read at once.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    if entry.is_null() {
        return None;
    }
    // SAFETY: checked not null above.
    let entry = unsafe { &*entry };
    Some((entry.pw_uid, entry.pw_gid))
}

/// The settings of one node.
struct NodeSettings<'a> {
    name: &'a str,
    pg_port: u16,
    api_port: u16,
    node_dir: &'a std::path::Path,
    etcd_port: u16,
    bin_dir: &'a str,
}

/// Patroni's configuration file of one node.
fn patroni_config(node: &NodeSettings) -> String {
    format!(
        r#"scope: infor_ha
name: {name}
log:
  level: INFO
restapi:
  listen: 127.0.0.1:{api}
  connect_address: 127.0.0.1:{api}
etcd3:
  hosts: 127.0.0.1:{etcd_port}
bootstrap:
  dcs:
    ttl: 20
    loop_wait: 1
    retry_timeout: 5
    maximum_lag_on_failover: 1048576
    synchronous_mode: true
    primary_start_timeout: 0
    postgresql:
      use_pg_rewind: true
      use_slots: true
      parameters:
        wal_log_hints: 'on'
        shared_preload_libraries: pg_cron
        cron.database_name: {DATABASE}
        max_connections: 100
        max_wal_senders: 5
        max_replication_slots: 5
        wal_keep_size: 256MB
  initdb:
    - encoding: UTF8
    - locale: C.UTF-8
    - auth: trust
  pg_hba:
    - local all all trust
    - host replication replicator 127.0.0.1/32 trust
    - host all all 127.0.0.1/32 trust
postgresql:
  listen: 127.0.0.1:{pg}
  connect_address: 127.0.0.1:{pg}
  data_dir: {node_dir}/data
  bin_dir: {bin_dir}
  pgpass: {node_dir}/pgpass
  authentication:
    replication: {{username: replicator, password: replicator}}
    superuser: {{username: postgres, password: postgres}}
    rewind: {{username: postgres, password: postgres}}
  parameters:
    unix_socket_directories: '{node_dir}'
"#,
        name = node.name,
        api = node.api_port,
        pg = node.pg_port,
        etcd_port = node.etcd_port,
        bin_dir = node.bin_dir,
        node_dir = node.node_dir.display(),
    )
}

/// Spawns `program` with `args`, as `postgres` when we are root, its output in a log file.
fn spawn_as_postgres(name: &str, program: &str, args: &[&str], home: &std::path::Path) -> Process {
    let mut command = Command::new(program);
    command.args(args).env("HOME", home);
    if let Some((uid, gid)) = postgres_ids() {
        command.uid(uid).gid(gid);
    }
    Process::spawn_command(name, command, &[])
}

impl PatroniCluster {
    /// Starts etcd and `size` nodes under Patroni, all at once (one wins the leader key and
    /// runs initdb, the others take a base backup of it); returns once the leader runs and
    /// every other node is its synchronous standby (the first) or a replica.
    pub async fn start(size: usize) -> Result<PatroniCluster, String> {
        let dir = new_base_dir("infor-comm-patroni")?;
        let etcd_port = free_port();
        let peer_port = free_port();
        let etcd = Process::start_program(
            "etcd",
            std::path::Path::new("/usr/bin/etcd"),
            &[
                "--name=e1".to_string(),
                format!("--data-dir={}", dir.join("etcd").display()),
                format!("--listen-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--advertise-client-urls=http://127.0.0.1:{etcd_port}"),
                format!("--listen-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}"),
                format!("--initial-cluster=e1=http://127.0.0.1:{peer_port}"),
                "--log-level=warn".to_string(),
            ],
            &[],
        );
        let healthy = crate::wait_until(Duration::from_secs(30), || async {
            http_get(etcd_port, "/health")
                .await
                .is_some_and(|(status, body)| status == 200 && body.contains("true"))
        })
        .await;
        if !healthy {
            return Err(format!("etcd did not start: {}", etcd.output()));
        }
        let bin_dir = crate::postgres::pg_bin_dir();
        let bin_dir = bin_dir.display().to_string();
        let mut nodes = Vec::new();
        for n in 1..=size {
            let name = format!("pg{n}");
            let node_dir = dir.join(&name);
            std::fs::create_dir_all(&node_dir)
                .map_err(|e| format!("{}: {e}", node_dir.display()))?;
            let settings = NodeSettings {
                name: &name,
                pg_port: free_port(),
                api_port: free_port(),
                node_dir: &node_dir,
                etcd_port,
                bin_dir: &bin_dir,
            };
            let config = node_dir.join("patroni.yml");
            std::fs::write(&config, patroni_config(&settings)).map_err(|e| e.to_string())?;
            if let Some((uid, gid)) = postgres_ids() {
                for path in [&node_dir, &config] {
                    std::os::unix::fs::chown(path, Some(uid), Some(gid))
                        .map_err(|e| format!("chown {}: {e}", path.display()))?;
                }
            }
            let patroni = spawn_as_postgres(
                &format!("patroni-{name}"),
                "/usr/bin/patroni",
                &[&config.display().to_string()],
                &node_dir,
            );
            nodes.push(PatroniNode {
                pg_port: settings.pg_port,
                api_port: settings.api_port,
                data_dir: node_dir.join("data"),
                name,
                config,
                patroni,
            });
        }
        let cluster = PatroniCluster { nodes, etcd, dir };
        cluster
            .wait_healthy(true, Duration::from_secs(120))
            .await
            .map_err(|state| {
                format!(
                    "the Patroni cluster did not come up: {state}\n{}",
                    cluster.logs()
                )
            })?;
        Ok(cluster)
    }

    /// The last lines of each Patroni's output, for a failure message.
    pub fn logs(&self) -> String {
        self.nodes
            .iter()
            .map(|node| {
                let out = node.patroni.output();
                let tail: Vec<&str> = out.lines().rev().take(30).collect();
                format!(
                    "--- {}:\n{}",
                    node.name,
                    tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The members as Patroni's REST API of the first node that answers describes them.
    pub async fn members(&self) -> Option<Vec<Member>> {
        for node in &self.nodes {
            let Some((200, body)) = http_get(node.api_port, "/cluster").await else {
                continue;
            };
            let json: serde_json::Value = serde_json::from_str(&body).ok()?;
            let members = json.get("members")?.as_array()?;
            return Some(
                members
                    .iter()
                    .map(|m| Member {
                        name: m["name"].as_str().unwrap_or_default().to_string(),
                        role: m["role"].as_str().unwrap_or_default().to_string(),
                        state: m["state"].as_str().unwrap_or_default().to_string(),
                        timeline: m["timeline"].as_i64(),
                    })
                    .collect(),
            );
        }
        None
    }

    /// Waits until one leader runs and every other member runs on its timeline as its
    /// synchronous standby (`synchronous`) or as a replica; returns the leader's index, or the
    /// last state seen.
    pub async fn wait_healthy(
        &self,
        synchronous: bool,
        timeout: Duration,
    ) -> Result<usize, String> {
        let deadline = Instant::now() + timeout;
        let standby_role = if synchronous {
            "sync_standby"
        } else {
            "replica"
        };
        let mut last = None;
        loop {
            if let Some(members) = self.members().await {
                let leader = members
                    .iter()
                    .find(|m| m.role == "leader" && m.state == "running");
                if let Some(leader) = leader {
                    let all_follow = members.len() == self.nodes.len()
                        && members.iter().all(|m| {
                            m.name == leader.name
                                || (m.role == standby_role
                                    && m.state == "running"
                                    && m.timeline == leader.timeline)
                        });
                    if all_follow {
                        if let Some(index) = self.nodes.iter().position(|n| n.name == leader.name) {
                            if self.writable(index).await {
                                return Ok(index);
                            }
                        }
                    }
                }
                last = Some(members);
            }
            if Instant::now() >= deadline {
                return Err(format!("{last:?}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// True when node `index` accepts a write now.
    async fn writable(&self, index: usize) -> bool {
        let url = format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?connect_timeout=2",
            self.nodes[index].pg_port
        );
        let Ok((client, connection)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await
        else {
            return false;
        };
        tokio::spawn(connection);
        client
            .query_one("SELECT NOT pg_is_in_recovery()", &[])
            .await
            .is_ok_and(|row| row.get::<_, bool>(0))
    }

    /// A connection string to `database` as `user` that lists every node and asks for the one
    /// that accepts writes, as the relay is given it.
    pub fn url(&self, user: &str, database: &str) -> String {
        let hosts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.pg_port))
            .collect();
        format!(
            "postgresql://{user}@{}/{database}?target_session_attrs=read-write&connect_timeout=2",
            hosts.join(",")
        )
    }

    fn patronictl(&self, args: &[&str]) -> Result<String, String> {
        let mut command = Command::new("/usr/bin/patronictl");
        command
            .arg("-c")
            .arg(&self.nodes[0].config)
            .args(args)
            .env("HOME", &self.dir);
        crate::processes::run_to_end(command, &format!("patronictl {}", args.join(" ")))
    }

    /// A planned failover to node `candidate` (`patronictl failover --candidate … --force`).
    pub fn failover(&self, candidate: usize) -> Result<String, String> {
        self.patronictl(&[
            "failover",
            "--candidate",
            &self.nodes[candidate].name,
            "--force",
        ])
    }

    /// Turns Patroni's `synchronous_mode` on or off (`patronictl edit-config`).
    pub fn set_synchronous(&self, on: bool) -> Result<String, String> {
        let setting = format!("synchronous_mode={on}");
        self.patronictl(&["edit-config", "--set", &setting, "--force"])
    }

    /// SIGKILL to node `index`'s postmaster (read from its `postmaster.pid`), as a crash of
    /// PostgreSQL would; its Patroni lives on.
    pub fn kill_postmaster(&self, index: usize) -> Result<(), String> {
        let pid_file = self.nodes[index].data_dir.join("postmaster.pid");
        let text = std::fs::read_to_string(&pid_file)
            .map_err(|e| format!("{}: {e}", pid_file.display()))?;
        let pid: i32 = text
            .lines()
            .next()
            .and_then(|line| line.trim().parse().ok())
            .ok_or_else(|| format!("{}: no pid in {text:?}", pid_file.display()))?;
        // SAFETY: sends a signal to a process we started (through Patroni).
        if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
            return Err(format!(
                "kill -9 {pid}: {}",
                std::io::Error::last_os_error()
            ));
        }
        Ok(())
    }
}

impl Drop for PatroniCluster {
    /// Stops every Patroni (each stops its PostgreSQL), then whatever PostgreSQL is left, then
    /// etcd; removes the directory unless the test is failing.
    fn drop(&mut self) {
        for node in &mut self.nodes {
            node.patroni.terminate(Duration::from_secs(30));
        }
        for node in &self.nodes {
            if node.data_dir.join("postmaster.pid").exists() {
                let _ = crate::postgres::pg_command(&crate::postgres::pg_bin_dir(), "pg_ctl")
                    .arg("-D")
                    .arg(&node.data_dir)
                    .args(["-m", "immediate", "-w", "stop"])
                    .output();
            }
        }
        self.etcd.kill();
        if std::thread::panicking() {
            eprintln!(
                "the Patroni cluster's files are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}
