//! The agent's typed client: what the CLI (and later the tray app) use to talk to a running
//! agent. [`AgentClient::connect`] answers `Ok(None)` when no agent is running (no socket or
//! pipe, or nobody listening), so callers fall back to doing the work in-process.

use std::path::Path;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};

use super::protocol::{self, Pong, RemoteError, Report, Request, RequestLine, Response};
use super::transport::{self, ClientStream};
use crate::engine::ProfileStatus;

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
}

impl Error {
    /// Whether the agent said it was a usage or configuration error.
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Remote(e) if e.usage)
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
        let stream = transport::connect(runtime_dir).await.map_err(|e| {
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

    /// Sends one request and returns its result.
    pub async fn call(&mut self, request: Request) -> Result<serde_json::Value, Error> {
        self.send(request).await?;
        let line = self.read().await?;
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

    /// Turns this connection into an event stream; then call [`AgentClient::next_event`].
    pub async fn subscribe(&mut self) -> Result<(), Error> {
        self.call(Request::Subscribe).await.map(|_| ())
    }

    /// The next event line (`{"v":1,"event":{…}}`, or `{"v":1,"lagged":N}`), or `None` when
    /// the agent closed the stream.
    pub async fn next_event(&mut self) -> Result<Option<serde_json::Value>, Error> {
        let mut line = String::new();
        if self.reader.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        serde_json::from_str(line.trim_end())
            .map(Some)
            .map_err(|e| Error::Protocol(e.to_string()))
    }
}
