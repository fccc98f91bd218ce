//! The agent: a per-user control endpoint served by the process that runs the scheduler (the
//! daemon now, the tray app later).
//!
//! Where: a Unix socket `$XDG_RUNTIME_DIR/rolecall/agent.sock` (without `XDG_RUNTIME_DIR`, under
//! the user's cache dir; see [`crate::config::Paths::runtime_dir`]), or on Windows a named pipe whose name the agent
//! publishes in that directory; `super::transport` has both and how each keeps other users
//! out. One agent per user: `agent.lock` in the same directory is held (advisory lock) for the
//! agent's lifetime; a second agent fails with a message naming the first one's pid.
//!
//! The server takes a bound [`AgentSocket`] and a shutdown token; each connection is a task in a
//! `JoinSet` bounded by a semaphore, stopped on shutdown. Every connection is bounded: its first
//! request within [`FIRST_LINE_TIMEOUT`], the next ones within [`IDLE_TIMEOUT`], each line at
//! most [`protocol::MAX_LINE`] bytes, each answer taken within [`WRITE_TIMEOUT`]; a subscriber
//! that sends anything is disconnected. Errors sent to clients are the engine's messages (never
//! secrets); details go to our log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{
    AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf,
    WriteHalf,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::protocol::{self, Cleared, Pong, RemoteError, Report, Request, RequestLine, Response};
use super::transport::{Accepted, Listener};
use crate::engine::{EngineHandle, RefreshOptions, Targets};

/// The socket's file name inside the runtime directory (Unix).
pub const SOCKET_NAME: &str = "agent.sock";
const MAX_CONNECTIONS: usize = 64;
/// A new connection's first request must arrive within this; a client that connects and says
/// nothing gives its slot back.
pub const FIRST_LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// The next request must arrive within this. Generous: `rolecall refresh` keeps its connection
/// open while the person at the terminal types an MFA code.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// Each answer (or event) must be taken by the client within this.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

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
        /// Its socket (or on Windows the file naming its pipe).
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
    /// The socket's path does not fit in a Unix socket address.
    #[error(
        "cannot bind the agent socket {}: its path is {len} bytes, more than the {max} a Unix \
         socket address holds; set XDG_RUNTIME_DIR to a shorter private directory (mode 0700)",
        path.display()
    )]
    SocketPathTooLong {
        /// The socket's path.
        path: PathBuf,
        /// Its length in bytes.
        len: usize,
        /// The longest this OS allows.
        max: usize,
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

pub(crate) fn io<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// A bound agent endpoint: holds the per-user lock, and removes its socket (or pipe name file)
/// when dropped.
#[derive(Debug)]
pub struct AgentSocket {
    listener: Listener,
}

impl AgentSocket {
    /// Creates the runtime directory (Unix: 0700, checked to be ours) if needed, takes the
    /// per-user lock, and binds the socket (0600) or creates the pipe. Must be called inside a
    /// tokio runtime.
    pub fn bind(dir: &Path) -> Result<AgentSocket, Error> {
        Ok(AgentSocket {
            listener: Listener::bind(dir)?,
        })
    }

    /// Where clients connect: the socket's path, or on Windows the pipe's name.
    pub fn path(&self) -> &Path {
        self.listener.address()
    }
}

/// Serves the agent protocol on `socket` until `shutdown` is cancelled, then waits for open
/// connections to finish their current request.
pub async fn serve(mut socket: AgentSocket, engine: EngineHandle, shutdown: CancellationToken) {
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    tracing::info!(socket = %socket.path().display(), "agent listening");
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
            Ok(Accepted::Ours(s)) => s,
            Ok(Accepted::Foreign(mut stream, who)) => {
                tracing::warn!(peer = %who, "refused an agent connection from another user");
                let line = error_line("refused: this agent serves only its own user", false);
                let _ = stream.write_all(line.as_bytes()).await;
                continue;
            }
            Err(e) => {
                tracing::warn!(error = %e, "agent accept failed");
                // e.g. EMFILE: back off a little instead of spinning
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
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

/// Writes `line` to the client, or fails when it does not take it within [`WRITE_TIMEOUT`].
async fn send<W: AsyncWrite + Unpin>(write: &mut W, line: &str) -> std::io::Result<()> {
    match tokio::time::timeout(WRITE_TIMEOUT, write.write_all(line.as_bytes())).await {
        Ok(r) => r,
        Err(_) => Err(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "the client took no answer",
        )),
    }
}

async fn connection<S: AsyncRead + AsyncWrite + Send>(
    stream: S,
    engine: EngineHandle,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let (read, mut write) = tokio::io::split(stream);
    let mut reader = BufReader::new(read);
    let mut line = String::new();
    let mut wait = FIRST_LINE_TIMEOUT;
    loop {
        line.clear();
        let mut limited = (&mut reader).take(protocol::MAX_LINE as u64 + 1);
        let n = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            n = tokio::time::timeout(wait, limited.read_line(&mut line)) => match n {
                Ok(n) => n?,
                Err(_) => {
                    tracing::debug!(after = ?wait, "closing an agent connection that sent nothing");
                    let msg = "no request in time; connect again when there is one";
                    let _ = send(&mut write, &error_line(msg, true)).await;
                    return Ok(());
                }
            },
        };
        wait = IDLE_TIMEOUT;
        if n == 0 {
            return Ok(());
        }
        if line.len() > protocol::MAX_LINE {
            send(&mut write, &error_line("request too long", true)).await?;
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
                send(&mut write, &error_line(&msg, true)).await?;
                continue;
            }
            Err(e) => {
                // serde's message can quote the input (an MFA code): keep only its category
                let msg = format!("bad request: {:?} at column {}", e.classify(), e.column());
                send(&mut write, &error_line(&msg, true)).await?;
                continue;
            }
        };
        if let Request::Subscribe { asks_codes } = request {
            // an app asking for codes in its window, for as long as it listens
            let _asker = asks_codes.then(|| engine.ask_codes());
            return subscribe(engine, reader, write, stop).await;
        }
        let out = answer(handle(&engine, request).await);
        send(&mut write, &out).await?;
    }
}

