//! The agent's typed client: what the CLI (and later the tray app) use to talk to a running
//! agent. [`AgentClient::connect`] answers `Ok(None)` when no agent is running (no socket or
//! pipe, or nobody listening), so callers fall back to doing the work in-process.
//!
//! Every step is bounded, so that an agent that is stopped (`kill -STOP`) or hung cannot hang
//! its clients: connecting within [`CONNECT_TIMEOUT`], and each request's answer within a
//! time that fits the request ([`answer_timeout`]); past it, [`Error::Timeout`] says so.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use super::protocol::{self, Cleared, Pong, RemoteError, Report, Request, RequestLine, Response};
use super::transport::{self, ClientStream};
use crate::engine::ProfileStatus;
use crate::events::Event;

/// What can go wrong talking to the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The agent answered with an error (the engine's message).
    #[error("{}", .0.message)]
    Remote(RemoteError),
    /// The connection broke.
    #[error("lost the connection to the rolecall agent ({0}); is it still running?")]
    Io(#[from] std::io::Error),
    /// The socket's directory, or the process listening on it, is not the user's own.
    #[error("not using the rolecall agent socket: {0}")]
    Untrusted(String),
    /// The agent's answer was not understood.
    #[error("the rolecall agent's answer was not understood ({0}); is it the same version?")]
    Protocol(String),
    /// The agent did not answer in time.
    #[error(
        "the rolecall agent did not {what} within {}s; it may be stopped (kill -STOP) or hung: \
         check it with `ps`, restart it, or run the command with --no-agent",
        after.as_secs()
    )]
    Timeout {
        /// What it did not do (`accept the connection`, `answer ping`).
        what: String,
        /// How long we waited.
        after: Duration,
    },
}

impl Error {
    /// Whether the agent said it was a usage or configuration error.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Remote(e) if e.usage)
    }
}

/// How long connecting to the agent may take; a live agent accepts at once.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the agent may take to answer `request`: seconds for what it answers from memory,
/// more for a status (it reads the credentials file), and minutes for what renews credentials
/// (STS calls with retries, and waiting for a pass in flight).
pub fn answer_timeout(request: &Request) -> Duration {
    match request {
        Request::Ping | Request::Subscribe { .. } => Duration::from_secs(5),
        Request::Status => Duration::from_secs(30),
        Request::Refresh { .. }
        | Request::Mfa { .. }
        | Request::Use { .. }
        | Request::Clear { .. } => Duration::from_secs(10 * 60),
    }
}

fn op(request: &Request) -> &'static str {
    match request {
        Request::Ping => "ping",
        Request::Status => "status",
        Request::Refresh { .. } => "refresh",
        Request::Mfa { .. } => "mfa",
        Request::Use { .. } => "use",
        Request::Clear { .. } => "clear",
        Request::Subscribe { .. } => "subscribe",
    }
}

/// A file the running agent works on that is not the one a client was given: the client must
/// then do its work in-process, or it would act on the wrong profiles or report success for a
/// file nobody wrote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OtherFiles {
    /// Another config file (`--config`, `ROLECALL_CONFIG`).
    #[error(
        "the running rolecall agent uses another config file ({}, not {})",
        theirs.display(),
        ours.display()
    )]
    Config {
        /// The agent's.
        theirs: PathBuf,
        /// The client's.
        ours: PathBuf,
    },
    /// Another credentials file (`AWS_SHARED_CREDENTIALS_FILE`).
    #[error(
        "the running rolecall agent writes another credentials file ({}, not {})",
        theirs.display(),
        ours.display()
    )]
    CredentialsFile {
        /// The agent's.
        theirs: PathBuf,
        /// The client's.
        ours: PathBuf,
    },
}

