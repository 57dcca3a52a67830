//! Tab completion, hints and input highlighting, all driven by the command registry.
//!
//! The highlighter also records the buffer and cursor reedline is painting, for the printer
//! workaround in [`crate::repl::screen`].

use crate::commands::{self, Engine, REGISTRY};
use crate::repl::screen::SharedScreen;
use nu_ansi_term::{Color, Style};
use reedline::{
    Completer, CompletionResult, Highlighter, Hinter, History, Span, StyledText, Suggestion,
};
use std::sync::Arc;

/// Completes command names, command arguments and, in chat lines, nicknames.
pub struct ChatCompleter {
    engine: Arc<dyn Engine>,
}

impl ChatCompleter {
    /// A completer asking `engine` for rooms and members.
    pub fn new(engine: Arc<dyn Engine>) -> Self {
        ChatCompleter { engine }
    }

    /// The suggestions for `line` with the cursor at `pos`.
    pub fn suggestions(&self, line: &str, pos: usize) -> Vec<Suggestion> {
        let Some(before) = line.get(..pos) else { return Vec::new() };
        let suggestion = |value: String, start: usize, append_whitespace: bool| Suggestion {
            value,
            span: Span::new(start, pos),
            append_whitespace,
            ..Default::default()
        };
        if before.starts_with('/') {
            let candidates = commands::complete_line(self.engine.as_ref(), before);
            match before.find(char::is_whitespace) {
                None => candidates.into_iter().map(|name| suggestion(name, 0, true)).collect(),
                Some(name_end) => {
                    let rest = &before[name_end..];
                    let arg_start = name_end + (rest.len() - rest.trim_start().len());
                    candidates.into_iter().map(|arg| suggestion(arg, arg_start, false)).collect()
                }
            }
        } else {
            // A chat line: complete the word being typed with a member's nickname.
            let word_start = before.rfind(char::is_whitespace).map_or(0, |at| at + 1);
            let word = &before[word_start..];
            if word.is_empty() {
                return Vec::new();
            }
            let members = self.engine.members().map(|view| view.members).unwrap_or_default();
            let nicks = members.into_iter().filter(|m| !m.is_self).map(|m| m.nick);
            commands::matching(nicks, word)
                .into_iter()
                .map(|nick| {
                    let value = if word_start == 0 { format!("{nick}:") } else { nick };
                    suggestion(value, word_start, true)
                })
                .collect()
        }
    }
}

impl Completer for ChatCompleter {
    fn complete(&mut self, line: &str, pos: usize) -> CompletionResult {
        CompletionResult::fresh(self.suggestions(line, pos))
    }
}

/// Hints the rest of a command name and its usage, e.g. `/jo` → `in ROOM`.
#[derive(Default)]
pub struct CommandHinter {
    complete: String,
}

impl CommandHinter {
    /// The hint for `line`: the text to accept with → and the text to show.
    pub fn hint_for(line: &str) -> (String, String) {
        let Some(typed) = line.strip_prefix('/') else { return Default::default() };
        let (name, args) = match typed.find(' ') {
            Some(at) => (&typed[..at], Some(&typed[at + 1..])),
            None => (typed, None),
        };
        if name.is_empty() {
            return Default::default();
        }
        let usage_args = |command: &dyn commands::Command| {
            command.usage().split_once(' ').map(|(_, a)| a.to_owned())
        };
        match args {
            None => {
                let mut found = REGISTRY.iter().filter(|c| c.name().starts_with(name));
                match (found.next(), found.next()) {
                    (Some(command), None) => {
                        let rest = command.name()[name.len()..].to_owned();
                        let shown = match usage_args(*command) {
                            Some(args) => format!("{rest} {args}"),
                            None => rest.clone(),
                        };
                        (rest, shown)
                    }
                    _ => Default::default(),
                }
            }
            Some("") => match commands::find(name).and_then(usage_args) {
                Some(args) => (String::new(), args),
                None => Default::default(),
            },
            Some(_) => Default::default(),
        }
    }
}

