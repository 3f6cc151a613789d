//! What the simulated CRM answered, by our `requestID`. A request that comes again (published
//! twice, or requeued after a reply whose confirm was lost) gets the same answer, as a real CRM
//! keyed on `requestID` would give, and the push of a created task is scheduled once.

use crate::contract::{check_request, request_id_of, ReplyOutcome};
use crate::ids::Ids;
use rand::Rng;
use std::collections::HashMap;

/// The reply to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// The CRM's own `requestID`, also the reply's message id.
    pub crm_request_id: String,
    /// Our `requestID`, which the reply names as `replyUID`.
    pub reply_uid: String,
    /// A task, or why there is none.
    pub outcome: ReplyOutcome,
}

/// A task whose outcome is to be pushed, with the ids of its push.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueTask {
    /// The CRM's `requestID` of the reply that created the task.
    pub crm_request_id: String,
    /// The task's id.
    pub task_id: String,
    /// The push's `applicationID` (the automatic form carries it).
    pub application_id: String,
    /// The push's message id.
    pub message_id: String,
}

/// The simulated CRM's memory of its answers, and the ids it gives out.
#[derive(Debug)]
pub struct Answers {
    rate_not_found: f64,
    rate_error: f64,
    ids: Ids,
    /// By our `requestID`: the answer, and whether the push of its task was scheduled already.
    given: HashMap<String, (Answer, bool)>,
}

impl Answers {
    /// A CRM that answers statusCode 1 to a share `rate_not_found` of the requests, 2 to a
    /// share `rate_error`, and creates a task for the others.
    pub fn new(rate_not_found: f64, rate_error: f64) -> Answers {
        Answers {
            rate_not_found,
            rate_error,
            ids: Ids::new(),
            given: HashMap::new(),
        }
    }

    /// The answer to a request: the one given before when the request came already; for a new
    /// request, statusCode 1, 2 or a new task at the configured rates, or 2 when it breaks the
    /// contract. `None` when the body has no `requestID` to answer to.
    pub fn answer(&mut self, body: &[u8]) -> Option<Answer> {
        let (reply_uid, failure) = match check_request(body) {
            Ok(request) => (request.request_id, None),
            Err(reason) => {
                tracing::warn!(%reason, "request breaks the contract");
                let failure = ReplyOutcome::Failed {
                    status_code: "2",
                    message: format!("invalid request: {reason}"),
                };
                (request_id_of(body)?, Some(failure))
            }
        };
        if let Some((answer, _)) = self.given.get(&reply_uid) {
            return Some(answer.clone());
        }
        let outcome = failure.unwrap_or_else(|| self.draw_outcome());
        let answer = Answer {
            crm_request_id: self.ids.next_id(),
            reply_uid: reply_uid.clone(),
            outcome,
        };
        self.given.insert(reply_uid, (answer.clone(), false));
        Some(answer)
    }

    /// Called once the reply to our `reply_uid` was confirmed: the task to push, the first
    /// time only, and only when the answer created one.
    pub fn replied(&mut self, reply_uid: &str) -> Option<DueTask> {
        let (answer, push_scheduled) = self.given.get_mut(reply_uid)?;
        if std::mem::replace(push_scheduled, true) {
            return None;
        }
        let ReplyOutcome::Created { task_id } = &answer.outcome else {
            return None;
        };
        let (crm_request_id, task_id) = (answer.crm_request_id.clone(), task_id.clone());
        Some(DueTask {
            crm_request_id,
            task_id,
            application_id: self.ids.next_id(),
            message_id: self.ids.next_id(),
        })
    }

    fn draw_outcome(&mut self) -> ReplyOutcome {
        let roll: f64 = rand::rng().random();
        if roll < self.rate_not_found {
            ReplyOutcome::Failed {
                status_code: "1",
                message: "Клиент не найден.".into(),
            }
        } else if roll < self.rate_not_found + self.rate_error {
            ReplyOutcome::Failed {
                status_code: "2",
                message: "Задача не создана. Иная ошибка.".into(),
            }
        } else {
            ReplyOutcome::Created {
                task_id: self.ids.next_id(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn request(request_id: &str) -> String {
        format!(
            r#"{{"requestID":"{request_id}","dt":"2023-07-27T09:27:04.953+03:00","clientIdList":[{{"systemCode":"ehd_id","id":"354815252"}}],"inn":"1200009193","ogrn":"1231200000844","kpp":"120001001"}}"#
        )
    }

    #[test]
    fn a_repeated_request_gets_the_same_answer_and_one_push() {
        let mut answers = Answers::new(0.0, 0.0);
        let body = request("e1f73276-7fb6-4e80-85de-fd8a939998f0");
        let first = answers.answer(body.as_bytes()).expect("an answer");
        assert_eq!(first.reply_uid, "e1f73276-7fb6-4e80-85de-fd8a939998f0");
        assert!(matches!(first.outcome, ReplyOutcome::Created { .. }));
        // The reply was not confirmed: the request comes again.
        assert_eq!(answers.answer(body.as_bytes()), Some(first.clone()));
        let due = answers.replied(&first.reply_uid).expect("a push");
        assert_eq!(due.crm_request_id, first.crm_request_id);
        assert_eq!(
            first.outcome,
            ReplyOutcome::Created {
                task_id: due.task_id
            }
        );
        // Published twice: the same reply again, and no second push.
        assert_eq!(answers.answer(body.as_bytes()), Some(first.clone()));
        assert_eq!(answers.replied(&first.reply_uid), None);
    }

    #[test]
    fn failures_are_remembered_and_pushed_never() {
        let mut answers = Answers::new(1.0, 0.0);
        let body = request("0b5a7c3e-1111-4e80-85de-fd8a939998f0");
        let first = answers.answer(body.as_bytes()).expect("an answer");
        assert!(matches!(
            first.outcome,
            ReplyOutcome::Failed {
                status_code: "1",
                ..
            }
        ));
        assert_eq!(answers.answer(body.as_bytes()), Some(first.clone()));
        assert_eq!(answers.replied(&first.reply_uid), None);
    }

    #[test]
    fn a_request_against_the_contract_gets_status_2_the_same_each_time() {
        let mut answers = Answers::new(0.0, 0.0);
        let bad = request("E1F73276-7FB6-4E80-85DE-FD8A939998F0");
        let first = answers.answer(bad.as_bytes()).expect("an answer");
        let ReplyOutcome::Failed {
            status_code,
            message,
        } = &first.outcome
        else {
            panic!("{first:?}");
        };
        assert_eq!(*status_code, "2");
        assert!(message.contains("lower-case UUID"), "{message}");
        assert_eq!(answers.answer(bad.as_bytes()), Some(first));
        assert_eq!(answers.answer(b"not json"), None);
    }

    #[test]
    fn no_id_repeats_across_requests_tasks_and_pushes_of_two_instances() {
        let mut seen = HashSet::new();
        for mut answers in [Answers::new(0.0, 0.0), Answers::new(0.0, 0.0)] {
            for n in 0..10_000u32 {
                // The same requests in both instances, as when the simulator is restarted.
                let body = request(&format!("00000000-0000-4000-8000-{n:012}"));
                let answer = answers.answer(body.as_bytes()).expect("an answer");
                let due = answers.replied(&answer.reply_uid).expect("a push");
                for id in [
                    answer.crm_request_id,
                    due.task_id,
                    due.application_id,
                    due.message_id,
                ] {
                    assert!(seen.insert(id.clone()), "{id} was given twice");
                }
            }
        }
    }
}
