//! The vault owns Rolecall's secrets at rest: each source's long-lived IAM user key and the
//! cached MFA session (GetSessionToken credentials) made from it, both kept only in the OS
//! keychain, so the CLI, the daemon and the tray app share them and a restart does not ask for
//! MFA again. [`SecretStore`] is the injectable low-level store ([`KeychainStore`] for real,
//! [`MemoryStore`] in tests and the demo); [`Vault`] is the typed layer the engine calls. The
//! vault must never write a secret anywhere but the store, never fall back silently to another
//! store, and never put a secret into an error, a log line or `Debug` output.
//!
//! Each entry is a small JSON record with a version field (`{"v":1,"aws_access_key_id":…}`),
//! under service `rolecall` and account `source:<name>` or `session:<name>`. All calls block
//! (a few D-Bus round trips: milliseconds, each bounded by a 2 s D-Bus timeout); async callers
//! run them on a blocking thread under a timeout.

mod keychain;
mod memory;

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

use crate::credentials::{Credentials, ExposeSecret, SecretString};

pub use keychain::KeychainStore;
pub use memory::{FailWith, MemoryStore};

/// The keychain service name under which every Rolecall entry is stored.
pub const SERVICE: &str = "rolecall";

/// The version written into (and required of) every stored record.
const FORMAT_VERSION: u32 = 1;
/// Account prefix of a source's long-lived key.
const SOURCE_PREFIX: &str = "source:";
/// Account prefix of a source's cached MFA session.
const SESSION_PREFIX: &str = "session:";
/// Longest accepted source name, in characters (keychains limit attribute sizes).
const MAX_SOURCE_NAME: usize = 200;

/// The low-level secret store: one secret string per account, under service [`SERVICE`].
/// Injectable: [`KeychainStore`] is the OS keychain, [`MemoryStore`] an in-memory map for unit
/// tests and the demo.
///
/// Calls block; none may wait for a user (an unlock prompt) without bound.
pub trait SecretStore: Send + Sync + 'static {
    /// Reads the secret stored for `account`; `None` when there is none.
    fn get(&self, account: &str) -> Result<Option<SecretString>, Error>;
    /// Stores `secret` for `account`, replacing any previous one.
    fn set(&self, account: &str, secret: &SecretString) -> Result<(), Error>;
    /// Deletes the secret stored for `account`; `false` when there was none.
    fn delete(&self, account: &str) -> Result<bool, Error>;
    /// Every account holding a secret under [`SERVICE`], sorted, without reading a secret;
    /// `None` when this store cannot list its entries (then `doctor` says so).
    fn list_accounts(&self) -> Result<Option<Vec<String>>, Error> {
        Ok(None)
    }
}

