//! What an operator sees of the real `chatter-server` binary: its log (plain text when
//! stderr is not a terminal, failed handshakes counted by reason, never an address) and
//! lifting blocks with a signal.

use std::io::Write;

use crate::repl_support::{RelayProcess, handshake};
use crate::support::ACCESS_CODE;

/// Sends bytes that are no handshake, and hangs up.
fn send_junk(address: std::net::SocketAddr) {
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.write_all(&[0, 0, 0, 3, 0xff, 0xff, 0xff]).unwrap();
}

fn assert_no_escapes_and_no_addresses(lines: &[String]) {
    for line in lines {
        assert!(!line.contains('\x1b'), "a colour escape in a log that is no terminal: {line:?}");
        if !line.starts_with("chatter-server listening on ") {
            assert!(!line.contains("127.0.0.1"), "an address in the log: {line:?}");
        }
    }
}

#[test]
fn verbose_logs_count_failed_handshakes_by_reason_in_plain_text_without_addresses() {
    let relay = RelayProcess::spawn("127.0.0.1:0", ACCESS_CODE, &["--no-report", "--verbose"], &[]);
    assert_eq!(handshake(relay.address, "not the code"), Err("wrong access code".to_owned()));
    let mut log = relay.expect_log("reason=\"wrong_access_code\" count=1");
    assert_eq!(handshake(relay.address, "also not the code"), Err("wrong access code".to_owned()));
    log.extend(relay.expect_log("reason=\"wrong_access_code\" count=2"));
    send_junk(relay.address);
    log.extend(relay.expect_log("reason=\"malformed\" count=1"));
    assert_eq!(handshake(relay.address, ACCESS_CODE), Ok(()));
    log.extend(relay.expect_log("client authenticated"));
    log.extend(relay.stop());
    assert!(log.iter().any(|line| line.contains(" INFO ")), "{log:#?}");
    assert_no_escapes_and_no_addresses(&log);
}

#[test]
fn the_log_level_has_an_environment_variable() {
    let relay = RelayProcess::spawn(
        "127.0.0.1:0",
        ACCESS_CODE,
        &["--no-report"],
        &[("CHATTER_LOG_LEVEL", "info")],
    );
    assert_eq!(handshake(relay.address, "not the code"), Err("wrong access code".to_owned()));
    let log = relay.expect_log("handshake failed");
    assert_no_escapes_and_no_addresses(&log);
    relay.stop();

    // Without it (and without --verbose) a failed handshake is not logged at all.
    let quiet = RelayProcess::spawn("127.0.0.1:0", ACCESS_CODE, &["--no-report"], &[]);
    assert_eq!(handshake(quiet.address, "not the code"), Err("wrong access code".to_owned()));
    assert_eq!(handshake(quiet.address, ACCESS_CODE), Ok(()));
    let log = quiet.stop();
    assert!(!log.iter().any(|line| line.contains("handshake failed")), "{log:#?}");
}
