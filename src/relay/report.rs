//! The abuse report: the only file the relay ever opens for writing.
//!
//! The format is the Python original's, so existing fail2ban filters keep working:
//!
//! ```text
//! Logged IP addresses (packets count before they were blocked):
//! If needed, you can use these IPs with fail2ban.
//!
//! 192.0.2.7 -> 31x packets
//! 2001:db8::5 -> 10x packets
//! ```
//!
//! A filter matches the address lines with `^<HOST>\s+->\s+\d+x packets$` and ignores
//! `^Logged IP addresses|^If needed|^$`. The file is replaced atomically (a temporary file in
//! the same directory, then a rename), so a reader never sees half a report. The relay's
//! housekeeping task writes it every interval and once more at shutdown; `render` is pure.

use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::gate::Gate;

/// The report's first line.
pub const HEADER: &str = "Logged IP addresses (packets count before they were blocked):";
/// The report's second line.
pub const HINT: &str = "If needed, you can use these IPs with fail2ban.";

/// Where and how often the report is written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    pub path: PathBuf,
    pub interval: Duration,
}

impl ReportConfig {
    /// The documented defaults: `./report.txt` every minute.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        ReportConfig { path: path.into(), interval: Duration::from_secs(60) }
    }
}

/// The report's text for these addresses and counts, in the given order.
pub fn render(flagged: &[(IpAddr, u64)]) -> String {
    let mut text = format!("{HEADER}\n{HINT}\n\n");
    for (ip, count) in flagged {
        // Writing into a String cannot fail.
        let _ = writeln!(text, "{ip} -> {count}x packets");
    }
    text
}

/// The temporary file a report is written to before it is renamed over `path`: in the same
/// directory, so the rename is atomic.
pub fn temporary_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|name| name.to_string_lossy()).unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp"))
}

/// Replaces the file at `path` with `contents` atomically.
pub fn write_atomically(path: &Path, contents: &str) -> io::Result<()> {
    let temporary = temporary_path(path);
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&temporary, path)
}

async fn write_report(gate: &Gate, config: &ReportConfig) {
    let contents = render(&gate.flagged());
    let path = config.path.clone();
    let written = tokio::task::spawn_blocking(move || write_atomically(&path, &contents)).await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::warn!(%error, "cannot write the abuse report"),
        Err(error) => tracing::warn!(%error, "the abuse report writer failed"),
    }
}

/// The relay's housekeeping until `stop`: forgets quiet addresses, writes the report every
/// interval (the first at once, so the file exists for fail2ban), and writes it a last time
/// when stopped.
pub(super) async fn run(gate: Gate, report: Option<ReportConfig>, stop: CancellationToken) {
    // Sweeping ten times per forget window keeps a quiet address at most 10% longer.
    let sweep_every = (gate.limits().preauth_forget_after / 10)
        .clamp(Duration::from_millis(100), Duration::from_secs(60));
    let mut sweep = tokio::time::interval(sweep_every);
    let report_every = report.as_ref().map_or(Duration::from_secs(3600), |report| report.interval);
    let mut write = tokio::time::interval(report_every.max(Duration::from_millis(100)));
    // A slow disk delays the next report rather than causing a burst of them.
    sweep.set_missed_tick_behavior(MissedTickBehavior::Delay);
    write.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = sweep.tick() => gate.forget_idle(),
            _ = write.tick() => {
                if let Some(report) = &report {
                    write_report(&gate, report).await;
                }
            }
            () = stop.cancelled() => break,
        }
    }
    if let Some(report) = &report {
        write_report(&gate, report).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_the_python_format_for_v4_and_v6() {
        let flagged = [("192.0.2.7".parse().unwrap(), 31), ("2001:db8::5".parse().unwrap(), 10)];
        assert_eq!(
            render(&flagged),
            "Logged IP addresses (packets count before they were blocked):\n\
             If needed, you can use these IPs with fail2ban.\n\
             \n\
             192.0.2.7 -> 31x packets\n\
             2001:db8::5 -> 10x packets\n"
        );
        assert_eq!(render(&[]).lines().count(), 3);
    }

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let directory = tempfile::tempdir().unwrap();
        let path = directory.path().join("report.txt");
        write_atomically(&path, "first\n").unwrap();
        write_atomically(&path, "second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second\n");
        let names: Vec<_> = std::fs::read_dir(directory.path()).unwrap().collect();
        assert_eq!(names.len(), 1, "only the report remains");
        assert_eq!(temporary_path(&path), directory.path().join(".report.txt.tmp"));
    }
}
