//! Turning engine events and local results into the lines the user sees.
//!
//! Three forms: coloured terminal lines (the REPL), plain lines (line mode, `--no-color`) and
//! JSON objects (`--json`). Everything a peer chose (text, nick, room) goes through
//! [`crate::repl::sanitize`] first, except in JSON, whose string escaping already keeps the
//! output inert. Multi-line messages print their later lines indented under the first, so no
//! line of a message can pass for a message of its own.

use crate::client::{
    Client, ClientError, ConnectionEvent, Event, LinkLoss, NotSentReason, Notice, SharedError,
};
use crate::proto::ErrorReason;
use crate::repl::sanitize::{sanitize_inline, sanitize_lines};
use nu_ansi_term::{Color, Style};
use std::time::SystemTime;
use unicode_width::UnicodeWidthStr;

/// The terminal bell, rung when someone mentions us.
pub const BELL: &str = "\x07";

/// Colours given to peers, chosen by a hash of the nickname so a peer keeps theirs.
const PEER_COLORS: [Color; 8] = [
    Color::Cyan,
    Color::Magenta,
    Color::Blue,
    Color::Yellow,
    Color::LightCyan,
    Color::LightMagenta,
    Color::LightBlue,
    Color::LightRed,
];

/// How lines are rendered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ANSI colours, continuation lines, bell on mention.
    Color,
    /// A terminal without colours: continuation lines and the bell, no other escapes.
    Plain,
    /// Line mode: no escapes at all, one event per line.
    Line,
    /// One JSON object per line.
    Json,
}

/// A rendered event: the text to print (possibly several lines, no trailing newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    /// The lines, joined by `\n`.
    pub text: String,
    /// Whether the line mentions us and the bell should ring.
    pub bell: bool,
}

/// Renders events for one user.
#[derive(Debug, Clone)]
pub struct Renderer {
    /// Our nickname, for own lines and mentions.
    pub own_nick: String,
    /// The output form.
    pub format: Format,
    /// The client whose current room needs no mark: a line of any other room is marked
    /// with its room's name. `None` before there is a client (nothing is marked then).
    pub focus: Option<Client>,
}

impl Renderer {
    /// Renders for `own_nick` in `format`, marking no room until [`Renderer::with_focus`].
    pub fn new(own_nick: String, format: Format) -> Renderer {
        Renderer { own_nick, format, focus: None }
    }

    /// Marks the lines of every room but `client`'s current one with their room.
    pub fn with_focus(self, client: Client) -> Renderer {
        Renderer { focus: Some(client), ..self }
    }

    /// Renders an engine event as [`Renderer::event_unmarked`] does, with a line of a room
    /// that is not the current one marked with that room's name (a colour per room, the name
    /// sanitised), so a line never passes for one of the room the user is typing to. JSON
    /// carries the room in every object instead.
    pub fn event(&self, event: &Event) -> Option<Rendered> {
        let mut rendered = self.event_unmarked(event)?;
        if self.format == Format::Json {
            return Some(rendered);
        }
        let current = self.focus.as_ref().and_then(Client::current_room);
        if let (Some(room), Some(current)) = (event_room(event), current)
            && room != current
        {
            rendered.text = format!("{} {}", self.room_mark(room), rendered.text);
        }
        Some(rendered)
    }

    /// `[room]`, in the room's colour at a colour terminal.
    pub fn room_mark(&self, room: &str) -> String {
        let mark = format!("[{}]", sanitize_inline(room));
        match self.format {
            Format::Color => Style::new().fg(peer_color(room)).paint(mark).to_string(),
            Format::Plain | Format::Line | Format::Json => mark,
        }
    }

