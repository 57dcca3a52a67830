//! Checks the deployment files in `dist/`: the fail2ban filter against report lines in the relay's
//! format, the hardening of the systemd unit, the paths the jail, unit and compose file share,
//! that no access code is written into any of them, and that the scripts in `dist/` are valid shell.
//! The real `fail2ban-regex` and `shellcheck` run when installed; under `CI=true` a missing one
//! fails its test, so CI cannot pass without running them (`.ci/run` installs both).

use std::path::{Path, PathBuf};
use std::process::Command;

use regex::Regex;

/// The two header lines of the report, exactly as the Python original writes them.
const REPORT_HEADER: [&str; 2] = [
    "Logged IP addresses (packets count before they were blocked):",
    "If needed, you can use these IPs with fail2ban.",
];

/// What fail2ban substitutes for `<HOST>`, restricted to addresses (its `<ADDR>` tag): IPv4, an
/// IPv4-mapped IPv6 address reported as IPv4, or IPv6, optionally in brackets. fail2ban's IPv6
/// pattern ends in `(?<=:):`; that lookbehind always holds, because every repetition before it
/// ends in ':', so a plain ':' is equivalent here (the regex crate has no lookbehind).
const HOST_PATTERN: &str = concat!(
    r"\[?(?:(?:::f{4,6}:)?(?P<ip4>(?:\d{1,3}\.){3}\d{1,3})",
    r"|(?P<ip6>(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|:)))\]?",
);

fn dist_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("dist").join(relative)
}

fn read_dist(relative: &str) -> String {
    let path = dist_path(relative);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
}

/// The value of `key` in an INI file as fail2ban's config parser reads it: `key = value`, where
/// indented lines that follow continue the value.
fn ini_value(text: &str, key: &str) -> Option<String> {
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some((name, value)) = line.split_once('=') else { continue };
        if line.starts_with([' ', '\t', '#', ';']) || name.trim() != key {
            continue;
        }
        let mut value = value.trim().to_owned();
        while let Some(next) = lines.peek() {
            if !next.starts_with([' ', '\t']) || next.trim().is_empty() {
                break;
            }
            value.push('\n');
            value.push_str(next.trim());
            lines.next();
        }
        return Some(value);
    }
    None
}

/// The filter's failregex and ignoreregex, compiled the way fail2ban compiles them.
struct Filter {
    fail: Regex,
    ignore: Regex,
}

impl Filter {
    fn load() -> Filter {
        let text = read_dist("fail2ban/filter.d/chatter.conf");
        let failregex = ini_value(&text, "failregex").expect("the filter has a failregex");
        let ignoreregex = ini_value(&text, "ignoreregex").expect("the filter has an ignoreregex");
        assert!(failregex.contains("<HOST>"), "failregex must capture the address with <HOST>");
        assert!(!failregex.contains('\n'), "one failregex is expected, got: {failregex}");
        Filter {
            fail: Regex::new(&failregex.replace("<HOST>", HOST_PATTERN))
                .expect("failregex compiles"),
            ignore: Regex::new(&ignoreregex).expect("ignoreregex compiles"),
        }
    }

    /// The address fail2ban would ban for this line: failregex matches and ignoreregex does not.
    fn banned_host(&self, line: &str) -> Option<String> {
        if self.ignore.is_match(line) {
            return None;
        }
        let captures = self.fail.captures(line)?;
        let host = captures.name("ip4").or_else(|| captures.name("ip6"))?;
        Some(host.as_str().to_owned())
    }
}

#[test]
fn filter_bans_ipv4_and_ipv6_entries() {
    let filter = Filter::load();
    let cases = [
        ("203.0.113.7 -> 42x packets", "203.0.113.7"),
        ("198.51.100.250 -> 1x packets", "198.51.100.250"),
        ("2001:db8::1 -> 3x packets", "2001:db8::1"),
        ("2001:db8:85a3:0:0:8a2e:370:7334 -> 17x packets", "2001:db8:85a3:0:0:8a2e:370:7334"),
        ("fe80::1 -> 5x packets", "fe80::1"),
        ("::1 -> 2x packets", "::1"),
        ("2001:db8:: -> 2x packets", "2001:db8::"),
        ("::ffff:192.0.2.1 -> 9x packets", "192.0.2.1"),
        ("[2001:db8::2] -> 4x packets", "2001:db8::2"),
        ("192.0.2.44\t->\t1000x packets", "192.0.2.44"),
        ("192.0.2.45   ->   12x packets", "192.0.2.45"),
    ];
    for (line, expected) in cases {
        assert_eq!(filter.banned_host(line).as_deref(), Some(expected), "line: {line:?}");
    }
}

