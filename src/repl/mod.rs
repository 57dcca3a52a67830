//! The interactive terminal client: a reedline REPL over the client engine.
//!
//! The REPL runs on the main thread; the engine and the event task run on tokio. Incoming
//! events are rendered by the event task and queued in an [`screen::Inbox`], printed above
//! the prompt from inside `read_line` (see [`screen`] for why that needs care) or directly
//! between two reads. [`commands::classify`] tells commands from chat (the same rule as line
//! mode); commands go to the registry, and the core names no particular command and only acts
//! on the [`Outcome`] it gets back.

pub mod access_code;
pub mod complete;
pub mod history;
pub mod line_mode;
pub mod pacing;
pub mod prompt;
pub mod render;
mod room_notice_text;
pub mod sanitize;
pub mod screen;
pub mod session;

use crate::commands::{self, Context, Engine, Input, Outcome, Output, SecretSource};
use crate::secret::Secret;
use crossterm::{QueueableCommand, cursor, terminal};
use reedline::{
    ColumnarMenu, Emacs, ExternalPrinter, KeyCode, KeyModifiers, MenuBuilder, Reedline,
    ReedlineEvent, ReedlineMenu, Signal, default_emacs_keybindings,
};
use render::Renderer;
use screen::{Inbox, ScreenState, SharedScreen};
use session::Session;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long the rooms to join at start wait for the first connection.
const STARTUP_CONNECT_WAIT: Duration = Duration::from_secs(30);

/// What Ctrl-Z asks reedline to hand back (as a host command) so that the REPL suspends.
const SUSPEND: &str = "suspend";
/// What Alt-1 to Alt-9 hand back, followed by the room's place: make that room current.
const SWITCH_TO: &str = "switch-to:";
/// What Alt-Left and Alt-Right hand back: make the previous or the next room current.
const SWITCH_PREVIOUS: &str = "switch-previous";
const SWITCH_NEXT: &str = "switch-next";

/// Flags raised by signal handlers (SIGTERM, SIGHUP, SIGCONT) for the REPL thread.
#[derive(Debug, Default)]
pub struct QuitFlags {
    /// The process was stopped and has just been continued: the screen needs the prompt
    /// again (a shell printed over it, or cleared it).
    pub continued: AtomicBool,
    /// Makes reedline's `read_line` return at its next poll.
    pub break_signal: Arc<AtomicBool>,
    /// A signal asked us to quit.
    pub requested: AtomicBool,
    /// The REPL thread has started quitting (so a signal handler need not).
    pub quitting: AtomicBool,
}

impl QuitFlags {
    /// Asks the REPL to quit as soon as it can.
    pub fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.break_signal.store(true, Ordering::SeqCst);
    }
}

/// What the REPL needs from the engine beyond the commands' [`Engine`].
pub trait ChatEngine: Engine {
    /// What the prompt shows.
    fn status(&self) -> prompt::PromptStatus;
    /// Sends a chat line to the current room.
    fn send_text(&self, text: &str) -> Result<(), crate::client::ClientError>;
}

impl ChatEngine for Session {
    fn status(&self) -> prompt::PromptStatus {
        Session::status(self)
    }
    fn send_text(&self, text: &str) -> Result<(), crate::client::ClientError> {
        Session::send_text(self, text)
    }
}

/// Everything the REPL needs.
pub struct Repl {
    /// The engine.
    pub session: Arc<dyn ChatEngine>,
    /// Rendered events waiting to be printed.
    pub inbox: Inbox,
    /// What reedline last painted; shared with the inbox.
    pub screen: SharedScreen,
    /// How lines are rendered.
    pub renderer: Renderer,
    /// Whether colours are on.
    pub color: bool,
    /// Where `/commands` are remembered; `None` keeps history in memory only.
    pub history_file: Option<PathBuf>,
    /// Signal flags.
    pub quit: Arc<QuitFlags>,
    /// The access code asked for again when the relay refused it at start-up.
    pub access_code: Arc<access_code::AccessCodeQuestion>,
    /// Use reedline's printer without our fix, to reproduce its faults
    /// (`examples/printer_demo.rs --stock`); always `false` in `chatter`.
    pub stock_printer: bool,
    /// Command lines run as if typed, once connected, before the first prompt (the
    /// `/join`s of `--join` and `autojoin`).
    pub startup_lines: Vec<String>,
}

