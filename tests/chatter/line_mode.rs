//! Line mode: stdin is a pipe, one event per line out, plain or JSON.

use super::repl_support::{ACCESS_CODE, chatter, start_relay};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Client {
    fn start(server: &str, nick: &str, extra: &[&str]) -> (Client, tempfile::TempDir) {
        Client::start_with(server, nick, extra, &[])
    }

    /// Like [`Client::start`], with extra environment variables.
    fn start_with(
        server: &str,
        nick: &str,
        extra: &[&str],
        environment: &[(&str, &str)],
    ) -> (Client, tempfile::TempDir) {
        let home = tempfile::tempdir().unwrap();
        let mut command = chatter(home.path());
        command
            .env("CHATTER_ACCESS_CODE", ACCESS_CODE)
            .envs(environment.iter().copied())
            .args([server, "--nick", nick])
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawn chatter");
        let stdout = child.stdout.take().unwrap();
        let (sender, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if sender.send(line).is_err() {
                    break;
                }
            }
        });
        let stdin = child.stdin.take();
        (Client { child, stdin, lines, seen: Vec::new() }, home)
    }

    fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").unwrap();
        stdin.flush().unwrap();
    }

    /// Waits for a line containing `needle`, returning it.
    fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(line) => self.seen.push(line),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {
                    panic!("no line with {needle:?}; saw {:#?}", self.seen)
                }
            }
        }
    }

    fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "chatter did not exit at end of input");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn plain_lines_in_one_event_per_line_out() {
    let relay = start_relay();
    let (mut alice, _a) = Client::start(&relay.address, "alice", &[]);
    let (mut bob, _b) = Client::start(&relay.address, "bob", &[]);
    alice.send("/join lobby");
    alice.expect("you joined lobby");
    bob.send("/join lobby");
    bob.expect("you joined lobby");
    alice.expect("bob joined lobby");
    // The REPL's rule: a command after leading blanks is still a command, `//` escapes.
    bob.send("  /who");
    bob.expect("2 members");
    bob.send("//shrug");
    alice.expect("bob: /shrug");
    bob.send("hi alice");
    let line = alice.expect("bob: hi alice");
    assert!(!line.contains('\x1b') && !line.contains('\x07'), "no escapes: {line:?}");
    assert!(alice.finish().success(), "end of input quits cleanly");
    bob.expect("alice left lobby");
    assert!(bob.finish().success());
}

#[test]
fn json_events_have_type_room_from_text_time() {
    let relay = start_relay();
    let (mut alice, _a) = Client::start(&relay.address, "alice", &["--json"]);
    let (mut bob, _b) = Client::start(&relay.address, "bob", &[]);
    alice.send("/join lobby");
    alice.expect("\"joined\"");
    bob.send("/join lobby");
    bob.expect("you joined lobby");
    bob.send("two\\nlines? no: one line");
    let line = alice.expect("\"message\"");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["type"], "message");
    assert_eq!(value["room"], "lobby");
    assert_eq!(value["from"], "bob");
    assert_eq!(value["text"], "two\\nlines? no: one line");
    assert!(value["time"].as_str().is_some_and(|t| t.ends_with('Z')));
    alice.send("/quit");
    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

#[test]
fn room_passwords_come_from_the_environment_or_a_file() {
    let relay = start_relay();
    // Alice creates the room with the password from the environment.
    let password = [("CHATTER_ROOM_PASSWORD", "sesame")];
    let (mut alice, _a) = Client::start_with(&relay.address, "alice", &[], &password);
    alice.send("/join vault");
    alice.expect("you joined vault");
    // Without one, bob is refused: the room has a password, and it came from alice's variable.
    let (mut bob, _b) = Client::start(&relay.address, "bob", &[]);
    bob.send("/join vault");
    bob.expect("wrong password for room vault");
    // Carol's file, written the usual way with a newline, holds the same password.
    let home = tempfile::tempdir().unwrap();
    let password_file = home.path().join("room-password");
    std::fs::write(&password_file, "sesame\n").unwrap();
    let file = password_file.to_str().unwrap();
    let (mut carol, _c) = Client::start(&relay.address, "carol", &["--room-password-file", file]);
    carol.send("/join vault");
    carol.expect("you joined vault");
    alice.expect("carol joined vault");
    assert!(alice.finish().success());
    assert!(bob.finish().success());
    assert!(carol.finish().success());
}

