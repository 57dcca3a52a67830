//! `chatter`: the terminal client. All of it lives in `chatter::cli`.

fn main() -> std::process::ExitCode {
    // SAFETY: the first statement of the process: no other thread exists yet.
    let env_secrets = unsafe { chatter::cli::EnvSecrets::take() };
    chatter::cli::main(env_secrets)
}
