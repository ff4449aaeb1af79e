//! A TCP proxy a test puts between natter and PostgreSQL or Redis, to make the service
//! look gone without touching the shared server.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// Connections are closed, new ones closed at once: a server that went away.
    Cut,
    /// Nothing is forwarded or answered: a host whose packets are dropped.
    Silent,
}

pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<State>,
    task: AbortHandle,
}

impl Proxy {
    /// Forwards a fresh local port to `target` (`host:port`).
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = watch::Sender::new(State::Open);
        let states = state.clone();
        let task = tokio::spawn(async move {
            // Owned here, so dropping the proxy ends every connection.
            let mut connections = JoinSet::new();
            while let Ok((client, _)) = listener.accept().await {
                connections.spawn(forward(client, target.clone(), states.subscribe()));
            }
        });
        Proxy {
            addr,
            state,
            task: task.abort_handle(),
        }
    }

    pub fn cut(&self) {
        self.state.send_replace(State::Cut);
    }

    pub fn go_silent(&self) {
        self.state.send_replace(State::Silent);
    }

    /// Forwards again; connections that were stalled are closed, as a restarted server's
    /// would be.
    pub fn restore(&self) {
        self.state.send_replace(State::Open);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, target: String, mut state: watch::Receiver<State>) {
    let now = *state.borrow_and_update();
    if now == State::Open {
        let Ok(mut server) = TcpStream::connect(&target).await else {
            return;
        };
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => return,
            _ = state.wait_for(|s| *s != State::Open) => {}
        }
    }
    if *state.borrow() == State::Silent {
        // Keep the client's socket open, unanswered, until the proxy is restored.
        let _ = state.wait_for(|s| *s == State::Open).await;
    }
}