    /// Renders an engine event; `None` for our own messages, which the REPL prints when it
    /// sends them (the engine does not echo them; the check guards against a double line).
    pub fn event_unmarked(&self, event: &Event) -> Option<Rendered> {
        let now = SystemTime::now();
        let rendered = match event {
            Event::Message { from, .. } if *from == self.own_nick => return None,
            Event::Message { room, from, text, action, time, late } => {
                let mut rendered = self.message(room, from, text, *action, *time);
                if *late {
                    rendered.text = mark_late(self.format, rendered.text);
                }
                return Some(rendered);
            }
            Event::Gap { room, from, missed, since } => {
                let plural = if *missed == 1 { "" } else { "s" };
                let text = format!(
                    "{missed} message{plural} from {} sent after {} did not reach you",
                    sanitize_inline(from),
                    local_hhmm(*since)
                );
                if self.format == Format::Json {
                    let mut value = json_value("gap", Some(room), Some(from), &text, now);
                    value["missed"] = (*missed).into();
                    value["since"] = rfc3339_utc(*since).into();
                    value.to_string()
                } else {
                    self.line(
                        "gap",
                        Some(room),
                        Some(from),
                        &text,
                        now,
                        Style::new().fg(Color::Yellow),
                    )
                }
            }
            // At a terminal the prompt shows each attempt, updated in place (`repl`): a line
            // for each would push the chat out of the scrollback during an outage.
            Event::Connection(ConnectionEvent::Reconnecting { .. }) if self.at_terminal() => {
                return None;
            }
            // At start-up the first failure is said (why it does not connect), and the prompt
            // shows the attempts after it.
            Event::Connection(ConnectionEvent::Connecting { attempt, .. })
                if self.at_terminal() && *attempt > 2 =>
            {
                return None;
            }
            Event::Connection(change) => self.connection(change, now),
            Event::DmOpened { room, nick } => self.line(
                "dm_opened",
                Some(room),
                Some(nick),
                &format!(
                    "direct message with {} open: /msg {} TEXT or /switch {}",
                    sanitize_inline(nick),
                    sanitize_inline(nick),
                    sanitize_inline(room)
                ),
                now,
                Style::new().fg(Color::Green),
            ),
            Event::DmRefused { nick } => self.line(
                "dm_refused",
                None,
                Some(nick),
                &format!("{} does not accept direct messages from you", sanitize_inline(nick)),
                now,
                Style::new().fg(Color::Red),
            ),
            Event::Joined { room, nick } if *nick == self.own_nick => self.line(
                "joined",
                Some(room),
                None,
                &format!("you joined {}", sanitize_inline(room)),
                now,
                Style::new().fg(Color::Green),
            ),
            Event::Joined { room, nick } => self.line(
                "joined",
                Some(room),
                Some(nick),
                &format!("{} joined {}", sanitize_inline(nick), sanitize_inline(room)),
                now,
                Style::new().fg(Color::DarkGray),
            ),
            Event::Left { room, nick } if *nick == self.own_nick => self.line(
                "left",
                Some(room),
                None,
                &format!("you left {}", sanitize_inline(room)),
                now,
                Style::new().fg(Color::Green),
            ),
            Event::Left { room, nick } => self.line(
                "left",
                Some(room),
                Some(nick),
                &format!("{} left {}", sanitize_inline(nick), sanitize_inline(room)),
                now,
                Style::new().fg(Color::DarkGray),
            ),
            Event::Room { room, notice } => {
                let worded = super::room_notice_text::word(notice);
                if self.format == Format::Json {
                    let mut value = json_value(worded.kind, Some(room), None, &worded.text, now);
                    if let (Some(value), Some(fields)) =
                        (value.as_object_mut(), worded.fields.as_object())
                    {
                        value.extend(fields.clone());
                    }
                    value.to_string()
                } else {
                    let color = if worded.warning { Color::Yellow } else { Color::DarkGray };
                    self.line(
                        worded.kind,
                        Some(room),
                        None,
                        &worded.text,
                        now,
                        Style::new().fg(color),
                    )
                }
            }
            Event::Notice { room, text } => self.line(
                "notice",
                room.as_deref(),
                None,
                &sanitize_inline(text),
                now,
                Style::new().fg(Color::DarkGray),
            ),
            Event::Warning { room, text } => self.line(
                "warning",
                room.as_deref(),
                None,
                &format!("warning: {}", sanitize_inline(text)),
                now,
                Style::new().fg(Color::Yellow),
            ),
            Event::Status(notice) => self.status(notice, now),
            Event::KeyChanged { room, nick, first_seen, fingerprint } => {
                let text = key_changed_text(nick, first_seen);
                if self.format == Format::Json {
                    let mut value = json_value("key_changed", Some(room), Some(nick), &text, now);
                    value["first_seen"] = first_seen.as_str().into();
                    value["fingerprint"] = fingerprint.as_str().into();
                    value.to_string()
                } else {
                    let style = Style::new().fg(Color::Red).bold();
                    self.line("key_changed", Some(room), Some(nick), &text, now, style)
                }
            }
            Event::LookAlike { room, nick, looks_like, pinned_fingerprint, fingerprint } => {
                let text = look_alike_text(nick, looks_like, pinned_fingerprint, fingerprint);
                if self.format == Format::Json {
                    let mut value = json_value("look_alike", Some(room), Some(nick), &text, now);
                    value["looks_like"] = looks_like.as_str().into();
                    value["pinned_fingerprint"] = pinned_fingerprint.as_str().into();
                    value["fingerprint"] = fingerprint.as_str().into();
                    value.to_string()
                } else {
                    let style = Style::new().fg(Color::Red).bold();
                    self.line("look_alike", Some(room), Some(nick), &text, now, style)
                }
            }
            Event::Disconnected(end) => self.line(
                "disconnected",
                None,
                None,
                &format!("disconnected: {} — Ctrl-D to exit", sanitize_inline(&end.to_string())),
                now,
                Style::new().fg(Color::Red).bold(),
            ),
        };
        Some(Rendered { text: rendered, bell: false })
    }

    /// Whether the lines go to a person at the REPL (not to a program in line mode).
    fn at_terminal(&self) -> bool {
        matches!(self.format, Format::Color | Format::Plain)
    }

