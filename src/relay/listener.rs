//! Binding the relay's listening socket: IPv6 and IPv4 on one socket where the system allows.
//!
//! The unspecified IPv6 address (`[::]:PORT`, the default) is bound dual-stack, with
//! `IPV6_V6ONLY` off whatever the system default (`net.ipv6.bindv6only`), so IPv4 clients
//! arrive too, as `::ffff:a.b.c.d` (the relay counts them as IPv4; see `gate`). On a host
//! without IPv6 that bind fails, and the relay listens on `0.0.0.0:PORT` instead. Any other
//! address is bound as given.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::TcpListener;

/// Connections the kernel queues before the relay accepts them.
const BACKLOG: i32 = 1024;

/// Binds `address`, dual-stack if it is the unspecified IPv6 address, falling back to IPv4
/// when the system has no IPv6. Needs a tokio runtime.
pub fn bind(address: SocketAddr) -> io::Result<TcpListener> {
    match address {
        SocketAddr::V6(v6) if v6.ip().is_unspecified() => match bind_socket(address, true) {
            Ok(listener) => Ok(listener),
            Err(error) if ipv6_unavailable(&error) => {
                tracing::warn!("no IPv6 on this system; listening on IPv4 only");
                bind_socket(SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), v6.port()), false)
            }
            Err(error) => Err(error),
        },
        _ => bind_socket(address, false),
    }
}

fn bind_socket(address: SocketAddr, dual_stack: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(address), Type::STREAM, Some(Protocol::TCP))?;
    if dual_stack {
        socket.set_only_v6(false)?;
    }
    // As tokio's own `TcpListener::bind` does: a restarted relay can bind at once even while
    // connections of the last run linger in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    socket.listen(BACKLOG)?;
    TcpListener::from_std(socket.into())
}

/// Whether a bind failed because the system has no IPv6 (disabled, or not built in).
fn ipv6_unavailable(error: &io::Error) -> bool {
    #[cfg(unix)]
    {
        matches!(error.raw_os_error(), Some(libc::EAFNOSUPPORT | libc::EADDRNOTAVAIL))
    }
    #[cfg(not(unix))]
    {
        error.kind() == io::ErrorKind::AddrNotAvailable
    }
}