impl Repl {
    /// Reads and runs lines until the user or a signal quits. The engine has been told to
    /// quit when this returns.
    pub fn run(self) -> std::io::Result<()> {
        let engine: Arc<dyn Engine> = self.session.clone();
        let stock = self.stock_printer;
        let mut editor = self.editor(engine.clone(), stock);
        let status_session = self.session.clone();
        let prompt =
            prompt::ChatPrompt::new(Box::new(move || status_session.status()), self.screen.clone());
        let mut out = TerminalOutput { renderer: &self.renderer, engine: engine.as_ref() };
        let mut quit_done = false;
        if !self.startup_lines.is_empty() && self.wait_until_connected() {
            for line in &self.startup_lines {
                let mut secrets = TtyPassword;
                let mut ctx =
                    Context { engine: engine.as_ref(), out: &mut out, secrets: &mut secrets };
                commands::dispatch(&mut ctx, line);
                self.inbox.print_pending();
            }
        }
        loop {
            self.inbox.print_pending();
            if self.quit.requested.load(Ordering::SeqCst) {
                break;
            }
            let signal = match editor.read_line(&prompt) {
                Ok(signal) => signal,
                // The terminal is gone (closed window): quit cleanly all the same.
                Err(_) => break,
            };
            match signal {
                Signal::Success(line) => match commands::classify(&line) {
                    Input::Blank => {}
                    Input::Command(command) => {
                        let mut secrets = TtyPassword;
                        let mut ctx = Context {
                            engine: engine.as_ref(),
                            out: &mut out,
                            secrets: &mut secrets,
                        };
                        match commands::dispatch(&mut ctx, command) {
                            Outcome::Continue => {}
                            Outcome::ClearScreen => {
                                let _ = editor.clear_screen();
                            }
                            Outcome::Quit => {
                                quit_done = true;
                                break;
                            }
                        }
                    }
                    Input::Chat(text) => {
                        if !stock {
                            self.erase_echo(&line);
                        }
                        self.send_chat(text, &mut out);
                    }
                },
                Signal::HostCommand(command) if command == SUSPEND => suspend(),
                Signal::HostCommand(command) => {
                    if let Some(target) = switch_target(engine.as_ref(), &command)
                        && let Err(error) = engine.switch(&target)
                    {
                        out.error(&error.to_string());
                    }
                }
                Signal::CtrlD => break,
                Signal::ExternalBreak(_) if self.quit.requested.load(Ordering::SeqCst) => break,
                // The connecting task has a question; reedline keeps what was being typed.
                Signal::ExternalBreak(_) => {
                    if let Some(question) = self.access_code.take() {
                        println!();
                        self.inbox.print_pending();
                        let code = rpassword::prompt_password(&question.prompt).ok();
                        let _ = question.answer.send(code.map(Secret::new));
                    }
                }
                // Ctrl-C has cleared the line; anything else needs no action.
                _ => {}
            }
        }
        if self.quit.quitting.swap(true, Ordering::SeqCst) {
            // A signal handler is already quitting and will exit the process.
            loop {
                std::thread::park();
            }
        }
        if !quit_done && let Err(error) = engine.quit() {
            out.error(&format!("quitting: {error}"));
        }
        self.inbox.print_pending();
        Ok(())
    }

