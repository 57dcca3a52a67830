//! Printing incoming lines above the prompt without disturbing the line being typed.
//!
//! reedline's `ExternalPrinter` prints queued lines from inside `read_line`, then repaints the
//! prompt below them; after printing it measures the cursor, so the prompt lands in the right
//! place. What it gets wrong is where it *starts*: to reach the prompt's first row it moves up
//! by a row count computed from byte lengths and the right prompt's width plus 3, from wherever
//! the cursor is. Non-ASCII input (two bytes per `ř`) moves it up too far, over earlier
//! messages; a long left prompt or a cursor moved left moves it too little, leaving copies of
//! a wrapped prompt behind.
//!
//! We fix the start instead of replacing the printer. Our `Prompt` and `Highlighter` record
//! what reedline last painted ([`ScreenState`]), which is enough to compute exactly how many
//! rows the cursor sits below the prompt's first row (display widths, the prompt, the
//! multi-line indicator; the same rules as reedline's painter). reedline's idle callback runs
//! inside `read_line` just before the printer is drained; ours ([`Inbox::idle_callback`]) moves
//! to the prompt's first row, clears from there down, and then steps down exactly as many rows
//! as the printer will move up, before handing the lines over. The printer therefore starts
//! on the prompt's first row every time. Lines arriving while `read_line` is not running wait
//! in the [`Inbox`] (an unbounded channel, so the tokio side never blocks) and are printed by
//! the REPL itself with [`Inbox::print_pending`]; each line has one consumer, so none is lost
//! or shown twice.

use crossterm::{QueueableCommand, cursor, terminal};
use reedline::ExternalPrinter;
use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use unicode_width::UnicodeWidthChar;

/// How many lines reedline's printer may hold between two of its polls.
pub const PRINTER_CAPACITY: usize = 1024;

/// What reedline last painted, recorded by our prompt and highlighter.
#[derive(Debug, Clone, Default)]
pub struct ScreenState {
    /// The left prompt and the indicator, as painted (no escape sequences).
    pub prompt: String,
    /// The indicator reedline puts in front of every line after a newline in the buffer.
    pub multiline_indicator: String,
    /// The whole input buffer.
    pub buffer: String,
    /// The cursor's byte offset in `buffer`.
    pub cursor: usize,
}

/// A handle on the recorded [`ScreenState`], shared by the prompt, the highlighter and the
/// idle callback (all on the reedline thread, so the lock is never contended for long).
#[derive(Debug, Clone, Default)]
pub struct SharedScreen(Arc<Mutex<ScreenState>>);

