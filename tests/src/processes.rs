//! The real binaries `infor-relay` and `infor-crm-sim`, run as child processes.

use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// The path of a binary of the workspace (built by `cargo build -p infor-relay -p infor-crm-sim --bins`).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable");
    // target/<profile>/deps/<test> → target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>")
        .to_path_buf();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build -p infor-relay -p infor-crm-sim --bins` (the README's test command does)",
        path.display()
    );
    path
}

/// Runs `command` to its end: its output (standard output, then standard error) when it exits
/// 0, else an error naming it as `what`, with its exit status and output.
pub fn run_to_end(mut command: Command, what: &str) -> Result<String, String> {
    let out = command.output().map_err(|e| format!("{what}: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(format!("{what} exited with {}:\n{text}", out.status))
    }
}

/// A child process killed when dropped, with its output in a log file.
#[derive(Debug)]
pub struct Process {
    child: Option<Child>,
    /// Its name, for messages.
    pub name: String,
    /// Where its output goes.
    pub log: PathBuf,
}

impl Process {
    /// Starts `binary` with `args` and `env`, output to a log file in the temp directory.
    pub fn start(
        name: &str,
        binary_name: &str,
        args: &[String],
        env: &[(&str, String)],
    ) -> Process {
        let mut command = Command::new(binary(binary_name));
        command
            .args(args)
            .env_remove("DATABASE_URL")
            .env_remove("AMQP_URL")
            .env_remove("DATABASE_CA_FILE")
            .env_remove("DATABASE_URL_FILE")
            .env_remove("AMQP_URL_FILE")
            .env("RUST_LOG", "info");
        Process::spawn_command(name, command, env)
    }

    /// Starts `program` (any executable, not only the workspace's) with `args` and `env` and
    /// nothing else of this process's environment but `PATH`, `HOME` and `TMPDIR`; its output
    /// goes to a log file in the temp directory.
    pub fn start_program(
        name: &str,
        program: &std::path::Path,
        args: &[String],
        env: &[(&str, String)],
    ) -> Process {
        let mut command = Command::new(program);
        command.args(args).env_clear();
        for key in ["PATH", "HOME", "TMPDIR"] {
            if let Some(value) = std::env::var_os(key) {
                command.env(key, value);
            }
        }
        Process::spawn_command(name, command, env)
    }

    /// Spawns `command` with `env` added, its output to a new log file in the temp directory.
    pub fn spawn_command(name: &str, mut command: Command, env: &[(&str, String)]) -> Process {
        let log = std::env::temp_dir().join(format!(
            "infor-comm-{}-{name}-{}.log",
            std::process::id(),
            crate::postgres::free_port()
        ));
        let file = std::fs::File::create(&log).expect("log file");
        command
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file);
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("start {:?}: {e}", command.get_program()));
        Process {
            child: Some(child),
            name: name.to_string(),
            log,
        }
    }

    fn signal(&self, signal: i32) {
        if let Some(child) = &self.child {
            // SAFETY: sends a signal to our own child's pid.
            unsafe { libc::kill(child.id() as i32, signal) };
        }
    }

    /// SIGKILL: dies at once, mid-work.
    pub fn kill(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(mut child) = self.child.take() {
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits up to `timeout` for the exit status.
    pub fn terminate(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.signal(libc::SIGTERM);
        self.wait(timeout)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Some(status);
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// Its process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// A line of its `/proc/<pid>/status` (`VmHWM`, `VmRSS`…) in kB.
    pub fn status_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))?
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .ok()
    }

    /// The CPU time it has used so far (user and system), in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid()?)).ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: u64 = fields.get(11)?.parse().ok()?;
        let system: u64 = fields.get(12)?.parse().ok()?;
        Some(user + system)
    }

    /// True while it runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// Its output so far.
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Process {
    /// Kills the process; removes its log, unless the test is failing, when the log is kept
    /// and its path printed.
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}: output kept in {}", self.name, self.log.display());
        } else {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}
