//! The engine: one object that the CLI, the daemon and the tray app drive.
//!
//! [`Engine::builder`] wires config, keychain, STS and the credentials file; [`EngineHandle`]
//! is cheap to clone and is what callers keep. Data flows one way: config → sources (keychain
//! key → MFA session → role) → sinks (managed sections of the credentials file), and every
//! change is announced on the event stream ([`EngineHandle::subscribe`]).
//!
//! The engine never prints, prompts or reads a TTY: MFA codes come through [`MfaPrompter`]
//! or [`RefreshOptions::mfa_code`]. Blocking work (keychain, file writes) runs on tokio's
//! blocking pool under a timeout; no lock is held across an `.await` except the refresh mutex,
//! which exists precisely to serialise refreshes in one process (the file lock serialises
//! processes).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use crate::config::{self, Config, ConfigEditor, Paths, Upstream};
use crate::credentials::Credentials;
use crate::credfile::{self, CredentialsFile, Edit, Section};
use crate::error::Error;
use crate::events::Event;
use crate::sts::{self, Sts, StsOptions};
use crate::vault::{SecretStore, Vault};

mod refresh;
mod setup;
pub mod sources;

use refresh::Run;
pub use setup::KeyImport;

/// Name of the section that mirrors the active profile.
pub const DEFAULT_SECTION: &str = "default";
const KEYCHAIN_TIMEOUT: Duration = Duration::from_secs(15);

/// Asks the user for an MFA code (a terminal prompt, the app's window).
pub trait MfaPrompter: Send + Sync + 'static {
    /// The current code of `mfa_serial` for `source`, or `None` when the user can't be asked.
    fn mfa_code<'a>(
        &'a self,
        source: &'a str,
        mfa_serial: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>>;
}

/// A prompter that never has a code (servers, scripts).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoPrompt;

impl MfaPrompter for NoPrompt {
    fn mfa_code<'a>(
        &'a self,
        _: &'a str,
        _: &'a str,
    ) -> Pin<Box<dyn Future<Output = Option<String>> + Send + 'a>> {
        Box::pin(async { None })
    }
}

/// The wall clock, injectable so that expiry logic can be tested.
pub trait Clock: Send + Sync + 'static {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Builds an [`Engine`].
pub struct EngineBuilder {
    paths: Paths,
    config: Arc<Config>,
    store: Option<Arc<dyn SecretStore>>,
    mfa: Arc<dyn MfaPrompter>,
    clock: Arc<dyn Clock>,
}

impl EngineBuilder {
    /// The validated configuration.
    pub fn config(mut self, config: Arc<Config>) -> Self {
        self.config = config;
        self
    }

    /// The secret store (the OS keychain, or an in-memory store in tests and the demo).
    pub fn secret_store(mut self, store: Arc<dyn SecretStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// How to ask for MFA codes.
    pub fn mfa_prompter(mut self, mfa: Arc<dyn MfaPrompter>) -> Self {
        self.mfa = mfa;
        self
    }

    /// The wall clock.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Loads the STS configuration and returns the engine.
    pub async fn build(self) -> Result<Engine, Error> {
        let s = &self.config.settings;
        let sts = Sts::new(StsOptions {
            attempt_timeout: s.sts_timeout,
            max_attempts: s.sts_max_attempts,
            ..StsOptions::default()
        })
        .await;
        // the OS keychain is opened on first use: a server whose sources need no keychain
        // never touches it
        let vault = tokio::sync::OnceCell::new_with(self.store.map(Vault::new));
        let (events, _) = broadcast::channel(256);
        Ok(Engine {
            handle: EngineHandle {
                inner: Arc::new(Inner {
                    paths: self.paths,
                    config: RwLock::new(self.config),
                    vault,
                    sts,
                    events,
                    mfa: self.mfa,
                    clock: self.clock,
                    refresh_lock: tokio::sync::Mutex::new(()),
                    sources: sources::Sources::default(),
                    sched: crate::scheduler::Shared::new(),
                }),
            },
        })
    }
}

/// The engine. Runs the refresh scheduler ([`Engine::run`], in [`crate::scheduler`]); hand
/// out [`EngineHandle`]s to callers.
pub struct Engine {
    handle: EngineHandle,
}

impl Engine {
    /// Starts building an engine over `paths`.
    pub fn builder(paths: Paths) -> EngineBuilder {
        EngineBuilder {
            paths,
            config: Arc::new(Config::default()),
            store: None,
            mfa: Arc::new(NoPrompt),
            clock: Arc::new(SystemClock),
        }
    }