/// The secrets still work after the client took them out of its environment, where no other
/// process can read them any more; and the client cannot dump core.
#[cfg(target_os = "linux")]
#[test]
fn secrets_from_the_environment_leave_it() {
    let relay = start_relay();
    let password = "room-env-secret-77b2";
    let env = [("CHATTER_ROOM_PASSWORD", password)];
    let (mut alice, _a) = Client::start_with(&relay.address, "alice", &[], &env);
    alice.send("/join vault");
    alice.expect("you joined vault");
    let (mut bob, _b) = Client::start(&relay.address, "bob", &[]);
    bob.send("/join vault");
    bob.expect("wrong password for room vault");
    let (mut carol, _c) = Client::start_with(&relay.address, "carol", &[], &env);
    carol.send("/join vault");
    carol.expect("you joined vault");
    for client in [&alice, &carol] {
        // Root reads any process's environment; another user reads none of a non-dumpable
        // process, which is protection too, but then the wipe cannot be observed.
        // SAFETY: getuid has no preconditions.
        if unsafe { libc::getuid() } == 0 {
            super::hardening::assert_environ_lacks(client.child.id(), &[ACCESS_CODE, password]);
        }
        super::hardening::assert_core_dumps_off(client.child.id());
    }
    assert!(alice.finish().success());
    assert!(bob.finish().success());
    assert!(carol.finish().success());
}

#[test]
fn line_mode_never_prompts_for_secrets() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let output = chatter(home.path())
        .args([relay.address.as_str(), "--nick", "alice"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("CHATTER_ACCESS_CODE"), "{stderr}");
}

#[test]
fn a_wrong_access_code_is_reported() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let output = chatter(home.path())
        .env("CHATTER_ACCESS_CODE", "not the code")
        .args([relay.address.as_str(), "--nick", "alice"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("wrong access code"), "{stderr}");
}

#[test]
fn json_bots_hear_the_link_drop_and_come_back_by_themselves() {
    let (mut relay, address) = super::repl_support::spawn_relay_binary("127.0.0.1:0", ACCESS_CODE);
    let address = address.to_string();
    let (mut bot, _b) = Client::start(&address, "bot", &["--json"]);
    let (mut human, _h) = Client::start(&address, "human", &[]);
    bot.send("/join lobby");
    bot.expect("\"joined\"");
    human.send("/join lobby");
    human.expect("you joined lobby");
    bot.expect("human");

    let pid = relay.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = relay.wait();
    let lost: serde_json::Value = serde_json::from_str(&bot.expect("\"connection_lost\"")).unwrap();
    assert!(lost["reason"].is_string(), "{lost}");
    let retry: serde_json::Value = serde_json::from_str(&bot.expect("\"reconnecting\"")).unwrap();
    assert_eq!(retry["attempt"], 1, "{retry}");
    assert!(retry["retry_in_ms"].as_u64().is_some_and(|ms| ms < 1000), "{retry}");
    // A line while offline is kept, and said so.
    bot.send("said while the relay was down");
    let queued: serde_json::Value = serde_json::from_str(&bot.expect("\"queued\"")).unwrap();
    assert_eq!(queued["waiting"], 1, "{queued}");

    (relay, _) = super::repl_support::spawn_relay_binary(&address, ACCESS_CODE);
    let back: serde_json::Value = serde_json::from_str(&bot.expect("\"reconnected\"")).unwrap();
    assert_eq!(back["relay_restarted"], true, "{back}");
    bot.expect("back in the room");
    bot.expect("\"queue_sent\"");
    human.expect("said while the relay was down");
    human.send("welcome back, bot");
    let message: serde_json::Value = serde_json::from_str(&bot.expect("welcome back")).unwrap();
    assert_eq!(message["type"], "message");
    let _ = relay.kill();
    let _ = relay.wait();
}

