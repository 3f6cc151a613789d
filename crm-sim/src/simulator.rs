//! The simulator's loop: consume the requests, answer each on the inbound queue, and push the
//! outcome of each created task after `--push-delay`; reconnect to the broker when it fails,
//! keeping the pushes still due.

use crate::answers::{Answers, DueTask};
use crate::args::Args;
use crate::contract::{now_dt, push, reply};
use crate::reactions::load_reactions;
use infor_relay::backoff::Backoff;
use infor_relay::broker::{Broker, BrokerError, Incoming, Outgoing, PublishOutcome, Publisher};
use infor_relay::config::redact;
use infor_relay::errors::Chain;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinSet;

async fn send(
    publisher: &Publisher,
    queue: &str,
    id: &str,
    body: &serde_json::Value,
) -> Result<(), String> {
    let payload = body.to_string();
    match publisher
        .publish_one(
            queue,
            Outgoing {
                message_id: id,
                payload: payload.as_bytes(),
            },
            Duration::from_secs(30),
        )
        .await
    {
        Ok(PublishOutcome::Confirmed) => Ok(()),
        Ok(
            PublishOutcome::Refused(reason)
            | PublishOutcome::TimedOut(reason)
            | PublishOutcome::Unroutable(reason),
        ) => Err(reason),
        Err(error) => Err(Chain(&error).to_string()),
    }
}

/// Answers one request; returns the task to push later, the first time its reply is sent.
async fn answer(
    answers: &mut Answers,
    publisher: &Publisher,
    queue: &str,
    message: &Incoming,
) -> Result<Option<DueTask>, String> {
    let Some(answer) = answers.answer(&message.body) else {
        return Ok(None);
    };
    let body = reply(
        &answer.crm_request_id,
        &answer.reply_uid,
        &now_dt(),
        &answer.outcome,
    );
    send(publisher, queue, &answer.crm_request_id, &body).await?;
    // The push of a task is scheduled once, after its reply was confirmed.
    Ok(answers.replied(&answer.reply_uid))
}

/// A push that is due, with its message id.
type DuePush = (String, serde_json::Value);

/// Runs the simulator until SIGTERM or SIGINT, then sends the pushes still due and returns.
pub async fn run(args: Args) -> Result<(), String> {
    let queues = args.queue_names.queues()?;
    let reactions = Arc::new(load_reactions(&args.database_url).await?);
    if reactions.is_empty() {
        return Err("infor_comm.client_reaction is empty".into());
    }
    // Pushes wait in their own tasks and come back here when due, so that they are sent with
    // whatever connection is current, and kept while the broker is away.
    let (due_sender, mut due) = tokio::sync::mpsc::unbounded_channel::<DuePush>();
    let mut unsent: Vec<DuePush> = Vec::new();
    let mut answers = Answers::new(args.rate_not_found, args.rate_error);
    let mut scheduled = JoinSet::new();
    let shutdown = infor_relay::shutdown::signal();
    tokio::pin!(shutdown);
    let mut stopping = false;
    let mut backoff = Backoff::new(Duration::from_millis(200), Duration::from_secs(5));
    loop {
        let broker = match Broker::connect(&args.amqp_url, "infor-crm-sim").await {
            Ok(broker) => broker,
            Err(error) => {
                tracing::warn!(error = %Chain(&error), url = %redact(&args.amqp_url), "cannot connect to the broker; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff.next_delay()) => continue,
                    _ = &mut shutdown => return Ok(()),
                }
            }
        };
        let session = async {
            if args.declare_queues {
                broker
                    .declare_queues(&[&queues.outbound, &queues.inbound])
                    .await?;
            }
            let publisher = broker.publisher().await?;
            let consumer = broker
                .consumer(&queues.outbound, args.prefetch, "infor-crm-sim")
                .await?;
            Ok::<_, BrokerError>((publisher, consumer))
        };
        let (publisher, mut consumer) = match session.await {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(error = %Chain(&error), "broker session failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
                continue;
            }
        };
        backoff.reset();
        tracing::info!(requests = %queues.outbound, answers = %queues.inbound, "infor-crm-sim ready");
        // Pushes that could not be sent before.
        while let Some((id, body)) = unsent.pop() {
            if let Err(error) = send(&publisher, &queues.inbound, &id, &body).await {
                tracing::warn!(%error, "push not sent; kept for the next connection");
                unsent.push((id, body));
                break;
            }
        }
        let mut watchdog = tokio::time::interval(Duration::from_secs(1));
        loop {
            if stopping && scheduled.is_empty() && unsent.is_empty() && due.is_empty() {
                broker.close().await;
                return Ok(());
            }
            tokio::select! {
                message = consumer.next(), if !stopping => {
                    let message = match message {
                        Some(Ok(message)) => message,
                        Some(Err(error)) => { tracing::warn!(error = %Chain(&error), "broker: consumer failed"); break; }
                        None => { tracing::warn!("broker closed the consumer"); break; }
                    };
                    match answer(&mut answers, &publisher, &queues.inbound, &message).await {
                        Ok(Some(task)) => {
                            let (reactions, sender, delay) = (reactions.clone(), due_sender.clone(), args.push_delay);
                            scheduled.spawn(async move {
                                tokio::time::sleep(delay).await;
                                let reaction = &reactions[rand::rng().random_range(0..reactions.len())];
                                let now = now_dt();
                                let body = push(&task.crm_request_id, &task.task_id, &now, &now[..10], reaction,
                                                &task.application_id);
                                let _ = sender.send((task.message_id, body));
                            });
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::warn!(%error, "reply not sent; the request goes back to the queue");
                            let _ = message.requeue().await;
                            break;
                        }
                    }
                    if message.ack().await.is_err() {
                        break;
                    }
                }
                Some((id, body)) = due.recv() => {
                    if let Err(error) = send(&publisher, &queues.inbound, &id, &body).await {
                        tracing::warn!(%error, "push not sent; kept for the next connection");
                        unsent.push((id, body));
                        break;
                    }
                }
                Some(_) = scheduled.join_next(), if !scheduled.is_empty() => {}
                _ = watchdog.tick() => {
                    if !broker.is_connected() {
                        tracing::warn!("broker connection lost");
                        break;
                    }
                }
                _ = &mut shutdown, if !stopping => {
                    tracing::info!(pending = scheduled.len(), "stopping: sending the pushes still due");
                    stopping = true;
                }
            }
        }
        broker.close().await;
        tokio::time::sleep(backoff.next_delay()).await;
    }
}