/// What can go wrong in the vault. No variant ever holds a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The keychain (the collection holding the entry) is locked. Rolecall never opens an
    /// unlock prompt itself: it fails at once so that no caller hangs on an unanswered prompt.
    #[error(
        "{}: the keychain is locked; unlock your login keyring (log in to the desktop, or \
         `gnome-keyring-daemon --unlock` on a server), then run the command again",
        entry(.account)
    )]
    Locked {
        /// The entry's account (`source:NAME` or `session:NAME`).
        account: String,
    },
    /// No keychain can be reached at all (no Secret Service on the D-Bus session bus, no
    /// session bus, or an OS this build has no keychain support for).
    #[error(
        "no keychain (Secret Service) is reachable: {reason}; log in to a desktop session, or \
         on a server start one (e.g. `gnome-keyring-daemon --unlock --components=secrets`, or \
         KeePassXC with Secret Service integration)"
    )]
    Unavailable {
        /// Why, in words (from the D-Bus error; never a secret).
        reason: String,
    },
    /// The keychain refused access to the entry, or its permission prompt was dismissed.
    #[error(
        "{}: access was denied (the keychain refused, or its permission prompt was \
         dismissed); unlock the keychain and allow rolecall to use it, then try again",
        entry(.account)
    )]
    Denied {
        /// The entry's account.
        account: String,
    },
    /// The stored value is not a record this version of Rolecall understands.
    #[error(
        "{} is unreadable in the keychain (not a rolecall record this version understands); \
         run `rolecall keys remove {name}` and `rolecall keys add {name}` again",
        entry(.account),
        name = source_name_of(.account)
    )]
    Corrupt {
        /// The entry's account.
        account: String,
    },
    /// Credentials or a source name were rejected before anything was stored.
    #[error("invalid credentials: {what}; check the values and try again")]
    Invalid {
        /// What is wrong (never the value itself).
        what: String,
    },
    /// Any other keychain failure.
    #[error(
        "{}the keychain failed: {message}; try again, and check the keyring service if it \
         keeps failing",
        entry_prefix(.account)
    )]
    Backend {
        /// The entry's account (empty when no entry was involved yet).
        account: String,
        /// The store's message, checked not to contain the secret.
        message: String,
        /// Whether the failure is a transient D-Bus one (a timeout, a lost connection) that a
        /// retry may cure.
        transient: bool,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed without the user doing anything: true
    /// only for transient D-Bus failures.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Backend {
                transient: true,
                ..
            }
        )
    }

    /// Whether the user must act (unlock, start a keyring, allow access, re-add a key) before a
    /// retry can succeed.
    pub fn needs_user(&self) -> bool {
        matches!(
            self,
            Error::Locked { .. }
                | Error::Unavailable { .. }
                | Error::Denied { .. }
                | Error::Corrupt { .. }
        )
    }

    /// The keychain account the error concerns, if any.
    pub fn account(&self) -> Option<&str> {
        match self {
            Error::Locked { account }
            | Error::Denied { account }
            | Error::Corrupt { account }
            | Error::Backend { account, .. } => Some(account),
            Error::Unavailable { .. } | Error::Invalid { .. } => None,
        }
    }

    /// Replaces any free-text part that contains one of `secrets`: a store's message must never
    /// carry a secret into a log or a dialog, even if a backend echoes what it was given.
    pub(crate) fn scrub(self, secrets: &[&str]) -> Self {
        const WITHHELD: &str = "(details withheld: the keychain's message contained secret data)";
        let leaks = |text: &str| secrets.iter().any(|s| !s.is_empty() && text.contains(s));
        match self {
            Error::Backend {
                account,
                message,
                transient,
            } if leaks(&message) => Error::Backend {
                account,
                message: WITHHELD.to_string(),
                transient,
            },
            Error::Unavailable { reason } if leaks(&reason) => Error::Unavailable {
                reason: WITHHELD.to_string(),
            },
            other => other,
        }
    }
}

/// `keychain entry "source:prod": ` before a message; nothing when no entry was involved yet.
fn entry_prefix(account: &str) -> String {
    if account.is_empty() {
        String::new()
    } else {
        format!("{}: ", entry(account))
    }
}

/// What an account is, in the user's words: `the key of source prod`.
fn entry(account: &str) -> String {
    if let Some(name) = account.strip_prefix(SOURCE_PREFIX) {
        format!("the key of source {name}")
    } else if let Some(name) = account.strip_prefix(SESSION_PREFIX) {
        format!("the MFA session of source {name}")
    } else {
        format!("keychain entry {account:?}")
    }
}

/// `prod` for `source:prod` or `session:prod`; the account itself otherwise.
fn source_name_of(account: &str) -> &str {
    account
        .strip_prefix(SOURCE_PREFIX)
        .or_else(|| account.strip_prefix(SESSION_PREFIX))
        .unwrap_or(account)
}

/// What the store holds of one source (see [`Vault::entries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entries {
    /// The source name.
    pub source: String,
    /// Its long-lived key is stored.
    pub key: bool,
    /// A cached MFA session of it is stored.
    pub session: bool,
}

/// A cached MFA session (GetSessionToken credentials) of a source.
#[derive(Clone, Debug)]
pub struct CachedSession {
    /// The temporary credentials; `expiration` and `session_token` are required.
    pub credentials: Credentials,
    /// The MFA device the session was made with, if any.
    pub mfa_serial: Option<String>,
    /// The name of the IAM user owning the key the session was made with, when a profile's
    /// `session_name` needed it (`{iam_user}`): kept here so that later processes need not ask
    /// GetCallerIdentity again. Not secret.
    pub iam_user: Option<String>,
}

/// The typed vault: what Rolecall keeps in the [`SecretStore`]. Cheap to clone.
#[derive(Clone)]
pub struct Vault {
    store: Arc<dyn SecretStore>,
}

impl fmt::Debug for Vault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Vault").finish_non_exhaustive()
    }
}

impl Vault {
    /// A vault over `store`.
    pub fn new(store: Arc<dyn SecretStore>) -> Self {
        Vault { store }
    }

