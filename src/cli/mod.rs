//! `chatter`'s entry point: flags and config, secrets, the connection, then the REPL or line
//! mode. `src/bin/chatter.rs` only calls [`main`].

pub mod args;
pub mod config;
mod connect;

use crate::client::{self, ClientOptions};
use crate::identity::{Identity, KnownPeers};
use crate::mls::RoomSuite;
use crate::repl::access_code::AccessCodeQuestion;
use crate::repl::line_mode::{self, RoomPasswordSource};
use crate::repl::render::{Format, Renderer};
use crate::repl::screen::{Inbox, Outbox, SharedScreen};
use crate::repl::session::Session;
use crate::repl::{QuitFlags, Repl};
use crate::secret::Secret;
use anyhow::{Context as _, bail};
use args::Args;
use clap::Parser;
use config::Config;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The relay's port when the address names none.
pub const DEFAULT_PORT: u16 = 9001;

/// The secrets `chatter` reads from its environment, taken out of it at start (see
/// [`crate::hardening::take_env_secret`]).
#[derive(Debug, Default)]
pub struct EnvSecrets {
    /// `CHATTER_ACCESS_CODE`.
    pub access_code: Option<Secret>,
    /// `CHATTER_ROOM_PASSWORD` (line mode).
    pub room_password: Option<Secret>,
}

impl EnvSecrets {
    /// Takes both secrets out of the environment.
    ///
    /// # Safety
    ///
    /// No other thread may run: call it first thing in `main`.
    pub unsafe fn take() -> Self {
        // SAFETY: the caller guarantees that this thread is the only one.
        unsafe {
            EnvSecrets {
                access_code: crate::hardening::take_env_secret("CHATTER_ACCESS_CODE"),
                room_password: crate::hardening::take_env_secret("CHATTER_ROOM_PASSWORD"),
            }
        }
    }
}

/// Runs `chatter` with the process's arguments and the secrets taken from its environment.
pub fn main(env_secrets: EnvSecrets) -> ExitCode {
    if let Err(error) = crate::hardening::disable_core_dumps() {
        eprintln!("chatter: warning: could not turn core dumps off: {error}");
    }
    let args = Args::parse();
    match run(args, env_secrets) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("chatter: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args, env_secrets: EnvSecrets) -> anyhow::Result<ExitCode> {
    let EnvSecrets { access_code: env_access_code, room_password: env_room_password } = env_secrets;
    // The identity comes first: `--fingerprint` needs nothing else, and a bad identity file
    // must stop us before anything connects.
    let (identity, created) = load_identity(args.identity.as_deref())?;
    if args.fingerprint {
        println!("{}", identity.fingerprint());
        return Ok(ExitCode::SUCCESS);
    }
    let known_peers = match identity.path() {
        Some(path) => KnownPeers::open(&KnownPeers::path_beside(path))?,
        None => KnownPeers::in_memory(),
    };
    let config = Config::load()?;
    let output = Output::choose(&args, &config);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let (server, access_code, _relay_guard) =
        server_and_access_code(env_access_code, &args, &config, &runtime, output.interactive)?;
    let nick = nickname(&args, &config, output.interactive)?;

    let renderer = Renderer::new(nick.clone(), output.format);
    let startup_lines = autojoin_lines(config.autojoin.as_deref().unwrap_or_default(), &args.join);
    let notice = identity_notice(&nick, &identity, created);
    let session = Session::new(nick.clone(), runtime.handle().clone());
    let dm = args.dm.clone().or(config.dm.clone()).unwrap_or_else(|| "anyone".to_owned());
    session.set_dm_policy(dm.parse().map_err(|problem: String| anyhow::anyhow!(problem))?);
    if let Some(hours) = config.rekey_hours {
        anyhow::ensure!(
            (1..=24 * 365).contains(&hours),
            "rekey_hours must be between 1 and 8760 (a year), not {hours}"
        );
        session.set_renew_after(std::time::Duration::from_secs(hours * 3600));
    }
    session.set_room_suite(room_suite(&args, &config));
    let options = ClientOptions { server: server.clone(), nick, access_code };
    let me = Me { identity, known_peers };
    if output.interactive {
        let identity_path = args.identity.clone();
        let reload = move || -> anyhow::Result<Me> { load_me(identity_path.as_deref()) };
        let start = Start { options, me, reload: Box::new(reload) };
        let look = Look { notice: &notice, color: output.color };
        run_interactive(&runtime, session, renderer, start, look, startup_lines)?;
    } else {
        if created {
            // Line mode keeps stdout for events.
            eprintln!("chatter: {notice}");
        }
        let passwords =
            RoomPasswordSource { from_env: env_room_password, file: args.room_password_file };
        run_line_mode(&runtime, &session, &renderer, options, me, passwords, startup_lines)?;
    }
    runtime.shutdown_timeout(Duration::from_millis(200));
    Ok(ExitCode::SUCCESS)
}

/// What the REPL shows first, and whether in colour.
struct Look<'a> {
    notice: &'a str,
    color: bool,
}

