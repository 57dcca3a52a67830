//! `chatter-server`: the CLI Chatter relay, for a Unix host.
//!
//! A thin adapter: parse flags, obtain the access code, bind, and hand over to
//! `chatter::relay`. Everything it does is in the library so tests run the same code.

#[cfg(unix)]
mod unix {
    use std::io::IsTerminal;
    use std::net::SocketAddr;
    use std::path::PathBuf;
    use std::time::Duration;

    use anyhow::{Context, bail};
    use chatter::relay::cluster::{ClusterConfig, ClusterKey};
    use chatter::relay::{GateLimits, RateLimit, Relay, RelayConfig, ReportConfig};
    use chatter::secret::Secret;
    use clap::Parser;
    use tokio::signal::unix::{SignalKind, signal};

    /// The CLI Chatter relay: routes end-to-end encrypted messages it cannot read, keeps
    /// everything in memory, and writes nothing to disk but the optional abuse report.
    #[derive(Debug, Parser)]
    #[command(name = "chatter-server", version)]
    struct Args {
        /// Address and port to listen on. The default, [::]:9001, takes IPv6 and IPv4 clients
        /// on one socket (IPv4 only where the system has no IPv6).
        #[arg(long, env = "CHATTER_LISTEN", default_value = "[::]:9001")]
        listen: SocketAddr,

        /// Read the access code from this file (first line). Otherwise it comes from
        /// CHATTER_ACCESS_CODE, or is asked for with hidden input on a terminal.
        #[arg(long, value_name = "PATH")]
        access_code_file: Option<PathBuf>,

        /// Log operational events (connections, failed handshakes by reason, disconnect
        /// reasons): the same as --log-level info. Never logs content, names or addresses.
        #[arg(long, short)]
        verbose: bool,

        /// How much to log: error, warn (the default), info (what --verbose gives) or debug.
        /// No level logs content, names or addresses.
        #[arg(long, env = "CHATTER_LOG_LEVEL", value_name = "LEVEL", value_enum)]
        log_level: Option<LogLevel>,

        /// Connections one address may hold at once; the next is refused with "too many
        /// connections from your address".
        #[arg(long, env = "CHATTER_MAX_CLIENTS_PER_IP", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_clients_per_ip: u32,