impl SharedScreen {
    /// Records the prompt strings reedline is painting.
    pub fn set_prompt(&self, prompt: String, multiline_indicator: String) {
        let mut state = self.lock();
        state.prompt = prompt;
        state.multiline_indicator = multiline_indicator;
    }
    /// Records the buffer and cursor reedline is painting.
    pub fn set_buffer(&self, buffer: &str, cursor: usize) {
        let mut state = self.lock();
        if state.buffer != buffer {
            state.buffer = buffer.to_owned();
        }
        state.cursor = cursor;
    }
    /// A copy of the state.
    pub fn get(&self) -> ScreenState {
        self.lock().clone()
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, ScreenState> {
        // A panic while holding this lock cannot leave the plain strings inconsistent.
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The sending side of the inbox: cheap to clone, never blocks.
pub type Outbox = Sender<String>;

/// Lines waiting to be printed above the prompt.
#[derive(Clone)]
pub struct Inbox {
    receiver: Arc<Mutex<Receiver<String>>>,
    screen: SharedScreen,
}

impl Inbox {
    /// A new inbox and the sender the event task writes to.
    pub fn new(screen: SharedScreen) -> (Inbox, Outbox) {
        let (sender, receiver) = std::sync::mpsc::channel();
        (Inbox { receiver: Arc::new(Mutex::new(receiver)), screen }, sender)
    }

    fn take(&self, limit: usize) -> Vec<String> {
        let receiver = self.receiver.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        receiver.try_iter().take(limit).collect()
    }

    /// Prints everything waiting, directly: for use while `read_line` is not running.
    pub fn print_pending(&self) {
        let lines = self.take(usize::MAX);
        if lines.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        for line in lines {
            let _ = writeln!(stdout, "{line}");
        }
        let _ = stdout.flush();
    }

    /// The idle callback for reedline: prepares the screen and feeds the printer.
    pub fn idle_callback(self, printer: &ExternalPrinter<String>) -> Box<dyn FnMut() + Send> {
        let sender: SyncSender<String> = printer.sender();
        let mut held: VecDeque<String> = VecDeque::new();
        Box::new(move || {
            held.extend(self.take(PRINTER_CAPACITY.saturating_sub(held.len())));
            if held.is_empty() {
                return;
            }
            let width = terminal::size().map_or(80, |(columns, _)| columns).max(1);
            let state = self.screen.get();
            let mut stdout = std::io::stdout().lock();
            let _ = queue_start_of_prompt(&mut stdout, &state, width);
            let _ = stdout.flush();
            while let Some(line) = held.pop_front() {
                // reedline splits on line breaks and prints nothing for an empty line.
                let line = if line.is_empty() { " ".to_owned() } else { line };
                match sender.try_send(line) {
                    Ok(()) => {}
                    Err(TrySendError::Full(line)) => {
                        held.push_front(line);
                        break;
                    }
                    Err(TrySendError::Disconnected(_)) => break,
                }
            }
        })
    }
}

impl Inbox {
    /// An idle callback that feeds reedline's printer without the fix, to show its faults.
    pub fn stock_callback(self, printer: &ExternalPrinter<String>) -> Box<dyn FnMut() + Send> {
        let sender: SyncSender<String> = printer.sender();
        Box::new(move || {
            for line in self.take(PRINTER_CAPACITY) {
                let _ = sender.try_send(line);
            }
        })
    }
}

/// Queues the moves that leave the cursor where reedline's printer starts from the prompt's
/// first row: up to that row, clear it and everything below, then down as many rows as the
/// printer is about to move up.
fn queue_start_of_prompt(
    out: &mut impl Write,
    state: &ScreenState,
    width: u16,
) -> std::io::Result<()> {
    let up = rows_above_cursor(state, width);
    if up > 0 {
        out.queue(cursor::MoveUp(up))?;
    }
    out.queue(cursor::MoveToColumn(0))?;
    out.queue(terminal::Clear(terminal::ClearType::FromCursorDown))?;
    for _ in 1..printer_move_up(&state.buffer, width).max(1) {
        out.write_all(b"\r\n")?;
    }
    Ok(())
}

/// How many rows the cursor is below the prompt's first row, the way reedline lays out the
/// prompt, the indicator and the text before the cursor (with the multi-line indicator after
/// each newline).
pub fn rows_above_cursor(state: &ScreenState, width: u16) -> u16 {
    let before = &state.buffer[..floor_char_boundary(&state.buffer, state.cursor)];
    let mut walk = Walk::new(width);
    walk.text(&state.prompt);
    let mut lines = before.split('\n');
    if let Some(first) = lines.next() {
        walk.text(first);
    }
    for line in lines {
        walk.newline();
        walk.text(&state.multiline_indicator);
        walk.text(line);
    }
    walk.resolved_row()
}

/// How many rows the prompt and the whole buffer occupy.
pub fn rows_of_input(state: &ScreenState, width: u16) -> u16 {
    let at_end = ScreenState { cursor: state.buffer.len(), ..state.clone() };
    rows_above_cursor(&at_end, width) + 1
}

/// The row count reedline 0.52's `print_external_message` moves up by, minus nothing: the
/// same formula, flaws included (byte lengths; right prompt empty, so 3 for the prompt).
fn printer_move_up(buffer: &str, width: u16) -> u16 {
    let prompt_len = 3;
    let mut rows = 0_u16;
    for (i, line) in buffer.lines().enumerate() {
        let length = if i == 0 { line.len() + prompt_len } else { line.len() };
        rows = rows.saturating_add((length as u16) / width + 1);
    }
    rows
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

/// Where the terminal's cursor ends up as text is printed, one character at a time.
struct Walk {
    width: u16,
    row: u16,
    column: u16,
}

impl Walk {
    fn new(width: u16) -> Self {
        Walk { width: width.max(1), row: 0, column: 0 }
    }
    fn newline(&mut self) {
        self.row = self.row.saturating_add(1);
        self.column = 0;
    }
    fn text(&mut self, text: &str) {
        let mut in_escape = false;
        for c in text.chars() {
            // Skip SGR sequences in case a prompt carries colours.
            if in_escape {
                in_escape = !c.is_ascii_alphabetic();
                continue;
            }
            if c == '\x1b' {
                in_escape = true;
                continue;
            }
            if c == '\n' {
                self.newline();
                continue;
            }
            let char_width = c.width().unwrap_or(0) as u16;
            // A pending wrap from a filled row happens when the next glyph arrives.
            if self.column >= self.width {
                self.newline();
            }
            // A wide glyph that does not fit wraps early, leaving the last column blank.
            if self.column > 0 && self.column + char_width > self.width {
                self.newline();
            }
            self.column += char_width;
        }
    }
    /// The cursor's row: a filled row leaves it at the start of the next one.
    fn resolved_row(&self) -> u16 {
        if self.column >= self.width { self.row.saturating_add(1) } else { self.row }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(prompt: &str, buffer: &str, cursor: usize) -> ScreenState {
        ScreenState {
            prompt: prompt.into(),
            multiline_indicator: "::: ".into(),
            buffer: buffer.into(),
            cursor,
        }
    }

    #[test]
    fn short_input_is_on_the_prompt_row() {
        assert_eq!(rows_above_cursor(&state("alice> ", "hi", 2), 60), 0);
    }

    #[test]
    fn non_ascii_counts_columns_not_bytes() {
        // 20 characters but 31 bytes: still one row on a 30-column terminal with the prompt.
        let text = "příliš žluťoučký kůň";
        let s = state("a> ", text, text.len());
        assert_eq!(rows_above_cursor(&s, 30), 0);
        // reedline's own count: (31 + 3) / 30 + 1 = 2 rows.
        assert_eq!(printer_move_up(text, 30), 2);
    }

    #[test]
    fn wrapped_input_and_a_long_prompt_count_every_row() {
        let text = "x".repeat(100);
        let s = state("alice@lobby > ", &text, text.len());
        // 14 + 100 = 114 columns on 60: rows 0 and 1.
        assert_eq!(rows_above_cursor(&s, 60), 1);
        // The cursor moved back to the start of the buffer is on the prompt row.
        assert_eq!(rows_above_cursor(&ScreenState { cursor: 0, ..s.clone() }, 60), 0);
        assert_eq!(rows_of_input(&s, 60), 2);
    }

    #[test]
    fn a_filled_row_puts_the_cursor_on_the_next() {
        let s = state("> ", "abcd", 4);
        assert_eq!(rows_above_cursor(&s, 6), 1);
    }

    #[test]
    fn multi_line_buffers_count_the_indicator() {
        let s = state("> ", "one\ntwo\nthree", 13);
        assert_eq!(rows_above_cursor(&s, 60), 2);
        assert_eq!(rows_of_input(&s, 60), 3);
    }

    #[test]
    fn wide_characters_wrap_early() {
        // 3 columns left after the prompt, then a 2-wide glyph twice: the second wraps.
        let s = state("abc", "漢字", "漢字".len());
        assert_eq!(rows_above_cursor(&s, 6), 1);
    }

    #[test]
    fn a_wrapped_line_under_a_long_prompt_is_climbed_in_full() {
        // reedline counts (51 + 3) / 60 + 1 = 1 row and would not move up at all, leaving
        // the first row of the input behind; we move up one row and add no newline.
        let text = "the quick brown fox jumps over the lazy dog again!!";
        let s = state("alice@lobby> ", text, text.len());
        assert_eq!(rows_above_cursor(&s, 60), 1);
        assert_eq!(printer_move_up(text, 60), 1);
        let mut out = Vec::new();
        queue_start_of_prompt(&mut out, &s, 60).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.starts_with("\x1b[1A") && !out.contains("\r\n"), "{out:?}");
    }

    #[test]
    fn the_moves_start_the_printer_on_the_prompt_row() {
        let text = "příliš žluťoučký kůň";
        let s = state("a> ", text, text.len());
        let mut out = Vec::new();
        queue_start_of_prompt(&mut out, &s, 30).unwrap();
        let out = String::from_utf8(out).unwrap();
        // Not moved up (cursor on the prompt row), one row down for reedline's count of 2.
        assert!(!out.contains('A'), "{out:?}");
        assert!(out.ends_with("\r\n") && !out.ends_with("\r\n\r\n"), "{out:?}");
    }
}
