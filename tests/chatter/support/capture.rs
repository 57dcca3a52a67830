//! A relay operator's view, recorded: a transparent man in the middle that holds the access
//! code (as the relay does), forwards every frame unchanged both ways, and keeps the decoded
//! frames' bytes, so a test can search everything a relay receives and sends.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chatter::proto::{ClientFrame, ServerFrame};
use chatter::secret::Secret;
use chatter::transport;
use tokio::net::{TcpListener, TcpStream};

/// Every frame seen, re-encoded exactly as the relay decodes it.
#[derive(Clone, Default)]
pub struct Capture {
    frames: Arc<Mutex<Vec<Vec<u8>>>>,
}

impl Capture {
    fn push(&self, frame: Vec<u8>) {
        self.frames.lock().expect("not poisoned").push(frame);
    }

    /// How many frames were recorded.
    pub fn len(&self) -> usize {
        self.frames.lock().expect("not poisoned").len()
    }

    /// Whether any recorded frame contains `needle`.
    pub fn contains(&self, needle: &[u8]) -> bool {
        let frames = self.frames.lock().expect("not poisoned");
        frames.iter().any(|frame| frame.windows(needle.len()).any(|window| window == needle))
    }
}

/// Starts a recording proxy in front of `relay` for one connection; returns its address.
pub async fn start(relay: SocketAddr, access_code: &str, capture: Capture) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind capture");
    let address = listener.local_addr().expect("capture address");
    let code = Secret::from(access_code);
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let deadline = std::time::Duration::from_secs(5);
        let Ok((mut client_reader, mut client_writer)) =
            transport::server_handshake(client, &code, deadline).await
        else {
            return;
        };
        let Ok(upstream) = TcpStream::connect(relay).await else { return };
        let Ok((mut relay_reader, mut relay_writer)) =
            transport::client_handshake(upstream, &code).await
        else {
            return;
        };
        let upward = capture.clone();
        tokio::spawn(async move {
            while let Ok(Some(frame)) = client_reader.read_frame::<ClientFrame>().await {
                upward.push(chatter::proto::encode(&frame));
                if relay_writer.write_frame(&frame).await.is_err() {
                    break;
                }
            }
            let _ = relay_writer.shutdown().await;
        });
        while let Ok(Some(frame)) = relay_reader.read_frame::<ServerFrame>().await {
            capture.push(chatter::proto::encode(&frame));
            if client_writer.write_frame(&frame).await.is_err() {
                break;
            }
        }
        let _ = client_writer.shutdown().await;
    });
    address
}