#[test]
fn filter_ignores_the_report_header_and_blank_lines() {
    let filter = Filter::load();
    for line in REPORT_HEADER.into_iter().chain([""]) {
        assert!(filter.ignore.is_match(line), "ignoreregex should cover {line:?}");
        assert_eq!(filter.banned_host(line), None, "line: {line:?}");
    }
}

#[test]
fn filter_rejects_malformed_lines() {
    let filter = Filter::load();
    let malformed = [
        "203.0.113.7 -> x packets",
        "203.0.113.7 -> 5 packets",
        "203.0.113.7 -> 5x packet",
        "203.0.113.7 -> -5x packets",
        "203.0.113.7 - 5x packets",
        "203.0.113.7 5x packets",
        "203.0.113.7 -> 5x packets and more",
        " 203.0.113.7 -> 5x packets",
        "-> 5x packets",
        "x203.0.113.7 -> 5x packets",
        "Logged IP addresses 203.0.113.7 -> 5x packets",
        "garbage",
    ];
    for line in malformed {
        assert_eq!(filter.banned_host(line), None, "line: {line:?}");
    }
}

#[test]
fn filter_finds_every_entry_of_a_whole_report() {
    let filter = Filter::load();
    let report = format!(
        "{}\n{}\n\n203.0.113.7 -> 42x packets\n2001:db8::1 -> 3x packets\n",
        REPORT_HEADER[0], REPORT_HEADER[1]
    );
    let banned: Vec<String> = report.lines().filter_map(|line| filter.banned_host(line)).collect();
    assert_eq!(banned, ["203.0.113.7", "2001:db8::1"]);
}

/// The report has no timestamps; without `datepattern = {NONE}` fail2ban skips every line.
#[test]
fn filter_reads_lines_without_timestamps() {
    let text = read_dist("fail2ban/filter.d/chatter.conf");
    assert_eq!(ini_value(&text, "datepattern").as_deref(), Some("{NONE}"));
}

/// Whether an external checker can run: a missing one skips its check on a developer's machine
/// and fails it in CI, where `.ci/run` installs it.
fn tool_is_installed(program: &str) -> bool {
    match Command::new(program).arg("--version").output() {
        Ok(output) => {
            assert!(output.status.success(), "{program} --version failed");
            true
        }
        Err(error) if std::env::var("CI").as_deref() == Ok("true") => {
            panic!("{program} cannot run in CI ({error}); .ci/run must install it")
        }
        Err(error) => {
            eprintln!("{program} cannot run ({error}); skipping its check");
            false
        }
    }
}

/// Runs the real fail2ban on a sample report.
#[test]
fn fail2ban_regex_agrees() {
    if !tool_is_installed("fail2ban-regex") {
        return;
    }
    let directory = tempfile::tempdir().expect("a temporary directory");
    let report = directory.path().join("report.txt");
    std::fs::write(
        &report,
        format!(
            "{}\n{}\n\n203.0.113.7 -> 42x packets\n2001:db8::1 -> 3x packets\n203.0.113.8 -> x packets\n",
            REPORT_HEADER[0], REPORT_HEADER[1]
        ),
    )
    .expect("writing the sample report");
    let output = Command::new("fail2ban-regex")
        .arg(&report)
        .arg(dist_path("fail2ban/filter.d/chatter.conf"))
        .output()
        .expect("running fail2ban-regex");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "fail2ban-regex failed: {stdout}");
    assert!(stdout.contains("2 matched"), "expected 2 matched lines: {stdout}");
}

#[test]
fn jail_bans_on_the_first_line_at_the_relay_port() {
    let text = read_dist("fail2ban/jail.d/chatter.conf");
    for section in ["[chatter]", "[chatter-docker]"] {
        let body = section_body(&text, section);
        assert_eq!(ini_value(body, "filter").as_deref(), Some("chatter"), "{section}");
        assert_eq!(ini_value(body, "port").as_deref(), Some("9001"), "{section}");
        assert_eq!(ini_value(body, "maxretry").as_deref(), Some("1"), "{section}");
        assert!(ini_value(body, "bantime").is_some(), "{section} sets a bantime");
    }
}