        /// Connection attempts an address may make without completing a handshake before it
        /// is refused for the life of the process (and listed in the report).
        #[arg(long, env = "CHATTER_PREAUTH_BUDGET", default_value_t = 30,
              value_parser = clap::value_parser!(u32).range(1..))]
        preauth_budget: u32,

        /// Wrong access codes an address may give before it is refused for the life of the
        /// process (and listed in the report).
        #[arg(long, env = "CHATTER_MAX_ACCESS_CODE_FAILURES", default_value_t = 10,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_access_code_failures: u32,

        /// IPv6 clients are counted by this many leading bits of their address in every
        /// per-address limit and ban: 64 counts one /64 network (what one host usually holds)
        /// as one address, 128 counts every address alone.
        #[arg(long, env = "CHATTER_IPV6_PREFIX", value_name = "BITS", default_value_t = 64,
              value_parser = clap::value_parser!(u8).range(1..=128))]
        ipv6_prefix: u8,

        /// The most addresses (or IPv6 networks) the relay keeps counters for, and the most it
        /// keeps banned; past it the counters seen longest ago, and the oldest bans, go first.
        #[arg(long, env = "CHATTER_MAX_TRACKED_ADDRESSES", default_value_t = 100_000,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_tracked_addresses: u32,

        /// Seconds after which the counters of a quiet address that is not banned are
        /// forgotten.
        #[arg(long, env = "CHATTER_PREAUTH_FORGET_AFTER", value_name = "SECONDS",
              default_value_t = 600, value_parser = clap::value_parser!(u64).range(1..))]
        preauth_forget_after: u64,

        /// Messages per second each connection may send, sustained. Room traffic (joins,
        /// admissions, commits) has a separate allowance of the same size.
        #[arg(long, env = "CHATTER_RATE", value_name = "PER_SECOND", default_value_t = 20.0,
              value_parser = positive_rate)]
        rate: f64,

        /// Messages each connection may send at once after a quiet spell.
        #[arg(long, env = "CHATTER_BURST", default_value_t = 100,
              value_parser = clap::value_parser!(u32).range(1..))]
        burst: u32,

        /// Seconds a connection has to complete the handshake.
        #[arg(long, env = "CHATTER_HANDSHAKE_TIMEOUT", value_name = "SECONDS",
              default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        handshake_timeout: u64,

        /// Seconds a connection may send nothing (not even a keepalive) before it is dropped.
        #[arg(long, env = "CHATTER_IDLE_TIMEOUT", value_name = "SECONDS",
              default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
        idle_timeout: u64,

        /// Seconds a client whose connection dropped keeps its nickname, rooms and missed
        /// messages (in memory) for it to resume its session.
        #[arg(long, env = "CHATTER_GRACE", value_name = "SECONDS",
              default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..))]
        grace: u64,

        /// Where to write the abuse report for fail2ban: the only file the relay writes.
        #[arg(long, env = "CHATTER_REPORT", value_name = "PATH", default_value = "./report.txt")]
        report: PathBuf,

        /// Seconds between rewrites of the report (it is also written at shutdown).
        #[arg(long, env = "CHATTER_REPORT_INTERVAL", value_name = "SECONDS",
              default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..))]
        report_interval: u64,

        /// Write no report: the relay then writes no file at all.
        #[arg(long, env = "CHATTER_NO_REPORT")]
        no_report: bool,

        /// Share rooms with the other relays of this NATS server (JetStream enabled): a
        /// client of any of them is in the same rooms, and resumes on another when its relay
        /// dies. Needs the cluster key (--cluster-key-file) and the same access code on
        /// every relay.
        #[arg(long, env = "CHATTER_NATS_URL", value_name = "URL")]
        nats: Option<String>,

        /// Read the cluster's key from this file: 64 hexadecimal digits, the same on every
        /// relay (make one with --new-cluster-key). Otherwise it comes from
        /// CHATTER_CLUSTER_KEY.
        #[arg(long, value_name = "PATH", requires = "nats")]
        cluster_key_file: Option<PathBuf>,

        /// The JetStream stream the cluster shares; relays with another name share nothing.
        #[arg(long, env = "CHATTER_NATS_STREAM", default_value = "CHATTER", requires = "nats")]
        nats_stream: String,

        /// Print a new random cluster key and exit.
        #[arg(long, exclusive = true)]
        new_cluster_key: bool,
    }

    /// The log levels an operator may choose; `trace` is left out, being for developers.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
    enum LogLevel {
        Error,
        Warn,
        Info,
        Debug,
    }

    impl LogLevel {
        fn filter(self) -> tracing_subscriber::filter::LevelFilter {
            use tracing_subscriber::filter::LevelFilter;
            match self {
                LogLevel::Error => LevelFilter::ERROR,
                LogLevel::Warn => LevelFilter::WARN,
                LogLevel::Info => LevelFilter::INFO,
                LogLevel::Debug => LevelFilter::DEBUG,
            }
        }
    }

    /// The level to log at: `--log-level` (or `CHATTER_LOG_LEVEL`) when given, else `info`
    /// with `--verbose`, else `warn`.
    fn log_level(args: &Args) -> LogLevel {
        match (args.log_level, args.verbose) {
            (Some(level), _) => level,
            (None, true) => LogLevel::Info,
            (None, false) => LogLevel::Warn,
        }
    }

    /// Colour only for a person at a terminal: journald and `docker logs` would store the
    /// escape codes, and `NO_COLOR` (set to anything but empty) asks for none anywhere.
    fn log_in_colour(stderr_is_terminal: bool, no_color: Option<std::ffi::OsString>) -> bool {
        stderr_is_terminal && no_color.is_none_or(|value| value.is_empty())
    }

    fn positive_rate(text: &str) -> Result<f64, String> {
        match text.parse::<f64>() {
            Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
            _ => Err("expected a positive number of messages per second".to_owned()),
        }
    }

    fn relay_config(args: &Args, access_code: Secret) -> RelayConfig {
        let mut config = RelayConfig::new(access_code);
        config.handshake_timeout = Duration::from_secs(args.handshake_timeout);
        config.idle_timeout = Duration::from_secs(args.idle_timeout);
        config.room_deadlines.grace = Duration::from_secs(args.grace);
        config.gate = GateLimits {
            max_connections_per_ip: args.max_clients_per_ip as usize,
            preauth_budget: args.preauth_budget,
            max_access_code_failures: args.max_access_code_failures,
            preauth_forget_after: Duration::from_secs(args.preauth_forget_after),
            ipv6_prefix_len: args.ipv6_prefix,
            max_tracked_addresses: args.max_tracked_addresses as usize,
        };
        config.rate_limit = RateLimit { per_second: args.rate, burst: args.burst };
        config.report = (!args.no_report).then(|| ReportConfig {
            path: args.report.clone(),
            interval: Duration::from_secs(args.report_interval),
        });
        config
    }

    /// The cluster to join, with its key from the file or `from_env` (CHATTER_CLUSTER_KEY).
    fn cluster_config(
        args: &Args,
        from_env: Option<Secret>,
    ) -> anyhow::Result<Option<ClusterConfig>> {
        let Some(url) = args.nats.clone() else { return Ok(None) };
        let key = if let Some(path) = &args.cluster_key_file {
            chatter::secret::read_first_line(path)
                .with_context(|| format!("cannot read the cluster key file {}", path.display()))?
        } else if let Some(key) = from_env {
            key
        } else {
            bail!(
                "--nats needs the cluster key: set CHATTER_CLUSTER_KEY or pass --cluster-key-file (make one with --new-cluster-key)"
            )
        };
        let key = ClusterKey::from_hex(key.expose()).map_err(anyhow::Error::msg)?;
        let mut config = ClusterConfig::new(url, key);
        config.stream.clone_from(&args.nats_stream);
        Ok(Some(config))
    }

    fn access_code(args: &Args, from_env: Option<Secret>) -> anyhow::Result<Secret> {
        let code = if let Some(path) = &args.access_code_file {
            chatter::secret::read_first_line(path)
                .with_context(|| format!("cannot read the access code file {}", path.display()))?
        } else if let Some(code) = from_env {
            code
        } else if std::io::stdin().is_terminal() {
            Secret::new(rpassword::prompt_password("Access code for this relay: ")?)
        } else {
            bail!("no access code: set CHATTER_ACCESS_CODE or pass --access-code-file")
        };
        if code.is_empty() {
            bail!("the access code must not be empty");
        }
        Ok(code)
    }

    /// Runs the relay; `env_code` is `CHATTER_ACCESS_CODE`, already taken out of the
    /// environment.
    pub fn main(env_code: Option<Secret>, env_cluster_key: Option<Secret>) -> anyhow::Result<()> {
        if let Err(error) = chatter::hardening::disable_core_dumps() {
            eprintln!("chatter-server: warning: could not turn core dumps off: {error}");
        }
        let args = Args::parse();
        if args.new_cluster_key {
            println!("{}", ClusterKey::new_hex().as_str());
            return Ok(());
        }
        let cluster = cluster_config(&args, env_cluster_key)?;
        tracing_subscriber::fmt()
            .with_max_level(log_level(&args).filter())
            .with_ansi(log_in_colour(std::io::stderr().is_terminal(), std::env::var_os("NO_COLOR")))
            .with_writer(std::io::stderr)
            .init();
        let code = access_code(&args, env_code)?;
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            let listener = chatter::relay::listener::bind(args.listen)
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            // Operators compare this with their users' clients when upgrading.
            eprintln!(
                "chatter-server {} (protocol {})",
                env!("CARGO_PKG_VERSION"),
                chatter::proto::PROTOCOL_VERSION
            );
            eprintln!("chatter-server listening on {}", listener.local_addr()?);
            let relay = Relay::new(relay_config(&args, code));
            // SIGUSR1 lifts every block: no restart (sessions stay), and no control socket
            // or file for anyone else to reach.
            let mut lift = signal(SignalKind::user_defined1())?;
            let gate = relay.gate().clone();
            tokio::spawn(async move {
                while lift.recv().await.is_some() {
                    let lifted = gate.lift_blocks();
                    eprintln!("chatter-server: lifted {lifted} block(s) on SIGUSR1");
                }
            });
            let mut terminate = signal(SignalKind::terminate())?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            };
            match cluster {
                Some(cluster) => {
                    eprintln!(
                        "chatter-server shares rooms through NATS (stream {})",
                        cluster.stream
                    );
                    relay.serve_in_cluster(cluster, listener, shutdown).await?;
                }
                None => relay.serve(listener, shutdown).await?,
            }
            eprintln!("chatter-server stopped");
            Ok(())
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;
        use clap::CommandFactory;

        #[test]
        fn flags_are_consistent() {
            Args::command().debug_assert();
        }

        #[test]
        fn flag_defaults_are_the_library_defaults() {
            let args = Args::try_parse_from(["chatter-server"]).unwrap();
            let config = relay_config(&args, Secret::from("code"));
            let library = RelayConfig::new(Secret::from("code"));
            assert_eq!(config.handshake_timeout, library.handshake_timeout);
            assert_eq!(config.idle_timeout, library.idle_timeout);
            let (flags, defaults) = (&config.gate, GateLimits::default());
            assert_eq!(flags.max_connections_per_ip, defaults.max_connections_per_ip);
            assert_eq!(flags.preauth_budget, defaults.preauth_budget);
            assert_eq!(flags.max_access_code_failures, defaults.max_access_code_failures);
            assert_eq!(flags.preauth_forget_after, defaults.preauth_forget_after);
            assert_eq!(flags.ipv6_prefix_len, defaults.ipv6_prefix_len);
            assert_eq!(flags.max_tracked_addresses, defaults.max_tracked_addresses);
            assert_eq!(config.rate_limit, RateLimit::default());
            assert_eq!(config.report, Some(ReportConfig::new("./report.txt")));
        }

        #[test]
        fn the_log_level_comes_from_the_flag_the_variable_or_verbose() {
            let parse = |args: &[&str]| {
                let args = Args::try_parse_from(
                    std::iter::once("chatter-server").chain(args.iter().copied()),
                );
                log_level(&args.unwrap())
            };
            assert_eq!(parse(&[]), LogLevel::Warn);
            assert_eq!(parse(&["--verbose"]), LogLevel::Info);
            assert_eq!(parse(&["--verbose", "--log-level", "debug"]), LogLevel::Debug);
            assert_eq!(parse(&["--log-level", "error"]), LogLevel::Error);
        }

        #[test]
        fn colour_only_on_a_terminal_without_no_color() {
            assert!(log_in_colour(true, None));
            assert!(log_in_colour(true, Some("".into())));
            assert!(!log_in_colour(true, Some("1".into())));
            assert!(!log_in_colour(false, None));
        }

        #[test]
        fn no_report_writes_nothing_and_limits_must_be_positive() {
            let args = Args::try_parse_from(["chatter-server", "--no-report"]).unwrap();
            assert_eq!(relay_config(&args, Secret::from("code")).report, None);
            for bad in [["--rate", "0"], ["--burst", "0"], ["--idle-timeout", "0"]] {
                let parsed = Args::try_parse_from(["chatter-server", bad[0], bad[1]]);
                assert!(parsed.is_err(), "{bad:?}");
            }
        }
    }
}

/// Errors are printed as one line a person can act on (never a backtrace, whatever
/// `RUST_BACKTRACE` says) and give a non-zero exit status.
#[cfg(unix)]
fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of the process: no other thread exists yet.
    let env_code = unsafe { chatter::hardening::take_env_secret("CHATTER_ACCESS_CODE") };
    // SAFETY: still before any other thread exists.
    let env_cluster_key = unsafe { chatter::hardening::take_env_secret("CHATTER_CLUSTER_KEY") };
    match unix::main(env_code, env_cluster_key) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("chatter-server: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(not(unix))]
fn main() {
    eprintln!("chatter-server runs on Unix only; the chatter client runs everywhere");
    std::process::exit(2);
}
