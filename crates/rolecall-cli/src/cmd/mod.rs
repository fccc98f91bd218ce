//! One module per subcommand; each turns parsed arguments into engine calls and prints.

pub mod clear;
pub mod completions;
pub mod daemon;
pub mod doctor;
pub mod exec;
pub mod export;
pub mod import;
pub mod keys;
pub mod man;
pub mod refresh;
pub mod roles;
pub mod serve;
pub mod setup;
pub mod status;
pub mod use_;
pub mod watch;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rolecall_core::config::{Config, Paths};
use rolecall_core::serve::client::AgentClient;
use rolecall_core::{Engine, EngineHandle, MfaPrompter};

use crate::prompt::TerminalPrompt;

/// A connection to the running agent (daemon or tray app) that works on our config file,
/// unless `--no-agent` was given or none runs. Then the engine's work is done by that
/// process, which keeps live state. An agent on another config or credentials file (see
/// [`rolecall_core::serve::client::same_files`]) would act on the wrong profiles or file: then
/// the work is done in-process, and stderr says why.
///
/// An agent that does not answer its ping within seconds (stopped, hung) is reported on stderr
/// and the work is done in-process too, for every command: reading status is harmless, and a
/// refresh or `use` is safe beside the agent because every write of the credentials file is
/// done under the file's own lock (a stopped agent holding it makes us wait, never interleave)
/// and the keychain's cached sessions are shared by design. The agent, once resumed, re-reads
/// the file on its next wake.
pub async fn agent(paths: &Paths, no_agent: bool) -> Option<AgentClient> {
    if no_agent {
        return None;
    }
    let mut client = running_agent(paths).await?;
    match client.ping().await {
        Ok(pong) => match rolecall_core::serve::client::same_files(&pong, paths) {
            Ok(()) => Some(client),
            Err(other) => {
                eprintln!("rolecall: note: {other}; working in-process");
                None
            }
        },
        // stopped or hung: the user must hear why this is slower than usual, and what is wrong
        Err(e @ rolecall_core::serve::client::Error::Timeout { .. }) => {
            eprintln!("rolecall: warning: {e}; working in-process");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "the rolecall agent did not answer; working in-process");
            None
        }
    }
}

/// A connection to the running agent, whatever config it uses (for `watch`, and for
/// `clear`'s note that an agent will write its profiles again); `None` when none runs.
pub async fn running_agent(paths: &Paths) -> Option<AgentClient> {
    match AgentClient::connect(&paths.runtime_dir).await {
        Ok(c) => c,
        // someone else's socket where ours should be: the user must hear of it
        Err(
            e @ (rolecall_core::serve::client::Error::Untrusted(_)
            | rolecall_core::serve::client::Error::Timeout { .. }),
        ) => {
            eprintln!("rolecall: warning: {e}; working without the agent");
            None
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot reach the rolecall agent; working in-process");
            None
        }
    }
}

/// Loads the config and builds the engine over the OS keychain, asking for MFA codes on the
/// terminal when stdin is one.
pub async fn engine(paths: Paths) -> anyhow::Result<EngineHandle> {
    engine_with(paths, Arc::new(TerminalPrompt)).await
}

/// [`engine`], asking for MFA codes through `prompter`.
pub async fn engine_with(
    paths: Paths,
    prompter: Arc<dyn MfaPrompter>,
) -> anyhow::Result<EngineHandle> {
    let config = Config::load(&paths.config_file).map_err(rolecall_core::Error::from)?;
    let engine = Engine::builder(paths)
        .config(Arc::new(config))
        .mfa_prompter(prompter)
        .build()
        .await
        .context("starting the engine")?;
    Ok(engine.handle())
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