/// Whether the agent that answered `pong` works on the config and credentials files `paths`
/// name; `Err` says which one differs. What an agent that predates a field cannot say is
/// trusted, and so is a config this process cannot load (the agent reports its own errors).
pub fn same_files(pong: &Pong, paths: &crate::config::Paths) -> Result<(), OtherFiles> {
    if let Some(theirs) = &pong.config
        && !same_file(theirs, &paths.config_file)
    {
        return Err(OtherFiles::Config {
            theirs: theirs.clone(),
            ours: paths.config_file.clone(),
        });
    }
    if let Some(theirs) = &pong.credentials_file
        && let Ok(config) = crate::config::Config::load(&paths.config_file)
    {
        let ours = paths.credentials_file(&config.settings);
        if !same_file(theirs, &ours) {
            return Err(OtherFiles::CredentialsFile {
                theirs: theirs.clone(),
                ours,
            });
        }
    }
    Ok(())
}

/// Whether two paths name the same file: compared canonicalized when both exist (symlinks,
/// relative paths), else as given.
fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// A connection to the agent.
#[derive(Debug)]
pub struct AgentClient {
    reader: BufReader<ReadHalf<ClientStream>>,
    writer: WriteHalf<ClientStream>,
}

impl AgentClient {
    /// Connects to the agent whose socket (or pipe name) is in `runtime_dir`; `Ok(None)` when
    /// none runs.
    pub async fn connect(runtime_dir: &Path) -> Result<Option<AgentClient>, Error> {
        let connecting = tokio::time::timeout(CONNECT_TIMEOUT, transport::connect(runtime_dir));
        let stream = connecting
            .await
            .map_err(|_| Error::Timeout {
                what: "accept the connection".into(),
                after: CONNECT_TIMEOUT,
            })?
            .map_err(|e| {
                if e.kind() == std::io::ErrorKind::PermissionDenied {
                    Error::Untrusted(e.to_string())
                } else {
                    Error::Io(e)
                }
            })?;
        Ok(stream.map(|stream| {
            let (r, w) = tokio::io::split(stream);
            AgentClient {
                reader: BufReader::new(r),
                writer: w,
            }
        }))
    }

    async fn send(&mut self, request: Request) -> Result<(), Error> {
        let mut line = serde_json::to_string(&RequestLine {
            v: protocol::VERSION,
            request,
        })
        .map_err(|e| Error::Protocol(e.to_string()))?;
        line.push('\n');
        self.writer.write_all(line.as_bytes()).await?;
        Ok(())
    }

    async fn read(&mut self) -> Result<String, Error> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Err(Error::Io(std::io::ErrorKind::UnexpectedEof.into()));
        }
        Ok(line)
    }

    /// Sends one request and returns its result; [`Error::Timeout`] when the answer does not
    /// come within [`answer_timeout`].
    pub async fn call(&mut self, request: Request) -> Result<serde_json::Value, Error> {
        let after = answer_timeout(&request);
        let what = format!("answer {}", op(&request));
        let exchange = async {
            self.send(request).await?;
            self.read().await
        };
        let line = tokio::time::timeout(after, exchange)
            .await
            .map_err(|_| Error::Timeout { what, after })??;
        let r: Response =
            serde_json::from_str(line.trim_end()).map_err(|e| Error::Protocol(e.to_string()))?;
        if r.ok {
            Ok(r.result.unwrap_or(serde_json::Value::Null))
        } else {
            Err(Error::Remote(r.error.unwrap_or(RemoteError {
                message: "the agent failed without saying why".into(),
                usage: false,
            })))
        }
    }

    async fn typed<T: serde::de::DeserializeOwned>(
        &mut self,
        request: Request,
    ) -> Result<T, Error> {
        let v = self.call(request).await?;
        serde_json::from_value(v).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The agent's pid and version.
    pub async fn ping(&mut self) -> Result<Pong, Error> {
        self.typed(Request::Ping).await
    }

    /// Every profile's live status.
    pub async fn status(&mut self) -> Result<Vec<ProfileStatus>, Error> {
        self.typed(Request::Status).await
    }

    /// Renews profiles through the agent.
    pub async fn refresh(
        &mut self,
        profiles: Vec<String>,
        force: bool,
        mfa_code: Option<String>,
    ) -> Result<Vec<Report>, Error> {
        self.typed(Request::Refresh {
            profiles,
            force,
            mfa_code,
        })
        .await
    }

    /// Supplies an MFA code for `source`.
    pub async fn mfa(&mut self, source: &str, code: String) -> Result<Vec<Report>, Error> {
        self.typed(Request::Mfa {
            source: source.to_string(),
            code,
        })
        .await
    }

    /// Makes `profile` active, or none; returns the new `[default]` expiry.
    pub async fn use_profile(
        &mut self,
        profile: Option<String>,
        adopt: bool,
        mfa_code: Option<String>,
    ) -> Result<Option<std::time::SystemTime>, Error> {
        let v = self
            .call(Request::Use {
                profile,
                adopt,
                mfa_code,
            })
            .await?;
        Ok(v.get("expiration")
            .and_then(|e| e.as_str())
            .and_then(crate::timestamp::parse))
    }

    /// Removes the managed sections of `profiles` (all, and every cached session, when empty)
    /// through the agent: the same result and errors as [`crate::EngineHandle::clear`].
    pub async fn clear(&mut self, profiles: Vec<String>) -> Result<Cleared, Error> {
        self.typed(Request::Clear { profiles }).await
    }

    /// Turns this connection into an event stream; then call [`AgentClient::next_event`].
    pub async fn subscribe(&mut self) -> Result<(), Error> {
        self.call(Request::Subscribe { asks_codes: false })
            .await
            .map(|_| ())
    }

    /// [`AgentClient::subscribe`], saying that this client asks the user for the MFA codes
    /// the engine needs (the tray app's popup) while the stream lasts.
    pub async fn subscribe_asking_codes(&mut self) -> Result<(), Error> {
        self.call(Request::Subscribe { asks_codes: true })
            .await
            .map(|_| ())
    }

    /// The next item of the event stream, or `None` when the agent closed it.
    pub async fn next_event(&mut self) -> Result<Option<AgentEvent>, Error> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        AgentEvent::parse(line.trim_end()).map(Some)
    }
}

