//! `Keyring`: a private D-Bus session bus with gnome-keyring's Secret Service on it, the login
//! keyring created and unlocked in the sandbox's XDG_DATA_HOME.
//!
//! The bus runs from our own config: it listens on `$XDG_RUNTIME_DIR/bus` and has no service
//! activation, so a client that asks for `org.freedesktop.secrets` before (or after) our daemon
//! owns it gets an error instead of a second, auto-started gnome-keyring we would not own.
//! `secret-tool lock` hangs, so locking goes through the Secret Service `Lock` method; unlocking
//! without a GUI prompter goes through gnome-keyring's control socket, as pam_gnome_keyring
//! does.
//!
//! gnome-keyring-daemon sometimes aborts on a client's first request (an upstream race; see
//! gnome-keyring issues 190/196/199). On a desktop, systemd's `Restart=on-failure` (or D-Bus
//! activation) starts it again, and Rolecall waits for that and retries. Here a supervisor
//! thread plays systemd and pam_gnome_keyring: when the daemon exits without a test asking
//! for it, a new one is started and unlocked, and the old one's log goes to stderr.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use super::command::{Output, TestCommand};
use super::probe::wait_until;
use super::process::Process;
use super::sandbox::{Env, Sandbox};

const START_TIMEOUT: Duration = Duration::from_secs(15);
const TOOL_TIMEOUT: Duration = Duration::from_secs(15);
const LOGIN_COLLECTION: &str = "/org/freedesktop/secrets/collection/login";

/// A private session bus plus an unlocked gnome-keyring; both killed by PID on Drop.
#[derive(Debug)]
pub struct Keyring {
    // Field order is drop order: the keyring daemon (and its supervisor) go before its bus.
    daemon: Supervisor,
    bus: Process,
    /// Kept open so dbus-daemon never writes into a closed pipe.
    _bus_stdout: BufReader<ChildStdout>,
    address: String,
    control_socket: PathBuf,
    env: Env,
}

impl Keyring {
    /// The login keyring's password.
    pub const PASSWORD: &'static str = "rolecall-test-login";

    pub fn start(sandbox: &Sandbox) -> Keyring {
        let (bus, bus_stdout, address) = start_bus(sandbox);
        let mut env = sandbox.env();
        env.insert("DBUS_SESSION_BUS_ADDRESS".to_owned(), address.clone());
        let daemon = Supervisor::start(Launcher {
            env: env.clone(),
            root: sandbox.root().to_path_buf(),
            log_dir: sandbox.log_dir(),
            starts: 0,
        });
        let keyring = Keyring {
            daemon,
            bus,
            _bus_stdout: bus_stdout,
            address,
            control_socket: sandbox.runtime_dir().join("keyring/control"),
            env,
        };
        keyring.wait_ready();
        keyring
    }

    /// Kills gnome-keyring-daemon on purpose (nothing restarts it) and waits until nothing
    /// owns `org.freedesktop.secrets`; the bus stays up, with no Secret Service on it.
    pub fn stop_daemon(&mut self) {
        {
            let mut daemon = self.daemon.lock();
            daemon.restart = false;
            daemon.process.kill();
        }
        self.wait_released();
    }

    /// Kills gnome-keyring-daemon as a crash would: the supervisor starts a new one (unlocked),
    /// as systemd and PAM would.
    pub fn crash_daemon(&mut self) {
        let mut daemon = self.daemon.lock();
        daemon.expected_crashes += 1;
        daemon.process.kill();
    }

    /// SIGSTOP to gnome-keyring-daemon: calls to it stay pending until it dies or continues.
    pub fn pause_daemon(&mut self) {
        self.daemon.lock().process.signal("STOP");
    }

    /// Kills gnome-keyring-daemon and starts a new one on the same bus and keyrings (the login
    /// keyring unlocked again), as when the keyring daemon restarts under a running client.
    /// The new daemon logs to `gnome-keyring-N.log`; [`Keyring::log`] shows the new one.
    pub fn restart_daemon(&mut self) {
        self.stop_daemon();
        {
            let mut daemon = self.daemon.lock();
            daemon.process = daemon.launcher.spawn_next();
            daemon.restart = true;
        }
        self.wait_ready();
    }

    /// How many times the daemon was started (1 + restarts, deliberate or by the supervisor).
    pub fn daemon_starts(&self) -> u32 {
        self.daemon.lock().launcher.starts
    }

