//! The simulator's command-line flags, and what follows from them: the two queues' names and
//! the push delay.

use clap::Parser;
use std::time::Duration;

/// The simulator's flags.
#[derive(Parser, Debug, Clone)]
#[command(
    name = "infor-crm-sim",
    version,
    about = "A simulator of InforCRM for demos and tests"
)]
pub struct Args {
    /// AMQP URL of the broker; the nodes of a cluster as a list separated by commas (after a
    /// failure, the next session opens on the next node).
    #[arg(long, env = "AMQP_URL", hide_env_values = true)]
    pub amqp_url: String,
    /// Database with infor_comm, to read the client reactions from.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// The environment name (%%Vars/Zone%%) both queue names start with, as in the contract.
    #[arg(long, env = "INFOR_ZONE")]
    pub zone: Option<String>,
    /// The queue the requests come from (default:
    /// <zone>.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq).
    #[arg(long, env = "INFOR_OUTBOUND_QUEUE")]
    pub outbound_queue: Option<String>,
    /// The queue the replies and pushes go to (default:
    /// <zone>.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq).
    #[arg(long, env = "INFOR_INBOUND_QUEUE")]
    pub inbound_queue: Option<String>,
    /// Share of requests answered with statusCode 1 (client not found).
    #[arg(long, default_value_t = 0.05)]
    pub rate_not_found: f64,
    /// Share of requests answered with statusCode 2 (other error).
    #[arg(long, default_value_t = 0.03)]
    pub rate_error: f64,
    /// Delay between a created task's reply and its push (500ms, 2s, 1.5m, 1h; a bare number
    /// is seconds).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub push_delay: Duration,
    /// Declare both queues (durable) at start.
    #[arg(long)]
    pub declare_queues: bool,
    /// Declare quorum queues (replicated over a RabbitMQ cluster) instead of classic ones.
    #[arg(long)]
    pub quorum_queues: bool,
    /// Requests the broker hands over before they are acked (AMQP prefetch). A request is
    /// acked once its reply is confirmed, so this bounds the replies in flight: keep it at
    /// least --in-flight, for the replies to fill the pipeline; the default, twice that, keeps
    /// requests at hand while the acks make room for more.
    #[arg(long, default_value_t = 1024)]
    pub prefetch: u16,
    /// Replies and pushes published and not yet confirmed by the broker, at most. The
    /// simulator publishes without waiting for each confirm (a broker round trip and a write to
    /// its disk); a request is acked, and its task's push scheduled, once its reply is
    /// confirmed.
    #[arg(long, env = "CRM_SIM_IN_FLIGHT", default_value_t = 512,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub in_flight: u16,
    /// Appends a line to this file for each request received and each reply and push the
    /// broker confirmed (tab-separated: `request <requestID> <redelivered 0|1>`,
    /// `reply <message id> <requestID>`, `push <message id>`), for tests that count what was
    /// sent against what was applied.
    #[arg(long, value_name = "FILE")]
    pub journal: Option<std::path::PathBuf>,
}

impl Args {
    /// The two queues these flags name.
    pub fn queues(&self) -> Result<Queues, String> {
        Queues::named(
            self.zone.as_deref(),
            self.outbound_queue.as_deref(),
            self.inbound_queue.as_deref(),
        )
    }
}

/// What follows the zone in the name of the queue the requests come from (docs/contract.md,
/// "Queues"): VTB_Client → TIBCO.
const REQUESTS_QUEUE_AFTER_ZONE: &str =
    "Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq";

/// What follows the zone in the name of the queue the replies and pushes go to: TIBCO →
/// VTB_Client.
const ANSWERS_QUEUE_AFTER_ZONE: &str =
    "Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq";

/// The simulator's two queues, named from the relay's point of view as the contract names
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queues {
    /// The outbound queue: the requests the simulator answers come from it.
    pub outbound: String,
    /// The inbound queue: the simulator's replies and pushes go to it.
    pub inbound: String,
}

impl Queues {
    /// The queues of `--zone`, `--outbound-queue` and `--inbound-queue`: a name given outright
    /// wins; a name not given is the contract's for the zone (blank counts as no zone); with
    /// neither, it is an error that names the flags to pass.
    pub fn named(
        zone: Option<&str>,
        outbound: Option<&str>,
        inbound: Option<&str>,
    ) -> Result<Queues, String> {
        let zone = zone.map(str::trim).filter(|zone| !zone.is_empty());
        let name = |given: Option<&str>, after_zone: &str, side: &str| match (given, zone) {
            (Some(given), _) => Ok(given.to_string()),
            (None, Some(zone)) => Ok(format!("{zone}.{after_zone}")),
            (None, None) => Err(format!("no {side} queue: pass --zone or --{side}-queue")),
        };
        Ok(Queues {
            outbound: name(outbound, REQUESTS_QUEUE_AFTER_ZONE, "outbound")?,
            inbound: name(inbound, ANSWERS_QUEUE_AFTER_ZONE, "inbound")?,
        })
    }
}

/// The units a duration may end with, and their length in seconds. `ms` comes before `s`,
/// which it ends with.
const UNITS: [(&str, f64); 5] = [
    ("ms", 0.001),
    ("s", 1.0),
    ("min", 60.0),
    ("m", 60.0),
    ("h", 3600.0),
];

