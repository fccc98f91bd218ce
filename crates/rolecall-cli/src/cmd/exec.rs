//! `rolecall exec PROFILE [--] [CMD…]`: run a command (by default the user's `$SHELL`) with
//! the profile's credentials, and `ROLECALL_PROFILE` naming the profile for prompts.
//!
//! The command gets the caller's umask and core limit back (not Rolecall's private ones; see
//! `hardening.rs`), SIGINT, SIGTERM and SIGHUP sent to `rolecall exec` are passed on to it
//! ([`Signals`]), and its exit status becomes ours: its code, or 128+N when signal N ended it.
//!
//! With `--endpoint`, the command gets a container credentials endpoint served by this process
//! for as long as it runs (`cmd/serve.rs`) instead of static keys.

use anyhow::Context;
use rolecall_core::RefreshOptions;
use rolecall_core::config::Paths;
use rolecall_core::engine::adhoc::{self, Wanted};

use crate::cli::ExecArgs;
use crate::cmd::engine;
use crate::cmd::export::variables;
use crate::cmd::serve::Endpoint;

pub async fn run(paths: Paths, args: ExecArgs) -> anyhow::Result<u8> {
    let engine = engine(paths.clone()).await?;
    let opts = RefreshOptions {
        force: false,
        mfa_code: args.mfa_code,
    };
    let mut words: Vec<String> = args.profile.into_iter().chain(args.command).collect();
    let ask = crate::cmd::export::ask(&engine.config(), &mut words, args.ask, true)?;
    let profile = match &ask.wanted {
        Wanted::Profile(p) => p.clone(),
        _ => String::new(),
    };
    let plain = !profile.is_empty() && ask.duration.is_none() && ask.session_duration.is_none();
    if args.endpoint && !plain {
        return Err(rolecall_core::Error::from(adhoc::Error::Invalid {
            flag: "--endpoint",
            message: "serves a configured profile as configured; leave out --role-arn, \
                      --session, --duration and --session-duration (and ROLECALL_DURATION, \
                      ROLECALL_SESSION_DURATION)"
                .into(),
        })
        .into());
    }
    // with --endpoint too: renews (and asks for an MFA code on the terminal) before the
    // command starts, and gives the region
    let handed = engine.hand_over(&ask, opts).await?;
    let (creds, region, name) = (handed.credentials, handed.region, handed.name);
    // no command: a shell, as aws-vault does, for a session of commands under the profile
    let shell = args
        .shell
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "/bin/sh".into());
    let (program, rest): (std::ffi::OsString, &[String]) = match words.split_first() {
        Some((program, rest)) => (program.into(), rest),
        None => (shell, &[]),
    };
    let mut cmd = tokio::process::Command::new(&program);
    cmd.args(rest)
        // the profile would make SDKs read the file instead of these variables
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE");
    let endpoint = if args.endpoint {
        // no prompt while the command owns the terminal (see cmd/serve.rs)
        let endpoint = Endpoint::ecs(
            paths,
            &profile,
            0,
            std::sync::Arc::new(rolecall_core::NoPrompt),
        )
        .await?;
        endpoint_env(&mut cmd, &endpoint, region.as_deref());
        cmd.env("ROLECALL_PROFILE", &name);
        Some(endpoint)
    } else {
        for (k, v) in variables(&name, &creds, region.as_deref()) {
            cmd.env(k, v);
        }
        None
    };
    drop(creds);
    let code = run_child(cmd, &program).await;
    if let Some(endpoint) = endpoint {
        endpoint.stop().await;
    }
    code
}

/// The child's environment with `--endpoint`: the endpoint's variables, and nothing the SDKs
/// would take before it. Static keys and the other container variables come first in their
/// chains, and so does a `[default]` section of the credentials file (botocore, aws-config):
/// the child gets none of them, and the credentials file is the null device for it.
fn endpoint_env(cmd: &mut tokio::process::Command, endpoint: &Endpoint, region: Option<&str>) {
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_CREDENTIAL_EXPIRATION",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
    ] {
        cmd.env_remove(k);
    }
    cmd.env(
        "AWS_SHARED_CREDENTIALS_FILE",
        if cfg!(windows) { "NUL" } else { "/dev/null" },
    );
    for (k, v) in &endpoint.env {
        cmd.env(k, v);
    }
    if let Some(r) = region {
        cmd.env("AWS_REGION", r).env("AWS_DEFAULT_REGION", r);
    }
}

