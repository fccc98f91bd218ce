//! `rolecall`: keeps AWS temporary credentials fresh.
//!
//! This binary only parses arguments, builds the engine and prints; all logic lives in
//! `rolecall-core`. Errors are printed once, with their cause chain, on stderr. Results go
//! through `outln!` (see `out.rs`), which survives a reader that hung up.
#![deny(clippy::print_stdout)]

#[macro_use]
mod out;
mod cli;
mod cmd;
#[cfg(unix)]
mod hardening;
mod prompt;

use std::process::ExitCode;

use clap::FromArgMatches;

use crate::cli::{Cli, Command};

/// Exit codes, as documented in `rolecall --help`.
pub mod exit {
    /// Everything worked.
    pub const OK: u8 = 0;
    /// Some profiles failed (the others were done).
    pub const FAILED: u8 = 1;
    /// Bad usage or configuration.
    pub const USAGE: u8 = 2;
}

fn main() -> ExitCode {
    // a shell asking for completions (see cmd/completions.rs): answered, then exits
    clap_complete::CompleteEnv::with_factory(cli::command)
        .var(cmd::completions::VAR)
        .complete();
    let mut cli = match Cli::from_arg_matches(&cli::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // a daemon's log is its only voice: info by default; commands print their own results
    let daemon = matches!(cli.command, Command::Daemon(_) | Command::Serve(_));
    // a log file was asked for: it says what happened, so info by default too
    let verbose = cli.verbose + u8::from(daemon || cli.log_file.is_some());
    let log_file = match cli.log_file.as_deref().map(open_log_file).transpose() {
        Ok(file) => file,
        Err(e) => {
            eprintln!("rolecall: {e:#}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let logs_to_file = log_file.is_some();
    init_logging(verbose, cli.log_format, log_file);
    // private files, no core dumps, no ptrace by the user's other processes: before any thread
    // exists and before anything secret is read (see hardening.rs)
    #[cfg(unix)]
    hardening::harden();
    if let Err(e) = cli.command.read_mfa_code_from_stdin() {
        eprintln!("rolecall: {e:#}");
        return ExitCode::from(exit::USAGE);
    }
    // the daemon serves the agent while renewing: two workers; every other command is one
    // request and starts fastest on a single thread
    let builder = if matches!(cli.command, Command::Daemon(_)) {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        // blocking threads (keychain, file writes) otherwise exit 10 s after their last job,
        // and each exit is a wake-up of an idle daemon: keep the few it needs parked instead
        b.worker_threads(2)
            .max_blocking_threads(4)
            .thread_keep_alive(std::time::Duration::from_secs(24 * 3600));
        b
    } else {
        tokio::runtime::Builder::new_current_thread()
    };
    let runtime = match { builder }.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rolecall: cannot start the async runtime: {e}");
            return ExitCode::from(exit::USAGE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("rolecall: {err:#}");
            if logs_to_file {
                tracing::error!("{err:#}");
            }
            let code = match err.downcast_ref::<rolecall_core::Error>() {
                Some(e) if e.is_usage() => exit::USAGE,
                _ if err
                    .downcast_ref::<rolecall_core::serve::client::Error>()
                    .is_some_and(rolecall_core::serve::client::Error::is_usage) =>
                {
                    exit::USAGE
                }
                _ => exit::FAILED,
            };
            ExitCode::from(code)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<u8> {
    let mut paths = rolecall_core::config::Paths::from_env();
    if let Some(c) = &cli.config {
        paths.config_file = c.clone();
    }
    // absolute, so that an agent started with a relative path names its file in a way the
    // commands of another directory can compare with theirs (see `cmd::agent`)
    if let Ok(abs) = std::path::absolute(&paths.config_file) {
        paths.config_file = abs;
    }
    match cli.command {
        Command::Completions { shell } => cmd::completions::run(shell),
        Command::Man { dir } => cmd::man::run(&dir),
        Command::Keys(k) => cmd::keys::run(paths, k).await,
        Command::Roles(a) => cmd::roles::run(paths, a).await,
        Command::Import(a) => cmd::import::run(paths, a).await,
        Command::Refresh(a) => cmd::refresh::run(paths, a, cli.no_agent).await,
        Command::Status(a) => cmd::status::run(paths, a, cli.no_agent).await,
        Command::Use(a) => cmd::use_::run(paths, a, cli.no_agent).await,
        Command::Exec(a) => cmd::exec::run(paths, a).await,
        Command::Export(a) => cmd::export::run(paths, a).await,
        Command::CredentialProcess(a) => cmd::export::credential_process(paths, a).await,
        Command::Clear(a) => cmd::clear::run(paths, a, cli.no_agent).await,
        Command::Doctor => cmd::doctor::run(paths).await,
        Command::Daemon(a) => cmd::daemon::run(paths, a).await,
        Command::Watch(a) => cmd::watch::run(paths, a).await,
        Command::Serve(a) => cmd::serve::run(paths, a).await,
        Command::Setup(s) => cmd::setup::run(paths, s).await,
    }
}

/// Opens the `--log-file` for appending: created with mode 0600 (a directory made for it
/// 0700), an existing one made private too (the log holds no secret, but profile names, role
/// ARNs and times are the user's business).
fn open_log_file(path: &std::path::Path) -> anyhow::Result<std::fs::File> {
    use anyhow::Context;
    let what = || {
        format!(
            "cannot open the log file {} (--log-file); check the path and its directory's \
             permissions",
            path.display()
        )
    };
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        options.mode(0o600);
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .with_context(what)?;
        }
    }
    let file = options.open(path).with_context(what)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata().with_context(what)?.permissions().mode();
        if mode & 0o077 != 0 {
            file.set_permissions(std::fs::Permissions::from_mode(mode & 0o700))
                .with_context(what)?;
        }
    }
    Ok(file)
}

fn init_logging(verbose: u8, format: cli::LogFormat, file: Option<std::fs::File>) {
    use std::io::IsTerminal;
    use tracing_subscriber::filter::{EnvFilter, LevelFilter, Targets};
    use tracing_subscriber::prelude::*;
    // the CLI reports outcomes itself; logs are for -v and ROLECALL_LOG
    let default = match verbose {
        0 => "error",
        1 => "info,aws_config=warn,aws_smithy_runtime=warn",
        2 => "debug,aws_config=info,aws_smithy_runtime=info,hyper=info",
        _ => "trace",
    };
    let wanted =
        EnvFilter::try_from_env("ROLECALL_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    // whatever was asked for, these crates log signed requests and STS response bodies (keys and
    // tokens) below these levels: a second filter caps them, so secrets never reach a log
    let caps = rolecall_core::host::LOG_CAPS.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |t, (target, level)| t.with_target(*target, *level),
    );
    let ansi = std::io::stderr().is_terminal();
    // a log file gets the same filters: only where the lines go differs (and they carry the
    // time: a file is read later, while stderr's keeper usually stamps its lines)
    let layer = match (format, file) {
        (cli::LogFormat::Json, Some(file)) => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::sync::Mutex::new(file))
            .boxed(),
        (cli::LogFormat::Text, Some(file)) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .boxed(),
        (cli::LogFormat::Json, None) => tracing_subscriber::fmt::layer()
            .json()
            .with_writer(std::io::stderr)
            .boxed(),
        (cli::LogFormat::Text, None) => tracing_subscriber::fmt::layer()
            .without_time()
            .with_target(false)
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    tracing_subscriber::registry()
        .with(layer.with_filter(wanted).with_filter(caps))
        .init();
}
