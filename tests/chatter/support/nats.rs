//! A real nats-server with JetStream for the cluster tests, on 127.0.0.1, its store in a
//! temporary directory, stopped when dropped.
//!
//! The server comes from `CHATTER_NATS_SERVER`, else `nats-server` on the PATH, else the
//! virtual environment `.ci/run` installs it into (`/opt/chatter-nats/bin`). Without one,
//! a test says so and passes, except under `CI=true`, where it fails: CI must run them.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct TestNats {
    child: Option<Child>,
    binary: PathBuf,
    pub port: u16,
    store: tempfile::TempDir,
    max_payload: &'static str,
}

fn binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("CHATTER_NATS_SERVER").map(PathBuf::from),
        Some(PathBuf::from("nats-server")),
        Some(PathBuf::from("/opt/chatter-nats/bin/nats-server")),
    ];
    candidates.into_iter().flatten().find(|candidate| {
        Command::new(candidate)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    })
}

impl TestNats {
    /// A nats-server on a port of its choosing; `None` (outside CI) when there is none.
    pub fn start() -> Option<TestNats> {
        Self::start_with_max_payload("4MB")
    }

    /// The same, with another `max_payload` (NATS's default is 1MB).
    pub fn start_with_max_payload(max_payload: &'static str) -> Option<TestNats> {
        let Some(binary) = binary() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("nats-server cannot run in CI; .ci/run must install it");
            }
            eprintln!(
                "no nats-server: the cluster test is skipped (see tests/chatter/support/nats.rs)"
            );
            return None;
        };
        let store = tempfile::tempdir().expect("temporary store");
        let mut nats = TestNats { child: None, binary, port: 0, store, max_payload };
        nats.run("-1");
        Some(nats)
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server on `port` ("-1": any) and waits until it listens.
    fn run(&mut self, port: &str) {
        // As dist/cluster/nats.conf: a client frame may be larger than the default 1 MB.
        let config = self.store.path().join("nats.conf");
        let settings = format!("max_payload: {}\n", self.max_payload);
        std::fs::write(&config, settings).expect("write nats.conf");
        let mut child = Command::new(&self.binary)
            .arg("-c")
            .arg(&config)
            .args(["-a", "127.0.0.1", "-p", port, "-js", "-sd"])
            .arg(self.store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nats-server");
        let stderr = child.stderr.take().expect("stderr");
        let (found, listening) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, address)) = line.split_once("Listening for client connections on ")
                    && let Some((_, port)) = address.trim().rsplit_once(':')
                {
                    let _ = found.send(port.parse::<u16>().ok());
                }
            }
        });
        let port = listening
            .recv_timeout(Duration::from_secs(10))
            .ok()
            .flatten()
            .expect("nats-server did not listen within 10 s");
        self.port = port;
        self.child = Some(child);
    }

    /// Stops the server hard, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, with nothing in memory (a restart).
    pub fn restart(&mut self) {
        self.kill();
        let port = self.port.to_string();
        self.run(&port);
    }
}

impl Drop for TestNats {
    fn drop(&mut self) {
        self.kill();
    }
}