async fn subscribe<S: AsyncRead + AsyncWrite + Send>(
    engine: EngineHandle,
    mut reader: BufReader<ReadHalf<S>>,
    mut write: WriteHalf<S>,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let mut events = engine.subscribe();
    send(&mut write, &answer(Ok(serde_json::json!("subscribed")))).await?;
    let mut byte = [0u8; 1];
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            // the client never sends more on a subscription: EOF, or anything, ends it (and
            // nothing it sends is kept)
            _ = reader.read(&mut byte) => return Ok(()),
            ev = events.recv() => match ev {
                Ok(event) => {
                    let mut line = serde_json::to_string(&serde_json::json!({
                        "v": protocol::VERSION,
                        "event": event,
                    }))
                    .unwrap_or_default();
                    line.push('\n');
                    send(&mut write, &line).await?;
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    send(&mut write, &format!("{{\"v\":1,\"lagged\":{n}}}\n")).await?;
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
            config: Some(engine.paths().config_file.clone()),
            credentials_file: Some(engine.credentials_file().path().to_path_buf()),
            asks_codes: engine.asks_codes(),
            config_error: engine.config_error(),
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
        Request::Clear { profiles } => {
            let targets = if profiles.is_empty() {
                Targets::All
            } else {
                Targets::Some(profiles)
            };
            let cleared = engine
                .clear_reported(&targets)
                .await
                .map_err(|e| remote(&e))?;
            // missing sections are due: the schedule changed
            engine.wake();
            to_value(&Cleared {
                removed: cleared.removed,
                credentials_file: engine.credentials_file().path().to_path_buf(),
                forgotten_sessions: Some(cleared.forgotten_sessions),
            })
        }
        Request::Subscribe { .. } => Err(RemoteError {
            message: "subscribe must be the last request on a connection".into(),
            usage: true,
        }),
    }
}

/// The agent over this platform's real transport (a Unix socket here, a named pipe on
/// Windows), with a real engine behind it; the CLI-level tests in `tests/` cover the daemon.
#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::serve::client::{AgentClient, AgentEvent};
    use crate::testutil::Sandbox;

    const CONFIG: &str = r#"
[sources.s]
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
"#;

    /// The agent bound in the sandbox's runtime directory, serving a real engine.
    struct Running {
        stop: CancellationToken,
        task: tokio::task::JoinHandle<()>,
        handle: EngineHandle,
    }

    impl Running {
        async fn stop(self) {
            self.stop.cancel();
            self.task.await.unwrap();
        }
    }

    async fn start(sb: &Sandbox) -> Running {
        let engine = sb.engine().await;
        let socket = AgentSocket::bind(&sb.paths().runtime_dir).unwrap();
        let stop = CancellationToken::new();
        let task = tokio::spawn(serve(socket, engine.handle(), stop.clone()));
        Running {
            stop,
            task,
            handle: engine.handle(),
        }
    }

    async fn client(sb: &Sandbox) -> AgentClient {
        AgentClient::connect(&sb.paths().runtime_dir)
            .await
            .unwrap()
            .expect("an agent to answer")
    }

    #[tokio::test]
    async fn a_client_reaches_the_agent_and_none_is_found_once_it_stopped() {
        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let dir = sb.paths().runtime_dir;
        assert!(AgentClient::connect(&dir).await.unwrap().is_none());

        let agent = start(&sb).await;
        let mut c = client(&sb).await;
        assert_eq!(c.ping().await.unwrap().pid, std::process::id());
        let status = c.status().await.unwrap();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].profile, "a");
        // several requests on one connection, and a second client at the same time
        let mut c2 = client(&sb).await;
        assert_eq!(c2.status().await.unwrap().len(), 1);
        assert_eq!(c.ping().await.unwrap().pid, std::process::id());

        agent.stop().await;
        assert!(AgentClient::connect(&dir).await.unwrap().is_none());
    }

    /// Issue 12: a client with no terminal learns from `ping` whether something asks the
    /// user for codes in a window: a subscriber that said so, while it listens, or a shell
    /// hosting the engine.
    #[tokio::test]
    async fn ping_says_whether_an_app_asks_for_codes() {
        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let agent = start(&sb).await;
        let mut c = client(&sb).await;
        assert!(!c.ping().await.unwrap().asks_codes);

        let mut app = client(&sb).await;
        app.subscribe_asking_codes().await.unwrap();
        assert!(c.ping().await.unwrap().asks_codes);
        drop(app);
        let mut gone = false;
        for _ in 0..200 {
            if !c.ping().await.unwrap().asks_codes {
                gone = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(gone, "the app's word outlived its connection");

        let mut plain = client(&sb).await;
        plain.subscribe().await.unwrap();
        assert!(!c.ping().await.unwrap().asks_codes);
        let hosted = agent.handle.ask_codes();
        assert!(c.ping().await.unwrap().asks_codes);
        drop(hosted);
        assert!(!c.ping().await.unwrap().asks_codes);
        agent.stop().await;
    }

    #[tokio::test]
    async fn one_agent_per_user_and_the_next_one_starts_after_it() {
        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let dir = sb.paths().runtime_dir;
        let first = AgentSocket::bind(&dir).unwrap();
        let err = AgentSocket::bind(&dir).unwrap_err();
        assert!(
            matches!(err, Error::AlreadyRunning { .. }),
            "a second agent must be refused, got {err}"
        );
        assert!(err.to_string().contains("already running"), "{err}");
        drop(first);
        let agent = start(&sb).await;
        assert_eq!(
            client(&sb).await.ping().await.unwrap().pid,
            std::process::id()
        );
        agent.stop().await;
    }

    #[tokio::test]
    async fn bad_lines_get_usage_errors_and_the_connection_goes_on() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let agent = start(&sb).await;
        let stream = crate::serve::transport::connect(&sb.paths().runtime_dir)
            .await
            .unwrap()
            .unwrap();
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        let mut line = String::new();
        for (request, expect) in [
            (
                "{\"v\":1,\"op\":\"mfa\",\"source\":\"s\",\"code\":1234567}\n",
                "bad request",
            ),
            ("{\"v\":9,\"op\":\"ping\"}\n", "protocol version 9"),
            (
                "{\"v\":1,\"op\":\"refresh\",\"profiles\":[\"nope\"]}\n",
                "nope",
            ),
        ] {
            w.write_all(request.as_bytes()).await.unwrap();
            line.clear();
            r.read_line(&mut line).await.unwrap();
            let answer: Response = serde_json::from_str(&line).unwrap();
            assert!(!answer.ok, "{line}");
            let error = answer.error.unwrap();
            assert!(error.usage, "{line}");
            assert!(error.message.contains(expect), "{line}");
            // the code sent in the first request is never echoed
            assert!(!line.contains("1234567"), "{line}");
        }
        w.write_all(b"{\"v\":1,\"op\":\"ping\"}\n").await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
        agent.stop().await;
    }

    /// Paused time: the bounds pass without waiting for them.
    #[tokio::test(start_paused = true)]
    async fn a_connection_that_goes_quiet_is_closed_after_the_idle_bound() {
        use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let agent = start(&sb).await;
        let stream = crate::serve::transport::connect(&sb.paths().runtime_dir)
            .await
            .unwrap()
            .unwrap();
        let (r, mut w) = tokio::io::split(stream);
        let mut r = BufReader::new(r);
        w.write_all(b"{\"v\":1,\"op\":\"ping\"}\n").await.unwrap();
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
        // longer than the first-line bound, shorter than the idle one: still open
        tokio::time::sleep(FIRST_LINE_TIMEOUT * 2).await;
        w.write_all(b"{\"v\":1,\"op\":\"ping\"}\n").await.unwrap();
        line.clear();
        r.read_line(&mut line).await.unwrap();
        assert!(line.contains("\"ok\":true"), "{line}");
        // then quiet: told why, and closed
        let started = tokio::time::Instant::now();
        line.clear();
        tokio::time::timeout(IDLE_TIMEOUT * 2, r.read_line(&mut line))
            .await
            .expect("the agent to speak up when the idle bound passes")
            .unwrap();
        assert!(line.contains("no request in time"), "{line}");
        assert!(started.elapsed() >= IDLE_TIMEOUT);
        line.clear();
        assert_eq!(r.read_line(&mut line).await.unwrap(), 0, "closed");
        agent.stop().await;
    }

    #[tokio::test]
    async fn a_subscriber_gets_the_engines_events() {
        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let agent = start(&sb).await;
        let mut c = client(&sb).await;
        c.subscribe().await.unwrap();
        sb.write_config(&format!(
            "{CONFIG}[profiles.b]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\n"
        ));
        agent.handle.reload().await.unwrap();
        let event = tokio::time::timeout(Duration::from_secs(10), c.next_event())
            .await
            .expect("an event within 10 s")
            .unwrap()
            .expect("the stream open");
        match event {
            AgentEvent::Event(crate::events::Event::ConfigReloaded { added, .. }) => {
                assert_eq!(added, vec!["b".to_string()]);
            }
            other => panic!("not a typed config_reloaded: {other:?}"),
        }
        agent.stop().await;
        assert!(
            c.next_event().await.unwrap().is_none(),
            "stream ends on shutdown"
        );
    }

    /// An agent that was killed leaves its socket (or pipe name file) behind: clients must
    /// not take it for a live agent, and the next agent starts over it.
    #[tokio::test]
    async fn a_dead_agents_leftovers_are_neither_used_nor_in_the_way() {
        let sb = Sandbox::new();
        sb.write_config(CONFIG);
        let dir = sb.paths().runtime_dir;
        leave_a_dead_agents_files(&dir);
        assert!(AgentClient::connect(&dir).await.unwrap().is_none());
        let agent = start(&sb).await;
        assert_eq!(
            client(&sb).await.ping().await.unwrap().pid,
            std::process::id()
        );
        agent.stop().await;
    }

    /// What a killed agent leaves: its lock file with its pid (unlocked: the lock died with
    /// the process) and its socket, or on Windows the file naming its pipe.
    fn leave_a_dead_agents_files(dir: &Path) {
        #[cfg(unix)]
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().mode(0o700).create(dir).unwrap();
            // std's listener does not remove its file when dropped
            drop(std::os::unix::net::UnixListener::bind(dir.join(SOCKET_NAME)).unwrap());
        }
        #[cfg(windows)]
        {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(
                dir.join("agent.pipe"),
                r"\\.\pipe\rolecall-agent-00000000000000000000000000000dead",
            )
            .unwrap();
        }
        std::fs::write(dir.join(crate::serve::transport::LOCK_NAME), "999999").unwrap();
    }
}
