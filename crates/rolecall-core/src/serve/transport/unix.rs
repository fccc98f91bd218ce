//! The agent on Unix: `agent.sock` in the per-user runtime directory.
//!
//! The directory is created 0700 and must be ours (a directory another user could write to
//! would let them swap the socket); the socket is 0600; and every connection's peer uid is
//! checked against ours (`SO_PEERCRED`), so another user cannot drive our keychain even if the
//! modes were loosened. The lock, not the socket file, decides whether an agent runs: a stale
//! socket left by a killed agent is replaced.
//!
//! Clients check the same from their side before they send anything (an MFA code): the
//! directory must be ours and private, and the process listening must run as us; otherwise
//! another user who created the directory first could pose as the agent.

use std::fs::File;
use std::path::{Path, PathBuf};

use tokio::net::{UnixListener, UnixStream};

use super::Accepted;
use crate::config::current_uid;
use crate::serve::agent::{Error, SOCKET_NAME, io};

/// What a client connects with.
pub(crate) type ClientStream = UnixStream;

/// The bound socket; holds the per-user lock and removes the socket file when dropped.
#[derive(Debug)]
pub(crate) struct Listener {
    listener: UnixListener,
    path: PathBuf,
    uid: u32,
    _lock: File,
}

impl Listener {
    /// Creates the runtime directory (0700) if needed, takes the per-user lock, and binds the
    /// socket (0600). Must be called inside a tokio runtime.
    pub(crate) fn bind(dir: &Path) -> Result<Listener, Error> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
        let uid = current_uid();
        check_dir(dir, uid)?;
        let (mut lock, lock_path) = super::open_lock(dir)?;
        let socket = dir.join(SOCKET_NAME);
        check_length(&socket)?;
        super::take_lock(&mut lock, &lock_path, &socket)?;
        // we hold the lock: any socket file there is a dead agent's
        match std::fs::remove_file(&socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale agent socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &socket)(e)),
        }
        let listener = UnixListener::bind(&socket).map_err(io("bind", &socket))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", &socket))?;
        Ok(Listener {
            listener,
            path: socket,
            uid,
            _lock: lock,
        })
    }

    /// The socket's path.
    pub(crate) fn address(&self) -> &Path {
        &self.path
    }

    /// The next connection, with its peer checked.
    pub(crate) async fn accept(&mut self) -> std::io::Result<Accepted<UnixStream>> {
        let (stream, _) = self.listener.accept().await?;
        let cred = stream.peer_cred()?;
        if cred.uid() == self.uid {
            Ok(Accepted::Ours(stream))
        } else {
            Ok(Accepted::Foreign(stream, format!("uid {}", cred.uid())))
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // still holding the lock, so the file is ours to remove
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The longest socket path, in bytes: `sun_path` (108 bytes on Linux, 104 on the BSDs and
/// macOS) less its terminating NUL.
#[cfg(any(target_os = "linux", target_os = "android"))]
const MAX_SOCKET_PATH: usize = 107;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const MAX_SOCKET_PATH: usize = 103;

/// A socket path that does not fit is refused with its length and the remedy (the OS's own
/// error says only "invalid argument").
fn check_length(socket: &Path) -> Result<(), Error> {
    use std::os::unix::ffi::OsStrExt;
    let len = socket.as_os_str().as_bytes().len();
    if len > MAX_SOCKET_PATH {
        return Err(Error::SocketPathTooLong {
            path: socket.to_path_buf(),
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// The runtime directory must be a directory (not a link), ours, and private.
fn check_dir(dir: &Path, uid: u32) -> Result<(), Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let meta = std::fs::symlink_metadata(dir).map_err(io("inspect", dir))?;
    if meta.is_dir() && meta.uid() == uid && meta.permissions().mode() & 0o077 == 0 {
        return Ok(());
    }
    Err(Error::UnsafeDir {
        path: dir.to_path_buf(),
        actual: format!(
            "{} owned by uid {} with mode {:o}",
            if meta.is_dir() {
                "a directory"
            } else {
                "not a directory"
            },
            meta.uid(),
            meta.permissions().mode() & 0o777
        ),
    })
}

/// Connects to the agent whose socket is in `dir`; `Ok(None)` when none runs (no directory,
/// no socket, or nobody listening on it). A directory or a listener that is not ours is an
/// error, not "no agent": the user should know someone is in the way.
pub(crate) async fn connect(dir: &Path) -> std::io::Result<Option<UnixStream>> {
    let uid = current_uid();
    match check_dir(dir, uid) {
        Ok(()) => {}
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(None);
        }
        Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, e)),
    }
    let stream = match UnixStream::connect(dir.join(SOCKET_NAME)).await {
        Ok(s) => s,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(e),
    };
    let peer = stream.peer_cred()?.uid();
    if peer != uid {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the process listening on {} runs as uid {peer}, not as you; nothing was sent \
                 to it. Stop that process, or start your own agent with `rolecall daemon` \
                 (it replaces the socket)",
                dir.join(SOCKET_NAME).display()
            ),
        ));
    }
    Ok(Some(stream))
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[tokio::test]
    async fn clients_send_nothing_through_a_directory_others_can_write() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        assert!(
            connect(&dir).await.unwrap().is_none(),
            "no directory: no agent"
        );
        let listener = Listener::bind(&dir).unwrap();
        assert!(connect(&dir).await.unwrap().is_some());
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = connect(&dir).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(err.to_string().contains("mode 777"), "{err}");
        drop(listener);
        let err = Listener::bind(&dir).unwrap_err();
        assert!(matches!(err, Error::UnsafeDir { .. }), "{err}");
    }

    #[tokio::test]
    async fn a_socket_path_too_long_for_the_os_is_refused_with_the_remedy() {
        let tmp = tempfile::tempdir().unwrap();
        let base = tmp.path().as_os_str().len();
        // one byte over: <tmp>/<x…>/agent.sock
        let name = "x".repeat(MAX_SOCKET_PATH + 1 - base - 2 - SOCKET_NAME.len());
        let dir = tmp.path().join(name);
        let err = Listener::bind(&dir).unwrap_err();
        assert!(matches!(err, Error::SocketPathTooLong { .. }), "{err}");
        assert!(err.to_string().contains("XDG_RUNTIME_DIR"), "{err}");
        // one byte shorter fits
        let dir = tmp
            .path()
            .join("x".repeat(MAX_SOCKET_PATH - base - 2 - SOCKET_NAME.len()));
        assert!(Listener::bind(&dir).is_ok());
    }
}
