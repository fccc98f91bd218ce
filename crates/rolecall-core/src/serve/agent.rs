//! The agent: a per-user control socket served by the process that runs the scheduler (the
//! daemon now, the tray app later).
//!
//! Where: `$XDG_RUNTIME_DIR/rolecall/agent.sock` ([`crate::config::Paths::runtime_dir`]); the
//! directory is 0700 and must be ours, the socket 0600, and every connection's peer uid is
//! checked against ours (`SO_PEERCRED`), so another user cannot drive our keychain even if the
//! file modes were loosened. One agent per user: `agent.lock` in the same directory is held
//! (advisory lock) for the agent's lifetime; a second agent fails with a message naming the
//! first one's pid. The lock, not the socket file, decides: a stale socket left by a killed
//! agent is replaced. Windows (named pipes) is not implemented yet.
//!
//! The server takes a bound [`AgentSocket`] and a shutdown token; each connection is a task in a
//! `JoinSet` bounded by a semaphore, stopped on shutdown. Errors sent to clients are the
//! engine's messages (never secrets); details go to our log.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Pong, RemoteError, Report, Request, RequestLine, Response};
use crate::engine::{EngineHandle, RefreshOptions, Targets};

/// The socket's file name inside the runtime directory.
pub const SOCKET_NAME: &str = "agent.sock";
const LOCK_NAME: &str = "agent.lock";
const MAX_CONNECTIONS: usize = 64;

/// Why the agent could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Another agent of this user holds the lock.
    #[error(
        "another rolecall agent is already running{} (socket {}); stop it first, or use it: \
         `rolecall status` talks to it",
        pid.map(|p| format!(" as pid {p}")).unwrap_or_default(),
        socket.display()
    )]
    AlreadyRunning {
        /// Its pid, when the lock file says.
        pid: Option<u32>,
        /// The socket.
        socket: PathBuf,
    },
    /// The runtime directory is not private to us.
    #[error(
        "{} must be a directory owned by you with mode 0700 (it is {actual}); fix it with \
         `chmod 700 {}` or remove it",
        path.display(),
        path.display()
    )]
    UnsafeDir {
        /// The directory.
        path: PathBuf,
        /// What it is.
        actual: String,
    },
    /// An I/O error while setting up.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A bound agent socket: holds the per-user lock and removes the socket file when dropped.
#[derive(Debug)]
pub struct AgentSocket {
    listener: UnixListener,
    path: PathBuf,
    uid: u32,
    _lock: File,
}