/// Reads a duration: a positive number followed by `ms`, `s`, `m` (or `min`) or `h`, with or
/// without a space between; a bare number is seconds (`500ms`, `2s`, `2`, `1.5 m`, `1h`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, seconds_per_unit) = UNITS
        .iter()
        .find_map(|&(unit, seconds)| Some((text.strip_suffix(unit)?, seconds)))
        .unwrap_or((text, 1.0));
    let number = number.trim_end();
    // Digits and one point only: f64's parser would also take "inf", "NaN", "1e3" and signs.
    let plain = !number.is_empty()
        && number.chars().all(|c| c.is_ascii_digit() || c == '.')
        && number.matches('.').count() <= 1;
    let value = match number.parse::<f64>() {
        Ok(value) if plain => value,
        _ => {
            return Err(format!(
                "\"{text}\" is not a duration: write a number and ms, s, m or h (500ms, 2s, 1h)"
            ))
        }
    };
    match Duration::try_from_secs_f64(value * seconds_per_unit) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err(format!("\"{text}\" is not a positive duration")),
        Err(_) => Err(format!("\"{text}\" is too long a duration")),
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn durations_are_read_with_their_unit() {
        for (text, expected) in [
            ("250ms", Duration::from_millis(250)),
            ("200ms", Duration::from_millis(200)),
            ("2s", Duration::from_secs(2)),
            ("2", Duration::from_secs(2)),
            (" 1.5s ", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1 h", Duration::from_secs(3600)),
            ("0.5", Duration::from_millis(500)),
        ] {
            assert_eq!(parse_duration(text), Ok(expected), "{text}");
        }
    }

    #[test]
    fn what_is_not_a_positive_duration_is_refused() {
        for text in [
            "",
            "s",
            "0",
            "0ms",
            "-1s",
            "soon",
            "5 fortnights",
            "1e3s",
            "inf",
            "NaN",
            "1.2.3s",
            "2d",
        ] {
            assert!(parse_duration(text).is_err(), "{text:?} was taken");
        }
        assert!(parse_duration("99999999999999999999999h")
            .expect_err("too long")
            .contains("too long"));
    }

    #[test]
    fn queue_names_follow_the_zone() {
        let queues = Queues::named(Some("PROD"), None, None).expect("queues");
        assert_eq!(
            queues,
            Queues {
                outbound: "PROD.Application.Send.Communication.Migration.Async.VTB_Client.TIBCO.Rq"
                    .into(),
                inbound: "PROD.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq"
                    .into(),
            }
        );
        assert_eq!(
            Queues::named(Some(" T1 "), None, None)
                .expect("queues")
                .inbound,
            "T1.Application.Send.Communication.Migration.Async.TIBCO.VTB_Client.Rq"
        );
    }

    #[test]
    fn a_queue_given_outright_wins_over_the_zone() {
        let queues = Queues::named(Some("T"), Some("requests"), None).expect("queues");
        assert_eq!(queues.outbound, "requests");
        assert!(queues.inbound.starts_with("T.Application."));
        let queues = Queues::named(None, Some("requests"), Some("answers")).expect("queues");
        assert_eq!(
            (queues.outbound.as_str(), queues.inbound.as_str()),
            ("requests", "answers")
        );
    }

    #[test]
    fn without_a_zone_both_queues_must_be_given() {
        assert_eq!(
            Queues::named(None, Some("requests"), None),
            Err("no inbound queue: pass --zone or --inbound-queue".into())
        );
        assert_eq!(
            Queues::named(Some("  "), None, Some("answers")),
            Err("no outbound queue: pass --zone or --outbound-queue".into())
        );
    }

    #[test]
    fn the_flags_parse() {
        let args = Args::try_parse_from([
            "infor-crm-sim",
            "--amqp-url",
            "amqp://127.0.0.1:5672/%2f",
            "--database-url",
            "postgresql://localhost/bank",
            "--zone",
            "T",
            "--outbound-queue",
            "requests",
            "--inbound-queue",
            "answers",
            "--push-delay",
            "200ms",
            "--declare-queues",
            "--prefetch",
            "8",
            "--in-flight",
            "4",
            "--rate-not-found",
            "0.1",
            "--rate-error",
            "0.2",
        ])
        .expect("flags");
        assert_eq!(args.push_delay, Duration::from_millis(200));
        assert!(args.declare_queues);
        assert_eq!(
            (
                args.prefetch,
                args.in_flight,
                args.rate_not_found,
                args.rate_error
            ),
            (8, 4, 0.1, 0.2)
        );
        assert_eq!(args.queues().expect("queues").outbound, "requests");
        assert!(Args::try_parse_from([
            "infor-crm-sim",
            "--amqp-url",
            "amqp://mq",
            "--database-url",
            "postgresql://db",
            "--push-delay",
            "soon",
        ])
        .is_err());
    }

    #[test]
    fn by_default_the_prefetch_covers_the_pipeline_which_is_never_empty() {
        let base = [
            "infor-crm-sim",
            "--amqp-url",
            "amqp://mq",
            "--database-url",
            "postgresql://db",
        ];
        let args = Args::try_parse_from(base).expect("flags");
        assert_eq!(args.in_flight, 512);
        assert!(args.prefetch >= args.in_flight, "{args:?}");
        for refused in ["0", "-1", "70000", "many"] {
            let flags = base.iter().copied().chain(["--in-flight", refused]);
            assert!(Args::try_parse_from(flags).is_err(), "{refused} was taken");
        }
    }
}
