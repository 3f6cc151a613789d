//! The requests of a session not yet acked, in the order the broker delivered them. A request
//! is done once its reply is confirmed; the run of done requests at the front of the order is
//! acked with one AMQP ack of its last, with `multiple`: that ack covers every earlier delivery
//! of the channel, and every one of those is done.

use std::collections::VecDeque;

/// Requests `R` in delivery order, each with whether it is done.
pub struct Deliveries<R> {
    /// The number of the request at the front.
    first: u64,
    waiting: VecDeque<(R, bool)>,
}

impl<R> Deliveries<R> {
    /// No request.
    pub fn new() -> Deliveries<R> {
        Deliveries {
            first: 0,
            waiting: VecDeque::new(),
        }
    }

    /// True when every request delivered was taken out to be acked.
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Adds the request the broker delivered next: its number.
    pub fn push(&mut self, request: R) -> u64 {
        self.waiting.push_back((request, false));
        self.first + self.waiting.len() as u64 - 1
    }

    /// Marks the request numbered `number` as done: its reply is confirmed, or it needs none.
    pub fn done(&mut self, number: u64) {
        let at = number
            .checked_sub(self.first)
            .and_then(|at| usize::try_from(at).ok());
        if let Some((_, done)) = at.and_then(|at| self.waiting.get_mut(at)) {
            *done = true;
        }
    }

    /// Takes out the run of done requests at the front, and returns its last: acking that
    /// one with `multiple` acks the whole run. `None` when the front request is not done.
    pub fn ackable(&mut self) -> Option<R> {
        let mut last = None;
        while self.waiting.front().is_some_and(|(_, done)| *done) {
            last = self.waiting.pop_front().map(|(request, _)| request);
            self.first += 1;
        }
        last
    }
}

impl<R> Default for Deliveries<R> {
    fn default() -> Deliveries<R> {
        Deliveries::new()
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn only_a_run_of_done_requests_at_the_front_is_acked_and_by_its_last() {
        let mut deliveries = Deliveries::new();
        let [first, second, third] = ["first", "second", "third"].map(|r| deliveries.push(r));
        assert_eq!((first, second, third), (0, 1, 2));
        deliveries.done(second);
        assert_eq!(deliveries.ackable(), None, "the first is still waiting");
        deliveries.done(first);
        assert_eq!(deliveries.ackable(), Some("second"));
        assert_eq!(deliveries.ackable(), None);
        assert!(!deliveries.is_empty(), "the third waits");
        let fourth = deliveries.push("fourth");
        assert_eq!(fourth, 3);
        deliveries.done(fourth);
        deliveries.done(third);
        assert_eq!(deliveries.ackable(), Some("fourth"));
        assert!(deliveries.is_empty());
    }

    #[test]
    fn numbers_out_of_range_are_ignored() {
        let mut deliveries = Deliveries::new();
        deliveries.done(7);
        assert_eq!(deliveries.ackable(), None);
        let only = deliveries.push("only");
        deliveries.done(only);
        deliveries.done(only + 1);
        assert_eq!(deliveries.ackable(), Some("only"));
        deliveries.done(only);
        assert_eq!(deliveries.ackable(), None);
    }
}