/// One line of the agent's event stream, typed.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum AgentEvent {
    /// An engine event (`{"v":1,"event":{…}}`).
    Event(Event),
    /// The subscriber fell behind and this many events were dropped (`{"v":1,"lagged":N}`).
    Lagged(u64),
    /// An event this build does not know (a newer agent): the whole line, as sent.
    Unknown(serde_json::Value),
}

impl AgentEvent {
    fn parse(line: &str) -> Result<AgentEvent, Error> {
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| Error::Protocol(e.to_string()))?;
        if let Some(n) = v.get("lagged").and_then(serde_json::Value::as_u64) {
            return Ok(AgentEvent::Lagged(n));
        }
        match v.get("event") {
            Some(ev) => Ok(match serde_json::from_value::<Event>(ev.clone()) {
                Ok(event) => AgentEvent::Event(event),
                Err(_) => AgentEvent::Unknown(v),
            }),
            None => Err(Error::Protocol(
                "an event line with neither an event nor a lag count".into(),
            )),
        }
    }

    /// The line as the agent sends it (`rolecall watch --json` prints it).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            AgentEvent::Event(e) => serde_json::json!({"v": protocol::VERSION, "event": e}),
            AgentEvent::Lagged(n) => serde_json::json!({"v": protocol::VERSION, "lagged": n}),
            AgentEvent::Unknown(v) => v.clone(),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::DirBuilderExt;

    use super::*;

    /// An agent stopped with SIGSTOP: the kernel still accepts connections into the listen
    /// backlog, and nothing ever answers. Paused time: the timeout passes without waiting.
    #[tokio::test(start_paused = true)]
    async fn a_silent_agent_is_a_timeout_not_a_hang() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("run");
        std::fs::DirBuilder::new().mode(0o700).create(&dir).unwrap();
        let _listener =
            tokio::net::UnixListener::bind(dir.join(super::super::agent::SOCKET_NAME)).unwrap();
        let mut client = AgentClient::connect(&dir)
            .await
            .unwrap()
            .expect("a listener");
        let err = client.ping().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("did not answer ping within 5s"), "{msg}");
        assert!(msg.contains("--no-agent"), "{msg}");
    }
}
