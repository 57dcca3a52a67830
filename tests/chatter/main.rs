//! The integration test binary: the `chatter` client against a real relay.
//!
//! The clients are the real `chatter` binary, through a pseudo-terminal (`repl`) or pipes
//! (`line_mode`); `repl_support` starts relays with `chatter::relay::run` on 127.0.0.1:0.

mod line_mode;
mod repl;
mod repl_support;
