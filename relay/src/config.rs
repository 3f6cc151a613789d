//! Command-line flags (each with an environment variable), and what follows from them.

use clap::{Parser, ValueEnum};
use std::net::SocketAddr;
use std::time::Duration;

/// The relay's configuration.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "infor-relay",
    version,
    about = "Publishes infor_comm's outbox to InforCRM's queue and applies InforCRM's replies and pushes"
)]
pub struct Config {
    /// PostgreSQL connection string of the bank's database (a role in infor_comm_relay). Or
    /// --database-url-file.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// A file holding the database's connection string (a systemd credential, say), instead
    /// of --database-url; one trailing newline is ignored.
    #[arg(long, env = "DATABASE_URL_FILE", conflicts_with = "database_url")]
    pub database_url_file: Option<std::path::PathBuf>,

    /// PEM file of the certificate authorities that may sign the database server's certificate,
    /// for a --database-url with sslmode=require (the system's trusted roots are used too).
    #[arg(long, env = "DATABASE_CA_FILE")]
    pub database_ca_file: Option<std::path::PathBuf>,

    /// AMQP 0-9-1 URL of the broker (amqp:// or amqps://). Or --amqp-url-file.
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: Option<String>,

    /// A file holding the broker's URL, instead of --amqp-url; one trailing newline is ignored.
    #[arg(long, env = "AMQP_URL_FILE", conflicts_with = "amqp_url")]
    pub amqp_url_file: Option<std::path::PathBuf>,

    /// The queue names: `--zone`, `--outbound-queue`, `--inbound-queue`.
    #[command(flatten)]
    pub queue_names: QueueNames,

    /// Outbox rows claimed per batch (the pipeline keeps up to --publish-window in flight).
    #[arg(long, env = "INFOR_BATCH_SIZE", default_value_t = 1000,
          value_parser = clap::value_parser!(i32).range(1..=10000))]
    pub batch_size: i32,

    /// How often the outbox is polled when no notification comes (e.g. 5s, 500ms).
    #[arg(long, env = "INFOR_POLL_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub poll_interval: Duration,

    /// The longest this relay holds a claimed batch: PostgreSQL ends a batch's transaction that
    /// waits longer, and its rows go to the other relays.
    #[arg(long, env = "INFOR_LEASE", default_value = "60s", value_parser = parse_duration)]
    pub lease: Duration,

    /// How long to wait for the broker's confirm of a published request.
    #[arg(long, env = "INFOR_CONFIRM_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub confirm_timeout: Duration,

    /// The longest the relay waits for any answer of the database (a statement, a batch's
    /// transaction, a connection's handshake); past it the connection is taken for dead (a
    /// silent network cut), closed and opened again. The TCP keepalives and TCP user timeout
    /// of the database connections are derived from it.
    #[arg(long, env = "INFOR_DATABASE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub database_timeout: Duration,

    /// The longest a shutdown (SIGTERM, SIGINT) waits for the work in flight; past it the relay
    /// exits anyway, leaving unconfirmed work for the next start, as a SIGKILL would. Keep it
    /// under systemd's TimeoutStopSec (90 s by default).
    #[arg(long, env = "INFOR_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,

    /// Requests published and awaiting the broker's confirm, at most; one more batch is claimed
    /// ahead while the window is full, and published as soon as confirms make room. At least
    /// --batch-size; at most 16 batches.
    #[arg(long, env = "INFOR_PUBLISH_WINDOW", default_value_t = 3000,
          value_parser = clap::value_parser!(u32).range(1..=100000))]
    pub publish_window: u32,

    /// Unacknowledged inbound messages the broker may hand this relay at once; half of them at
    /// most (rounded up) are applied in one transaction. With `--max-message-bytes`, it bounds
    /// the inbound bodies held in memory.
    #[arg(long, env = "INFOR_PREFETCH", default_value_t = 256,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub prefetch: u16,

    /// Largest inbound body applied, in bytes. A larger one is never held whole in memory: it is
    /// journaled as rejected with its size, SHA-256 and first 64 KiB, and acked.
    #[arg(long, env = "INFOR_MAX_MESSAGE_BYTES", default_value_t = 1_048_576,
          value_parser = clap::value_parser!(u64).range(1024..=1_073_741_824))]
    pub max_message_bytes: u64,

    /// Failed applies of one inbound message, while other messages apply, before it is set
    /// aside (journaled as rejected with its last error).
    #[arg(long, env = "INFOR_MAX_APPLY_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub max_apply_attempts: u32,

    /// Queue for a message that must be set aside when the database cannot even journal it
    /// (declared with --declare-queues). Without it, such a message stays in the inbound queue.
    #[arg(long, env = "INFOR_DEAD_LETTER_QUEUE")]
    pub dead_letter_queue: Option<String>,

    /// Address of the HTTP endpoint with /metrics, /health and /ready.
    #[arg(long, env = "INFOR_METRICS_ADDR", default_value = "127.0.0.1:19318")]
    pub metrics_addr: SocketAddr,

    /// Declare both queues (durable) at start, for RabbitMQ; by default they must exist.
    #[arg(long, env = "INFOR_DECLARE_QUEUES")]
    pub declare_queues: bool,

    /// The type of the queues --declare-queues declares: classic (one broker node) or quorum
    /// (replicated over a RabbitMQ cluster).
    #[arg(long, env = "INFOR_QUEUE_TYPE", value_enum, default_value_t = QueueType::Classic)]
    pub queue_type: QueueType,

    /// Longest pause between reconnection attempts.
    #[arg(long, env = "INFOR_MAX_BACKOFF", default_value = "30s", value_parser = parse_duration)]
    pub max_backoff: Duration,

    /// Log format.
    #[arg(long, env = "INFOR_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Let the database and AMQP client libraries log at debug and trace level, which prints
    /// statement parameters and message bodies (clients' tax ids). Off by default: without it no
    /// RUST_LOG setting can put client data into the log.
    #[arg(long, env = "INFOR_LOG_CLIENT_DATA")]
    pub log_client_data: bool,
}