#[test]
fn a_taken_nickname_is_reported_with_one_to_try() {
    let relay = start_relay();
    let (mut alice, _a) = Client::start(&relay.address, "alice", &[]);
    alice.send("/join lobby");
    alice.expect("you joined lobby");
    let home = tempfile::tempdir().unwrap();
    let output = chatter(home.path())
        .env("CHATTER_ACCESS_CODE", ACCESS_CODE)
        .args([relay.address.as_str(), "--nick", "Alice"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("the nickname Alice is taken there — try --nick Alice-2"), "{stderr}");
    assert!(alice.finish().success());
}

/// A bot whose address the relay blocked (someone else behind the same address guessed the
/// access code) is told once, with the minute it waits; the operator lifts the block with
/// SIGUSR1, without a restart. (The minute itself, and "once", are the core's, tested on
/// virtual time in `client::core`.)
#[test]
fn a_blocked_bot_is_told_so_and_the_operator_lifts_the_block_with_a_signal() {
    use super::repl_support::{RelayProcess, handshake};
    use super::support::cutter::{Cut, LinkCutter};
    let relay = RelayProcess::spawn(
        "127.0.0.1:0",
        ACCESS_CODE,
        &["--no-report", "--max-access-code-failures", "2"],
        &[],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let cutter = runtime.block_on(LinkCutter::start(relay.address));
    let (mut bot, _b) = Client::start(&cutter.address.to_string(), "bot", &["--json"]);
    bot.send("/join lobby");
    bot.expect("\"joined\"");

    // Someone else at the bot's address (all of this is 127.0.0.1) guesses twice.
    for _ in 0..2 {
        assert_eq!(handshake(relay.address, "a guess"), Err("wrong access code".to_owned()));
    }
    cutter.cut(Cut::Close);
    cutter.restore();
    let told: serde_json::Value = serde_json::from_str(&bot.expect("\"address_blocked\"")).unwrap();
    assert_eq!(told["retry_in_ms"], 60_000, "{told}");
    assert!(told["text"].as_str().unwrap().contains("operator can lift the block"), "{told}");
    let retry: serde_json::Value = serde_json::from_str(&bot.expect("\"reconnecting\"")).unwrap();
    assert!(retry["retry_in_ms"].as_u64().is_some_and(|ms| ms >= 60_000), "{retry}");
    assert!(retry["last_error"].as_str().unwrap().contains("blocked your address"), "{retry}");
    assert_eq!(
        handshake(relay.address, ACCESS_CODE).unwrap_err(),
        "the server refused the connection: this server has blocked your address after too many failed attempts; its operator can lift the block"
    );

    relay.signal("USR1");
    relay.expect_log("lifted 1 block(s) on SIGUSR1");
    assert_eq!(handshake(relay.address, ACCESS_CODE), Ok(()), "in again, without a restart");
    drop(bot);
    relay.stop();
}

/// A bot stopped (as a laptop sleeps) while its relay restarted notices only when it runs
/// again; the time it names for what it missed is when it last heard the relay, before it
/// was stopped, not when it noticed. (Three real seconds pass: the stop itself.)
#[test]
fn after_a_long_absence_the_missed_since_time_is_when_the_relay_was_last_heard() {
    let (mut relay, address) = super::repl_support::spawn_relay_binary("127.0.0.1:0", ACCESS_CODE);
    let address = address.to_string();
    let (mut bot, _b) = Client::start(&address, "bot", &["--json"]);
    bot.send("/join lobby");
    bot.expect("\"joined\"");

    let pid = bot.child.id().to_string();
    let signal = |name: &str, pid: &str| {
        let status = std::process::Command::new("kill").args([name, pid]).status().unwrap();
        assert!(status.success(), "kill {name} {pid}");
    };
    signal("-STOP", &pid);
    let stopped_at = std::time::SystemTime::now();
    signal("-KILL", &relay.id().to_string());
    let _ = relay.wait();
    (relay, _) = super::repl_support::spawn_relay_binary(&address, ACCESS_CODE);
    std::thread::sleep(Duration::from_secs(3).saturating_sub(stopped_at.elapsed().unwrap()));
    signal("-CONT", &pid);

    let back: serde_json::Value = serde_json::from_str(&bot.expect("\"reconnected\"")).unwrap();
    let since = chrono::DateTime::parse_from_rfc3339(back["offline_since"].as_str().unwrap())
        .unwrap_or_else(|error| panic!("{error}: {back}"));
    let since = std::time::SystemTime::from(since);
    // RFC 3339 to the second: the last heard, rounded down, is at or before the stop.
    assert!(since <= stopped_at, "offline since {back} is after the stop");
    assert!(stopped_at.duration_since(since).unwrap() < Duration::from_secs(10), "{back}");
    let _ = relay.kill();
    let _ = relay.wait();
}

/// A bot pipes 200 lines at once: line mode paces them to the relay's limit, so every one
/// arrives, once, in order, and none is refused. (About 7.5 s: 50 at once, then 20 a second.)
#[test]
fn a_piped_burst_of_200_lines_arrives_whole_once_and_in_order() {
    let relay = start_relay();
    let (mut bob, _b) = Client::start(&relay.address, "bob", &[]);
    bob.send("/join lobby");
    bob.expect("you joined lobby");
    let (mut alice, _a) = Client::start(&relay.address, "alice", &["--json"]);
    alice.send("/join lobby");
    for index in 0..200 {
        alice.send(&format!("line {index:03}"));
    }
    for index in 0..200 {
        bob.expect(&format!("alice: line {index:03}"));
    }
    let out_of_order: Vec<&String> =
        bob.seen.iter().filter(|line| line.contains("alice: line")).collect();
    assert!(out_of_order.is_empty(), "skipped over: {out_of_order:?}");
    alice.send("/quit");
    let refused: Vec<String> = alice
        .lines
        .recv_timeout(Duration::from_secs(5))
        .into_iter()
        .chain(alice.lines.try_iter())
        .chain(alice.seen.iter().cloned())
        .filter(|line| line.contains("not_delivered") || line.contains("\"error\""))
        .collect();
    assert!(refused.is_empty(), "{refused:?}");
    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

/// Lines read while the queue of lines waiting for their turn is full are not sent, and
/// each is named; the first ones go.
#[test]
fn a_burst_past_the_waiting_queue_names_every_line_not_sent() {
    let relay = start_relay();
    let (mut alice, _a) = Client::start(&relay.address, "alice", &["--json"]);
    alice.send("/join lobby");
    let lines = chatter::repl::line_mode::MAX_WAITING_LINES + 100;
    for index in 0..lines {
        alice.send(&format!("line {index:03}"));
    }
    let last = format!("line {:03}", lines - 1);
    let named: serde_json::Value =
        serde_json::from_str(&alice.expect(&format!("\"{last}\""))).unwrap();
    assert_eq!(named["type"], "not_sent", "{named}");
    assert_eq!(named["texts"], serde_json::json!([last]), "{named}");
    assert!(named["reason"].as_str().unwrap().contains("waiting for their turn"), "{named}");
    // The first line may have gone out before the last was named, or after.
    let first = match alice.seen.iter().find(|line| line.contains("\"line 000\"")) {
        Some(line) => line.clone(),
        None => alice.expect("\"line 000\""),
    };
    let first: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(first["type"], "message", "the first line went: {first}");
    let quoted_last = format!("\"{last}\"");
    let also_sent = alice.seen.iter().filter(|line| line.contains(&quoted_last)).count();
    assert_eq!(also_sent, 0, "the last line was also sent");
    let _ = alice.child.kill();
    let _ = alice.child.wait();
}

/// A port on loopback with nothing listening (yet).
fn unused_address() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A bot started before its relay tries again as a lost link does, saying so in events,
/// and gets in once the relay is up.
#[test]
fn a_bot_started_before_its_relay_retries_with_events_until_it_is_up() {
    let address = unused_address();
    let (mut bot, _b) = Client::start(&address, "bot", &["--json"]);
    let first: serde_json::Value = serde_json::from_str(&bot.expect("\"connecting\"")).unwrap();
    assert_eq!(first["attempt"], 2, "{first}");
    assert!(first["retry_in_ms"].as_u64().is_some_and(|ms| ms < 1000), "{first}");
    assert!(first["last_error"].as_str().unwrap().contains("cannot reach"), "{first}");
    let second: serde_json::Value = serde_json::from_str(&bot.expect("\"connecting\"")).unwrap();
    assert_eq!(second["attempt"], 3, "{second}");

    let (mut relay, _) = super::repl_support::spawn_relay_binary(&address, ACCESS_CODE);
    bot.send("/join lobby");
    bot.expect("\"joined\"");
    bot.send("/quit");
    assert!(bot.finish().success());
    let _ = relay.kill();
    let _ = relay.wait();
}

/// A wrong access code ends line mode at once: an error event for the program reading
/// stdout, a line on stderr and a failing exit status for the script.
#[test]
fn a_wrong_access_code_is_an_error_event_and_a_failing_exit() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let output = chatter(home.path())
        .env("CHATTER_ACCESS_CODE", "not the code")
        .args([relay.address.as_str(), "--nick", "bot", "--json"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    let event: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON event");
    assert_eq!(event["type"], "error", "{event}");
    assert!(event["text"].as_str().unwrap().contains("wrong access code"), "{event}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("wrong access code"));
}

/// A bot whose address is blocked when it starts hears so once, and its next try is a minute
/// away (it keeps trying: the refusal may be forged).
#[test]
fn a_bot_blocked_at_start_is_told_once_and_waits_a_minute() {
    use super::repl_support::{RelayProcess, handshake};
    let relay = RelayProcess::spawn(
        "127.0.0.1:0",
        ACCESS_CODE,
        &["--no-report", "--max-access-code-failures", "1"],
        &[],
    );
    assert_eq!(handshake(relay.address, "a guess"), Err("wrong access code".to_owned()));
    let (mut bot, _b) = Client::start(&relay.address.to_string(), "bot", &["--json"]);
    let told: serde_json::Value = serde_json::from_str(&bot.expect("\"address_blocked\"")).unwrap();
    assert_eq!(told["retry_in_ms"], 60_000, "{told}");
    let next: serde_json::Value = serde_json::from_str(&bot.expect("\"connecting\"")).unwrap();
    assert_eq!(next["attempt"], 2, "{next}");
    assert!(next["retry_in_ms"].as_u64().is_some_and(|ms| ms >= 60_000), "{next}");
    let _ = bot.child.kill();
    let _ = bot.child.wait();
    relay.stop();
}

/// A relay stricter than the default refuses what is over its limit: every refused line is
/// named, so nothing is lost without a word.
#[test]
fn lines_a_stricter_relay_refuses_are_each_named() {
    use super::repl_support::RelayProcess;
    let relay = RelayProcess::spawn(
        "127.0.0.1:0",
        ACCESS_CODE,
        &["--no-report", "--rate", "0.1", "--burst", "2"],
        &[],
    );
    let (mut bot, _b) = Client::start(&relay.address.to_string(), "bot", &["--json"]);
    bot.send("/join lobby");
    bot.expect("\"joined\"");
    for index in 0..6 {
        bot.send(&format!("line {index}"));
    }
    // Two within the burst go; the four after them are refused, each by name.
    for index in 2..6 {
        let refused: serde_json::Value =
            serde_json::from_str(&bot.expect("\"message_not_delivered\"")).unwrap();
        assert_eq!(refused["line"], format!("line {index}"), "{refused}");
        assert_eq!(refused["reason"], "rate_limited", "{refused}");
    }
    let _ = bot.child.kill();
    let _ = bot.child.wait();
    relay.stop();
}

#[test]
fn joined_at_start_in_several_rooms_every_event_names_its_room_and_others_are_marked() {
    let relay = start_relay();
    let joins = ["--join", "dev", "--join", "ops"];
    let (mut alice, _a) =
        Client::start(&relay.address, "alice", &[&["--json"], &joins[..]].concat());
    // One after the other, so that alice founds both rooms and hears the others join.
    alice.expect("you joined ops");
    let (mut carol, _c) = Client::start(&relay.address, "carol", &joins);
    carol.expect("you joined ops");
    let (mut bob, _b) = Client::start(&relay.address, "bob", &["--join", "dev"]);
    bob.expect("you joined dev");
    alice.expect("bob joined dev");

    // Carol's current room is ops, the last joined: a line of dev is marked with its room.
    bob.send("hello dev");
    let line = carol.expect("bob: hello dev");
    assert!(line.starts_with("[dev] "), "marked with its room: {line:?}");
    let line = alice.expect("hello dev");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!((value["type"].as_str(), value["room"].as_str()), (Some("message"), Some("dev")));

    // `/switch` by place answers with its own event, and the room's lines are no longer marked.
    alice.send("/switch 1");
    let line = alice.expect("\"switched\"");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["room"], "dev");
    carol.send("/switch dev");
    carol.expect("now in dev");
    bob.send("again");
    let line = carol.expect("bob: again");
    assert!(!line.starts_with('['), "the current room is not marked: {line:?}");

    // Own lines name the room they went to; `/part` leaves one room and keeps the other.
    alice.send("to dev");
    let line = alice.expect("to dev");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!(value["room"], "dev");
    alice.send("/part dev");
    alice.expect("\"left\"");
    alice.send("/rooms");
    let line = alice.expect("\"my_room\"");
    let value: serde_json::Value = serde_json::from_str(&line).expect("valid JSON");
    assert_eq!((value["room"].as_str(), value["current"].as_bool()), (Some("ops"), Some(true)));
    for client in [alice, bob, carol] {
        assert!(client.finish().success());
    }
}

/// Two bots in one room: `/msg` opens a DM, whose events carry `"room": "@nick"` with the
/// documented types; a third with `--dm nobody` refuses, and the sender hears so.
#[test]
fn bots_send_direct_messages_and_hear_a_refusal() {
    let relay = start_relay();
    let (mut alice, _a) = Client::start(&relay.address, "alice", &["--json", "--join", "dev"]);
    alice.expect("\"joined\"");
    let (mut bob, _b) = Client::start(&relay.address, "bob", &["--json", "--join", "dev"]);
    bob.expect("\"joined\"");
    let (mut carol, _c) =
        Client::start(&relay.address, "carol", &["--json", "--dm", "nobody", "--join", "dev"]);
    carol.expect("\"joined\"");
    alice.expect("carol joined dev");

    alice.send("/msg bob psst");
    let sent: serde_json::Value = serde_json::from_str(&alice.expect("\"dm_sent\"")).unwrap();
    assert_eq!((sent["room"].as_str(), sent["to"].as_str()), (Some("@bob"), Some("bob")), "{sent}");
    let opened: serde_json::Value = serde_json::from_str(&bob.expect("\"dm_opened\"")).unwrap();
    assert_eq!(opened["room"], "@alice", "{opened}");
    let message: serde_json::Value = serde_json::from_str(&bob.expect("psst")).unwrap();
    assert_eq!(
        (message["type"].as_str(), message["room"].as_str()),
        (Some("message"), Some("@alice"))
    );

    alice.send("/msg carol hello?");
    let refused: serde_json::Value = serde_json::from_str(&alice.expect("\"dm_refused\"")).unwrap();
    assert_eq!(refused["from"], "carol", "{refused}");
    alice.expect("\"not_sent\"");
    for bot in [alice, bob, carol] {
        assert!(bot.finish().success());
    }
}