    /// A cloneable handle to the engine.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }
}

struct Inner {
    paths: Paths,
    config: RwLock<Arc<Config>>,
    /// Opened lazily (see [`EngineHandle::vault`]).
    vault: tokio::sync::OnceCell<Vault>,
    sts: Sts,
    events: broadcast::Sender<Event>,
    mfa: Arc<dyn MfaPrompter>,
    clock: Arc<dyn Clock>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// Source state that outlives a refresh pass (IMDS client, in-memory sessions).
    sources: sources::Sources,
    /// The scheduler's live per-profile state and its wake-up (see [`crate::scheduler`]).
    sched: crate::scheduler::Shared,
}

/// A cheap, cloneable handle: every operation of the engine.
#[derive(Clone)]
pub struct EngineHandle {
    inner: Arc<Inner>,
}

/// Which profiles an operation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// Every configured profile.
    All,
    /// These profiles.
    Some(Vec<String>),
}

/// How to refresh.
#[derive(Debug, Clone, Default)]
pub struct RefreshOptions {
    /// Renew even what is still fresh.
    pub force: bool,
    /// An MFA code to use for the first session that needs one.
    pub mfa_code: Option<String>,
}

/// What a refresh did for one profile.
#[derive(Debug)]
pub enum Outcome {
    /// New credentials were written.
    Refreshed {
        /// Their expiry.
        expiration: Option<SystemTime>,
    },
    /// The credentials in the file were fresh enough.
    StillValid {
        /// Their expiry.
        expiration: Option<SystemTime>,
    },
    /// Renewing failed; the previous section (if any) is untouched.
    Failed(Error),
}

/// A profile's state, as `rolecall status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// More than `refresh_before` left.
    Fresh,
    /// Less than `refresh_before` left.
    Expiring,
    /// Past its expiry.
    Expired,
    /// Not in the credentials file yet.
    Missing,
    /// Cannot be renewed until an MFA code is given.
    NeedsMfa,
    /// Something is wrong (see the message).
    Error,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Fresh => "fresh",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Missing => "missing",
            State::NeedsMfa => "needs MFA",
            State::Error => "error",
        })
    }
}

/// One profile's status.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProfileStatus {
    /// The profile.
    pub profile: String,
    /// The source at the root of its chain.
    pub source: String,
    /// What it assumes from (a source or a profile).
    pub upstream: String,
    /// Its role, if any.
    pub role_arn: Option<String>,
    /// Whether it is mirrored into `[default]`.
    pub active: bool,
    /// When the credentials in the file expire.
    #[serde(with = "crate::timestamp::option")]
    pub expiration: Option<SystemTime>,
    /// Seconds left.
    pub seconds_left: Option<u64>,
    /// Its state.
    pub state: State,
    /// Why it is in the error state (or, under the scheduler, why the last renewal failed).
    pub message: Option<String>,
    /// When the scheduler will next try to renew it (only from a running scheduler).
    #[serde(default, with = "crate::timestamp::option")]
    pub next_renewal: Option<SystemTime>,
}

/// A stored source, as `rolecall keys list` shows it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SourceInfo {
    /// The source.
    pub name: String,
    /// Where its credentials come from.
    pub kind: config::SourceKind,
    /// The key id's last 4 characters, when a key is stored.
    pub key_id: Option<String>,
    /// Its MFA device.
    pub mfa_serial: Option<String>,
    /// When its cached session ends, if there is one.
    #[serde(with = "crate::timestamp::option")]
    pub session_expiration: Option<SystemTime>,
}

