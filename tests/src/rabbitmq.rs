//! A throwaway RabbitMQ node for one test binary (own ports, own directory), with a fresh
//! virtual host per test.

use crate::postgres::free_port;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const RABBITMQ_BIN: &str = "/usr/lib/rabbitmq/bin";

/// A running RabbitMQ node owned by this test process; stopped when the process exits.
#[derive(Debug)]
pub struct RabbitNode {
    /// The node name, e.g. `t1234_56789@localhost`.
    pub node: String,
    /// The AMQP port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

static NODE: OnceLock<RabbitNode> = OnceLock::new();
static STARTED: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
static VHOST_COUNTER: AtomicU32 = AtomicU32::new(0);

extern "C" fn stop_nodes() {
    let started = STARTED.lock().map(|s| s.clone()).unwrap_or_default();
    for (node, dir) in started {
        let _ = ctl_command(&dir, &node).arg("stop").output();
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn ctl_command(dir: &std::path::Path, node: &str) -> Command {
    let mut command = Command::new(format!("{RABBITMQ_BIN}/rabbitmqctl"));
    command.env("HOME", dir).args(["-n", node]);
    command
}

/// Starts `rabbitmq-server` for `node` in `dir` (its HOME, data and logs; output to
/// `server.out`) on `port` (AMQP) and `dist_port` (Erlang distribution), both on 127.0.0.1, and
/// registers the node to be stopped and its directory removed at process exit. Does not wait.
pub(crate) fn spawn_server(
    dir: &std::path::Path,
    node: &str,
    port: u16,
    dist_port: u16,
) -> Result<(), String> {
    let log = std::fs::File::create(dir.join("server.out")).map_err(|e| e.to_string())?;
    Command::new(format!("{RABBITMQ_BIN}/rabbitmq-server"))
        .current_dir(dir)
        .env("HOME", dir)
        .env("RABBITMQ_NODENAME", node)
        .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
        .env("RABBITMQ_NODE_PORT", port.to_string())
        .env("RABBITMQ_DIST_PORT", dist_port.to_string())
        .env("RABBITMQ_MNESIA_BASE", dir.join("mnesia"))
        .env("RABBITMQ_LOG_BASE", dir.join("log"))
        .env("RABBITMQ_ENABLED_PLUGINS_FILE", dir.join("enabled_plugins"))
        .env("RABBITMQ_CONFIG_FILE", dir.join("rabbitmq"))
        .env("RABBITMQ_ADVANCED_CONFIG_FILE", dir.join("advanced.config"))
        .env("RABBITMQ_PID_FILE", dir.join("pid"))
        .env("ERL_EPMD_ADDRESS", "127.0.0.1")
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("rabbitmq-server: {e} (install rabbitmq-server)"))?;
    let mut started = STARTED.lock().map_err(|e| e.to_string())?;
    if started.is_empty() {
        // SAFETY: registers a plain extern "C" function, run once at process exit.
        unsafe { libc::atexit(stop_nodes) };
    }
    started.push((node.to_string(), dir.to_path_buf()));
    Ok(())
}

/// Waits (up to 90 s) until the broker application of `node` runs.
pub(crate) fn await_startup(dir: &std::path::Path, node: &str) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline {
        let ok = ctl_command(dir, node)
            .args(["await_startup", "--timeout", "5"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let out = std::fs::read_to_string(dir.join("server.out")).unwrap_or_default();
    Err(format!("RabbitMQ node {node} did not start: {out}"))
}

/// Runs `rabbitmqctl` with `args` against `node`; its standard output, or an error with its
/// standard error.
pub(crate) fn ctl(dir: &std::path::Path, node: &str, args: &[&str]) -> Result<String, String> {
    let out = ctl_command(dir, node)
        .args(args)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "rabbitmqctl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl RabbitNode {
    /// The node of this test process, started on first use.
    pub fn shared() -> &'static RabbitNode {
        NODE.get_or_init(|| RabbitNode::start().expect("start a RabbitMQ node"))
    }

    /// Starts a new node and waits until it accepts connections.
    pub fn start() -> Result<RabbitNode, String> {
        RabbitNode::start_with_conf("")
    }

    /// Starts a new node with `conf` (lines of `rabbitmq.conf`, `frame_max = 1048576` say) and
    /// waits until it accepts connections.
    pub fn start_with_conf(conf: &str) -> Result<RabbitNode, String> {
        let port = free_port();
        let dist_port = free_port();
        let node = format!("t{}_{port}@localhost", std::process::id());
        let dir =
            std::env::temp_dir().join(format!("infor-comm-rabbit-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n").map_err(|e| e.to_string())?;
        if !conf.is_empty() {
            std::fs::write(dir.join("rabbitmq.conf"), conf).map_err(|e| e.to_string())?;
        }
        spawn_server(&dir, &node, port, dist_port)?;
        let rabbit = RabbitNode { node, port, dir };
        rabbit.await_startup()?;
        Ok(rabbit)
    }

    fn await_startup(&self) -> Result<(), String> {
        await_startup(&self.dir, &self.node)
    }

    fn ctl(&self, args: &[&str]) -> Result<String, String> {
        ctl(&self.dir, &self.node, args)
    }

    /// Raises (or clears) a memory alarm: the node blocks every connection that publishes
    /// (`connection.blocked`) until it is cleared. Use a node of the test's own.
    pub fn set_memory_alarm(&self, on: bool) {
        let watermark = if on { "0.000001" } else { "0.4" };
        self.ctl(&["set_vm_memory_high_watermark", watermark])
            .expect("set_vm_memory_high_watermark");
    }

    /// A new virtual host; returns its AMQP URL.
    pub fn new_vhost(&self) -> String {
        let name = format!("v{}", VHOST_COUNTER.fetch_add(1, Ordering::SeqCst));
        self.ctl(&["add_vhost", &name]).expect("add_vhost");
        self.ctl(&["set_permissions", "-p", &name, "guest", ".*", ".*", ".*"])
            .expect("set_permissions");
        format!("amqp://guest:guest@127.0.0.1:{}/{name}", self.port)
    }

    /// Restarts the broker application: every connection drops; durable queues and persistent
    /// messages survive.
    pub fn restart(&self, down_for: Duration) {
        self.stop_app();
        std::thread::sleep(down_for);
        self.start_app();
    }

    /// Stops the broker application (the node stays up): every connection drops.
    pub fn stop_app(&self) {
        self.ctl(&["stop_app"]).expect("stop_app");
    }

    /// Starts the broker application again and waits until it accepts connections.
    pub fn start_app(&self) {
        self.ctl(&["start_app"]).expect("start_app");
        self.await_startup().expect("back up");
    }

    /// Deletes a queue of a virtual host, as an operator would by mistake.
    pub fn delete_queue(&self, vhost_url: &str, queue: &str) {
        let vhost = vhost_url.rsplit('/').next().unwrap_or("/");
        self.ctl(&["delete_queue", "-p", vhost, queue])
            .expect("delete_queue");
    }

    /// A column of `rabbitmqctl list_queues` (`type`, `messages`, …) for a queue of a virtual
    /// host, if the queue exists.
    fn queue_column(&self, vhost_url: &str, queue: &str, column: &str) -> Option<String> {
        let vhost = vhost_url.rsplit('/').next().unwrap_or("/");
        let out = self
            .ctl(&[
                "list_queues",
                "-p",
                vhost,
                "--quiet",
                "--no-table-headers",
                "name",
                column,
            ])
            .unwrap_or_default();
        out.lines()
            .filter_map(|line| line.split_once('\t'))
            .find(|(name, _)| *name == queue)
            .map(|(_, value)| value.trim().to_string())
    }

    /// The type of a queue of a virtual host (`classic`, `quorum`), if it exists.
    pub fn queue_type(&self, vhost_url: &str, queue: &str) -> Option<String> {
        self.queue_column(vhost_url, queue, "type")
    }

    /// Messages ready in a queue of a virtual host.
    pub fn queue_depth(&self, vhost_url: &str, queue: &str) -> u64 {
        self.queue_column(vhost_url, queue, "messages")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}
