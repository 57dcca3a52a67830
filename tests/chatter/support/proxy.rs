//! A TCP proxy that forwards the length-prefixed frames of one connection and can replay,
//! corrupt or drop one client-to-server frame: an attacker on the network path, who sees
//! only sealed frames.

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy does to the client's frame number `index` (0 is the ClientHello).
#[derive(Debug, Clone, Copy)]
pub enum Mischief {
    Replay { index: usize },
    FlipByte { index: usize },
}

/// Starts a proxy to `server`; returns the address clients connect to. It serves one
/// connection.
pub async fn start(server: SocketAddr, mischief: Mischief) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let address = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let Ok(upstream) = TcpStream::connect(server).await else { return };
        let (mut client_read, mut client_write) = client.into_split();
        let (mut upstream_read, mut upstream_write) = upstream.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut upstream_read, &mut client_write).await;
            let _ = client_write.shutdown().await;
        });
        let mut index = 0;
        loop {
            let mut length = [0u8; 4];
            if client_read.read_exact(&mut length).await.is_err() {
                break;
            }
            let mut body = vec![0u8; u32::from_be_bytes(length) as usize];
            if client_read.read_exact(&mut body).await.is_err() {
                break;
            }
            let mut copies = 1;
            match mischief {
                Mischief::Replay { index: target } if target == index => copies = 2,
                Mischief::FlipByte { index: target } if target == index => {
                    let middle = body.len() / 2;
                    body[middle] ^= 0x01;
                }
                _ => {}
            }
            for _ in 0..copies {
                if upstream_write.write_all(&length).await.is_err()
                    || upstream_write.write_all(&body).await.is_err()
                {
                    return;
                }
            }
            index += 1;
        }
        let _ = upstream_write.shutdown().await;
    });
    address
}
