//! The configuration files (`chatter.toml`, `config.toml`): any text parses or gives an
//! error message, never a panic.
#![no_main]

use chatter::cli::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(config) = Config::parse(text) {
        // Keys are only ever filled, never invented.
        let merged = config.clone().or(Config::default());
        assert_eq!(merged, config);
    }
});
