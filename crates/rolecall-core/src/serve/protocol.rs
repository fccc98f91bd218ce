//! The agent protocol: JSON lines over a local socket.
//!
//! Each request is one line, `{"v":1,"op":"status"}`; each answer is one line,
//! `{"v":1,"ok":true,"result":…}` or `{"v":1,"ok":false,"error":{"message":…,"usage":false}}`.
//! Requests on one connection are answered in order. After `{"v":1,"op":"subscribe"}` is
//! acknowledged, the server sends one `{"v":1,"event":{…}}` line per engine event until the
//! client hangs up. A request with another `v` is refused (the version field is there so that
//! the protocol can change without old clients misreading it). Nothing on this socket carries
//! a secret except what the client sends (an MFA code), which is never echoed or logged.

use std::path::PathBuf;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::engine::Outcome;

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request line accepted, in bytes.
pub const MAX_LINE: usize = 64 * 1024;

/// A request from a client.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Request {
    /// Liveness and identity of the agent.
    Ping,
    /// Every profile's status.
    Status,
    /// Renew profiles (all when `profiles` is empty).
    Refresh {
        /// Profile names.
        #[serde(default)]
        profiles: Vec<String>,
        /// Renew even fresh ones.
        #[serde(default)]
        force: bool,
        /// An MFA code for a source that needs a new session.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mfa_code: Option<String>,
    },
    /// Supply an MFA code for a source: resumes every profile waiting on it.
    Mfa {
        /// The source.
        source: String,
        /// The code.
        code: String,
    },
    /// Make a profile active (mirrored into `[default]`), or none.
    Use {
        /// The profile, or none.
        profile: Option<String>,
        /// Take over a `[default]` section the user wrote.
        #[serde(default)]
        adopt: bool,
        /// An MFA code, if a new session is needed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mfa_code: Option<String>,
    },
    /// Remove managed sections (all of them, `[default]` included, and forget every cached
    /// session when `profiles` is empty), as `rolecall clear` does.
    Clear {
        /// Profile names; empty for all.
        #[serde(default)]
        profiles: Vec<String>,
    },
    /// Stream engine events on this connection.
    Subscribe {
        /// The subscriber asks the user for the MFA codes the engine needs (the tray app's
        /// popup) for as long as this connection lives; clients without a terminal then wait
        /// for it (see [`Pong::asks_codes`]).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        asks_codes: bool,
    },
}

/// A request line: the version plus the request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestLine {
    /// Protocol version.
    pub v: u32,
    /// The request.
    #[serde(flatten)]
    pub request: Request,
}

/// An error answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RemoteError {
    /// What went wrong and what to do (the engine's message).
    pub message: String,
    /// Whether it is a usage or configuration error (exit code 2) rather than a failure.
    #[serde(default)]
    pub usage: bool,
}

/// An answer line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Response {
    /// Protocol version.
    pub v: u32,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The result, when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<serde_json::Value>,
    /// The error, when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<RemoteError>,
}

/// What `ping` answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pong {
    /// The agent's process id.
    pub pid: u32,
    /// The agent's version.
    pub version: String,
    /// The config file the agent runs on, so that a client started with another one
    /// (`--config`, `ROLECALL_CONFIG`) can work in-process instead. Absent from agents that
    /// predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<PathBuf>,
    /// The credentials file the agent writes, so that a client given another one
    /// (`AWS_SHARED_CREDENTIALS_FILE`) can work in-process instead. Absent from agents that
    /// predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_file: Option<PathBuf>,
    /// Something asks the user for MFA codes in a window (the tray app, hosting this engine
    /// or subscribed to it with `asks_codes`): a client with no terminal can wait for a
    /// session to start instead of failing at once. False from agents that predate it.
    #[serde(default)]
    pub asks_codes: bool,
    /// Why the agent refused the config file when it last read it (it runs on the last good
    /// config meanwhile); absent when that read worked, and from agents that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_error: Option<String>,
}

/// What `clear` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cleared {
    /// The sections removed.
    pub removed: Vec<String>,
    /// The credentials file they were removed from.
    pub credentials_file: PathBuf,
    /// The sources whose cached MFA session was forgotten (`clear` of everything); absent
    /// from agents that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forgotten_sessions: Option<Vec<String>>,
}

/// What happened to one profile in a refresh, in a form that crosses the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    /// The profile.
    pub profile: String,
    /// What happened.
    pub result: ReportKind,
    /// Expiry of the credentials now in the file.
    #[serde(default, with = "crate::timestamp::option")]
    pub expiration: Option<SystemTime>,
    /// The failure, when failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The source whose new session needs an MFA code, when that is why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa_source: Option<String>,
}

/// The kinds of [`Report`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportKind {
    /// New credentials were written.
    Refreshed,
    /// The file's credentials were fresh enough.
    StillValid,
    /// Renewing failed.
    Failed,
}

impl Report {
    /// The report of one profile's outcome.
    pub fn new(profile: &str, outcome: &Outcome) -> Report {
        let (result, expiration, message) = match outcome {
            Outcome::Refreshed { expiration } => (ReportKind::Refreshed, *expiration, None),
            Outcome::StillValid { expiration } => (ReportKind::StillValid, *expiration, None),
            Outcome::Failed(e) => (ReportKind::Failed, None, Some(e.to_string())),
        };
        let mfa_source = match outcome {
            Outcome::Failed(e) => e.mfa_source().map(str::to_string),
            _ => None,
        };
        Report {
            profile: profile.to_string(),
            result,
            expiration,
            message,
            mfa_source,
        }
    }

    /// Reports of a whole pass.
    pub fn all(outcomes: &[(String, Outcome)]) -> Vec<Report> {
        outcomes.iter().map(|(p, o)| Report::new(p, o)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_are_flat_json_with_a_version() {
        let line = RequestLine {
            v: VERSION,
            request: Request::Refresh {
                profiles: vec!["a".into()],
                force: true,
                mfa_code: None,
            },
        };
        let json = serde_json::to_string(&line).unwrap();
        assert_eq!(
            json,
            r#"{"v":1,"op":"refresh","profiles":["a"],"force":true}"#
        );
        let back: RequestLine = serde_json::from_str(r#"{"v":1,"op":"status"}"#).unwrap();
        assert!(matches!(back.request, Request::Status));
        assert!(serde_json::from_str::<RequestLine>(r#"{"v":1,"op":"nope"}"#).is_err());
    }

    #[test]
    fn a_pong_without_a_config_path_still_parses() {
        let old: Pong = serde_json::from_str(r#"{"pid":7,"version":"0.1.0"}"#).unwrap();
        assert_eq!(old.config, None);
        let new = Pong {
            pid: 7,
            version: "0.1.0".into(),
            config: Some(PathBuf::from("/c/config.toml")),
            credentials_file: Some(PathBuf::from("/h/.aws/credentials")),
            asks_codes: true,
            config_error: Some("line 2: unknown key".into()),
        };
        let back: Pong = serde_json::from_str(&serde_json::to_string(&new).unwrap()).unwrap();
        assert_eq!(back.config, new.config);
        assert_eq!(back.credentials_file, new.credentials_file);
        assert!(back.asks_codes && !old.asks_codes);
        assert_eq!(back.config_error, new.config_error);
        assert_eq!(old.config_error, None);
    }
}