/// The type of the queues the relay declares.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueType {
    /// RabbitMQ's classic queue: on one node.
    Classic,
    /// A quorum queue: replicated over the nodes of a RabbitMQ cluster (`x-queue-type`).
    Quorum,
}

impl QueueType {
    /// As RabbitMQ names it (`x-queue-type`).
    pub fn name(self) -> &'static str {
        match self {
            QueueType::Classic => "classic",
            QueueType::Quorum => "quorum",
        }
    }
}

/// How logs are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The two queue names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    /// Where requests go (VTB_Client → TIBCO).
    pub outbound: String,
    /// Where replies and pushes come from (TIBCO → VTB_Client).
    pub inbound: String,
}

impl Queues {
    /// The queue names of the contract for a zone.
    pub fn for_zone(zone: &str) -> Queues {
        Queues {
            outbound: format!(
                "{zone}.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq"
            ),
            inbound: format!(
                "{zone}.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq"
            ),
        }
    }

    /// The queue names from a zone and/or explicit overrides.
    pub fn resolve(
        zone: Option<&str>,
        outbound: Option<&str>,
        inbound: Option<&str>,
    ) -> Result<Queues, String> {
        let zone = zone.map(str::trim).filter(|z| !z.is_empty());
        let from_zone = zone.map(Queues::for_zone);
        let pick = |explicit: Option<&str>, derived: Option<String>, which: &str| {
            explicit
                .map(str::to_string)
                .or(derived)
                .ok_or_else(|| format!("no {which} queue: pass --zone or --{which}-queue"))
        };
        Ok(Queues {
            outbound: pick(
                outbound,
                from_zone.as_ref().map(|q| q.outbound.clone()),
                "outbound",
            )?,
            inbound: pick(inbound, from_zone.map(|q| q.inbound), "inbound")?,
        })
    }
}

/// The flags that name the queues (the simulator has its own, of the same names): a zone, or both
/// queue names, or a zone and one name that overrides its default.
#[derive(clap::Args, Debug, Clone)]
pub struct QueueNames {
    /// The environment name (%%Vars/Zone%%) that prefixes both queue names.
    #[arg(long, env = "INFOR_ZONE")]
    pub zone: Option<String>,

    /// The outbound queue (default: <zone>.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq).
    #[arg(long, env = "INFOR_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<String>,

    /// The inbound queue (default: <zone>.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq).
    #[arg(long, env = "INFOR_INBOUND_QUEUE")]
    pub inbound_queue: Option<String>,
}

impl QueueNames {
    /// The queue names these flags name.
    pub fn queues(&self) -> Result<Queues, String> {
        Queues::resolve(
            self.zone.as_deref(),
            self.outbound_queue.as_deref(),
            self.inbound_queue.as_deref(),
        )
    }
}

impl Config {
    /// The queue names this configuration names.
    pub fn queues(&self) -> Result<Queues, String> {
        self.queue_names.queues()
    }

