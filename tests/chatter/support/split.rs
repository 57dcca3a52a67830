//! A relay that splits rooms: one address in front of several real relays, sending each
//! connection to the relay its route names. To the clients it is one server; a room of the
//! same name on it is really one group per relay, which is what a malicious relay operator
//! would do to keep two halves of a room apart.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};

/// Starts the splitter: the n-th connection accepted goes to `relays[route[n]]`; connections
/// past the route are refused. Returns the address clients connect to.
pub async fn start(relays: Vec<SocketAddr>, route: Vec<usize>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind splitter");
    let address = listener.local_addr().expect("splitter address");
    tokio::spawn(async move {
        for target in route {
            let Ok((mut client, _)) = listener.accept().await else { return };
            let relay = relays[target];
            tokio::spawn(async move {
                let Ok(mut upstream) = TcpStream::connect(relay).await else { return };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            });
        }
    });
    address
}
