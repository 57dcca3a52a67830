//! The integration tests: one binary, real relays on 127.0.0.1:0, real clients.

mod abuse;
mod dist_files;
mod relay;
mod rooms;
mod support;