impl EngineHandle {
    /// Subscribes to the event stream.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.inner.events.subscribe()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<Config> {
        match self.inner.config.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The paths the engine uses.
    pub fn paths(&self) -> &Paths {
        &self.inner.paths
    }

    pub(crate) fn set_config(&self, config: Config) {
        let mut guard = match self.inner.config.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(config);
    }

    /// The credentials file in force.
    pub fn credentials_file(&self) -> CredentialsFile {
        let config = self.config();
        CredentialsFile::new(self.inner.paths.credentials_file(&config.settings))
            .with_lock_dir(self.inner.paths.runtime_dir.clone())
    }

    pub(crate) fn emit(&self, event: Event) {
        // one MfaRequired per episode, however many profiles or passes run into it
        if !self.inner.sched.admit(&event) {
            tracing::debug!(?event, "repeat event not sent");
            return;
        }
        if let Event::SessionStarted { source, .. } = &event {
            self.inner.sched.session_started(&self.config(), source);
        }
        tracing::debug!(?event, "event");
        // no subscriber is fine
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.inner.clock.now()
    }

    /// The scheduler's shared state.
    pub(crate) fn sched(&self) -> &crate::scheduler::Shared {
        &self.inner.sched
    }

    /// Serialises with refresh passes (held while a pass or a reload edits the file).
    pub(crate) async fn serial(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.refresh_lock.lock().await
    }

    fn config_path(&self) -> String {
        self.inner.paths.config_file.display().to_string()
    }

    fn resolve(&self, config: &Config, targets: &Targets) -> Result<Vec<String>, Error> {
        match targets {
            Targets::All => Ok(config
                .ordered_profiles()
                .into_iter()
                .map(str::to_string)
                .collect()),
            Targets::Some(names) => {
                for n in names {
                    if !config.profiles.contains_key(n) {
                        return Err(Error::UnknownProfile {
                            name: n.clone(),
                            config: self.config_path(),
                            known: known(config.profiles.keys()),
                        });
                    }
                }
                Ok(names.clone())
            }
        }
    }

    /// The vault, opening the OS keychain on first use (off the async threads: opening takes
    /// two D-Bus round trips).
    async fn vault(&self) -> Result<Vault, Error> {
        let v = self
            .inner
            .vault
            .get_or_try_init(|| async {
                let open = tokio::task::spawn_blocking(crate::vault::KeychainStore::open);
                match tokio::time::timeout(KEYCHAIN_TIMEOUT, open).await {
                    Ok(Ok(Ok(store))) => Ok(Vault::new(Arc::new(store))),
                    Ok(Ok(Err(e))) => Err(Error::Vault(e)),
                    Ok(Err(join)) => Err(Error::Internal(format!("keychain task failed: {join}"))),
                    Err(_) => Err(Error::KeychainTimeout {
                        secs: KEYCHAIN_TIMEOUT.as_secs(),
                    }),
                }
            })
            .await?;
        Ok(v.clone())
    }

    async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> Result<T, crate::vault::Error> + Send + 'static,
    {
        let vault = self.vault().await?;
        let task = tokio::task::spawn_blocking(move || f(&vault));
        match tokio::time::timeout(KEYCHAIN_TIMEOUT, task).await {
            Ok(Ok(r)) => r.map_err(Error::Vault),
            Ok(Err(join)) => Err(Error::Internal(format!("keychain task failed: {join}"))),
            Err(_) => Err(Error::KeychainTimeout {
                secs: KEYCHAIN_TIMEOUT.as_secs(),
            }),
        }
    }

