//! Secrets hygiene of the real binaries: what another process can read of a running
//! `chatter-server` or `chatter` through `/proc` (Linux only).

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

/// Fails if the environment block of process `pid`, as `/proc/PID/environ` shows it, still
/// holds any of `secrets`. The variable names may remain (the kernel's block cannot shrink);
/// their values must be gone.
pub fn assert_environ_lacks(pid: u32, secrets: &[&str]) {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).expect("read /proc/PID/environ");
    let environ = String::from_utf8_lossy(&environ);
    assert!(environ.contains("PATH="), "the block was read: {environ:?}");
    for secret in secrets {
        assert!(!environ.contains(secret), "{secret:?} is still in /proc/{pid}/environ");
    }
}

/// Fails unless process `pid` may not dump core (soft and hard limit 0).
pub fn assert_core_dumps_off(pid: u32) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits.lines().find(|line| line.starts_with("Max core file size")).expect("line");
    let fields: Vec<&str> = line.split_whitespace().collect();
    assert_eq!(fields[4..6], ["0", "0"], "{line}");
}

/// The relay takes its access code out of its environment and cannot dump core; run as
/// another user, its `/proc` files belong to root (it is not dumpable).
#[cfg(target_os = "linux")]
#[test]
fn the_relay_keeps_its_access_code_out_of_reach() {
    let secret = "relay-env-secret-4f1c";
    let mut command = Command::new(env!("CARGO_BIN_EXE_chatter-server"));
    command
        .args(["--listen", "127.0.0.1:0", "--no-report"])
        .env("CHATTER_ACCESS_CODE", secret)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // As root, run the relay as another user: only then does "not dumpable" show, as root
    // owning the files in its /proc directory instead of that user.
    // SAFETY: getuid has no preconditions.
    let as_root = unsafe { libc::getuid() } == 0;
    const NOBODY: u32 = 65534;
    if as_root {
        std::os::unix::process::CommandExt::uid(&mut command, NOBODY);
    }
    let mut relay = command.spawn().expect("spawn chatter-server");
    let stderr = relay.stderr.take().expect("stderr");
    let (started, listening) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = started.send(());
            }
        }
    });
    let started = listening.recv_timeout(Duration::from_secs(30));
    let pid = relay.id();
    let checks = std::panic::catch_unwind(|| {
        started.expect("the relay starts");
        if as_root {
            use std::os::unix::fs::MetadataExt;
            let environ = format!("/proc/{pid}/environ");
            let owner = std::fs::metadata(environ).expect("proc entry").uid();
            assert_eq!(owner, 0, "a dumpable process's /proc files belong to its own user");
            assert_environ_lacks(pid, &[secret]);
        } else {
            eprintln!("not root: cannot read a non-dumpable process's environment; skipped");
        }
        assert_core_dumps_off(pid);
    });
    let _ = relay.kill();
    let _ = relay.wait();
    if let Err(panic) = checks {
        std::panic::resume_unwind(panic);
    }
}
