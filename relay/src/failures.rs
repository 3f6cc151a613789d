//! What the inbound side remembers of failing messages across its sessions, so that a message
//! whose apply keeps failing, while others apply, is set aside instead of holding the queue
//! ([`crate::inbound`] decides when; [`crate::session::Context`] carries the log).

use crate::broker::Incoming;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Mutex;

/// The most failing messages [`FailureLog`] remembers; beyond that it starts over (a message
/// then needs a few more tries before it is set aside, nothing else).
const MAX_REMEMBERED_FAILURES: usize = 10_000;

/// What the inbound side remembers across its sessions: how many messages applied, and which
/// messages failed how often. A message is known by a hash of its id and body.
#[derive(Debug, Default)]
pub struct FailureLog {
    applied: u64,
    failures: HashMap<u64, Failure>,
    hasher: RandomState,
}

/// The failures of one message.
#[derive(Debug, Clone)]
pub struct Failure {
    /// How many applies of the message failed.
    pub attempts: u32,
    applied_before_first: u64,
    /// The error of the last one.
    pub last_error: String,
}

impl FailureLog {
    pub(crate) fn key(&self, message: &Incoming) -> u64 {
        let mut hasher = self.hasher.build_hasher();
        match &message.message_id {
            Some(id) => {
                hasher.write_u8(1);
                hasher.write(id.as_bytes());
            }
            None => hasher.write_u8(0),
        }
        hasher.write_usize(message.body.len());
        hasher.write(&message.body);
        hasher.finish()
    }

    /// [`Self::failed`] for `message`.
    pub(crate) fn message_failed(&mut self, message: &Incoming, error: &str) -> u32 {
        let key = self.key(message);
        self.failed(key, error)
    }

    /// [`Self::done`] for `message`.
    pub(crate) fn message_done(&mut self, message: &Incoming, applied: bool) {
        if self.failures.is_empty() {
            // The common case, without hashing the body.
            self.applied += u64::from(applied);
            return;
        }
        let key = self.key(message);
        self.done(key, applied);
    }

    /// [`Self::due_for_set_aside`] for `message`.
    pub(crate) fn message_due_for_set_aside(
        &self,
        message: &Incoming,
        max_attempts: u32,
    ) -> Option<Failure> {
        if self.failures.is_empty() {
            return None;
        }
        self.due_for_set_aside(self.key(message), max_attempts)
    }

    /// The failure to set aside for, when the message known by `key` has failed `max_attempts`
    /// times and other messages applied since its first failure.
    pub(crate) fn due_for_set_aside(&self, key: u64, max_attempts: u32) -> Option<Failure> {
        let failure = self.failures.get(&key)?;
        (failure.attempts >= max_attempts && self.applied > failure.applied_before_first)
            .then(|| failure.clone())
    }

    /// Counts one failed apply of the message known by `key`; returns its attempts so far.
    pub(crate) fn failed(&mut self, key: u64, error: &str) -> u32 {
        if self.failures.len() >= MAX_REMEMBERED_FAILURES {
            self.failures.clear();
        }
        let applied = self.applied;
        let failure = self.failures.entry(key).or_insert_with(|| Failure {
            attempts: 0,
            applied_before_first: applied,
            last_error: String::new(),
        });
        failure.attempts += 1;
        failure.last_error = error.to_string();
        failure.attempts
    }

    /// The message known by `key` was recorded (`applied`: through `apply_delivery`).
    pub(crate) fn done(&mut self, key: u64, applied: bool) {
        if applied {
            self.applied += 1;
        }
        self.failures.remove(&key);
    }

    /// A new session begins. A message whose failures in the sessions before were never
    /// followed by another message applying failed while nothing applied: most likely the
    /// database was at fault, not the message. Those failures are forgotten, so that a
    /// database outage never makes messages look poisonous once it is over.
    pub(crate) fn new_session(&mut self) {
        let applied = self.applied;
        self.failures
            .retain(|_, failure| applied > failure.applied_before_first);
    }
}

/// The shared failure log of the inbound side.
pub type SharedFailureLog = std::sync::Arc<Mutex<FailureLog>>;

/// The log, locked (a panic while it was held leaves it usable).
pub fn lock(log: &SharedFailureLog) -> std::sync::MutexGuard<'_, FailureLog> {
    log.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESSAGE: u64 = 1;
    const OTHER: u64 = 2;

    #[test]
    fn a_message_failing_while_others_apply_is_set_aside_after_max_attempts() {
        let mut log = FailureLog::default();
        log.new_session();
        assert_eq!(log.failed(MESSAGE, "boom"), 1);
        log.done(OTHER, true);
        assert!(log.due_for_set_aside(MESSAGE, 2).is_none(), "one failure");
        assert_eq!(log.failed(MESSAGE, "boom again"), 2);
        let failure = log.due_for_set_aside(MESSAGE, 2).expect("due");
        assert_eq!(
            (failure.attempts, failure.last_error.as_str()),
            (2, "boom again")
        );
        // Its failures outlive a reconnect: they were made while the database worked.
        log.new_session();
        assert!(log.due_for_set_aside(MESSAGE, 2).is_some());
        log.done(MESSAGE, false);
        assert!(
            log.due_for_set_aside(MESSAGE, 2).is_none(),
            "forgotten once recorded"
        );
    }

    #[test]
    fn failures_while_nothing_applies_are_never_held_against_a_message() {
        let mut log = FailureLog::default();
        // A database outage: every session fails every message, nothing applies.
        for _ in 0..5 {
            log.new_session();
            log.failed(MESSAGE, "permission denied");
            log.failed(OTHER, "permission denied");
            assert!(log.due_for_set_aside(MESSAGE, 2).is_none());
        }
        // The database is back: the first message to apply does not condemn the others.
        log.new_session();
        log.done(3, true);
        assert!(log.due_for_set_aside(MESSAGE, 2).is_none());
        assert!(log.due_for_set_aside(OTHER, 2).is_none());
        // A real poison message is still caught in the session that works.
        log.failed(MESSAGE, "frozen");
        log.done(OTHER, true);
        log.failed(MESSAGE, "frozen");
        assert!(log.due_for_set_aside(MESSAGE, 2).is_some());
    }
}