    fn wait_released(&self) {
        let released = wait_until(START_TIMEOUT, || {
            let output = self.gdbus_call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &["org.freedesktop.secrets"],
            );
            output.stdout.contains("false").then_some(())
        });
        if released.is_none() {
            panic!(
                "org.freedesktop.secrets is still owned after killing gnome-keyring\nlog:\n{}",
                self.log()
            );
        }
    }

    /// A `dbus-monitor` on this bus that logs every method call to the Secret Service from now
    /// on; [`BusMonitor::wait_for_calls`] waits for them.
    pub fn monitor_calls(&self, sandbox: &Sandbox) -> BusMonitor {
        let log = sandbox.log_path("dbus-monitor");
        let out = File::create(&log).expect("creating the dbus-monitor log");
        let child = Command::new("dbus-monitor")
            .args([
                "--address",
                &self.address,
                "type='method_call',destination='org.freedesktop.secrets'",
            ])
            .env_clear()
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting dbus-monitor (apt: dbus-bin): {e}"));
        let monitor = BusMonitor {
            process: Process::new("dbus-monitor", child, Some(&log)),
        };
        // Live once it sees a call of ours.
        let seen = wait_until(START_TIMEOUT, || {
            self.gdbus_call(
                "org.freedesktop.secrets",
                "/org/freedesktop/secrets",
                "org.freedesktop.DBus.Peer.Ping",
                &[],
            );
            (monitor.calls() > 0).then_some(())
        });
        assert!(
            seen.is_some(),
            "dbus-monitor saw no call\n{}",
            monitor.process.log()
        );
        monitor
    }

    /// Ready means the daemon owns `org.freedesktop.secrets` and a store + lookup round-trips.
    fn wait_ready(&self) {
        let owned = wait_until(START_TIMEOUT, || {
            let output = self.gdbus_call(
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus.NameHasOwner",
                &["org.freedesktop.secrets"],
            );
            output.stdout.contains("true").then_some(())
        });
        if owned.is_none() {
            panic!(
                "gnome-keyring did not claim org.freedesktop.secrets\nlog:\n{}",
                self.log()
            );
        }
        let probe = wait_until(START_TIMEOUT, || {
            let stored = self
                .secret_tool(&[
                    "store",
                    "--label=probe",
                    "service",
                    "rolecall-probe",
                    "username",
                    "probe",
                ])
                .stdin("probe")
                .run();
            (stored.code == Some(0)
                && self.lookup("rolecall-probe", "probe").as_deref() == Some("probe"))
            .then_some(())
        });
        if probe.is_none() {
            panic!(
                "the Secret Service does not store or return secrets\nlog:\n{}",
                self.log()
            );
        }
        self.secret_tool(&["clear", "service", "rolecall-probe", "username", "probe"])
            .run()
            .success();
    }

    /// The bus address (`unix:path=…`).
    pub fn address(&self) -> &str {
        &self.address
    }

    /// What a child needs to reach this keyring.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![("DBUS_SESSION_BUS_ADDRESS".to_owned(), self.address.clone())]
    }

    pub fn bus_pid(&self) -> u32 {
        self.bus.pid()
    }

    pub fn daemon_pid(&self) -> u32 {
        self.daemon.lock().process.pid()
    }

    /// A `secret-tool` command on this bus (the sandbox env plus the bus address).
    pub fn secret_tool(&self, args: &[&str]) -> TestCommand {
        TestCommand::new("secret-tool", self.env.clone())
            .args(args)
            .timeout(TOOL_TIMEOUT)
    }

    /// Stores a secret with attributes `service` and `username` (the `keyring` crates' layout).
    pub fn store(&self, service: &str, username: &str, secret: &str) {
        let label = format!("{service}/{username}");
        self.secret_tool(&[
            "store", "--label", &label, "service", service, "username", username,
        ])
        .stdin(secret)
        .run()
        .success();
    }

    /// The secret stored under `service`/`username`; `None` when there is none or the
    /// keyring is locked.
    pub fn lookup(&self, service: &str, username: &str) -> Option<String> {
        let output = self
            .secret_tool(&["lookup", "service", service, "username", username])
            .run();
        (output.code == Some(0)).then_some(output.stdout)
    }

    /// `secret-tool search --all service SERVICE`, stdout then stderr: every matching item's
    /// label, secret (when unlocked), dates and `attribute.NAME = value` lines, for asserting
    /// what Rolecall stored.
    pub fn search_all(&self, service: &str) -> String {
        let output = self
            .secret_tool(&["search", "--all", "service", service])
            .run();
        // secret-tool prints label, secret and dates to stdout but the attributes to stderr.
        format!("{}{}", output.stdout, output.stderr)
    }

    /// Deletes the items under `service`/`username`.
    pub fn clear(&self, service: &str, username: &str) {
        self.secret_tool(&["clear", "service", service, "username", username])
            .run()
            .success();
    }

    /// Locks the login keyring, as the screen locker does.
    pub fn lock(&self) {
        let collections = format!("['{LOGIN_COLLECTION}']");
        self.gdbus_call(
            "org.freedesktop.secrets",
            "/org/freedesktop/secrets",
            "org.freedesktop.Secret.Service.Lock",
            &[&collections],
        )
        .success();
        assert!(
            self.is_locked(),
            "the login keyring is still unlocked after Lock"
        );
    }

    /// Unlocks the login keyring with its password through gnome-keyring's control socket
    /// (`$XDG_RUNTIME_DIR/keyring/control`), the way pam_gnome_keyring does: a NUL byte for
    /// the peer-credentials check, then `[u32 length][u32 op=1 UNLOCK][u32 len][password]`
    /// big-endian; the answer is `[u32 length][u32 result]`, 0 meaning OK.
    pub fn unlock(&self) {
        let mut socket = UnixStream::connect(&self.control_socket)
            .unwrap_or_else(|e| panic!("connecting to {}: {e}", self.control_socket.display()));
        socket
            .set_read_timeout(Some(TOOL_TIMEOUT))
            .expect("setting a read timeout");
        let password = Self::PASSWORD.as_bytes();
        let password_len = u32::try_from(password.len()).expect("a short password");
        let mut packet = Vec::new();
        packet.extend_from_slice(&(12 + password_len).to_be_bytes());
        packet.extend_from_slice(&1u32.to_be_bytes());
        packet.extend_from_slice(&password_len.to_be_bytes());
        packet.extend_from_slice(password);
        socket
            .write_all(&[0])
            .expect("sending the credentials byte");
        socket
            .write_all(&packet)
            .expect("sending the unlock request");
        let mut reply = [0u8; 8];
        socket
            .read_exact(&mut reply)
            .expect("reading the unlock reply");
        let result = u32::from_be_bytes([reply[4], reply[5], reply[6], reply[7]]);
        assert_eq!(
            result, 0,
            "gnome-keyring refused to unlock (1 denied, 2 failed)"
        );
        assert!(
            !self.is_locked(),
            "the login keyring is still locked after unlock"
        );
    }

    /// The login collection's `Locked` property.
    pub fn is_locked(&self) -> bool {
        let output = self
            .gdbus_call(
                "org.freedesktop.secrets",
                LOGIN_COLLECTION,
                "org.freedesktop.DBus.Properties.Get",
                &["org.freedesktop.Secret.Collection", "Locked"],
            )
            .success();
        match output.stdout.trim() {
            "(<true>,)" => true,
            "(<false>,)" => false,
            other => panic!("unexpected Locked property: {other}"),
        }
    }

    /// One `gdbus call --session` on this bus.
    pub fn gdbus_call(&self, dest: &str, object: &str, method: &str, args: &[&str]) -> Output {
        TestCommand::new("gdbus", self.env.clone())
            .args([
                "call",
                "--session",
                "--dest",
                dest,
                "--object-path",
                object,
                "--method",
                method,
            ])
            .args(args)
            .timeout(TOOL_TIMEOUT)
            .run()
    }

    /// gnome-keyring's and dbus-daemon's logs.
    pub fn log(&self) -> String {
        format!(
            "gnome-keyring:\n{}\ndbus-daemon:\n{}",
            self.daemon.lock().process.log(),
            self.bus.log()
        )
    }
}

