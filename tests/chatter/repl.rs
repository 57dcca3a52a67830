//! The interactive client through a real pseudo-terminal.

use super::repl_support::{ACCESS_CODE, CountingProxy, chatter, start_relay};
use expectrl::{ControlCode, Expect, Session};
use std::path::Path;
use std::time::{Duration, Instant};

type Pty = expectrl::session::OsSession;

fn spawn(home: &Path, server: &str, nick: &str) -> Pty {
    let mut command = chatter(home);
    command.env("CHATTER_ACCESS_CODE", ACCESS_CODE).args([server, "--nick", nick]);
    let mut pty = Session::spawn(command).expect("spawn chatter in a pty");
    pty.set_expect_timeout(Some(Duration::from_secs(15)));
    pty.expect("connected to").expect("connects");
    pty
}

fn join(pty: &mut Pty, room: &str) {
    pty.send_line(format!("/join {room}")).unwrap();
    pty.expect("password for").unwrap();
    pty.send_line("").unwrap();
    pty.expect(format!("you joined {room}").as_str()).expect("joined");
}

fn wait_for_exit(pty: &Pty) -> bool {
    use expectrl::process::Healthcheck;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if !pty.get_process().is_alive().unwrap_or(false) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn messages_reach_the_other_member_and_mentions_ring() {
    let relay = start_relay();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = spawn(home_a.path(), &relay.address, "alice");
    let mut bob = spawn(home_b.path(), &relay.address, "bob");
    join(&mut alice, "lobby");
    join(&mut bob, "lobby");
    alice.expect("bob joined lobby").unwrap();

    alice.send_line("hello bob, příliš žluťoučký kůň").unwrap();
    bob.expect("alice: hello bob, příliš žluťoučký kůň\x07").expect("message with a bell");
    alice.expect("alice: hello bob").expect("own line shown");

    alice.send_line("/me waves").unwrap();
    bob.expect("* alice waves").unwrap();

    bob.send_line("/who").unwrap();
    bob.expect("2 members").unwrap();

    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice), "alice exits after /quit");
    bob.expect("alice left lobby").unwrap();
    bob.send(ControlCode::EndOfTransmission).unwrap();
    assert!(wait_for_exit(&bob), "Ctrl-D on an empty line quits");
}

#[test]
fn escape_sequences_from_peers_are_shown_not_obeyed() {
    let relay = start_relay();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = spawn(home_a.path(), &relay.address, "alice");
    let mut bob = spawn(home_b.path(), &relay.address, "bob");
    join(&mut alice, "lobby");
    join(&mut bob, "lobby");
    alice.expect("bob joined lobby").unwrap();
    // Bracketed paste carries the ESC through reedline as text.
    bob.send("\x1b[200~\x1b]0;pwned\x07 and\nalice: fake line\x1b[201~").unwrap();
    bob.send("\r").unwrap();
    alice.expect("bob: ^[]0;pwned^G and").expect("escapes made visible");
    // "HH:MM bob: " is 11 columns: the second line starts under the text, never at column 0.
    // The line starts after a CR or LF (reedline's printer erases each row with a CR first).
    alice.expect(expectrl::Regex("[\r\n] {11}alice: fake line")).expect("second line indented");
}

#[test]
fn typos_get_a_suggestion_and_only_commands_reach_the_history_file() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let mut alice = spawn(home.path(), &relay.address, "alice");
    alice.send_line("/jion lobby").unwrap();
    alice.expect("unknown command /jion — did you mean /join?").unwrap();
    join(&mut alice, "lobby");
    alice.send_line("a secret plan").unwrap();
    alice.expect("alice: a secret plan").unwrap();
    alice.send_line("/me hides the map").unwrap();
    alice.expect("* alice hides the map").unwrap();
    alice.send_line("//slashed secret").unwrap();
    alice.expect("alice: /slashed secret").unwrap();
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));

    let history = home.path().join("data").join("chatter").join("history");
    let text = std::fs::read_to_string(&history).expect("history file");
    assert!(text.contains("/join lobby"), "{text}");
    for chat in ["secret plan", "the map", "slashed"] {
        assert!(!text.contains(chat), "chat on disk: {text}");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&history).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