    /// The sources that have a key or a cached session in the store, each with what it has,
    /// sorted by name; `None` when the store cannot list its entries. No secret is read.
    pub fn entries(&self) -> Result<Option<Vec<Entries>>, Error> {
        let Some(accounts) = self.store.list_accounts()? else {
            return Ok(None);
        };
        let mut out: Vec<Entries> = Vec::new();
        for account in &accounts {
            let (name, key) = if let Some(n) = account.strip_prefix(SOURCE_PREFIX) {
                (n, true)
            } else if let Some(n) = account.strip_prefix(SESSION_PREFIX) {
                (n, false)
            } else {
                continue;
            };
            let i = match out.iter().position(|e| e.source == name) {
                Some(i) => i,
                None => {
                    out.push(Entries {
                        source: name.to_string(),
                        key: false,
                        session: false,
                    });
                    out.len() - 1
                }
            };
            if key {
                out[i].key = true;
            } else {
                out[i].session = true;
            }
        }
        out.sort_by(|a, b| a.source.cmp(&b.source));
        Ok(Some(out))
    }

    /// The long-lived key stored for `source` (account `source:<name>`), if any.
    pub fn source_key(&self, source: &str) -> Result<Option<Credentials>, Error> {
        let account = account(SOURCE_PREFIX, source)?;
        let Some(blob) = self.store.get(&account)? else {
            return Ok(None);
        };
        let record = Record::parse(&blob, &account)?;
        let key = record.credentials(&account)?;
        validate_source_key(&key).map_err(|_| corrupt(&account, "not a valid long-lived key"))?;
        Ok(Some(key))
    }

    /// Stores `key` as the long-lived key of `source`, replacing any previous one. The key is
    /// checked first: an access key id of 16 to 128 characters A-Z and 0-9, a non-empty secret
    /// without whitespace, and no session token or expiry.
    pub fn set_source_key(&self, source: &str, key: &Credentials) -> Result<(), Error> {
        let account = account(SOURCE_PREFIX, source)?;
        validate_source_key(key)?;
        let record = Record::new(key, None)?;
        let blob = record.to_secret()?;
        self.store
            .set(&account, &blob)
            .map_err(|e| e.scrub(&secrets_of(key, &blob)))
    }

    /// Deletes the long-lived key of `source`; `false` when none was stored.
    pub fn delete_source_key(&self, source: &str) -> Result<bool, Error> {
        self.store.delete(&account(SOURCE_PREFIX, source)?)
    }

    /// The cached MFA session of `source` (account `session:<name>`), if any, expired or not:
    /// the caller decides whether it is still good enough.
    pub fn session(&self, source: &str) -> Result<Option<CachedSession>, Error> {
        let account = account(SESSION_PREFIX, source)?;
        let Some(blob) = self.store.get(&account)? else {
            return Ok(None);
        };
        let record = Record::parse(&blob, &account)?;
        let session = CachedSession {
            credentials: record.credentials(&account)?,
            mfa_serial: record.mfa_serial.as_deref().map(str::to_string),
            iam_user: record.iam_user.as_deref().map(str::to_string),
        };
        validate_session(&session).map_err(|_| corrupt(&account, "not a valid session"))?;
        Ok(Some(session))
    }

    /// Caches `session` for `source`, replacing any previous one. The credentials must carry a
    /// session token and an expiration.
    pub fn set_session(&self, source: &str, session: &CachedSession) -> Result<(), Error> {
        let account = account(SESSION_PREFIX, source)?;
        validate_session(session)?;
        let mut record = Record::new(&session.credentials, session.mfa_serial.as_deref())?;
        record.iam_user = session.iam_user.as_deref().map(Cow::Borrowed);
        let blob = record.to_secret()?;
        self.store
            .set(&account, &blob)
            .map_err(|e| e.scrub(&secrets_of(&session.credentials, &blob)))
    }

    /// Deletes the cached session of `source`; `false` when none was stored.
    pub fn delete_session(&self, source: &str) -> Result<bool, Error> {
        self.store.delete(&account(SESSION_PREFIX, source)?)
    }
}

/// The account for `source` under `prefix`, after checking the name.
fn account(prefix: &str, source: &str) -> Result<String, Error> {
    let n = source.chars().count();
    if n == 0 || n > MAX_SOURCE_NAME {
        return Err(invalid(format!(
            "a source name must have 1 to {MAX_SOURCE_NAME} characters"
        )));
    }
    if source.chars().any(char::is_control) {
        return Err(invalid("a source name must not contain control characters"));
    }
    Ok(format!("{prefix}{source}"))
}

