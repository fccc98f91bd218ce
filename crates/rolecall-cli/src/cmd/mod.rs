//! One module per subcommand; each turns parsed arguments into engine calls and prints.

pub mod clear;
pub mod completions;
pub mod daemon;
pub mod doctor;
pub mod exec;
pub mod export;
pub mod import;
pub mod keys;
pub mod refresh;
pub mod status;
pub mod use_;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rolecall_core::config::{Config, Paths};
use rolecall_core::serve::client::AgentClient;
use rolecall_core::{Engine, EngineHandle};

use crate::prompt::TerminalPrompt;

/// A connection to the running agent (daemon or tray app), unless `--no-agent` was given or
/// none runs. Then the engine's work is done by that process, which keeps live state.
pub async fn agent(paths: &Paths, no_agent: bool) -> Option<AgentClient> {
    if no_agent {
        return None;
    }
    match AgentClient::connect(&paths.runtime_dir).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the rolecall agent; working in-process");
            None
        }
    }
}

/// Loads the config and builds the engine over the OS keychain.
pub async fn engine(paths: Paths) -> anyhow::Result<EngineHandle> {
    let config = Config::load(&paths.config_file).map_err(rolecall_core::Error::from)?;
    let engine = Engine::builder(paths)
        .config(Arc::new(config))
        .mfa_prompter(Arc::new(TerminalPrompt))
        .build()
        .await
        .context("starting the engine")?;
    Ok(engine.handle())
}

/// `2026-11-22T03:06:26Z`.
pub fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `59m`, `11h 59m`, `40s`: time left, rounded down to what a person reads.
pub fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m", s / 60),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

/// The time left until `t`, or "expired".
pub fn left(t: SystemTime) -> String {
    match t.duration_since(SystemTime::now()) {
        Ok(d) if !d.is_zero() => short(d),
        _ => "expired".into(),
    }
}