/// Whether the terminal on the far side of `pty` is in canonical mode with echo on, the
/// state a shell expects back.
#[cfg(unix)]
fn terminal_is_cooked(pty: &Pty) -> bool {
    use std::os::fd::AsRawFd;
    let master = pty.get_process().get_raw_handle().expect("the pty's master side");
    // SAFETY: `termios` is plain data that `tcgetattr` fills; the descriptor is open.
    let mut termios: libc::termios = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::tcgetattr(master.as_raw_fd(), &mut termios) }, 0, "tcgetattr");
    termios.c_lflag & libc::ICANON != 0 && termios.c_lflag & libc::ECHO != 0
}

/// Cleanly: the process exits with status 0, the terminal is back in the mode it was given
/// in, and the client said goodbye to the relay (which answers a Quit with a Goodbye; a
/// client that just vanished hears nothing more).
#[cfg(unix)]
#[test]
fn sigterm_quits_cleanly() {
    use expectrl::process::unix::WaitStatus;
    let relay = start_relay();
    let proxy = CountingProxy::start(&relay.address);
    let home = tempfile::tempdir().unwrap();
    // A pseudo-terminal starts in no particular mode; give chatter the usual cooked one.
    let mut command = std::process::Command::new("sh");
    let chatter = chatter(home.path());
    for (name, value) in chatter.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command
        .env("CHATTER_ACCESS_CODE", ACCESS_CODE)
        .args(["-c", "stty sane && exec \"$0\" \"$@\""])
        .arg(chatter.get_program())
        .args([proxy.address.as_str(), "--nick", "alice"]);
    let mut alice = Session::spawn(command).expect("spawn chatter in a pty");
    alice.set_expect_timeout(Some(Duration::from_secs(15)));
    alice.expect("connected to").expect("connects");
    // Ask the relay something so that everything it had to say has been said.
    alice.send_line("/rooms").unwrap();
    alice.expect("no rooms").unwrap();
    assert!(!terminal_is_cooked(&alice), "the prompt runs in raw mode");
    let before = proxy.bytes_from_server();

    let pid = alice.get_process().pid();
    std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match alice.get_process().status() {
            Ok(WaitStatus::StillAlive) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(50));
            }
            other => break other,
        }
    };
    assert!(matches!(status, Ok(WaitStatus::Exited(_, 0))), "{status:?}");
    assert!(terminal_is_cooked(&alice), "the terminal is restored");
    proxy.wait_for_server_close();
    assert!(proxy.bytes_from_server() > before, "the relay answered a Quit with a Goodbye");
}

#[test]
fn without_a_server_a_local_relay_starts_and_says_how_to_join() {
    let home = tempfile::tempdir().unwrap();
    let mut command = chatter(home.path());
    command.args(["--nick", "alice"]);
    let mut pty = Session::spawn(command).unwrap();
    pty.set_expect_timeout(Some(Duration::from_secs(15)));
    let found = pty
        .expect(expectrl::Regex("CHATTER_ACCESS_CODE=[A-Za-z0-9]+ \\S+ 127\\.0\\.0\\.1:[0-9]+"))
        .unwrap();
    let command_line = String::from_utf8_lossy(found.get(0).unwrap()).to_string();
    pty.expect("connected to").unwrap();
    join(&mut pty, "demo");

    // A second client joins with exactly the printed code and address.
    let code =
        command_line.split_whitespace().next().unwrap().trim_start_matches("CHATTER_ACCESS_CODE=");
    let address = command_line.split_whitespace().last().unwrap();
    let home_b = tempfile::tempdir().unwrap();
    let mut bob_command = chatter(home_b.path());
    bob_command.env("CHATTER_ACCESS_CODE", code).args([address, "--nick", "bob"]);
    let mut bob = Session::spawn(bob_command).unwrap();
    bob.set_expect_timeout(Some(Duration::from_secs(15)));
    bob.expect("connected to").unwrap();
    join(&mut bob, "demo");
    pty.expect("bob joined demo").unwrap();
    pty.send_line("/quit").unwrap();
    assert!(wait_for_exit(&pty));
}

