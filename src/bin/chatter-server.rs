//! `chatter-server`: the CLI Chatter relay, for a Unix host.
//!
//! A thin adapter: parse flags, obtain the access code, bind, and hand over to
//! `chatter::relay`. Everything it does is in the library so tests run the same code.

#[cfg(unix)]
mod unix {
    use std::io::IsTerminal;
    use std::net::SocketAddr;
    use std::path::PathBuf;

    use anyhow::{Context, bail};
    use chatter::relay::{Relay, RelayConfig};
    use chatter::secret::Secret;
    use clap::Parser;
    use tokio::signal::unix::{SignalKind, signal};

    /// The CLI Chatter relay: routes end-to-end encrypted messages it cannot read, keeps
    /// everything in memory, and writes nothing to disk but the optional abuse report.
    #[derive(Debug, Parser)]
    #[command(name = "chatter-server", version)]
    struct Args {
        /// Address and port to listen on.
        #[arg(long, env = "CHATTER_LISTEN", default_value = "0.0.0.0:9001")]
        listen: SocketAddr,

        /// Read the access code from this file (first line). Otherwise it comes from
        /// CHATTER_ACCESS_CODE, or is asked for with hidden input on a terminal.
        #[arg(long, value_name = "PATH")]
        access_code_file: Option<PathBuf>,

        /// Log operational events (connections, rooms by count). Never logs content, names or
        /// addresses.
        #[arg(long, short)]
        verbose: bool,
    }

    fn access_code(args: &Args) -> anyhow::Result<Secret> {
        let code = if let Some(path) = &args.access_code_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the access code file {}", path.display()))?;
            Secret::new(text.lines().next().unwrap_or_default().to_owned())
        } else if let Ok(code) = std::env::var("CHATTER_ACCESS_CODE") {
            Secret::new(code)
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

    pub fn main() -> anyhow::Result<()> {
        let args = Args::parse();
        let level = if args.verbose { "info" } else { "warn" };
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(level))
            .with_writer(std::io::stderr)
            .init();
        let code = access_code(&args)?;
        let runtime = tokio::runtime::Runtime::new()?;
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .with_context(|| format!("cannot listen on {}", args.listen))?;
            eprintln!("chatter-server listening on {}", listener.local_addr()?);
            let relay = Relay::new(RelayConfig::new(code));
            let mut terminate = signal(SignalKind::terminate())?;
            let shutdown = async move {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = terminate.recv() => {}
                }
            };
            relay.serve(listener, shutdown).await?;
            eprintln!("chatter-server stopped");
            Ok(())
        })
    }
}

#[cfg(unix)]
fn main() -> anyhow::Result<()> {
    unix::main()
}

#[cfg(not(unix))]
fn main() {
    eprintln!("chatter-server runs on Unix only; the chatter client runs everywhere");
    std::process::exit(2);
}
