//! Publishes one reply (statusCode 0, with a taskID) per task row of the database to each
//! `--queue`, as InforCRM would answer, with publisher confirms. Feeds the inbound benchmark.

use clap::Parser;
use infor_bench::{
    confirm_channel, connect_broker, connect_database, declare, publish_confirmed, report,
    BenchError,
};
use lapin::BasicProperties;
use std::time::Instant;

/// Flags.
#[derive(Parser, Debug)]
struct Args {
    /// The database whose task rows are answered (as a superuser).
    #[arg(long, env = "DATABASE_URL")]
    database_url: String,
    /// The broker.
    #[arg(long, env = "AMQP_URL")]
    amqp_url: String,
    /// Queues to fill (each gets every reply); declared durable and emptied first.
    #[arg(long, required = true)]
    queue: Vec<String>,
}

#[tokio::main]
async fn main() -> Result<(), BenchError> {
    let args = Args::parse();
    let database = connect_database(&args.database_url).await?;
    let rows = database
        .query(
            "SELECT vtbc_request_id, row_number() OVER (ORDER BY vtbc_request_id)
               FROM infor_comm.infor_communication_task",
            &[],
        )
        .await?;
    let connection = connect_broker(&args.amqp_url, "bench-replies").await?;
    let channel = confirm_channel(&connection).await?;
    let started = Instant::now();
    let mut published = 0usize;
    for queue in &args.queue {
        declare(&channel, queue, true).await?;
        let replies = rows.iter().map(|row| {
            let reply_uid: String = row.get(0);
            let n: i64 = row.get(1);
            let body = serde_json::json!({
                "requestID": format!("00000000-0000-4000-8000-{n:012}"),
                "replyUID": reply_uid,
                "dt": "2026-11-24T10:00:00.000+03:00",
                "statusCode": "0",
                "taskID": format!("{}", 100_000_000 + n),
            })
            .to_string();
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(format!("reply-{n}").into());
            (properties, body)
        });
        let refused = publish_confirmed(&channel, queue, replies, 1000).await?;
        if refused > 0 {
            return Err(format!("{refused} replies were nacked or returned").into());
        }
        published += rows.len();
    }
    report(published, started.elapsed());
    let _ = connection.close(200, "done".into()).await;
    Ok(())
}