/// A `dbus-monitor` process logging method calls; killed by PID on drop.
pub struct BusMonitor {
    process: Process,
}

impl BusMonitor {
    /// How many method calls it logged so far.
    pub fn calls(&self) -> usize {
        self.process.log().matches("method call ").count()
    }

    /// Waits until it logged more than `seen` calls.
    pub fn wait_for_calls(&self, seen: usize) {
        let more = wait_until(START_TIMEOUT, || (self.calls() > seen).then_some(()));
        assert!(
            more.is_some(),
            "no new call to the Secret Service\n{}",
            self.process.log()
        );
    }
}

/// What starting a gnome-keyring-daemon takes, and how many were started (naming their logs).
#[derive(Debug)]
struct Launcher {
    env: Env,
    root: PathBuf,
    log_dir: PathBuf,
    starts: u32,
}

impl Launcher {
    fn spawn_next(&mut self) -> Process {
        self.starts += 1;
        let name = match self.starts {
            1 => "gnome-keyring.log".to_owned(),
            n => format!("gnome-keyring-{n}.log"),
        };
        spawn_daemon(&self.env, &self.root, &self.log_dir.join(name))
    }
}

/// The daemon and whether to start it again when it exits.
#[derive(Debug)]
struct Supervised {
    process: Process,
    launcher: Launcher,
    restart: bool,
    /// Exits a test caused on purpose ([`Keyring::crash_daemon`]): restarted without a report.
    expected_crashes: u32,
}