/// The jail must read the file the relay writes, under systemd and under Docker.
#[test]
fn jail_log_paths_match_where_the_relay_writes() {
    let jail = read_dist("fail2ban/jail.d/chatter.conf");
    let unit = read_dist("systemd/chatter-server.service");
    let compose = read_dist("docker/compose.yml");

    let systemd_report = unit
        .lines()
        .find_map(|line| line.strip_prefix("Environment=CHATTER_REPORT="))
        .expect("the unit sets CHATTER_REPORT");
    assert_eq!(
        ini_value(section_body(&jail, "[chatter]"), "logpath").as_deref(),
        Some(systemd_report)
    );

    let host_directory = compose
        .lines()
        .find_map(|line| line.trim().strip_prefix("- ${CHATTER_REPORT_DIR:-"))
        .and_then(|rest| rest.split_once("}:/var/lib/chatter-server"))
        .map(|(directory, _)| directory)
        .expect("compose mounts the report directory from the host");
    assert!(compose.contains("CHATTER_REPORT: /var/lib/chatter-server/report.txt"));
    assert_eq!(
        ini_value(section_body(&jail, "[chatter-docker]"), "logpath"),
        Some(format!("{host_directory}/report.txt"))
    );
}

/// The text of one `[section]` of an INI file, up to the next section.
fn section_body<'a>(text: &'a str, section: &str) -> &'a str {
    let start = text.find(&format!("\n{section}\n")).unwrap_or_else(|| panic!("no {section}")) + 1;
    let body = &text[start + section.len()..];
    body.find("\n[").map_or(body, |end| &body[..end])
}

#[test]
fn systemd_unit_is_hardened() {
    let unit = read_dist("systemd/chatter-server.service");
    let lines: Vec<&str> = unit.lines().map(str::trim).collect();
    let required = [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "ProtectHome=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "StateDirectory=chatter-server",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet=",
        "AmbientCapabilities=",
        "MemoryDenyWriteExecute=yes",
        "SystemCallFilter=@system-service",
        "SystemCallArchitectures=native",
        "RestrictNamespaces=yes",
        "RestrictSUIDSGID=yes",
        "LockPersonality=yes",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectControlGroups=yes",
        "LoadCredential=access-code:/etc/chatter-server/access-code",
    ];
    for directive in required {
        assert!(lines.contains(&directive), "the unit lacks {directive}");
    }
    let exec_start = lines
        .iter()
        .find_map(|line| line.strip_prefix("ExecStart="))
        .expect("the unit has an ExecStart");
    assert!(exec_start.contains("--access-code-file ${CREDENTIALS_DIRECTORY}/access-code"));
    // Nothing but the state directory may be writable.
    assert!(!lines.iter().any(|line| line.starts_with("ReadWritePaths=")));
}

/// A secret in a unit file is world-readable (`systemctl cat`) and ends up in backups.
#[test]
fn no_access_code_is_written_into_dist_files() {
    let unit = read_dist("systemd/chatter-server.service");
    for line in unit.lines().filter(|line| !line.trim_start().starts_with('#')) {
        assert!(!line.contains("CHATTER_ACCESS_CODE"), "the unit sets the code: {line}");
        assert!(!line.starts_with("SetCredential"), "the unit embeds a credential: {line}");
        let without_file_flag = line.replace("--access-code-file", "");
        assert!(!without_file_flag.contains("--access-code"), "the unit passes the code: {line}");
    }

    let compose = read_dist("docker/compose.yml");
    let code_line = compose
        .lines()
        .find(|line| line.trim_start().starts_with("CHATTER_ACCESS_CODE:"))
        .expect("compose passes the code from the environment");
    assert!(
        code_line.contains("${CHATTER_ACCESS_CODE"),
        "compose must interpolate, not embed: {code_line}"
    );

    let example = read_dist("docker/env.example");
    assert!(
        example.lines().any(|line| line == "CHATTER_ACCESS_CODE="),
        "env.example must leave it empty"
    );
}