fn invalid(what: impl Into<String>) -> Error {
    Error::Invalid { what: what.into() }
}

/// A `Corrupt` error, with the reason in the debug log only (it never names content).
fn corrupt(account: &str, why: &str) -> Error {
    tracing::debug!(
        account,
        why,
        "keychain entry is not a usable rolecall record"
    );
    Error::Corrupt {
        account: account.to_string(),
    }
}

/// Everything secret a store message must not contain when storing `creds` as `blob`.
fn secrets_of<'a>(creds: &'a Credentials, blob: &'a SecretString) -> Vec<&'a str> {
    let mut v = vec![
        blob.expose_secret(),
        creds.secret_access_key.expose_secret(),
    ];
    if let Some(t) = &creds.session_token {
        v.push(t.expose_secret());
    }
    v
}

/// Loose shape of an access key id: AWS documents 16 to 128 characters, and real ones are
/// upper-case letters and digits (`AKIA…`, `ASIA…`). The value itself never goes into the error:
/// a secret pasted into the wrong field must not end up in a message.
fn validate_key_id(id: &str) -> Result<(), Error> {
    let ok_len = (16..=128).contains(&id.len());
    let ok_chars = id
        .bytes()
        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit());
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(invalid(
            "the access key id must be 16 to 128 characters A-Z and 0-9 (like AKIA…)",
        ))
    }
}

/// A secret must be non-empty and free of whitespace and control characters: a newline in it
/// would let it inject lines into the credentials file it is later written to.
fn validate_secret(what: &str, s: &SecretString) -> Result<(), Error> {
    let s = s.expose_secret();
    if s.is_empty() {
        return Err(invalid(format!("the {what} is empty")));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(invalid(format!(
            "the {what} contains whitespace or control characters"
        )));
    }
    Ok(())
}

fn validate_source_key(key: &Credentials) -> Result<(), Error> {
    validate_key_id(&key.access_key_id)?;
    validate_secret("secret access key", &key.secret_access_key)?;
    if key.session_token.is_some() {
        return Err(invalid(
            "a long-lived key has no session token (temporary credentials cannot be a source key)",
        ));
    }
    if key.expiration.is_some() {
        return Err(invalid(
            "a long-lived key has no expiration (temporary credentials cannot be a source key)",
        ));
    }
    Ok(())
}

fn validate_session(session: &CachedSession) -> Result<(), Error> {
    let c = &session.credentials;
    validate_key_id(&c.access_key_id)?;
    validate_secret("secret access key", &c.secret_access_key)?;
    match &c.session_token {
        Some(t) => validate_secret("session token", t)?,
        None => return Err(invalid("a cached session needs its session token")),
    }
    if c.expiration.is_none() {
        return Err(invalid("a cached session needs its expiration"));
    }
    if session
        .mfa_serial
        .as_deref()
        .is_some_and(|m| m.is_empty() || m.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid(
            "the MFA serial must be non-empty, without whitespace or control characters",
        ));
    }
    if session
        .iam_user
        .as_deref()
        .is_some_and(|u| u.is_empty() || u.chars().any(|c| c.is_whitespace() || c.is_control()))
    {
        return Err(invalid(
            "the IAM user name must be non-empty, without whitespace or control characters",
        ));
    }
    Ok(())
}

/// The stored JSON record, version [`FORMAT_VERSION`]. Strings borrow from the blob when they
/// have no escapes; owned copies (escaped strings) are wiped on drop.
#[derive(Serialize, Deserialize)]
struct Record<'a> {
    v: u32,
    #[serde(borrow)]
    aws_access_key_id: Cow<'a, str>,
    #[serde(borrow)]
    aws_secret_access_key: Cow<'a, str>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    aws_session_token: Option<Cow<'a, str>>,
    /// RFC 3339, UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expiration: Option<String>,
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    mfa_serial: Option<Cow<'a, str>>,
    /// Sessions only: the IAM user owning the key (see [`CachedSession::iam_user`]).
    #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
    iam_user: Option<Cow<'a, str>>,
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let wipe = |c: &mut Cow<'_, str>| {
            if let Cow::Owned(s) = c {
                s.zeroize();
            }
        };
        wipe(&mut self.aws_secret_access_key);
        if let Some(t) = &mut self.aws_session_token {
            wipe(t);
        }
    }
}