    /// A change of the link to the relay: one line, or one JSON object with its fields.
    fn connection(&self, change: &ConnectionEvent, now: SystemTime) -> String {
        let style = Style::new().fg(Color::Yellow);
        let (kind, text, fields) = match change {
            ConnectionEvent::Lost { reason } => {
                let reason = link_loss_text(reason);
                (
                    "connection_lost",
                    format!(
                        "connection lost ({}); reconnecting by itself",
                        sanitize_inline(&reason)
                    ),
                    serde_json::json!({ "reason": reason }),
                )
            }
            ConnectionEvent::Reconnecting { attempt, retry_in, last_error } => {
                let seconds = retry_in.as_secs_f64();
                let last_error = last_error.as_ref().map(ToString::to_string);
                let why = last_error
                    .as_deref()
                    .map(|error| format!(" (last try: {})", sanitize_inline(error)))
                    .unwrap_or_default();
                (
                    "reconnecting",
                    format!("reconnecting: attempt {attempt} in {seconds:.1} s{why}"),
                    serde_json::json!({ "attempt": attempt, "retry_in_ms": retry_in.as_millis() as u64, "last_error": last_error }),
                )
            }
            ConnectionEvent::Connecting { attempt, retry_in, last_error } => {
                let seconds = retry_in.as_secs_f64();
                let last_error = error_text(last_error);
                (
                    "connecting",
                    format!(
                        "could not connect ({}); attempt {attempt} in {seconds:.1} s",
                        sanitize_inline(&last_error)
                    ),
                    serde_json::json!({ "attempt": attempt, "retry_in_ms": retry_in.as_millis() as u64, "last_error": last_error }),
                )
            }
            ConnectionEvent::Resumed { missed } => (
                "resumed",
                format!("reconnected: the session resumed; {missed} frames kept for you follow"),
                serde_json::json!({ "missed": missed }),
            ),
            ConnectionEvent::Reconnected { relay_restarted, offline_since } => {
                let why = if *relay_restarted {
                    "the relay restarted"
                } else {
                    "the relay had forgotten this session"
                };
                (
                    "reconnected",
                    format!(
                        "reconnected as a new session ({why}); what was said since {} did not reach you",
                        local_hhmm(*offline_since)
                    ),
                    serde_json::json!({ "relay_restarted": relay_restarted, "offline_since": rfc3339_utc(*offline_since) }),
                )
            }
            ConnectionEvent::Queued { waiting } => (
                "queued",
                format!("not sent yet: kept to send once the room is back ({waiting} waiting)"),
                serde_json::json!({ "waiting": waiting }),
            ),
            ConnectionEvent::QueueSent { count } => (
                "queue_sent",
                format!("sent {count} line(s) typed while offline"),
                serde_json::json!({ "count": count }),
            ),
            ConnectionEvent::NotSent { texts, reason } => {
                let reason = not_sent_text(reason);
                let lines: Vec<String> =
                    texts.iter().map(|text| format!("\"{}\"", sanitize_inline(text))).collect();
                (
                    "not_sent",
                    format!("not sent ({}): {}", sanitize_inline(&reason), lines.join(", ")),
                    serde_json::json!({ "texts": texts, "reason": reason }),
                )
            }
        };
        self.with_fields(kind, None, &text, &fields, now, style)
    }

    /// Something the client core noticed: its words, or its JSON object (its type is the
    /// variant's name in snake_case, with the variant's fields).
    fn status(&self, notice: &Notice, now: SystemTime) -> String {
        let (kind, room, text, fields) = notice_parts(notice);
        let (text, style) = match severity(notice) {
            Severity::Notice => (text, Style::new().fg(Color::DarkGray)),
            Severity::Warning => (format!("warning: {text}"), Style::new().fg(Color::Yellow)),
            Severity::Error => (format!("error: {text}"), Style::new().fg(Color::Red)),
        };
        self.with_fields(kind, room, &sanitize_inline(&text), &fields, now, style)
    }

    /// One line, or one JSON object with `fields` beside the common ones.
    fn with_fields(
        &self,
        kind: &str,
        room: Option<&str>,
        text: &str,
        fields: &serde_json::Value,
        now: SystemTime,
        style: Style,
    ) -> String {
        if self.format == Format::Json {
            let mut value = json_value(kind, room, None, text, now);
            if let (Some(object), Some(extra)) = (value.as_object_mut(), fields.as_object()) {
                object.extend(extra.iter().map(|(key, field)| (key.clone(), field.clone())));
            }
            return value.to_string();
        }
        self.line(kind, room, None, text, now, style)
    }

    /// A message we just sent, as the others see it.
    pub fn own_message(&self, room: Option<&str>, text: &str, action: bool) -> String {
        let rendered =
            self.message(room.unwrap_or(""), &self.own_nick, text, action, SystemTime::now());
        rendered.text
    }

    /// Local information (command output).
    pub fn notice(&self, text: &str) -> String {
        self.line("notice", None, None, text, SystemTime::now(), Style::new().fg(Color::DarkGray))
    }

    /// A command's result with named fields, as one JSON line (`--json` only; `None`
    /// otherwise, and the text is shown as notices). `fields` is an object.
    pub fn record(&self, kind: &str, text: &str, fields: &serde_json::Value) -> Option<String> {
        if self.format != Format::Json {
            return None;
        }
        let mut value = json_value(kind, None, None, text, SystemTime::now());
        if let (Some(object), Some(extra)) = (value.as_object_mut(), fields.as_object()) {
            object.extend(extra.iter().map(|(key, field)| (key.clone(), field.clone())));
        }
        Some(value.to_string())
    }

    /// A local error (a command failed).
    pub fn error(&self, text: &str) -> String {
        self.line("error", None, None, text, SystemTime::now(), Style::new().fg(Color::Red))
    }

    fn line(
        &self,
        kind: &str,
        room: Option<&str>,
        from: Option<&str>,
        text: &str,
        time: SystemTime,
        style: Style,
    ) -> String {
        match self.format {
            Format::Json => json(kind, room, from, text, time),
            Format::Plain | Format::Line => format!("{} -- {text}", local_hhmm(time)),
            Format::Color => {
                let stamp = Style::new().fg(Color::DarkGray).paint(local_hhmm(time));
                format!("{stamp} {}", style.paint(format!("-- {text}")))
            }
        }
    }

