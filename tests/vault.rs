//! `rolecall_core::vault::KeychainStore` against the real Secret Service: gnome-keyring on a
//! private session bus ([`Keyring`]). libdbus finds the bus only through
//! `DBUS_SESSION_BUS_ADDRESS`, and this test process is multi-threaded (no `set_var`), so the
//! store lives in `rolecall-vault-probe` (`tests/bin/vault_probe.rs`), a child started with the
//! bus's address that runs one store or vault call per line we send.
//!
//! No call may wait on an unlock prompt: gnome-keyring runs without a display, so a prompt it
//! was asked for would be dismissed and surface as `Denied` (not `Locked`) and be logged; a
//! call that hangs fails the test when its answer does not come within [`REPLY_TIMEOUT`].

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::{Env, Keyring, Process, Sandbox, rolecall_bin};

/// How long one answer may take before the probe counts as hung (a hang, not a speed bound).
const REPLY_TIMEOUT: Duration = Duration::from_secs(60);
const KEY_ID: &str = "AKIAIOSFODNN7EXAMPLE";
const KEY_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
const MFA: &str = "arn:aws:iam::123456789012:mfa/alice";
/// What a locked entry answers: `Locked` for the entry, for the user to fix, not retried.
const LOCKED_PROD: &str = "err Locked account=source:prod needs_user=true retryable=false: ";

/// A running `rolecall-vault-probe`, killed by PID on drop.
struct VaultProbe {
    stdin: ChildStdin,
    answers: Receiver<String>,
    process: Process,
}

impl VaultProbe {
    /// Starts the probe with `env` (the sandbox's, plus a bus address) and returns it with its
    /// first answer: `ok` once the store is open, or the error of `KeychainStore::open`.
    fn start(sandbox: &Sandbox, env: &Env, name: &str) -> (VaultProbe, String) {
        let bin = rolecall_bin().with_file_name("rolecall-vault-probe");
        assert!(
            bin.is_file(),
            "{} is missing: build it first (`cargo build --workspace --bins`)",
            bin.display()
        );
        let log = sandbox.log_path(name);
        let stderr = std::fs::File::create(&log).expect("creating the probe log");
        let child = Command::new(&bin)
            .env_clear()
            .envs(env)
            .current_dir(sandbox.root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", bin.display()));
        let mut process = Process::new(name, child, Some(&log));
        let stdout = process
            .child_mut()
            .stdout
            .take()
            .expect("the probe's stdout is piped");
        let stdin = process.take_stdin().expect("the probe's stdin is piped");
        let (tx, answers) = mpsc::channel();
        // Ends at the probe's EOF; the receiver then sees a disconnect.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut probe = VaultProbe {
            stdin,
            answers,
            process,
        };
        let first = probe.answer("open");
        (probe, first)
    }

    fn answer(&mut self, what: &str) -> String {
        match self.answers.recv_timeout(REPLY_TIMEOUT) {
            Ok(line) => line,
            Err(e) => panic!(
                "no answer from the vault probe to {what:?} ({e})\nlog:\n{}",
                self.process.log()
            ),
        }
    }

    /// Sends one command line and returns the answer line.
    fn call(&mut self, command: &str) -> String {
        self.send(command);
        self.answer(command)
    }

    /// Sends one command line; [`VaultProbe::answer`] reads the answer.
    fn send(&mut self, command: &str) {
        writeln!(self.stdin, "{command}")
            .and_then(|()| self.stdin.flush())
            .unwrap_or_else(|e| {
                panic!(
                    "sending {command:?} to the vault probe: {e}\nlog:\n{}",
                    self.process.log()
                )
            });
    }
}

/// The sandbox's environment with `keyring`'s bus address.
fn env_on(sandbox: &Sandbox, keyring: &Keyring) -> Env {
    let mut env = sandbox.env();
    env.extend(keyring.env());
    env
}

/// A probe on `keyring`'s bus whose store opened.
fn open_store(sandbox: &Sandbox, keyring: &Keyring) -> VaultProbe {
    let (probe, first) = VaultProbe::start(sandbox, &env_on(sandbox, keyring), "vault-probe");
    assert_eq!(first, "ok", "the keychain store did not open");
    probe
}

fn assert_no_prompt(keyring: &Keyring) {
    let log = keyring.log();
    assert!(
        !log.to_lowercase().contains("prompt"),
        "rolecall made gnome-keyring try to prompt:\n{log}"
    );
}

/// An expiration an hour away, in nanoseconds since the epoch (nanoseconds must survive).
fn expiration_in_an_hour() -> String {
    (SystemTime::now() + Duration::from_secs(3600))
        .duration_since(UNIX_EPOCH)
        .expect("now is after 1970")
        .as_nanos()
        .to_string()
}

#[test]
fn keychain_store_sets_replaces_reads_and_deletes_in_the_secret_service() {
    let sandbox = Sandbox::new();
    let keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);

    let account = "source:raw";
    eqnice!("none", store.call(&format!("get {account}")));
    eqnice!("ok", store.call(&format!("set {account} first")));
    eqnice!("ok", store.call(&format!("set {account} second")));
    eqnice!("some second", store.call(&format!("get {account}")));
    eqnice!("true", store.call(&format!("delete {account}")));
    eqnice!("false", store.call(&format!("delete {account}")));
    eqnice!("none", store.call(&format!("get {account}")));
    assert_no_prompt(&keyring);
}

