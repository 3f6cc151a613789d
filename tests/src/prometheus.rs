//! Debian 12's Prometheus 2.42 (`prometheus`, `promtool`) and `prometheus-postgres-exporter`
//! 0.11.1 as child processes, for the alert tests, with the files the relay's package ships in
//! `packaging/prometheus/`. The binaries are the Debian packages' own, unpacked (not installed)
//! by `install_prometheus_tools` of scripts/lib.sh into `INFOR_PROMETHEUS_TOOLS`
//! (default `~/.cache/infor-comm/prometheus-tools`); the README's test command does that.

use crate::postgres::free_port;
use crate::processes::Process;
use serde_json::Value;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The environment variable that names the folder the tools are unpacked in.
pub const TOOLS_VAR: &str = "INFOR_PROMETHEUS_TOOLS";

/// The alerting rules the relay's package ships.
pub const RULES: &str = "infor-comm.rules.yml";
/// Their promtool unit tests.
pub const RULES_TEST: &str = "infor-comm.rules.test.yml";
/// The postgres_exporter queries the relay's package ships.
pub const EXPORTER_QUERIES: &str = "postgres-exporter-queries.yml";

/// The scrape job of the relays, as the rules expect it.
pub const RELAY_JOB: &str = "infor-relay";
/// The scrape job of the postgres_exporter that reads `infor_comm.health`, as the rules expect it.
pub const EXPORTER_JOB: &str = "infor-comm-postgres";

/// Where the tools are unpacked: `INFOR_PROMETHEUS_TOOLS`, else
/// `~/.cache/infor-comm/prometheus-tools` (scripts/lib.sh's default).
pub fn tools_dir() -> PathBuf {
    match std::env::var_os(TOOLS_VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()))
            .join(".cache/infor-comm/prometheus-tools"),
    }
}

/// The path of `prometheus`, `promtool` or `prometheus-postgres-exporter`; fails the test with
/// how to get it when it is missing.
pub fn tool(name: &str) -> PathBuf {
    let path = tools_dir().join("usr/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing. The alert tests run Debian 12's prometheus and \
         prometheus-postgres-exporter, unpacked without installing them: run \
         `bash -c 'source scripts/lib.sh; install_prometheus_tools'` (the README's test command, \
         scripts/test, does), or set {TOOLS_VAR} to a folder that has usr/bin/{name}",
        path.display()
    );
    path
}

/// A file of `packaging/prometheus/`.
pub fn shipped(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../packaging/prometheus")
        .join(file)
}

