//! A tiny TCP proxy on 127.0.0.1:0 in front of one address, that a test can
//! cut (every open connection closed, new ones closed on arrival, as a
//! database that refuses) and restore, to play an outage between a hub and
//! PostgreSQL.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// A running proxy; stops (closing its connections) when dropped.
pub struct TcpProxy {
    port: u16,
    up: Arc<AtomicBool>,
    /// Cancelled by `cut`: ends the connections opened before it.
    generation: Arc<Mutex<CancellationToken>>,
    stop: CancellationToken,
}

impl TcpProxy {
    /// Forwards 127.0.0.1:<port> to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let up = Arc::new(AtomicBool::new(true));
        let generation = Arc::new(Mutex::new(CancellationToken::new()));
        let stop = CancellationToken::new();
        let (up2, generation2, stop2) = (up.clone(), generation.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = stop2.cancelled() => return,
                    a = listener.accept() => a,
                };
                let Ok((client, _)) = accepted else { continue };
                // Checked under the lock `cut` takes: no connection slips
                // through a cut.
                let ends = {
                    let generation = generation2.lock().expect("generation");
                    up2.load(Ordering::SeqCst).then(|| generation.child_token())
                };
                let Some(ends) = ends else {
                    drop(client);
                    continue;
                };
                let stop = stop2.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut client = client;
                    tokio::select! {
                        _ = ends.cancelled() => {}
                        _ = stop.cancelled() => {}
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                    }
                });
            }
        });
        Self {
            port,
            up,
            generation,
            stop,
        }
    }

    /// The port to connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Closes every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        let mut generation = self.generation.lock().expect("generation");
        self.up.store(false, Ordering::SeqCst);
        generation.cancel();
        *generation = CancellationToken::new();
    }

    /// Accepts and forwards connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}