#[test]
fn the_prompt_shows_the_reconnect_and_the_room_comes_back_by_itself() {
    use super::repl_support::spawn_relay_binary;
    let (mut relay, address) = spawn_relay_binary("127.0.0.1:0", ACCESS_CODE);
    let address = address.to_string();
    let home = tempfile::tempdir().unwrap();
    let mut alice = spawn(home.path(), &address, "alice");
    join(&mut alice, "lobby");

    let pid = relay.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = relay.wait();
    alice.expect("connection lost").unwrap();
    alice.expect("alice@lobby (reconnecting, attempt").expect("the prompt says so");
    alice.send_line("typed while the relay was down").unwrap();
    alice.expect("kept to send once the room is back (1 waiting)").unwrap();
    alice.expect("1 waiting)> ").expect("and the prompt counts it");

    (relay, _) = spawn_relay_binary(&address, ACCESS_CODE);
    alice.expect("back in the room").unwrap();
    alice.expect("sent 1 line(s) typed while offline").unwrap();
    alice.expect("alice@lobby> ").expect("the prompt is back to normal");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
    let _ = relay.kill();
    let _ = relay.wait();
}

/// The README's first flow, as a new user on one account runs it: `chatter` with no server
/// starts a relay and prints the command for a second terminal; the second terminal runs it
/// (same HOME, so the same identity), is told its nickname is taken and offered another;
/// both join one room and talk both ways, and `/who` shows one identity behind both names.
#[test]
fn the_readme_flow_works_from_two_terminals_of_one_user() {
    let home = tempfile::tempdir().unwrap();
    let mut first = Session::spawn(chatter(home.path())).expect("spawn the first chatter");
    first.set_expect_timeout(Some(Duration::from_secs(15)));
    let printed = first
        .expect(expectrl::Regex(
            r"join the same chat with:\s+CHATTER_ACCESS_CODE=([A-Za-z0-9]+) (\S+) (\S+)",
        ))
        .expect("the second terminal's command is printed");
    let text = |index: usize| String::from_utf8(printed.get(index).unwrap().to_vec()).unwrap();
    let (code, program, server) = (text(1), text(2), text(3));
    assert_eq!(program, env!("CARGO_BIN_EXE_chatter"), "the command runs this chatter");
    first.expect("nickname: ").unwrap();
    first.send_line("alice").unwrap();
    first.expect("connected to").expect("the first terminal connects");

    let mut command = chatter(home.path());
    command.env("CHATTER_ACCESS_CODE", &code).arg(&server);
    let mut second = Session::spawn(command).expect("spawn the second chatter");
    second.set_expect_timeout(Some(Duration::from_secs(15)));
    second.expect("nickname: ").unwrap();
    second.send_line("alice").unwrap();
    second.expect("the nickname alice is taken").expect("told the name is taken");
    second.expect("/nick alice-2").expect("offered another");
    second.send_line("/nick alice-2").unwrap();
    second.expect("connected to").expect("the second terminal connects");

    join(&mut first, "lobby");
    join(&mut second, "lobby");
    first.expect("alice-2 joined lobby").unwrap();
    first.send_line("hello from the first terminal").unwrap();
    second.expect("alice: hello from the first terminal").unwrap();
    second.send_line("and back from the second").unwrap();
    first.expect("alice-2: and back from the second").unwrap();
    first.send_line("/who").unwrap();
    first.expect("same identity as alice").expect("one identity behind both names");

    second.send_line("/quit").unwrap();
    assert!(wait_for_exit(&second), "the second terminal exits after /quit");
    first.send_line("/quit").unwrap();
    assert!(wait_for_exit(&first), "the first terminal exits after /quit");
}

