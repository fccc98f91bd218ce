//! `rolecall daemon [--once]`: the scheduler and the agent in the foreground.
//!
//! Without `--once`: binds the per-user agent socket (refusing to start when another agent
//! runs), runs the refresh scheduler, and serves the agent until SIGTERM or SIGINT; SIGHUP
//! reloads the config. (On Windows: until Ctrl-C, Ctrl-Break, console close or shutdown; the
//! config file watcher is the only reload there.) Shutdown cancels both tasks and waits for them; a file write in flight
//! runs on the blocking pool, which the runtime lets finish before the process exits, and it
//! is atomic anyway (temp file + rename). With `--once`: renews what is due and exits (cron
//! mode), with `refresh`'s exit codes.

use std::sync::Arc;

use anyhow::Context;
use rolecall_core::config::{Config, Paths};
use rolecall_core::serve::agent::{AgentSocket, serve};
use rolecall_core::serve::protocol::Report;
use rolecall_core::{Engine, NoPrompt};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::cli::DaemonArgs;

pub async fn run(paths: Paths, args: DaemonArgs) -> anyhow::Result<u8> {
    let config = Config::load(&paths.config_file).map_err(rolecall_core::Error::from)?;
    // a daemon cannot prompt: codes come through the agent (`rolecall refresh`, the tray app)
    let engine = Engine::builder(paths.clone())
        .config(Arc::new(config))
        .mfa_prompter(Arc::new(NoPrompt))
        .build()
        .await
        .context("starting the engine")?;
    if args.once {
        let outcomes = engine.run_once().await?;
        return Ok(crate::cmd::refresh::print(&Report::all(&outcomes), &paths));
    }
    let socket = AgentSocket::bind(&paths.runtime_dir)?;
    tracing::info!(
        pid = std::process::id(),
        socket = %socket.path().display(),
        config = %paths.config_file.display(),
        "rolecall daemon started"
    );
    let shutdown = CancellationToken::new();
    let handle = engine.handle();
    let mut tasks = JoinSet::new();
    tasks.spawn(serve(socket, handle.clone(), shutdown.clone()));
    let token = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = rolecall_core::scheduler::run(&engine, token).await {
            tracing::error!(error = %e, "the scheduler stopped");
        }
    });
    let mut signals = Signals::install()?;
    // reloads run beside this loop, not in it: a reload waits for a refresh in flight, and a
    // SIGTERM meanwhile must still be heard. Nor in `tasks`, where a task ending ends the
    // daemon. Dropping this set on the way out aborts a reload still waiting; a file write it
    // already started finishes on the blocking pool (atomically, like every write).
    let mut reloads = JoinSet::new();
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop(name) => { tracing::info!("{name}: shutting down"); break; }
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the config");
                    while reloads.try_join_next().is_some() {}
                    let handle = handle.clone();
                    reloads.spawn(async move {
                        if let Err(e) = handle.reload().await {
                            tracing::error!(
                                error = %e,
                                "config not reloaded; keeping the previous one"
                            );
                        }
                    });
                }
            },
            // a task ending on its own (the scheduler failing) ends the daemon
            Some(_) = tasks.join_next() => { tracing::error!("a daemon task ended"); break; }
        }
    }
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("rolecall daemon stopped");
    Ok(crate::exit::OK)
}

/// What a signal asks the daemon to do.
enum Signal {
    /// Shut down (the signal's name, for the log).
    Stop(&'static str),
    /// Reload the config.
    #[cfg_attr(not(unix), allow(dead_code))]
    Reload,
}

/// The signals the daemon acts on.
#[cfg(unix)]
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

#[cfg(unix)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Signals {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
            hup: signal(SignalKind::hangup()).context("installing the SIGHUP handler")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.term.recv() => Signal::Stop("SIGTERM"),
            _ = self.int.recv() => Signal::Stop("SIGINT"),
            _ = self.hup.recv() => Signal::Reload,
        }
    }
}

/// The console events the daemon acts on.
#[cfg(windows)]
struct Signals {
    c: tokio::signal::windows::CtrlC,
    brk: tokio::signal::windows::CtrlBreak,
    close: tokio::signal::windows::CtrlClose,
    shutdown: tokio::signal::windows::CtrlShutdown,
}

#[cfg(windows)]
impl Signals {
    fn install() -> anyhow::Result<Signals> {
        use tokio::signal::windows::{ctrl_break, ctrl_c, ctrl_close, ctrl_shutdown};
        Ok(Signals {
            c: ctrl_c().context("installing the Ctrl-C handler")?,
            brk: ctrl_break().context("installing the Ctrl-Break handler")?,
            close: ctrl_close().context("installing the console-close handler")?,
            shutdown: ctrl_shutdown().context("installing the shutdown handler")?,
        })
    }

    async fn next(&mut self) -> Signal {
        tokio::select! {
            _ = self.c.recv() => Signal::Stop("Ctrl-C"),
            _ = self.brk.recv() => Signal::Stop("Ctrl-Break"),
            _ = self.close.recv() => Signal::Stop("console closed"),
            _ = self.shutdown.recv() => Signal::Stop("system shutdown"),
        }
    }
}
