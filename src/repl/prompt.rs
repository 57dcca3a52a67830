//! The prompt: nickname, current room, our other rooms with their unread counts, and
//! connection state, e.g. `alice@dev ops(3) qa> `.

use crate::repl::screen::SharedScreen;
use reedline::{Color, Prompt, PromptEditMode, PromptHistorySearch, PromptHistorySearchStatus};
use std::borrow::Cow;

/// What the prompt shows, asked for at every repaint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromptStatus {
    /// Our nickname.
    pub nick: String,
    /// The current room.
    pub room: Option<String>,
    /// Our other rooms, in the order joined, with the lines in each we have not seen yet.
    pub others: Vec<(String, usize)>,
    /// The connection state.
    pub state: ConnectionState,
}

/// The connection state shown in the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnectionState {
    /// Connecting at start-up: attempt N (retried as a lost link is).
    Connecting { attempt: u32 },
    /// Connected to the relay.
    Connected,
    /// The link dropped; the client is reconnecting by itself (attempt N), with lines typed
    /// meanwhile waiting to be sent.
    Reconnecting { attempt: u32, waiting: usize },
    /// Connection lost or refused.
    Offline,
}

/// The REPL's prompt.
pub struct ChatPrompt {
    status: Box<dyn Fn() -> PromptStatus + Send>,
    screen: SharedScreen,
}

/// The indicator reedline shows in front of continuation lines of a multi-line input.
pub const MULTILINE_INDICATOR: &str = "… ";

impl ChatPrompt {
    /// A prompt asking `status` for what to show, recording what it renders in `screen`.
    pub fn new(status: Box<dyn Fn() -> PromptStatus + Send>, screen: SharedScreen) -> Self {
        ChatPrompt { status, screen }
    }

    /// The prompt as painted for a status: the left prompt and the indicator, which is what
    /// [`SharedScreen`] records at each paint.
    pub fn painted(status: &PromptStatus) -> String {
        format!("{}{INDICATOR}", Self::left(status))
    }

    /// The text of the left prompt for a status.
    pub fn left(status: &PromptStatus) -> String {
        let others: String = status
            .others
            .iter()
            .map(|(name, unread)| {
                let name = crate::repl::sanitize::sanitize_inline(name);
                if *unread > 0 { format!(" {name}({unread})") } else { format!(" {name}") }
            })
            .collect();
        let room = status
            .room
            .as_deref()
            .map(|room| format!("{}{others}", crate::repl::sanitize::sanitize_inline(room)));
        match (status.state, room) {
            (ConnectionState::Connecting { attempt: 1 }, _) => {
                format!("{} (connecting…)", status.nick)
            }
            (ConnectionState::Connecting { attempt }, _) => {
                format!("{} (connecting, attempt {attempt})", status.nick)
            }
            (ConnectionState::Offline, _) => format!("{} (offline)", status.nick),
            (ConnectionState::Reconnecting { attempt, waiting }, room) => {
                let room = room.map(|room| format!("@{room}")).unwrap_or_default();
                let waiting =
                    if waiting > 0 { format!(", {waiting} waiting") } else { String::new() };
                format!("{}{room} (reconnecting, attempt {attempt}{waiting})", status.nick)
            }
            (ConnectionState::Connected, Some(room)) => format!("{}@{room}", status.nick),
            (ConnectionState::Connected, None) => format!("{} (no room)", status.nick),
        }
    }
}

const INDICATOR: &str = "> ";

impl Prompt for ChatPrompt {
    fn render_prompt_left(&self) -> Cow<'_, str> {
        let status = (self.status)();
        self.screen.set_prompt(Self::painted(&status), MULTILINE_INDICATOR.to_owned());
        Cow::Owned(Self::left(&status))
    }
    fn render_prompt_right(&self) -> Cow<'_, str> {
        // Must stay empty: the printer workaround in `screen` relies on it.
        Cow::Borrowed("")
    }
    fn render_prompt_indicator(&self, _mode: PromptEditMode) -> Cow<'_, str> {
        Cow::Borrowed(INDICATOR)
    }
    fn render_prompt_multiline_indicator(&self) -> Cow<'_, str> {
        Cow::Borrowed(MULTILINE_INDICATOR)
    }
    fn render_prompt_history_search_indicator(&self, search: PromptHistorySearch) -> Cow<'_, str> {
        let prefix = match search.status {
            PromptHistorySearchStatus::Passing => "",
            PromptHistorySearchStatus::Failing => "failing ",
        };
        Cow::Owned(format!("({prefix}search: {}) ", search.term))
    }
    fn get_prompt_color(&self) -> Color {
        match (self.status)().state {
            ConnectionState::Connected => Color::Green,
            ConnectionState::Connecting { .. } | ConnectionState::Reconnecting { .. } => {
                Color::Yellow
            }
            ConnectionState::Offline => Color::Red,
        }
    }
    fn get_indicator_color(&self) -> Color {
        Color::DarkGray
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_nick_room_and_state() {
        let status = |room: Option<&str>, state| PromptStatus {
            nick: "alice".into(),
            room: room.map(Into::into),
            others: Vec::new(),
            state,
        };
        assert_eq!(
            ChatPrompt::left(&status(Some("lobby"), ConnectionState::Connected)),
            "alice@lobby"
        );
        assert_eq!(ChatPrompt::left(&status(None, ConnectionState::Connected)), "alice (no room)");
        assert_eq!(ChatPrompt::left(&status(None, ConnectionState::Offline)), "alice (offline)");
        let connecting = |attempt| ConnectionState::Connecting { attempt };
        assert_eq!(ChatPrompt::left(&status(None, connecting(1))), "alice (connecting…)");
        assert_eq!(ChatPrompt::left(&status(None, connecting(4))), "alice (connecting, attempt 4)");
        let reconnecting = |waiting| ConnectionState::Reconnecting { attempt: 3, waiting };
        assert_eq!(
            ChatPrompt::left(&status(Some("lobby"), reconnecting(0))),
            "alice@lobby (reconnecting, attempt 3)"
        );
        assert_eq!(
            ChatPrompt::left(&status(Some("lobby"), reconnecting(2))),
            "alice@lobby (reconnecting, attempt 3, 2 waiting)"
        );
    }

    #[test]
    fn other_rooms_follow_the_current_one_with_their_unread_counts() {
        let status = PromptStatus {
            nick: "alice".into(),
            room: Some("dev".into()),
            others: vec![("ops".into(), 3), ("qa".into(), 0), ("e\x1b[2Jvil".into(), 1)],
            state: ConnectionState::Connected,
        };
        assert_eq!(ChatPrompt::left(&status), "alice@dev ops(3) qa e^[[2Jvil(1)");
        let offline = PromptStatus {
            state: ConnectionState::Reconnecting { attempt: 2, waiting: 1 },
            ..status
        };
        assert_eq!(
            ChatPrompt::left(&offline),
            "alice@dev ops(3) qa e^[[2Jvil(1) (reconnecting, attempt 2, 1 waiting)"
        );
    }

    #[test]
    fn records_what_it_renders() {
        let screen = SharedScreen::default();
        let prompt = ChatPrompt::new(
            Box::new(|| PromptStatus {
                nick: "bob".into(),
                room: Some("x".into()),
                others: Vec::new(),
                state: ConnectionState::Connected,
            }),
            screen.clone(),
        );
        prompt.render_prompt_left();
        assert_eq!(screen.get().prompt, "bob@x> ");
    }
}