#[test]
fn vault_keeps_source_keys_and_sessions_where_secret_tool_finds_them() {
    let sandbox = Sandbox::new();
    let keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);

    eqnice!(
        "ok",
        store.call(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"))
    );
    eqnice!(
        format!("some {KEY_ID} {KEY_SECRET}"),
        store.call("source-key prod")
    );
    let expiration = expiration_in_an_hour();
    let session = format!("ASIAIOSFODNN7EXAMPLE sessionsecret sessiontoken {expiration} {MFA}");
    eqnice!("ok", store.call(&format!("set-session prod {session}")));
    eqnice!(format!("some {session}"), store.call("session prod"));

    // Other tools see the entry under the documented attributes and label.
    let found = keyring.search_all("rolecall");
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
    assert_no_prompt(&keyring);
}

#[test]
fn keychain_store_reconnects_after_the_keyring_daemon_restarts() {
    let sandbox = Sandbox::new();
    let mut keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);
    eqnice!(
        "ok",
        store.call(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"))
    );

    // The store's session belongs to the killed daemon: it must notice and reconnect.
    keyring.restart_daemon();
    eqnice!(
        format!("some {KEY_ID} {KEY_SECRET}"),
        store.call("source-key prod"),
        "the key must survive a keyring restart"
    );
    eqnice!(
        "ok",
        store.call(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"))
    );
    assert_no_prompt(&keyring);
}

#[test]
fn a_keyring_daemon_that_dies_while_answering_is_waited_for_and_the_call_retried() {
    let sandbox = Sandbox::new();
    let mut keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);
    eqnice!(
        "ok",
        store.call(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"))
    );
    let monitor = keyring.monitor_calls(&sandbox);
    let seen = monitor.calls();

    // The call reaches the daemon, which dies before answering (as gnome-keyring's abort on
    // a request does); the session's service manager starts a new one.
    keyring.pause_daemon();
    store.send("source-key prod");
    monitor.wait_for_calls(seen);
    keyring.crash_daemon();
    eqnice!(
        format!("some {KEY_ID} {KEY_SECRET}"),
        store.answer("source-key prod, across the crash")
    );
    assert!(keyring.daemon_starts() >= 2, "the daemon was not restarted");
    assert_no_prompt(&keyring);
}

#[test]
fn a_keyring_daemon_that_dies_and_stays_away_fails_the_call_saying_what_to_do() {
    let sandbox = Sandbox::new();
    let mut keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);
    let monitor = keyring.monitor_calls(&sandbox);
    let seen = monitor.calls();

    keyring.pause_daemon();
    store.send(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"));
    monitor.wait_for_calls(seen);
    keyring.stop_daemon();
    let got = store.answer("set-source-key, the daemon gone");
    assert!(
        got.starts_with("err Backend account=source:prod needs_user=false retryable=true: "),
        "{got}"
    );
    assert!(got.contains("stopped while answering"), "{got}");
    assert!(
        got.contains("systemctl --user restart gnome-keyring-daemon"),
        "{got}"
    );
    assert!(!got.contains(KEY_SECRET), "{got}");
}

#[test]
fn locked_keychain_fails_with_locked_for_every_call_without_a_prompt() {
    let sandbox = Sandbox::new();
    let keyring = Keyring::start(&sandbox);
    let mut store = open_store(&sandbox, &keyring);
    eqnice!(
        "ok",
        store.call(&format!("set-source-key prod {KEY_ID} {KEY_SECRET}"))
    );
    let session = format!(
        "ASIAIOSFODNN7EXAMPLE sessionsecret sessiontoken {} {MFA}",
        expiration_in_an_hour()
    );
    eqnice!("ok", store.call(&format!("set-session prod {session}")));

    keyring.lock();
    let got = store.call("source-key prod");
    assert!(got.starts_with(LOCKED_PROD), "{got}");
    assert!(got.contains("the keychain is locked"), "{got}");
    for (command, account) in [
        ("session prod", "session:prod"),
        (
            &*format!("set-source-key prod {KEY_ID} {KEY_SECRET}"),
            "source:prod",
        ),
        // A new entry would go into the (locked) default collection.
        (
            &*format!("set-source-key new {KEY_ID} {KEY_SECRET}"),
            "source:new",
        ),
        ("delete-session prod", "session:prod"),
    ] {
        let got = store.call(command);
        assert!(
            got.starts_with(&format!("err Locked account={account} ")),
            "{command}: {got}"
        );
    }
    // An entry that exists nowhere is simply absent.
    eqnice!("none", store.call("source-key absent"));
    assert_no_prompt(&keyring);
    assert!(keyring.is_locked(), "a call unlocked the keyring");
}

#[test]
fn keychain_store_without_a_secret_service_is_unavailable() {
    let sandbox = Sandbox::new();
    let mut keyring = Keyring::start(&sandbox);
    // A bus on which nothing provides (or can be activated as) the Secret Service.
    keyring.stop_daemon();
    let bare = env_on(&sandbox, &keyring);
    // No bus at all behind the address.
    let mut dead = sandbox.env();
    let nowhere: PathBuf = sandbox.runtime_dir().join("no-bus-here");
    dead.insert(
        "DBUS_SESSION_BUS_ADDRESS".to_owned(),
        format!("unix:path={}", nowhere.display()),
    );
    for (what, env) in [("bare-bus", bare), ("no-bus", dead)] {
        let (_probe, got) = VaultProbe::start(&sandbox, &env, &format!("vault-probe-{what}"));
        assert!(
            got.starts_with("err Unavailable account=- needs_user=true retryable=false: "),
            "{what}: {got}"
        );
        assert!(
            got.contains("gnome-keyring-daemon --unlock"),
            "{what}: {got}"
        );
    }
}
