//! Sources: where each `[sources.NAME]` gets its base credentials, and the session it hands to
//! the profiles that assume from it.
//!
//! - `keychain` (the default): a long-lived IAM user key in the OS keychain, turned into an MFA
//!   session with GetSessionToken; the session is cached back into the keychain, so the CLI,
//!   the daemon and the app share it.
//! - `instance-profile`: the EC2 instance role, read with IMDSv2 through aws-config's
//!   [`ImdsCredentialsProvider`] (which honours `AWS_EC2_METADATA_SERVICE_ENDPOINT` and
//!   `AWS_EC2_METADATA_DISABLED`). These credentials are already temporary: role profiles
//!   AssumeRole from them directly, and a profile without a role gets them as they are.
//! - `environment`: the standard variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//!   `AWS_SESSION_TOKEN`) through aws-config's [`EnvironmentVariableCredentialsProvider`].
//!   Temporary ones are used directly; a long-lived key goes through GetSessionToken like a
//!   keychain key (with the MFA code when the source has `mfa_serial`), and that session is
//!   kept in memory for the engine's lifetime only.
//!
//! This module owns the IMDS client (kept for the engine's lifetime, so its IMDSv2 token is
//! reused) and the in-memory sessions. It must not touch the keychain for any source that is not
//! of kind `keychain`: a server without a Secret Service runs the other two kinds, and the engine
//! opens the keychain only on first use.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Mutex, OnceLock};
use std::time::SystemTime;

use aws_config::environment::credentials::EnvironmentVariableCredentialsProvider;
use aws_config::imds::credentials::ImdsCredentialsProvider;
use aws_credential_types::provider::ProvideCredentials;
use aws_credential_types::provider::error::CredentialsError;

use crate::config::{Config, SourceConfig, SourceKind};
use crate::credentials::{Credentials, KeyId};
use crate::error::Error as EngineError;
use crate::events::Event;
use crate::vault::CachedSession;

use super::{EngineHandle, check_mfa_code};

/// What went wrong reading a source's base credentials (not STS: that is
/// [`crate::sts::Error`]). Never contains a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `AWS_EC2_METADATA_DISABLED=true` is set for the process.
    #[error(
        "the instance metadata service is disabled (AWS_EC2_METADATA_DISABLED=true); unset it \
         for rolecall, or give this source another kind"
    )]
    ImdsDisabled,
    /// The metadata service answered, but this machine has no instance role.
    #[error(
        "the instance metadata service has no IAM role for this machine; attach an instance \
         profile with a role to the instance, or give this source another kind"
    )]
    NoInstanceRole,
    /// The metadata service could not be reached or gave no usable credentials.
    #[error(
        "cannot get the instance role's credentials from the instance metadata service \
         ({detail}); check that this runs on EC2 with IMDSv2 reachable (the instance's metadata \
         hop limit in a container; AWS_EC2_METADATA_SERVICE_ENDPOINT if you set it)"
    )]
    Imds {
        /// What aws-config said (never credentials).
        detail: String,
        /// Whether trying again later may help (timeouts, connection errors, 5xx).
        retryable: bool,
    },
    /// The variables are not set.
    #[error(
        "no AWS credentials in rolecall's environment: set AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN for temporary credentials) for the \
         rolecall process, or give this source another kind"
    )]
    NoEnvironmentCredentials,
    /// The variables are set but unusable.
    #[error("cannot read AWS credentials from the environment ({detail}); fix the variables")]
    Environment {
        /// What aws-config said (never credentials).
        detail: String,
    },
}

impl Error {
    /// Whether trying again later may succeed without anything from the user.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Imds {
                retryable: true,
                ..
            }
        )
    }

    fn from_imds(e: &CredentialsError) -> Error {
        let detail = crate::sts::error_chain(e);
        match e {
            CredentialsError::CredentialsNotLoaded(_) if detail.contains("IMDS disabled") => {
                Error::ImdsDisabled
            }
            // aws-config reports a 404 for the role listing as "not loaded": no role attached
            CredentialsError::CredentialsNotLoaded(_) if detail.contains("404") => {
                Error::NoInstanceRole
            }
            CredentialsError::InvalidConfiguration(_) | CredentialsError::Unhandled(_) => {
                Error::Imds {
                    detail,
                    retryable: false,
                }
            }
            _ => Error::Imds {
                detail,
                retryable: true,
            },
        }
    }

    fn from_env(e: &CredentialsError) -> Error {
        match e {
            CredentialsError::CredentialsNotLoaded(_) => Error::NoEnvironmentCredentials,
            _ => Error::Environment {
                detail: crate::sts::error_chain(e),
            },
        }
    }
}

