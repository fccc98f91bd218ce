//! The engine's error: one enum that wraps each module's error with the profile or source it
//! concerns, and answers whether a retry can help ([`Error::is_retryable`]) or the user must act
//! ([`Error::needs_user`]). Messages say what failed, on what, and what to do; none contains a
//! secret.

use crate::{config, credfile, engine::sources, iam, sts, vault};

/// Anything the engine can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is broken.
    #[error(transparent)]
    Config(#[from] config::Error),
    /// The credentials file could not be read or written.
    #[error(transparent)]
    Credfile(#[from] credfile::Error),
    /// The keychain failed.
    #[error(transparent)]
    Vault(#[from] vault::Error),
    /// The keychain did not answer in time.
    #[error(
        "the keychain did not answer within {secs} s; if an unlock prompt is open, answer it, \
         then try again"
    )]
    KeychainTimeout {
        /// Seconds waited.
        secs: u64,
    },
    /// A read or write of a file did not finish in time.
    #[error(
        "{what} did not finish within {secs} s; check the disk or network file system it is on, \
         then try again"
    )]
    FileTimeout {
        /// What was being done.
        what: String,
        /// Seconds waited.
        secs: u64,
    },
    /// An STS call for a source's session failed.
    #[error("source {source_name}: {error}")]
    Session {
        /// The source.
        source_name: String,
        /// The STS error.
        error: sts::Error,
    },
    /// An STS call for a profile failed.
    #[error("profile {profile}: {error}")]
    Sts {
        /// The profile.
        profile: String,
        /// The STS error.
        error: sts::Error,
    },
    /// A profile name that the config does not have.
    #[error("no profile named {name:?} in {config}; known profiles: {known}")]
    UnknownProfile {
        /// The name asked for.
        name: String,
        /// The config file.
        config: String,
        /// The names it has.
        known: String,
    },
    /// A source name that the config does not have.
    #[error("no source named {name:?} in {config}; add it with `rolecall keys add {name}`")]
    UnknownSource {
        /// The name asked for.
        name: String,
        /// The config file.
        config: String,
    },
    /// The keychain holds no key for a source.
    #[error(
        "source {source_name}: no key in the keychain; store one with `rolecall keys add {source_name}`"
    )]
    NoKey {
        /// The source.
        source_name: String,
    },
    /// A session needs an MFA code and none was given.
    #[error(
        "source {source_name}: a new session needs an MFA code from {mfa_serial}; run \
         `rolecall refresh` on a terminal, which asks for it (or give it on stdin: \
         `rolecall refresh --mfa-code -`)"
    )]
    NeedsMfa {
        /// The source.
        source_name: String,
        /// The MFA device.
        mfa_serial: String,
    },
    /// An MFA code that cannot be right (its length in characters: the input itself is never
    /// repeated, in case a password was typed into the wrong prompt).
    #[error(
        "that is not an MFA code ({0} characters): enter the 6 digits your authenticator shows"
    )]
    BadMfaCode(usize),
    /// A profile could not be renewed because the profile it assumes from failed.
    #[error("profile {profile}: not renewed because profile {upstream} failed ({reason})")]
    Upstream {
        /// The profile.
        profile: String,
        /// The profile it assumes from.
        upstream: String,
        /// Why that one failed (its own message).
        reason: String,
        /// Whether that failure needs the user (it carries that profile's own event too).
        upstream_needs_user: bool,
        /// The source whose MFA code is missing, when that is why (down the whole chain).
        mfa_source: Option<String>,
    },
    /// A source's base credentials (instance metadata, environment) could not be read.
    #[error("source {source_name}: {error}")]
    Source {
        /// The source.
        source_name: String,
        /// What went wrong.
        error: sources::Error,
    },
    /// Looking up an IAM user's MFA device (`keys add --detect-mfa`) failed. Not a `source`:
    /// the message already holds it, and a cause chain would print it twice.
    #[error("detecting the MFA device: {0}")]
    Iam(iam::Error),
    /// An IAM call signed with a source's key failed (`keys mfa-devices`, `roles`, `keys
    /// rotate`).
    #[error("source {source_name}: {error}")]
    SourceIam {
        /// The source.
        source_name: String,
        /// What IAM said.
        error: iam::Error,
    },
    /// A source without a long-lived IAM user key, for a command that needs one.
    #[error(
        "source {source_name} is of kind {kind:?} and has no long-lived IAM user key; this needs \
         one: a keychain source (`rolecall keys add NAME`), or an environment source with an IAM \
         user's AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (no session token)"
    )]
    NoLongLivedKey {
        /// The source.
        source_name: String,
        /// Its kind, as the config writes it.
        kind: &'static str,
    },
    /// `keys rotate` stopped; what is left where is in the message. Not a `source`: the
    /// message holds the cause, and a cause chain would print it twice.
    #[error("key rotation of source {source_name} failed: {cause}; {left}")]
    Rotation {
        /// The source.
        source_name: String,
        /// What failed.
        cause: Box<Error>,
        /// Which key is where now.
        left: RotationLeft,
    },
    /// A new access key that GetCallerIdentity does not accept (`keys rotate`).
    #[error("source {source_name}: the new access key {new_key} does not work: {detail}")]
    NewKeyNotWorking {
        /// The source.
        source_name: String,
        /// The new key's id, shortened.
        new_key: String,
        /// What AWS answered.
        detail: String,
    },
    /// `session_name` uses `{iam_user}` and the source's IAM user could not be found.
    #[error(
        "profile {profile}: session_name uses {{iam_user}}, and the IAM user of source \
         {source_name} could not be found: {cause}"
    )]
    IamUser {
        /// The profile.
        profile: String,
        /// Its root source.
        source_name: String,
        /// Why.
        cause: Box<Error>,
    },
    /// An ad-hoc request of `exec`/`export` (`--role-arn`, `--duration`…) cannot be done.
    #[error(transparent)]
    AdHoc(#[from] crate::engine::adhoc::Error),
    /// Writing the config file or a blocking task failed unexpectedly.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Where the keys are after a failed `keys rotate` (key ids as their last 4 characters).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RotationLeft {
    /// Nothing changed: the old key is in the keychain and works, no new key exists.
    Unchanged,
    /// The old key is in the keychain and works; the new key, never stored, could not be
    /// deleted from IAM.
    NewKeyLeft {
        /// The new key's id (shortened).
        new_key: String,
        /// The user.
        user: String,
    },
    /// The new key is in the keychain and works; the old key is still active in IAM.
    OldKeyLeft {
        /// The old key's id (shortened).
        old_key: String,
        /// The user.
        user: String,
    },
}

