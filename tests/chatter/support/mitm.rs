//! A malicious relay in the middle: it holds the access code (as a rogue operator would),
//! so it terminates the client's encrypted transport and opens its own to the real relay,
//! and can alter or drop what the relay sends. It still cannot read or forge MLS content,
//! which is what the tests that use it show.

use std::net::SocketAddr;

use chatter::proto::{ClientFrame, ServerFrame};
use chatter::secret::Secret;
use chatter::transport;
use tokio::net::{TcpListener, TcpStream};

/// What the man in the middle does to frames from the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Meddling {
    /// Flips one bit in the MLS ciphertext of the first application message.
    FlipFirstApplicationByte,
    /// Drops the first commit, so the client misses a key change.
    DropFirstCommit,
}

pub async fn start(relay: SocketAddr, access_code: &str, meddling: Meddling) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind mitm");
    let address = listener.local_addr().expect("mitm address");
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
        tokio::spawn(async move {
            while let Ok(Some(frame)) = client_reader.read_frame::<ClientFrame>().await {
                if relay_writer.write_frame(&frame).await.is_err() {
                    break;
                }
            }
            let _ = relay_writer.shutdown().await;
        });
        let mut done = false;
        while let Ok(Some(mut frame)) = relay_reader.read_frame::<ServerFrame>().await {
            if !done {
                match (&mut frame, meddling) {
                    (
                        ServerFrame::Application { message, .. },
                        Meddling::FlipFirstApplicationByte,
                    ) => {
                        let last = message.len() - 1;
                        message[last - 20] ^= 0x01;
                        done = true;
                    }
                    (ServerFrame::Commit { .. }, Meddling::DropFirstCommit) => {
                        done = true;
                        continue;
                    }
                    _ => {}
                }
            }
            if client_writer.write_frame(&frame).await.is_err() {
                break;
            }
        }
        let _ = client_writer.shutdown().await;
    });
    address
}
