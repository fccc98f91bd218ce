//! A profile's state as everyone shows it (`rolecall status`, events, the tray): the
//! [`State`] enum, the [`ProfileStatus`] row, and the one function that tells a state from what
//! the credentials file holds ([`state_of`]). A leaf: it knows nothing of the engine or the
//! scheduler, which both compute states here.

use std::time::{Duration, SystemTime};

use crate::config::{Config, SourceConfig};

/// A profile's state, as `rolecall status` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// More than `refresh_before` left.
    Fresh,
    /// Less than `refresh_before` left.
    Expiring,
    /// Past its expiry.
    Expired,
    /// Not in the credentials file yet.
    Missing,
    /// Cannot be renewed until an MFA code is given.
    NeedsMfa,
    /// Something is wrong (see the message).
    Error,
}

impl std::fmt::Display for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            State::Fresh => "fresh",
            State::Expiring => "expiring",
            State::Expired => "expired",
            State::Missing => "missing",
            State::NeedsMfa => "needs MFA",
            State::Error => "error",
        })
    }
}

/// One profile's status.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProfileStatus {
    /// The profile.
    pub profile: String,
    /// The source at the root of its chain.
    pub source: String,
    /// What it assumes from (a source or a profile).
    pub upstream: String,
    /// Its role, if any.
    pub role_arn: Option<String>,
    /// Whether it is mirrored into `[default]`.
    pub active: bool,
    /// When the credentials in the file expire.
    #[serde(with = "crate::timestamp::option")]
    pub expiration: Option<SystemTime>,
    /// Seconds left.
    pub seconds_left: Option<u64>,
    /// Its state.
    pub state: State,
    /// Why it is in the error state (or, under the scheduler, why the last renewal failed).
    pub message: Option<String>,
    /// When the scheduler will next try to renew it; without a running scheduler, when its
    /// renewal is due (its expiry less the time it is renewed before).
    #[serde(default, with = "crate::timestamp::option")]
    pub next_renewal: Option<SystemTime>,
    /// How many seconds before its expiry it is renewed, when its lifetime is too short for
    /// `refresh_before` (see [`renew_before`]); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub renews_before: Option<u64>,
}

impl ProfileStatus {
    /// The time left at `now` before its credentials in the file expire (`None`: no expiry
    /// known; zero once expired).
    pub fn time_left(&self, now: SystemTime) -> Option<Duration> {
        self.expiration
            .map(|e| e.duration_since(now).unwrap_or_default())
    }

    /// Whether it waits for an MFA code.
    pub fn needs_mfa(&self) -> bool {
        self.state == State::NeedsMfa
    }
}

/// The live view: every profile's status as the engine last knew it, kept up to date by the
/// scheduler running over it (on every renewal, failure, file change, reload, `use`, `clear`,
/// and when a profile crosses into its expiring window or expires), without reading the
/// keychain. Got from [`crate::EngineHandle::live`], a `tokio::sync::watch` receiver, so a
/// shell follows it without polling the file or the keychain. A receiver is only told of a
/// change in something other than the seconds left (a shell redraws the time left from
/// [`ProfileStatus::time_left`] at its own pace).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveView {
    /// When it was made (on the engine's wall clock); `None` while no scheduler runs over the
    /// engine (then it is empty: ask [`crate::EngineHandle::status`]).
    pub at: Option<SystemTime>,
    /// Every configured profile, in the config's order (upstreams first).
    pub profiles: Vec<ProfileStatus>,
}

impl LiveView {
    /// Whether `other` shows the same, leaving aside when it was made and the seconds left.
    pub fn same_as(&self, other: &LiveView) -> bool {
        self.at.is_some() == other.at.is_some()
            && self.profiles.len() == other.profiles.len()
            && self.profiles.iter().zip(&other.profiles).all(|(a, b)| {
                ProfileStatus {
                    seconds_left: b.seconds_left,
                    ..a.clone()
                } == *b
            })
    }
}

