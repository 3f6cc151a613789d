//! A TCP proxy that can hold its traffic: while paused it neither reads nor writes, and keeps
//! every connection open, as a network path that drops packets without a reset does (a
//! partition, a stopped middlebox). The relay must notice such a cut by its own timeouts.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A proxy from a free port of 127.0.0.1 to a target address; stops when dropped.
#[derive(Debug)]
pub struct Proxy {
    /// The port it listens on.
    pub port: u16,
    paused: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Starts forwarding connections to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let port = crate::postgres::free_port();
        let listener = TcpListener::bind(("127.0.0.1", port))
            .await
            .expect("the proxy's port");
        let (paused, watching) = watch::channel(false);
        let target = target.to_string();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&target).await else {
                    continue;
                };
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                tokio::spawn(forward(client_read, server_write, watching.clone()));
                tokio::spawn(forward(server_read, client_write, watching.clone()));
            }
        });
        Proxy { port, paused, task }
    }

    /// Holds all traffic, both ways, until [`Proxy::resume`]: no byte passes, no connection
    /// closes, new connections are accepted and held too.
    pub fn pause(&self) {
        let _ = self.paused.send(true);
    }

    /// Lets traffic through again.
    pub fn resume(&self) {
        let _ = self.paused.send(false);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Copies `from` to `to`, waiting before each read and each write while paused.
async fn forward(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut paused: watch::Receiver<bool>,
) {
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        let read = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => read,
        };
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}