/// The `/join` lines for the config's `autojoin` rooms, then for `--join`'s, each room once,
/// run as if typed first: the join command's own rules and words apply to them.
fn autojoin_lines(autojoin: &[String], join: &[String]) -> Vec<String> {
    let mut rooms: Vec<&String> = Vec::new();
    for room in autojoin.iter().chain(join) {
        if !rooms.contains(&room) {
            rooms.push(room);
        }
    }
    rooms.into_iter().map(|room| format!("/join {room}")).collect()
}

/// Who we are: the persistent identity, and the keys of the people we have met.
struct Me {
    identity: Identity,
    known_peers: KnownPeers,
}

/// The identity and pins read again from their files, for a session under a new nickname
/// (`/nick`): what `run` read at start, as it is now on disk.
fn load_me(identity_path: Option<&std::path::Path>) -> anyhow::Result<Me> {
    let (identity, _) = load_identity(identity_path)?;
    let known_peers = match identity.path() {
        Some(path) => KnownPeers::open(&KnownPeers::path_beside(path))?,
        None => KnownPeers::in_memory(),
    };
    Ok(Me { identity, known_peers })
}

/// What the REPL connects with: the first session's options and identity, and how to read
/// the identity again for a session under another nickname.
struct Start {
    options: ClientOptions,
    me: Me,
    reload: Box<dyn Fn() -> anyhow::Result<Me> + Send + Sync>,
}

/// The identity in `path`, or in the per-user data directory; created if there is none yet
/// (the second value says so).
fn load_identity(path: Option<&std::path::Path>) -> anyhow::Result<(Identity, bool)> {
    let path = match path {
        Some(path) => path.to_owned(),
        None => Identity::default_path()?,
    };
    Ok(Identity::load_or_create(&path)?)
}

/// What the REPL says about the identity at start.
fn identity_notice(nick: &str, identity: &Identity, created: bool) -> String {
    let path = identity.path().map(|path| path.display().to_string()).unwrap_or_default();
    if created {
        format!(
            "created your identity {} in {path}: back this file up — /whoami shows it",
            identity.fingerprint()
        )
    } else {
        format!("you are {nick}, identity {} — /whoami, /verify", identity.fingerprint())
    }
}

/// How events reach the user: at a terminal (coloured or not) or as lines on a pipe.
struct Output {
    /// The REPL (stdin is a terminal and JSON was not asked for), or line mode.
    interactive: bool,
    color: bool,
    format: Format,
}

impl Output {
    fn choose(args: &Args, config: &Config) -> Output {
        let interactive = std::io::stdin().is_terminal() && !args.json;
        let color = interactive
            && !args.no_color
            && config.color != Some(false)
            && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty())
            && std::io::stdout().is_terminal();
        let format = match (args.json, interactive, color) {
            (true, _, _) => Format::Json,
            (false, false, _) => Format::Line,
            (false, true, true) => Format::Color,
            (false, true, false) => Format::Plain,
        };
        Output { interactive, color, format }
    }
}

