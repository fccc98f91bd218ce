//! The agent on Windows: a named pipe.
//!
//! Pipe names live in one machine-wide namespace (`\\.\pipe\…`) that every user can create
//! names in, so a fixed per-user name could be taken first by another user, who would then
//! receive our MFA codes. Instead each agent start picks a random name
//! (`\\.\pipe\rolecall-agent-<128 random bits>`), creates it as the first instance (creation
//! fails if it exists), and publishes it in `agent.pipe` in the per-user runtime directory
//! (under the user's profile, private by its inherited ACL). A client connects only when
//! `agent.lock` there is held, i.e. the agent that wrote the name is alive, so a stale name
//! left by a killed agent is never used.
//!
//! Who may connect: the pipe keeps the default security descriptor, which gives full access to
//! the creating user, SYSTEM and administrators and only read access to everyone else; a
//! client must write a request before anything is answered, so other users get nothing. They
//! can still open read-only connections and hold the agent's connection slots (a local denial
//! of service): an owner-only DACL needs the raw security-attributes API (unsafe FFI), left for
//! a Windows runner to test.
//! Remote clients are rejected (`PIPE_REJECT_REMOTE_CLIENTS`), and clients open the pipe with
//! tokio's default identification-only impersonation level, so a server cannot act as them.
//!
//! Limitation: written and type-checked for `x86_64-pc-windows-gnu`, but no Windows machine was
//! available to run it; see docs/ARCHITECTURE.md.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::net::windows::named_pipe::{
    ClientOptions, NamedPipeClient, NamedPipeServer, ServerOptions,
};

use super::Accepted;
use crate::serve::agent::{Error, io};

/// What a client connects with.
pub(crate) type ClientStream = NamedPipeClient;

/// The file in the runtime directory that holds the pipe's name.
const NAME_FILE: &str = "agent.pipe";
/// `ERROR_PIPE_BUSY`: every instance is taken; wait for the server to make the next.
const ERROR_PIPE_BUSY: i32 = 231;
/// How long a client waits for a busy pipe.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// The pipe waiting for the next client; holds the per-user lock, and removes the name file
/// when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    next: NamedPipeServer,
    name: PathBuf,
    name_file: PathBuf,
    _lock: File,
}

fn server(name: &Path, first: bool) -> std::io::Result<NamedPipeServer> {
    ServerOptions::new()
        .first_pipe_instance(first)
        .reject_remote_clients(true)
        .create(name)
}

impl Listener {
    /// Creates the runtime directory if needed, takes the per-user lock, creates the pipe and
    /// publishes its name. Must be called inside a tokio runtime.
    pub(crate) fn bind(dir: &Path) -> Result<Listener, Error> {
        std::fs::create_dir_all(dir).map_err(io("create", dir))?;
        let (mut lock, lock_path) = super::open_lock(dir)?;
        let name_file = dir.join(NAME_FILE);
        super::take_lock(&mut lock, &lock_path, &name_file)?;
        let name = PathBuf::from(format!(
            r"\\.\pipe\rolecall-agent-{:032x}",
            fastrand::u128(..)
        ));
        let next = server(&name, true).map_err(io("create the named pipe", &name))?;
        // write the name where clients look, atomically (they may be reading it right now)
        let tmp = dir.join(format!("{NAME_FILE}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, name.to_string_lossy().as_bytes()).map_err(io("write", &tmp))?;
        std::fs::rename(&tmp, &name_file).map_err(io("replace", &name_file))?;
        Ok(Listener {
            next,
            name,
            name_file,
            _lock: lock,
        })
    }

    /// The pipe's name.
    pub(crate) fn address(&self) -> &Path {
        &self.name
    }

    /// The next connection. A new instance is created before the connected one is handed
    /// out, so there is always one for the next client to find.
    pub(crate) async fn accept(&mut self) -> std::io::Result<Accepted<NamedPipeServer>> {
        if let Err(e) = self.next.connect().await {
            // e.g. a client that opened and closed the instance before it was connected
            // (ERROR_NO_DATA): that instance is spent, so wait on a fresh one from now on
            self.next = server(&self.name, false)?;
            return Err(e);
        }
        let fresh = server(&self.name, false)?;
        Ok(Accepted::Ours(std::mem::replace(&mut self.next, fresh)))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // still holding the lock, so the file is ours to remove
        let _ = std::fs::remove_file(&self.name_file);
    }
}

/// Connects to the agent whose name file is in `dir`; `Ok(None)` when none runs (no lock
/// held, no name file, or no such pipe).
pub(crate) async fn connect(dir: &Path) -> std::io::Result<Option<NamedPipeClient>> {
    if !super::lock_held(dir)? {
        return Ok(None);
    }
    let name = match std::fs::read_to_string(dir.join(NAME_FILE)) {
        Ok(n) => n.trim().to_string(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !name.starts_with(r"\\.\pipe\rolecall-agent-") {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} does not name a rolecall pipe; remove it (the agent writes it at start)",
                dir.join(NAME_FILE).display()
            ),
        ));
    }
    let deadline = tokio::time::Instant::now() + BUSY_WAIT;
    loop {
        match ClientOptions::new().open(&name) {
            Ok(client) => return Ok(Some(client)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e)
                if e.raw_os_error() == Some(ERROR_PIPE_BUSY)
                    && tokio::time::Instant::now() < deadline => {}
            Err(e) => return Err(e),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