impl<'a> Record<'a> {
    fn new(c: &'a Credentials, mfa_serial: Option<&'a str>) -> Result<Self, Error> {
        let expiration = match c.expiration {
            // Before 1970 cannot be formatted (and is no real expiry).
            Some(t) if t < SystemTime::UNIX_EPOCH => {
                return Err(invalid("the expiration is before 1970"));
            }
            Some(t) => Some(humantime::format_rfc3339(t).to_string()),
            None => None,
        };
        Ok(Record {
            v: FORMAT_VERSION,
            aws_access_key_id: Cow::Borrowed(&c.access_key_id),
            aws_secret_access_key: Cow::Borrowed(c.secret_access_key.expose_secret()),
            aws_session_token: c
                .session_token
                .as_ref()
                .map(|t| Cow::Borrowed(t.expose_secret())),
            expiration,
            mfa_serial: mfa_serial.map(Cow::Borrowed),
            iam_user: None,
        })
    }

    /// Parses a stored blob. Errors never carry the blob or serde's message (which can quote
    /// parts of it).
    fn parse(blob: &'a SecretString, account: &str) -> Result<Self, Error> {
        let record: Record<'a> = serde_json::from_str(blob.expose_secret()).map_err(|e| {
            tracing::debug!(
                account,
                line = e.line(),
                column = e.column(),
                "keychain entry is not valid rolecall JSON"
            );
            Error::Corrupt {
                account: account.to_string(),
            }
        })?;
        if record.v != FORMAT_VERSION {
            return Err(corrupt(account, "unknown record version"));
        }
        Ok(record)
    }

    fn credentials(&self, account: &str) -> Result<Credentials, Error> {
        let expiration = match &self.expiration {
            Some(s) => {
                Some(humantime::parse_rfc3339(s).map_err(|_| corrupt(account, "bad expiration"))?)
            }
            None => None,
        };
        Ok(Credentials {
            access_key_id: self.aws_access_key_id.to_string(),
            secret_access_key: SecretString::from(&*self.aws_secret_access_key),
            session_token: self.aws_session_token.as_deref().map(SecretString::from),
            expiration,
        })
    }

    /// Serialises into a buffer of exactly the right size, so that it is never reallocated
    /// (a reallocation would leave an unwiped copy of the secret in freed memory); the buffer
    /// then becomes the [`SecretString`], which wipes it on drop.
    fn to_secret(&self) -> Result<SecretString, Error> {
        let mut counter = ByteCounter(0);
        serde_json::to_writer(&mut counter, self).map_err(serialise_failed)?;
        let mut buf = Vec::with_capacity(counter.0);
        serde_json::to_writer(&mut buf, self).map_err(serialise_failed)?;
        debug_assert_eq!(buf.len(), buf.capacity());
        match String::from_utf8(buf) {
            // capacity == len, so `into_boxed_str` inside `from` does not reallocate.
            Ok(s) => Ok(SecretString::from(s)),
            Err(e) => {
                e.into_bytes().zeroize();
                Err(serialise_failed(io::Error::other("not UTF-8")))
            }
        }
    }
}

fn serialise_failed(e: impl fmt::Display) -> Error {
    // serde_json cannot fail on this record (all strings, no maps with non-string keys); the
    // message names the failure kind only.
    Error::Backend {
        account: String::new(),
        message: format!("could not encode the record: {e}"),
        transient: false,
    }
}

/// An `io::Write` that only counts bytes.
struct ByteCounter(usize);

