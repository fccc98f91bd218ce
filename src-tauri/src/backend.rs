//! The one seam between the shell and the engine: the app either hosts the engine itself
//! ([`rolecall_core::host`], when no agent runs, so `rolecall status/refresh/use` reach the app)
//! or attaches to the agent that already runs (a `rolecall daemon`, the systemd unit) and does
//! everything through the agent protocol. Both answer the same few calls the tray and the
//! windows make; nothing here knows AWS, the keychain or the credentials file.

use std::path::PathBuf;

use anyhow::Context;
use rolecall_core::config::{Config, Paths};
use rolecall_core::events::Event;
use rolecall_core::serve::client::{AgentClient, AgentEvent};
use rolecall_core::serve::protocol::{Report, ReportKind};
use rolecall_core::{
    EngineHandle, Host, LiveView, ProfileStatus, SettingsChange, State, Targets, host,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_util::sync::CancellationToken;

use crate::windows::MfaPrompt;

/// Where the engine runs.
pub enum Backend {
    /// In this process: the app is the user's agent.
    Hosted {
        /// The hosted engine.
        engine: EngineHandle,
        /// Its tasks; taken on [`Backend::stop`].
        host: tokio::sync::Mutex<Option<Host>>,
        /// Subscribed before the scheduler started, so [`Backend::watch`] misses no event
        /// of the first pass (an `MfaRequired` at start).
        events: std::sync::Mutex<Option<broadcast::Receiver<Event>>>,
        /// The app asks for the engine's MFA codes (its popup): a CLI command with no
        /// terminal waits for the code instead of failing.
        _asker: rolecall_core::CodeAsker,
    },
    /// In another process (a `rolecall daemon`), reached over its socket.
    Attached {
        /// The agent's runtime directory.
        runtime_dir: PathBuf,
        /// The paths the app was started with.
        paths: Paths,
    },
}

impl Backend {
    /// Attaches to the running agent of `paths`, or hosts the engine when none runs. A host
    /// that loses the race for the agent lock to another starting agent attaches to it.
    pub async fn start(paths: Paths) -> anyhow::Result<Backend> {
        if AgentClient::connect(&paths.runtime_dir).await?.is_some() {
            return Ok(Self::attached(paths));
        }
        let engine = host::engine(paths.clone())
            .await
            .context("starting the rolecall engine")?;
        let events = engine.handle().subscribe();
        match host::start_with(engine).await {
            Ok(host) => Ok(Backend::Hosted {
                _asker: host.engine().ask_codes(),
                engine: host.engine().clone(),
                host: tokio::sync::Mutex::new(Some(host)),
                events: std::sync::Mutex::new(Some(events)),
            }),
            Err(e) if e.is_already_running() => Ok(Self::attached(paths)),
            Err(e) => Err(e).context("starting the rolecall engine"),
        }
    }

    fn attached(paths: Paths) -> Backend {
        tracing::info!("a rolecall agent runs; the app attaches to it");
        Backend::Attached {
            runtime_dir: paths.runtime_dir.clone(),
            paths,
        }
    }

    /// Whether the app hosts the engine.
    pub fn is_hosted(&self) -> bool {
        matches!(self, Backend::Hosted { .. })
    }

    async fn client(&self) -> anyhow::Result<AgentClient> {
        let Backend::Attached { runtime_dir, .. } = self else {
            anyhow::bail!("internal error: no agent client for a hosted engine");
        };
        AgentClient::connect(runtime_dir)
            .await?
            .context("the rolecall agent stopped; restart the app")
    }

    /// The hosted engine's live view (`None` attached: the agent's events say when to ask
    /// [`Backend::status`] again).
    pub fn live(&self) -> Option<watch::Receiver<LiveView>> {
        match self {
            Backend::Hosted { engine, .. } => Some(engine.live()),
            Backend::Attached { .. } => None,
        }
    }

    /// Every profile's status as the tray shows it: hosted, the live view with the time left
    /// as of now (no file or keychain read; [`Backend::status`] only until the scheduler has
    /// first looked); attached, the agent's `status`.
    pub async fn profiles(&self) -> anyhow::Result<Vec<ProfileStatus>> {
        if let Backend::Hosted { engine, .. } = self {
            let view = engine.live().borrow().clone();
            if view.at.is_some() {
                let now = std::time::SystemTime::now();
                return Ok(view
                    .profiles
                    .into_iter()
                    .map(|p| ProfileStatus {
                        seconds_left: p.time_left(now).map(|d| d.as_secs()),
                        ..p
                    })
                    .collect());
            }
        }
        self.status().await
    }

    /// Every profile's status, read from the file and the keychain (or the agent's answer).
    pub async fn status(&self) -> anyhow::Result<Vec<ProfileStatus>> {
        match self {
            Backend::Hosted { engine, .. } => Ok(engine.status().await?),
            Backend::Attached { .. } => Ok(self.client().await?.status().await?),
        }
    }

    /// Makes `profile` active (mirrored into `[default]`).
    pub async fn use_profile(&self, profile: &str) -> anyhow::Result<()> {
        match self {
            Backend::Hosted { engine, .. } => {
                engine
                    .use_profile(Some(profile), false, Default::default())
                    .await?;
            }
            Backend::Attached { .. } => {
                let mut c = self.client().await?;
                c.use_profile(Some(profile.to_string()), false, None)
                    .await?;
            }
        }
        Ok(())
    }

    /// Renews every profile that is due; failures are the engine's messages.
    pub async fn refresh_all(&self) -> anyhow::Result<Vec<Report>> {
        match self {
            Backend::Hosted { engine, .. } => {
                let outcomes = engine.refresh(&Targets::All, Default::default()).await?;
                Ok(Report::all(&outcomes))
            }
            Backend::Attached { .. } => {
                Ok(self.client().await?.refresh(vec![], false, None).await?)
            }
        }
    }

    /// Starts `source`'s session with an MFA code; the error of the first profile that failed.
    pub async fn supply_mfa(&self, source: &str, code: String) -> anyhow::Result<()> {
        let reports = match self {
            Backend::Hosted { engine, .. } => Report::all(&engine.supply_mfa(source, code).await?),
            Backend::Attached { .. } => self.client().await?.mfa(source, code).await?,
        };
        match reports.into_iter().find(|r| r.result == ReportKind::Failed) {
            Some(r) => anyhow::bail!(r.message.unwrap_or_else(|| "renewing failed".into())),
            None => Ok(()),
        }
    }

    /// Removes every managed section and forgets cached sessions (`rolecall clear`). Attached,
    /// the agent does it (clearing in this process would open the keychain of this process's
    /// session bus, which need not be the agent's: `make run` attaches to a demo daemon on a
    /// private bus).
    pub async fn clear_all(&self) -> anyhow::Result<()> {
        match self {
            Backend::Hosted { engine, .. } => {
                engine.clear(&Targets::All).await?;
            }
            Backend::Attached { .. } => {
                self.client().await?.clear(Vec::new()).await?;
            }
        }
        Ok(())
    }

    /// Before Quit: when the config says `end_sessions_on_quit`, ends every session as
    /// [`Backend::clear_all`] does. Failures are logged; the app quits anyway.
    pub async fn end_sessions_if_asked(&self) {
        match self.config().await {
            Ok(c) if c.settings.end_sessions_on_quit => {
                tracing::info!("ending all sessions before quitting (end_sessions_on_quit)");
                if let Err(e) = self.clear_all().await {
                    tracing::warn!(error = %format!("{e:#}"), "cannot end the sessions on quit");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(
                error = %format!("{e:#}"),
                "cannot read end_sessions_on_quit; the sessions stay"
            ),
        }
    }

    /// What the tray's "Enter MFA code…" asks for: the source of the first profile that needs
    /// a code, else of the active profile, else of the first; `None` with no profile.
    pub async fn mfa_target(&self) -> anyhow::Result<Option<MfaPrompt>> {
        let status = self.status().await?;
        let pick = status
            .iter()
            .find(|p| p.state == State::NeedsMfa)
            .or_else(|| status.iter().find(|p| p.active))
            .or(status.first());
        let Some(p) = pick else { return Ok(None) };
        let config = Config::load(&self.config_file())?;
        Ok(Some(MfaPrompt {
            source: p.source.clone(),
            mfa_serial: config
                .sources
                .get(&p.source)
                .and_then(|s| s.mfa_serial.clone()),
        }))
    }

    /// The config file as it is now (what the Settings window shows, and what Quit reads
    /// `end_sessions_on_quit` from): attached, the agent's engine is in another process, and
    /// hosted, the engine's own reload may not have happened yet.
    pub async fn config(&self) -> anyhow::Result<Config> {
        let path = self.config_file();
        Ok(on_blocking_pool(move || Config::load(&path)).await??)
    }

    /// Changes `[settings]` in the config file through core (the editor's lock, the CLI's
    /// validation and messages). The engine, hosted or the agent's, reloads the file itself.
    pub async fn change_settings(&self, change: SettingsChange) -> anyhow::Result<Config> {
        let path = self.config_file();
        Ok(on_blocking_pool(move || rolecall_core::change_settings(&path, &change)).await??)
    }

    /// The MFA device of `source`, from the config file (`None` when it has none, or the
    /// file cannot be read: the popup then names the source alone).
    pub fn mfa_serial(&self, source: &str) -> Option<String> {
        let config = match self {
            Backend::Hosted { engine, .. } => engine.config(),
            Backend::Attached { .. } => {
                std::sync::Arc::new(Config::load(&self.config_file()).ok()?)
            }
        };
        config
            .sources
            .get(source)
            .and_then(|s| s.mfa_serial.clone())
    }

    /// The config file in force.
    pub fn config_file(&self) -> PathBuf {
        match self {
            Backend::Hosted { engine, .. } => engine.paths().config_file.clone(),
            Backend::Attached { paths, .. } => paths.config_file.clone(),
        }
    }

    /// Sends `()` on `changed` after every engine event until `stop`; the tray then redraws.
    /// Attached, a lost agent ends the stream (logged).
    pub async fn watch(&self, changed: mpsc::Sender<Option<Event>>, stop: CancellationToken) {
        match self {
            Backend::Hosted { engine, events, .. } => {
                let early = match events.lock() {
                    Ok(mut g) => g.take(),
                    Err(poisoned) => poisoned.into_inner().take(),
                };
                let mut events = early.unwrap_or_else(|| engine.subscribe());
                loop {
                    let event = tokio::select! {
                        () = stop.cancelled() => return,
                        e = events.recv() => e,
                    };
                    let event = match event {
                        Ok(e) => Some(e),
                        // lost some: redraw from the status anyway
                        Err(broadcast::error::RecvError::Lagged(_)) => None,
                        Err(broadcast::error::RecvError::Closed) => return,
                    };
                    if changed.send(event).await.is_err() {
                        return;
                    }
                }
            }
            Backend::Attached { .. } => {
                if let Err(e) = self.watch_agent(&changed, &stop).await {
                    tracing::warn!(error = %format!("{e:#}"), "stopped following the agent");
                }
            }
        }
    }

    async fn watch_agent(
        &self,
        changed: &mpsc::Sender<Option<Event>>,
        stop: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut client = self.client().await?;
        // the app's popup answers the codes the daemon needs, for as long as it listens
        client.subscribe_asking_codes().await?;
        loop {
            let line = tokio::select! {
                () = stop.cancelled() => return Ok(()),
                l = client.next_event() => l?,
            };
            let Some(line) = line else {
                anyhow::bail!("the rolecall agent closed the event stream");
            };
            // an event, a lag or an unknown event: either way, redraw
            let event = match line {
                AgentEvent::Event(e) => Some(e),
                _ => None,
            };
            if changed.send(event).await.is_err() {
                return Ok(());
            }
        }
    }

    /// Stops a hosted engine (its scheduler and agent) and waits for it; attached, nothing.
    pub async fn stop(&self) {
        if let Backend::Hosted { host, .. } = self
            && let Some(host) = host.lock().await.take()
        {
            host.join().await;
        }
    }
}

/// Runs a file operation (the config editor waits on its lock) off the async runtime, bounded.
async fn on_blocking_pool<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> anyhow::Result<T> {
    const BOUND: std::time::Duration = std::time::Duration::from_secs(30);
    match tokio::time::timeout(BOUND, tokio::task::spawn_blocking(f)).await {
        Ok(done) => Ok(done.context("the config file operation failed")?),
        Err(_) => anyhow::bail!(
            "the config file operation took longer than 30 s; another program may hold its \
             lock: try again"
        ),
    }
}