    fn message(
        &self,
        room: &str,
        from: &str,
        text: &str,
        action: bool,
        time: SystemTime,
    ) -> Rendered {
        let own = from == self.own_nick;
        let bell = !own
            && matches!(self.format, Format::Color | Format::Plain)
            && mentions(text, &self.own_nick);
        if self.format == Format::Json {
            let kind = if action { "action" } else { "message" };
            return Rendered { text: json(kind, Some(room), Some(from), text, time), bell: false };
        }
        let stamp = local_hhmm(time);
        let nick = sanitize_inline(from);
        let header =
            if action { format!("{stamp} * {nick} ") } else { format!("{stamp} {nick}: ") };
        let lines = sanitize_lines(text);
        if self.format == Format::Line {
            return Rendered { text: format!("{header}{}", lines.join(" \u{21b5} ")), bell: false };
        }
        let indent = " ".repeat(header.width());
        if self.format == Format::Plain {
            let mut out = header + &lines.join(&format!("\n{indent}"));
            if bell {
                out.push_str(BELL);
            }
            return Rendered { text: out, bell };
        }
        let nick_style = if own {
            Style::new().fg(Color::Green).bold()
        } else {
            Style::new().fg(peer_color(from)).bold()
        };
        let text_style =
            if bell { Style::new().fg(Color::Black).on(Color::Yellow) } else { Style::new() };
        let painted_header = if action {
            format!("{} {}", Color::DarkGray.paint(&stamp), nick_style.paint(format!("* {nick} ")))
        } else {
            format!("{} {}", Color::DarkGray.paint(&stamp), nick_style.paint(format!("{nick}:")))
                + " "
        };
        let mut out = String::new();
        for (i, line) in lines.iter().enumerate() {
            if i == 0 {
                out.push_str(&painted_header);
            } else {
                out.push('\n');
                out.push_str(&indent);
            }
            out.push_str(&text_style.paint(line).to_string());
        }
        if bell {
            out.push_str(BELL);
        }
        Rendered { text: out, bell }
    }
}

/// The room an event is about, where its words do not already name it ("bob joined dev"
/// does), for the mark of a room that is not current.
fn event_room(event: &Event) -> Option<&str> {
    match event {
        Event::Joined { .. } | Event::Left { .. } | Event::DmRefused { .. } => None,
        Event::DmOpened { room, .. } => Some(room),
        Event::Message { room, .. }
        | Event::Gap { room, .. }
        | Event::Room { room, .. }
        | Event::KeyChanged { room, .. }
        | Event::LookAlike { room, .. } => Some(room),
        Event::Notice { room, .. } | Event::Warning { room, .. } => room.as_deref(),
        Event::Status(notice) => notice_parts(notice).1,
        Event::Connection(_) | Event::Disconnected(_) => None,
    }
}

/// How loudly a notice is shown.
enum Severity {
    Notice,
    Warning,
    Error,
}

fn severity(notice: &Notice) -> Severity {
    match notice {
        Notice::Rejoined { .. } => Severity::Notice,
        Notice::JoinFailed { .. } | Notice::RelayError { .. } => Severity::Error,
        Notice::FramesLostWithConnection { .. }
        | Notice::RejoinFailed { .. }
        | Notice::UnaskedWelcome { .. }
        | Notice::MessageNotDelivered { .. }
        | Notice::AddressBlocked { .. } => Severity::Warning,
    }
}

/// A notice's JSON type, room, words (not yet sanitised) and fields.
fn notice_parts(notice: &Notice) -> (&'static str, Option<&str>, String, serde_json::Value) {
    use serde_json::json;
    match notice {
        Notice::FramesLostWithConnection { room, count } => (
            "frames_lost_with_connection",
            room.as_deref(),
            format!("{count} of your frames were lost with the connection"),
            json!({ "count": count }),
        ),
        Notice::Rejoined { room, newcomers } => {
            let mut text = "back in the room, in the same group with the same members".to_owned();
            if !newcomers.is_empty() {
                text.push_str(&format!("; joined while you were out: {}", newcomers.join(", ")));
            }
            ("rejoined", Some(room), text, json!({ "newcomers": newcomers }))
        }
        Notice::RejoinFailed { room, error } => {
            let text = error_text(error);
            ("rejoin_failed", Some(room), text.clone(), json!({ "error": text }))
        }
        Notice::JoinFailed { room, error } => {
            let text = error_text(error);
            ("join_failed", Some(room), text.clone(), json!({ "error": text }))
        }
        Notice::UnaskedWelcome { room } => (
            "unasked_welcome",
            Some(room),
            "refused a welcome nobody asked for (a relay or impostor trying to move you into \
             another group)"
                .to_owned(),
            json!({}),
        ),
        Notice::MessageNotDelivered { room, text, reason } => {
            let why = match reason {
                ErrorReason::RateLimited => "slow down".to_owned(),
                ErrorReason::MessageTooLarge => "the relay found it too large".to_owned(),
                reason => reason.to_string(),
            };
            // Named, so that a user (or a bot) knows which line to send again.
            (
                "message_not_delivered",
                Some(room),
                format!("message not delivered ({why}): {text:?}"),
                json!({ "reason": snake_case(&format!("{reason:?}")), "line": text }),
            )
        }
        Notice::RelayError { reason } => (
            "relay_error",
            None,
            format!("the server said: {reason}"),
            json!({ "reason": snake_case(&format!("{reason:?}")) }),
        ),
        Notice::AddressBlocked { retry_in } => (
            "address_blocked",
            None,
            format!(
                "the server has blocked your address after too many failed attempts (maybe by \
                 someone else behind the same address); its operator can lift the block. \
                 Trying again in {} s",
                retry_in.as_secs()
            ),
            json!({ "retry_in_ms": retry_in.as_millis() as u64 }),
        ),
    }
}

