//! [`KeychainStore`]: the OS keychain as a [`SecretStore`], through `keyring-core` (service
//! `rolecall`, username = the account). On Linux the store is `dbus-secret-service-keyring-store`
//! (libdbus, runs on the caller's thread: no background threads, no idle wake-ups); on macOS
//! and Windows the keyring family's native stores. It must never fall back to another store,
//! never wait on an unlock prompt, and never put a secret into an error.
//!
//! Why a lock check on Linux: the keyring store unlocks locked items by asking the Secret
//! Service for a prompt and then waits up to a year for the answer (`SecretService::connect`
//! without a prompt timeout, and the store takes no configuration). Headless, gnome-keyring
//! dismisses that prompt at once (its prompter cannot start), but in a desktop session an
//! unanswered dialog would block the calling thread, and every later keychain call behind the
//! store's mutex. So before each call we look at the entry (and, to create one, the default
//! collection) through a second, prompt-free connection, and fail with [`Error::Locked`] when
//! anything is locked. Every D-Bus method call has a 2 s timeout (`dbus-secret-service`).
//!
//! Both connections use `DBUS_SESSION_BUS_ADDRESS` (libdbus's session bus lookup): neither
//! crate accepts an address per connection.

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use keyring_core::{CredentialStore, Entry};
use zeroize::Zeroize;

use super::{Error, SERVICE, SecretStore};
use crate::credentials::{ExposeSecret, SecretString};

/// The OS keychain. Opening connects (on Linux: to the Secret Service on the D-Bus session
/// bus) and fails with [`Error::Unavailable`] when there is none. A connection that breaks
/// later (the keyring daemon restarted) is reopened once per call.
pub struct KeychainStore {
    conn: Mutex<Option<Connected>>,
}

impl fmt::Debug for KeychainStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeychainStore").finish_non_exhaustive()
    }
}

