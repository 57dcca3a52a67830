//! The headless client: everything `chatter` does short of drawing on a terminal.
//!
//! `raw` speaks frames; `engine` (one tokio task per connection) owns the connection and the
//! MLS groups and turns them into a [`Client`] handle with async methods and a stream of
//! [`Event`]s. The REPL, line mode and tests drive the same engine.

mod error;
pub mod raw;

pub use error::ClientError;
pub use raw::RawClient;
