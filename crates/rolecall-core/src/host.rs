//! Hosting the engine in a long-lived process: what `rolecall daemon` and the tray app both
//! run, so neither copies the start-up.
//!
//! [`start`] loads the config, builds the engine with [`NoPrompt`] (a host never awaits a
//! prompter under the refresh lock: codes come in through [`EngineHandle::supply_mfa`], from
//! the agent or the app's window, after [`crate::events::Event::MfaRequired`]), binds the
//! per-user agent socket (refusing when another agent runs), and spawns the scheduler and the
//! agent server. The returned [`Host`] owns those tasks: [`Host::reload`] reads the config
//! again beside them, [`Host::shutdown`] asks them to stop and [`Host::join`] waits until they
//! have. This module owns no signals, windows or terminals: those belong to the caller.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Paths};
use crate::serve::agent::{self, AgentSocket, serve};
use crate::{Engine, EngineHandle, NoPrompt};

/// Why a host could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config or the engine could not be loaded.
    #[error(transparent)]
    Engine(#[from] crate::Error),
    /// The agent socket could not be bound (another agent runs, or its directory is unsafe).
    #[error(transparent)]
    Agent(#[from] agent::Error),
}

impl Error {
    /// Whether another agent of this user already runs (a shell can attach to it instead).
    pub fn is_already_running(&self) -> bool {
        matches!(self, Error::Agent(agent::Error::AlreadyRunning { .. }))
    }
}

/// Loads the config at `paths` and builds an engine that never prompts, over the OS keychain.
/// `rolecall daemon --once` uses it as is; [`start`] serves it.
pub async fn engine(paths: Paths) -> Result<Engine, crate::Error> {
    let config = Config::load(&paths.config_file)?;
    Engine::builder(paths)
        .config(Arc::new(config))
        .mfa_prompter(Arc::new(NoPrompt))
        .build()
        .await
}

/// Starts hosting: the engine of `paths`, its scheduler and its agent. Must be called inside
/// a tokio runtime (the tasks are spawned on it).
pub async fn start(paths: Paths) -> Result<Host, Error> {
    let engine = engine(paths.clone()).await?;
    start_with(engine).await
}

/// [`start`] with an engine built by the caller (tests inject a store or a clock).
pub async fn start_with(engine: Engine) -> Result<Host, Error> {
    let handle = engine.handle();
    let socket = AgentSocket::bind(&handle.paths().runtime_dir)?;
    let socket_path = socket.path().to_path_buf();
    tracing::info!(
        pid = std::process::id(),
        socket = %socket_path.display(),
        config = %handle.paths().config_file.display(),
        "rolecall engine hosted"
    );
    let shutdown = CancellationToken::new();
    let mut tasks = JoinSet::new();
    tasks.spawn(serve(socket, handle.clone(), shutdown.clone()));
    let token = shutdown.clone();
    tasks.spawn(async move {
        if let Err(e) = crate::scheduler::run(&engine, token).await {
            tracing::error!(error = %e, "the scheduler stopped");
        }
    });
    Ok(Host {
        handle,
        socket: socket_path,
        shutdown,
        tasks,
        reloads: JoinSet::new(),
    })
}

/// A hosted engine: its scheduler and agent run until [`Host::shutdown`].
pub struct Host {
    handle: EngineHandle,
    socket: PathBuf,
    shutdown: CancellationToken,
    tasks: JoinSet<()>,
    /// Reloads run beside the tasks, not among them (a task ending ends the host) and not in
    /// the caller's loop (a reload waits for a refresh in flight; a stop request meanwhile
    /// must still be heard). Dropping the set aborts a reload still waiting; a file write it
    /// already started finishes on the blocking pool (atomically, like every write).
    reloads: JoinSet<()>,
}

impl Host {
    /// The hosted engine.
    pub fn engine(&self) -> &EngineHandle {
        &self.handle
    }

    /// Where clients connect: the agent socket's path (on Windows, the file naming its pipe).
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A token that stops the host when cancelled (for a caller that hands the stop to
    /// another thread).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Reads the config again beside the running tasks; a failure keeps the previous config
    /// (and is logged, and sent as `ConfigInvalid`).
    pub fn reload(&mut self) {
        while self.reloads.try_join_next().is_some() {}
        let handle = self.handle.clone();
        self.reloads.spawn(async move {
            if let Err(e) = handle.reload().await {
                tracing::error!(error = %e, "config not reloaded; keeping the previous one");
            }
        });
    }

    /// Resolves when a task (the scheduler or the agent) ended on its own, or the host was
    /// asked to stop: either way the caller should [`Host::join`].
    pub async fn stopped(&mut self) {
        tokio::select! {
            () = self.shutdown.cancelled() => {}
            Some(_) = self.tasks.join_next() => {
                tracing::error!("a hosted engine task ended");
            }
        }
    }

    /// Asks the scheduler and the agent to stop.
    pub fn shutdown(&self) {
        self.shutdown.cancel();
    }

    /// Stops (if not asked yet) and waits until the scheduler and the agent have stopped; the
    /// agent socket is gone then.
    pub async fn join(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.reloads.abort_all();
        tracing::info!("rolecall engine stopped");
    }
}

/// Caps on third-party crates' log levels that a host's log filter applies whatever level was
/// asked for: above these, the AWS and keychain crates could log credentials (signed
/// requests, STS response bodies), and `notify` reports inotify's own housekeeping (a watch
/// removed with its directory) as Rust Debug output.
pub const LOG_CAPS: &[(&str, tracing::Level)] = {
    use tracing::Level;
    &[
        ("aws_sigv4", Level::INFO),
        ("aws_smithy_runtime", Level::INFO),
        ("aws_smithy_runtime_api", Level::INFO),
        ("aws_smithy_http", Level::DEBUG),
        ("aws_smithy_http_client", Level::DEBUG),
        ("aws_smithy_types", Level::DEBUG),
        ("aws_sdk_sts", Level::DEBUG),
        ("aws_sdk_iam", Level::DEBUG),
        ("aws_runtime", Level::DEBUG),
        ("aws_config", Level::DEBUG),
        ("hyper", Level::INFO),
        ("hyper_util", Level::INFO),
        ("h2", Level::INFO),
        ("rustls", Level::INFO),
        ("dbus", Level::INFO),
        ("keyring_core", Level::INFO),
        ("dbus_secret_service_keyring_store", Level::INFO),
        ("notify", Level::WARN),
    ]
};

/// Starting a host at login, the freedesktop way: a desktop entry named [`login::ENTRY`] in
/// the XDG autostart directory, which the caller names (the tray app asks its toolkit for the
/// config directory; this crate reads no environment outside `config::Paths`). The entry runs
/// the given executable with `--hidden`, so that a login start opens no window.
pub mod login {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// The entry's file name.
    pub const ENTRY: &str = "rolecall.desktop";

    /// The entry's path in `autostart_dir`.
    pub fn entry(autostart_dir: &Path) -> PathBuf {
        autostart_dir.join(ENTRY)
    }

    /// Whether the entry exists.
    pub fn is_enabled(autostart_dir: &Path) -> bool {
        entry(autostart_dir).is_file()
    }

    /// Writes (atomically) or removes the entry that starts `exe --hidden` at login.
    pub fn set(autostart_dir: &Path, exe: &Path, enabled: bool) -> std::io::Result<()> {
        let path = entry(autostart_dir);
        if !enabled {
            return match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            };
        }
        std::fs::create_dir_all(autostart_dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(autostart_dir)?;
        tmp.write_all(desktop_entry(exe).as_bytes())?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    }

    /// The entry's text: `Exec` holds the executable as one quoted argument, escaped as the
    /// Desktop Entry spec says (inside quotes `"`, `` ` ``, `$` and `\` get a backslash; then
    /// the value's own escaping doubles every backslash; `%` is doubled, since a lone one
    /// starts a field code), so a path with spaces or quotes still runs.
    pub fn desktop_entry(exe: &Path) -> String {
        let mut quoted = String::new();
        for c in exe.to_string_lossy().chars() {
            match c {
                '"' | '`' | '$' | '\\' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                '%' => quoted.push_str("%%"),
                _ => quoted.push(c),
            }
        }
        let exec = format!("\"{}\" --hidden", quoted.replace('\\', "\\\\"));
        format!(
            "[Desktop Entry]\nType=Application\nName=Rolecall\n\
             Comment=Keeps AWS temporary credentials fresh\nExec={exec}\nTerminal=false\n\
             X-GNOME-Autostart-enabled=true\n"
        )
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn exec_quotes_and_escapes_the_path() {
            let text = desktop_entry(Path::new("/opt/my apps/100%/a\"b$c/rolecall-app"));
            assert!(
                text.contains(
                    "\nExec=\"/opt/my apps/100%%/a\\\\\"b\\\\$c/rolecall-app\" --hidden\n"
                ),
                "{text}"
            );
            let plain = desktop_entry(Path::new("/usr/bin/rolecall-app"));
            assert!(
                plain.contains("\nExec=\"/usr/bin/rolecall-app\" --hidden\n"),
                "{plain}"
            );
        }

        #[test]
        fn set_writes_and_removes_the_entry() {
            let dir = tempfile::tempdir().unwrap();
            let autostart = dir.path().join("autostart");
            assert!(!is_enabled(&autostart));
            set(&autostart, Path::new("/usr/bin/rolecall-app"), true).unwrap();
            assert!(is_enabled(&autostart));
            set(&autostart, Path::new("/usr/bin/rolecall-app"), false).unwrap();
            assert!(!is_enabled(&autostart));
            // removing what is not there is fine
            set(&autostart, Path::new("/usr/bin/rolecall-app"), false).unwrap();
        }
    }
}

/// Running `rolecall daemon` as a systemd user service: the unit shipped in
/// `installers/systemd/rolecall.service`, with `ExecStart` naming the binary that installs it
/// (wherever it lives: `~/.cargo/bin`, `/usr/bin`, a checkout's `target/`).
pub mod unit {
    use std::io::Write;
    use std::path::{Path, PathBuf};

    /// The unit's file name.
    pub const NAME: &str = "rolecall.service";

    /// The unit as shipped (its `ExecStart` assumes `cargo install`).
    const SHIPPED: &str = include_str!("../../../installers/systemd/rolecall.service");

    /// The directory of the user's own units below their config dir (`config::Paths::user_config_dir`).
    pub fn user_dir(user_config_dir: &Path) -> PathBuf {
        user_config_dir.join("systemd/user")
    }

    /// The unit's text for `exe`: the shipped unit with `ExecStart` running `exe daemon`,
    /// the path quoted as systemd reads a command line (inside double quotes `\\` and `"`
    /// get a backslash; `%` is doubled, since it starts a specifier, and `$` too, since it
    /// starts a variable).
    pub fn text(exe: &Path) -> String {
        let mut quoted = String::new();
        for c in exe.to_string_lossy().chars() {
            match c {
                '\\' | '"' => {
                    quoted.push('\\');
                    quoted.push(c);
                }
                '%' => quoted.push_str("%%"),
                '$' => quoted.push_str("$$"),
                _ => quoted.push(c),
            }
        }
        SHIPPED
            .lines()
            .map(|line| match line.strip_prefix("ExecStart=") {
                Some(_) => format!("ExecStart=\"{quoted}\" daemon --log-format json\n"),
                None => format!("{line}\n"),
            })
            .collect()
    }

    /// Writes the unit for `exe` into `dir` (atomically; created if needed); returns its path.
    pub fn install(dir: &Path, exe: &Path) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(NAME);
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(text(exe).as_bytes())?;
        tmp.as_file().sync_all()?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(path)
    }

    #[cfg(all(test, unix))]
    mod tests {
        use super::*;

        #[test]
        fn exec_start_names_the_binary_quoted_and_nothing_else_changes() {
            let text = text(Path::new("/opt/my tools/50%/$HOME/rolecall"));
            let exec: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("ExecStart="))
                .collect();
            assert_eq!(
                exec,
                ["ExecStart=\"/opt/my tools/50%%/$$HOME/rolecall\" daemon --log-format json"]
            );
            let others = |t: &str| -> Vec<String> {
                t.lines()
                    .filter(|l| !l.starts_with("ExecStart="))
                    .map(str::to_owned)
                    .collect()
            };
            assert_eq!(others(&text), others(SHIPPED));
            assert!(!text.contains("%h/.cargo/bin"), "{text}");
        }

        #[test]
        fn install_writes_the_unit_into_the_directory() {
            let dir = tempfile::tempdir().unwrap();
            let units = user_dir(dir.path());
            let path = install(&units, Path::new("/usr/bin/rolecall")).unwrap();
            assert_eq!(path, dir.path().join("systemd/user/rolecall.service"));
            let written = std::fs::read_to_string(&path).unwrap();
            assert!(
                written.contains("\nExecStart=\"/usr/bin/rolecall\" daemon --log-format json\n")
            );
        }
    }
}