/// `/nick` outside rooms is a new session under the new name, with the same identity;
/// inside a room it says to leave first.
#[test]
fn nick_changes_the_nickname_outside_rooms_only() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let mut alice = spawn(home.path(), &relay.address, "alice");
    join(&mut alice, "lobby");
    alice.send_line("/nick alicia").unwrap();
    alice.expect("leave the room first").expect("refused inside a room");
    alice.send_line("/leave").unwrap();
    alice.expect("you left lobby").unwrap();
    alice.send_line("/nick alicia").unwrap();
    alice.expect("connecting as alicia").unwrap();
    alice.expect("connected to").expect("a new session under the new name");
    alice.send_line("/whoami").unwrap();
    alice.expect("you are alicia").unwrap();
    // The old name is free again: another user takes it.
    let other_home = tempfile::tempdir().unwrap();
    let mut other = spawn(other_home.path(), &relay.address, "alice");
    other.send_line("/quit").unwrap();
    assert!(wait_for_exit(&other), "the other alice quits");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice), "alicia quits");
}

/// `/join` of the room we are in asks for no password and changes nothing: nobody sees a
/// leave or a join, and a mistyped password cannot throw us out.
#[test]
fn joining_the_room_you_are_in_says_so_and_changes_nothing() {
    let relay = start_relay();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = spawn(home_a.path(), &relay.address, "alice");
    let mut bob = spawn(home_b.path(), &relay.address, "bob");
    join(&mut alice, "lobby");
    join(&mut bob, "lobby");
    alice.expect("bob joined lobby").unwrap();

    alice.send_line("/join lobby").unwrap();
    let said = alice.expect(expectrl::Regex("you are already in lobby|password for")).unwrap();
    assert_eq!(said.get(0), Some(&b"you are already in lobby"[..]), "no password asked for");
    alice.send_line("still here").unwrap();
    let before = bob.expect("alice: still here").unwrap();
    let before = String::from_utf8_lossy(before.before());
    assert!(!before.contains("alice left"), "bob saw a leave: {before}");
    assert!(!before.contains("alice joined"), "bob saw a join: {before}");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
}

/// During an outage the prompt is the status line: each reconnection attempt repaints it in
/// place, without a key pressed, and none adds a line; coming back is one line.
#[test]
fn the_link_state_updates_the_prompt_in_place_and_adds_no_line_per_attempt() {
    use super::repl_support::spawn_relay_binary;
    let (mut relay, address) = spawn_relay_binary("127.0.0.1:0", ACCESS_CODE);
    let address = address.to_string();
    let home = tempfile::tempdir().unwrap();
    let mut alice = spawn(home.path(), &address, "alice");
    join(&mut alice, "lobby");

    let pid = relay.id().to_string();
    assert!(std::process::Command::new("kill").args(["-KILL", &pid]).status().unwrap().success());
    let _ = relay.wait();
    alice.expect("connection lost").unwrap();
    // Attempts 1 and 2 fail within about two seconds; nothing is typed meanwhile.
    let during = alice.expect("alice@lobby (reconnecting, attempt 3)> ").expect("repainted");
    let during = String::from_utf8_lossy(during.before()).into_owned();
    assert!(!during.contains("reconnecting: attempt"), "a line per attempt: {during:?}");

    (relay, _) = spawn_relay_binary(&address, ACCESS_CODE);
    let back = alice.expect("back in the room").unwrap();
    let back = String::from_utf8_lossy(back.before()).into_owned();
    assert!(!back.contains("reconnecting: attempt"), "a line per attempt: {back:?}");
    assert_eq!(back.matches("reconnected as a new session").count(), 1, "{back:?}");
    alice.expect("alice@lobby> ").expect("the prompt is back to normal");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
    let _ = relay.kill();
    let _ = relay.wait();
}