impl std::fmt::Display for RotationLeft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RotationLeft::Unchanged => f.write_str(
                "nothing changed: the old key is still in the keychain and works, and no new key \
                 was left in IAM",
            ),
            RotationLeft::NewKeyLeft { new_key, user } => write!(
                f,
                "the old key is still in the keychain and works, but the new key {new_key} \
                 could not be deleted: delete it yourself (IAM console → user {user} → Security \
                 credentials, or `aws iam delete-access-key --user-name {user} --access-key-id` \
                 with the id ending in those characters)"
            ),
            RotationLeft::OldKeyLeft { old_key, user } => write!(
                f,
                "the new key is in the keychain and works, but the old key {old_key} is still \
                 active: delete it yourself (IAM console → user {user} → Security credentials, \
                 or `aws iam delete-access-key --user-name {user} --access-key-id` with the id \
                 ending in those characters)"
            ),
        }
    }
}

impl From<iam::Error> for Error {
    fn from(e: iam::Error) -> Self {
        Error::Iam(e)
    }
}

impl Error {
    /// Whether trying again later may succeed without the user doing anything.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Sts { error, .. } | Error::Session { error, .. } => error.is_retryable(),
            Error::KeychainTimeout { .. } | Error::FileTimeout { .. } => true,
            Error::Vault(e) => e.is_retryable(),
            Error::Source { error, .. } => error.is_retryable(),
            Error::Iam(e) | Error::SourceIam { error: e, .. } => e.is_retryable(),
            Error::IamUser { cause, .. } => cause.is_retryable(),
            _ => false,
        }
    }

    /// Whether it is a usage or configuration mistake (exit code 2) rather than a failure.
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::Config(_)
                | Error::UnknownProfile { .. }
                | Error::UnknownSource { .. }
                | Error::BadMfaCode(_)
                | Error::AdHoc(_)
        )
    }

    /// The source whose MFA code would let this renewal go on: the profile's own source, or
    /// the source at the root of the chain that failed for want of a code.
    pub fn mfa_source(&self) -> Option<&str> {
        match self {
            Error::NeedsMfa { source_name, .. } => Some(source_name),
            Error::Upstream { mfa_source, .. } => mfa_source.as_deref(),
            _ => None,
        }
    }

    /// Whether the user has to act (enter a code, store a key, unlock the keychain, fix a file
    /// or policy). Not for transient faults, nor for an expired session token (the engine
    /// starts a new session itself, asking for a code only through [`Error::NeedsMfa`]).
    pub fn needs_user(&self) -> bool {
        match self {
            Error::Sts { error, .. } | Error::Session { error, .. } => error.needs_user(),
            Error::Upstream {
                upstream_needs_user,
                ..
            } => *upstream_needs_user,
            Error::IamUser { cause, .. } => cause.needs_user(),
            e => !e.is_retryable(),
        }
    }
}
