//! Capped exponential back-off with jitter, and connecting with it.

use crate::errors::Chain;
use crate::metrics::{Direction, Health, Link};
use crate::shutdown::Shutdown;
use rand::Rng;
use std::future::Future;
use std::time::Duration;

/// The pause before the next reconnection attempt.
#[derive(Debug, Clone)]
pub struct Backoff {
    first: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Starts at `first` and doubles up to `max`.
    pub fn new(first: Duration, max: Duration) -> Backoff {
        let first = first.min(max);
        Backoff {
            first,
            max,
            next: first,
        }
    }

    /// The next pause: the current step with ±20% jitter; the step then doubles, up to the cap.
    pub fn next_delay(&mut self) -> Duration {
        let step = self.next;
        self.next = (self.next * 2).min(self.max);
        let jitter = rand::rng().random_range(0.8..=1.2);
        step.mul_f64(jitter).min(self.max)
    }

    /// Back to the first step, after a success.
    pub fn reset(&mut self) {
        self.next = self.first;
    }

    /// Called when a connected session ended: a session that lasted at least [`STABLE_SESSION`]
    /// was a success and starts the back-off over; a shorter one (a message or a query that
    /// fails every time it is tried, say) lets it keep growing, so a fault that repeats is
    /// retried at the capped pace instead of several times a second.
    pub fn session_ended(&mut self, lasted: Duration) {
        if lasted >= STABLE_SESSION {
            self.reset();
        }
    }
}

/// How long a connected session must last to count as a success for [`Backoff`].
pub const STABLE_SESSION: Duration = Duration::from_secs(10);

/// Calls `connect` until it succeeds, pausing with `backoff` between attempts; `None` when
/// shutdown came first. Each failure is logged (with `shown`, the address without its password) and counted
/// as a reconnect of `link`; success marks the link up.
pub async fn connect_until_up<T, E, F, Fut>(
    connect: F,
    link: Link,
    direction: Direction,
    shown: &str,
    health: &Health,
    backoff: &mut Backoff,
    shutdown: &mut Shutdown,
) -> Option<T>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<T, E>>,
    E: std::error::Error + 'static,
{
    loop {
        if shutdown.is_shutdown() {
            return None;
        }
        match connect().await {
            Ok(connected) => {
                health.set(link, direction, true);
                return Some(connected);
            }
            Err(error) => {
                tracing::warn!(
                    error = %Chain(&error),
                    url = %shown,
                    "{}: cannot connect to the {}; retrying",
                    direction.label(),
                    link.label()
                );
                health.reconnecting(link, direction);
                if !shutdown.sleep(backoff.next_delay()).await {
                    return None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap_and_resets() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(1));
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        for (delay, step) in delays.iter().zip([100u64, 200, 400, 800, 1000, 1000]) {
            let step = Duration::from_millis(step);
            assert!(
                *delay >= step.mul_f64(0.8)
                    && *delay <= step.mul_f64(1.2).min(Duration::from_secs(1)),
                "{delay:?} for step {step:?}"
            );
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn a_short_session_keeps_growing_a_long_one_starts_over() {
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(10));
        for _ in 0..4 {
            backoff.session_ended(Duration::from_millis(5));
            backoff.next_delay();
        }
        assert!(backoff.next_delay() >= Duration::from_millis(1280));
        backoff.session_ended(STABLE_SESSION);
        assert!(backoff.next_delay() <= Duration::from_millis(120));
    }

    #[test]
    fn never_zero_never_above_the_cap() {
        let mut backoff = Backoff::new(Duration::from_millis(1), Duration::from_millis(5));
        for _ in 0..50 {
            let delay = backoff.next_delay();
            assert!(delay > Duration::ZERO && delay <= Duration::from_millis(5));
        }
    }
}
