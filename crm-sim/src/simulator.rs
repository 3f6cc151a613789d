//! The simulator's loop: consume the requests, answer each on the inbound queue, and push the
//! outcome of each created task after `--push-delay`; open a new session with the broker when
//! it fails, keeping the pushes still due; on SIGTERM or SIGINT, take no more requests, send
//! the pushes still due, and return.

use crate::answers::{Answers, DueTask};
use crate::args::Args;
use crate::broker::{parse_url, BrokerError, Requests, Session, Setup};
use crate::contract::{now_dt, push, reply, Reaction};
use crate::reactions::load_reactions;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

/// The name the simulator's connection and consumer show in the broker's lists.
const NAME: &str = "infor-crm-sim";

/// How often a session checks that its connection is still up.
const WATCH_EVERY: Duration = Duration::from_secs(1);

/// A push that is due: its message id and its body.
type DuePush = (String, serde_json::Value);

/// Runs the simulator until SIGTERM or SIGINT, then sends the pushes still due and returns.
pub async fn run(args: Args) -> Result<(), String> {
    let queues = args.queues()?;
    parse_url(&args.amqp_url)?;
    let stop = stop_on_signal();
    let reactions = load_reactions(&args.database_url).await?;
    if reactions.is_empty() {
        return Err("infor_comm.client_reaction is empty".into());
    }
    let declare: Vec<&str> = if args.declare_queues {
        vec![&queues.outbound, &queues.inbound]
    } else {
        Vec::new()
    };
    let setup = Setup {
        url: &args.amqp_url,
        name: NAME,
        requests: &queues.outbound,
        declare: &declare,
        prefetch: args.prefetch,
    };
    let (due_sender, due) = mpsc::unbounded_channel();
    let mut simulator = Simulator {
        answers_queue: queues.inbound.clone(),
        push_delay: args.push_delay,
        reactions: Arc::new(reactions),
        answers: Answers::new(args.rate_not_found, args.rate_error),
        waiting: JoinSet::new(),
        due_sender,
        due,
        unsent: Vec::new(),
        stop,
        stopping: false,
    };
    let mut pause = Pause::new();
    loop {
        let (session, mut requests) = match Session::open(setup).await {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot open a session with the broker; retrying");
                if sleep_unless_stopped(pause.next(), &mut simulator.stop).await {
                    continue;
                }
                simulator.give_up();
                return Ok(());
            }
        };
        pause.reset();
        tracing::info!(requests = %queues.outbound, answers = %queues.inbound, "infor-crm-sim ready");
        let ended = simulator.serve(&session, &mut requests).await;
        session.close().await;
        if let Ended::Stopped = ended {
            return Ok(());
        }
        tokio::time::sleep(pause.next()).await;
    }
}

/// How a session with the broker ended.
enum Ended {
    /// Stopped on a signal, with nothing left to send.
    Stopped,
    /// The broker failed, or a message could not be sent: a new session is needed.
    Broken,
}

/// What the simulator keeps across its sessions with the broker.
struct Simulator {
    /// The inbound queue, where replies and pushes go.
    answers_queue: String,
    push_delay: Duration,
    reactions: Arc<Vec<Reaction>>,
    answers: Answers,
    /// The pushes waiting for their delay, each in a task of its own.
    waiting: JoinSet<()>,
    /// Where those tasks hand their pushes when due, so that each is sent on whatever session
    /// is current then, and kept while there is none.
    due_sender: mpsc::UnboundedSender<DuePush>,
    due: mpsc::UnboundedReceiver<DuePush>,
    /// Pushes a session could not send, for the next one.
    unsent: Vec<DuePush>,
    /// Turns true at the first SIGTERM or SIGINT.
    stop: watch::Receiver<bool>,
    /// True once the stop was seen: no more requests are taken.
    stopping: bool,
}

impl Simulator {
    /// Serves one session: sends the pushes the last one could not, then answers requests and
    /// sends pushes as they fall due, until the session fails or the simulator has stopped.
    async fn serve(&mut self, session: &Session, requests: &mut Requests) -> Ended {
        while let Some(due) = self.unsent.pop() {
            if !self.send_push(session, due).await {
                return Ended::Broken;
            }
        }
        let mut watch = tokio::time::interval(WATCH_EVERY);
        loop {
            if self.stopping && self.waiting.is_empty() && self.due.is_empty() {
                return Ended::Stopped;
            }
            tokio::select! {
                request = requests.next(), if !self.stopping => match request {
                    Some(Ok(request)) => {
                        if let Err(error) = self.take(session, &request.body).await {
                            tracing::warn!(%error, "reply not sent; the request goes back to the queue");
                            let _ = request.requeue().await;
                            return Ended::Broken;
                        }
                        if let Err(error) = request.ack().await {
                            tracing::warn!(%error, "the broker did not take the ack");
                            return Ended::Broken;
                        }
                    }
                    Some(Err(error)) => {
                        tracing::warn!(%error, "the consumer failed");
                        return Ended::Broken;
                    }
                    None => {
                        tracing::warn!("the broker ended the consumer");
                        return Ended::Broken;
                    }
                },
                Some(due) = self.due.recv() => {
                    if !self.send_push(session, due).await {
                        return Ended::Broken;
                    }
                }
                Some(_) = self.waiting.join_next(), if !self.waiting.is_empty() => {}
                _ = watch.tick() => {
                    if !session.is_open() {
                        tracing::warn!("the broker connection was lost");
                        return Ended::Broken;
                    }
                }
                _ = stopped(&mut self.stop), if !self.stopping => {
                    tracing::info!(pending = self.waiting.len(), "stopping: sending the pushes still due");
                    self.stopping = true;
                }
            }
        }
    }

