//! The command line of `chatter`.

use clap::Parser;
use std::path::PathBuf;

/// End-to-end encrypted terminal chat for small groups.
///
/// Connects to a chatter-server relay at SERVER and opens an interactive prompt. Lines you type
/// are sent to your room; lines starting with / are commands (/help lists them). Without a
/// SERVER (and none configured), starts a local relay for a quick demo and prints the command
/// a second terminal runs to join it.
#[derive(Debug, Parser)]
#[command(name = "chatter", version, after_long_help = AFTER_HELP, after_help = AFTER_HELP)]
pub struct Args {
    /// Relay address, host[:port] (default port 9001); overrides the config files. Relays
    /// that share rooms go comma-separated, HOST1,HOST2: when one is lost, the next is tried
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,

    /// Your nickname in rooms (asked for if absent and not configured)
    #[arg(long, short, env = "CHATTER_NICK", value_name = "NICK")]
    pub nick: Option<String>,

    /// Read the relay's access code from this file (first line); see CHATTER_ACCESS_CODE
    #[arg(long, value_name = "PATH")]
    pub access_code_file: Option<PathBuf>,

    /// Line mode: read room passwords for /join from this file; see CHATTER_ROOM_PASSWORD
    #[arg(long, value_name = "PATH")]
    pub room_password_file: Option<PathBuf>,

    /// Print each event as a JSON object {type, room, from, text, time} (implies line output)
    #[arg(long)]
    pub json: bool,

    /// Never use colours (also: NO_COLOR set, or color = false in the config)
    #[arg(long)]
    pub no_color: bool,

    /// Use the identity in this file (created if missing) instead of the per-user one
    #[arg(long, env = "CHATTER_IDENTITY", value_name = "PATH")]
    pub identity: Option<PathBuf>,

    /// Join ROOM once connected (repeatable; after the config's autojoin rooms)
    #[arg(long = "join", value_name = "ROOM")]
    pub join: Vec<String>,

    /// Whose direct messages to accept: anyone (sharing a room with you; the default), pinned,
    /// verified or nobody (also: dm = "..." in the config)
    #[arg(long, value_name = "WHO")]
    pub dm: Option<String>,

    /// Create rooms with the post-quantum hybrid MLS ciphersuite (X-Wing: ML-KEM-768 +
    /// X25519; a draft's suite) instead of the classic one; rooms you join keep theirs (also:
    /// pq = true in the config)
    #[arg(long)]
    pub pq: bool,

    /// Print your identity's fingerprint (creating the identity if needed) and exit
    #[arg(long)]
    pub fingerprint: bool,
}

const AFTER_HELP: &str = "\
ENVIRONMENT:
  CHATTER_ACCESS_CODE    The relay's access code. Otherwise --access-code-file, otherwise it is
                         asked for with hidden input (only when stdin is a terminal).
  CHATTER_ROOM_PASSWORD  Line mode only: the password /join uses. Otherwise
                         --room-password-file, otherwise the room is joined as an open room.
                         At a terminal, /join asks for it with hidden input.
  CHATTER_NICK           Same as --nick.
  CHATTER_IDENTITY       Same as --identity.
  NO_COLOR               Same as --no-color.

CONFIGURATION (TOML; keys: server = \"host:port\", nick = \"...\", color = true|false,
  servers = [\"host:port\", ...], relays that share rooms, tried in turn (after server);
  autojoin = [\"room\", ...], the rooms joined at start, before any --join;
  dm = \"anyone\"|\"pinned\"|\"verified\"|\"nobody\", whose direct messages you accept;
  rekey_hours = N, how long your keys in a room are kept before they renew (24; /rekey now);
  pq = true|false, whether the rooms you create use the post-quantum ciphersuite, as --pq):
  1. chatter.toml next to the chatter executable (preconfigured bundles)
  2. config.toml in the per-user config directory (e.g. ~/.config/chatter/config.toml)
  The first file that sets a key wins; command-line flags and the environment win over both.

LINE MODE:
  When stdin is not a terminal, chatter reads plain lines (a line starting with / is a
  command, // sends a literal slash) and prints one event per line without colour, or JSON
  objects with --json. Secrets then come from the environment or files only.

IDENTITY:
  Your signing key is created on first use in the per-user data directory (e.g.
  ~/.local/share/chatter/identity, mode 0600) and used in every room, so others see the same
  fingerprint each time; keys of people you meet are pinned in known_peers beside it, and a
  changed key is a warning. A damaged identity file, or one that others can read, is an error:
  chatter never replaces it silently. /whoami, /verify and /trust work with them.

HISTORY:
  Only commands are remembered across sessions (per-user data directory, mode 0600); chat
  lines, /me actions and // lines are recallable during the session but never written to
  disk.";
