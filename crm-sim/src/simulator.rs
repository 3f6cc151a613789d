//! The simulator's loop: consume the requests, answer each on the inbound queue, and push the
//! outcome of each created task after `--push-delay`; open a new session with the broker when
//! it fails, keeping the pushes still due; on SIGTERM or SIGINT, take no more requests, send
//! the pushes still due, and return.
//!
//! Replies and pushes are published without waiting for each confirm, up to `--in-flight` of
//! them unconfirmed at once ([`InFlight`]): waiting for each (a broker round trip and a write
//! to its disk) held the simulator to about a thousand messages a second. Nothing is taken for
//! sent before its confirm: a request is acked, and the push of the task its reply created is
//! scheduled, only once the reply is confirmed; a push whose confirm does not come is kept for
//! the next session. The requests are acked in runs, once every earlier one is done with
//! ([`Deliveries`]).

use crate::answers::{Answers, DueTask};
use crate::args::Args;
use crate::broker::{parse_url, BrokerError, Request, Requests, Session, Setup};
use crate::contract::{now_dt, push, reply, Reaction};
use crate::deliveries::Deliveries;
use crate::in_flight::InFlight;
use crate::journal::Journal;
use crate::reactions::load_reactions;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
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

/// What a message awaiting its confirm was published for.
#[derive(Debug)]
enum Sent {
    /// The reply to the request numbered `delivery` in the session's [`Deliveries`], which
    /// names our `requestID` as `reply_uid`; `message_id` is the reply's.
    Reply {
        delivery: u64,
        reply_uid: String,
        message_id: String,
    },
    /// A push.
    Push(DuePush),
}

/// The replies and pushes of a session awaiting their confirm.
type Pipeline = InFlight<Sent, Result<(), BrokerError>>;

/// The requests of a session not yet acked.
type Taken = Deliveries<Request>;