/// The relay to use and its access code. Without a server, a local relay for a demo, whose
/// access code is ours; it runs as long as the returned guard lives.
fn server_and_access_code(
    env_access_code: Option<Secret>,
    args: &Args,
    config: &Config,
    runtime: &tokio::runtime::Runtime,
    interactive: bool,
) -> anyhow::Result<(String, Secret, Option<RelayGuard>)> {
    let servers = config.servers.as_ref().map(|servers| servers.join(","));
    match args.server.clone().or(config.server.clone()).or(servers) {
        Some(server) => {
            let server = normalize_servers(&server)?;
            let code = access_code(env_access_code, args, &server, interactive)?;
            Ok((server, code, None))
        }
        None => {
            let (server, code, guard) = start_local_relay(runtime, interactive)?;
            Ok((server, code, Some(guard)))
        }
    }
}

/// The nickname from the flags or the config, asked for at a terminal, and checked.
fn nickname(args: &Args, config: &Config, interactive: bool) -> anyhow::Result<String> {
    let nick = match args.nick.clone().or(config.nick.clone()) {
        Some(nick) => nick,
        None if interactive => ask_nick()?,
        None => bail!("no nickname: pass --nick or set CHATTER_NICK (stdin is not a terminal)"),
    };
    validate_nick(&nick)?;
    Ok(nick)
}

/// Line mode: connects first (failing the process if that fails), then reads stdin until it
/// ends or `/quit`.
fn run_line_mode(
    runtime: &tokio::runtime::Runtime,
    session: &Arc<Session>,
    renderer: &Renderer,
    options: ClientOptions,
    me: Me,
    passwords: RoomPasswordSource,
    startup_lines: Vec<String>,
) -> anyhow::Result<()> {
    let server = options.server.clone();
    // Each failed attempt is an event, like a lost link's; nothing here can ask again.
    let tell = |event: client::Event| {
        if let Some(rendered) = renderer.event(&event) {
            line_mode::emit(&rendered.text);
        }
    };
    let error = match runtime.block_on(connect::connect(&options, me, &tell, &|_| {})) {
        connect::Startup::Connected(client, events) => {
            let renderer = renderer.clone().with_focus(client.clone());
            session.connected(client);
            runtime.spawn(pump(events, renderer, Box::new(|line| line_mode::emit(&line))));
            None
        }
        connect::Startup::WrongAccessCode(_) => Some(client::ClientError::WrongAccessCode),
        connect::Startup::Failed(error) => Some(error),
    };
    if let Some(error) = error {
        // A script cannot be asked: say what to pass instead.
        let said = match &error {
            client::ClientError::NickTaken(nick) => {
                format!("the nickname {nick} is taken there — try --nick {}", next_nick(nick))
            }
            error => error.to_string(),
        };
        // An event for the program reading stdout, and the exit status and stderr line
        // for the script that ran it.
        line_mode::emit(&renderer.error(&format!("could not connect to {server}: {said}")));
        bail!("could not connect to {server}: {said}");
    }
    let signal_session = Arc::clone(session);
    runtime.spawn(async move {
        wait_for_signal(true).await;
        // Line mode has no terminal to restore: quit and go.
        if let Ok(client) = signal_session.client() {
            let _ = tokio::time::timeout(Duration::from_secs(3), client.quit()).await;
        }
        std::process::exit(0);
    });
    line_mode::run(session, renderer, passwords, startup_lines);
    Ok(())
}