/// The engine's source state: the IMDS credentials provider and the in-memory sessions of
/// environment sources. Lives as long as the engine.
#[derive(Default)]
pub(super) struct Sources {
    /// Built on first use: a server with no instance-profile source never reads IMDS settings.
    imds: OnceLock<ImdsCredentialsProvider>,
    /// Sessions started from a long-lived key in the environment, by source. Never persisted:
    /// the keychain may not exist where these sources are used.
    memory: Mutex<BTreeMap<String, CachedSession>>,
    /// The IAM user owning each source's key, once found (`session_name = "{iam_user}"`), for
    /// the engine's lifetime; a key stored anew forgets it.
    users: Mutex<BTreeMap<String, String>>,
    /// What the environment holds, for unit tests (changing the process environment of a
    /// multi-threaded test binary is unsound).
    #[cfg(test)]
    pub(super) test_environment: Mutex<Option<Credentials>>,
}

impl Sources {
    fn imds(&self) -> &ImdsCredentialsProvider {
        self.imds.get_or_init(|| {
            // One client for the engine's lifetime: it caches its IMDSv2 session token (PUT
            // /latest/api/token, 6 h) and sends it with every GET. aws-config's provider never
            // falls back to IMDSv1.
            let client = aws_config::imds::Client::builder().build();
            ImdsCredentialsProvider::builder()
                .imds_client(client)
                .build()
        })
    }

