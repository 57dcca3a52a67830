//! Neutralising text that came from peers before it reaches the terminal.
//!
//! Message text, nicknames and room names are chosen by other people. Printed raw, an escape
//! sequence could move the cursor, recolour or retitle the terminal, a `\r` or backspaces could
//! overwrite what is already on the line, and bidi overrides could reorder it. Every control
//! character (C0, DEL, C1, which also covers CSI and OSC introducers) and every bidi control is
//! replaced by a visible placeholder, so what you see is exactly what was sent. A tab becomes
//! spaces, the one control character with an innocent, common use.
//!
//! Invisible characters (`proto::invisible_kind`: variation selectors, zero-width joiners and
//! spaces, soft hyphens, tags, ...) are shown as `<U+FE0F>` too, so "sophie" and "sophie" with
//! a variation selector never print alike. The few with a use in ordinary text stay as they
//! are where that use is possible: a joiner or variation selector after a character outside
//! ASCII (emoji sequences such as ❤️ or 👩‍💻, joining scripts), an emoji selector after a
//! digit, `#` or `*` (keycaps such as 1️⃣), a tag after another tag or a flag. After an ASCII
//! letter, where no such use exists, they are shown.

/// Sanitises text for one line: line breaks become visible placeholders too.
pub fn sanitize_inline(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut previous = None;
    for c in text.chars() {
        push_visible(&mut out, c, previous);
        previous = Some(c);
    }
    out
}

/// Whether the invisible character `c` has an ordinary use right after `previous`.
fn joins_with(c: char, previous: Option<char>) -> bool {
    let Some(previous) = previous else { return false };
    match c {
        '\u{200C}' | '\u{200D}' | '\u{FE00}'..='\u{FE0F}' if !previous.is_ascii() => true,
        // Keycap emoji: a digit, `#` or `*`, the emoji selector, then U+20E3.
        '\u{FE0E}' | '\u{FE0F}' => matches!(previous, '0'..='9' | '#' | '*'),
        '\u{E0020}'..='\u{E007F}' => matches!(previous, '\u{1F3F4}' | '\u{E0020}'..='\u{E007F}'),
        _ => false,
    }
}

/// Sanitises a (possibly multi-line) message into its lines.
///
/// `\n` and `\r\n` split lines; the caller prints every line after the first as an indented
/// continuation, so no line of a message can pass for a line of its own.
pub fn sanitize_lines(text: &str) -> Vec<String> {
    text.split('\n').map(|line| sanitize_inline(line.strip_suffix('\r').unwrap_or(line))).collect()
}

fn push_visible(out: &mut String, c: char, previous: Option<char>) {
    match c {
        '\t' => out.push_str("    "),
        // C0 controls as caret notation: ESC is ^[, CR is ^M, backspace is ^H.
        '\0'..='\x1f' => {
            out.push('^');
            out.push(char::from(b'@' + c as u8));
        }
        '\x7f' => out.push_str("^?"),
        // C1 controls (U+0080..U+009F, including the one-byte CSI U+009B), bidi embeddings,
        // overrides and isolates, and the invisible direction marks.
        '\u{80}'..='\u{9f}'
        | '\u{200e}'
        | '\u{200f}'
        | '\u{061c}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}' => out.push_str(&format!("<U+{:04X}>", c as u32)),
        _ if crate::proto::invisible_kind(c).is_some() && !joins_with(c, previous) => {
            out.push_str(&format!("<U+{:04X}>", c as u32));
        }
        _ => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_and_non_ascii_text_is_untouched() {
        assert_eq!(sanitize_inline("příliš žluťoučký kůň 🐎"), "příliš žluťoučký kůň 🐎");
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(sanitize_inline("\x1b[2J\x1b[31mred"), "^[[2J^[[31mred");
        assert_eq!(sanitize_inline("\x1b]0;pwned\x07"), "^[]0;pwned^G");
        assert_eq!(sanitize_inline("a\u{9b}31m"), "a<U+009B>31m");
    }

    #[test]
    fn overwriting_tricks_become_visible() {
        assert_eq!(sanitize_inline("hello\rbye"), "hello^Mbye");
        assert_eq!(sanitize_inline("abc\x08\x08x"), "abc^H^Hx");
        assert_eq!(sanitize_inline("del\x7f"), "del^?");
        assert_eq!(sanitize_inline("a\nb"), "a^Jb");
    }

    #[test]
    fn bidi_controls_become_visible() {
        assert_eq!(sanitize_inline("abc\u{202e}fed"), "abc<U+202E>fed");
        for c in ['\u{202a}', '\u{202d}', '\u{2066}', '\u{2069}', '\u{200f}'] {
            assert!(sanitize_inline(&c.to_string()).starts_with("<U+"), "{:?}", c);
        }
    }

    #[test]
    fn invisible_characters_become_visible_unless_they_join_an_emoji() {
        assert_eq!(sanitize_inline("sophie\u{FE0F}"), "sophie<U+FE0F>");
        assert_eq!(sanitize_inline("so\u{200D}phie"), "so<U+200D>phie");
        assert_eq!(sanitize_inline("so\u{AD}phie"), "so<U+00AD>phie");
        assert_eq!(sanitize_inline("\u{200B}sophie"), "<U+200B>sophie");
        assert_eq!(sanitize_inline("a\u{E0041}"), "a<U+E0041>");
        // Emoji sequences print as they were sent.
        for emoji in [
            "1\u{FE0F}\u{20E3}",
            "\u{2764}\u{FE0F}",
            "\u{1F469}\u{200D}\u{1F4BB}",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E007F}",
        ] {
            assert_eq!(sanitize_inline(emoji), emoji);
        }
    }

    #[test]
    fn lines_split_on_newlines_only() {
        assert_eq!(sanitize_lines("one\r\ntwo\nth\rree"), ["one", "two", "th^Mree"]);
        assert_eq!(sanitize_lines("single"), ["single"]);
    }

    #[test]
    fn tabs_become_spaces() {
        assert_eq!(sanitize_inline("a\tb"), "a    b");
    }
}
