//! `chatter`: the terminal client. All of it lives in `chatter::cli`.

fn main() -> std::process::ExitCode {
    chatter::cli::main()
}
