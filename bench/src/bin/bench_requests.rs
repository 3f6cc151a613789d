//! Publishes `--count` requests as the extension renders them (docs/contract.md, "The
//! request": every key in the contract's order, a lower-case UUID as `requestID` and message
//! id, all four back-system ids) to `--queue`, with the relay's properties and publisher
//! confirms. Feeds the simulator's benchmark (`scripts/bench-crm-sim`); no database needed.
//!
//! With `--wait-for N` it publishes nothing: it waits until `--queue` holds N messages, asking
//! the broker every 20 ms on one connection, where `rabbitmqctl` would start a virtual
//! machine for each look and take a share of the CPU being measured.

use clap::Parser;
use infor_bench::{connect_broker, publish_requests, BenchError};
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::Channel;
use std::time::{Duration, Instant};

/// Flags.
#[derive(Parser, Debug)]
struct Args {
    /// The broker.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The queue to fill, the simulator's outbound queue (declared durable and emptied first);
    /// with --wait-for, the queue to watch.
    #[arg(long)]
    queue: String,
    /// Requests to publish.
    #[arg(long, default_value_t = 100_000)]
    count: u64,
    /// Confirms outstanding at most.
    #[arg(long, default_value_t = 1000)]
    in_flight: usize,
    /// Publish nothing; wait until --queue (declared durable if missing) holds this many
    /// messages, ready for a consumer.
    #[arg(long)]
    wait_for: Option<u32>,
    /// With --wait-for: give up after this many seconds.
    #[arg(long, default_value_t = 1800)]
    wait_seconds: u64,
}

/// How often `--wait-for` counts the messages.
const POLL: Duration = Duration::from_millis(20);

/// The request of the `n`th generated client, as `infor_comm.build_request` renders it: its
/// `requestID` (also the message id) and its JSON.
fn request(n: u64) -> (String, String) {
    let request_id = format!("00000000-0000-4000-8000-{n:012}");
    let organization_id = 100_000_000 + n;
    let body = format!(
        concat!(
            r#"{{"requestID":"{request_id}","dt":"2026-11-24T10:00:00.000+03:00","#,
            r#""clientIdList":[{{"systemCode":"vtb_mdm_id","id":"M{n}"}},"#,
            r#"{{"systemCode":"ehd_id","id":"{organization_id}"}},"#,
            r#"{{"systemCode":"IBSO","id":"{organization_id}"}},"#,
            r#"{{"systemCode":"INFOR","id":"A{n}"}}],"#,
            r#""inn":"1200009193","ogrn":"1231200000844","kpp":"120001001","okpo":"02847208"}}"#
        ),
        request_id = request_id,
        n = n,
        organization_id = organization_id,
    );
    (request_id, body)
}

/// Waits until `queue` holds `count` messages ready, at most `limit`.
async fn wait_for(
    channel: &Channel,
    queue: &str,
    count: u32,
    limit: Duration,
) -> Result<(), BenchError> {
    let started = Instant::now();
    loop {
        let held = channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions::durable(),
                FieldTable::default(),
            )
            .await?
            .message_count();
        if held >= count {
            return Ok(());
        }
        if started.elapsed() > limit {
            return Err(format!("{queue} holds {held} of {count} messages after {limit:?}").into());
        }
        tokio::time::sleep(POLL).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    if let Some(count) = args.wait_for {
        let connection = connect_broker(&args.amqp_url, "bench-requests").await?;
        let channel = connection.create_channel().await?;
        let limit = Duration::from_secs(args.wait_seconds);
        wait_for(&channel, &args.queue, count, limit).await?;
        let _ = connection.close(200, "done".into()).await;
        return Ok(());
    }
    let messages: Vec<(String, String)> = (1..=args.count).map(request).collect();
    publish_requests(
        &args.amqp_url,
        "bench-requests",
        &args.queue,
        &messages,
        args.in_flight,
    )
    .await
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn a_generated_request_passes_the_simulators_check() {
        let (request_id, body) = request(7);
        assert_eq!(request_id, "00000000-0000-4000-8000-000000000007");
        let checked = infor_crm_sim::contract::check_request(body.as_bytes()).expect(&body);
        assert_eq!(checked.request_id, request_id);
        assert_eq!(checked.ehd_id, "100000007");
    }
}