/// The REPL: connects in the background (the prompt is up at once), quits on signals, and
/// reads lines until the user quits.
fn run_interactive(
    runtime: &tokio::runtime::Runtime,
    session: Arc<Session>,
    renderer: Renderer,
    start: Start,
    look: Look<'_>,
    startup_lines: Vec<String>,
) -> anyhow::Result<()> {
    let Look { notice, color } = look;
    let screen = SharedScreen::default();
    let (inbox, outbox) = Inbox::new(screen.clone());
    let quit = Arc::new(QuitFlags::default());
    let access_code = Arc::new(AccessCodeQuestion::default());
    let _ = outbox.send(renderer.notice(notice));
    let Start { options, me, reload } = start;
    let background = Background {
        session: session.clone(),
        renderer: renderer.clone(),
        outbox,
        quit: quit.clone(),
        access_code: access_code.clone(),
    };
    let connector = {
        let (session, renderer, outbox) =
            (Arc::downgrade(&session), renderer.clone(), background.outbox.clone());
        let (quit, access_code) = (quit.clone(), access_code.clone());
        let (options, runtime) = (options.clone(), runtime.handle().clone());
        move |nick: String| {
            let Some(session) = session.upgrade() else { return };
            let me = match reload() {
                Ok(me) => me,
                Err(error) => {
                    session.connect_failed();
                    let _ = outbox.send(renderer.error(&format!("{error:#}")));
                    return;
                }
            };
            let renderer = Renderer { own_nick: nick.clone(), ..renderer.clone() };
            let options = ClientOptions { nick, ..options.clone() };
            let background = Background {
                session,
                renderer,
                outbox: outbox.clone(),
                quit: quit.clone(),
                access_code: access_code.clone(),
            };
            runtime.spawn(connect_in_background(background, options, me));
        }
    };
    session.set_connector(Box::new(connector));
    runtime.spawn(connect_in_background(background, options, me));
    runtime.spawn(quit_on_signal(quit.clone(), session.clone()));
    runtime.spawn(repaint_when_continued(quit.clone()));
    Repl {
        session,
        inbox,
        screen,
        renderer,
        color,
        history_file: config::history_path(),
        quit,
        access_code,
        stock_printer: false,
        startup_lines,
    }
    .run()?;
    Ok(())
}

/// What the REPL's connecting task works with.
struct Background {
    session: Arc<Session>,
    renderer: Renderer,
    outbox: Outbox,
    quit: Arc<QuitFlags>,
    access_code: Arc<AccessCodeQuestion>,
}

/// Connects (trying again as a lost link does, and asking for the access code again when
/// the relay refused it), says so above the prompt, then renders events there until the
/// engine stops.
async fn connect_in_background(background: Background, mut options: ClientOptions, mut me: Me) {
    let Background { session, renderer, outbox, quit, access_code } = background;
    let server = options.server.clone();
    let tell = |event: client::Event| {
        if let Some(rendered) = renderer.event(&event) {
            let _ = outbox.send(rendered.text);
        }
    };
    let attempting = |attempt| session.connecting(attempt);
    let error = loop {
        match connect::connect(&options, me, &tell, &attempting).await {
            connect::Startup::Connected(client, events) => {
                let renderer = renderer.with_focus(client.clone());
                session.connected(client);
                let _ = outbox.send(renderer.notice(&format!(
                    "connected to {server} — /join ROOM to enter a room, /help for commands"
                )));
                pump(events, renderer, Box::new(move |line| drop(outbox.send(line)))).await;
                return;
            }
            connect::Startup::WrongAccessCode(returned) => {
                me = returned;
                let _ = outbox.send(renderer.error(&format!("wrong access code for {server}")));
                let prompt = format!("access code for {server} (Ctrl-D to give up): ");
                match access_code.ask(prompt, &quit.break_signal).await {
                    Ok(Some(code)) if !code.is_empty() => options.access_code = code,
                    _ => break client::ClientError::WrongAccessCode,
                }
            }
            connect::Startup::Failed(client::ClientError::NickTaken(nick)) => {
                session.connect_failed();
                // Most often another client of ours holds the name (a second terminal,
                // another device): offer the next free-looking one rather than end.
                let _ = outbox.send(renderer.error(&format!(
                    "the nickname {nick} is taken on {server} — choose another: /nick {}",
                    next_nick(&nick)
                )));
                return;
            }
            connect::Startup::Failed(error) => break error,
        }
    };
    session.connect_failed();
    let _ = outbox
        .send(renderer.error(&format!("could not connect to {server}: {error} — Ctrl-D to exit")));
}