/// The scripts of `dist/`, as paths relative to the repository root.
const SCRIPTS: [&str; 3] = ["dist/build.sh", "dist/check.sh", "dist/lib.sh"];

#[test]
fn dist_scripts_are_valid_shell() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for script in SCRIPTS {
        let status = Command::new("bash")
            .arg("-n")
            .arg(root.join(script))
            .status()
            .expect("running bash -n");
        assert!(status.success(), "bash -n {script} failed");
    }
    if !tool_is_installed("shellcheck") {
        return;
    }
    // From the root, so that the scripts' `# shellcheck source=dist/lib.sh` resolves.
    let output = Command::new("shellcheck")
        .arg("--external-sources")
        .args(SCRIPTS)
        .current_dir(root)
        .output()
        .expect("running shellcheck");
    assert!(
        output.status.success(),
        "shellcheck {SCRIPTS:?}:\n{}",
        String::from_utf8_lossy(&output.stdout)
    );
}

/// `build.sh bundle` stops before building anything, and does not echo the code back.
#[test]
fn bundle_refuses_an_access_code() {
    for flags in [&["--access-code", "hunter2-value"][..], &["--access-code=hunter2-value"][..]] {
        let output = Command::new("bash")
            .arg(dist_path("build.sh"))
            .args(["bundle", "--server", "chat.example.org:9001"])
            .args(flags)
            .output()
            .expect("running dist/build.sh");
        assert!(!output.status.success(), "{flags:?} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains("never written into a bundle"), "stderr: {stderr}");
        assert!(!stderr.contains("hunter2-value"), "the code was echoed: {stderr}");
    }
}

#[test]
fn build_script_explains_itself() {
    let output = Command::new("bash")
        .arg(dist_path("build.sh"))
        .arg("--help")
        .output()
        .expect("running dist/build.sh --help");
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for word in [
        "bundle --server HOST:PORT",
        "image [--arch amd64|arm64]",
        "--no-check",
        "SHA256SUMS",
        "x86_64-unknown-linux-musl",
        "aarch64-unknown-linux-musl",
        "x86_64-pc-windows-gnu",
        "aarch64-apple-darwin",
        "x86_64-apple-darwin",
    ] {
        assert!(help.contains(word), "--help does not mention {word}");
    }
}

/// The image holds the binary `dist/build.sh image` puts beside the Dockerfile and nothing else:
/// no builder stage, so nothing is compiled or pulled from a registry.
#[test]
fn relay_image_is_only_the_prebuilt_binary() {
    let dockerfile = read_dist("docker/Dockerfile");
    let instructions: Vec<&str> = dockerfile
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .collect();
    let from: Vec<&&str> = instructions.iter().filter(|line| line.starts_with("FROM ")).collect();
    assert_eq!(from, [&"FROM scratch"]);
    assert!(instructions.contains(&"COPY chatter-server /chatter-server"));
    assert!(!instructions.iter().any(|line| line.starts_with("RUN ")), "scratch has no shell");
    assert!(instructions.contains(&"USER 10001:10001"));
}

/// `build.sh` finds the binaries where cargo put them: under `CARGO_TARGET_DIR` when it is
/// set (as many Rust users have it, globally), under the checkout's `target/` otherwise.
#[test]
fn the_scripts_look_for_binaries_where_cargo_puts_them() {
    let repo_root = dist_path("..");
    let target_dir = |set: Option<&str>| {
        let mut command = Command::new("bash");
        command
            .arg("-c")
            .arg("set -euo pipefail; source \"$1/dist/lib.sh\"; cargo_target_dir \"$1\"")
            .arg("bash")
            .arg(&repo_root)
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET_DIR");
        if let Some(directory) = set {
            command.env("CARGO_TARGET_DIR", directory);
        }
        let output = command.output().expect("running cargo_target_dir");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    };
    let elsewhere = tempfile::tempdir().unwrap();
    let elsewhere = elsewhere.path().to_str().unwrap();
    assert_eq!(target_dir(Some(elsewhere)), PathBuf::from(elsewhere));
    let default = target_dir(None);
    assert_eq!(default.canonicalize().unwrap(), repo_root.join("target").canonicalize().unwrap());
    let build = read_dist("build.sh");
    assert!(!build.contains("$REPO_ROOT/target/"), "build.sh must not assume target/");
}