    fn memory(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, CachedSession>> {
        // a panic while holding the lock leaves a map that is still consistent
        self.memory
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn users(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.users
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets the IAM user found for `source` (its key was replaced).
    pub(super) fn forget_user(&self, source: &str) {
        self.users().remove(source);
    }
}

/// Whether a profile whose chain starts at `source` names its role sessions after the IAM user
/// (`session_name` with `{iam_user}`).
fn wants_iam_user(config: &Config, source: &str) -> bool {
    config.profiles.iter().any(|(name, p)| {
        p.session_name
            .as_deref()
            .is_some_and(crate::sts::uses_iam_user)
            && config.root_source(name) == Some(source)
    })
}

/// The name of the IAM user owning `source`'s credentials, for `session_name = "{iam_user}"`:
/// found once per engine (kept in memory), or read from the cached keychain session (which
/// records it when it is started), else asked of GetCallerIdentity, signed with the source's
/// long-lived key (a keychain or environment key) or its temporary credentials (which must
/// then be an IAM user's: an instance role has no user).
pub(super) async fn iam_user(
    handle: &EngineHandle,
    config: &Config,
    source: &str,
) -> Result<String, EngineError> {
    if let Some(user) = handle.inner.sources.users().get(source) {
        return Ok(user.clone());
    }
    let src = source_config(handle, config, source)?;
    let creds = match src.kind {
        SourceKind::Keychain => {
            let s = source.to_string();
            let cached = handle.blocking(move |v| v.session(&s)).await?;
            if let Some(user) = cached.and_then(|c| c.iam_user) {
                handle
                    .inner
                    .sources
                    .users()
                    .insert(source.to_string(), user.clone());
                return Ok(user);
            }
            let s = source.to_string();
            handle
                .blocking(move |v| v.source_key(&s))
                .await?
                .ok_or_else(|| EngineError::NoKey {
                    source_name: source.to_string(),
                })?
        }
        SourceKind::Environment => environment_credentials(handle, source).await?,
        SourceKind::InstanceProfile => instance_profile(handle, source).await?,
    };
    let user = user_of(handle, src, source, &creds).await?;
    handle
        .inner
        .sources
        .users()
        .insert(source.to_string(), user.clone());
    Ok(user)
}

/// GetCallerIdentity with `creds`, and the IAM user name in the ARN.
async fn user_of(
    handle: &EngineHandle,
    src: &SourceConfig,
    source: &str,
    creds: &Credentials,
) -> Result<String, EngineError> {
    let who = handle
        .sts()
        .await
        .caller_identity(creds, src.region.as_deref())
        .await
        .map_err(|error| EngineError::Session {
            source_name: source.to_string(),
            error,
        })?;
    let not_a_user = |error| EngineError::SourceIam {
        source_name: source.to_string(),
        error,
    };
    crate::iam::user_name(&who.arn)
        .map_err(not_a_user)?
        .ok_or_else(|| not_a_user(crate::iam::Error::NotAUser { arn: who.arn }))
}

/// A source's session for one refresh pass.
pub(super) struct Session {
    /// The credentials profiles assume from (or are written as they are).
    pub(super) credentials: Credentials,
    /// Whether they were made or read fresh now, rather than taken from a cache: a pass that
    /// has a started session does not start another.
    pub(super) started: bool,
}

/// The session of `source`: for a keychain source the cached one while it has more than
/// `refresh_before` left (unless `renew`), else a new one; for an instance-profile source the
/// instance role's current credentials; for an environment source its temporary credentials,
/// or a session started from its long-lived key (cached in memory). `mfa_code` is called, at
/// most once, when a new session needs a code; without one the prompter is asked.
pub(super) async fn session(
    handle: &EngineHandle,
    config: &Config,
    source: &str,
    renew: bool,
    now: SystemTime,
    mfa_code: impl FnOnce() -> Option<String> + Send,
) -> Result<Session, EngineError> {
    let src = source_config(handle, config, source)?;
    let valid_until = now + crate::status::session_renew_before(config, source);
    let want_user = wants_iam_user(config, source);
    match src.kind {
        SourceKind::Keychain => {
            keychain(handle, src, source, renew, valid_until, want_user, mfa_code).await
        }
        SourceKind::InstanceProfile => {
            let credentials = instance_profile(handle, source).await?;
            Ok(Session {
                credentials,
                started: true,
            })
        }
        SourceKind::Environment => {
            environment(handle, src, source, renew, valid_until, want_user, mfa_code).await
        }
    }
}

/// Forgets `source`'s cached session (AWS rejected it): the keychain's for a keychain source,
/// the in-memory one for an environment source; an instance-profile source has none.
pub(super) async fn forget_session(
    handle: &EngineHandle,
    config: &Config,
    source: &str,
) -> Result<(), EngineError> {
    match source_config(handle, config, source)?.kind {
        SourceKind::Keychain => {
            let s = source.to_string();
            handle.blocking(move |v| v.delete_session(&s)).await?;
        }
        SourceKind::Environment => {
            handle.inner.sources.memory().remove(source);
        }
        SourceKind::InstanceProfile => {}
    }
    Ok(())
}

/// Forgets every cached session (`rolecall clear`): those of the config's keychain sources,
/// and, where the keychain can list its entries, those of sources the config no longer has
/// (issue 14: a removed config left them behind). Fails only on the config's own sources: a
/// keychain that cannot be reached or listed while none of them needs it is no error.
/// Returns the sources whose session was in the keychain.
pub(super) async fn forget_all_sessions(
    handle: &EngineHandle,
    config: &Config,
) -> Result<Vec<String>, EngineError> {
    handle.inner.sources.memory().clear();
    let mut forgotten = Vec::new();
    for (name, src) in &config.sources {
        if src.kind == SourceKind::Keychain {
            let s = name.clone();
            if handle.blocking(move |v| v.delete_session(&s)).await? {
                forgotten.push(name.clone());
            }
        }
    }
    let orphans: Vec<String> = match handle.blocking(|v| v.entries()).await {
        Ok(Some(entries)) => entries
            .into_iter()
            .filter(|e| e.session && !config.sources.contains_key(&e.source))
            .map(|e| e.source)
            .collect(),
        Ok(None) => Vec::new(),
        Err(error) => {
            tracing::debug!(%error, "could not list the keychain's sessions");
            Vec::new()
        }
    };
    for name in orphans {
        let s = name.clone();
        if handle.blocking(move |v| v.delete_session(&s)).await? {
            forgotten.push(name);
        }
    }
    forgotten.sort();
    Ok(forgotten)
}

/// Whether `source` can make credentials until `until` without a new MFA code (for
/// `status`): a keychain source needs a cached session lasting that long (and is an error
/// [`EngineError::NoKey`] without one and without a key); an environment source
/// with a long-lived key needs an in-memory one; temporary and instance credentials need none.
pub(super) async fn usable_without_mfa_until(
    handle: &EngineHandle,
    config: &Config,
    source: &str,
    until: SystemTime,
) -> Result<bool, EngineError> {
    let src = source_config(handle, config, source)?;
    let usable = |s: &CachedSession| lasts(src, s, until);
    match src.kind {
        SourceKind::Keychain => {
            let s = source.to_string();
            let cached = handle.blocking(move |v| v.session(&s)).await?;
            if cached.as_ref().is_some_and(usable) {
                return Ok(true);
            }
            // no session to use: a new one needs the key first, and without it an MFA code
            // would not help (say what would)
            let s = source.to_string();
            if handle.blocking(move |v| v.source_key(&s)).await?.is_none() {
                return Err(EngineError::NoKey {
                    source_name: source.to_string(),
                });
            }
            Ok(false)
        }
        SourceKind::Environment => {
            let base = environment_credentials(handle, source).await?;
            if base.session_token.is_some() || src.mfa_serial.is_none() {
                return Ok(true);
            }
            Ok(handle
                .inner
                .sources
                .memory()
                .get(source)
                .is_some_and(usable))
        }
        SourceKind::InstanceProfile => Ok(true),
    }
}

/// When the in-memory session of an environment source ends, if it has one (`keys list`).
pub(super) fn memory_session_expiration(handle: &EngineHandle, source: &str) -> Option<SystemTime> {
    handle
        .inner
        .sources
        .memory()
        .get(source)
        .and_then(|s| s.credentials.expiration)
}

fn source_config<'c>(
    handle: &EngineHandle,
    config: &'c Config,
    source: &str,
) -> Result<&'c SourceConfig, EngineError> {
    config
        .sources
        .get(source)
        .ok_or_else(|| EngineError::UnknownSource {
            name: source.to_string(),
            config: handle.config_path(),
        })
}

async fn keychain(
    handle: &EngineHandle,
    src: &SourceConfig,
    source: &str,
    renew: bool,
    valid_until: SystemTime,
    want_user: bool,
    mfa_code: impl FnOnce() -> Option<String> + Send,
) -> Result<Session, EngineError> {
    let key = async {
        let s = source.to_string();
        handle
            .blocking(move |v| v.source_key(&s))
            .await?
            .ok_or_else(|| EngineError::NoKey {
                source_name: source.to_string(),
            })
    };
    let cache = SessionCache::Keychain;
    cached_or_started(
        handle,
        src,
        source,
        renew,
        valid_until,
        cache,
        key,
        want_user,
        mfa_code,
    )
    .await
}

/// Where a source keeps the MFA session it started from its long-lived key: the keychain (shared
/// by the CLI, the daemon and the app), or this engine's memory (environment sources, whose
/// machine may have no keychain).
#[derive(Debug, Clone, Copy)]
enum SessionCache {
    Keychain,
    Memory,
}

impl SessionCache {
    async fn get(
        self,
        handle: &EngineHandle,
        source: &str,
    ) -> Result<Option<CachedSession>, EngineError> {
        match self {
            SessionCache::Keychain => {
                let s = source.to_string();
                handle.blocking(move |v| v.session(&s)).await
            }
            SessionCache::Memory => Ok(handle.inner.sources.memory().get(source).cloned()),
        }
    }

