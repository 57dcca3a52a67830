//! The optional TOML configuration: a bundle's `chatter.toml` beside the executable, then the
//! per-user `config.toml`. Both are small and read once, only when a value is needed.

use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Defaults that flags override.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// `host:port` of the relay.
    pub server: Option<String>,
    /// Relays that share rooms, tried in turn (`client::relays`); `server` comes first.
    pub servers: Option<Vec<String>>,
    /// The nickname.
    pub nick: Option<String>,
    /// Whether to use colours.
    pub color: Option<bool>,
    /// The rooms joined at start, in order (before any `--join`).
    pub autojoin: Option<Vec<String>>,
    /// Whose direct messages are accepted: `anyone` (who shares a room with us), `pinned`,
    /// `verified` or `nobody`.
    pub dm: Option<String>,
    /// Hours a client keeps its keys in a room before renewing them (24 by default).
    pub rekey_hours: Option<u64>,
    /// Whether the rooms this client creates use the post-quantum ciphersuite (`--pq`).
    pub pq: Option<bool>,
}

impl Config {
    /// Fills keys unset here from `other`.
    pub fn or(self, other: Config) -> Config {
        Config {
            server: self.server.or(other.server),
            servers: self.servers.or(other.servers),
            nick: self.nick.or(other.nick),
            color: self.color.or(other.color),
            autojoin: self.autojoin.or(other.autojoin),
            dm: self.dm.or(other.dm),
            rekey_hours: self.rekey_hours.or(other.rekey_hours),
            pq: self.pq.or(other.pq),
        }
    }

    /// Parses the text of one file; the error names what is wrong, without the path.
    pub fn parse(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|error| error.message().to_owned())
    }

    /// Parses one file; a missing file is an empty config.
    pub fn read(path: &Path) -> anyhow::Result<Config> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text)
                .map_err(|message| anyhow::anyhow!("{}: {message}", path.display())),
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(error) => Err(anyhow::anyhow!("{}: {error}", path.display())),
        }
    }

    /// The bundle's file, then the user's.
    pub fn load() -> anyhow::Result<Config> {
        let mut config = Config::default();
        for path in [bundle_config_path(), user_config_path()].into_iter().flatten() {
            config = config.or(Config::read(&path)?);
        }
        Ok(config)
    }
}

/// `chatter.toml` next to the executable.
pub fn bundle_config_path() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    Some(exe.parent()?.join("chatter.toml"))
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "chatter")
}

/// `config.toml` in the per-user config directory.
pub fn user_config_path() -> Option<PathBuf> {
    Some(project_dirs()?.config_dir().join("config.toml"))
}

/// The command history file in the per-user data directory.
pub fn history_path() -> Option<PathBuf> {
    Some(project_dirs()?.data_dir().join("history"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_files_win_key_by_key() {
        let dir = tempfile::tempdir().unwrap();
        let bundle = dir.path().join("chatter.toml");
        let user = dir.path().join("config.toml");
        std::fs::write(&bundle, "server = \"chat.example:7000\"\n").unwrap();
        std::fs::write(
            &user,
            "server = \"other:1\"\nnick = \"alice\"\ncolor = false\nautojoin = [\"dev\", \"ops\"]\n\
             pq = true\n",
        )
        .unwrap();
        let config = Config::read(&bundle).unwrap().or(Config::read(&user).unwrap());
        assert_eq!(config.server.as_deref(), Some("chat.example:7000"));
        assert_eq!(config.nick.as_deref(), Some("alice"));
        assert_eq!(config.color, Some(false));
        assert_eq!(config.autojoin, Some(vec!["dev".to_owned(), "ops".to_owned()]));
        assert_eq!(config.pq, Some(true));
    }

    #[test]
    fn missing_is_empty_and_typos_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Config::read(&dir.path().join("none.toml")).unwrap(), Config::default());
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "sever = \"x\"\n").unwrap();
        assert!(Config::read(&bad).is_err());
    }
}