    fn editor(&self, engine: Arc<dyn Engine>, stock: bool) -> Reedline {
        let mut keybindings = default_emacs_keybindings();
        keybindings.add_binding(
            KeyModifiers::NONE,
            KeyCode::Tab,
            ReedlineEvent::UntilFound(vec![
                ReedlineEvent::Menu("completion_menu".to_string()),
                ReedlineEvent::MenuNext,
            ]),
        );
        // Ctrl-Z reaches us as a key (the terminal is raw): leave `read_line`, which gives
        // the terminal back as it was, and stop as the shell expects.
        keybindings.add_binding(
            KeyModifiers::CONTROL,
            KeyCode::Char('z'),
            ReedlineEvent::ExecuteHostCommand(SUSPEND.to_owned()),
        );
        // Alt-1 to Alt-9 make room 1 to 9 current, Alt-Left and Alt-Right the previous and the
        // next one (Ctrl-N and Ctrl-P stay reedline's history keys). reedline hands them back
        // as host commands, keeping what was being typed.
        for place in 1..=9u8 {
            keybindings.add_binding(
                KeyModifiers::ALT,
                KeyCode::Char(char::from(b'0' + place)),
                ReedlineEvent::ExecuteHostCommand(format!("{SWITCH_TO}{place}")),
            );
        }
        keybindings.add_binding(
            KeyModifiers::ALT,
            KeyCode::Left,
            ReedlineEvent::ExecuteHostCommand(SWITCH_PREVIOUS.to_owned()),
        );
        keybindings.add_binding(
            KeyModifiers::ALT,
            KeyCode::Right,
            ReedlineEvent::ExecuteHostCommand(SWITCH_NEXT.to_owned()),
        );
        // Alt-Enter starts a new line in the same message.
        keybindings.add_binding(
            KeyModifiers::ALT,
            KeyCode::Enter,
            ReedlineEvent::Edit(vec![reedline::EditCommand::InsertNewline]),
        );
        let menu = ColumnarMenu::default().with_name("completion_menu");
        let engine_for_hangup = engine.clone();
        let printer = ExternalPrinter::new(screen::PRINTER_CAPACITY);
        let mut print = if stock {
            self.inbox.clone().stock_callback(&printer)
        } else {
            self.inbox.clone().idle_callback(&printer)
        };
        let quit = self.quit.clone();
        let mut editor = Reedline::create()
            .with_history(Box::new(history::CommandHistory::open(self.history_file.clone())))
            .with_completer(Box::new(complete::ChatCompleter::new(engine.clone())))
            .with_quick_completions(true)
            .with_partial_completions(true)
            .with_menu(ReedlineMenu::EngineCompleter(Box::new(menu)))
            .with_edit_mode(Box::new(Emacs::new(keybindings)))
            .with_hinter(Box::new(complete::CommandHinter::default()))
            .with_highlighter(Box::new(complete::InputHighlighter::new(
                self.screen.clone(),
                self.color,
            )))
            .with_ansi_colors(self.color)
            .use_bracketed_paste(true)
            .with_break_signal(self.quit.break_signal.clone())
            .with_poll_interval(Duration::from_millis(50))
            .with_external_printer(printer);
        // The prompt is the link's status line: when what it would show changes (another
        // reconnection attempt, lines waiting, back online), it is repainted in place.
        let repaint = editor.repaint_signal();
        let status_session = self.session.clone();
        let screen = self.screen.clone();
        let idle = Box::new(move || {
            // reedline checks the break signal between this callback and draining its printer,
            // so lines handed over now could be stranded there; leave them in the inbox.
            if !quit.break_signal.load(Ordering::SeqCst) {
                print();
            }
            let continued = quit.continued.swap(false, Ordering::SeqCst);
            if continued
                || screen.get().prompt != prompt::ChatPrompt::painted(&status_session.status())
            {
                repaint.request_repaint();
            }
            // A closed terminal does not always deliver SIGHUP (and reading it then returns
            // end-of-file forever), so look for the hang-up ourselves. Leaving `read_line`
            // normally would wait seconds for the dead terminal to answer a cursor query, and
            // there is no terminal left to restore, so quit the engine and exit from here.
            if terminal_hung_up() && !quit.quitting.swap(true, Ordering::SeqCst) {
                let _ = engine_for_hangup.quit();
                exit_now();
            }
        });
        editor.with_idle_callback(idle)
    }

    /// Waits, printing what arrives, until the start-up connection is made (true) or has
    /// failed, or a signal asked us to quit, or [`STARTUP_CONNECT_WAIT`] passed (false).
    fn wait_until_connected(&self) -> bool {
        let deadline = std::time::Instant::now() + STARTUP_CONNECT_WAIT;
        loop {
            self.inbox.print_pending();
            match self.session.status().state {
                prompt::ConnectionState::Connected => return true,
                prompt::ConnectionState::Connecting { .. }
                    if std::time::Instant::now() < deadline
                        && !self.quit.requested.load(Ordering::SeqCst) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = writeln!(
                        std::io::stdout(),
                        "{}",
                        self.renderer
                            .error("not connected: the rooms to join at start were not joined")
                    );
                    return false;
                }
            }
        }
    }

    /// Removes the prompt and the line just submitted, which the formatted own line replaces.
    fn erase_echo(&self, line: &str) {
        let Ok((width, _)) = terminal::size() else { return };
        let state =
            ScreenState { buffer: line.to_owned(), cursor: line.len(), ..self.screen.get() };
        let rows = screen::rows_of_input(&state, width.max(1));
        let mut stdout = std::io::stdout().lock();
        let _ = stdout
            .queue(cursor::MoveUp(rows))
            .and_then(|out| out.queue(cursor::MoveToColumn(0)))
            .and_then(|out| out.queue(terminal::Clear(terminal::ClearType::FromCursorDown)));
        let _ = stdout.flush();
    }

    fn send_chat(&self, text: &str, out: &mut TerminalOutput<'_>) {
        if self.session.current_room().is_none() {
            out.error("not in a room — /join ROOM first (/help lists the commands)");
            return;
        }
        match self.session.send_text(text) {
            Ok(()) => out.own_message(text, false),
            Err(error) => out.error(&format!("not sent: {error}")),
        }
    }
}

