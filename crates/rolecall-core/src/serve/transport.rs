//! The agent's local transport, one module per platform behind one small interface.
//!
//! - Unix ([`unix`]): a socket `agent.sock` in the per-user runtime directory (0700, checked to
//!   be ours), mode 0600, every connection's peer uid checked with `SO_PEERCRED`.
//! - Windows ([`windows`]): a named pipe with a random name per agent start, published in
//!   `agent.pipe` in the per-user runtime directory (see that module for why).
//!
//! Both hold `agent.lock` in the runtime directory for the agent's lifetime, so there is one
//! agent per user, and a client can tell a live agent from a stale address. The protocol code
//! in [`super::agent`] and [`super::client`] sees only [`Listener`], [`Accepted`] and the
//! stream types, which are plain `AsyncRead + AsyncWrite`.

#[cfg(unix)]
mod unix;
#[cfg(windows)]
mod windows;

#[cfg(unix)]
pub(crate) use unix::{ClientStream, Listener, connect};
#[cfg(windows)]
pub(crate) use windows::{ClientStream, Listener, connect};

/// The lock file that makes the agent one per user.
pub(crate) const LOCK_NAME: &str = "agent.lock";

/// A connection the listener accepted.
pub(crate) enum Accepted<S> {
    /// From our own user: serve it.
    Ours(S),
    /// From someone else (described for the log): refuse it.
    #[cfg_attr(windows, allow(dead_code))] // the pipe's ACL keeps others out before accept
    Foreign(S, String),
}

/// Opens (creating, never truncating) the lock file in `dir`.
pub(crate) fn open_lock(
    dir: &std::path::Path,
) -> Result<(std::fs::File, std::path::PathBuf), super::agent::Error> {
    let lock_path = dir.join(LOCK_NAME);
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(&lock_path)
        .map_err(super::agent::io("open", &lock_path))?;
    Ok((lock, lock_path))
}

/// Takes the lock on `lock` (for as long as the file stays open) and writes our pid in it, or
/// says who holds it. `address` names the agent's socket or pipe in that message.
pub(crate) fn take_lock(
    lock: &mut std::fs::File,
    lock_path: &std::path::Path,
    address: &std::path::Path,
) -> Result<(), super::agent::Error> {
    use std::io::Write as _;

    use super::agent::{Error, io};
    // a client's `lock_held` check holds the lock for an instant: look twice more before
    // concluding that another agent runs
    let mut tries = 0;
    let taken = loop {
        match lock.try_lock() {
            Err(std::fs::TryLockError::WouldBlock) if tries < 2 => {
                tries += 1;
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            r => break r,
        }
    };
    match taken {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // (on Windows the locked file cannot be read: the pid is then unknown)
            let pid = std::fs::read_to_string(lock_path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            return Err(Error::AlreadyRunning {
                pid,
                socket: address.to_path_buf(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", lock_path)(e)),
    }
    lock.set_len(0).map_err(io("write", lock_path))?;
    write!(lock, "{}", std::process::id()).map_err(io("write", lock_path))?;
    Ok(())
}

/// Whether some process holds the agent lock in `dir` (a live agent), without taking it for
/// longer than the check.
#[cfg_attr(unix, allow(dead_code))] // Unix clients learn the same from the socket's refusal
pub(crate) fn lock_held(dir: &std::path::Path) -> std::io::Result<bool> {
    let file = match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dir.join(LOCK_NAME))
    {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    match file.try_lock() {
        Ok(()) => Ok(false), // dropped (and so unlocked) at once
        Err(std::fs::TryLockError::WouldBlock) => Ok(true),
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