/// Runs the simulator until SIGTERM or SIGINT, then sends the pushes still due and returns.
pub async fn run(args: Args) -> Result<(), String> {
    let queues = args.queues()?;
    // A list of nodes of one cluster, separated by commas: a session opens on one of them, and
    // the next session after a failure on the next.
    let urls: Vec<&str> = args.amqp_url.split(',').map(str::trim).collect();
    for url in &urls {
        parse_url(url)?;
    }
    let mut node = 0;
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
    let mut setup = Setup {
        url: urls[0],
        name: NAME,
        requests: &queues.outbound,
        declare: &declare,
        quorum: args.quorum_queues,
        prefetch: args.prefetch,
    };
    let journal = Journal::open(args.journal.as_deref())?;
    let mut simulator = Simulator::new(&args, queues.inbound.clone(), reactions, stop, journal);
    let mut pause = Pause::new();
    loop {
        setup.url = urls[node % urls.len()];
        let (session, mut requests) = match Session::open(setup).await {
            Ok(opened) => opened,
            Err(error) => {
                tracing::warn!(%error, "cannot open a session with the broker; retrying");
                node += 1;
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
        node += 1;
        tokio::time::sleep(pause.next()).await;
    }
}

/// How a session with the broker ended.
#[derive(Debug, PartialEq, Eq)]
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
    /// The most replies and pushes awaiting their confirm at once (`--in-flight`).
    in_flight: usize,
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
    /// `--journal`.
    journal: Journal,
}

impl Simulator {
    /// A simulator with the settings of `args`, answering on `answers_queue`.
    fn new(
        args: &Args,
        answers_queue: String,
        reactions: Vec<Reaction>,
        stop: watch::Receiver<bool>,
        journal: Journal,
    ) -> Simulator {
        let (due_sender, due) = mpsc::unbounded_channel();
        Simulator {
            answers_queue,
            push_delay: args.push_delay,
            in_flight: usize::from(args.in_flight),
            reactions: Arc::new(reactions),
            answers: Answers::new(args.rate_not_found, args.rate_error),
            waiting: JoinSet::new(),
            due_sender,
            due,
            unsent: Vec::new(),
            stop,
            stopping: false,
            journal,
        }
    }

    /// Serves one session: sends the pushes the last one could not, then answers requests and
    /// sends pushes as they fall due, until the session fails or the simulator has stopped.
    /// What is still unconfirmed when it fails counts as not sent: its requests go back to the
    /// queue with the session, its pushes are kept for the next.
    async fn serve(&mut self, session: &Session, requests: &mut Requests) -> Ended {
        // With the pushes falling due, under the same limit.
        for due in self.unsent.drain(..) {
            let _ = self.due_sender.send(due);
        }
        let mut in_flight = Pipeline::new(self.in_flight);
        let mut taken = Taken::new();
        let ended = self
            .pump(session, requests, &mut in_flight, &mut taken)
            .await;
        self.abandon(in_flight);
        ended
    }

    /// The loop of [`Simulator::serve`].
    async fn pump(
        &mut self,
        session: &Session,
        requests: &mut Requests,
        in_flight: &mut Pipeline,
        taken: &mut Taken,
    ) -> Ended {
        let mut watch = tokio::time::interval(WATCH_EVERY);
        loop {
            if self.stopping
                && in_flight.is_empty()
                && taken.is_empty()
                && self.waiting.is_empty()
                && self.due.is_empty()
            {
                return Ended::Stopped;
            }
            let room = in_flight.has_room();
            tokio::select! {
                settled = in_flight.settled(), if !in_flight.is_empty() => {
                    if !self.settle(settled, taken).await || !ack_done(taken).await {
                        return Ended::Broken;
                    }
                }
                request = requests.next(), if !self.stopping && room => match request {
                    Some(Ok(request)) => {
                        if !self.take(session, request, in_flight, taken).await {
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
                Some(due) = self.due.recv(), if room => {
                    if !self.send_push(session, due, in_flight).await {
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
                    tracing::info!(
                        pending = self.waiting.len(),
                        unconfirmed = in_flight.len(),
                        "stopping: sending the pushes still due"
                    );
                    self.stopping = true;
                }
            }
        }
    }

    /// Answers one request: publishes its reply, to be acked once the reply is confirmed (a
    /// body with no `requestID` to answer to is acked as it is). False when the reply could not
    /// be published: the request goes back to the queue.
    async fn take(
        &mut self,
        session: &Session,
        request: Request,
        in_flight: &mut Pipeline,
        taken: &mut Taken,
    ) -> bool {
        let Some(answer) = self.answers.answer(&request.body) else {
            let delivery = taken.push(request);
            taken.done(delivery);
            return ack_done(taken).await;
        };
        self.journal.request(&answer.reply_uid, request.redelivered);
        let body = reply(
            &answer.crm_request_id,
            &answer.reply_uid,
            &now_dt(),
            &answer.outcome,
        );
        match self.publish(session, &answer.crm_request_id, &body).await {
            Ok(confirm) => {
                let delivery = taken.push(request);
                in_flight.add(
                    Sent::Reply {
                        delivery,
                        reply_uid: answer.reply_uid,
                        message_id: answer.crm_request_id,
                    },
                    confirm,
                );
                true
            }
            Err(error) => {
                tracing::warn!(%error, "reply not sent; the request goes back to the queue");
                let _ = request.requeue().await;
                false
            }
        }
    }

    /// Publishes a push that is due; false when it could not, and it is kept for the next
    /// session.
    async fn send_push(
        &mut self,
        session: &Session,
        due: DuePush,
        in_flight: &mut Pipeline,
    ) -> bool {
        match self.publish(session, &due.0, &due.1).await {
            Ok(confirm) => {
                in_flight.add(Sent::Push(due), confirm);
                true
            }
            Err(error) => {
                tracing::warn!(%error, "push not sent; kept for the next session");
                self.unsent.push(due);
                false
            }
        }
    }

    /// Publishes one reply or push to the inbound queue: the future of its confirm.
    async fn publish(
        &self,
        session: &Session,
        id: &str,
        body: &serde_json::Value,
    ) -> Result<BoxFuture<'static, Result<(), BrokerError>>, BrokerError> {
        let confirm = session
            .publish(&self.answers_queue, id, body.to_string().as_bytes())
            .await?;
        Ok(confirm.confirmed().boxed())
    }

    /// Acts on confirms that came together: each confirmed reply has its request done (to be
    /// acked) and the push of its task scheduled. When one of them failed, none of them counts
    /// as sent (lapin may hand a message's return to another message of the same run of
    /// confirms), so that a failure costs a message sent twice, never one lost: their requests
    /// go back to the queue with the session, to be answered the same, and their pushes are
    /// kept for the next session. False then.
    async fn settle(
        &mut self,
        settled: Vec<(Sent, Result<(), BrokerError>)>,
        taken: &mut Taken,
    ) -> bool {
        if settled.iter().all(|(_, outcome)| outcome.is_ok()) {
            for (sent, _) in settled {
                match sent {
                    Sent::Reply {
                        delivery,
                        reply_uid,
                        message_id,
                    } => {
                        self.journal.reply(&message_id, &reply_uid);
                        self.schedule_push(&reply_uid);
                        taken.done(delivery);
                    }
                    Sent::Push((message_id, _)) => self.journal.push(&message_id),
                }
            }
            return true;
        }
        let (mut replies, mut pushes, mut first_error) = (0, 0, None);
        for (sent, outcome) in settled {
            if let Err(error) = outcome {
                first_error.get_or_insert(error);
            }
            match sent {
                Sent::Reply { .. } => replies += 1,
                Sent::Push(due) => {
                    pushes += 1;
                    self.unsent.push(due);
                }
            }
        }
        if let Some(error) = first_error {
            tracing::warn!(
                %error,
                replies,
                pushes,
                "not every one of these replies and pushes was sent: their requests go back to the queue, their pushes are kept for the next session"
            );
        }
        false
    }

    /// The first time the reply to our `reply_uid` is confirmed and it created a task,
    /// schedules the task's push.
    fn schedule_push(&mut self, reply_uid: &str) {
        if let Some(task) = self.answers.replied(reply_uid) {
            self.waiting.spawn(push_later(
                task,
                self.push_delay,
                self.reactions.clone(),
                self.due_sender.clone(),
            ));
        }
    }

    /// A session ended with messages unconfirmed: their requests go back to the queue with the
    /// session, their pushes are kept for the next.
    fn abandon(&mut self, in_flight: Pipeline) {
        let unconfirmed = in_flight.len();
        for sent in in_flight.abandon() {
            if let Sent::Push(due) = sent {
                self.unsent.push(due);
            }
        }
        if unconfirmed > 0 {
            tracing::warn!(
                unconfirmed,
                "the session ended before these replies and pushes were confirmed: they will be sent again"
            );
        }
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

/// Acks the run of done requests at the front of `taken`, if there is one; false when the
/// broker did not take the ack.
async fn ack_done(taken: &mut Taken) -> bool {
    let Some(last) = taken.ackable() else {
        return true;
    };
    match last.ack_through().await {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "the broker did not take the ack");
            false
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
    use clap::Parser;
    use lapin::message::Delivery;

    /// A simulator that creates a task for every request and pushes 1 ms after the reply.
    fn simulator() -> Simulator {
        let flags = "infor-crm-sim --amqp-url amqp://mq --database-url postgresql://db \
                     --zone T --push-delay 1ms --rate-not-found 0 --rate-error 0";
        let args = Args::try_parse_from(flags.split_whitespace()).expect("flags");
        let reaction = Reaction {
            task_status: "3".into(),
            first_level: Some("Недозвон".into()),
            second_level: Some("Автоответчик".into()),
            second_level_free_text: false,
        };
        let (_raise, stop) = watch::channel(false);
        Simulator::new(
            &args,
            "answers".into(),
            vec![reaction],
            stop,
            Journal::default(),
        )
    }

    /// The request of the `n`th client, as the broker hands it over.
    fn request(n: u64) -> Request {
        let body = format!(
            r#"{{"requestID":"00000000-0000-4000-8000-{n:012}","dt":"2023-07-27T09:27:04.953+03:00","clientIdList":[{{"systemCode":"ehd_id","id":"{n}"}}],"inn":"1200009193","ogrn":"1231200000844","kpp":"120001001"}}"#
        );
        Request::from(Delivery::mock(
            n,
            "".into(),
            "requests".into(),
            false,
            body.into_bytes(),
        ))
    }

    /// The reply the simulator publishes to `request`, taken in `taken`, as it stands in the
    /// pipeline.
    fn replied(simulator: &mut Simulator, taken: &mut Taken, request: Request) -> Sent {
        let answer = simulator.answers.answer(&request.body).expect("an answer");
        Sent::Reply {
            delivery: taken.push(request),
            reply_uid: answer.reply_uid,
            message_id: answer.crm_request_id,
        }
    }

    /// A simulator that took two requests and published their replies, in this order.
    fn two_replies() -> (Simulator, Taken, Sent, Sent) {
        let mut simulator = simulator();
        let mut taken = Taken::new();
        let first = replied(&mut simulator, &mut taken, request(1));
        let second = replied(&mut simulator, &mut taken, request(2));
        (simulator, taken, first, second)
    }

    fn refused() -> Result<(), BrokerError> {
        Err(BrokerError::new(
            "publishing 7 to answers",
            "the broker refused it (nack)",
        ))
    }

    fn a_push(id: &str) -> Sent {
        Sent::Push((id.into(), serde_json::json!({ "taskID": id })))
    }

    #[tokio::test]
    async fn a_confirmed_reply_is_acked_and_its_push_scheduled_once() {
        let mut simulator = simulator();
        let mut taken = Taken::new();
        let first = replied(&mut simulator, &mut taken, request(1));
        assert!(simulator.settle(vec![(first, Ok(()))], &mut taken).await);
        assert_eq!(simulator.waiting.len(), 1);
        assert!(ack_done(&mut taken).await);
        assert!(taken.is_empty(), "acked");
        // The same request delivered again: the same reply, acked, and no second push.
        let again = replied(&mut simulator, &mut taken, request(1));
        assert!(simulator.settle(vec![(again, Ok(()))], &mut taken).await);
        assert_eq!(simulator.waiting.len(), 1);
        assert!(ack_done(&mut taken).await);
        assert!(taken.is_empty(), "acked");
        let (message_id, body) = simulator.due.recv().await.expect("the push falls due");
        assert!(!message_id.is_empty());
        assert_eq!(body["taskStatus"], "3");
        assert!(simulator.unsent.is_empty());
    }

    #[tokio::test]
    async fn a_request_waits_for_its_ack_until_every_earlier_one_is_done() {
        let (mut simulator, mut taken, first, second) = two_replies();
        assert!(simulator.settle(vec![(second, Ok(()))], &mut taken).await);
        assert_eq!(simulator.waiting.len(), 1, "its push is scheduled");
        assert!(taken.ackable().is_none(), "the first is not confirmed");
        assert!(simulator.settle(vec![(first, Ok(()))], &mut taken).await);
        let last = taken.ackable().expect("both are done");
        assert_eq!(
            last.body,
            request(2).body,
            "one ack of the second covers both"
        );
        assert!(taken.is_empty());
    }

    #[tokio::test]
    async fn one_failure_among_confirms_that_came_together_counts_none_as_sent() {
        let (mut simulator, mut taken, confirmed, nacked) = two_replies();
        let settled = vec![
            (confirmed, Ok(())),
            (a_push("pushed"), Ok(())),
            (nacked, refused()),
            (a_push("refused"), refused()),
        ];
        assert!(!simulator.settle(settled, &mut taken).await);
        assert!(taken.ackable().is_none(), "no request is acked");
        assert!(simulator.waiting.is_empty(), "no push is scheduled");
        let mut kept: Vec<&str> = simulator.unsent.iter().map(|(id, _)| id.as_str()).collect();
        kept.sort();
        assert_eq!(kept, ["pushed", "refused"]);
        // The requests come again on the next session and get the same replies.
        let mut taken = Taken::new();
        let again = replied(&mut simulator, &mut taken, request(1));
        assert!(simulator.settle(vec![(again, Ok(()))], &mut taken).await);
        assert_eq!(simulator.waiting.len(), 1);
    }

    #[tokio::test]
    async fn a_session_that_ends_keeps_its_unconfirmed_pushes_for_the_next() {
        let mut simulator = simulator();
        let mut in_flight = Pipeline::new(simulator.in_flight);
        let reply = replied(&mut simulator, &mut Taken::new(), request(1));
        in_flight.add(reply, std::future::pending());
        in_flight.add(a_push("in flight"), std::future::pending());
        simulator.abandon(in_flight);
        assert_eq!(simulator.unsent.len(), 1);
        assert_eq!(simulator.unsent[0].0, "in flight");
        assert!(simulator.waiting.is_empty());
    }

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