    async fn file_op<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialsFile) -> Result<T, credfile::Error> + Send + 'static,
    {
        let file = self.credentials_file();
        tokio::task::spawn_blocking(move || f(&file))
            .await
            .map_err(|e| Error::Internal(format!("file task failed: {e}")))?
            .map_err(Error::Credfile)
    }

    /// Renews the given profiles (and what they depend on) that are due, or all of them with
    /// `force`. Keeps going past failures; each profile gets its own [`Outcome`]. All new
    /// sections are written in one atomic update of the credentials file. Independent
    /// profiles are renewed concurrently (`settings.max_concurrent_refreshes`); a running
    /// scheduler is told, so it re-plans around what was renewed.
    pub async fn refresh(
        &self,
        targets: &Targets,
        opts: RefreshOptions,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        let all = self.refresh_pass(targets, opts).await?;
        self.inner.sched.wake();
        Ok(all
            .into_iter()
            .filter(|(_, _, wanted)| *wanted)
            .map(|(name, outcome, _)| (name, outcome))
            .collect())
    }

    /// [`EngineHandle::refresh`], returning the outcome of every profile of the pass (what the
    /// targets assume from too), each marked with whether it was a target.
    pub(crate) async fn refresh_pass(
        &self,
        targets: &Targets,
        opts: RefreshOptions,
    ) -> Result<Vec<(String, Outcome, bool)>, Error> {
        let _serial = self.inner.refresh_lock.lock().await;
        let config = self.config();
        let wanted = self.resolve(&config, targets)?;
        if let Some(code) = &opts.mfa_code {
            check_mfa_code(code)?;
        }
        let text = self.file_op(|f| f.read()).await?;
        let now = self.now();
        let mut run = Run {
            handle: self,
            config: &config,
            text: &text,
            now,
            opts,
            sessions: BTreeMap::new(),
            fresh: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            failed: BTreeMap::new(),
            started: BTreeSet::new(),
        };
        // profiles the targets assume from come first (chains), each done once
        let mut order: Vec<String> = Vec::new();
        for name in config.ordered_profiles() {
            let needed = wanted
                .iter()
                .any(|w| w == name || chain_of(&config, w).contains(&name));
            if needed {
                order.push(name.to_string());
            }
        }
        let wanted: BTreeSet<String> = wanted.into_iter().collect();
        let limit = config.settings.max_concurrent_refreshes;
        let mut outcomes = run.pass(&order, &wanted, limit).await;
        let mut edits: Vec<(&str, Edit)> = Vec::new();
        let active = config.settings.active.as_deref();
        for (name, creds) in &run.fresh {
            if !creds.written {
                continue;
            }
            let region = config.region(name).map(str::to_string);
            edits.push((
                name,
                upsert(name, &creds.credentials, region.clone(), false),
            ));
            if active == Some(name.as_str()) {
                edits.push((
                    name,
                    upsert(DEFAULT_SECTION, &creds.credentials, region, false),
                ));
            }
        }
        let edits = self.writable(&text, edits, &mut outcomes);
        if !edits.is_empty() {
            let result = self.file_op(move |f| f.apply(&edits)).await;
            if let Err(e) = result {
                // nothing was written: report every renewed profile as failed
                let msg = e.to_string();
                for (_, o) in outcomes.iter_mut() {
                    if matches!(o, Outcome::Refreshed { .. }) {
                        *o = Outcome::Failed(Error::Internal(msg.clone()));
                    }
                }
                return Err(e);
            }
        }
        // issue 15: each written profile's region as a managed [profile NAME] of ~/.aws/config
        credfile::update_regions(
            &self.inner.paths,
            run.fresh
                .iter()
                .filter(|(_, c)| c.written)
                .map(|(n, _)| (n.clone(), config.region(n).map(str::to_string)))
                .collect(),
        )
        .await;
        // every profile of the pass: one renewed only as a dependency was written too
        for (name, o) in &outcomes {
            match o {
                Outcome::Refreshed { expiration } => self.emit(Event::CredentialsRefreshed {
                    profile: name.clone(),
                    expiration: *expiration,
                }),
                Outcome::Failed(e) => self.emit(Event::RefreshFailed {
                    profile: name.clone(),
                    message: e.to_string(),
                    needs_user: e.needs_user(),
                }),
                Outcome::StillValid { .. } => {}
            }
        }
        Ok(outcomes
            .into_iter()
            .map(|(name, o)| {
                let w = wanted.contains(&name);
                (name, o, w)
            })
            .collect())
    }

    /// The edits that `text` can take. A section the file cannot take (the user's own section
    /// of that name, a duplicated one) fails its profile alone, with the file's reason, instead
    /// of the whole pass: the others are written. For `[default]` of the active profile, the
    /// profile's own section is still written. The batch is tried first, so the per-section
    /// checks only run when something is wrong.
    fn writable(
        &self,
        text: &str,
        edits: Vec<(&str, Edit)>,
        outcomes: &mut [(String, Outcome)],
    ) -> Vec<Edit> {
        let file = self.credentials_file();
        let batch: Vec<Edit> = edits.iter().map(|(_, e)| e.clone()).collect();
        if credfile::splice(text, &batch, file.path()).is_ok() {
            return batch;
        }
        let mut ok = Vec::with_capacity(edits.len());
        for (profile, edit) in edits {
            match credfile::splice(text, std::slice::from_ref(&edit), file.path()) {
                Ok(_) => ok.push(edit),
                Err(e) => {
                    tracing::warn!(profile, error = %e, "a section of this profile cannot be written");
                    if let Some((_, o)) = outcomes.iter_mut().find(|(n, _)| n == profile) {
                        *o = Outcome::Failed(Error::Credfile(e));
                    }
                }
            }
        }
        ok
    }

    /// Fresh credentials of one profile (renewed first if due), for `exec`, `export` and
    /// `credential_process`. Returns them with the profile's region.
    pub async fn credentials(
        &self,
        profile: &str,
        opts: RefreshOptions,
    ) -> Result<(Credentials, Option<String>), Error> {
        let mut outcomes = self
            .refresh(&Targets::Some(vec![profile.to_string()]), opts)
            .await?;
        if let Some((_, Outcome::Failed(e))) = outcomes.pop() {
            // Only its mirror into a `[default]` the file refuses (the user's, or changed since
            // rolecall wrote it) failed: its own section was written, and `use --adopt` must
            // get past this to hand `[default]` back.
            let default_refused = matches!(
                &e,
                Error::Credfile(
                    credfile::Error::NotOwned { name, .. } | credfile::Error::Changed { name, .. }
                ) if name == DEFAULT_SECTION
            );
            if !default_refused {
                return Err(e);
            }
        }
        let text = self.file_op(|f| f.read()).await?;
        let region = self.config().region(profile).map(str::to_string);
        match credfile::managed_credentials(&text, profile) {
            Some((creds, _)) => Ok((creds, region)),
            None => Err(Error::Internal(format!(
                "profile {profile} was renewed but its section is missing from the credentials file"
            ))),
        }
    }

    /// Every profile's state, read from the credentials file (and the keychain for profiles
    /// that would need a new MFA session).
    pub async fn status(&self) -> Result<Vec<ProfileStatus>, Error> {
        let config = self.config();
        let text = self.file_op(|f| f.read()).await?;
        let inventory = credfile::inspect(&text);
        let now = self.now();
        let refresh_before = config.settings.refresh_before;
        let mut session_ok: BTreeMap<String, Result<bool, String>> = BTreeMap::new();
        let mut out = Vec::new();
        for name in config.ordered_profiles() {
            let Some(p) = config.profiles.get(name) else {
                continue;
            };
            let source = config.root_source(name).unwrap_or_default().to_string();
            let info = inventory
                .sections
                .iter()
                .find(|s| s.name == name && s.managed);
            let expiration = info.and_then(|i| i.expiration);
            let left = expiration.map(|e| e.duration_since(now).unwrap_or_default());
            let mut state = match (info, left) {
                (None, _) => State::Missing,
                (Some(_), None) => State::Fresh,
                (Some(_), Some(l)) if l.is_zero() => State::Expired,
                (Some(_), Some(l)) if l < refresh_before => State::Expiring,
                _ => State::Fresh,
            };
            let mut message = None;
            let mfa = config
                .sources
                .get(&source)
                .and_then(|s| s.mfa_serial.clone());
            if state != State::Fresh && mfa.is_some() {
                if !session_ok.contains_key(&source) {
                    // only keychain sources read the keychain here
                    let ok = sources::usable_without_mfa_until(
                        self,
                        &config,
                        &source,
                        now + refresh_before,
                    )
                    .await
                    .map_err(|e| e.to_string());
                    session_ok.insert(source.clone(), ok);
                }
                match session_ok.get(&source) {
                    Some(Ok(false)) => state = State::NeedsMfa,
                    Some(Err(e)) => {
                        state = State::Error;
                        message = Some(e.clone());
                    }
                    _ => {}
                }
            }
            // a running scheduler knows more: a parked error, a wait for a code, its plan
            let live = self.inner.sched.live(name);
            if let Some(l) = &live {
                if let Some(s) = l.state {
                    state = s;
                }
                if l.message.is_some() {
                    message = l.message.clone();
                }
            }
            out.push(ProfileStatus {
                profile: name.to_string(),
                upstream: config
                    .upstream(name)
                    .map(|u| u.to_string())
                    .unwrap_or_default(),
                source,
                role_arn: p.role_arn.clone(),
                active: config.settings.active.as_deref() == Some(name),
                expiration,
                seconds_left: left.map(|d| d.as_secs()),
                state,
                message,
                next_renewal: live.and_then(|l| l.next_renewal),
            });
        }
        Ok(out)
    }

    /// Makes `profile` the active one (mirrored into `[default]`), or none. `adopt` lets
    /// Rolecall take over a `[default]` section it did not write.
    pub async fn use_profile(
        &self,
        profile: Option<&str>,
        adopt: bool,
        opts: RefreshOptions,
    ) -> Result<Option<SystemTime>, Error> {
        let config = self.config();
        if let Some(name) = profile
            && !config.profiles.contains_key(name)
        {
            return Err(Error::UnknownProfile {
                name: name.to_string(),
                config: self.config_path(),
                known: known(config.profiles.keys()),
            });
        }
        let fresh = match profile {
            Some(name) => Some((name, self.credentials(name, opts).await?)),
            None => None,
        };
        // from here until the config names the new active profile, no refresh pass may run: one
        // that started with the old `active` would write that profile into `[default]` again
        let _serial = self.inner.refresh_lock.lock().await;
        let expiration = match fresh {
            Some((name, (creds, region))) => {
                // a pass may have renewed the profile between `credentials` and the lock
                let text = self.file_op(|f| f.read()).await?;
                let creds = match credfile::managed_credentials(&text, name) {
                    Some((newer, _)) if newer.expiration > creds.expiration => newer,
                    _ => creds,
                };
                let exp = creds.expiration;
                let edit = upsert(DEFAULT_SECTION, &creds, region, adopt);
                self.file_op(move |f| f.apply(&[edit])).await?;
                exp
            }
            None => {
                let text = self.file_op(|f| f.read()).await?;
                // a [default] changed since rolecall wrote it is tried too, so the removal is
                // refused with the file's reason instead of passing in silence
                let managed = credfile::inspect(&text)
                    .sections
                    .iter()
                    .any(|s| s.name == DEFAULT_SECTION && (s.managed || s.changed));
                if managed {
                    let edit = Edit::Remove {
                        name: DEFAULT_SECTION.to_string(),
                    };
                    self.file_op(move |f| f.apply(&[edit])).await?;
                }
                None
            }
        };
        let path = self.inner.paths.config_file.clone();
        let active = profile.map(str::to_string);
        let new_config = tokio::task::spawn_blocking(move || -> Result<Config, config::Error> {
            let mut ed = ConfigEditor::open(&path)?;
            ed.set_setting("active", active.as_deref());
            ed.save()
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.set_config(new_config);
        self.emit(Event::ActiveChanged {
            profile: profile.map(str::to_string),
        });
        Ok(expiration)
    }

    /// Removes managed sections of `targets` (all of them, `[default]` included, and every
    /// cached session with [`Targets::All`]). Long-lived keys stay.
    pub async fn clear(&self, targets: &Targets) -> Result<Vec<String>, Error> {
        let _serial = self.inner.refresh_lock.lock().await;
        let config = self.config();
        let text = self.file_op(|f| f.read()).await?;
        let inventory = credfile::inspect(&text);
        let managed: Vec<String> = inventory
            .sections
            .iter()
            .filter(|s| s.managed)
            .map(|s| s.name.clone())
            .collect();
        // sections changed since rolecall wrote them are the user's: never removed, said so
        let changed: Vec<String> = inventory
            .sections
            .iter()
            .filter(|s| s.changed)
            .map(|s| s.name.clone())
            .collect();
        let refused: Option<String>;
        let names: Vec<String> = match targets {
            Targets::All => {
                refused = changed.first().cloned();
                managed.clone()
            }
            Targets::Some(_) => {
                let mut v = self.resolve(&config, targets)?;
                if let Some(a) = &config.settings.active
                    && v.contains(a)
                {
                    v.push(DEFAULT_SECTION.to_string());
                }
                refused = v.iter().find(|n| changed.contains(n)).cloned();
                v.retain(|n| managed.contains(n));
                v
            }
        };
        let edits: Vec<Edit> = names
            .iter()
            .map(|n| Edit::Remove { name: n.clone() })
            .collect();
        if !edits.is_empty() {
            self.file_op(move |f| f.apply(&edits)).await?;
        }
        // issue 15: and their region sections of ~/.aws/config
        credfile::update_regions(
            &self.inner.paths,
            names.iter().map(|n| (n.clone(), None)).collect(),
        )
        .await;
        if *targets == Targets::All {
            sources::forget_all_sessions(self, &config).await?;
        }
        self.emit(Event::Cleared {
            profiles: names.clone(),
        });
        if let Some(name) = refused {
            return Err(Error::Credfile(credfile::Error::Changed {
                name,
                path: self.credentials_file().path().to_path_buf(),
            }));
        }
        Ok(names)
    }

    /// Stores a long-lived key for `source` in the keychain and adds `[sources.NAME]` to the
    /// config (keeping an existing entry's settings).
    pub async fn add_key(
        &self,
        source: &str,
        key: Credentials,
        mfa_serial: Option<String>,
    ) -> Result<(), Error> {
        config::check_name(source).map_err(|message| {
            Error::Config(config::Error::Invalid {
                path: self.inner.paths.config_file.clone(),
                line: None,
                key: format!("sources.{source}"),
                message,
            })
        })?;
        self.ensure_keychain_source(source)?;
        if let Some(serial) = &mfa_serial {
            config::check_mfa_serial(serial).map_err(|message| {
                Error::Config(config::Error::Invalid {
                    path: self.inner.paths.config_file.clone(),
                    line: None,
                    key: format!("sources.{source}.mfa_serial"),
                    message,
                })
            })?;
        }
        let src = source.to_string();
        self.blocking(move |v| {
            v.set_source_key(&src, &key)?;
            // a new key invalidates the session made with the old one
            v.delete_session(&src).map(|_| ())
        })
        .await?;
        let path = self.inner.paths.config_file.clone();
        let name = source.to_string();
        let new_config = tokio::task::spawn_blocking(move || -> Result<Config, config::Error> {
            let mut ed = ConfigEditor::open(&path)?;
            let mut values = Vec::new();
            if mfa_serial.is_some() || !ed.has_entry("sources", &name) {
                values.push(("mfa_serial", mfa_serial));
            }
            ed.set_entry("sources", &name, &values);
            ed.save()
        })
        .await
        .map_err(|e| Error::Internal(e.to_string()))??;
        self.set_config(new_config);
        Ok(())
    }

    /// Reads a source's stored key (used by `keys import --scrub` to check the copy).
    pub async fn source_key(&self, source: &str) -> Result<Option<Credentials>, Error> {
        let s = source.to_string();
        self.blocking(move |v| v.source_key(&s)).await
    }

    /// Lists configured sources with what the keychain holds for them.
    pub async fn list_keys(&self) -> Result<Vec<SourceInfo>, Error> {
        let config = self.config();
        let mut out = Vec::new();
        for (name, src) in &config.sources {
            // only keychain sources have anything in the keychain
            let (key_id, session_expiration) = if src.kind == config::SourceKind::Keychain {
                let n = name.clone();
                let (key, session) = self
                    .blocking(move |v| Ok((v.source_key(&n)?, v.session(&n)?)))
                    .await?;
                (
                    key.map(|k| crate::credentials::KeyId(&k.access_key_id).to_string()),
                    session.and_then(|s| s.credentials.expiration),
                )
            } else {
                (None, sources::memory_session_expiration(self, name))
            };
            out.push(SourceInfo {
                name: name.clone(),
                kind: src.kind,
                key_id,
                mfa_serial: src.mfa_serial.clone(),
                session_expiration,
            });
        }
        Ok(out)
    }

    /// Deletes a source's key and session from the keychain and its config entry. Refuses
    /// while profiles use it.
    pub async fn remove_key(&self, source: &str) -> Result<bool, Error> {
        let config = self.config();
        let users: Vec<&String> = config
            .profiles
            .iter()
            .filter(|(_, p)| p.source == source)
            .map(|(n, _)| n)
            .collect();
        if !users.is_empty() {
            return Err(Error::Config(config::Error::Invalid {
                path: self.inner.paths.config_file.clone(),
                line: None,
                key: format!("sources.{source}"),
                message: format!(
                    "still used by profile(s) {}; remove or re-point them first",
                    known(users.into_iter())
                ),
            }));
        }
        let s = source.to_string();
        let in_keychain = config
            .sources
            .get(source)
            .is_none_or(|src| src.kind == config::SourceKind::Keychain);
        // a source of another kind has nothing in the keychain (which may not even exist)
        let existed = in_keychain
            && self
                .blocking(move |v| {
                    let a = v.delete_source_key(&s)?;
                    let b = v.delete_session(&s)?;
                    Ok(a || b)
                })
                .await?;
        let path = self.inner.paths.config_file.clone();
        let name = source.to_string();
        let (had, new_config) =
            tokio::task::spawn_blocking(move || -> Result<(bool, Config), config::Error> {
                let mut ed = ConfigEditor::open(&path)?;
                let had = ed.remove_entry("sources", &name);
                Ok((had, ed.save()?))
            })
            .await
            .map_err(|e| Error::Internal(e.to_string()))??;
        self.set_config(new_config);
        Ok(existed || had)
    }

    /// GetCallerIdentity with a profile's fresh credentials.
    pub async fn identity(&self, profile: &str) -> Result<sts::Identity, Error> {
        let (creds, region) = self.credentials(profile, RefreshOptions::default()).await?;
        self.inner
            .sts
            .caller_identity(&creds, region.as_deref())
            .await
            .map_err(|error| Error::Sts {
                profile: profile.to_string(),
                error,
            })
    }
}

fn known<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

fn chain_of<'a>(config: &'a Config, profile: &'a str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut name = profile;
    while let Some(Upstream::Profile(up)) = config.upstream(name) {
        if out.contains(&up) {
            break;
        }
        out.push(up);
        name = up;
    }
    out
}

pub(crate) fn check_mfa_code(code: &str) -> Result<(), Error> {
    if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(Error::BadMfaCode(code.chars().count()))
    }
}

pub(crate) fn upsert(name: &str, creds: &Credentials, region: Option<String>, adopt: bool) -> Edit {
    Edit::Upsert {
        section: Section {
            name: name.to_string(),
            credentials: creds.clone(),
            region,
        },
        adopt,
    }
}
