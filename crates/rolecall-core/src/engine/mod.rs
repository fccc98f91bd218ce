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

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;

use crate::config::{self, Config, Paths, Upstream};
use crate::credentials::Credentials;
use crate::credfile::{self, CredentialsFile, Edit, Section};
use crate::error::Error;
use crate::events::Event;
use crate::sts::{self, Sts};
use crate::vault::{SecretStore, Vault};

mod active;
pub mod adhoc;
mod blocking;
pub(crate) use blocking::bounded;
pub(crate) mod board;
mod keys;
mod refresh;
mod setup;
pub mod sources;
mod status;

pub use crate::status::{ProfileStatus, State};
pub use active::Cleared;
pub use keys::{IamUserInfo, Rotated};
pub use setup::{ImportOutcome, KeyImport, LineChange, MfaChoice, MfaFrom};
pub(crate) use status::orphans;

/// Name of the section that mirrors the active profile.
pub const DEFAULT_SECTION: &str = "default";

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
    keychain_timeout: Duration,
}

impl EngineBuilder {
    /// How long a keychain call may take (tests shorten it).
    #[cfg(test)]
    pub(crate) fn keychain_timeout(mut self, timeout: Duration) -> Self {
        self.keychain_timeout = timeout;
        self
    }

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
                    sts: RwLock::new(None),
                    events,
                    mfa: self.mfa,
                    clock: self.clock,
                    refresh_lock: tokio::sync::Mutex::new(()),
                    keychain: blocking::KeychainThread::new(self.keychain_timeout),
                    sources: sources::Sources::default(),
                    board: board::Board::default(),
                    code_askers: std::sync::atomic::AtomicUsize::new(0),
                    config_error: std::sync::Mutex::new(None),
                }),
            },
        })
    }
}

/// The engine. The refresh scheduler ([`crate::scheduler::run`]) runs over it; hand out
/// [`EngineHandle`]s to callers.
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
            keychain_timeout: blocking::KEYCHAIN_TIMEOUT,
        }
    }

    /// A cloneable handle to the engine.
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// Renews what is due now (less than `refresh_before` left, or missing) and returns every
    /// profile's outcome: `rolecall daemon --once`, for cron.
    pub async fn run_once(&self) -> Result<Vec<(String, Outcome)>, Error> {
        self.handle
            .refresh(&Targets::All, RefreshOptions::default())
            .await
    }
}

struct Inner {
    paths: Paths,
    config: RwLock<Arc<Config>>,
    /// Opened lazily (see [`EngineHandle::vault`]).
    vault: tokio::sync::OnceCell<Vault>,
    /// Built at the first STS call (a warm `credential_process` makes none, and loading the
    /// SDK's configuration reads the user's AWS files); dropped, to be built anew, when a
    /// reload changes its settings.
    sts: RwLock<Option<Sts>>,
    events: broadcast::Sender<Event>,
    mfa: Arc<dyn MfaPrompter>,
    clock: Arc<dyn Clock>,
    refresh_lock: tokio::sync::Mutex<()>,
    /// The keychain's own thread (see [`blocking`]).
    keychain: blocking::KeychainThread,
    /// Source state that outlives a refresh pass (IMDS client, in-memory sessions).
    sources: sources::Sources,
    /// What a scheduler running over this engine shares with it (see [`board`]).
    board: board::Board,
    /// How many [`CodeAsker`]s live: shells that ask the user for MFA codes in a window.
    code_askers: std::sync::atomic::AtomicUsize,
    /// Why the last reload refused the config file (the config in force is then the last
    /// good one); `None` once a reload worked. For `status` through the agent (issue 14).
    config_error: std::sync::Mutex<Option<String>>,
}

/// Held by a shell that asks the user for the MFA codes this engine needs (the tray app's
/// popup, hosting the engine or subscribed to its agent); while one lives, the agent tells
/// clients that have no terminal to wait for a code instead of failing ([`EngineHandle::asks_codes`]).
pub struct CodeAsker {
    engine: EngineHandle,
}

impl Drop for CodeAsker {
    fn drop(&mut self) {
        self.engine
            .inner
            .code_askers
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl std::fmt::Debug for CodeAsker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CodeAsker")
    }
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
    /// Registers a shell that asks the user for MFA codes, until the guard is dropped.
    pub fn ask_codes(&self) -> CodeAsker {
        self.inner
            .code_askers
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        CodeAsker {
            engine: self.clone(),
        }
    }

    /// Whether a shell asks the user for MFA codes now (see [`CodeAsker`]).
    pub fn asks_codes(&self) -> bool {
        self.inner
            .code_askers
            .load(std::sync::atomic::Ordering::SeqCst)
            > 0
    }

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
        if !self.inner.board.admit(&event) {
            tracing::debug!(%event, "repeat event not sent");
            return;
        }
        tracing::debug!(%event, "event");
        // no subscriber is fine
        let _ = self.inner.events.send(event);
    }

    pub(crate) fn now(&self) -> SystemTime {
        self.inner.clock.now()
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

    /// The vault, opening the OS keychain on first use (on the keychain's thread: opening takes
    /// two D-Bus round trips).
    async fn vault(&self) -> Result<Vault, Error> {
        let v = self
            .inner
            .vault
            .get_or_try_init(|| async {
                let store = self
                    .inner
                    .keychain
                    .call(crate::vault::KeychainStore::open)
                    .await??;
                Ok::<_, Error>(Vault::new(Arc::new(store)))
            })
            .await?;
        Ok(v.clone())
    }

    /// Runs `f` on the keychain's own thread, bounded (see [`blocking`]).
    async fn blocking<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Vault) -> Result<T, crate::vault::Error> + Send + 'static,
    {
        let vault = self.vault().await?;
        self.inner
            .keychain
            .call(move || f(&vault))
            .await?
            .map_err(Error::Vault)
    }

    /// Runs `f` on the credentials file in force, off the async threads and bounded.
    async fn file_op<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&CredentialsFile) -> Result<T, credfile::Error> + Send + 'static,
    {
        let file = self.credentials_file();
        blocking::bounded("the credentials file operation", move || f(&file))
            .await?
            .map_err(Error::Credfile)
    }

    /// GetCallerIdentity with a profile's fresh credentials.
    pub async fn identity(&self, profile: &str) -> Result<sts::Identity, Error> {
        let (creds, region) = self.credentials(profile, RefreshOptions::default()).await?;
        self.sts()
            .await
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

pub(crate) fn upsert(
    name: &str,
    creds: &Credentials,
    region: Option<String>,
    provenance: Option<credfile::Provenance>,
    adopt: bool,
) -> Edit {
    Edit::Upsert {
        section: Section {
            name: name.to_string(),
            credentials: creds.clone(),
            region,
            provenance,
        },
        adopt,
    }
}

/// Where profile `name`'s credentials come from, written into its managed section (issue 17):
/// its role, its source (or the profile it assumes from), and now.
pub(crate) fn provenance(
    config: &crate::config::Config,
    name: &str,
) -> Option<credfile::Provenance> {
    let p = config.profiles.get(name)?;
    Some(credfile::Provenance {
        role: p.role_arn.clone(),
        source: p.source.clone(),
        generated: std::time::SystemTime::now(),
    })
}
