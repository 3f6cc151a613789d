//! The inbound baseline: consumes replies with manual acks and the relay's prefetch, runs one
//! autocommitted `UPDATE` of the task row per reply (by `replyUID`), acks it after the commit,
//! and stops after `--count` messages. Timed from the start of the process's work (connected)
//! to the last ack.

use clap::Parser;
use futures_util::StreamExt;
use infor_bench::{connect_broker, connect_database, report, BenchError};
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use serde_json::Value;
use std::time::Instant;

/// Flags.
#[derive(Parser, Debug)]
struct Args {
    /// The database with infor_comm's task table (as a superuser).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The broker.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// The queue holding the replies.
    #[arg(long)]
    queue: String,
    /// Messages to consume before stopping.
    #[arg(long)]
    count: usize,
    /// Unacknowledged messages the broker may hand over at once (the relay's default).
    #[arg(long, default_value_t = 32)]
    prefetch: u16,
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    let started = Instant::now();
    let database = connect_database(&args.database_url).await?;
    let update = database
        .prepare(
            "UPDATE infor_comm.infor_communication_task
                SET infor_response_id = $1, status_code = $2, task_id = $3
              WHERE vtbc_request_id = $4",
        )
        .await?;
    let connection = connect_broker(&args.amqp_url, "bare-consumer").await?;
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(args.prefetch, BasicQosOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            args.queue.as_str().into(),
            "bare-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut done = 0usize;
    while done < args.count {
        let Some(delivery) = consumer.next().await else {
            return Err(format!("the consumer ended after {done} messages").into());
        };
        let delivery = delivery?;
        let reply: Value = serde_json::from_slice(&delivery.data)?;
        let field = |key: &str| reply.get(key).and_then(Value::as_str).map(str::to_string);
        database
            .execute(
                &update,
                &[
                    &field("requestID"),
                    &field("statusCode"),
                    &field("taskID"),
                    &field("replyUID"),
                ],
            )
            .await?;
        delivery.ack(BasicAckOptions::default()).await?;
        done += 1;
    }
    report(done, started.elapsed());
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
