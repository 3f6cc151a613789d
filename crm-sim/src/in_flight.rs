//! The messages published and not yet confirmed by the broker, up to a limit (`--in-flight`):
//! the simulator publishes without waiting for each confirm, and acts on each message only
//! once its confirm has come.

use futures_util::future::BoxFuture;
use futures_util::stream::FuturesUnordered;
use futures_util::{FutureExt, StreamExt};
use std::collections::HashMap;
use std::future::Future;

/// Items (what each message was published for) awaiting the outcome `O` of their confirm.
pub struct InFlight<T, O> {
    limit: usize,
    next: u64,
    items: HashMap<u64, T>,
    confirms: FuturesUnordered<BoxFuture<'static, (u64, O)>>,
}

impl<T, O: 'static> InFlight<T, O> {
    /// Nothing in flight; room for `limit` items (at least one).
    pub fn new(limit: usize) -> InFlight<T, O> {
        InFlight {
            limit: limit.max(1),
            next: 0,
            items: HashMap::new(),
            confirms: FuturesUnordered::new(),
        }
    }

    /// How many items await their confirm.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// True when no item awaits its confirm.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// True while fewer items than the limit await their confirm.
    pub fn has_room(&self) -> bool {
        self.items.len() < self.limit
    }

    /// Adds `item`, whose message's confirm `confirm` resolves to. It is not polled until
    /// [`InFlight::settled`] is.
    pub fn add(&mut self, item: T, confirm: impl Future<Output = O> + Send + 'static) {
        let key = self.next;
        self.next += 1;
        self.items.insert(key, item);
        self.confirms
            .push(confirm.map(move |outcome| (key, outcome)).boxed());
    }

    /// Waits for the next confirm, then takes every other that has come as well, each with
    /// its item: the broker acks a run of messages at once, and they come out together. Empty
    /// at once when nothing is in flight. Cancel-safe: nothing is taken until it returns.
    pub async fn settled(&mut self) -> Vec<(T, O)> {
        let Some(first) = self.confirms.next().await else {
            return Vec::new();
        };
        let mut settled = vec![first];
        while let Some(Some(more)) = self.confirms.next().now_or_never() {
            settled.push(more);
        }
        settled
            .into_iter()
            .filter_map(|(key, outcome)| Some((self.items.remove(&key)?, outcome)))
            .collect()
    }

    /// Gives up waiting: the items whose confirm has not been taken, in no order.
    pub fn abandon(self) -> Vec<T> {
        self.items.into_values().collect()
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;
    use tokio::sync::oneshot;

    /// An item whose confirm comes when the returned sender sends it.
    fn publish(
        in_flight: &mut InFlight<&'static str, bool>,
        item: &'static str,
    ) -> oneshot::Sender<bool> {
        let (confirm, confirmed) = oneshot::channel();
        in_flight.add(item, async move { confirmed.await.unwrap_or(false) });
        confirm
    }

    #[tokio::test]
    async fn the_limit_bounds_what_is_in_flight() {
        let mut in_flight = InFlight::new(2);
        assert!(in_flight.is_empty() && in_flight.has_room());
        let first = publish(&mut in_flight, "reply 1");
        let _second = publish(&mut in_flight, "reply 2");
        assert_eq!(in_flight.len(), 2);
        assert!(!in_flight.has_room());
        first.send(true).expect("sent");
        assert_eq!(in_flight.settled().await, [("reply 1", true)]);
        assert!(in_flight.has_room());
        assert_eq!(in_flight.len(), 1);
    }

    #[tokio::test]
    async fn confirms_that_came_together_settle_together_in_any_order() {
        let mut in_flight = InFlight::new(512);
        let confirms: Vec<_> = ["a", "b", "c", "d"]
            .into_iter()
            .map(|item| publish(&mut in_flight, item))
            .collect();
        let mut confirms = confirms.into_iter();
        let (a, b, c, _d) = (
            confirms.next().expect("a"),
            confirms.next().expect("b"),
            confirms.next().expect("c"),
            confirms.next().expect("d"),
        );
        c.send(true).expect("sent");
        a.send(false).expect("sent");
        let mut settled = in_flight.settled().await;
        settled.sort();
        assert_eq!(settled, [("a", false), ("c", true)]);
        b.send(true).expect("sent");
        assert_eq!(in_flight.settled().await, [("b", true)]);
        assert_eq!(in_flight.abandon(), ["d"]);
    }

    #[tokio::test]
    async fn nothing_in_flight_settles_nothing() {
        let mut in_flight: InFlight<&str, bool> = InFlight::new(0);
        assert!(in_flight.has_room(), "the limit is at least one");
        assert!(in_flight.settled().await.is_empty());
        assert!(in_flight.abandon().is_empty());
    }
}