    /// Reads `--database-url-file` and `--amqp-url-file` into `--database-url` and
    /// `--amqp-url`; says which setting is missing or which file cannot be read.
    pub fn read_secret_files(&mut self) -> Result<(), String> {
        self.database_url = Some(secret(
            self.database_url.take(),
            self.database_url_file.as_deref(),
            "DATABASE_URL",
        )?);
        self.amqp_url = Some(secret(
            self.amqp_url.take(),
            self.amqp_url_file.as_deref(),
            "AMQP_URL",
        )?);
        Ok(())
    }

    /// The database's connection string (empty before [`Config::read_secret_files`] when only
    /// its file is given).
    pub fn database_url(&self) -> &str {
        self.database_url.as_deref().unwrap_or_default()
    }

    /// The broker's URL (empty before [`Config::read_secret_files`] when only its file is
    /// given): one, or several separated by commas, the nodes of a cluster.
    pub fn amqp_url(&self) -> &str {
        self.amqp_url.as_deref().unwrap_or_default()
    }

    /// The broker's nodes: the URLs of `--amqp-url`, in order (a comma inside a user name or a
    /// password is written `%2C`).
    pub fn amqp_urls(&self) -> Vec<&str> {
        self.amqp_url()
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .collect()
    }

    /// The broker's nodes without their passwords, for the log.
    pub fn amqp_urls_shown(&self) -> String {
        self.amqp_urls()
            .into_iter()
            .map(redact)
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A secret given as the value of `name`, or in the file of `name`_FILE (clap refuses both).
fn secret(
    value: Option<String>,
    file: Option<&std::path::Path>,
    name: &str,
) -> Result<String, String> {
    let flag = name.to_ascii_lowercase().replace('_', "-");
    let text = match (value, file) {
        (Some(value), _) => value,
        (None, Some(file)) => std::fs::read_to_string(file).map_err(|error| {
            format!(
                "cannot read {name}_FILE (--{flag}-file) {}: {error}",
                file.display()
            )
        })?,
        (None, None) => {
            return Err(format!(
                "{name} (--{flag}) or {name}_FILE (--{flag}-file) is required"
            ))
        }
    };
    let text = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if text.trim().is_empty() {
        return Err(format!("{name} is empty"));
    }
    Ok(text.to_string())
}

/// Parses durations such as `250ms`, `5s`, `2m`, `1h`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("\"{text}\" is not a duration such as 500ms, 5s, 2m or 1h"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" | "min" => value * 60.0,
        "h" => value * 3600.0,
        other => return Err(format!("\"{other}\" is not a unit: use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds <= 0.0 {
        return Err(format!("\"{text}\" is not a positive duration"));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// Refuses a URL whose user name or password holds an unencoded `@`
/// (`postgresql://relay:p@ss@db/bank`): parsers disagree on where its host starts, so the relay
/// would try one host and log another. The message never shows the password.
pub fn check_at_signs(flag: &str, connection: &str) -> Result<(), String> {
    let Some((_, rest)) = connection.split_once("://") else {
        return Ok(());
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.matches('@').count() > 1 {
        return Err(format!(
            "invalid {flag} {}: more than one '@' before the host; write an '@' in the user name or \
             password as %40 (for example relay:p%40ss@db)",
            redact(connection)
        ));
    }
    Ok(())
}

/// A connection string with its password replaced by `***`, for logs and errors.
///
/// Handles URLs (`postgresql://user:secret@host/db`, `amqps://user:secret@host/vhost`) and
/// PostgreSQL's key=value form (`host=… password=secret`).
pub fn redact(connection: &str) -> String {
    if let Ok(mut url) = url::Url::parse(connection) {
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        let mut pairs: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        let secret = pairs
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("password"));
        if secret {
            for (key, value) in &mut pairs {
                if key.eq_ignore_ascii_case("password") {
                    *value = "***".into();
                }
            }
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        return url.to_string();
    }
    if let Some((scheme, rest)) = connection.split_once("://") {
        // A URL the parser refused (a bad port, say): hide everything between the user name
        // and the last '@', which may be more than the password but never less.
        if let Some(at) = rest.rfind('@') {
            let (userinfo, host) = rest.split_at(at);
            if let Some((user, _)) = userinfo.split_once(':') {
                return format!("{scheme}://{user}:***{host}");
            }
        }
        return connection.to_string();
    }
    redact_key_values(connection).unwrap_or_else(|| "<connection string hidden>".into())
}

/// PostgreSQL's `key=value` form, values bare or in single quotes (with `\'` and `\\`), with
/// the password's value replaced; `None` when the string is not in that form.
fn redact_key_values(connection: &str) -> Option<String> {
    let mut pairs = Vec::new();
    let mut chars = connection.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Some(pairs.join(" "));
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| !c.is_whitespace() && *c != '=') {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        chars.next_if_eq(&'=')?;
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            value.push('\'');
            loop {
                match chars.next()? {
                    '\\' => {
                        value.push('\\');
                        value.push(chars.next()?);
                    }
                    '\'' => break,
                    c => value.push(c),
                }
            }
            value.push('\'');
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                value.push(c);
            }
        }
        if key.eq_ignore_ascii_case("password") {
            value = "***".into();
        }
        pairs.push(format!("{key}={value}"));
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_secret_comes_from_its_value_or_its_file_without_the_trailing_newline() {
        assert_eq!(
            secret(Some("postgresql://a".into()), None, "DATABASE_URL"),
            Ok("postgresql://a".into())
        );
        let file = std::env::temp_dir().join(format!("infor-relay-secret-{}", std::process::id()));
        std::fs::write(&file, "amqp://b\n").expect("write");
        assert_eq!(secret(None, Some(&file), "AMQP_URL"), Ok("amqp://b".into()));
        std::fs::write(&file, "\n").expect("write");
        assert_eq!(
            secret(None, Some(&file), "AMQP_URL"),
            Err("AMQP_URL is empty".into())
        );
        std::fs::remove_file(&file).expect("remove");
        let missing = secret(None, Some(&file), "AMQP_URL").expect_err("missing");
        assert!(missing.contains("AMQP_URL_FILE") && missing.contains(&file.display().to_string()));
        assert_eq!(
            secret(None, None, "DATABASE_URL"),
            Err("DATABASE_URL (--database-url) or DATABASE_URL_FILE (--database-url-file) is required".into())
        );
    }

    #[test]
    fn an_unencoded_at_sign_in_the_password_is_refused_without_showing_it() {
        let error = check_at_signs(
            "--database-url",
            "postgresql://relay:p@ss@db.bank:5432/bank",
        )
        .expect_err("two '@'");
        assert!(
            error.contains("more than one '@' before the host"),
            "{error}"
        );
        assert!(error.contains("%40"), "{error}");
        assert!(!error.contains("p@ss") && !error.contains(":p@"), "{error}");
        assert_eq!(
            check_at_signs("--amqp-url", "amqp://relay:p%40ss@mq/%2f"),
            Ok(())
        );
        assert_eq!(check_at_signs("--amqp-url", "amqp://mq/vhost@x"), Ok(()));
    }

    use super::*;

    #[test]
    fn queue_names_follow_the_zone() {
        let queues = Queues::resolve(Some("PROD"), None, None).expect("queues");
        assert_eq!(
            queues.outbound,
            "PROD.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq"
        );
        assert_eq!(
            queues.inbound,
            "PROD.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq"
        );
    }

    #[test]
    fn queue_overrides_win_and_something_is_required() {
        let queues = Queues::resolve(Some("T"), Some("out"), None).expect("queues");
        assert_eq!(queues.outbound, "out");
        assert!(queues.inbound.starts_with("T."));
        assert_eq!(
            Queues::resolve(None, Some("out"), None).unwrap_err(),
            "no inbound queue: pass --zone or --inbound-queue"
        );
        assert!(Queues::resolve(None, Some("a"), Some("b")).is_ok());
    }

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("5"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 fortnights").is_err());
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(
            redact("postgresql://relay:s3cret@db.bank:5432/bank?sslmode=require"),
            "postgresql://relay:***@db.bank:5432/bank?sslmode=require"
        );
        assert_eq!(
            redact("amqps://user:pa%40ss@mq:5671/%2f"),
            "amqps://user:***@mq:5671/%2f"
        );
        assert_eq!(redact("amqp://127.0.0.1:5672"), "amqp://127.0.0.1:5672");
        assert_eq!(
            redact("host=db user=relay password=s3cret dbname=bank"),
            "host=db user=relay password=*** dbname=bank"
        );
        assert_eq!(
            redact("postgresql://db/bank?user=relay&password=s3cret"),
            "postgresql://db/bank?user=relay&password=***"
        );
    }

    #[test]
    fn passwords_are_redacted_from_strings_that_do_not_parse() {
        assert_eq!(
            redact("amqp://relay:s3cret@mq.bank:notaport/prod"),
            "amqp://relay:***@mq.bank:notaport/prod"
        );
        assert_eq!(
            redact("host=db password = 'my s3cret \\' word' user=relay"),
            "host=db password=*** user=relay"
        );
        assert_eq!(
            redact("host=db password='never closed s3cret"),
            "<connection string hidden>"
        );
    }
}
