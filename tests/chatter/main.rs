//! The integration tests: one binary, real relays on 127.0.0.1:0, real clients.
//!
//! `relay`, `rooms` and `abuse` drive the library (frame-level clients and full engines);
//! `repl` and `line_mode` run the real `chatter` binary through a pseudo-terminal or pipes;
//! `operator` runs the real `chatter-server` for its log; `dist_files` checks the deployment
//! files; `hardening` what `/proc` shows of the binaries.

// This whole crate is test code, where a failed `unwrap` is a failed test; clippy.toml's
// allowance covers `#[test]` functions only, not the helpers here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod abuse;
mod attacks;
mod cluster;
mod continuity;
mod dist_files;
mod dms;
mod fuzz_findings;
mod hardening;
mod identity;
mod invariants;
mod ipv6;
mod line_mode;
mod operator;
mod post_quantum;
mod relay;
mod renewal;
mod repl;
mod repl_support;
mod rooms;
mod several_rooms;
mod support;