impl KeychainStore {
    /// Connects to the OS keychain.
    ///
    /// Errors: [`Error::Unavailable`] when no keychain is reachable (Linux: no D-Bus session,
    /// nothing owning `org.freedesktop.secrets`; other OSes without a store in this build).
    pub fn open() -> Result<Self, Error> {
        let conn = match Connected::open() {
            Err(Failure::Gone { message }) => Connected::wait_back(&message),
            other => other,
        }
        .map_err(|f| f.into_error(""))?;
        Ok(KeychainStore {
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Runs `op` on the entry for `account` after the access check, reconnecting once if the
    /// connection turned out stale, and once more after waiting for a keychain service that
    /// died while answering to come back.
    ///
    /// Retrying is safe because every operation is idempotent: a read, a replace of the whole
    /// secret, a delete (which then reports "nothing to delete").
    fn run<T>(
        &self,
        account: &str,
        access: Access,
        op: impl Fn(&Entry) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut guard = self.lock();
        let mut reconnected = false;
        let mut waited = false;
        loop {
            let conn: &Connected = match &mut *guard {
                Some(conn) => conn,
                slot @ None => slot.insert(match Connected::open() {
                    Ok(conn) => conn,
                    Err(Failure::Gone { message }) if !waited => {
                        waited = true;
                        Connected::wait_back(&message).map_err(|f| f.into_error(account))?
                    }
                    Err(f) => return Err(f.into_error(account)),
                }),
            };
            let result = conn
                .check(account, access)
                .and_then(|()| op(&conn.entry(account)?));
            match result {
                Ok(v) => return Ok(v),
                Err(Failure::Gone { message }) if !waited => {
                    *guard = None;
                    waited = true;
                    let conn = Connected::wait_back(&message).map_err(|f| f.into_error(account))?;
                    *guard = Some(conn);
                }
                Err(f) if f.wants_reconnect() && !reconnected => {
                    tracing::debug!(account, "keychain connection looks stale; reconnecting");
                    *guard = None;
                    reconnected = true;
                }
                Err(f) => {
                    if f.wants_reconnect() {
                        *guard = None;
                    }
                    return Err(f.into_error(account));
                }
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, Option<Connected>> {
        // The guarded value is either a whole connection or none: a panic cannot leave it half
        // updated.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SecretStore for KeychainStore {
    /// The Secret Service can search by attribute (Linux); the Apple and Windows stores are
    /// not asked here (`None`).
    fn list_accounts(&self) -> Result<Option<Vec<String>>, Error> {
        #[cfg(target_os = "linux")]
        {
            let mut guard = self.lock();
            let conn: &Connected = match &mut *guard {
                Some(conn) => conn,
                slot @ None => slot.insert(Connected::open().map_err(|f| f.into_error(""))?),
            };
            conn.probe
                .accounts()
                .map(Some)
                .map_err(|f| f.into_error(""))
        }
        #[cfg(not(target_os = "linux"))]
        Ok(None)
    }

    fn get(&self, account: &str) -> Result<Option<SecretString>, Error> {
        self.run(account, Access::Read, |entry| match entry.get_secret() {
            Ok(mut bytes) => {
                // Copy into an exactly sized string (no reallocation leaves a stray copy),
                // then wipe the store's buffer.
                let secret = std::str::from_utf8(&bytes).map(SecretString::from);
                bytes.zeroize();
                secret.map(Some).map_err(|_| Failure::Corrupt)
            }
            Err(keyring_core::Error::NoEntry) => Ok(None),
            Err(e) => Err(classify(e)),
        })
    }

    fn set(&self, account: &str, secret: &SecretString) -> Result<(), Error> {
        self.run(account, Access::Write, |entry| {
            entry
                .set_secret(secret.expose_secret().as_bytes())
                .map_err(classify)
        })
        .map_err(|e| e.scrub(&[secret.expose_secret()]))
    }

    fn delete(&self, account: &str) -> Result<bool, Error> {
        self.run(account, Access::Delete, |entry| {
            match entry.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring_core::Error::NoEntry) => Ok(false),
                Err(e) => Err(classify(e)),
            }
        })
    }
}

/// What a call is about to do, for the lock check.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Access {
    Read,
    /// Create or replace: creating needs the default collection unlocked.
    Write,
    Delete,
}

/// How long a call waits for a keychain service that died while answering to be started
/// again (systemd restarts gnome-keyring `on-failure` after 100 ms; D-Bus activation starts it
/// on the next call) before it gives up.
const SERVICE_RESTART_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// An open keychain: the keyring-core store, plus (Linux) the prompt-free probe.
struct Connected {
    store: Arc<CredentialStore>,
    #[cfg(target_os = "linux")]
    probe: linux::Probe,
}

impl Connected {
    #[cfg(target_os = "linux")]
    fn open() -> Result<Self, Failure> {
        let store: Arc<CredentialStore> =
            dbus_secret_service_keyring_store::Store::new().map_err(|e| classify(e).at_open())?;
        let probe = linux::Probe::open().map_err(Failure::at_open)?;
        Ok(Connected { store, probe })
    }

    /// After the service died under a call (`message`): opens a new connection, trying every
    /// 100 ms for up to [`SERVICE_RESTART_WAIT`] while nothing provides the service yet.
    fn wait_back(message: &str) -> Result<Self, Failure> {
        let deadline = std::time::Instant::now() + SERVICE_RESTART_WAIT;
        loop {
            match Connected::open() {
                Ok(conn) => {
                    tracing::warn!(
                        "the keychain service stopped while answering and is back; retrying"
                    );
                    return Ok(conn);
                }
                Err(f) if std::time::Instant::now() >= deadline => {
                    tracing::debug!(failure = ?f, "the keychain service did not come back");
                    return Err(Failure::gone_for_good(message));
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(100)),
            }
        }
    }

    #[cfg(target_os = "macos")]
    fn open() -> Result<Self, Failure> {
        let store: Arc<CredentialStore> = apple_native_keyring_store::keychain::Store::new()
            .map_err(|e| classify(e).at_open())?;
        Ok(Connected { store })
    }

    #[cfg(target_os = "windows")]
    fn open() -> Result<Self, Failure> {
        let store: Arc<CredentialStore> =
            windows_native_keyring_store::Store::new().map_err(|e| classify(e).at_open())?;
        Ok(Connected { store })
    }

    #[cfg(not(any(target_os = "linux", target_os = "macos", target_os = "windows")))]
    fn open() -> Result<Self, Failure> {
        Err(Failure::Unavailable {
            reason: "this build of rolecall has no keychain support for this operating system"
                .to_string(),
            reconnect: false,
        })
    }

    /// Fails with `Locked` instead of letting the store prompt (Linux); nothing to do elsewhere.
    fn check(&self, account: &str, access: Access) -> Result<(), Failure> {
        #[cfg(target_os = "linux")]
        return self.probe.check(account, access);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = (account, access);
            Ok(())
        }
    }

    fn entry(&self, account: &str) -> Result<Entry, Failure> {
        // The label is what Seahorse / KeePassXC show; only the Secret Service store takes it
        // (the others reject unknown modifiers).
        #[cfg(target_os = "linux")]
        {
            let label = linux::label_for(account);
            let modifiers = std::collections::HashMap::from([("label", label.as_str())]);
            self.store
                .build(SERVICE, account, Some(&modifiers))
                .map_err(classify)
        }
        #[cfg(not(target_os = "linux"))]
        {
            self.store.build(SERVICE, account, None).map_err(classify)
        }
    }
}

/// A classified store failure, before it is tied to an account.
#[derive(Debug)]
enum Failure {
    // (only the Secret Service reports a locked collection as such)
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Locked,
    Denied,
    Corrupt,
    Unavailable {
        reason: String,
        /// Whether a fresh connection may help (the bus or the service went away).
        reconnect: bool,
    },
    Backend {
        message: String,
        transient: bool,
        /// Whether a fresh connection may help (our session object is gone).
        reconnect: bool,
    },
    /// The keychain service exited while a call to it was pending (gnome-keyring has known
    /// crashes on a client's first request); the session manager usually starts it again.
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    Gone {
        message: String,
    },
}

impl Failure {
    fn backend(message: impl Into<String>) -> Self {
        Failure::Backend {
            message: message.into(),
            transient: false,
            reconnect: false,
        }
    }

    /// What a call reports when the service died under it and did not come back.
    fn gone_for_good(message: &str) -> Self {
        Failure::Backend {
            message: format!(
                "the keychain service stopped while answering ({message}) and was not running \
                 again {} s later; start it again (e.g. `systemctl --user restart \
                 gnome-keyring-daemon`, or log out and in)",
                SERVICE_RESTART_WAIT.as_secs()
            ),
            transient: true,
            reconnect: true,
        }
    }

    fn wants_reconnect(&self) -> bool {
        matches!(
            self,
            Failure::Unavailable {
                reconnect: true,
                ..
            } | Failure::Backend {
                reconnect: true,
                ..
            }
        )
    }

    /// While connecting, any lasting failure means there is no usable keychain.
    fn at_open(self) -> Self {
        match self {
            Failure::Backend {
                message,
                transient: false,
                ..
            } => Failure::Unavailable {
                reason: message,
                reconnect: false,
            },
            other => other,
        }
    }

    fn into_error(self, account: &str) -> Error {
        let account = account.to_string();
        match self {
            Failure::Locked => Error::Locked { account },
            Failure::Denied => Error::Denied { account },
            Failure::Corrupt => Error::Corrupt { account },
            Failure::Unavailable { reason, .. } => Error::Unavailable { reason },
            Failure::Gone { message } => Error::Backend {
                account,
                message: format!("the keychain service stopped while answering ({message})"),
                transient: true,
            },
            Failure::Backend {
                message, transient, ..
            } => Error::Backend {
                account,
                message,
                transient,
            },
        }
    }
}

/// Maps keyring-core's error. Variants that carry the stored bytes (`BadEncoding`,
/// `BadDataFormat`) are wiped and never formatted.
fn classify(err: keyring_core::Error) -> Failure {
    use keyring_core::Error as K;
    match err {
        K::NoStorageAccess(e) => classify_platform(e.as_ref(), true),
        K::PlatformFailure(e) => classify_platform(e.as_ref(), false),
        K::BadEncoding(mut bytes) | K::BadDataFormat(mut bytes, _) => {
            bytes.zeroize();
            Failure::Corrupt
        }
        K::Ambiguous(entries) => Failure::backend(format!(
            "{} keychain items match this entry; delete all but one (e.g. in Seahorse or \
             KeePassXC)",
            entries.len()
        )),
        K::TooLong(what, limit) => {
            Failure::backend(format!("the keychain limits {what} to {limit} characters"))
        }
        K::NoEntry => Failure::backend("the entry vanished during the call"),
        // BadStoreFormat, Invalid, NoDefaultStore, NotSupportedByStore and future kinds: their
        // messages name attributes and limits, never the secret.
        other => Failure::backend(other.to_string()),
    }
}

#[cfg(target_os = "linux")]
fn classify_platform(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    no_access: bool,
) -> Failure {
    match e.downcast_ref::<dbus_secret_service::Error>() {
        Some(e) => linux::classify_ss(e),
        None => classify_other_platform(e, no_access),
    }
}

#[cfg(not(target_os = "linux"))]
fn classify_platform(
    e: &(dyn std::error::Error + Send + Sync + 'static),
    no_access: bool,
) -> Failure {
    classify_other_platform(e, no_access)
}

/// macOS and Windows report a locked or refusing keychain as `NoStorageAccess`.
fn classify_other_platform(e: &(dyn std::error::Error + 'static), no_access: bool) -> Failure {
    if no_access {
        Failure::Denied
    } else {
        Failure::backend(e.to_string())
    }
}

#[cfg(target_os = "linux")]
mod linux {
    //! The Secret Service side: a prompt-free probe connection, and D-Bus error classes.

    use std::collections::HashMap;

    use dbus_secret_service::{EncryptionType, SecretService};

    use super::{Access, Failure};
    use crate::vault::{SERVICE, SESSION_PREFIX, SOURCE_PREFIX};

    /// A second connection, opened with a prompt timeout of 0 so that it can never wait for a
    /// user, used only to read lock state. It carries no secrets, so it skips encryption.
    pub(super) struct Probe {
        ss: SecretService,
    }

    impl Probe {
        pub(super) fn open() -> Result<Self, Failure> {
            let ss = SecretService::connect_with_max_prompt_timeout(EncryptionType::Plain, 0)
                .map_err(|e| classify_ss(&e))?;
            Ok(Probe { ss })
        }

        /// `Locked` when the entry (or, to create it, the default collection) is locked. The
        /// store would otherwise ask the Secret Service to prompt for an unlock.
        pub(super) fn check(&self, account: &str, access: Access) -> Result<(), Failure> {
            let attributes = HashMap::from([("service", SERVICE), ("username", account)]);
            let found = self
                .ss
                .search_items(attributes)
                .map_err(|e| classify_ss(&e))?;
            if !found.locked.is_empty() {
                return Err(Failure::Locked);
            }
            if access == Access::Write && found.unlocked.is_empty() {
                let collection = self
                    .ss
                    .get_default_collection()
                    .map_err(|e| classify_ss(&e))?;
                if collection.is_locked().map_err(|e| classify_ss(&e))? {
                    return Err(Failure::Locked);
                }
            }
            Ok(())
        }
    }

    impl Probe {
        /// The accounts of every item of service `rolecall`, locked ones too (attributes
        /// are readable without unlocking), sorted; no secret is read.
        pub(super) fn accounts(&self) -> Result<Vec<String>, Failure> {
            let attributes = HashMap::from([("service", SERVICE)]);
            let found = self
                .ss
                .search_items(attributes)
                .map_err(|e| classify_ss(&e))?;
            let mut out = Vec::new();
            for item in found.unlocked.iter().chain(&found.locked) {
                let attributes = item.get_attributes().map_err(|e| classify_ss(&e))?;
                if let Some(account) = attributes.get("username") {
                    out.push(account.clone());
                }
            }
            out.sort();
            out.dedup();
            Ok(out)
        }
    }

    /// The label of a new item: what Seahorse and KeePassXC show.
    pub(super) fn label_for(account: &str) -> String {
        if let Some(name) = account.strip_prefix(SOURCE_PREFIX) {
            format!("Rolecall: AWS key of source {name}")
        } else if let Some(name) = account.strip_prefix(SESSION_PREFIX) {
            format!("Rolecall: MFA session of source {name}")
        } else {
            format!("Rolecall: {account}")
        }
    }

    /// Maps a `dbus-secret-service` error.
    pub(super) fn classify_ss(e: &dbus_secret_service::Error) -> Failure {
        use dbus_secret_service::Error as S;
        match e {
            S::Locked => Failure::Locked,
            // The unlock or permission prompt was dismissed (or could not be shown).
            S::Prompt => Failure::Denied,
            // No collection has the alias "default" (a fresh gnome-keyring without a login
            // keyring).
            S::NoResult => Failure::Unavailable {
                reason: "the Secret Service has no default keyring; create one (log in to the \
                         desktop once, or run `gnome-keyring-daemon --unlock` and type a new \
                         password)"
                    .to_string(),
                reconnect: false,
            },
            S::Unavailable => Failure::Unavailable {
                reason: e.to_string(),
                reconnect: false,
            },
            S::Dbus(d) => classify_dbus(d.name().unwrap_or(""), d.message().unwrap_or("")),
            // Crypto, Parse, Path, UnsupportedSecretFormat and future kinds.
            other => Failure::backend(other.to_string()),
        }
    }

    /// Maps a D-Bus error by name.
    pub(super) fn classify_dbus(name: &str, message: &str) -> Failure {
        const DBUS: &str = "org.freedesktop.DBus.Error.";
        let short = name.strip_prefix(DBUS);
        match (name, short) {
            ("org.freedesktop.Secret.Error.IsLocked", _) => Failure::Locked,
            (_, Some("AccessDenied" | "AuthFailed" | "InteractiveAuthorizationRequired")) => {
                Failure::Denied
            }
            (_, Some("ServiceUnknown" | "NameHasNoOwner")) => Failure::Unavailable {
                reason: format!(
                    "nothing provides org.freedesktop.secrets on the D-Bus session bus ({message})"
                ),
                reconnect: true,
            },
            (_, Some(s)) if s.starts_with("Spawn.") => Failure::Unavailable {
                reason: format!("the Secret Service could not be started ({message})"),
                reconnect: false,
            },
            (
                _,
                Some(
                    "NoServer" | "FileNotFound" | "NotSupported" | "BadAddress" | "NoNetwork"
                    | "Disconnected" | "IOError",
                ),
            ) => Failure::Unavailable {
                reason: format!("cannot reach the D-Bus session bus ({message})"),
                reconnect: true,
            },
            // The bus answers a pending call this way when the service's connection closed:
            // it exited (crashed) before replying. (A timeout is a NoReply too, with another
            // message.)
            (_, Some("NoReply")) if message.contains("disconnected") => Failure::Gone {
                message: message.to_string(),
            },
            (_, Some("NoReply" | "Timeout" | "TimedOut" | "LimitsExceeded" | "NoMemory")) => {
                Failure::Backend {
                    message: format!("the keychain did not answer in time ({message})"),
                    transient: true,
                    reconnect: false,
                }
            }
            // Our session object is gone: the keyring daemon restarted under us.
            ("org.freedesktop.Secret.Error.NoSession", _)
            | (_, Some("UnknownObject" | "UnknownMethod")) => Failure::Backend {
                message: format!("{message} ({name})"),
                transient: true,
                reconnect: true,
            },
            _ => Failure::backend(format!("{message} ({name})")),
        }
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    //! Pure classification checks. The store against a real Secret Service (gnome-keyring on a
    //! private bus: round trips, a locked keyring, a restarted daemon, no service) is tested in
    //! the integration tests, `tests/vault.rs`.

    use super::*;

    #[test]
    fn dbus_errors_are_classified() {
        use linux::classify_dbus;
        let is = |name: &str, f: fn(&Failure) -> bool| {
            let got = classify_dbus(name, "m");
            assert!(f(&got), "{name} -> {got:?}");
        };
        is("org.freedesktop.Secret.Error.IsLocked", |f| {
            matches!(f, Failure::Locked)
        });
        is("org.freedesktop.DBus.Error.AccessDenied", |f| {
            matches!(f, Failure::Denied)
        });
        is("org.freedesktop.DBus.Error.ServiceUnknown", |f| {
            matches!(f, Failure::Unavailable { .. })
        });
        is("org.freedesktop.DBus.Error.Spawn.ChildExited", |f| {
            matches!(
                f,
                Failure::Unavailable {
                    reconnect: false,
                    ..
                }
            )
        });
        is("org.freedesktop.DBus.Error.NoReply", |f| {
            matches!(
                f,
                Failure::Backend {
                    transient: true,
                    reconnect: false,
                    ..
                }
            )
        });
        let gone = classify_dbus(
            "org.freedesktop.DBus.Error.NoReply",
            "Message recipient disconnected from message bus without replying",
        );
        assert!(matches!(gone, Failure::Gone { .. }), "{gone:?}");
        is("org.freedesktop.Secret.Error.NoSession", |f| {
            f.wants_reconnect()
        });
        is("org.example.Weird", |f| {
            matches!(
                f,
                Failure::Backend {
                    transient: false,
                    ..
                }
            )
        });
    }

    #[test]
    fn stored_bytes_in_keyring_errors_are_never_shown() {
        let f = classify(keyring_core::Error::BadEncoding(b"\xffsecret".to_vec()));
        assert!(matches!(f, Failure::Corrupt));
        let e = f.into_error("source:x");
        assert!(!format!("{e} {e:?}").contains("secret"), "{e:?}");
    }
}
