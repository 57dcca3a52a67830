//! Input history that remembers `/commands` across sessions and chat lines only in memory.
//!
//! Chat lines are end-to-end encrypted on the wire; writing them to a history file would leave
//! plaintext on disk. [`CommandHistory`] keeps everything in an in-memory reedline history, so
//! Up recalls chat lines within the session, and appends to the file (created with mode 0600)
//! only lines that run a known command whose arguments are not chat: `/me waves` is sent to
//! the room and `//text` is a chat line with a slash, so neither is kept, and neither is a
//! mistyped command, which may be a chat line that happens to start with a slash. Secrets
//! never appear on a command line (passwords are asked for separately), so the commands that
//! remain are safe to keep.

use reedline::{
    FileBackedHistory, History, HistoryItem, HistoryItemId, HistorySessionId, SearchQuery,
};
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

/// How many entries are kept, in memory and on disk.
pub const CAPACITY: usize = 1000;

/// A reedline history that persists commands only.
pub struct CommandHistory {
    memory: FileBackedHistory,
    file: Option<PathBuf>,
}

impl CommandHistory {
    /// Opens the history, loading earlier commands from `file` (if any).
    pub fn open(file: Option<PathBuf>) -> Self {
        // `FileBackedHistory::new` only fails for a capacity of `usize::MAX`.
        #[allow(clippy::expect_used, reason = "proven above")]
        let mut memory = FileBackedHistory::new(CAPACITY).expect("capacity is small");
        if let Some(path) = &file {
            for line in load(path) {
                let _ = memory.save(HistoryItem::from_command_line(line));
            }
        }
        CommandHistory { memory, file }
    }

    fn persist(&self, command_line: &str) -> std::io::Result<()> {
        let Some(path) = &self.file else { return Ok(()) };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            // An older file may have been created with a wider mode; narrow it.
            if file.metadata()?.permissions().mode() & 0o077 != 0 {
                file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
            }
        }
        writeln!(file, "{command_line}")
    }
}

/// Whether a line belongs in the history file: a single line that runs a known command
/// whose arguments cannot carry chat text.
pub fn is_persistable(command_line: &str) -> bool {
    if command_line.contains(['\n', '\r']) {
        return false;
    }
    let Some((name, _)) = crate::commands::parse_line(command_line) else { return false };
    crate::commands::find(name).is_some_and(|command| !command.carries_chat_text())
}

/// The last [`CAPACITY`] persistable lines of the file; a file grown past twice that is
/// rewritten so it stays small.
fn load(path: &Path) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else { return Vec::new() };
    let mut lines: Vec<String> = std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter(|line| is_persistable(line))
        .collect();
    let total = lines.len();
    lines.drain(..total.saturating_sub(CAPACITY));
    if total > 2 * CAPACITY {
        let _ = std::fs::write(path, lines.join("\n") + "\n");
    }
    lines
}

impl History for CommandHistory {
    fn save(&mut self, h: HistoryItem) -> reedline::Result<HistoryItem> {
        if h.id.is_none() && is_persistable(&h.command_line) {
            // A history file that cannot be written must not stop the chat.
            let _ = self.persist(&h.command_line);
        }
        self.memory.save(h)
    }
    fn load(&self, id: HistoryItemId) -> reedline::Result<HistoryItem> {
        self.memory.load(id)
    }
    fn count(&self, query: SearchQuery) -> reedline::Result<i64> {
        self.memory.count(query)
    }
    fn search(&self, query: SearchQuery) -> reedline::Result<Vec<HistoryItem>> {
        self.memory.search(query)
    }
    fn update(
        &mut self,
        id: HistoryItemId,
        updater: &dyn Fn(HistoryItem) -> HistoryItem,
    ) -> reedline::Result<()> {
        self.memory.update(id, updater)
    }
    fn clear(&mut self) -> reedline::Result<()> {
        if let Some(path) = &self.file {
            let _ = std::fs::remove_file(path);
        }
        self.memory.clear()
    }
    fn delete(&mut self, h: HistoryItemId) -> reedline::Result<()> {
        self.memory.delete(h)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        // Commands are appended as they are saved; chat lines are never written.
        Ok(())
    }
    fn session(&self) -> Option<HistorySessionId> {
        self.memory.session()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reedline::SearchDirection;

    fn everything(history: &CommandHistory) -> Vec<String> {
        history
            .search(SearchQuery::everything(SearchDirection::Forward, None))
            .unwrap()
            .into_iter()
            .map(|item| item.command_line)
            .collect()
    }

    #[test]
    fn chat_lines_and_actions_stay_in_memory_and_commands_reach_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data").join("history");
        let mut history = CommandHistory::open(Some(path.clone()));
        let lines = [
            "/join lobby",
            "secret plans",
            "/who",
            "multi\nline",
            "/me waves at the plan",
            "/ME shouts",
            "//etc/passwd is the plan",
            "/plan is secret",
            "/quit",
        ];
        for line in lines {
            history.save(HistoryItem::from_command_line(line)).unwrap();
        }
        history.sync().unwrap();
        assert_eq!(everything(&history).len(), lines.len(), "all lines recallable in the session");
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(on_disk, "/join lobby\n/who\n/quit\n");
        assert!(!on_disk.contains("plan") && !on_disk.contains("shouts"), "chat on disk");

        let reopened = CommandHistory::open(Some(path));
        assert_eq!(everything(&reopened), ["/join lobby", "/who", "/quit"]);
    }

    #[cfg(unix)]
    #[test]
    fn the_file_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history");
        std::fs::write(&path, "/rooms\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let mut history = CommandHistory::open(Some(path.clone()));
        history.save(HistoryItem::from_command_line("/who")).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn without_a_file_nothing_is_written() {
        let mut history = CommandHistory::open(None);
        history.save(HistoryItem::from_command_line("/who")).unwrap();
        assert_eq!(everything(&history), ["/who"]);
    }
}