    /// Answers one request; the first time its reply is confirmed and it created a task, the
    /// task's push is scheduled.
    async fn take(&mut self, session: &Session, body: &[u8]) -> Result<(), BrokerError> {
        let Some(answer) = self.answers.answer(body) else {
            return Ok(());
        };
        let body = reply(
            &answer.crm_request_id,
            &answer.reply_uid,
            &now_dt(),
            &answer.outcome,
        );
        self.send(session, &answer.crm_request_id, &body).await?;
        if let Some(task) = self.answers.replied(&answer.reply_uid) {
            self.waiting.spawn(push_later(
                task,
                self.push_delay,
                self.reactions.clone(),
                self.due_sender.clone(),
            ));
        }
        Ok(())
    }

    /// Sends a push that is due; false when it could not, and it is kept for the next session.
    async fn send_push(&mut self, session: &Session, (id, body): DuePush) -> bool {
        match self.send(session, &id, &body).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(%error, "push not sent; kept for the next session");
                self.unsent.push((id, body));
                false
            }
        }
    }

    /// Sends one reply or push to the inbound queue.
    async fn send(
        &self,
        session: &Session,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<(), BrokerError> {
        session
            .publish(&self.answers_queue, id, body.to_string().as_bytes())
            .await
    }

    /// Stopping without the broker: says how many pushes are dropped.
    fn give_up(&self) {
        let dropped = self.unsent.len() + self.due.len() + self.waiting.len();
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "stopping without a broker to send to: the pushes still due are dropped"
            );
        }
    }
}

/// Waits `delay`, then hands the push of `task` to `due`, with a client reaction drawn at
/// random (`reactions` is not empty).
async fn push_later(
    task: DueTask,
    delay: Duration,
    reactions: Arc<Vec<Reaction>>,
    due: mpsc::UnboundedSender<DuePush>,
) {
    tokio::time::sleep(delay).await;
    let reaction = &reactions[rand::rng().random_range(0..reactions.len())];
    let now = now_dt();
    let body = push(
        &task.crm_request_id,
        &task.task_id,
        &now,
        &now[..10],
        reaction,
        &task.application_id,
    );
    let _ = due.send((task.message_id, body));
}

/// A flag that turns true at the first SIGTERM or SIGINT.
fn stop_on_signal() -> watch::Receiver<bool> {
    let (raise, flag) = watch::channel(false);
    tokio::spawn(async move {
        stop_signal().await;
        let _ = raise.send(true);
    });
    flag
}

/// Resolves at the first SIGTERM or SIGINT (Ctrl-C).
async fn stop_signal() {
    let interrupt = async {
        if let Err(error) = tokio::signal::ctrl_c().await {
            tracing::warn!(%error, "cannot watch SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut terminate) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt => {}
                }
                return;
            }
            Err(error) => tracing::warn!(%error, "cannot watch SIGTERM; only SIGINT stops"),
        }
    }
    interrupt.await;
}

/// Resolves once a stop was asked for (at once if it was already); never if the watcher of
/// the signals is gone without asking.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|stop| *stop).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps for `delay`; false, at once or meanwhile, when a stop was asked for.
async fn sleep_unless_stopped(delay: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = stopped(stop) => false,
    }
}

/// The pause before the next attempt to open a session: [`Pause::FIRST`], doubled after each
/// attempt up to [`Pause::LONGEST`], and back to the first once a session opened.
#[derive(Debug)]
struct Pause {
    next: Duration,
}

impl Pause {
    const FIRST: Duration = Duration::from_millis(200);
    const LONGEST: Duration = Duration::from_secs(5);

    fn new() -> Pause {
        Pause { next: Pause::FIRST }
    }

    fn next(&mut self) -> Duration {
        let pause = self.next;
        self.next = (pause * 2).min(Pause::LONGEST);
        pause
    }

    fn reset(&mut self) {
        self.next = Pause::FIRST;
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn the_pause_doubles_up_to_its_longest_and_starts_over() {
        let mut pause = Pause::new();
        let pauses: Vec<u64> = (0..8).map(|_| pause.next().as_millis() as u64).collect();
        assert_eq!(pauses, [200, 400, 800, 1600, 3200, 5000, 5000, 5000]);
        pause.reset();
        assert_eq!(pause.next(), Duration::from_millis(200));
    }

    #[tokio::test]
    async fn a_stop_cuts_the_pause_short() {
        let (raise, mut stop) = watch::channel(false);
        assert!(sleep_unless_stopped(Duration::from_millis(1), &mut stop).await);
        raise.send(true).expect("the flag");
        let started = std::time::Instant::now();
        assert!(!sleep_unless_stopped(Duration::from_secs(60), &mut stop).await);
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}