/// On SIGTERM, asks the REPL to quit (it restores the terminal on its way out) and quits from
/// here only if it has not within two seconds; on SIGHUP, quits from here at once.
async fn quit_on_signal(quit: Arc<QuitFlags>, session: Arc<Session>) {
    let hangup = wait_for_signal(false).await == Received::Hangup;
    if !hangup {
        // The REPL notices within one poll and restores the terminal on its way out.
        quit.request();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    // The terminal is gone (nothing to restore, and reedline would wait for it to
    // answer a cursor query), or the REPL is stuck in a command: quit from here.
    if !quit.quitting.swap(true, Ordering::SeqCst) {
        if let Ok(client) = session.client() {
            let _ = tokio::time::timeout(Duration::from_secs(2), client.quit()).await;
        }
        let _ = crossterm::terminal::disable_raw_mode();
        crate::repl::exit_now();
    }
}

/// Raises `continued` at every SIGCONT: after a stop (Ctrl-Z then `fg`, or `kill -STOP`
/// then `-CONT`) the prompt is drawn again without waiting for a key.
async fn repaint_when_continued(quit: Arc<QuitFlags>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut continued) = signal(SignalKind::from_raw(libc::SIGCONT)) else { return };
        while continued.recv().await.is_some() {
            quit.continued.store(true, Ordering::SeqCst);
        }
    }
    #[cfg(not(unix))]
    drop(quit);
}

/// Renders engine events into `sink` until the engine closes the stream.
async fn pump(mut events: client::Events, renderer: Renderer, sink: Box<dyn Fn(String) + Send>) {
    while let Some(event) = events.recv().await {
        if let Some(rendered) = renderer.event(&event) {
            sink(rendered.text);
        }
    }
}

/// Which signal ended the wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Received {
    /// SIGTERM (or Ctrl-C where that quits).
    Terminate,
    /// SIGHUP: the terminal is gone.
    Hangup,
}

/// Resolves on SIGTERM or SIGHUP (and on SIGINT when `interrupt_quits`; otherwise SIGINT is
/// swallowed, since at the prompt Ctrl-C only clears the line).
async fn wait_for_signal(interrupt_quits: bool) -> Received {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let (Ok(mut term), Ok(mut hup), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        loop {
            tokio::select! {
                _ = term.recv() => return Received::Terminate,
                _ = hup.recv() => return Received::Hangup,
                _ = int.recv() => if interrupt_quits { return Received::Terminate },
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt_quits;
        let _ = tokio::signal::ctrl_c().await;
        Received::Terminate
    }
}

/// A list of relays sharing rooms, `host[:port],host[:port]…` (`client::relays`): each
/// normalized as [`normalize_server`] does.
pub fn normalize_servers(servers: &str) -> anyhow::Result<String> {
    let normalized: Vec<String> =
        servers.split(',').map(normalize_server).collect::<anyhow::Result<_>>()?;
    Ok(normalized.join(","))
}

/// `host` → `host:9001`; `host:port` and `[v6]:port` are kept; a bare IPv6 gets brackets.
pub fn normalize_server(server: &str) -> anyhow::Result<String> {
    let server = server.trim();
    if server.is_empty() || server.contains(char::is_whitespace) {
        bail!("invalid server address {server:?}: expected host[:port]");
    }
    let (host, port) = if let Some(rest) = server.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            bail!("invalid server address {server:?}: missing ]");
        };
        (format!("[{host}]"), after.strip_prefix(':'))
    } else if server.matches(':').count() > 1 {
        (format!("[{server}]"), None)
    } else {
        match server.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (server.to_owned(), None),
        }
    };
    let port = match port {
        Some(port) => port
            .parse::<u16>()
            .map_err(|_| anyhow::anyhow!("invalid port {port:?} in server address"))?,
        None => DEFAULT_PORT,
    };
    Ok(format!("{host}:{port}"))
}

