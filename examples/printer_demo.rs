//! The REPL against an in-memory engine that "receives" a numbered message every two seconds,
//! for checking by eye (or in tmux) that incoming lines never disturb the line being typed.
//!
//! `cargo run --example printer_demo` uses chatter's printer; `-- --stock` uses reedline's
//! printer unfixed, to reproduce its faults with non-ASCII and wrapped input.

use chatter::client::{ClientError, MemberView, Presence, RoomMembers, RoomSummary};
use chatter::commands::Engine;
use chatter::repl::prompt::{ConnectionState, PromptStatus};
use chatter::repl::render::{Format, Renderer};
use chatter::repl::screen::{Inbox, SharedScreen};
use chatter::repl::{ChatEngine, QuitFlags, Repl};
use chatter::secret::Secret;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

struct Demo {
    room: Mutex<Option<String>>,
}

impl Engine for Demo {
    fn current_room(&self) -> Option<String> {
        self.room.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
    fn is_member_of(&self, room: &str) -> bool {
        self.current_room().as_deref() == Some(room)
    }
    fn join(&self, room: &str, _password: Secret) -> Result<(), ClientError> {
        *self.room.lock().unwrap_or_else(PoisonError::into_inner) = Some(room.into());
        Ok(())
    }
    fn leave(&self, _room: Option<&str>) -> Result<(), ClientError> {
        *self.room.lock().unwrap_or_else(PoisonError::into_inner) = None;
        Ok(())
    }
    fn switch(&self, target: &str) -> Result<String, ClientError> {
        match self.current_room() {
            Some(room) if room == target || target == "1" => Ok(room),
            _ => Err(ClientError::NoSuchRoom(target.into())),
        }
    }
    fn send_action(&self, _text: &str) -> Result<(), ClientError> {
        Ok(())
    }
    fn rooms(&self) -> Result<Vec<RoomSummary>, ClientError> {
        Ok(vec![RoomSummary { name: "lobby".into(), members: 2 }])
    }
    fn members(&self) -> Result<RoomMembers, ClientError> {
        let member = |nick: &str, is_self: bool| MemberView {
            nick: nick.into(),
            fingerprint: Some("ab12:cd34:ef56:7890".into()),
            is_leader: !is_self,
            trust: None,
            is_self,
            presence: Presence::InGroupAndConnected,
            same_identity_as: None,
            looks_like: None,
            keys_age: None,
            stale_keys: false,
        };
        Ok(RoomMembers {
            room: "lobby".into(),
            members: vec![member("alice", true), member("bob", false)],
            suite: Some(chatter::mls::RoomSuite::Classic),
        })
    }
    fn quit(&self) -> Result<(), ClientError> {
        Ok(())
    }
}

impl ChatEngine for Demo {
    fn status(&self) -> PromptStatus {
        PromptStatus {
            nick: "alice".into(),
            room: self.current_room(),
            others: Vec::new(),
            state: ConnectionState::Connected,
        }
    }
    fn send_text(&self, _text: &str) -> Result<(), ClientError> {
        Ok(())
    }
}

fn main() -> std::io::Result<()> {
    let stock = std::env::args().any(|arg| arg == "--stock");
    let renderer = Renderer::new("alice".into(), Format::Color);
    let screen = SharedScreen::default();
    let (inbox, outbox) = Inbox::new(screen.clone());
    let events = renderer.clone();
    std::thread::spawn(move || {
        for n in 1.. {
            std::thread::sleep(Duration::from_secs(2));
            let event = chatter::client::Event::Message {
                room: "lobby".into(),
                from: "bob".into(),
                text: format!("message {n}"),
                action: false,
                time: SystemTime::now(),
                late: false,
            };
            if let Some(rendered) = events.event(&event)
                && outbox.send(rendered.text).is_err()
            {
                break;
            }
        }
    });
    Repl {
        session: Arc::new(Demo { room: Mutex::new(Some("lobby".into())) }),
        inbox,
        screen,
        renderer,
        color: true,
        history_file: None,
        quit: Arc::new(QuitFlags::default()),
        access_code: Arc::default(),
        stock_printer: stock,
        startup_lines: Vec::new(),
    }
    .run()
}