/// A wrong access code at start-up asks again, with hidden input, and the right one gets in.
#[test]
fn a_wrong_access_code_at_start_is_asked_for_again_hidden() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let mut command = chatter(home.path());
    command.env("CHATTER_ACCESS_CODE", "not the code").args([&relay.address, "--nick", "alice"]);
    let mut alice = Session::spawn(command).expect("spawn chatter in a pty");
    alice.set_expect_timeout(Some(Duration::from_secs(15)));
    alice.expect("wrong access code for").unwrap();
    alice.expect("(Ctrl-D to give up): ").expect("asked again");
    alice.send_line(ACCESS_CODE).unwrap();
    let after = alice.expect("connected to").expect("in with the right code");
    let after = String::from_utf8_lossy(after.before()).into_owned();
    assert!(!after.contains(ACCESS_CODE), "the code was echoed: {after:?}");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
}

/// Started before its relay, the REPL tries again as a lost link does, one line for the
/// first failure and the prompt for the attempts after it, and connects once it is up.
#[test]
fn started_before_the_relay_the_prompt_counts_the_attempts_until_it_is_up() {
    use super::repl_support::spawn_relay_binary;
    let address = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().to_string()
    };
    let home = tempfile::tempdir().unwrap();
    let mut command = chatter(home.path());
    command.env("CHATTER_ACCESS_CODE", ACCESS_CODE).args([&address, "--nick", "alice"]);
    let mut alice = Session::spawn(command).expect("spawn chatter in a pty");
    alice.set_expect_timeout(Some(Duration::from_secs(15)));
    alice.expect("could not connect (cannot reach").unwrap();
    let during = alice.expect("alice (connecting, attempt 3)> ").expect("the prompt counts");
    let during = String::from_utf8_lossy(during.before()).into_owned();
    assert_eq!(during.matches("could not connect").count(), 0, "one line: {during:?}");
    let (mut relay, _) = spawn_relay_binary(&address, ACCESS_CODE);
    alice.expect("connected to").unwrap();
    alice.expect("alice (no room)> ").unwrap();
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
    let _ = relay.kill();
    let _ = relay.wait();
}

/// Ctrl-Z in an interactive shell with job control: chatter stops with the terminal given
/// back (the shell's next line is clean: no cursor report leaks into it), and `fg` brings
/// the prompt back without a key pressed; "fg" never reaches the room.
#[cfg(unix)]
#[test]
fn ctrl_z_suspends_with_the_terminal_restored_and_fg_redraws() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let chatter = chatter(home.path());
    let mut command = std::process::Command::new("bash");
    for (name, value) in chatter.get_envs() {
        match value {
            Some(value) => command.env(name, value),
            None => command.env_remove(name),
        };
    }
    command.env("CHATTER_ACCESS_CODE", ACCESS_CODE).env("PS1", "shell$ ").args([
        "--norc",
        "--noprofile",
        "-i",
    ]);
    let mut shell = Session::spawn(command).expect("bash in a pty");
    shell.set_expect_timeout(Some(Duration::from_secs(15)));
    shell.expect("shell$ ").unwrap();
    let program = chatter.get_program().to_str().unwrap().to_owned();
    shell.send_line(format!("'{program}' {} --nick alice", relay.address)).unwrap();
    shell.expect("connected to").unwrap();
    join(&mut shell, "lobby");

    shell.send("\x1a").unwrap();
    shell.expect("Stopped").expect("the shell took over");
    shell.expect("shell$ ").unwrap();
    // (The terminal's mode is not checked here: bash's own line editor keeps it raw.)
    shell.send_line("echo still-the-shell").unwrap();
    let echoed = shell.expect("still-the-shell\r\n").unwrap();
    let typed = String::from_utf8_lossy(echoed.before()).into_owned();
    // A cursor-position report ("ESC [ row ; col R") answered after chatter stopped would be
    // read by the shell as typed text.
    let report = regex::Regex::new(r"\d+;\d+R").unwrap();
    assert!(!report.is_match(&typed), "a stray reply: {typed:?}");
    shell.expect("shell$ ").unwrap();

    shell.send_line("fg").unwrap();
    shell.expect("alice@lobby> ").expect("redrawn without a key");
    shell.send_line("back after fg").unwrap();
    let sent = shell.expect("alice: back after fg").unwrap();
    assert!(!String::from_utf8_lossy(sent.before()).contains("alice: fg"), "fg was sent");
    shell.send_line("/quit").unwrap();
    shell.expect("shell$ ").expect("chatter exited");
    shell.send_line("exit").unwrap();
}