impl AgentSocket {
    /// Creates the runtime directory (0700) if needed, takes the per-user lock, and binds the
    /// socket (0600). Must be called inside a tokio runtime.
    pub fn bind(dir: &Path) -> Result<AgentSocket, Error> {
        use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("create", dir))?;
        let meta = std::fs::symlink_metadata(dir).map_err(io("inspect", dir))?;
        let lock_path = dir.join(LOCK_NAME);
        let mut lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(io("open", &lock_path))?;
        // our uid is the owner of the file we just opened or created
        let uid = lock.metadata().map_err(io("inspect", &lock_path))?.uid();
        if !meta.is_dir() || meta.uid() != uid || meta.permissions().mode() & 0o077 != 0 {
            return Err(Error::UnsafeDir {
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
            });
        }
        let socket = dir.join(SOCKET_NAME);
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lock_path)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
                return Err(Error::AlreadyRunning { pid, socket });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io("lock", &lock_path)(e)),
        }
        lock.set_len(0).map_err(io("write", &lock_path))?;
        write!(lock, "{}", std::process::id()).map_err(io("write", &lock_path))?;
        // we hold the lock: any socket file there is a dead agent's
        match std::fs::remove_file(&socket) {
            Ok(()) => tracing::info!(socket = %socket.display(), "removed a stale agent socket"),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io("remove", &socket)(e)),
        }
        let listener = UnixListener::bind(&socket).map_err(io("bind", &socket))?;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
            .map_err(io("chmod", &socket))?;
        Ok(AgentSocket {
            listener,
            path: socket,
            uid,
            _lock: lock,
        })
    }

    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for AgentSocket {
    fn drop(&mut self) {
        // still holding the lock, so the file is ours to remove
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves the agent protocol on `socket` until `shutdown` is cancelled, then waits for open
/// connections to finish their current request.
pub async fn serve(socket: AgentSocket, engine: EngineHandle, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    tracing::info!(socket = %socket.path.display(), "agent listening");
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => break,
            p = Arc::clone(&limit).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let accepted = tokio::select! {
            () = shutdown.cancelled() => break,
            a = socket.listener.accept() => a,
        };
        // reap finished connections so the set does not grow
        while conns.try_join_next().is_some() {}
        let stream = match accepted {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!(error = %e, "agent accept failed");
                // e.g. EMFILE: back off a little instead of spinning
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        match stream.peer_cred() {
            Ok(cred) if cred.uid() == socket.uid => {}
            Ok(cred) => {
                tracing::warn!(
                    peer_uid = cred.uid(),
                    "refused an agent connection from another user"
                );
                let mut stream = stream;
                let line = error_line("refused: this agent serves only its own user", false);
                let _ = stream.write_all(line.as_bytes()).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the peer's credentials; connection refused");
                continue;
            }
        }
        let engine = engine.clone();
        let stop = shutdown.child_token();
        conns.spawn(async move {
            if let Err(e) = connection(stream, engine, stop).await {
                tracing::debug!(error = %e, "agent connection ended");
            }
            drop(permit);
        });
    }
    drop(socket);
    while conns.join_next().await.is_some() {}
}

fn answer(result: Result<serde_json::Value, RemoteError>) -> String {
    let r = match result {
        Ok(v) => Response {
            v: protocol::VERSION,
            ok: true,
            result: Some(v),
            error: None,
        },
        Err(e) => Response {
            v: protocol::VERSION,
            ok: false,
            result: None,
            error: Some(e),
        },
    };
    let mut s = serde_json::to_string(&r).unwrap_or_else(|_| {
        r#"{"v":1,"ok":false,"error":{"message":"internal error: unserialisable answer"}}"#.into()
    });
    s.push('\n');
    s
}

fn error_line(message: &str, usage: bool) -> String {
    answer(Err(RemoteError {
        message: message.to_string(),
        usage,
    }))
}

async fn connection(
    stream: UnixStream,
    engine: EngineHandle,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    loop {
        line.clear();
        let mut limited = (&mut reader).take(protocol::MAX_LINE as u64 + 1);
        let n = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = limited.read_line(&mut line) => n?,
        };
        if n == 0 {
            return Ok(());
        }
        if line.len() > protocol::MAX_LINE {
            write
                .write_all(error_line("request too long", true).as_bytes())
                .await?;
            return Ok(());
        }
        let parsed: Result<RequestLine, _> = serde_json::from_str(line.trim_end());
        let request = match parsed {
            Ok(r) if r.v == protocol::VERSION => r.request,
            Ok(r) => {
                let msg = format!(
                    "protocol version {} is not supported (this agent speaks {}); use the \
                     rolecall that matches the running agent",
                    r.v,
                    protocol::VERSION
                );
                write.write_all(error_line(&msg, true).as_bytes()).await?;
                continue;
            }
            Err(e) => {
                // serde's message can quote the input (an MFA code): keep only its category
                let msg = format!("bad request: {:?} at column {}", e.classify(), e.column());
                write.write_all(error_line(&msg, true).as_bytes()).await?;
                continue;
            }
        };
        if matches!(request, Request::Subscribe) {
            return subscribe(engine, reader, write, stop).await;
        }
        let out = answer(handle(&engine, request).await);
        write.write_all(out.as_bytes()).await?;
    }
}

async fn subscribe(
    engine: EngineHandle,
    mut reader: BufReader<tokio::net::unix::OwnedReadHalf>,
    mut write: tokio::net::unix::OwnedWriteHalf,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut events = engine.subscribe();
    write
        .write_all(answer(Ok(serde_json::json!("subscribed"))).as_bytes())
        .await?;
    let mut sink = String::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            // the client never sends more on a subscription: EOF (or anything) ends it
            r = reader.read_line(&mut sink) => {
                if r? == 0 {
                    return Ok(());
                }
                sink.clear();
            }
            ev = events.recv() => match ev {
                Ok(event) => {
                    let mut line = serde_json::to_string(&serde_json::json!({
                        "v": protocol::VERSION,
                        "event": event,
                    }))
                    .unwrap_or_default();
                    line.push('\n');
                    write.write_all(line.as_bytes()).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    let line = format!("{{\"v\":1,\"lagged\":{n}}}\n");
                    write.write_all(line.as_bytes()).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
        }
    }
}

fn remote(e: &crate::Error) -> RemoteError {
    RemoteError {
        message: e.to_string(),
        usage: e.is_usage(),
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, RemoteError> {
    serde_json::to_value(v).map_err(|e| RemoteError {
        message: format!("internal error: {e}"),
        usage: false,
    })
}

async fn handle(engine: &EngineHandle, request: Request) -> Result<serde_json::Value, RemoteError> {
    match request {
        Request::Ping => to_value(&Pong {
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
        }),
        Request::Status => to_value(&engine.status().await.map_err(|e| remote(&e))?),
        Request::Refresh {
            profiles,
            force,
            mfa_code,
        } => {
            let targets = if profiles.is_empty() {
                Targets::All
            } else {
                Targets::Some(profiles)
            };
            let outcomes = engine
                .refresh(&targets, RefreshOptions { force, mfa_code })
                .await
                .map_err(|e| remote(&e))?;
            // the schedule may have changed (new expiries, cleared errors)
            engine.wake();
            to_value(&Report::all(&outcomes))
        }
        Request::Mfa { source, code } => {
            let outcomes = engine
                .supply_mfa(&source, code)
                .await
                .map_err(|e| remote(&e))?;
            to_value(&Report::all(&outcomes))
        }
        Request::Use {
            profile,
            adopt,
            mfa_code,
        } => {
            let opts = RefreshOptions {
                force: false,
                mfa_code,
            };
            let exp = engine
                .use_profile(profile.as_deref(), adopt, opts)
                .await
                .map_err(|e| remote(&e))?;
            engine.wake();
            to_value(&serde_json::json!({
                "expiration": exp.map(crate::timestamp::format),
            }))
        }
        Request::Subscribe => Err(RemoteError {
            message: "subscribe must be the last request on a connection".into(),
            usage: true,
        }),
    }
}