    async fn put(
        self,
        handle: &EngineHandle,
        source: &str,
        session: CachedSession,
    ) -> Result<(), EngineError> {
        match self {
            SessionCache::Keychain => {
                let s = source.to_string();
                handle.blocking(move |v| v.set_session(&s, &session)).await
            }
            SessionCache::Memory => {
                handle
                    .inner
                    .sources
                    .memory()
                    .insert(source.to_string(), session);
                Ok(())
            }
        }
    }
}

/// The one "cached session, else start one and cache it" path: the session in `cache` while it
/// lasts until `valid_until` (unless `renew`), else GetSessionToken with the long-lived key that
/// `key` reads (only then), cached for next time and announced. With `want_user`, a new
/// session also records the IAM user owning the key (GetCallerIdentity with the key), so that
/// `session_name = "{iam_user}"` needs no further call while the session lasts; a failure to
/// find it is logged here and reported by the profiles that need it.
#[allow(clippy::too_many_arguments)]
async fn cached_or_started(
    handle: &EngineHandle,
    src: &SourceConfig,
    source: &str,
    renew: bool,
    valid_until: SystemTime,
    cache: SessionCache,
    key: impl Future<Output = Result<Credentials, EngineError>> + Send,
    want_user: bool,
    mfa_code: impl FnOnce() -> Option<String> + Send,
) -> Result<Session, EngineError> {
    if !renew
        && let Some(c) = cache.get(handle, source).await?
        && lasts(src, &c, valid_until)
    {
        return Ok(Session {
            credentials: c.credentials,
            started: false,
        });
    }
    let key = key.await?;
    let creds = start_session(handle, src, source, &key, mfa_code).await?;
    let iam_user = if want_user {
        match user_of(handle, src, source, &key).await {
            Ok(user) => {
                handle
                    .inner
                    .sources
                    .users()
                    .insert(source.to_string(), user.clone());
                Some(user)
            }
            Err(error) => {
                tracing::warn!(source, %error, "could not find the IAM user of the key");
                None
            }
        }
    } else {
        None
    };
    let cached = CachedSession {
        credentials: creds.clone(),
        mfa_serial: src.mfa_serial.clone(),
        iam_user,
    };
    cache.put(handle, source, cached).await?;
    Ok(new_session(handle, source, creds))
}

async fn instance_profile(handle: &EngineHandle, source: &str) -> Result<Credentials, EngineError> {
    let provided = handle
        .inner
        .sources
        .imds()
        .provide_credentials()
        .await
        .map_err(|e| EngineError::Source {
            source_name: source.to_string(),
            error: Error::from_imds(&e),
        })?;
    // Note: when IMDS serves credentials that have already expired (an outage), aws-config
    // extends their expiry by 10-15 minutes so that callers keep working; AssumeRole then fails
    // with ExpiredToken, which is reported like any expired source.
    let creds = convert(&provided);
    tracing::debug!(source, key = %KeyId(&creds.access_key_id), "instance role credentials");
    Ok(creds)
}

/// The environment's credentials, through aws-config's standard provider. It reads the
/// process environment itself: that is the SDK's documented credential chain, and the one
/// deliberate exception to "only `config::Paths::from_env` reads the environment".
pub(super) async fn environment_credentials(
    handle: &EngineHandle,
    source: &str,
) -> Result<Credentials, EngineError> {
    #[cfg(test)]
    if let Some(c) = handle
        .inner
        .sources
        .test_environment
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone()
    {
        return Ok(c);
    }
    #[cfg(not(test))]
    let _ = handle;
    let provided = EnvironmentVariableCredentialsProvider::new()
        .provide_credentials()
        .await
        .map_err(|e| EngineError::Source {
            source_name: source.to_string(),
            error: Error::from_env(&e),
        })?;
    Ok(convert(&provided))
}

async fn environment(
    handle: &EngineHandle,
    src: &SourceConfig,
    source: &str,
    renew: bool,
    valid_until: SystemTime,
    want_user: bool,
    mfa_code: impl FnOnce() -> Option<String> + Send,
) -> Result<Session, EngineError> {
    let base = environment_credentials(handle, source).await?;
    if base.session_token.is_some() {
        // already temporary (a CI job's role, `aws-vault exec`…): used as they are
        tracing::debug!(source, key = %KeyId(&base.access_key_id), "temporary credentials from the environment");
        return Ok(Session {
            credentials: base,
            started: true,
        });
    }
    let cache = SessionCache::Memory;
    let key = async { Ok(base) };
    cached_or_started(
        handle,
        src,
        source,
        renew,
        valid_until,
        cache,
        key,
        want_user,
        mfa_code,
    )
    .await
}

/// Whether a cached session of `src` can stand in for a new one until `until`: started with
/// the source's current MFA device (a changed `mfa_serial` needs a new code) and lasting past
/// then.
fn lasts(src: &SourceConfig, session: &CachedSession, until: SystemTime) -> bool {
    session.mfa_serial == src.mfa_serial
        && session.credentials.expiration.is_some_and(|e| e > until)
}

/// The session just started for `source` (and already cached), announced to subscribers.
fn new_session(handle: &EngineHandle, source: &str, credentials: Credentials) -> Session {
    handle.emit(Event::SessionStarted {
        source: source.to_string(),
        expiration: credentials.expiration,
    });
    Session {
        credentials,
        started: true,
    }
}

/// GetSessionToken with a long-lived `key`, with an MFA code when the source has a device
/// (from `mfa_code`, else the prompter; none is [`EngineError::NeedsMfa`]).
async fn start_session(
    handle: &EngineHandle,
    src: &SourceConfig,
    source: &str,
    key: &Credentials,
    mfa_code: impl FnOnce() -> Option<String> + Send,
) -> Result<Credentials, EngineError> {
    let code = match &src.mfa_serial {
        None => None,
        Some(serial) => {
            let code = match mfa_code() {
                Some(c) => Some(c),
                None => {
                    handle.emit(Event::MfaRequired {
                        source: source.to_string(),
                        mfa_serial: serial.clone(),
                    });
                    handle.inner.mfa.mfa_code(source, serial).await
                }
            };
            match code {
                Some(c) => {
                    check_mfa_code(&c)?;
                    Some((serial.as_str(), c))
                }
                None => {
                    return Err(EngineError::NeedsMfa {
                        source_name: source.to_string(),
                        mfa_serial: serial.clone(),
                    });
                }
            }
        }
    };
    handle
        .sts()
        .await
        .session_token(
            key,
            src.region.as_deref(),
            code.as_ref().map(|(s, c)| (*s, c.as_str())),
            src.session_duration(),
        )
        .await
        .map_err(|error| EngineError::Session {
            source_name: source.to_string(),
            error,
        })
}

fn convert(c: &aws_credential_types::Credentials) -> Credentials {
    Credentials {
        access_key_id: c.access_key_id().to_string(),
        secret_access_key: c.secret_access_key().to_string().into(),
        session_token: c.session_token().map(|t| t.to_string().into()),
        expiration: c.expiry(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imds_errors_say_what_to_do_and_whether_to_retry() {
        let disabled = Error::from_imds(&CredentialsError::not_loaded(
            "IMDS disabled by AWS_EC2_METADATA_DISABLED env var set to `true`",
        ));
        assert!(matches!(disabled, Error::ImdsDisabled), "{disabled}");
        assert!(!disabled.is_retryable());

        let no_role = Error::from_imds(&CredentialsError::not_loaded("received 404 from IMDS"));
        assert!(matches!(no_role, Error::NoInstanceRole), "{no_role}");
        assert!(no_role.to_string().contains("attach an instance profile"));

        let down = Error::from_imds(&CredentialsError::provider_timed_out(
            std::time::Duration::from_secs(5),
        ));
        assert!(down.is_retryable(), "{down}");

        let bad = Error::from_imds(&CredentialsError::invalid_configuration(
            "Incorrect IMDS/IAM configuration: [AssumeRoleUnauthorizedAccess]",
        ));
        assert!(!bad.is_retryable(), "{bad}");
        assert!(
            bad.to_string().contains("AssumeRoleUnauthorizedAccess"),
            "{bad}"
        );
    }

    #[test]
    fn response_dumps_in_sdk_errors_never_reach_the_message() {
        #[derive(Debug)]
        struct Dump;
        impl std::fmt::Display for Dump {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(
                    "error response from IMDS (code: 500). Response { body: \"wJalrSECRET\" }",
                )
            }
        }
        impl std::error::Error for Dump {}
        let e = Error::from_imds(&CredentialsError::provider_error(Dump));
        let s = e.to_string();
        assert!(s.contains("error response from IMDS (code: 500)"), "{s}");
        assert!(!s.contains("wJalrSECRET"), "{s}");
    }

    #[test]
    fn missing_environment_credentials_name_the_variables() {
        let e = Error::from_env(&CredentialsError::not_loaded(
            "environment variable not set",
        ));
        assert!(e.to_string().contains("AWS_ACCESS_KEY_ID"), "{e}");
    }

    #[test]
    fn converted_credentials_keep_token_and_expiry() {
        let exp = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(2_000_000_000);
        let c = convert(&aws_credential_types::Credentials::new(
            "ASIAEXAMPLEEXAMPLE12",
            "secret",
            Some("token".into()),
            Some(exp),
            "test",
        ));
        assert_eq!(c.access_key_id, "ASIAEXAMPLEEXAMPLE12");
        assert!(c.session_token.is_some());
        assert_eq!(c.expiration, Some(exp));
    }
}