/// The room a switching key means: its place, or the room before or after the current one
/// (wrapping around); `None` for any other host command, or with no room to go to.
fn switch_target(engine: &dyn Engine, command: &str) -> Option<String> {
    if let Some(place) = command.strip_prefix(SWITCH_TO) {
        return Some(place.to_owned());
    }
    let step: isize = match command {
        SWITCH_PREVIOUS => -1,
        SWITCH_NEXT => 1,
        _ => return None,
    };
    let rooms = engine.my_rooms();
    let current = rooms.iter().position(|tab| tab.current)?;
    let next = (current as isize + step).rem_euclid(rooms.len() as isize) as usize;
    rooms.get(next).map(|tab| tab.name.clone())
}

/// Stops the process as Ctrl-Z does in a cooked terminal (SIGTSTP, so a shell with job
/// control takes over), once `read_line` has restored the terminal; returns when continued
/// (`fg`), and the next `read_line` draws the prompt again. Without job control (no shell
/// to continue it) the kernel discards the signal and nothing happens.
fn suspend() {
    let _ = std::io::stdout().flush();
    #[cfg(unix)]
    // SAFETY: `raise` takes no pointers; SIGTSTP has its default action (stop) here.
    unsafe {
        libc::raise(libc::SIGTSTP);
    }
}

/// Ends the process at once with status 0, without flushing stdout: used when the terminal
/// is gone (flushing could wait on a lock the REPL thread holds while writing to it).
pub fn exit_now() -> ! {
    #[cfg(unix)]
    // SAFETY: `_exit` takes no pointers; skipping destructors is the point.
    unsafe {
        libc::_exit(0)
    }
    #[cfg(not(unix))]
    std::process::exit(0)
}

/// Whether the terminal on stdin has been closed.
fn terminal_hung_up() -> bool {
    #[cfg(unix)]
    {
        let mut poll_fd = libc::pollfd { fd: libc::STDIN_FILENO, events: libc::POLLIN, revents: 0 };
        // SAFETY: one valid `pollfd` we own, a count of 1 and a zero timeout.
        let ready = unsafe { libc::poll(&mut poll_fd, 1, 0) };
        ready > 0 && poll_fd.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Command output on the terminal.
struct TerminalOutput<'a> {
    renderer: &'a Renderer,
    engine: &'a dyn Engine,
}

impl Output for TerminalOutput<'_> {
    fn notice(&mut self, text: &str) {
        println!("{}", self.renderer.notice(text));
    }
    fn error(&mut self, text: &str) {
        println!("{}", self.renderer.error(text));
    }
    fn own_message(&mut self, text: &str, action: bool) {
        let room = self.engine.current_room();
        let line = match self.engine.nick() {
            // After a `/nick`, our lines carry the new name.
            Some(nick) if nick != self.renderer.own_nick => {
                let renderer = Renderer { own_nick: nick, ..self.renderer.clone() };
                renderer.own_message(room.as_deref(), text, action)
            }
            _ => self.renderer.own_message(room.as_deref(), text, action),
        };
        println!("{line}");
    }
}

/// Room passwords from a hidden prompt on the terminal.
struct TtyPassword;

impl SecretSource for TtyPassword {
    fn room_password(&mut self, room: &str) -> std::io::Result<Secret> {
        let room = sanitize::sanitize_inline(room);
        rpassword::prompt_password(format!("password for {room} (Enter for an open room): "))
            .map(Secret::new)
    }
}
