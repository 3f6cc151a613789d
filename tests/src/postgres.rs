//! A throwaway PostgreSQL cluster for one test binary, and fresh databases in it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use tokio_postgres::{Client, NoTls};

/// The host-table fixture of the repository.
pub const HOST_TABLES_SQL: &str = include_str!("../../sql/host_tables.sql");

/// A running PostgreSQL cluster owned by this test process; stopped when the process exits.
#[derive(Debug)]
pub struct PgCluster {
    /// The data directory.
    pub data_dir: PathBuf,
    /// The TCP port on 127.0.0.1.
    pub port: u16,
    /// The certificate authority that signed the server's certificate (the cluster accepts TLS
    /// and plain connections alike).
    pub ca_file: PathBuf,
    bin_dir: PathBuf,
}

static CLUSTER: OnceLock<PgCluster> = OnceLock::new();
static STARTED: Mutex<Vec<(PathBuf, PathBuf)>> = Mutex::new(Vec::new());
static DB_COUNTER: AtomicU32 = AtomicU32::new(0);

pub(crate) fn pg_bin_dir() -> PathBuf {
    let pg_config = std::env::var("PG_CONFIG").unwrap_or_else(|_| "pg_config".into());
    let out = Command::new(pg_config)
        .arg("--bindir")
        .output()
        .expect("pg_config is on PATH (install postgresql-server-dev-15)");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

pub(crate) fn running_as_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Runs a PostgreSQL program, as the `postgres` user when we are root.
pub(crate) fn pg_command(bin_dir: &Path, program: &str) -> Command {
    let path = bin_dir.join(program);
    if running_as_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(path);
        cmd
    } else {
        Command::new(path)
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

extern "C" fn stop_clusters() {
    let started = STARTED.lock().map(|s| s.clone()).unwrap_or_default();
    for (bin_dir, data_dir) in started {
        let _ = pg_command(&bin_dir, "pg_ctl")
            .arg("-D")
            .arg(&data_dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
        if let Some(parent) = data_dir.parent() {
            let _ = std::fs::remove_dir_all(parent);
        }
    }
}

/// Writes a test certificate authority (`ca.crt`) and a server certificate for 127.0.0.1 and
/// localhost signed by it (`server.crt`, `server.key`) into `dir`, with openssl.
fn make_test_certificates(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
         keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    )
    .map_err(|e| e.to_string())?;
    let ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    let steps = [
        format!(
            "req -x509 {ec} -keyout ca.key -out ca.crt -days 7 -subj /CN=infor_comm-test-CA \
             -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign"
        ),
        format!("req -new {ec} -keyout server.key -out server.csr -subj /CN=127.0.0.1"),
        "x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -out server.crt \
         -days 7 -extfile server.ext"
            .to_string(),
    ];
    for step in steps {
        let args: Vec<&str> = step.split_whitespace().collect();
        let out = Command::new("openssl")
            .args(&args)
            .current_dir(dir)
            .output()
            .map_err(|e| format!("openssl (install the openssl package): {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "openssl {}: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if running_as_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(dir)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown postgres failed".into());
        }
    }
    Ok(())
}

/// A new directory for a cluster, in the temporary directory, owned by `postgres`.
pub(crate) fn new_base_dir(prefix: &str) -> Result<PathBuf, String> {
    let base =
        std::env::temp_dir().join(format!("{prefix}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&base).map_err(|e| format!("{}: {e}", base.display()))?;
    if running_as_root() {
        let status = Command::new("chown")
            .arg("postgres:postgres")
            .arg(&base)
            .status()
            .map_err(|e| e.to_string())?;
        if !status.success() {
            return Err("chown postgres failed".into());
        }
    }
    Ok(base)
}

impl PgCluster {
    /// The cluster of this test process, started on first use.
    pub fn shared() -> &'static PgCluster {
        CLUSTER.get_or_init(|| PgCluster::start().expect("start a PostgreSQL cluster"))
    }

    /// Initialises and starts a new cluster with pg_cron preloaded.
    pub fn start() -> Result<PgCluster, String> {
        let bin_dir = pg_bin_dir();
        let base = new_base_dir("infor-comm-pg")?;
        let tls_dir = base.join("tls");
        make_test_certificates(&tls_dir)?;
        let data_dir = base.join("data");
        let out = pg_command(&bin_dir, "initdb")
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!("initdb: {}", String::from_utf8_lossy(&out.stderr)));
        }
        let port = free_port();
        let conf = format!(
            "\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\n\
             shared_preload_libraries = 'pg_cron'\ncron.database_name = 'postgres'\n\
             fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nmax_connections = 200\n\
             ssl = on\nssl_cert_file = '{tls}/server.crt'\nssl_key_file = '{tls}/server.key'\n",
            base.display(),
            tls = tls_dir.display()
        );
        let conf_path = data_dir.join("postgresql.conf");
        let mut existing = std::fs::read_to_string(&conf_path).map_err(|e| e.to_string())?;
        existing.push_str(&conf);
        std::fs::write(&conf_path, existing).map_err(|e| e.to_string())?;
        let cluster = PgCluster {
            data_dir,
            port,
            ca_file: tls_dir.join("ca.crt"),
            bin_dir,
        };
        cluster.pg_ctl_start()?;
        {
            let mut started = STARTED.lock().map_err(|e| e.to_string())?;
            if started.is_empty() {
                // SAFETY: registers a plain extern "C" function, run once at process exit.
                unsafe { libc::atexit(stop_clusters) };
            }
            started.push((cluster.bin_dir.clone(), cluster.data_dir.clone()));
        }
        Ok(cluster)
    }

    fn pg_ctl_start(&self) -> Result<(), String> {
        let log = self
            .data_dir
            .parent()
            .unwrap_or(&self.data_dir)
            .join("server.log");
        let out = pg_command(&self.bin_dir, "pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "60", "start"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            return Err(format!(
                "pg_ctl start: {}{}",
                String::from_utf8_lossy(&out.stderr),
                log_text
            ));
        }
        Ok(())
    }

    /// A streaming standby of this cluster (pg_basebackup -R), started on a port of its own;
    /// stopped when the process exits.
    pub fn standby(&self) -> Result<PgCluster, String> {
        let base = new_base_dir("infor-comm-standby")?;
        let data_dir = base.join("data");
        let out = pg_command(&self.bin_dir, "pg_basebackup")
            .arg("-D")
            .arg(&data_dir)
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-R", "-X", "stream", "--no-sync", "--checkpoint=fast"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pg_basebackup: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let port = free_port();
        let conf_path = data_dir.join("postgresql.conf");
        let mut conf = std::fs::read_to_string(&conf_path).map_err(|e| e.to_string())?;
        conf.push_str(&format!(
            "\nport = {port}\nunix_socket_directories = '{}'\n",
            base.display()
        ));
        std::fs::write(&conf_path, conf).map_err(|e| e.to_string())?;
        let standby = PgCluster {
            data_dir,
            port,
            ca_file: self.ca_file.clone(),
            bin_dir: self.bin_dir.clone(),
        };
        standby.pg_ctl_start()?;
        STARTED
            .lock()
            .map_err(|e| e.to_string())?
            .push((standby.bin_dir.clone(), standby.data_dir.clone()));
        Ok(standby)
    }

    /// Promotes a standby to a primary and waits until it is one.
    pub fn promote(&self) -> Result<(), String> {
        let out = pg_command(&self.bin_dir, "pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-w", "-t", "60", "promote"])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() {
            return Err(format!(
                "pg_ctl promote: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(())
    }

    /// Stops the cluster (fast shutdown), e.g. to test what survives a restart.
    pub fn stop(&self) {
        let _ = pg_command(&self.bin_dir, "pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "fast", "-w", "stop"])
            .output();
    }

    /// Stops the cluster at once, as a crash would (`pg_ctl stop -m immediate`): no shutdown
    /// checkpoint, sessions cut.
    pub fn crash(&self) {
        let _ = pg_command(&self.bin_dir, "pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .args(["-m", "immediate", "-w", "stop"])
            .output();
    }

    /// Starts the cluster again after [`PgCluster::stop`].
    pub fn restart(&self) -> Result<(), String> {
        self.pg_ctl_start()
    }

    /// A connection string for a database of this cluster.
    pub fn url(&self, database: &str) -> String {
        format!("postgresql://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Connects to a database of this cluster.
    pub async fn connect(&self, database: &str) -> Client {
        connect(&self.url(database)).await
    }
}

/// Connects to a URL and drives the connection in the background.
pub async fn connect(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect to {url}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// A fresh database with the extension and the host tables.
#[derive(Debug)]
pub struct TestDb {
    /// The cluster it lives in.
    pub cluster: &'static PgCluster,
    /// Its name.
    pub name: String,
}

impl TestDb {
    /// Creates a new database in the shared cluster, with `infor_comm` and the host tables.
    pub async fn new() -> TestDb {
        let cluster = PgCluster::shared();
        let name = format!(
            "t{}_{}",
            std::process::id(),
            DB_COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let admin = cluster.connect("postgres").await;
        admin
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("create database");
        let db = TestDb { cluster, name };
        let client = db.connect().await;
        client
            .batch_execute("CREATE EXTENSION infor_comm")
            .await
            .expect("CREATE EXTENSION infor_comm (is it installed? run the README's test command)");
        client
            .batch_execute(HOST_TABLES_SQL)
            .await
            .expect("host tables");
        db
    }

    /// Runs a file of hand-run SQL (`sql/…`, from the repository's root) with psql, its
    /// variables set (`-v name=value`); returns what it printed (unaligned, tuples only), and
    /// panics with psql's output when it fails.
    pub fn run_sql_file(&self, file: &str, variables: &[(&str, &str)]) -> String {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(file);
        let script =
            std::fs::read(&path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
        let mut command = pg_command(&pg_bin_dir(), "psql");
        command.args([
            "-X",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &self.cluster.port.to_string(),
            "-U",
            "postgres",
            "-d",
            &self.name,
        ]);
        for (name, value) in variables {
            command.args(["-v", &format!("{name}={value}")]);
        }
        let mut child = command
            .arg("-f")
            .arg("-")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start psql");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("psql's stdin");
            stdin.write_all(&script).expect("write the script to psql");
        }
        let output = child.wait_with_output().expect("psql");
        assert!(
            output.status.success(),
            "psql -f {file} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A new session on this database.
    pub async fn connect(&self) -> Client {
        self.cluster.connect(&self.name).await
    }

    /// The connection string of this database.
    pub fn url(&self) -> String {
        self.cluster.url(&self.name)
    }
}

/// Inserts `count` thinking clients `C00001…` (in the wizard for 10 days before `as_of`, with
/// every id and a full snapshot), in one statement per table.
pub async fn insert_thinking_clients(client: &Client, count: i32, as_of: &str) {
    client
        .execute(
            "INSERT INTO product_migration_clients
             SELECT 'C' || lpad(n::text, 5, '0'), 'M' || n, 'in_wizard', 'OK'
               FROM generate_series(1, $1) n",
            &[&count],
        )
        .await
        .expect("clients");
    client
        .batch_execute(&format!(
            "INSERT INTO wizard_status_change_log
             SELECT organization_id, 'OK',
                    ('{as_of}'::timestamptz - interval '10 days') AT TIME ZONE 'Europe/Moscow'
               FROM product_migration_clients;
             INSERT INTO clients_back_system_ids
             SELECT mdm_id, 'ibso', '9' || mdm_id FROM product_migration_clients;
             INSERT INTO clientsnapshot
             SELECT organization_id, '1200009193', '1231200000844', '120001001', NULL
               FROM product_migration_clients;"
        ))
        .await
        .expect("host rows");
}