/// Why the link dropped, in words.
fn link_loss_text(loss: &LinkLoss) -> String {
    match loss {
        LinkLoss::Closed => "the server closed the connection".to_owned(),
        LinkLoss::Broken(error) => format!("lost the connection: {}", error_text(error)),
        LinkLoss::Silent { after } => {
            format!("no answer from the server for {} s", after.as_secs())
        }
        LinkLoss::Goodbye(reason) => format!("the server closed the connection: {reason}"),
    }
}

/// Why lines were not sent, in words.
fn not_sent_text(reason: &NotSentReason) -> String {
    match reason {
        NotSentReason::InDoubt => {
            "sent just before the connection dropped; they may not have reached the room".into()
        }
        NotSentReason::RoomIsAnotherGroup => "the room now holds another group".into(),
        NotSentReason::CouldNotGetBack => "could not get back into the room".into(),
        NotSentReason::NoLongerInRoom => "no longer in the room".into(),
        NotSentReason::LeftRoom => "you left its room".into(),
        NotSentReason::SessionEnded => "the session ended".into(),
        NotSentReason::CannotEncrypt(error) => error_text(error),
        NotSentReason::TooManyWaiting { max } => {
            format!("{max} lines were already waiting for their turn to be sent")
        }
        NotSentReason::DmRefused => "they refuse your direct messages".into(),
        NotSentReason::DmNotOpened => "the direct message got no answer in time".into(),
    }
}

/// An error carried by an event, without the prefix its `Display` has when it stands alone.
fn error_text(error: &SharedError) -> String {
    match error.get() {
        ClientError::Transport(error) => error.to_string(),
        ClientError::Io(error) => error.to_string(),
        ClientError::CannotEncrypt(error) => error.to_string(),
        other => other.to_string(),
    }
}

/// `RateLimited` → `rate_limited`: a variant's name as line mode's JSON spells it.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (index, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if index > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Marks a message that was delivered late (kept by the relay while we were away).
fn mark_late(format: Format, text: String) -> String {
    match format {
        Format::Json => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(mut value) => {
                value["late"] = true.into();
                value.to_string()
            }
            Err(_) => text,
        },
        Format::Color => format!("{text} {}", Color::DarkGray.paint("(late)")),
        Format::Plain | Format::Line => format!("{text} (late)"),
    }
}

/// The stable colour of a peer: FNV-1a of the nickname picks from [`PEER_COLORS`].
pub fn peer_color(nick: &str) -> Color {
    let hash = nick.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    PEER_COLORS[(hash % PEER_COLORS.len() as u64) as usize]
}

/// Whether `text` mentions `nick` as a whole word, ignoring case.
pub fn mentions(text: &str, nick: &str) -> bool {
    if nick.is_empty() {
        return false;
    }
    let text = text.to_lowercase();
    let nick = nick.to_lowercase();
    let is_word = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    text.match_indices(&nick).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + nick.len()..].chars().next();
        !before.is_some_and(is_word) && !after.is_some_and(is_word)
    })
}

fn json(
    kind: &str,
    room: Option<&str>,
    from: Option<&str>,
    text: &str,
    time: SystemTime,
) -> String {
    json_value(kind, room, from, text, time).to_string()
}

/// The fields every JSON line has; some kinds add their own.
pub(crate) fn json_value(
    kind: &str,
    room: Option<&str>,
    from: Option<&str>,
    text: &str,
    time: SystemTime,
) -> serde_json::Value {
    serde_json::json!({
        "type": kind,
        "room": room,
        "from": from,
        "text": text,
        "time": rfc3339_utc(time),
    })
}

/// The warning for a key that is not the one pinned (sanitised: the nick is a peer's choice).
fn key_changed_text(nick: &str, first_seen: &str) -> String {
    let nick = sanitize_inline(nick);
    format!(
        "warning: {nick}'s key is not the one you saw on {first_seen}; this may not be the \
         {nick} you know — compare `/verify {nick}`"
    )
}

fn look_alike_text(nick: &str, looks_like: &str, pinned: &str, fingerprint: &str) -> String {
    let (nick, looks_like) = (sanitize_inline(nick), sanitize_inline(looks_like));
    format!(
        "warning: {nick} looks like {looks_like}, whose key is {pinned}; {nick} has another key \
         ({fingerprint}) and may not be the {looks_like} you know — compare `/verify {nick}`"
    )
}

/// `HH:MM` in the local time zone (chrono reads the zone database on Unix and asks the
/// system on Windows).
pub fn local_hhmm(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(time).format("%H:%M").to_string()
}

