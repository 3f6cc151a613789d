//! Graceful shutdown: a signal future for `main`, and a handle every task watches.

use tokio::sync::watch;

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
pub async fn signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Tells tasks to stop taking work; each finishes what it has in flight.
#[derive(Debug, Clone)]
pub struct Shutdown {
    receiver: watch::Receiver<bool>,
}

/// The sending side of [`Shutdown`].
#[derive(Debug)]
pub struct ShutdownTrigger {
    sender: watch::Sender<bool>,
}

/// A new trigger and the handle its tasks watch.
pub fn channel() -> (ShutdownTrigger, Shutdown) {
    let (sender, receiver) = watch::channel(false);
    (ShutdownTrigger { sender }, Shutdown { receiver })
}

impl ShutdownTrigger {
    /// Asks every task to stop.
    pub fn trigger(&self) {
        let _ = self.sender.send(true);
    }
}

impl Shutdown {
    /// True once shutdown was asked for.
    pub fn is_shutdown(&self) -> bool {
        *self.receiver.borrow()
    }

    /// Resolves when shutdown is asked for (at once if it already was).
    pub async fn recv(&mut self) {
        let _ = self.receiver.wait_for(|stop| *stop).await;
    }

    /// Sleeps for `duration`; returns false when shutdown came first.
    pub async fn sleep(&mut self, duration: std::time::Duration) -> bool {
        tokio::select! {
            _ = tokio::time::sleep(duration) => true,
            _ = self.recv() => false,
        }
    }
}