/// Reads a file of `packaging/prometheus/`.
pub fn read_shipped(file: &str) -> String {
    let path = shipped(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs promtool with `args`: its output when it exits 0, else its status and output.
pub fn promtool(args: &[&str]) -> Result<String, String> {
    let mut command = std::process::Command::new(tool("promtool"));
    command.args(args);
    crate::processes::run_to_end(command, &format!("promtool {}", args.join(" ")))
}

/// The names of the alerts of a rules file, in order (`- alert: NAME` lines).
pub fn alert_names(rules: &str) -> Vec<String> {
    rules
        .lines()
        .filter_map(|line| line.trim().strip_prefix("- alert:"))
        .map(|name| name.trim().to_string())
        .collect()
}

/// `rules` with every rule's `for:` replaced by `for_` (a test cannot wait minutes); also returns
/// how many were replaced.
pub fn with_for(rules: &str, for_: &str) -> (String, usize) {
    let mut replaced = 0;
    let mut out = String::with_capacity(rules.len());
    for line in rules.lines() {
        let indent = line.len() - line.trim_start().len();
        if line.trim_start().starts_with("for:") {
            replaced += 1;
            let _ = writeln!(out, "{}for: {for_}", &line[..indent]);
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    (out, replaced)
}

/// A plain HTTP/1.0 GET on 127.0.0.1 (no chunked body to decode); the status and the body.
pub async fn http_get(port: u16, path: &str) -> Result<(u16, String), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .map_err(|e| format!("connect to 127.0.0.1:{port}: {e}"))?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n");
        stream
            .write_all(request.as_bytes())
            .await
            .map_err(|e| format!("send to 127.0.0.1:{port}: {e}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .await
            .map_err(|e| format!("read from 127.0.0.1:{port}: {e}"))?;
        let response = String::from_utf8_lossy(&response).into_owned();
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP response from 127.0.0.1:{port}: {response:?}"))?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_string())
            .unwrap_or_default();
        Ok((status, body))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| format!("no answer from 127.0.0.1:{port}{path} within 10 s"))?
}

/// `text` percent-encoded for a URL's query.
pub fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// Waits up to `timeout` until `port` answers `path` with 200; false if it never did.
async fn wait_for_http(port: u16, path: &str, timeout: Duration) -> bool {
    crate::wait_until(timeout, || async {
        matches!(http_get(port, path).await, Ok((200, _)))
    })
    .await
}

/// An alert as Prometheus's `/api/v1/alerts` lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `alertname`.
    pub name: String,
    /// `pending` or `firing`.
    pub state: String,
    /// Its labels, `alertname` included.
    pub labels: serde_json::Map<String, Value>,
    /// Its annotations.
    pub annotations: serde_json::Map<String, Value>,
}

impl Alert {
    /// True when the alert has every label of `labels` with that value.
    pub fn has_labels(&self, labels: &[(&str, &str)]) -> bool {
        labels
            .iter()
            .all(|(key, value)| self.labels.get(*key).and_then(Value::as_str) == Some(*value))
    }
}

/// A Prometheus server of the test's own: its own port, configuration and storage, scraping
/// and evaluating every second. Killed, and its folder removed, when dropped.
#[derive(Debug)]
pub struct Prometheus {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    process: Process,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus with `rules` (a rules file's text) and one scrape job per entry of
    /// `jobs` (its name and its targets, `host:port`), scrape and evaluation intervals of 1 s;
    /// waits until it is ready.
    pub async fn start(jobs: &[(&str, Vec<String>)], rules: &str) -> Prometheus {
        let port = free_port();
        let dir = std::env::temp_dir().join(format!(
            "infor-comm-prometheus-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).expect("Prometheus's folder");
        let rules_path = dir.join("rules.yml");
        std::fs::write(&rules_path, rules).expect("the rules file");
        let mut config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {}\nscrape_configs:\n",
            rules_path.display()
        );
        for (job, targets) in jobs {
            let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
            let _ = write!(
                config,
                "  - job_name: {job}\n    static_configs:\n      - targets: [{}]\n",
                targets.join(", ")
            );
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, &config).expect("the configuration");
        let process = Process::start_program(
            "prometheus",
            &tool("prometheus"),
            &[
                format!("--config.file={}", config_path.display()),
                format!("--storage.tsdb.path={}", dir.join("data").display()),
                format!("--web.listen-address=127.0.0.1:{port}"),
            ],
            &[],
        );
        let prometheus = Prometheus { port, process, dir };
        assert!(
            wait_for_http(port, "/-/ready", Duration::from_secs(60)).await,
            "Prometheus did not become ready on 127.0.0.1:{port}:\n{}\nits configuration:\n{config}",
            prometheus.process.output()
        );
        prometheus
    }

    /// GET on the HTTP API: the `data` of a successful answer.
    pub async fn api(&self, path: &str) -> Result<Value, String> {
        let (status, body) = http_get(self.port, path).await?;
        let json: Value = serde_json::from_str(&body)
            .map_err(|e| format!("{path}: HTTP {status}, not JSON ({e}): {body}"))?;
        if status != 200 || json["status"] != "success" {
            return Err(format!("{path}: HTTP {status}: {body}"));
        }
        Ok(json["data"].clone())
    }

    /// The result of an instant query (`data.result`).
    pub async fn query(&self, promql: &str) -> Result<Vec<Value>, String> {
        let data = self
            .api(&format!("/api/v1/query?query={}", url_encode(promql)))
            .await?;
        Ok(data["result"].as_array().cloned().unwrap_or_default())
    }

    /// True when an instant query returns at least one sample.
    pub async fn has_result(&self, promql: &str) -> bool {
        self.query(promql).await.is_ok_and(|r| !r.is_empty())
    }

    /// The active alerts (pending and firing).
    pub async fn alerts(&self) -> Result<Vec<Alert>, String> {
        let data = self.api("/api/v1/alerts").await?;
        let alerts = data["alerts"].as_array().cloned().unwrap_or_default();
        Ok(alerts
            .iter()
            .map(|alert| Alert {
                name: alert["labels"]["alertname"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
                state: alert["state"].as_str().unwrap_or_default().to_string(),
                labels: alert["labels"].as_object().cloned().unwrap_or_default(),
                annotations: alert["annotations"]
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect())
    }

    /// What Prometheus sees, for a failing test: its targets' health, its rules' health, the
    /// active alerts, and the end of its log.
    pub async fn report(&self) -> String {
        let mut report = String::new();
        match self.api("/api/v1/targets").await {
            Ok(data) => {
                for target in data["activeTargets"].as_array().into_iter().flatten() {
                    let _ = writeln!(
                        report,
                        "target {} {}: {} (last error {:?}, last scrape {})",
                        target["labels"]["job"],
                        target["scrapeUrl"],
                        target["health"],
                        target["lastError"],
                        target["lastScrape"]
                    );
                }
            }
            Err(e) => {
                let _ = writeln!(report, "targets: {e}");
            }
        }
        let series =
            r#"{__name__=~"up|infor_relay_ready|infor_relay_connection_up|infor_comm_health_.*"}"#;
        match self.query(series).await {
            Ok(samples) => {
                for sample in samples {
                    let _ = writeln!(report, "series {} = {}", sample["metric"], sample["value"]);
                }
            }
            Err(e) => {
                let _ = writeln!(report, "series: {e}");
            }
        }
        match self.api("/api/v1/rules").await {
            Ok(data) => {
                for group in data["groups"].as_array().into_iter().flatten() {
                    for rule in group["rules"].as_array().into_iter().flatten() {
                        let _ = writeln!(
                            report,
                            "rule {}: {} {}, health {} {}",
                            rule["name"],
                            rule["state"],
                            rule["query"],
                            rule["health"],
                            rule["lastError"]
                        );
                    }
                }
            }
            Err(e) => {
                let _ = writeln!(report, "rules: {e}");
            }
        }
        match self.api("/api/v1/alerts").await {
            Ok(data) => {
                let _ = writeln!(report, "alerts: {data}");
            }
            Err(e) => {
                let _ = writeln!(report, "alerts: {e}");
            }
        }
        let log = self.process.output();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        let _ = writeln!(
            report,
            "the end of Prometheus's log:\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
        report
    }

    /// Waits up to `timeout` until the alert `name` with `labels` is firing; returns it and how
    /// long it took. On timeout, fails the test with what Prometheus saw and `context()` (the
    /// relay's output, say).
    pub async fn expect_firing(
        &self,
        name: &str,
        labels: &[(&str, &str)],
        timeout: Duration,
        context: impl Fn() -> String,
    ) -> (Alert, Duration) {
        let start = Instant::now();
        let deadline = start + timeout;
        loop {
            let alerts = self.alerts().await.unwrap_or_default();
            if let Some(alert) = alerts
                .into_iter()
                .find(|a| a.name == name && a.state == "firing" && a.has_labels(labels))
            {
                return (alert, start.elapsed());
            }
            if Instant::now() >= deadline {
                panic!(
                    "the alert {name} {labels:?} was not firing within {timeout:?}.\n{}\n{}",
                    self.report().await,
                    context()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Fails the test, with what Prometheus saw and `context()`, if any of `names` is active
    /// (pending or firing).
    pub async fn expect_inactive(&self, names: &[&str], context: impl Fn() -> String) {
        let alerts = match self.alerts().await {
            Ok(alerts) => alerts,
            Err(e) => panic!("{e}\n{}", self.report().await),
        };
        let active: Vec<&Alert> = alerts
            .iter()
            .filter(|a| names.contains(&a.name.as_str()))
            .collect();
        assert!(
            active.is_empty(),
            "alerts active that should not be: {active:#?}\n{}\n{}",
            self.report().await,
            context()
        );
    }

    /// Waits up to `timeout` until the instant query `promql` returns a sample; on timeout fails
    /// the test with what Prometheus saw and `context()`.
    pub async fn expect_result(
        &self,
        promql: &str,
        timeout: Duration,
        context: impl Fn() -> String,
    ) {
        if !crate::wait_until(timeout, || self.has_result(promql)).await {
            panic!(
                "{promql} returned nothing within {timeout:?}; it returns {:?}.\n{}\n{}",
                self.query(promql).await,
                self.report().await,
                context()
            );
        }
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        self.process.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A `prometheus-postgres-exporter` with the shipped queries, on a port of its own.
#[derive(Debug)]
pub struct PostgresExporter {
    /// Its HTTP port on 127.0.0.1.
    pub port: u16,
    /// The process.
    pub process: Process,
}

impl PostgresExporter {
    /// Starts the exporter on `data_source_name` (its `DATA_SOURCE_NAME`) with the queries file
    /// `queries` (`--extend.query-path`); waits until it answers `/metrics`.
    pub async fn start(data_source_name: &str, queries: &Path) -> PostgresExporter {
        let port = free_port();
        let process = Process::start_program(
            "postgres-exporter",
            &tool("prometheus-postgres-exporter"),
            &[
                format!("--web.listen-address=127.0.0.1:{port}"),
                format!("--extend.query-path={}", queries.display()),
            ],
            &[("DATA_SOURCE_NAME", data_source_name.to_string())],
        );
        let exporter = PostgresExporter { port, process };
        assert!(
            wait_for_http(port, "/metrics", Duration::from_secs(30)).await,
            "postgres_exporter did not answer on 127.0.0.1:{port}: {}",
            exporter.process.output()
        );
        exporter
    }

    /// Its `/metrics`, or why not.
    pub async fn metrics(&self) -> String {
        match http_get(self.port, "/metrics").await {
            Ok((_, body)) => body,
            Err(e) => e,
        }
    }

    /// Its scrape target, `127.0.0.1:port`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}