/// Plays systemd's `Restart=on-failure` for gnome-keyring-daemon. Dropping it stops the
/// thread, then kills the daemon by PID.
#[derive(Debug)]
struct Supervisor {
    shared: Arc<Mutex<Supervised>>,
    quit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Supervisor {
    fn start(mut launcher: Launcher) -> Supervisor {
        let process = launcher.spawn_next();
        let shared = Arc::new(Mutex::new(Supervised {
            process,
            launcher,
            restart: true,
            expected_crashes: 0,
        }));
        let quit = Arc::new(AtomicBool::new(false));
        let thread = {
            let (shared, quit) = (Arc::clone(&shared), Arc::clone(&quit));
            std::thread::spawn(move || {
                while !quit.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                    let mut daemon = shared.lock().unwrap_or_else(PoisonError::into_inner);
                    if !daemon.restart {
                        continue;
                    }
                    let Some(status) = daemon.process.try_status() else {
                        continue;
                    };
                    if daemon.expected_crashes > 0 {
                        daemon.expected_crashes -= 1;
                    } else {
                        eprintln!(
                            "gnome-keyring-daemon exited under the test ({status}); starting \
                             a new one as systemd's Restart=on-failure would. Its log:\n{}",
                            daemon.process.log()
                        );
                    }
                    daemon.process = daemon.launcher.spawn_next();
                }
            })
        };
        Supervisor {
            shared,
            quit,
            thread: Some(thread),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Supervised> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        self.quit.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        // The daemon's `Process` is killed when the last `Arc` (ours) goes.
    }
}

/// Starts gnome-keyring-daemon on the bus in `env`; `--unlock` reads the login password from
/// stdin until EOF, then creates or unlocks "login" with it.
fn spawn_daemon(env: &Env, root: &Path, log: &Path) -> Process {
    let out = File::create(log).expect("creating the gnome-keyring log");
    let err = out
        .try_clone()
        .expect("cloning the gnome-keyring log handle");
    let child = Command::new("gnome-keyring-daemon")
        .args(["--unlock", "--components=secrets", "--foreground"])
        .env_clear()
        .envs(env)
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting gnome-keyring-daemon (apt: gnome-keyring): {e}"));
    let mut daemon = Process::new("gnome-keyring-daemon", child, Some(log));
    {
        let mut stdin = daemon.take_stdin().expect("gnome-keyring's stdin is piped");
        stdin
            .write_all(Keyring::PASSWORD.as_bytes())
            .expect("writing the keyring password");
    }
    daemon
}

/// Starts dbus-daemon in the foreground from our config and reads its address line, which it
/// prints once it listens.
fn start_bus(sandbox: &Sandbox) -> (Process, BufReader<ChildStdout>, String) {
    let socket = sandbox.runtime_dir().join("bus");
    let config = sandbox.bed_dir().join("session-bus.conf");
    sandbox.write(
        &config,
        &format!(
            r#"<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path={}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
"#,
            socket.display()
        ),
    );
    let log = sandbox.log_path("dbus-daemon");
    let err = File::create(&log).expect("creating the dbus-daemon log");
    let child = Command::new("dbus-daemon")
        .arg(format!("--config-file={}", config.display()))
        .args(["--nofork", "--nopidfile", "--print-address=1"])
        .env_clear()
        .envs(sandbox.env())
        .current_dir(sandbox.root())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .unwrap_or_else(|e| panic!("starting dbus-daemon (apt: dbus): {e}"));
    let mut bus = Process::new("dbus-daemon", child, Some(&log));
    let stdout = bus
        .child_mut()
        .stdout
        .take()
        .expect("dbus-daemon's stdout is piped");
    let mut stdout = BufReader::new(stdout);
    let mut address = String::new();
    // Blocks until dbus-daemon listens and prints, or exits (EOF): no timeout needed.
    let read = stdout
        .read_line(&mut address)
        .expect("reading dbus-daemon's address");
    let address = address.trim().to_owned();
    if read == 0 || !address.starts_with("unix:") {
        panic!(
            "dbus-daemon did not start (address {address:?})\nlog:\n{}",
            bus.log()
        );
    }
    (bus, stdout, address)
}