/// Nicknames: the one rule (`proto::check_nick`: 1–32 characters, no spaces, control or
/// invisible characters, letters of one script), and not starting with `/`.
pub fn validate_nick(nick: &str) -> anyhow::Result<()> {
    if let Err(problem) = crate::proto::check_nick(nick) {
        bail!("nickname {nick:?} is not allowed: {problem}");
    }
    if nick.starts_with('/') {
        bail!("a nickname does not start with /");
    }
    Ok(())
}

fn ask_nick() -> anyhow::Result<String> {
    let mut stdout = std::io::stdout();
    loop {
        write!(stdout, "nickname: ")?;
        stdout.flush()?;
        let mut line = String::new();
        if std::io::stdin().read_line(&mut line)? == 0 {
            bail!("no nickname given");
        }
        let nick = line.trim().to_owned();
        match validate_nick(&nick) {
            Ok(()) => return Ok(nick),
            Err(error) => eprintln!("{error}"),
        }
    }
}

/// The access code: `CHATTER_ACCESS_CODE` (taken at start), `--access-code-file`, or a
/// hidden prompt.
fn access_code(
    from_env: Option<Secret>,
    args: &Args,
    server: &str,
    interactive: bool,
) -> anyhow::Result<Secret> {
    if let Some(code) = from_env {
        return Ok(code);
    }
    if let Some(path) = &args.access_code_file {
        return crate::secret::read_first_line(path)
            .with_context(|| format!("reading the access code from {}", path.display()));
    }
    if interactive {
        let code = rpassword::prompt_password(format!("access code for {server}: "))
            .context("reading the access code")?;
        return Ok(Secret::new(code));
    }
    bail!("no access code: set CHATTER_ACCESS_CODE or pass --access-code-file")
}

/// Keeps the local relay running; dropping it shuts the relay down.
struct RelayGuard(#[allow(dead_code)] tokio::sync::oneshot::Sender<()>);

/// Starts `chatter::relay` on 127.0.0.1 with a random access code and says how to join it.
fn start_local_relay(
    runtime: &tokio::runtime::Runtime,
    interactive: bool,
) -> anyhow::Result<(String, Secret, RelayGuard)> {
    use rand::Rng;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .context("starting a local relay")?;
    let address = listener.local_addr()?;
    let code: String = rand::thread_rng()
        .sample_iter(&rand::distributions::Alphanumeric)
        .take(16)
        .map(char::from)
        .collect();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let config = crate::relay::RelayConfig::new(Secret::from(code.as_str()));
    runtime.spawn(async move {
        let shutdown = async {
            let _ = stopped.await;
        };
        if let Err(error) = crate::relay::run(listener, config, shutdown).await {
            eprintln!("chatter: local relay stopped: {error}");
        }
    });
    let server = address.to_string();
    let banner = format!(
        "No server given, so a local relay is running at {server} until you quit.\n\
         In a second terminal, join the same chat with:\n  {}\n",
        join_command(&code, &server)
    );
    // Line mode keeps stdout for events.
    if interactive {
        println!("{banner}");
    } else {
        eprintln!("{banner}");
    }
    Ok((server, Secret::new(code), RelayGuard(stop)))
}

/// The nickname to offer when `nick` is taken: `alice` → `alice-2`, `alice-2` → `alice-3`.
fn next_nick(nick: &str) -> String {
    let numbered = nick.rsplit_once('-').and_then(|(stem, number)| {
        let number: u32 = number.parse().ok().filter(|_| !number.starts_with('0'))?;
        Some(format!("{stem}-{}", number.checked_add(1)?))
    });
    let next = numbered.unwrap_or_else(|| format!("{nick}-2"));
    if crate::proto::is_valid_nick(&next) {
        return next;
    }
    // Too long with a suffix: shorten the stem to make room for it.
    let stem: String = nick.chars().take(crate::proto::MAX_NAME_CHARS - 2).collect();
    format!("{stem}-2")
}

/// The command a second terminal runs to join this process's local relay.
fn join_command(code: &str, server: &str) -> String {
    // `cargo run` sets CARGO_MANIFEST_DIR for the program it runs.
    let program = match std::env::var_os("CARGO_MANIFEST_DIR") {
        Some(_) => "cargo run --release --".to_owned(),
        None => std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "chatter".to_owned()),
    };
    format!("CHATTER_ACCESS_CODE={code} {program} {server}")
}

