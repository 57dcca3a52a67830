//! The relay over IPv6: one dual-stack socket takes clients on `::1` and `127.0.0.1`, and an
//! IPv6 client is counted by its /64.

use std::net::{IpAddr, SocketAddr};

use chatter::client::{ClientError, RawClient};
use chatter::relay::{Relay, listener};
use chatter::secret::Secret;

use super::support::{ACCESS_CODE, test_config};

/// `::1`, or `None` (and a note) where the system has no IPv6 loopback.
fn ipv6_loopback_available() -> bool {
    let available = std::net::TcpListener::bind("[::1]:0").is_ok();
    if !available {
        eprintln!("no IPv6 loopback on this system; skipped");
    }
    available
}

#[tokio::test]
async fn a_dual_stack_relay_serves_ipv6_and_ipv4_and_counts_a_v6_network_as_one() {
    if !ipv6_loopback_available() {
        return;
    }
    let mut config = test_config();
    config.gate.max_access_code_failures = 2;
    let relay = Relay::new(config);
    let listener = listener::bind("[::]:0".parse().unwrap()).expect("bind [::]:0");
    let port = listener.local_addr().unwrap().port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = relay.clone();
    let task =
        tokio::spawn(async move { serving.serve(listener, async { drop(stopped.await) }).await });

    let code = Secret::from(ACCESS_CODE);
    for host in ["[::1]", "127.0.0.1"] {
        let mut client = RawClient::connect(&format!("{host}:{port}"), &code)
            .await
            .unwrap_or_else(|error| panic!("connect over {host}: {error}"));
        client.register(&format!("user{}", host.len())).await.expect("register");
    }

    // Wrong codes from ::1 ban its /64, ::/64: the whole network, not the one address.
    let v6_relay = format!("[::1]:{port}");
    for _ in 0..2 {
        let wrong = RawClient::connect(&v6_relay, &Secret::from("guess")).await;
        assert!(matches!(wrong, Err(ClientError::WrongAccessCode)), "{wrong:?}");
    }
    let gate = relay.gate();
    assert!(super::support::eventually(|| gate.is_banned("::1".parse().unwrap())).await);
    assert!(gate.is_banned("::2".parse().unwrap()), "another address of the same /64");
    assert!(!gate.is_banned("127.0.0.1".parse().unwrap()));
    assert_eq!(gate.flagged(), vec![("::1".parse::<IpAddr>().unwrap(), 2)]);
    assert!(RawClient::connect(&v6_relay, &code).await.is_err(), "refused at accept");
    let v4: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    assert!(RawClient::connect(&v4.to_string(), &code).await.is_ok(), "IPv4 unaffected");

    let _ = stop.send(());
    task.await.expect("relay task").expect("relay ran");
}
