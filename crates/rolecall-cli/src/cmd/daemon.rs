//! `rolecall daemon [--once]`: the scheduler and the agent in the foreground.
//!
//! Without `--once`: binds the per-user agent socket (refusing to start when another agent
//! runs), runs the refresh scheduler, and serves the agent until SIGTERM or SIGINT; SIGHUP
//! reloads the config. (On Windows: until Ctrl-C, Ctrl-Break, console close or shutdown; the
//! config file watcher is the only reload there.) The start-up and the tasks are
//! [`rolecall_core::host`]'s (the tray app runs the same); this module owns only the signals.
//! Shutdown cancels both tasks and waits for them; a file write in flight runs on the blocking
//! pool, which the runtime lets finish before the process exits, and it is atomic anyway (temp
//! file + rename). With `--once`: renews what is due and exits (cron mode), with `refresh`'s
//! exit codes.

use anyhow::Context;
use rolecall_core::config::Paths;
use rolecall_core::host;
use rolecall_core::serve::protocol::Report;

use crate::cli::DaemonArgs;

/// `--install-unit`: the systemd user unit running this very binary (or `--unit-exec`, which a
/// package build names as its installed path), and what to run next.
fn install_unit(paths: &Paths, args: DaemonArgs) -> anyhow::Result<u8> {
    let exe = match args.unit_exec {
        Some(exe) => exe,
        None => std::env::current_exe()
            .and_then(|p| p.canonicalize())
            .context("cannot tell where this rolecall binary is")?,
    };
    let dir = args
        .unit_dir
        .unwrap_or_else(|| host::unit::user_dir(&paths.user_config_dir));
    let path = host::unit::install(&dir, &exe)
        .with_context(|| format!("cannot write the unit into {}", dir.display()))?;
    outln!(
        "wrote {} (ExecStart runs {})",
        path.display(),
        exe.display()
    );
    outln!("next: systemctl --user daemon-reload && systemctl --user enable --now rolecall");
    outln!("      journalctl --user -u rolecall -f   (its log)");
    Ok(0)
}

pub async fn run(paths: Paths, args: DaemonArgs) -> anyhow::Result<u8> {
    if args.install_unit {
        return install_unit(&paths, args);
    }
    if args.once {
        // a daemon cannot prompt: codes come through the agent (`rolecall refresh`, the app)
        let engine = host::engine(paths.clone()).await?;
        let outcomes = engine.run_once().await?;
        return Ok(crate::cmd::refresh::print(&Report::all(&outcomes), &paths));
    }
    // the engine's errors as they are, so that a config error keeps its exit code
    let mut host = host::start(paths).await.map_err(|e| match e {
        host::Error::Engine(e) => anyhow::Error::from(e),
        e => e.into(),
    })?;
    tracing::info!(pid = std::process::id(), "rolecall daemon started");
    let mut signals = Signals::install()?;
    loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Stop(name) => { tracing::info!("{name}: shutting down"); break; }
                Signal::Reload => {
                    tracing::info!("SIGHUP: reloading the config");
                    host.reload();
                }
            },
            // a task ending on its own (the scheduler failing) ends the daemon
            () = host.stopped() => break,
        }
    }
    host.join().await;
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