/// Runs the command to its end, passing signals on, and returns its exit status as ours.
async fn run_child(
    mut cmd: tokio::process::Command,
    program: &std::ffi::OsStr,
) -> anyhow::Result<u8> {
    // before the child exists, so that a signal right after its start is forwarded, not fatal
    let mut signals = Signals::install()?;
    #[cfg(unix)]
    let child = crate::hardening::for_child(|| cmd.spawn());
    #[cfg(not(unix))]
    let child = cmd.spawn();
    let mut child = child.with_context(|| format!("cannot run {program:?}"))?;
    let status = loop {
        tokio::select! {
            status = child.wait() => {
                break status.with_context(|| format!("waiting for {program:?}"))?;
            }
            signal = signals.next() => signals.forward(signal, &child),
        }
    };
    if let Some(code) = status.code() {
        return Ok(u8::try_from(code).unwrap_or(crate::exit::FAILED));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(u8::try_from(128 + sig).unwrap_or(crate::exit::FAILED));
        }
    }
    Ok(crate::exit::FAILED)
}

/// The signals `exec` passes on to its child (SIGINT, SIGTERM, SIGHUP), so that stopping
/// `rolecall exec` stops the command the way it would stop it alone, and the child's own exit
/// status is then ours.
///
/// Forwarding, not `execve`: `exec` stays the child's parent because a later `exec --endpoint`
/// must keep serving credentials while the command runs. A Ctrl-C at the terminal already
/// reaches the child (the terminal signals its whole foreground process group, which the child
/// shares with us): a SIGINT while our group is the terminal's foreground group is therefore
/// not sent again, as sudo does, or the child would see two. SIGTERM and SIGHUP from `kill`
/// are only ours, and always forwarded.
#[cfg(unix)]
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn next(&mut self) -> rustix::process::Signal {
        use rustix::process::Signal;
        tokio::select! {
            _ = self.int.recv() => Signal::INT,
            _ = self.term.recv() => Signal::TERM,
            _ = self.hup.recv() => Signal::HUP,
        }
    }

    fn forward(&self, signal: rustix::process::Signal, child: &tokio::process::Child) {
        use rustix::process::{Pid, Signal, kill_process};
        if signal == Signal::INT && terminal_signals_our_group() {
            tracing::debug!("SIGINT from the terminal: the command has it already");
            return;
        }
        // no id: the child has been reaped, nothing to pass it to
        let Some(pid) = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw)
        else {
            return;
        };
        if let Err(e) = kill_process(pid, signal) {
            tracing::debug!(error = %e, ?signal, "cannot pass the signal on to the command");
        }
    }
}

/// Whether we are in the foreground process group of our controlling terminal, which is where
/// a Ctrl-C's SIGINT goes.
#[cfg(unix)]
fn terminal_signals_our_group() -> bool {
    std::fs::File::open("/dev/tty")
        .ok()
        .and_then(|tty| rustix::termios::tcgetpgrp(&tty).ok())
        .is_some_and(|fg| fg == rustix::process::getpgrp())
}

/// Ctrl-C and Ctrl-Break reach every process of the console, the child included: nothing to
/// forward, only not to die of it before the child ends.
#[cfg(windows)]
struct Signals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
}

#[cfg(windows)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::windows::{ctrl_break, ctrl_c};
        Ok(Signals {
            c: ctrl_c().context("installing the Ctrl-C handler")?,
            brk: ctrl_break().context("installing the Ctrl-Break handler")?,
        })
    }

    async fn next(&mut self) -> &'static str {
        tokio::select! {
            _ = self.c.recv() => "Ctrl-C",
            _ = self.brk.recv() => "Ctrl-Break",
        }
    }

    fn forward(&self, event: &'static str, _child: &tokio::process::Child) {
        tracing::debug!("{event}: the command has it already");
    }
}