/// `YYYY-MM-DDTHH:MM:SSZ`, for `--json`.
pub fn rfc3339_utc(time: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(time).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn renderer(format: Format) -> Renderer {
        Renderer::new("alice".into(), format)
    }

    fn message(from: &str, text: &str) -> Event {
        Event::Message {
            room: "lobby".into(),
            from: from.into(),
            text: text.into(),
            action: false,
            time: SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
            late: false,
        }
    }

    #[test]
    fn multi_line_messages_continue_indented() {
        let rendered = renderer(Format::Color).event(&message("bob", "hi\n12:00 carol: fake"));
        let text = rendered.expect("shown").text;
        let lines: Vec<&str> = text.split('\n').collect();
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("           "), "{:?}", lines[1]);
    }

    #[test]
    fn escape_sequences_from_peers_are_neutralised() {
        let text =
            renderer(Format::Plain).event(&message("b\x1b[2Job", "\x1b]0;x\x07")).unwrap().text;
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
    }

    #[test]
    fn without_colour_a_terminal_still_gets_continuations_and_the_bell() {
        let r = renderer(Format::Plain);
        let rendered = r.event(&message("bob", "alice\nsecond")).unwrap();
        assert!(rendered.bell);
        assert!(!rendered.text.contains('\x1b'));
        assert!(rendered.text.contains("\n           second\x07"), "{:?}", rendered.text);
    }

    #[test]
    fn mentions_ring_the_bell_and_own_echoes_are_dropped() {
        let r = renderer(Format::Color);
        assert!(r.event(&message("bob", "hey Alice, look")).unwrap().bell);
        assert!(r.event(&message("bob", "hey Alice, look")).unwrap().text.ends_with(BELL));
        assert!(!r.event(&message("bob", "malice")).unwrap().bell);
        assert!(r.event(&message("alice", "me")).is_none());
    }

    #[test]
    fn line_mode_has_no_escapes_and_one_line_per_event() {
        let text = renderer(Format::Line).event(&message("bob", "a\nb")).unwrap().text;
        assert!(!text.contains('\x1b') && !text.contains('\n'), "{text:?}");
    }

    #[test]
    fn json_has_the_documented_fields() {
        let text = renderer(Format::Json).event(&message("bob", "a\nb")).unwrap().text;
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["type"], "message");
        assert_eq!(value["room"], "lobby");
        assert_eq!(value["from"], "bob");
        assert_eq!(value["text"], "a\nb");
        assert_eq!(value["time"], "2023-11-14T22:13:20Z");
    }

    /// Nicknames as people pick them: short words, digits, mixed case.
    fn sample_nicks() -> Vec<String> {
        let stems = ["al", "Bo", "cy", "dee", "ed", "fi", "gus", "hal", "ivy", "jo"];
        stems.iter().flat_map(|stem| (0..20).map(move |n| format!("{stem}{n}"))).collect()
    }

    #[test]
    fn peer_colours_come_from_the_palette_and_spread_over_all_of_it() {
        let nicks = sample_nicks();
        let mut uses = [0usize; PEER_COLORS.len()];
        for nick in &nicks {
            let color = peer_color(nick);
            let index = PEER_COLORS.iter().position(|c| *c == color);
            let index = index.unwrap_or_else(|| panic!("{nick} got {color:?}, not a peer colour"));
            uses[index] += 1;
        }
        // 200 nicks over 8 colours: 25 each on average. Every colour is used, and none is
        // given to more than twice its share, so two people in a room usually differ.
        let share = nicks.len() / PEER_COLORS.len();
        assert!(uses.iter().all(|&n| n > 0 && n <= 2 * share), "{uses:?}");
        // Peers never look like our own line (green) or like notices and errors.
        for reserved in [Color::Green, Color::DarkGray, Color::Red] {
            assert!(!PEER_COLORS.contains(&reserved), "{reserved:?}");
        }
    }

    #[test]
    fn a_peer_keeps_its_colour_across_runs_and_versions() {
        // Pinned values: a hash seeded per process (like std's `RandomState`) or a changed
        // hash would give people other colours than they had yesterday.
        assert_eq!(peer_color("bob"), Color::LightCyan);
        assert_eq!(peer_color("carol"), Color::Blue);
        assert_eq!(peer_color("žofie"), Color::Magenta);
        let first: Vec<Color> = sample_nicks().iter().map(|n| peer_color(n)).collect();
        let again: Vec<Color> = sample_nicks().iter().map(|n| peer_color(n)).collect();
        assert_eq!(first, again);
    }

    #[test]
    fn epoch_formats() {
        assert_eq!(rfc3339_utc(SystemTime::UNIX_EPOCH), "1970-01-01T00:00:00Z");
        let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(rfc3339_utc(later), "2023-11-14T22:13:20Z");
    }

    /// `local_hhmm` is the wall clock of this machine's zone, as the C library reads it.
    #[cfg(unix)]
    #[test]
    fn the_time_of_day_is_the_local_wall_clock() {
        // Two instants a quarter-day and some minutes apart, so hours and minutes both vary.
        for seconds in [1_700_000_000_i64, 1_700_000_000 + 6 * 3600 + 17 * 60] {
            let time = SystemTime::UNIX_EPOCH + Duration::from_secs(seconds as u64);
            // SAFETY: `tm` is plain data that `localtime_r` fills; both pointers are ours.
            let mut tm: libc::tm = unsafe { std::mem::zeroed() };
            let clock: libc::time_t = seconds;
            assert!(!unsafe { libc::localtime_r(&clock, &mut tm) }.is_null());
            let expected = format!("{:02}:{:02}", tm.tm_hour, tm.tm_min);
            assert_eq!(local_hhmm(time), expected);
        }
    }

    fn key_changed() -> Event {
        Event::KeyChanged {
            room: "lobby".into(),
            nick: "bob".into(),
            first_seen: "2026-12-01".into(),
            fingerprint: "ab12:cd34:ef56:7890".into(),
        }
    }

    #[test]
    fn a_changed_key_is_a_loud_line_and_a_json_object_with_its_fields() {
        let line = renderer(Format::Line).event(&key_changed()).unwrap().text;
        assert!(
            line.ends_with(
                "warning: bob's key is not the one you saw on 2026-12-01; this may not be the \
                 bob you know — compare `/verify bob`"
            ),
            "{line}"
        );
        let json = renderer(Format::Json).event(&key_changed()).unwrap().text;
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["type"], "key_changed");
        assert_eq!(value["from"], "bob");
        assert_eq!(value["first_seen"], "2026-12-01");
        assert_eq!(value["fingerprint"], "ab12:cd34:ef56:7890");
        let colored = renderer(Format::Color).event(&key_changed()).unwrap().text;
        assert!(colored.contains("\x1b[1;31m"), "red and bold: {colored:?}");
    }

    #[test]
    fn a_look_alike_is_a_loud_line_naming_both_keys_and_a_json_object() {
        let cyrillic = "\u{0455}\u{043E}\u{0440}\u{04BB}\u{0456}\u{0435}";
        let event = Event::LookAlike {
            room: "lobby".into(),
            nick: cyrillic.into(),
            looks_like: "sophie".into(),
            pinned_fingerprint: "ab12:cd34:ef56:7890".into(),
            fingerprint: "0000:1111:2222:3333".into(),
        };
        let line = renderer(Format::Line).event(&event).unwrap().text;
        assert!(
            line.ends_with(&format!(
                "warning: {cyrillic} looks like sophie, whose key is ab12:cd34:ef56:7890; \
                 {cyrillic} has another key (0000:1111:2222:3333) and may not be the sophie \
                 you know — compare `/verify {cyrillic}`"
            )),
            "{line}"
        );
        let value = json_of(&event);
        assert_eq!(value["type"], "look_alike");
        assert_eq!(value["from"], cyrillic);
        assert_eq!(value["looks_like"], "sophie");
        assert_eq!(value["pinned_fingerprint"], "ab12:cd34:ef56:7890");
        assert_eq!(value["fingerprint"], "0000:1111:2222:3333");
    }

    fn json_of(event: &Event) -> serde_json::Value {
        serde_json::from_str(&renderer(Format::Json).event(event).unwrap().text).unwrap()
    }

    #[test]
    fn typed_notices_are_worded_here_and_carry_their_fields_in_json() {
        let refused = Event::Status(Notice::MessageNotDelivered {
            room: "lobby".into(),
            text: "line 7".into(),
            reason: ErrorReason::RateLimited,
        });
        let line = renderer(Format::Line).event(&refused).unwrap().text;
        assert!(
            line.ends_with("-- warning: message not delivered (slow down): \"line 7\""),
            "{line}"
        );
        let json = json_of(&refused);
        assert_eq!(
            (&json["type"], &json["room"], &json["reason"], &json["line"]),
            (
                &"message_not_delivered".into(),
                &"lobby".into(),
                &"rate_limited".into(),
                &"line 7".into()
            )
        );
        let rejoined = Event::Status(Notice::Rejoined {
            room: "lobby".into(),
            newcomers: vec!["dave".into()],
        });
        let line = renderer(Format::Line).event(&rejoined).unwrap().text;
        assert!(line.ends_with("same members; joined while you were out: dave"), "{line}");
        assert_eq!(json_of(&rejoined)["newcomers"], serde_json::json!(["dave"]));
        let lost = Event::Status(Notice::FramesLostWithConnection { room: None, count: 3 });
        assert_eq!(json_of(&lost)["count"], 3);
    }

    #[test]
    fn every_typed_notice_is_named_in_json_after_its_variant() {
        let error = SharedError::from(ClientError::NotInRoom);
        let (room, reason) = (String::from("lobby"), ErrorReason::RoomFull);
        let notices = [
            Notice::FramesLostWithConnection { room: None, count: 1 },
            Notice::Rejoined { room: room.clone(), newcomers: Vec::new() },
            Notice::RejoinFailed { room: room.clone(), error: error.clone() },
            Notice::JoinFailed { room: room.clone(), error },
            Notice::UnaskedWelcome { room: room.clone() },
            Notice::MessageNotDelivered { room, text: "hi".into(), reason: reason.clone() },
            Notice::RelayError { reason },
            Notice::AddressBlocked { retry_in: Duration::from_secs(60) },
        ];
        for notice in notices {
            let debug = format!("{notice:?}");
            let variant = debug.split([' ', '{', '(']).next().unwrap();
            let json = json_of(&Event::Status(notice.clone()));
            assert_eq!(json["type"], snake_case(variant), "{json}");
            assert!(json["text"].as_str().is_some_and(|text| !text.is_empty()), "{json}");
        }
        assert_eq!(snake_case("FramesLostWithConnection"), "frames_lost_with_connection");
    }

    /// Room notices (`Event::Room`) and the core's notices (`Event::Status`) are two sets of
    /// JSON types: no type means two things, and `docs/line-mode.md` lists every one.
    #[test]
    fn room_and_core_notices_have_distinct_json_types_all_documented() {
        use crate::client::RoomNotice;
        use crate::proto::{ReclaimRefusal, RemovalReason};
        let room = String::from("lobby");
        let committer = String::from("bob");
        let room_notices = [
            RoomNotice::CommitAborted { committer: committer.clone(), refuted: true },
            RoomNotice::CommitAbandoned { committer: committer.clone() },
            RoomNotice::FoundingOutnumbered,
            RoomNotice::AcceptedAnother { committer },
            RoomNotice::UnprovenConfirmation { yes: 1, of: 3 },
            RoomNotice::UnexpectedConfirmation,
            RoomNotice::MaySplit { from: "carol".into() },
            RoomNotice::TakenOut { reason: RemovalReason::NoVote },
            RoomNotice::ReclaimWaiting { ours: 1, holders: 2 },
            RoomNotice::ReclaimRefused { reason: ReclaimRefusal::AnotherGroup },
            RoomNotice::RemovedByRoom { committer: "dave".into() },
            RoomNotice::KeysRenewed { nick: "erin".into() },
            RoomNotice::StaleKeys { hours: 72 },
            RoomNotice::OutOfStep,
        ];
        let error = SharedError::from(ClientError::NotInRoom);
        let reason = ErrorReason::RoomFull;
        let core_notices = [
            Notice::FramesLostWithConnection { room: None, count: 1 },
            Notice::Rejoined { room: room.clone(), newcomers: Vec::new() },
            Notice::RejoinFailed { room: room.clone(), error: error.clone() },
            Notice::JoinFailed { room: room.clone(), error },
            Notice::UnaskedWelcome { room: room.clone() },
            Notice::MessageNotDelivered {
                room: room.clone(),
                text: "hi".into(),
                reason: reason.clone(),
            },
            Notice::RelayError { reason },
            Notice::AddressBlocked { retry_in: Duration::from_secs(60) },
        ];
        let documented = include_str!("../../docs/line-mode.md");
        let mut room_types = Vec::new();
        for notice in room_notices {
            let event = Event::Room { room: room.clone(), notice: notice.clone() };
            let json = json_of(&event);
            let debug = format!("{notice:?}");
            let variant = debug.split([' ', '{', '(']).next().unwrap();
            assert_eq!(json["type"], snake_case(variant), "{json}");
            assert_eq!(json["room"], "lobby", "{json}");
            let line = renderer(Format::Line).event(&event).unwrap().text;
            assert!(line.contains("-- "), "{line}");
            room_types.push(snake_case(variant));
        }
        let taken_out = Event::Room {
            room: room.clone(),
            notice: RoomNotice::ReclaimWaiting { ours: 1, holders: 2 },
        };
        assert_eq!(
            (json_of(&taken_out)["ours"].as_u64(), json_of(&taken_out)["holders"].as_u64()),
            (Some(1), Some(2))
        );
        let mut core_types = Vec::new();
        for notice in core_notices {
            let json = json_of(&Event::Status(notice));
            core_types.push(json["type"].as_str().unwrap().to_owned());
        }
        for kind in room_types.iter().chain(&core_types) {
            assert!(
                documented.contains(&format!("`{kind}`")),
                "{kind} is not in docs/line-mode.md"
            );
        }
        let shared: Vec<&String> =
            room_types.iter().filter(|kind| core_types.contains(kind)).collect();
        assert!(shared.is_empty(), "types that mean two things: {shared:?}");
    }

    #[test]
    fn each_reconnection_attempt_is_a_line_in_line_mode_and_only_the_prompt_at_a_terminal() {
        let attempt = Event::Connection(ConnectionEvent::Reconnecting {
            attempt: 2,
            retry_in: Duration::from_millis(700),
            last_error: None,
        });
        assert_eq!(renderer(Format::Color).event(&attempt), None);
        assert_eq!(renderer(Format::Plain).event(&attempt), None);
        let line = renderer(Format::Line).event(&attempt).unwrap().text;
        assert!(line.ends_with("reconnecting: attempt 2 in 0.7 s"), "{line}");
        assert_eq!(json_of(&attempt)["attempt"], 2);
    }

    #[test]
    fn why_the_link_dropped_and_why_the_session_ended_are_worded_here() {
        let silent = LinkLoss::Silent { after: Duration::from_secs(15) };
        let lost = Event::Connection(ConnectionEvent::Lost { reason: silent });
        let line = renderer(Format::Line).event(&lost).unwrap().text;
        assert!(
            line.ends_with(
                "connection lost (no answer from the server for 15 s); reconnecting by itself"
            ),
            "{line}"
        );
        assert_eq!(json_of(&lost)["reason"], "no answer from the server for 15 s");
        let error = SharedError::from(ClientError::WrongAccessCode);
        let end = Event::Disconnected(crate::client::SessionEnd::CannotReconnect(error));
        let line = renderer(Format::Line).event(&end).unwrap().text;
        assert!(
            line.ends_with("disconnected: cannot reconnect: wrong access code — Ctrl-D to exit")
        );
        let not_sent = Event::Connection(ConnectionEvent::NotSent {
            texts: vec!["hi".into()],
            reason: NotSentReason::LeftRoom,
        });
        assert_eq!(json_of(&not_sent)["reason"], "you left its room");
    }

    #[test]
    fn a_room_mark_is_sanitised_and_coloured_by_its_room() {
        let hostile = "e\x1b[2Jvil";
        assert_eq!(renderer(Format::Line).room_mark(hostile), "[e^[[2Jvil]");
        let painted = renderer(Format::Color).room_mark("ops");
        assert_eq!(painted, Style::new().fg(peer_color("ops")).paint("[ops]").to_string());
        let hostile_painted = renderer(Format::Color).room_mark(hostile);
        assert!(!hostile_painted.contains("\x1b[2J"), "{hostile_painted:?}");
    }

    #[test]
    fn records_are_json_objects_only_in_json() {
        let fields = serde_json::json!({ "code": "12345", "epoch": 3 });
        assert!(renderer(Format::Line).record("room_code", "text", &fields).is_none());
        let json = renderer(Format::Json).record("room_code", "text", &fields).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!((value["type"].as_str(), value["epoch"].as_u64()), (Some("room_code"), Some(3)));
        assert_eq!(value["text"], "text");
    }
}