/// Stopped and continued from outside (`kill -STOP`, `kill -CONT`), the prompt is drawn
/// again at once, not at the next key.
#[cfg(unix)]
#[test]
fn continued_after_a_stop_the_prompt_is_drawn_again_without_a_key() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let mut alice = spawn(home.path(), &relay.address, "alice");
    join(&mut alice, "lobby");
    alice.expect("alice@lobby> ").unwrap();
    let pid = alice.get_process().pid().to_string();
    for signal in ["-STOP", "-CONT"] {
        assert!(
            std::process::Command::new("kill").args([signal, &pid]).status().unwrap().success()
        );
    }
    alice.expect("alice@lobby> ").expect("drawn again");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
}

#[test]
fn alt_keys_switch_rooms_and_the_prompt_counts_what_is_unread() {
    let relay = start_relay();
    let (home_a, home_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut alice = spawn(home_a.path(), &relay.address, "alice");
    let mut bob = spawn(home_b.path(), &relay.address, "bob");
    join(&mut alice, "dev");
    join(&mut alice, "ops");
    alice.expect("alice@ops dev> ").expect("the other room follows the current one");
    join(&mut bob, "dev");
    alice.expect("bob joined dev").unwrap();

    // Lines of dev print at once, marked, and count as unread while ops is current.
    bob.send_line("one").unwrap();
    alice.expect("[dev] ").unwrap();
    bob.send_line("two").unwrap();
    alice.expect("alice@ops dev(2)> ").expect("two unread in dev");

    // Alt-1 (ESC 1) makes dev current and reads it; Alt-Right goes to the next room.
    alice.send("\x1b1").unwrap();
    alice.expect("alice@dev ops> ").expect("switched by Alt-1");
    alice.send("\x1b[1;3C").unwrap();
    alice.expect("alice@ops dev> ").expect("switched by Alt-Right");
    alice.send("\x1b[1;3D").unwrap();
    alice.expect("alice@dev ops> ").expect("switched back by Alt-Left");

    // What was being typed stays through a switch, and goes to the room current at Enter.
    alice.send("half a").unwrap();
    alice.send("\x1b2").unwrap();
    alice.expect("alice@ops dev> ").unwrap();
    alice.send("\x1b1").unwrap();
    alice.expect("alice@dev ops> ").unwrap();
    alice.send(" line\r").unwrap();
    bob.expect("alice: half a line").expect("the line went to dev, whole");

    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
    bob.send_line("/quit").unwrap();
    assert!(wait_for_exit(&bob));
}

#[test]
fn rooms_given_with_join_are_joined_at_start_with_their_passwords_asked_for() {
    let relay = start_relay();
    let home = tempfile::tempdir().unwrap();
    let mut command = chatter(home.path());
    command.env("CHATTER_ACCESS_CODE", ACCESS_CODE).args([
        relay.address.as_str(),
        "--nick",
        "alice",
        "--join",
        "dev",
        "--join",
        "ops",
    ]);
    let mut alice = Session::spawn(command).expect("spawn chatter in a pty");
    alice.set_expect_timeout(Some(Duration::from_secs(15)));
    // "you joined dev" may print before or after the second question: the event and the
    // answer to the join travel apart.
    for room in ["dev", "ops"] {
        alice.expect(format!("password for {room}").as_str()).unwrap();
        alice.send_line("").unwrap();
    }
    alice.expect("alice@ops dev> ").expect("both rooms, the last one current");
    alice.send_line("/quit").unwrap();
    assert!(wait_for_exit(&alice));
}