/// The state of a profile whose managed section is `section` (`None`: there is none; `Some(None)`:
/// it has no expiry) at `now`: missing, fresh, expiring (less than `refresh_before` left) or
/// expired. The one place this is decided; the engine and the scheduler add what only they know
/// (needs MFA, a parked error, a retry).
pub fn state_of(
    section: Option<Option<SystemTime>>,
    now: SystemTime,
    refresh_before: Duration,
) -> State {
    match section {
        None => State::Missing,
        Some(None) => State::Fresh,
        Some(Some(e)) => match e.duration_since(now) {
            Err(_) => State::Expired,
            Ok(l) if l.is_zero() => State::Expired,
            Ok(l) if l < refresh_before => State::Expiring,
            Ok(_) => State::Fresh,
        },
    }
}

/// How long before their expiry credentials that live `lifetime` are renewed: `refresh_before`,
/// unless that is not shorter than the lifetime (a 15-minute role, the shortest AWS allows,
/// with the default 15 minutes): then a third of the lifetime. A third, because then two thirds
/// of every credential's life is used (renewing at half would double the STS calls) and a third
/// is left for the renewal and its retries (5 minutes for a 15-minute role: the backoff's first
/// six retries fit in about 2). Configs where `refresh_before` is shorter than the lifetime keep
/// exactly what they asked for.
pub fn renew_before(refresh_before: Duration, lifetime: Duration) -> Duration {
    if lifetime.is_zero() || refresh_before < lifetime {
        refresh_before
    } else {
        lifetime / 3
    }
}

/// [`renew_before`] for `profile`, with its own `refresh_before` (else the global one): its lifetime is its role's duration, or its source's session
/// duration for a profile without a role.
pub fn profile_renew_before(config: &Config, profile: &str) -> Duration {
    let rb = config.refresh_before(profile);
    let Some(p) = config.profiles.get(profile) else {
        return rb;
    };
    let lifetime = match &p.role_arn {
        Some(_) => config.role_duration(p),
        None => config
            .sources
            .get(&p.source)
            .map(SourceConfig::session_duration)
            .unwrap_or_default(),
    };
    renew_before(rb, lifetime)
}

/// [`renew_before`] for the MFA session of `source`: a cached session is used while it has more
/// than this left. So a `session_duration` not longer than `refresh_before` does not start a
/// new session (asking for a code) at every renewal.
pub fn session_renew_before(config: &Config, source: &str) -> Duration {
    let rb = config.settings.refresh_before;
    config
        .sources
        .get(source)
        .map_or(rb, |s| renew_before(rb, s.session_duration()))
}

/// What a running scheduler knows about one profile beyond the file (published to the engine,
/// which adds it to `status`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Live {
    /// A state that overrides the one read from the file (error, needs MFA, retrying).
    pub(crate) state: Option<State>,
    /// Why the last attempt failed.
    pub(crate) message: Option<String>,
    /// When the next attempt is planned.
    pub(crate) next_renewal: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn short_lifetimes_renew_at_a_third_of_them_and_others_as_configured() {
        let m = |x: u64| Duration::from_secs(x * 60);
        assert_eq!(renew_before(m(15), m(60)), m(15));
        assert_eq!(renew_before(m(14), m(15)), m(14));
        assert_eq!(renew_before(m(15), m(15)), m(5));
        assert_eq!(renew_before(m(30), m(15)), m(5));
        assert_eq!(renew_before(m(15), Duration::ZERO), m(15));
    }

    use std::time::UNIX_EPOCH;

    use super::*;

    #[test]
    fn the_state_follows_the_time_left() {
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let rb = Duration::from_secs(600);
        let at = |s: u64| Some(Some(now + Duration::from_secs(s)));
        assert_eq!(state_of(None, now, rb), State::Missing);
        assert_eq!(state_of(Some(None), now, rb), State::Fresh);
        assert_eq!(state_of(Some(Some(now)), now, rb), State::Expired);
        assert_eq!(state_of(Some(Some(now - rb)), now, rb), State::Expired);
        assert_eq!(state_of(at(599), now, rb), State::Expiring);
        assert_eq!(state_of(at(600), now, rb), State::Fresh);
    }
}