impl Hinter for CommandHinter {
    fn handle(
        &mut self,
        line: &str,
        pos: usize,
        _history: &dyn History,
        use_ansi_coloring: bool,
        _cwd: &str,
    ) -> String {
        if pos != line.len() {
            self.complete.clear();
            return String::new();
        }
        let (complete, shown) = Self::hint_for(line);
        self.complete = complete;
        if use_ansi_coloring && !shown.is_empty() {
            Style::new().fg(Color::DarkGray).paint(shown).to_string()
        } else {
            shown
        }
    }
    fn complete_hint(&self) -> String {
        self.complete.clone()
    }
    fn next_hint_token(&self) -> String {
        self.complete.clone()
    }
}

/// Colours known commands green and unknown ones red, and records what is being painted.
pub struct InputHighlighter {
    screen: SharedScreen,
    color: bool,
}

impl InputHighlighter {
    /// A highlighter recording into `screen`.
    pub fn new(screen: SharedScreen, color: bool) -> Self {
        InputHighlighter { screen, color }
    }
}

impl Highlighter for InputHighlighter {
    fn highlight(&self, line: &str, cursor: usize) -> StyledText {
        self.screen.set_buffer(line, cursor);
        let mut styled = StyledText::new();
        let name_end = line.find(char::is_whitespace).unwrap_or(line.len());
        match commands::parse_line(line) {
            Some((name, _)) if self.color && line.starts_with('/') => {
                let color = if commands::find(name).is_some() { Color::Green } else { Color::Red };
                styled.push((Style::new().fg(color), line[..name_end].to_owned()));
                styled.push((Style::new(), line[name_end..].to_owned()));
            }
            _ => styled.push((Style::new(), line.to_owned())),
        }
        styled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::testing::FakeEngine;

    fn completer() -> ChatCompleter {
        ChatCompleter::new(Arc::new(FakeEngine {
            rooms: vec![("lobby".into(), 2), ("linux".into(), 1)],
            members: vec![("alice".into(), true, true), ("bob".into(), false, false)],
            ..FakeEngine::in_room("lobby")
        }))
    }

    fn values(suggestions: Vec<Suggestion>) -> Vec<(String, usize)> {
        suggestions.into_iter().map(|s| (s.value, s.span.start)).collect()
    }

    #[test]
    fn completes_command_names_and_room_arguments() {
        let c = completer();
        assert_eq!(values(c.suggestions("/jo", 3)), [("/join".to_owned(), 0)]);
        assert_eq!(
            values(c.suggestions("/join l", 7)),
            [("linux".to_owned(), 6), ("lobby".to_owned(), 6)]
        );
    }

    #[test]
    fn completes_nicks_in_chat_lines_but_not_our_own() {
        let c = completer();
        assert_eq!(values(c.suggestions("b", 1)), [("bob:".to_owned(), 0)]);
        assert_eq!(values(c.suggestions("hi b", 4)), [("bob".to_owned(), 3)]);
        assert!(c.suggestions("hi a", 4).is_empty());
    }

    #[test]
    fn hints_the_rest_of_a_command_and_its_usage() {
        assert_eq!(CommandHinter::hint_for("/jo"), ("in".to_owned(), "in ROOM".to_owned()));
        assert_eq!(CommandHinter::hint_for("/join "), (String::new(), "ROOM".to_owned()));
        assert_eq!(CommandHinter::hint_for("/join lobby"), Default::default());
        assert_eq!(CommandHinter::hint_for("hello"), Default::default());
    }

    #[test]
    fn the_highlighter_records_the_buffer() {
        let screen = SharedScreen::default();
        InputHighlighter::new(screen.clone(), true).highlight("příliš", 4);
        assert_eq!((screen.get().buffer.as_str(), screen.get().cursor), ("příliš", 4));
    }
}
