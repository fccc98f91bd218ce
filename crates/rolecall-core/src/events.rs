//! The engine's typed event stream: what happened, for the tray, notifications and
//! `rolecall watch`.
//!
//! Events carry profile and source names, states and times, never credentials. They go out on
//! a `tokio::sync::broadcast` channel; a slow subscriber loses old events (it sees
//! `RecvError::Lagged`) rather than slowing the engine down. On the wire (the agent's
//! subscription) an event is a JSON object tagged `"event": "credentials_refreshed"` etc., with
//! times in RFC 3339.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::status::State;

/// Something the engine did or noticed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Event {
    /// New credentials for a profile were written.
    CredentialsRefreshed {
        /// The profile.
        profile: String,
        /// When they expire.
        #[serde(default, with = "crate::timestamp::option")]
        expiration: Option<SystemTime>,
    },
    /// A new session (GetSessionToken) was started for a source.
    SessionStarted {
        /// The source.
        source: String,
        /// When the session ends.
        #[serde(default, with = "crate::timestamp::option")]
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
    /// A source needs an MFA code before its profiles can be renewed. Sent once per episode:
    /// not again until a session of that source was started (or the config reloaded).
    MfaRequired {
        /// The source.
        source: String,
        /// Its MFA device.
        mfa_serial: String,
    },
    /// A profile's credentials have less than `notify_before` left and renewing them has not
    /// succeeded (it is failing, parked or waits for an MFA code). Once per expiry.
    ExpiringSoon {
        /// The profile.
        profile: String,
        /// When its credentials in the file expire.
        #[serde(with = "rfc3339")]
        expiration: SystemTime,
    },
    /// A profile's credentials in the file have expired without being renewed. Once per
    /// expiry.
    Expired {
        /// The profile.
        profile: String,
    },
    /// A profile's state, as `status` and the live view ([`crate::LiveView`]) show it, changed:
    /// by an outcome (error, needs MFA, fresh again), a change of the credentials file, or the
    /// clock (it entered its expiring window, `expiry − refresh_before`, or expired: the
    /// scheduler wakes for that). Sent by the scheduler, once per change; the first state it
    /// sees of a profile is not a change.
    StateChanged {
        /// The profile.
        profile: String,
        /// Its new state.
        state: State,
    },
    /// The config file was read again and is now in force.
    ConfigReloaded {
        /// Profiles that are new.
        added: Vec<String>,
        /// Profiles that are gone (their managed sections were removed).
        removed: Vec<String>,
    },
    /// The config file changed but is not valid; the previous config stays in force.
    ConfigInvalid {
        /// What is wrong, with file, line and key.
        message: String,
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

impl std::fmt::Display for Event {
    /// One human sentence, as `rolecall watch` prints it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = |t: &Option<SystemTime>| {
            t.map(crate::timestamp::format)
                .unwrap_or_else(|| "-".into())
        };
        match self {
            Event::CredentialsRefreshed {
                profile,
                expiration,
            } => {
                write!(f, "{profile}: renewed, expires {}", at(expiration))
            }
            Event::SessionStarted { source, expiration } => {
                write!(f, "source {source}: new session until {}", at(expiration))
            }
            Event::RefreshFailed {
                profile,
                message,
                needs_user,
            } => {
                let what = if *needs_user {
                    "needs you"
                } else {
                    "will retry"
                };
                write!(f, "{profile}: renewal failed ({what}): {message}")
            }
            Event::MfaRequired { source, mfa_serial } => write!(
                f,
                "source {source}: needs an MFA code from {mfa_serial}; run `rolecall refresh` on \
                 a terminal, which asks for it (or give it on stdin: `rolecall refresh --mfa-code -`)"
            ),
            Event::ExpiringSoon {
                profile,
                expiration,
            } => {
                write!(
                    f,
                    "{profile}: expires soon, at {}",
                    crate::timestamp::format(*expiration)
                )
            }
            Event::Expired { profile } => write!(f, "{profile}: expired"),
            Event::StateChanged { profile, state } => write!(f, "{profile}: now {state}"),
            Event::ConfigReloaded { added, removed } => write!(
                f,
                "config reloaded (added: {}; removed: {})",
                if added.is_empty() {
                    "none".into()
                } else {
                    added.join(", ")
                },
                if removed.is_empty() {
                    "none".into()
                } else {
                    removed.join(", ")
                }
            ),
            Event::ConfigInvalid { message } => write!(f, "config not reloaded: {message}"),
            Event::ActiveChanged { profile: Some(p) } => write!(f, "[default] now mirrors {p}"),
            Event::ActiveChanged { profile: None } => write!(f, "[default] no longer managed"),
            Event::Cleared { profiles } => write!(f, "cleared [{}]", profiles.join("], [")),
        }
    }
}

mod rfc3339 {
    use std::time::SystemTime;

    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::timestamp::format(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        crate::timestamp::parse(&s)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {s:?}")))
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, UNIX_EPOCH};

    use super::*;

    #[test]
    fn events_are_tagged_snake_case_with_rfc3339_times_and_round_trip() {
        let t = UNIX_EPOCH + Duration::from_secs(1_795_358_602);
        let cases = [
            (
                Event::ExpiringSoon {
                    profile: "dev".into(),
                    expiration: t,
                },
                r#"{"event":"expiring_soon","profile":"dev","expiration":"2026-11-22T14:43:22Z"}"#,
            ),
            (
                Event::StateChanged {
                    profile: "dev".into(),
                    state: State::NeedsMfa,
                },
                r#"{"event":"state_changed","profile":"dev","state":"needs-mfa"}"#,
            ),
            (
                Event::ConfigReloaded {
                    added: vec!["a".into()],
                    removed: vec![],
                },
                r#"{"event":"config_reloaded","added":["a"],"removed":[]}"#,
            ),
        ];
        for (event, json) in cases {
            assert_eq!(serde_json::to_string(&event).unwrap(), json);
            assert_eq!(serde_json::from_str::<Event>(json).unwrap(), event);
        }
    }
}
