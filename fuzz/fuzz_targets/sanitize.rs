//! The terminal sanitizer: whatever a peer sends, what reaches the terminal holds no control
//! character (C0, DEL, C1) and no bidi control, and a line holds no line break.
#![no_main]

use chatter::repl::sanitize::{sanitize_inline, sanitize_lines};
use libfuzzer_sys::fuzz_target;

fn is_forbidden(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{061c}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fuzz_target!(|text: &str| {
    let inline = sanitize_inline(text);
    assert!(!inline.chars().any(is_forbidden), "{text:?} gave {inline:?}");
    for line in sanitize_lines(text) {
        assert!(!line.chars().any(is_forbidden), "{text:?} gave {line:?}");
    }
});
