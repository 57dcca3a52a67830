//! A TCP proxy whose links can be cut and restored: a Wi-Fi drop, a sleeping laptop or a
//! NAT that forgot the connection, between a real client and a real relay.
//!
//! `cut(Cut::Close)` closes every link it carries (both ends see the connection end, as when
//! a router resets it); `cut(Cut::Silence)` stops forwarding but keeps the sockets open, so
//! neither end hears anything (as when a laptop sleeps), for as long as the cutter lives.
//! Either way, new connections are refused until `restore()`; links made after it work.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cut {
    Close,
    Silence,
}

struct Links {
    cut: bool,
    /// The forwarding tasks of every link made.
    tasks: JoinSet<()>,
    /// Tells the links made since the last cut to fall silent.
    silence: watch::Sender<bool>,
    accepted: usize,
}

pub struct LinkCutter {
    pub address: SocketAddr,
    links: Arc<Mutex<Links>>,
}

impl LinkCutter {
    pub async fn start(server: SocketAddr) -> LinkCutter {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind cutter");
        let address = listener.local_addr().expect("cutter address");
        let links = Arc::new(Mutex::new(Links {
            cut: false,
            tasks: JoinSet::new(),
            silence: watch::channel(false).0,
            accepted: 0,
        }));
        let shared = Arc::clone(&links);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if shared.lock().unwrap().cut {
                    drop(client);
                    continue;
                }
                let Ok(upstream) = TcpStream::connect(server).await else { continue };
                let mut links = shared.lock().unwrap();
                links.accepted += 1;
                let silenced = links.silence.subscribe();
                links.tasks.spawn(forward(client, upstream, silenced));
            }
        });
        LinkCutter { address, links }
    }

    /// Connections accepted and forwarded so far.
    pub fn accepted(&self) -> usize {
        self.links.lock().unwrap().accepted
    }

    pub fn cut(&self, how: Cut) {
        let mut links = self.links.lock().unwrap();
        links.cut = true;
        match how {
            // Aborting a forwarding task drops both its sockets: each end sees its side close.
            Cut::Close => links.tasks.abort_all(),
            Cut::Silence => {
                links.silence.send_replace(true);
                links.silence = watch::channel(false).0;
            }
        }
    }

    pub fn restore(&self) {
        self.links.lock().unwrap().cut = false;
    }
}

async fn forward(client: TcpStream, upstream: TcpStream, mut silenced: watch::Receiver<bool>) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let silent = tokio::select! {
        _ = tokio::io::copy(&mut client_read, &mut upstream_write) => false,
        _ = tokio::io::copy(&mut upstream_read, &mut client_write) => false,
        _ = silenced.wait_for(|silent| *silent) => true,
    };
    if silent {
        // The sockets stay open and nothing moves: neither end can tell.
        std::future::pending::<()>().await;
    }
}
