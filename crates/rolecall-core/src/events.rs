//! The engine's typed event stream: what happened, for the tray, notifications and
//! `rolecall watch`.
//!
//! Events carry profile and source names, states and times, never credentials. They go out on
//! a `tokio::sync::broadcast` channel; a slow subscriber loses old events (it sees
//! `RecvError::Lagged`) rather than slowing the engine down.

use std::time::SystemTime;

use serde::Serialize;

/// Something the engine did or noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// New credentials for a profile were written.
    CredentialsRefreshed {
        /// The profile.
        profile: String,
        /// When they expire.
        #[serde(with = "rfc3339_opt")]
        expiration: Option<SystemTime>,
    },
    /// A new session (GetSessionToken) was started for a source.
    SessionStarted {
        /// The source.
        source: String,
        /// When the session ends.
        #[serde(with = "rfc3339_opt")]
        expiration: Option<SystemTime>,
    },
    /// Renewing a profile failed.
    RefreshFailed {
        /// The profile.
        profile: String,
        /// What went wrong and what to do (never a secret).
        message: String,
        /// Whether only the user can fix it (as opposed to "will retry").
        needs_user: bool,
    },
    /// A source needs an MFA code before its profiles can be renewed.
    MfaRequired {
        /// The source.
        source: String,
        /// Its MFA device.
        mfa_serial: String,
    },
    /// The profile mirrored into `[default]` changed.
    ActiveChanged {
        /// The new active profile, or none.
        profile: Option<String>,
    },
    /// Managed sections (and cached sessions) were removed.
    Cleared {
        /// The profiles whose sections were removed.
        profiles: Vec<String>,
    },
}

mod rfc3339_opt {
    use std::time::SystemTime;

    pub fn serialize<S: serde::Serializer>(
        t: &Option<SystemTime>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&humantime::format_rfc3339_seconds(*t).to_string()),
            None => s.serialize_none(),
        }
    }
}
