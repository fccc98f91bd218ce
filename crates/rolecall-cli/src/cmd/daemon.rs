//! `rolecall daemon [--once]`: the scheduler and the agent in the foreground.
//!
//! Without `--once`: binds the per-user agent socket (refusing to start when another agent
//! runs), runs the refresh scheduler, and serves the agent until SIGTERM or SIGINT; SIGHUP
//! reloads the config. Shutdown cancels both tasks and waits for them; a file write in flight
//! runs on the blocking pool, which the runtime lets finish before the process exits, and it
//! is atomic anyway (temp file + rename). With `--once`: renews what is due and exits (cron
//! mode), with `refresh`'s exit codes.

use std::sync::Arc;

use anyhow::Context;
use rolecall_core::config::{Config, Paths};
use rolecall_core::serve::agent::{AgentSocket, serve};
use rolecall_core::serve::protocol::Report;
use rolecall_core::{Engine, NoPrompt};
use tokio::signal::unix::{SignalKind, signal};
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
        if let Err(e) = engine.run(token).await {
            tracing::error!(error = %e, "the scheduler stopped");
        }
    });
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    loop {
        tokio::select! {
            _ = term.recv() => { tracing::info!("SIGTERM: shutting down"); break; }
            _ = int.recv() => { tracing::info!("SIGINT: shutting down"); break; }
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                if let Err(e) = handle.reload().await {
                    tracing::error!(error = %e, "config not reloaded; keeping the previous one");
                }
            }
            // a task ending on its own (the scheduler failing) ends the daemon
            Some(_) = tasks.join_next() => { tracing::error!("a daemon task ended"); break; }
        }
    }
    shutdown.cancel();
    while tasks.join_next().await.is_some() {}
    tracing::info!("rolecall daemon stopped");
    Ok(crate::exit::OK)
}
