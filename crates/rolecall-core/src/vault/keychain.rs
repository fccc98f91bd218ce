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
        let conn = Connected::open().map_err(|f| f.into_error(""))?;
        Ok(KeychainStore {
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Runs `op` on the entry for `account` after the access check, reconnecting once if the
    /// connection turned out stale.
    fn run<T>(
        &self,
        account: &str,
        access: Access,
        op: impl Fn(&Entry) -> Result<T, Failure>,
    ) -> Result<T, Error> {
        let mut guard = self.lock();
        let mut reconnected = false;
        loop {
            let conn: &Connected = match &mut *guard {
                Some(conn) => conn,
                slot @ None => slot.insert(Connected::open().map_err(|f| f.into_error(account))?),
            };
            let result = conn
                .check(account, access)
                .and_then(|()| op(&conn.entry(account)?));
            match result {
                Ok(v) => return Ok(v),
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
}

impl Failure {
    fn backend(message: impl Into<String>) -> Self {
        Failure::Backend {
            message: message.into(),
            transient: false,
            reconnect: false,
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
    //! Runs against a real Secret Service: a private `dbus-daemon` and `gnome-keyring-daemon`
    //! started by the test itself. libdbus finds the bus only through
    //! `DBUS_SESSION_BUS_ADDRESS`, and changing the environment of this (multi-threaded) test
    //! process is unsound, so the test re-runs itself as a child process with that variable
    //! set; the child does the checks.

    use std::io::{BufRead, BufReader, Write};
    use std::path::{Path, PathBuf};
    use std::process::{Child, Command, Output, Stdio};
    use std::sync::Arc;
    use std::time::{Duration, Instant, SystemTime};

    use super::*;
    use crate::credentials::Credentials;
    use crate::vault::{CachedSession, Vault};

    /// Tells the re-run child which checks to do.
    const CHILD_ENV: &str = "ROLECALL_TEST_SECRET_SERVICE_CHILD";
    const LOGIN: &str = "/org/freedesktop/secrets/collection/login";
    const INSTALL_HINT: &str = "install the test packages: make deps";

    /// Reads what the parent passed to the re-run child (the parent controls this environment).
    #[allow(clippy::disallowed_methods)]
    fn test_env(name: &str) -> Option<String> {
        std::env::var(name).ok()
    }

    #[test]
    fn real_secret_service() {
        match test_env(CHILD_ENV).as_deref() {
            None => parent(),
            Some("keyring") => child_keyring(),
            Some("unavailable") => child_unavailable(),
            Some(other) => panic!("unknown {CHILD_ENV}={other}"),
        }
    }

    /// A process killed (and reaped) on drop.
    struct Daemon {
        child: Child,
        name: &'static str,
    }

    impl Drop for Daemon {
        fn drop(&mut self) {
            if let Err(e) = self.child.kill() {
                eprintln!("stopping {} (pid {}): {e}", self.name, self.child.id());
            }
            let _ = self.child.wait();
        }
    }

    fn require(tool: &str) {
        match Command::new(tool).arg("--version").output() {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                panic!("{tool} is not installed; {INSTALL_HINT}")
            }
            Err(e) => panic!("cannot run {tool}: {e}"),
        }
    }

    /// Starts a dbus-daemon with `args` and returns it with its address.
    fn start_bus(home: &Path, args: &[&str]) -> (Daemon, String) {
        let log = home.join(format!("dbus-daemon-{}.log", fastrand::u32(..)));
        let mut child = Command::new("dbus-daemon")
            .args(args)
            .args(["--nofork", "--print-address=1"])
            .env_clear()
            .env("HOME", home)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("create the bus log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start dbus-daemon: {e}; {INSTALL_HINT}"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let daemon = Daemon {
            child,
            name: "dbus-daemon",
        };
        // The address line is printed once the bus listens: a readiness signal, not a guess.
        let mut address = String::new();
        BufReader::new(stdout)
            .read_line(&mut address)
            .expect("read the bus address");
        let address = address.trim().to_string();
        assert!(
            !address.is_empty(),
            "dbus-daemon printed no address: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        (daemon, address)
    }

    /// Starts gnome-keyring-daemon on `bus` with its login keyring unlocked by password "pw"
    /// (created on first start), logging to `log`.
    fn start_keyring(bus: &str, home: &Path, runtime: &Path, log: &Path) -> Daemon {
        let mut child = Command::new("gnome-keyring-daemon")
            .args(["--unlock", "--components=secrets", "--foreground"])
            .env_clear()
            .env("HOME", home)
            .env("XDG_DATA_HOME", home.join(".local/share"))
            .env("XDG_RUNTIME_DIR", runtime)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).expect("create keyring log"))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start gnome-keyring-daemon: {e}; {INSTALL_HINT}"));
        {
            // Dropping stdin sends EOF: the end of the password.
            let mut stdin = child.stdin.take().expect("stdin is piped");
            stdin.write_all(b"pw").expect("send the keyring password");
        }
        let mut daemon = Daemon {
            child,
            name: "gnome-keyring-daemon",
        };
        wait_for_keyring(bus, &mut daemon);
        daemon
    }

    fn gdbus(bus: &str, args: &[&str]) -> Output {
        Command::new("gdbus")
            .args(["call", "--session"])
            .args(args)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .output()
            .unwrap_or_else(|e| panic!("cannot run gdbus: {e}; {INSTALL_HINT}"))
    }

    fn stdout_of(o: &Output) -> String {
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    }

    /// Probes until gnome-keyring owns its name and the login collection is unlocked. The
    /// name is checked first: calling the service earlier would make the bus start another one.
    fn wait_for_keyring(bus: &str, keyring: &mut Daemon) {
        let deadline = Instant::now() + Duration::from_secs(20);
        let ready = || {
            let owner = gdbus(
                bus,
                &[
                    "--dest=org.freedesktop.DBus",
                    "--object-path=/org/freedesktop/DBus",
                    "--method=org.freedesktop.DBus.NameHasOwner",
                    "org.freedesktop.secrets",
                ],
            );
            if stdout_of(&owner) != "(true,)" {
                return false;
            }
            let locked = gdbus(
                bus,
                &[
                    "--dest=org.freedesktop.secrets",
                    &format!("--object-path={LOGIN}"),
                    "--method=org.freedesktop.DBus.Properties.Get",
                    "org.freedesktop.Secret.Collection",
                    "Locked",
                ],
            );
            stdout_of(&locked) == "(<false>,)"
        };
        while !ready() {
            if let Ok(Some(status)) = keyring.child.try_wait() {
                panic!("gnome-keyring-daemon exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "gnome-keyring-daemon did not come up with an unlocked login keyring"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Re-runs this test in a child process on `bus`, in `mode`; fails if the child fails.
    fn run_child(mode: &str, bus: &str, home: &Path, runtime: &Path) {
        let exe = std::env::current_exe().expect("test executable path");
        let name = concat!(module_path!(), "::real_secret_service");
        let name = name.split_once("::").map_or(name, |(_crate, rest)| rest);
        let out = Command::new(exe)
            .args([name, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, mode)
            .env("DBUS_SESSION_BUS_ADDRESS", bus)
            .env("HOME", home)
            .env("XDG_RUNTIME_DIR", runtime)
            // No display: no prompter could ever show a dialog.
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .output()
            .expect("run the child test");
        let text = format!(
            "--- child {mode} stdout:\n{}\n--- child {mode} stderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "child {mode} failed: {}\n{text}",
            out.status
        );
        eprintln!("{text}");
        assert!(
            text.contains("1 passed"),
            "child {mode} ran no test\n{text}"
        );
    }

    fn parent() {
        for tool in [
            "dbus-daemon",
            "gnome-keyring-daemon",
            "secret-tool",
            "gdbus",
        ] {
            require(tool);
        }
        let tmp = tempfile::tempdir().expect("temp dir");
        let home = tmp.path().join("home");
        let runtime = tmp.path().join("run");
        for d in [&home, &runtime] {
            std::fs::create_dir_all(d).expect("create test dirs");
        }

        // 1. A session bus with gnome-keyring, login keyring unlocked with a known password.
        let (_bus, address) = start_bus(&home, &["--session"]);
        let keyring_log = tmp.path().join("gnome-keyring.log");
        let keyring = start_keyring(&address, &home, &runtime, &keyring_log);
        run_child("keyring", &address, &home, &runtime);
        let log = std::fs::read_to_string(&keyring_log).unwrap_or_default();
        assert!(
            !log.to_lowercase().contains("prompt"),
            "rolecall made gnome-keyring try to prompt:\n{log}"
        );
        drop(keyring);

        // 2. A bus on which nothing provides (or can be activated as) the Secret Service.
        let config = tmp.path().join("bare-bus.conf");
        std::fs::write(
            &config,
            format!(
                r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir={}</listen>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
                runtime.display()
            ),
        )
        .expect("write bus config");
        let config_arg = format!("--config-file={}", config.display());
        let (_bare, bare_address) = start_bus(&home, &[&config_arg]);
        run_child("unavailable", &bare_address, &home, &runtime);

        // 3. No bus at all behind the address.
        let dead = tmp.path().join("no-bus-here");
        run_child(
            "unavailable",
            &format!("unix:path={}", dead.display()),
            &home,
            &runtime,
        );
    }

    /// Kills the running gnome-keyring-daemon and starts a new one on the same bus and home,
    /// as when the keyring daemon crashes or is restarted under a running Rolecall.
    fn restart_keyring() -> Daemon {
        let bus = test_env("DBUS_SESSION_BUS_ADDRESS").expect("bus address from the parent");
        let home = PathBuf::from(test_env("HOME").expect("home from the parent"));
        let runtime = PathBuf::from(test_env("XDG_RUNTIME_DIR").expect("runtime dir"));
        let name_owned = || {
            let out = gdbus(
                &bus,
                &[
                    "--dest=org.freedesktop.DBus",
                    "--object-path=/org/freedesktop/DBus",
                    "--method=org.freedesktop.DBus.NameHasOwner",
                    "org.freedesktop.secrets",
                ],
            );
            stdout_of(&out) == "(true,)"
        };
        let out = gdbus(
            &bus,
            &[
                "--dest=org.freedesktop.DBus",
                "--object-path=/org/freedesktop/DBus",
                "--method=org.freedesktop.DBus.GetConnectionUnixProcessID",
                "org.freedesktop.secrets",
            ],
        );
        // "(uint32 1234,)"
        let reply = stdout_of(&out);
        let pid = reply
            .strip_prefix("(uint32 ")
            .and_then(|r| r.strip_suffix(",)"))
            .unwrap_or_default()
            .to_string();
        assert!(!pid.is_empty(), "no pid for the keyring: {out:?}");
        let killed = Command::new("kill").arg(&pid).status().expect("run kill");
        assert!(killed.success(), "kill {pid} failed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while name_owned() {
            assert!(
                Instant::now() < deadline,
                "gnome-keyring {pid} did not go away"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        start_keyring(&bus, &home, &runtime, &home.join("gnome-keyring-2.log"))
    }

    fn lock_login_collection() {
        let out = Command::new("gdbus")
            .args([
                "call",
                "--session",
                "--dest=org.freedesktop.secrets",
                "--object-path=/org/freedesktop/secrets",
                "--method=org.freedesktop.Secret.Service.Lock",
                &format!("['{LOGIN}']"),
            ])
            .output()
            .expect("run gdbus");
        assert!(out.status.success(), "lock failed: {out:?}");
    }

    fn secret_tool_search(username: &str) -> String {
        let out = Command::new("secret-tool")
            .args(["search", "--all", "service", SERVICE, "username", username])
            .output()
            .expect("run secret-tool");
        // secret-tool prints the label and secret on stdout, the attributes on stderr.
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    }

    fn child_keyring() {
        let started = Instant::now();
        let store = Arc::new(KeychainStore::open().expect("open the Secret Service"));
        eprintln!("open took {:?}", started.elapsed());

        // Raw store: set, replace, get, delete.
        let acct = "source:raw";
        assert!(store.get(acct).unwrap().is_none());
        let started = Instant::now();
        store.set(acct, &SecretString::from("first")).unwrap();
        eprintln!("set (create) took {:?}", started.elapsed());
        let started = Instant::now();
        store.set(acct, &SecretString::from("second")).unwrap();
        eprintln!("set (replace) took {:?}", started.elapsed());
        let started = Instant::now();
        assert_eq!(store.get(acct).unwrap().unwrap().expose_secret(), "second");
        eprintln!("get took {:?}", started.elapsed());
        let started = Instant::now();
        assert!(store.delete(acct).unwrap());
        eprintln!("delete took {:?}", started.elapsed());
        assert!(!store.delete(acct).unwrap());
        assert!(store.get(acct).unwrap().is_none());

        // Through the vault.
        let vault = Vault::new(store);
        let key = Credentials {
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: SecretString::from("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
            session_token: None,
            expiration: None,
        };
        vault.set_source_key("prod", &key).unwrap();
        let got = vault.source_key("prod").unwrap().expect("stored key");
        assert_eq!(got.access_key_id, key.access_key_id);
        assert_eq!(
            got.secret_access_key.expose_secret(),
            key.secret_access_key.expose_secret()
        );
        let session = CachedSession {
            credentials: Credentials {
                access_key_id: "ASIAIOSFODNN7EXAMPLE".into(),
                secret_access_key: SecretString::from("sessionsecret"),
                session_token: Some(SecretString::from("sessiontoken")),
                expiration: Some(SystemTime::now() + Duration::from_secs(3600)),
            },
            mfa_serial: Some("arn:aws:iam::123456789012:mfa/alice".into()),
        };
        vault.set_session("prod", &session).unwrap();
        let got = vault.session("prod").unwrap().expect("stored session");
        assert_eq!(got.credentials.expiration, session.credentials.expiration);

        // Other tools see the entry under the documented attributes.
        let found = secret_tool_search("source:prod");
        assert!(found.contains("attribute.service = rolecall"), "{found}");
        assert!(
            found.contains("attribute.username = source:prod"),
            "{found}"
        );
        assert!(found.contains(r#""v":1"#), "{found}");
        assert!(
            found.contains("label = Rolecall: AWS key of source prod"),
            "{found}"
        );

        // The keyring daemon restarts under us: the stale session is noticed and replaced.
        let _keyring = restart_keyring();
        let got = vault
            .source_key("prod")
            .unwrap()
            .expect("the key survives a restart");
        assert_eq!(got.access_key_id, key.access_key_id);
        vault.set_source_key("prod", &key).unwrap();

        // A locked collection fails fast with Locked, for every kind of call, without a prompt.
        lock_login_collection();
        let started = Instant::now();
        let err = vault.source_key("prod").unwrap_err();
        let took = started.elapsed();
        assert!(
            matches!(&err, Error::Locked { account } if account == "source:prod"),
            "{err:?}"
        );
        assert!(took < Duration::from_secs(5), "locked get took {took:?}");
        eprintln!("locked get failed in {took:?}: {err}");
        assert!(err.needs_user() && !err.is_retryable());
        assert!(matches!(vault.session("prod"), Err(Error::Locked { .. })));
        assert!(matches!(
            vault.set_source_key("prod", &key),
            Err(Error::Locked { .. })
        ));
        // A new entry would go into the (locked) default collection.
        assert!(matches!(
            vault.set_source_key("new", &key),
            Err(Error::Locked { .. })
        ));
        assert!(matches!(
            vault.delete_session("prod"),
            Err(Error::Locked { .. })
        ));
        // An entry that does not exist anywhere is simply absent.
        assert!(vault.source_key("absent").unwrap().is_none());
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(5),
            "the locked calls took {took:?}"
        );
        let log = std::fs::read_to_string(
            PathBuf::from(test_env("HOME").expect("home")).join("gnome-keyring-2.log"),
        )
        .unwrap_or_default();
        assert!(
            !log.to_lowercase().contains("prompt"),
            "rolecall made gnome-keyring try to prompt:\n{log}"
        );
    }

    fn child_unavailable() {
        let started = Instant::now();
        let err = KeychainStore::open().expect_err("no Secret Service on this bus");
        let took = started.elapsed();
        assert!(matches!(err, Error::Unavailable { .. }), "{err:?}");
        assert!(took < Duration::from_secs(5), "open took {took:?}");
        eprintln!("open failed in {took:?}: {err}");
        assert!(err.needs_user() && !err.is_retryable());
        assert!(
            err.to_string().contains("gnome-keyring-daemon --unlock"),
            "{err}"
        );
    }

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