impl io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const TOKEN: &str = "AQoDYXdzEJr//////////wEa8AHnSbXk7o1n0Ht+vz4hQ==";

    fn vault() -> (Vault, Arc<MemoryStore>) {
        let store = Arc::new(MemoryStore::new());
        (Vault::new(store.clone()), store)
    }

    fn key() -> Credentials {
        Credentials {
            access_key_id: KEY_ID.into(),
            secret_access_key: SecretString::from(SECRET),
            session_token: None,
            expiration: None,
        }
    }

    fn session() -> CachedSession {
        CachedSession {
            credentials: Credentials {
                access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: SecretString::from(SECRET),
                session_token: Some(SecretString::from(TOKEN)),
                // Sub-second precision must survive the round trip too.
                expiration: Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_795_000_000_123)),
            },
            mfa_serial: Some("arn:aws:iam::123456789012:mfa/alice".into()),
            iam_user: None,
        }
    }

    #[test]
    fn a_sessions_iam_user_round_trips_and_older_records_have_none() {
        let (v, store) = vault();
        v.set_session("prod", &session()).unwrap();
        assert!(!raw(&store, "session:prod").contains("iam_user"));
        assert_eq!(v.session("prod").unwrap().unwrap().iam_user, None);
        let with_user = CachedSession {
            iam_user: Some("alice".into()),
            ..session()
        };
        v.set_session("prod", &with_user).unwrap();
        assert_eq!(
            v.session("prod").unwrap().unwrap().iam_user.as_deref(),
            Some("alice")
        );
        let bad = CachedSession {
            iam_user: Some("al ice".into()),
            ..session()
        };
        assert!(matches!(
            v.set_session("prod", &bad),
            Err(Error::Invalid { .. })
        ));
    }

    fn raw(store: &MemoryStore, account: &str) -> String {
        store
            .get(account)
            .expect("memory store does not fail")
            .expect("entry present")
            .expose_secret()
            .to_string()
    }

    #[test]
    fn issue_14_entries_list_each_source_with_what_it_has_without_reading_secrets() {
        let (v, store) = vault();
        assert_eq!(v.entries().unwrap(), Some(vec![]));
        v.set_source_key("prod", &key()).unwrap();
        v.set_session("prod", &session()).unwrap();
        v.set_session("gone", &session()).unwrap();
        v.set_source_key("keyonly", &key()).unwrap();
        store.set("other", &SecretString::from("x")).unwrap();
        assert_eq!(
            v.entries().unwrap(),
            Some(
                [
                    ("gone", false, true),
                    ("keyonly", true, false),
                    ("prod", true, true)
                ]
                .map(|(source, key, session)| Entries {
                    source: source.to_string(),
                    key,
                    session
                })
                .to_vec()
            )
        );
        store.set_locked(true);
        assert!(matches!(v.entries(), Err(Error::Locked { .. })));
    }

    #[test]
    fn source_key_round_trips() {
        let (v, _) = vault();
        assert!(v.source_key("prod").unwrap().is_none());
        v.set_source_key("prod", &key()).unwrap();
        let got = v.source_key("prod").unwrap().unwrap();
        assert_eq!(got.access_key_id, KEY_ID);
        assert_eq!(got.secret_access_key.expose_secret(), SECRET);
        assert!(got.session_token.is_none());
        assert!(got.expiration.is_none());
        assert!(v.delete_source_key("prod").unwrap());
        assert!(!v.delete_source_key("prod").unwrap());
        assert!(v.source_key("prod").unwrap().is_none());
    }

    #[test]
    fn session_round_trips_with_expiration_and_mfa_serial() {
        let (v, _) = vault();
        assert!(v.session("prod").unwrap().is_none());
        let s = session();
        v.set_session("prod", &s).unwrap();
        let got = v.session("prod").unwrap().unwrap();
        assert_eq!(got.credentials.access_key_id, s.credentials.access_key_id);
        assert_eq!(got.credentials.secret_access_key.expose_secret(), SECRET);
        assert_eq!(
            got.credentials
                .session_token
                .as_ref()
                .map(|t| t.expose_secret()),
            Some(TOKEN)
        );
        assert_eq!(got.credentials.expiration, s.credentials.expiration);
        assert_eq!(got.mfa_serial, s.mfa_serial);
        assert!(v.delete_session("prod").unwrap());
        assert!(!v.delete_session("prod").unwrap());
    }

    #[test]
    fn key_and_session_are_separate_entries() {
        let (v, store) = vault();
        v.set_source_key("prod", &key()).unwrap();
        v.set_session("prod", &session()).unwrap();
        assert_eq!(store.accounts(), vec!["session:prod", "source:prod"]);
        assert!(v.delete_session("prod").unwrap());
        assert!(v.source_key("prod").unwrap().is_some());
    }

    #[test]
    fn stored_json_has_version_and_aws_field_names() {
        let (v, store) = vault();
        v.set_source_key("prod", &key()).unwrap();
        let j: serde_json::Value = serde_json::from_str(&raw(&store, "source:prod")).unwrap();
        assert_eq!(
            j,
            serde_json::json!({"v": 1, "aws_access_key_id": KEY_ID, "aws_secret_access_key": SECRET})
        );

        v.set_session("prod", &session()).unwrap();
        let j: serde_json::Value = serde_json::from_str(&raw(&store, "session:prod")).unwrap();
        assert_eq!(j["v"], 1);
        assert_eq!(j["aws_session_token"], TOKEN);
        assert_eq!(j["expiration"], "2026-11-18T11:06:40.123000000Z");
        assert_eq!(j["mfa_serial"], "arn:aws:iam::123456789012:mfa/alice");
    }

    #[test]
    fn escaped_json_strings_still_parse() {
        let (v, store) = vault();
        let blob = format!(
            r#"{{"v":1,"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"wJal\/rXUt\u006E"}}"#
        );
        store.set("source:prod", &SecretString::from(blob)).unwrap();
        let got = v.source_key("prod").unwrap().unwrap();
        assert_eq!(got.secret_access_key.expose_secret(), "wJal/rXUtn");
    }

    #[test]
    fn corrupt_entries_give_corrupt_without_echoing_content() {
        let (v, store) = vault();
        let cases = [
            "not json at all: wJalrXUtnFEMI-SECRET-BITS".to_string(),
            r#"{"v":1,"aws_access_key_id":"AKIAIOSFODNN7EXAMPLE","aws_secret_access_key":42}"#
                .to_string(),
            r#"{"v":1,"aws_access_key_id":"wJalrXUtnFEMI-SECRET-BITS","aws_secret_access_key":"x"}"#
                .to_string(),
            format!(r#"{{"v":2,"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"wJalrXUtnFEMI-SECRET-BITS"}}"#),
            format!(r#"{{"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"wJalrXUtnFEMI-SECRET-BITS"}}"#),
            // A source key entry must not hold a session.
            format!(r#"{{"v":1,"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"wJalrXUtnFEMI-SECRET-BITS","aws_session_token":"t"}}"#),
        ];
        for blob in cases {
            store
                .set("source:prod", &SecretString::from(blob.as_str()))
                .unwrap();
            let err = v.source_key("prod").unwrap_err();
            assert!(
                matches!(&err, Error::Corrupt { account } if account == "source:prod"),
                "{err:?}"
            );
            let (shown, debug) = (err.to_string(), format!("{err:?}"));
            for text in [&shown, &debug] {
                assert!(!text.contains("wJalrXUtnFEMI"), "{text}");
                assert!(!text.contains("42"), "{text}");
            }
            assert!(shown.contains("rolecall keys remove prod"), "{shown}");
            assert!(shown.contains("rolecall keys add prod"), "{shown}");
            assert!(err.needs_user() && !err.is_retryable());
        }

        // A session entry without an expiration, or with a broken one, is corrupt too.
        for blob in [
            format!(
                r#"{{"v":1,"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"s","aws_session_token":"t"}}"#
            ),
            format!(
                r#"{{"v":1,"aws_access_key_id":"{KEY_ID}","aws_secret_access_key":"s","aws_session_token":"t","expiration":"soon"}}"#
            ),
        ] {
            store
                .set("session:prod", &SecretString::from(blob))
                .unwrap();
            let err = v.session("prod").unwrap_err();
            assert!(
                matches!(&err, Error::Corrupt { account } if account == "session:prod"),
                "{err:?}"
            );
        }
    }

    #[test]
    fn invalid_source_keys_are_rejected_without_echoing_them() {
        let (v, store) = vault();
        let with = |f: fn(&mut Credentials)| {
            let mut k = key();
            f(&mut k);
            k
        };
        let bad = [
            with(|k| k.access_key_id = "AKIA123".into()),
            with(|k| k.access_key_id = "akiaiosfodnn7example".into()),
            with(|k| k.access_key_id = SECRET.into()),
            with(|k| k.access_key_id = "A".repeat(129)),
            with(|k| k.secret_access_key = SecretString::from("")),
            with(|k| k.secret_access_key = SecretString::from("wJalr\nXUtn")),
            with(|k| k.session_token = Some(SecretString::from(TOKEN))),
            with(|k| k.expiration = Some(SystemTime::now())),
        ];
        for k in bad {
            let err = v.set_source_key("prod", &k).unwrap_err();
            assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
            let shown = format!("{err} {err:?}");
            assert!(!shown.contains("wJalr"), "{shown}");
            assert!(!shown.contains("AQoDYXdz"), "{shown}");
            assert!(!err.needs_user() && !err.is_retryable());
        }
        assert!(store.accounts().is_empty());
        // The longest legal key id is accepted.
        v.set_source_key("prod", &with(|k| k.access_key_id = "A".repeat(128)))
            .unwrap();
    }

    #[test]
    fn invalid_sessions_and_source_names_are_rejected() {
        let (v, store) = vault();
        let mut s = session();
        s.credentials.expiration = None;
        assert!(matches!(v.set_session("p", &s), Err(Error::Invalid { .. })));
        let mut s = session();
        s.credentials.session_token = None;
        assert!(matches!(v.set_session("p", &s), Err(Error::Invalid { .. })));
        let mut s = session();
        s.mfa_serial = Some(String::new());
        assert!(matches!(v.set_session("p", &s), Err(Error::Invalid { .. })));
        for name in ["", "a\nb", &"n".repeat(201)] {
            assert!(matches!(
                v.set_source_key(name, &key()),
                Err(Error::Invalid { .. })
            ));
            assert!(matches!(v.session(name), Err(Error::Invalid { .. })));
        }
        assert!(store.accounts().is_empty());
    }

    #[test]
    fn debug_output_never_shows_secrets() {
        let (v, store) = vault();
        v.set_source_key("prod", &key()).unwrap();
        v.set_session("prod", &session()).unwrap();
        let s = v.session("prod").unwrap().unwrap();
        let k = v.source_key("prod").unwrap().unwrap();
        let blob = store.get("source:prod").unwrap().unwrap();
        for text in [
            format!("{s:?}"),
            format!("{k:?}"),
            format!("{v:?}"),
            format!("{store:?}"),
            format!("{blob:?}"),
        ] {
            assert!(!text.contains("wJalr"), "{text}");
            assert!(!text.contains("AQoDYXdz"), "{text}");
            assert!(!text.contains("IOSFODNN7"), "{text}");
        }
    }

    #[test]
    fn store_errors_are_scrubbed_of_secrets() {
        let (v, store) = vault();
        store.fail_with(Some(|account: &str| Error::Backend {
            account: account.to_string(),
            message: format!("backend echoed {SECRET}"),
            transient: true,
        }));
        let err = v.set_source_key("prod", &key()).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("wJalr"), "{shown}");
        assert!(err.is_retryable());
    }

    #[test]
    fn error_classes_and_messages() {
        let locked = Error::Locked {
            account: "source:prod".into(),
        };
        assert!(locked.needs_user() && !locked.is_retryable());
        assert!(locked.to_string().contains("keychain is locked"));
        assert!(locked.to_string().contains("gnome-keyring-daemon --unlock"));
        let unavailable = Error::Unavailable {
            reason: "no bus".into(),
        };
        assert!(unavailable.needs_user() && !unavailable.is_retryable());
        assert!(
            unavailable
                .to_string()
                .contains("gnome-keyring-daemon --unlock")
        );
        let denied = Error::Denied {
            account: "session:prod".into(),
        };
        assert!(denied.needs_user());
        assert_eq!(denied.account(), Some("session:prod"));
        let backend = |transient| Error::Backend {
            account: "source:x".into(),
            message: "m".into(),
            transient,
        };
        assert!(backend(true).is_retryable() && !backend(true).needs_user());
        assert!(!backend(false).is_retryable() && !backend(false).needs_user());
        assert!(
            backend(false)
                .to_string()
                .starts_with("the key of source x: ")
        );
        let no_entry = Error::Backend {
            account: String::new(),
            message: "m".into(),
            transient: true,
        };
        assert!(
            no_entry.to_string().starts_with("the keychain failed: m; "),
            "{no_entry}"
        );
        for e in [locked, unavailable, denied, backend(true)] {
            let s = e.to_string();
            assert!(s.starts_with(|c: char| c.is_lowercase()), "{s}");
            assert!(!s.ends_with('.'), "{s}");
        }
    }

    #[test]
    fn a_locked_store_surfaces_as_locked() {
        let (v, store) = vault();
        v.set_source_key("prod", &key()).unwrap();
        store.set_locked(true);
        assert!(
            matches!(v.source_key("prod"), Err(Error::Locked { account }) if account == "source:prod")
        );
        assert!(matches!(
            v.set_session("prod", &session()),
            Err(Error::Locked { .. })
        ));
        store.set_locked(false);
        assert!(v.source_key("prod").unwrap().is_some());
    }
}