/// The ciphersuite of the rooms this client creates: post-quantum with `--pq` or `pq = true`
/// in the config, classic otherwise. Rooms joined keep their creator's.
fn room_suite(args: &Args, config: &Config) -> RoomSuite {
    if args.pq || config.pq == Some(true) { RoomSuite::PostQuantum } else { RoomSuite::Classic }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn rooms_are_post_quantum_by_the_flag_or_the_config() {
        let plain = Args::parse_from(["chatter"]);
        let flagged = Args::parse_from(["chatter", "--pq"]);
        let configured = Config { pq: Some(true), ..Config::default() };
        assert_eq!(room_suite(&plain, &Config::default()), RoomSuite::Classic);
        assert_eq!(room_suite(&flagged, &Config::default()), RoomSuite::PostQuantum);
        assert_eq!(room_suite(&plain, &configured), RoomSuite::PostQuantum);
        let refused = Config { pq: Some(false), ..Config::default() };
        assert_eq!(room_suite(&plain, &refused), RoomSuite::Classic);
    }

    #[test]
    fn server_addresses_get_the_default_port() {
        assert_eq!(normalize_server("chat.example").unwrap(), "chat.example:9001");
        assert_eq!(normalize_server("chat.example:7000").unwrap(), "chat.example:7000");
        assert_eq!(normalize_server("[::1]").unwrap(), "[::1]:9001");
        assert_eq!(normalize_server("[::1]:5").unwrap(), "[::1]:5");
        assert_eq!(normalize_server("::1").unwrap(), "[::1]:9001");
        assert!(normalize_server("host:port").is_err());
        assert!(normalize_server("").is_err());
    }

    #[test]
    fn nicknames_are_checked() {
        assert!(validate_nick("alice").is_ok());
        assert!(validate_nick("žofie").is_ok());
        assert!(validate_nick("").is_err());
        assert!(validate_nick("a b").is_err());
        assert!(validate_nick("bad\x1b").is_err());
        assert!(validate_nick("/join").is_err());
        let invisible = validate_nick("sophie\u{FE0F}").unwrap_err().to_string();
        assert!(invisible.contains("variation selector"), "{invisible}");
        let mixed = validate_nick("s\u{043E}phie").unwrap_err().to_string();
        assert!(mixed.contains("scripts"), "{mixed}");
    }

    #[test]
    fn help_documents_every_flag_and_variable() {
        let help = Args::command().render_long_help().to_string();
        for needle in [
            "--nick",
            "--access-code-file",
            "--room-password-file",
            "--json",
            "--no-color",
            "CHATTER_ACCESS_CODE",
            "CHATTER_ROOM_PASSWORD",
            "CHATTER_NICK",
            "--identity",
            "--fingerprint",
            "--join",
            "autojoin",
            "--dm",
            "CHATTER_IDENTITY",
            "NO_COLOR",
            "chatter.toml",
        ] {
            assert!(help.contains(needle), "--help lacks {needle}");
        }
        Args::command().debug_assert();
    }

    #[test]
    fn a_taken_nickname_gets_a_numbered_one_offered() {
        assert_eq!(next_nick("alice"), "alice-2");
        assert_eq!(next_nick("alice-2"), "alice-3");
        assert_eq!(next_nick("jean-luc"), "jean-luc-2");
        assert_eq!(next_nick("alice-07"), "alice-07-2");
        assert_eq!(next_nick(&"x".repeat(32)), format!("{}-2", "x".repeat(30)));
    }

    #[test]
    fn the_join_command_names_the_code_and_address() {
        let command = join_command("abc", "127.0.0.1:4000");
        assert!(command.starts_with("CHATTER_ACCESS_CODE=abc "));
        assert!(command.ends_with(" 127.0.0.1:4000"));
    }
}
