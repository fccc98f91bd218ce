//! The refresh scheduler: keeps every managed profile fresh without being asked.
//!
//! It owns the live per-profile state (next renewal, retries, parked errors, waits for an MFA
//! code) and the one loop that acts on it. It must not talk to STS, the keychain or the
//! credentials file itself: renewals go through the engine's refresh pass (one locked, atomic
//! write per pass; sessions before roles; chains after their upstream), behind a small
//! `Backend` seam, so that the loop is tested with a scripted fake and paused time.
//!
//! **Shape** (mini-redis's `db.rs`): one task over a deadline queue. On every wake it re-reads
//! the credentials file and the *wall* clock, renews what is due, then sleeps until the earliest
//! deadline (a renewal, a retry, an expiry warning), a command ([`EngineHandle::wake`],
//! [`EngineHandle::supply_mfa`], a config reload, a resume from suspend) or shutdown. There is
//! no interval: with nothing due it does not wake up at all.
//!
//! **Planning**: a profile is renewed at `expiry − refresh_before − jitter`, the jitter drawn
//! once per expiry, uniform in `[0, min(refresh_before / 10, 60 s, slack / 10)]` (slack: the
//! lifetime left beyond `refresh_before`), so that profiles made together do not all renew in
//! the same second, and short-lived credentials are not renewed much earlier than asked
//! ([`renewal_time`], [`max_jitter`]). A missing or expired section is due at once.
//!
//! **Retries**: retryable errors ([`Error::is_retryable`]: throttling, 5xx, timeouts, network,
//! keychain timeout) are retried with exponential backoff and full jitter: the n-th retry waits
//! a uniform `[0, min(2 s · 2^(n−1), 5 min)]` ([`backoff`]). So is a locked or absent keychain,
//! which the user unlocks or starts without telling us (the check never opens a prompt). The old credentials stay in the
//! file meanwhile (a failed profile is never written). Anything else (access denied, unknown
//! key, wrong MFA code, no key, config) parks the profile with its reason: no retry until
//! something changes (a config reload, a renewal by someone else, a supplied MFA code). A
//! profile whose source needs an MFA code waits in "needs MFA" and `MfaRequired` is sent once
//! per episode. However the plan comes out, one profile is never tried twice within
//! [`MIN_GAP`]: the loop cannot spin.
//!
//! **Suspend and clock jumps**: tokio's timer runs on the monotonic clock, which stops while
//! the machine sleeps, so a deadline that passed during a suspend would fire late by the time
//! slept. Two things catch that: (1) on Linux, a thread listens for logind's
//! `PrepareForSleep(false)` on the system bus (`logind.rs`) and wakes the loop on resume;
//! (2) every wake re-reads the wall clock ([`crate::Clock`]) and renews whatever is due by wall
//! time, so a jump of the clock is caught at the next wake, whatever woke it.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::Notify;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, Upstream};
use crate::credfile::{self, Edit};
use crate::engine::{
    DEFAULT_SECTION, Engine, EngineHandle, Outcome, RefreshOptions, State, Targets, check_mfa_code,
};
use crate::error::Error;
use crate::events::Event;

#[cfg(target_os = "linux")]
mod logind;
mod watch;

/// The first retry waits at most this long.
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
/// Each further retry may wait this many times longer.
pub const BACKOFF_FACTOR: u32 = 2;
/// No retry waits longer than this.
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);
/// The jitter subtracted from a renewal time never exceeds this.
pub const MAX_JITTER: Duration = Duration::from_secs(60);
/// The least time between two attempts at the same profile: the guard against a hot loop.
pub const MIN_GAP: Duration = Duration::from_secs(1);
/// The longest single sleep. Deadlines are hours away at most; this only bounds what a
/// bogus expiry far in the future could ask of the timer.
const MAX_SLEEP: Duration = Duration::from_secs(24 * 3600);

/// The largest jitter for `refresh_before`: a tenth of it, at most [`MAX_JITTER`].
pub fn max_jitter(refresh_before: Duration) -> Duration {
    (refresh_before / 10).min(MAX_JITTER)
}

/// A jitter drawn uniformly from `[0, max_jitter(refresh_before)]` (millisecond steps).
pub fn draw_jitter(refresh_before: Duration, rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(rng.u64(0..=millis(max_jitter(refresh_before))))
}

/// Like [`draw_jitter`], but never more than a tenth of `slack`, the time left before the
/// un-jittered renewal: with short lifetimes (15 min lived, renewed 14m50s before expiry: 10 s
/// of slack) a minute of jitter would make every renewal due at once.
pub fn draw_jitter_within(
    refresh_before: Duration,
    slack: Duration,
    rng: &mut fastrand::Rng,
) -> Duration {
    let max = max_jitter(refresh_before).min(slack / 10);
    Duration::from_millis(rng.u64(0..=millis(max)))
}

/// When to renew credentials that expire at `expiration`: `refresh_before` plus `jitter`
/// earlier.
pub fn renewal_time(
    expiration: SystemTime,
    refresh_before: Duration,
    jitter: Duration,
) -> SystemTime {
    expiration
        .checked_sub(refresh_before + jitter)
        .map_or(UNIX_EPOCH, |t| t.max(UNIX_EPOCH))
}

/// The longest wait before retry number `attempt` (1 for the first):
/// `min(BACKOFF_BASE · BACKOFF_FACTOR^(attempt − 1), BACKOFF_CAP)`.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let steps = attempt.saturating_sub(1).min(20);
    BACKOFF_BASE
        .saturating_mul(BACKOFF_FACTOR.saturating_pow(steps))
        .min(BACKOFF_CAP)
}

/// The wait before retry number `attempt`, with full jitter: uniform in
/// `[0, backoff_ceiling(attempt)]` (millisecond steps). Full jitter spreads the retries of many
/// profiles (and many machines) that failed together, as AWS's architecture blog recommends
/// ("Exponential Backoff And Jitter").
pub fn backoff(attempt: u32, rng: &mut fastrand::Rng) -> Duration {
    Duration::from_millis(rng.u64(0..=millis(backoff_ceiling(attempt))))
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Whole seconds: the credentials file keeps expiries to the second, so this is what
/// "the same expiry" means when comparing with what STS returned.
fn whole_secs(t: SystemTime) -> SystemTime {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => UNIX_EPOCH + Duration::from_secs(d.as_secs()),
        Err(_) => t,
    }
}

fn in_file(expiration: Option<SystemTime>) -> InFile {
    expiration.map_or(InFile::NoExpiry, |e| InFile::Expires(whole_secs(e)))
}

/// A profile's section in the credentials file, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFile {
    Missing,
    NoExpiry,
    Expires(SystemTime),
}

/// Where a profile is in the scheduler's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Planned for `expiry − refresh_before − jitter`.
    Scheduled,
    /// A retryable failure: tried again after a backoff.
    Retrying,
    /// A failure only the user can fix: no attempt until something changes.
    Parked,
    /// Its session needs an MFA code: no attempt until one is supplied.
    NeedsMfa,
}

#[derive(Debug, Clone)]
struct Slot {
    /// `None` until the file was read (or after a config reload: re-plan everything).
    file: Option<InFile>,
    phase: Phase,
    /// Wall-clock time of the next attempt (scheduled or retrying); `None`: none planned.
    next: Option<SystemTime>,
    /// Consecutive failures.
    attempts: u32,
    /// Why the last attempt failed.
    message: Option<String>,
    /// The jitter drawn for the current expiry.
    jitter: Duration,
    /// The expiry `ExpiringSoon` was sent for.
    warned: Option<SystemTime>,
    /// The expiry `Expired` was sent for.
    expired: Option<SystemTime>,
    /// When it was last tried, on the monotonic clock (the busy-loop guard).
    last_attempt: Option<Instant>,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            file: None,
            phase: Phase::Scheduled,
            next: None,
            attempts: 0,
            message: None,
            jitter: Duration::ZERO,
            warned: None,
            expired: None,
            last_attempt: None,
        }
    }
}

impl Slot {
    /// Forgets what was seen and decided: planned again from the file at the next wake.
    fn replan(&mut self) {
        self.file = None;
        self.phase = Phase::Scheduled;
        self.next = None;
        self.attempts = 0;
        self.message = None;
    }

    /// Back to a plain schedule from what the file holds, with a new jitter.
    fn reschedule(&mut self, refresh_before: Duration, rng: &mut fastrand::Rng, now: SystemTime) {
        self.phase = Phase::Scheduled;
        self.attempts = 0;
        self.message = None;
        let slack = match self.file {
            Some(InFile::Expires(e)) => e
                .checked_sub(refresh_before)
                .and_then(|r| r.duration_since(now).ok())
                .unwrap_or_default(),
            _ => max_jitter(refresh_before) * 10,
        };
        self.jitter = draw_jitter_within(refresh_before, slack, rng);
        self.next = match self.file {
            None | Some(InFile::Missing) => Some(now),
            Some(InFile::NoExpiry) => None,
            Some(InFile::Expires(e)) => Some(renewal_time(e, refresh_before, self.jitter)),
        };
    }

    fn is_due(&self, now: SystemTime) -> bool {
        matches!(self.phase, Phase::Scheduled | Phase::Retrying)
            && self.next.is_some_and(|t| t <= now)
    }

    fn guard_left(&self, mono: Instant) -> Duration {
        self.last_attempt.map_or(Duration::ZERO, |t| {
            (t + MIN_GAP).saturating_duration_since(mono)
        })
    }

    /// The state `rolecall status` shows for it.
    fn state(&self, now: SystemTime, refresh_before: Duration) -> State {
        match self.phase {
            Phase::Parked => return State::Error,
            Phase::NeedsMfa => return State::NeedsMfa,
            Phase::Scheduled | Phase::Retrying => {}
        }
        let from_file = match self.file {
            None | Some(InFile::Missing) => State::Missing,
            Some(InFile::NoExpiry) => State::Fresh,
            Some(InFile::Expires(e)) => match e.duration_since(now) {
                Err(_) => State::Expired,
                Ok(l) if l.is_zero() => State::Expired,
                Ok(l) if l < refresh_before => State::Expiring,
                Ok(_) => State::Fresh,
            },
        };
        if self.phase == Phase::Retrying && from_file == State::Fresh {
            State::Expiring
        } else {
            from_file
        }
    }
}

/// What an outcome means for the schedule.
enum Verdict {
    Fresh(Option<SystemTime>),
    Retry(String),
    Park(String),
    Mfa(String),
}

/// What a running scheduler knows about one profile, for [`EngineHandle::status`].
#[derive(Debug, Clone)]
pub(crate) struct Live {
    /// A state that overrides the one read from the file (error, needs MFA).
    pub(crate) state: Option<State>,
    /// Why the last attempt failed.
    pub(crate) message: Option<String>,
    /// When the next attempt is planned.
    pub(crate) next_renewal: Option<SystemTime>,
}

/// The scheduler's book: one slot per configured profile.
pub(crate) struct Book {
    slots: BTreeMap<String, Slot>,
    /// Sources whose `MfaRequired` was sent and that have not started a session since.
    mfa_open: BTreeSet<String>,
    rng: fastrand::Rng,
    /// Bumped whenever outcomes are recorded, so that a file read that raced with a refresh
    /// pass is not taken for news.
    generation: u64,
    /// Bumped by every [`Book::reset`] (a config reload): the outcomes of a pass that started
    /// before one are about the old config and are dropped (the file tells what was renewed).
    resets: u64,
}

impl Book {
    fn new(rng: fastrand::Rng) -> Book {
        Book {
            slots: BTreeMap::new(),
            mfa_open: BTreeSet::new(),
            rng,
            generation: 0,
            resets: 0,
        }
    }

    /// One slot per configured profile: new profiles get one, removed ones lose theirs.
    fn sync_config(&mut self, config: &Config) {
        self.slots.retain(|n, _| config.profiles.contains_key(n));
        for name in config.profiles.keys() {
            self.slots.entry(name.clone()).or_default();
        }
    }

    /// Takes in what the credentials file holds (`name → expiry` of managed sections). A
    /// section that changed under the scheduler (renewed by the CLI, removed, or first seen)
    /// is planned afresh, which also ends a parked error or an MFA wait: someone acted.
    fn observe(
        &mut self,
        config: &Config,
        file: &BTreeMap<String, Option<SystemTime>>,
        now: SystemTime,
    ) -> Vec<Event> {
        let rb = config.settings.refresh_before;
        let mut events = Vec::new();
        // a section renewed by another process means its source has a session now (cached in
        // the keychain): profiles waiting for a code from that source can go on too
        let renewed: BTreeSet<String> = self
            .slots
            .iter()
            .filter(|(name, slot)| {
                let seen = file.get(*name).map_or(InFile::Missing, |e| in_file(*e));
                slot.file.is_some() && slot.file != Some(seen) && seen != InFile::Missing
            })
            .filter_map(|(name, _)| config.root_source(name).map(str::to_string))
            .collect();
        self.resume_sources(config, &renewed);
        for (name, slot) in &mut self.slots {
            let seen = file.get(name).map_or(InFile::Missing, |e| in_file(*e));
            if slot.file == Some(seen) {
                continue;
            }
            let (known, was) = (slot.file.is_some(), slot.phase);
            slot.file = Some(seen);
            slot.reschedule(rb, &mut self.rng, now);
            if known && was != Phase::Scheduled {
                events.push(Event::StateChanged {
                    profile: name.clone(),
                    state: slot.state(now, rb),
                });
            }
        }
        events
    }

    /// The profiles due at `now` and not tried within [`MIN_GAP`], upstreams first.
    fn due(&self, config: &Config, now: SystemTime, mono: Instant) -> Vec<String> {
        config
            .ordered_profiles()
            .into_iter()
            .filter(|n| {
                self.slots
                    .get(*n)
                    .is_some_and(|s| s.is_due(now) && s.guard_left(mono).is_zero())
            })
            .map(str::to_string)
            .collect()
    }

    fn mark_tried(&mut self, names: &[String], mono: Instant) {
        for n in names {
            if let Some(s) = self.slots.get_mut(n) {
                s.last_attempt = Some(mono);
            }
        }
    }

    /// How long to sleep: until the earliest renewal or retry (not before its guard ends), or
    /// the earliest expiry warning or expiry still to announce. `None`: nothing to wait for.
    fn next_wake(&self, config: &Config, now: SystemTime, mono: Instant) -> Option<Duration> {
        let notify_before = config.settings.notify_before;
        let mut best: Option<Duration> = None;
        let mut consider = |d: Duration| best = Some(best.map_or(d, |b| b.min(d)));
        for slot in self.slots.values() {
            if matches!(slot.phase, Phase::Scheduled | Phase::Retrying)
                && let Some(t) = slot.next
            {
                let wall = t.duration_since(now).unwrap_or_default();
                consider(wall.max(slot.guard_left(mono)));
            }
            if let Some(InFile::Expires(e)) = slot.file {
                if slot.expired != Some(e)
                    && let Ok(d) = e.duration_since(now)
                    && !d.is_zero()
                {
                    consider(d);
                }
                if slot.phase != Phase::Scheduled
                    && slot.warned != Some(e)
                    && let Some(w) = e.checked_sub(notify_before)
                    && let Ok(d) = w.duration_since(now)
                    && !d.is_zero()
                {
                    consider(d);
                }
            }
        }
        best.map(|d| d.min(MAX_SLEEP))
    }

    /// Records the outcomes of a pass (every profile of it, dependencies too).
    fn apply(
        &mut self,
        config: &Config,
        outcomes: &[(String, Outcome)],
        now: SystemTime,
    ) -> Vec<Event> {
        let rb = config.settings.refresh_before;
        let by_name: BTreeMap<&str, &Outcome> =
            outcomes.iter().map(|(n, o)| (n.as_str(), o)).collect();
        let verdicts: Vec<(&str, Verdict, bool)> = outcomes
            .iter()
            .filter_map(|(n, o)| match o {
                Outcome::Refreshed { expiration } => {
                    Some((n.as_str(), Verdict::Fresh(*expiration), true))
                }
                // what the file already held (a dependency of a pass): nothing new, so a
                // retry or a parked error of its own stands
                Outcome::StillValid { expiration }
                    if self
                        .slots
                        .get(n)
                        .is_some_and(|s| s.file == Some(in_file(*expiration))) =>
                {
                    None
                }
                Outcome::StillValid { expiration } => {
                    Some((n.as_str(), Verdict::Fresh(*expiration), false))
                }
                Outcome::Failed(e) => Some((n.as_str(), self.classify(e, &by_name, 0), false)),
            })
            .collect();
        let mut events = Vec::new();
        for (name, verdict, renewed) in verdicts {
            let Some(slot) = self.slots.get_mut(name) else {
                continue;
            };
            let was = slot.phase;
            match verdict {
                Verdict::Fresh(expiration) => {
                    let attempts = slot.attempts;
                    slot.file = Some(in_file(expiration));
                    slot.reschedule(rb, &mut self.rng, now);
                    if renewed && slot.next.is_some_and(|t| t <= now) {
                        // new credentials that are due already: the clock is far off, or STS
                        // gave a shorter lifetime than asked. Back off instead of renewing
                        // them again at once.
                        let exp = expiration.map(crate::timestamp::format).unwrap_or_default();
                        retry(
                            slot,
                            format!(
                                "new credentials expire at {exp}, within refresh_before ({}) \
                                 already; check this computer's clock",
                                humantime::format_duration(rb)
                            ),
                            attempts,
                            &mut self.rng,
                            now,
                        );
                    }
                }
                Verdict::Retry(m) => {
                    let attempts = slot.attempts;
                    retry(slot, m, attempts, &mut self.rng, now);
                }
                Verdict::Park(m) => {
                    slot.phase = Phase::Parked;
                    slot.attempts += 1;
                    slot.next = None;
                    slot.message = Some(m);
                }
                Verdict::Mfa(m) => {
                    slot.phase = Phase::NeedsMfa;
                    slot.next = None;
                    slot.message = Some(m);
                }
            }
            if slot.phase != was {
                events.push(Event::StateChanged {
                    profile: name.to_string(),
                    state: slot.state(now, rb),
                });
            }
        }
        self.generation += 1;
        events
    }

    /// A whole pass failed before any profile could be tried (the file could not be read or
    /// written): every profile of it retries.
    fn fail_all(
        &mut self,
        config: &Config,
        names: &[String],
        message: &str,
        now: SystemTime,
    ) -> Vec<Event> {
        let rb = config.settings.refresh_before;
        let mut events = Vec::new();
        for n in names {
            if let Some(slot) = self.slots.get_mut(n) {
                let (was, attempts) = (slot.phase, slot.attempts);
                retry(slot, message.to_string(), attempts, &mut self.rng, now);
                if slot.phase != was {
                    events.push(Event::StateChanged {
                        profile: n.clone(),
                        state: slot.state(now, rb),
                    });
                }
            }
        }
        self.generation += 1;
        events
    }

    fn classify(&self, e: &Error, outcomes: &BTreeMap<&str, &Outcome>, depth: usize) -> Verdict {
        let message = e.to_string();
        match e {
            Error::NeedsMfa { .. } => Verdict::Mfa(message),
            // a chained profile fares as the profile it assumes from
            Error::Upstream { upstream, .. } => {
                let up = match outcomes.get(upstream.as_str()) {
                    Some(Outcome::Failed(ue)) if depth < 64 => {
                        Some(self.classify(ue, outcomes, depth + 1))
                    }
                    _ => None,
                };
                let phase = self.slots.get(upstream).map(|s| s.phase);
                match (up, phase) {
                    (Some(Verdict::Mfa(_)), _) | (None, Some(Phase::NeedsMfa)) => {
                        Verdict::Mfa(message)
                    }
                    (Some(Verdict::Park(_)), _) | (None, Some(Phase::Parked)) => {
                        Verdict::Park(message)
                    }
                    _ => Verdict::Retry(message),
                }
            }
            e if e.is_retryable() => Verdict::Retry(message),
            // a keychain that is locked or not running yet (a user unit started before the
            // login keyring was unlocked) gets unlocked without telling us: keep checking with
            // the usual backoff, which grows to 5 min (the check never opens an unlock prompt)
            Error::Vault(
                crate::vault::Error::Locked { .. } | crate::vault::Error::Unavailable { .. },
            ) => Verdict::Retry(message),
            _ => Verdict::Park(message),
        }
    }

    /// `ExpiringSoon` (less than `notify_before` left and renewing has not succeeded) and
    /// `Expired`, each once per expiry.
    fn expiry_events(&mut self, config: &Config, now: SystemTime) -> Vec<Event> {
        let notify_before = config.settings.notify_before;
        let mut events = Vec::new();
        for (name, slot) in &mut self.slots {
            let Some(InFile::Expires(e)) = slot.file else {
                continue;
            };
            if e <= now {
                if slot.expired != Some(e) {
                    slot.expired = Some(e);
                    events.push(Event::Expired {
                        profile: name.clone(),
                    });
                }
            } else if slot.phase != Phase::Scheduled
                && slot.warned != Some(e)
                && e.duration_since(now)
                    .is_ok_and(|left| left <= notify_before)
            {
                slot.warned = Some(e);
                events.push(Event::ExpiringSoon {
                    profile: name.clone(),
                    expiration: e,
                });
            }
        }
        events
    }

    /// Profiles of `source` that wait for something to change (an MFA code, a fix).
    fn waiting_on(&self, config: &Config, source: &str) -> Vec<String> {
        config
            .ordered_profiles()
            .into_iter()
            .filter(|n| config.root_source(n) == Some(source))
            .filter(|n| {
                self.slots
                    .get(*n)
                    .is_some_and(|s| matches!(s.phase, Phase::NeedsMfa | Phase::Parked))
            })
            .map(str::to_string)
            .collect()
    }

    /// Everything is planned again from the file at the next wake: parked errors and MFA waits
    /// end (the config changed, so they may be fixed), and the next `MfaRequired` is sent
    /// again. What was already announced about the current expiries is kept.
    fn reset(&mut self) {
        for slot in self.slots.values_mut() {
            slot.replan();
        }
        self.mfa_open.clear();
        self.generation += 1;
        self.resets += 1;
    }

    /// The profiles waiting for an MFA code from one of `sources` are planned again from the
    /// file at the next wake: a session of that source exists now (started in this process by
    /// any request, or by another process, which then cached it in the keychain).
    fn resume_sources(&mut self, config: &Config, sources: &BTreeSet<String>) {
        if sources.is_empty() {
            return;
        }
        for (name, slot) in &mut self.slots {
            if slot.phase == Phase::NeedsMfa
                && config
                    .root_source(name)
                    .is_some_and(|s| sources.contains(s))
            {
                slot.replan();
            }
        }
        self.generation += 1;
    }

    fn live(&self, profile: &str) -> Option<Live> {
        let s = self.slots.get(profile)?;
        s.file?;
        Some(Live {
            state: match s.phase {
                Phase::Parked => Some(State::Error),
                Phase::NeedsMfa => Some(State::NeedsMfa),
                Phase::Scheduled | Phase::Retrying => None,
            },
            message: s.message.clone(),
            next_renewal: match s.phase {
                Phase::Scheduled | Phase::Retrying => s.next,
                Phase::Parked | Phase::NeedsMfa => None,
            },
        })
    }

    /// Whether to send `event`: an `MfaRequired` only opens an episode once; a started
    /// session ends it.
    fn admit(&mut self, event: &Event) -> bool {
        match event {
            Event::MfaRequired { source, .. } => self.mfa_open.insert(source.clone()),
            Event::SessionStarted { source, .. } => {
                self.mfa_open.remove(source);
                true
            }
            _ => true,
        }
    }
}

fn retry(
    slot: &mut Slot,
    message: String,
    attempts: u32,
    rng: &mut fastrand::Rng,
    now: SystemTime,
) {
    slot.phase = Phase::Retrying;
    slot.attempts = attempts.saturating_add(1);
    slot.next = Some(now + backoff(slot.attempts, rng));
    slot.message = Some(message);
}

/// The scheduler's state shared by the engine: the book (a std mutex, never held across an
/// `.await`: every use is a short computation, as in mini-redis's `db.rs`) and the loop's
/// wake-up.
pub(crate) struct Shared {
    book: Mutex<Book>,
    wake: Notify,
    running: AtomicBool,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared::with_rng(fastrand::Rng::new())
    }

    fn with_rng(rng: fastrand::Rng) -> Shared {
        Shared {
            book: Mutex::new(Book::new(rng)),
            wake: Notify::new(),
            running: AtomicBool::new(false),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the loop re-plan now (a permit is kept if it is busy, so no wake is lost).
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) fn admit(&self, event: &Event) -> bool {
        self.book().admit(event)
    }

    /// A session of `source` was started in this process (by the scheduler, `supply_mfa`, or
    /// a refresh, `use` or `exec` with a code): the profiles waiting on it go on.
    pub(crate) fn session_started(&self, config: &Config, source: &str) {
        self.book()
            .resume_sources(config, &BTreeSet::from([source.to_string()]));
        self.wake();
    }

    pub(crate) fn live(&self, profile: &str) -> Option<Live> {
        self.book().live(profile)
    }
}

/// What the loop needs from the engine: the seam that tests replace with a scripted fake.
pub(crate) trait Backend: Send + Sync {
    /// The scheduler state.
    fn shared(&self) -> &Shared;
    /// The config in force.
    fn current_config(&self) -> Arc<Config>;
    /// The wall clock.
    fn wall_now(&self) -> SystemTime;
    /// Sends an event (through [`Shared::admit`]).
    fn publish(&self, event: Event);
    /// The expiry of each managed section in the credentials file (`None`: it has none).
    fn managed_expirations(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, Option<SystemTime>>, Error>> + Send;
    /// Renews `profiles` now (and what they assume from, when that is due too), with
    /// `mfa_code` for the first session that needs one; returns every profile of the pass.
    fn renew(
        &self,
        profiles: Vec<String>,
        mfa_code: Option<String>,
    ) -> impl Future<Output = Result<Vec<(String, Outcome)>, Error>> + Send;
}

impl Backend for EngineHandle {
    fn shared(&self) -> &Shared {
        self.sched()
    }

    fn current_config(&self) -> Arc<Config> {
        self.config()
    }

    fn wall_now(&self) -> SystemTime {
        self.now()
    }

    fn publish(&self, event: Event) {
        self.emit(event);
    }

    async fn managed_expirations(&self) -> Result<BTreeMap<String, Option<SystemTime>>, Error> {
        let text = self.read_credentials_text().await?;
        let mut out = BTreeMap::new();
        for s in credfile::inspect(&text).managed() {
            out.entry(s.name.clone()).or_insert(s.expiration);
        }
        Ok(out)
    }

    async fn renew(
        &self,
        profiles: Vec<String>,
        mfa_code: Option<String>,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        // forced: the scheduler decided these are due (its jitter may come before
        // `refresh_before`); what they assume from is renewed only if due by itself
        let opts = RefreshOptions {
            force: true,
            mfa_code,
        };
        let all = self.refresh_pass(&Targets::Some(profiles), opts).await?;
        Ok(all.into_iter().map(|(n, o, _)| (n, o)).collect())
    }
}

fn publish_all<B: Backend>(b: &B, events: Vec<Event>) {
    for e in events {
        b.publish(e);
    }
}

/// The loop: runs until `stop` is cancelled.
pub(crate) async fn drive<B: Backend>(b: &B, stop: &CancellationToken) {
    let shared = b.shared();
    // consecutive failures to read the credentials file: retried with backoff, since nothing
    // can be planned without it
    let mut read_failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let config = b.current_config();
        let generation = shared.book().generation;
        let file = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            r = b.managed_expirations() => r,
        };
        // the wall clock, read again on every wake: this is what catches a suspend or a jump
        let (now, mono) = (b.wall_now(), Instant::now());
        let (due, events, resets) = {
            let mut book = shared.book();
            if book.generation != generation {
                // outcomes were recorded while the file was read: read it again
                continue;
            }
            book.sync_config(&config);
            let events = match &file {
                Ok(f) => {
                    read_failures = 0;
                    book.observe(&config, f, now)
                }
                Err(e) => {
                    read_failures = read_failures.saturating_add(1);
                    tracing::warn!(error = %e, "cannot read the credentials file; will retry");
                    Vec::new()
                }
            };
            let due = book.due(&config, now, mono);
            book.mark_tried(&due, mono);
            (due, events, book.resets)
        };
        publish_all(b, events);
        if !due.is_empty() {
            tracing::debug!(profiles = ?due, "renewing");
            let result = tokio::select! {
                biased;
                () = stop.cancelled() => return,
                r = b.renew(due.clone(), None) => r,
            };
            let now = b.wall_now();
            let events = {
                let mut book = shared.book();
                match &result {
                    _ if book.resets != resets => {
                        tracing::debug!("the config was reloaded during the pass; re-planning");
                        Vec::new()
                    }
                    Ok(outcomes) => book.apply(&config, outcomes, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "refresh pass failed");
                        book.fail_all(&config, &due, &e.to_string(), now)
                    }
                }
            };
            publish_all(b, events);
            continue;
        }
        let (events, wake) = {
            let mut book = shared.book();
            let events = book.expiry_events(&config, now);
            let mut wake = book.next_wake(&config, now, mono);
            if read_failures > 0 {
                let again = backoff_ceiling(read_failures);
                wake = Some(wake.map_or(again, |w| w.min(again)));
            }
            (events, wake)
        };
        publish_all(b, events);
        tracing::debug!(sleep = ?wake, "scheduler idle");
        let sleep = async {
            match wake {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            () = stop.cancelled() => return,
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
    }
}

/// [`EngineHandle::supply_mfa`] over any backend.
async fn supply<B: Backend>(
    b: &B,
    config: &Config,
    source: &str,
    code: String,
) -> Result<Vec<(String, Outcome)>, Error> {
    check_mfa_code(&code)?;
    let mut targets = b.shared().book().waiting_on(config, source);
    if targets.is_empty() {
        // nothing waits: start a new session for the profiles made from it directly
        targets = config
            .ordered_profiles()
            .into_iter()
            .filter(|n| config.upstream(n) == Some(Upstream::Source(source)))
            .map(str::to_string)
            .collect();
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let all = b.renew(targets.clone(), Some(code)).await?;
    let now = b.wall_now();
    let events = {
        let mut book = b.shared().book();
        book.sync_config(config);
        book.apply(config, &all, now)
    };
    publish_all(b, events);
    b.shared().wake();
    Ok(all
        .into_iter()
        .filter(|(n, _)| targets.contains(n))
        .collect())
}

impl Engine {
    /// Runs the refresh scheduler until `shutdown` is cancelled: renews every managed profile
    /// before it expires, retries, waits for MFA codes, and also watches the config file
    /// (reloading it on change) and, on Linux, logind's suspend/resume signal. Everything it
    /// starts stops with `shutdown`, and this returns once all of it has. Renewals use the
    /// engine's [`crate::MfaPrompter`] when a session needs a code (a daemon uses
    /// [`crate::NoPrompt`] and gets codes through [`EngineHandle::supply_mfa`]).
    pub async fn run(&self, shutdown: CancellationToken) -> Result<(), Error> {
        let handle = self.handle();
        if handle.sched().running.swap(true, Ordering::SeqCst) {
            return Err(Error::Internal(
                "the scheduler of this engine is already running".into(),
            ));
        }
        // cleared however this ends (also when the caller drops the future)
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::SeqCst);
            }
        }
        let _running = Running(&handle.sched().running);
        let stop = shutdown.child_token();
        let mut tasks = JoinSet::new();
        tasks.spawn(watch::config_file(handle.clone(), stop.clone()));
        #[cfg(target_os = "linux")]
        {
            let h = handle.clone();
            tasks.spawn(logind::resumes(move || h.resumed(), stop.clone()));
        }
        tracing::info!("scheduler started");
        drive(&handle, &stop).await;
        stop.cancel();
        while let Some(r) = tasks.join_next().await {
            if let Err(e) = r {
                tracing::warn!(error = %e, "scheduler task failed");
            }
        }
        tracing::info!("scheduler stopped");
        Ok(())
    }

    /// Renews what is due now (less than `refresh_before` left, or missing) and returns every
    /// profile's outcome: `rolecall daemon --once`, for cron.
    pub async fn run_once(&self) -> Result<Vec<(String, Outcome)>, Error> {
        self.handle()
            .refresh(&Targets::All, RefreshOptions::default())
            .await
    }
}

impl EngineHandle {
    /// Renews, with `code`, every profile of `source` that waits for an MFA code (or is parked
    /// on an error: a new code is a change worth a try) in one pass, so one GetSessionToken;
    /// when none waits, the profiles made directly from `source`. Then the scheduler re-plans.
    pub async fn supply_mfa(
        &self,
        source: &str,
        code: String,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        let config = self.config();
        if !config.sources.contains_key(source) {
            return Err(Error::UnknownSource {
                name: source.to_string(),
                config: self.paths().config_file.display().to_string(),
            });
        }
        supply(self, &config, source, code).await
    }

    /// Makes a running scheduler re-plan now (after a manual renewal, `use`, or anything else
    /// that changed the credentials file behind its back).
    pub fn wake(&self) {
        self.sched().wake();
    }

    /// Tells a running scheduler that the machine resumed from suspend: it re-reads the wall
    /// clock and renews whatever came due meanwhile. Called by the logind listener on Linux;
    /// other platforms (and tests) may call it themselves.
    pub fn resumed(&self) {
        tracing::info!("resumed from suspend; re-planning");
        self.sched().wake();
    }

    /// Reads the config file again (on a change seen by the watcher, or SIGHUP). A valid config
    /// replaces the one in force: the managed sections of profiles it no longer has are
    /// removed (and `[default]` when `active` was removed), parked profiles get another try,
    /// `ConfigReloaded` is sent and the scheduler re-plans. An invalid (or vanished) file keeps
    /// the config in force and sends `ConfigInvalid`.
    pub async fn reload(&self) -> Result<(), Error> {
        let path = self.paths().config_file.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            if !path.exists() {
                // an editor that moves the old file away before writing the new one would
                // otherwise make every profile disappear for a moment
                return Err(crate::config::Error::Read {
                    source: std::io::Error::new(
                        std::io::ErrorKind::NotFound,
                        "the file is gone; keeping the config in force",
                    ),
                    path,
                });
            }
            crate::config::Config::load(&path)
        })
        .await
        .map_err(|e| Error::Internal(format!("config task failed: {e}")))?;
        let new = match loaded {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "config not reloaded");
                self.emit(Event::ConfigInvalid {
                    message: e.to_string(),
                });
                return Err(Error::Config(e));
            }
        };
        // no refresh pass half-way through the old config while the file is edited
        let _serial = self.serial().await;
        let old = self.config();
        let added: Vec<String> = new
            .profiles
            .keys()
            .filter(|n| !old.profiles.contains_key(*n))
            .cloned()
            .collect();
        let removed: Vec<String> = old
            .profiles
            .keys()
            .filter(|n| !new.profiles.contains_key(*n))
            .cloned()
            .collect();
        let mut gone = removed.clone();
        if old.settings.active.is_some() && new.settings.active.is_none() {
            gone.push(DEFAULT_SECTION.to_string());
        }
        // `active` edited by hand: `[default]` mirrors the new one now, not at its next renewal
        let mirror = new
            .settings
            .active
            .clone()
            .filter(|a| old.settings.active.as_ref() != Some(a));
        let region = mirror
            .as_deref()
            .and_then(|a| new.region(a))
            .map(str::to_string);
        if !gone.is_empty() || mirror.is_some() {
            // from the file of the config in force: that is where those sections are
            let file = self.credentials_file();
            let result = tokio::task::spawn_blocking(move || {
                let text = file.read()?;
                let inventory = credfile::inspect(&text);
                let mut edits: Vec<Edit> = gone
                    .into_iter()
                    .filter(|n| inventory.managed().any(|s| &s.name == n))
                    .map(|name| Edit::Remove { name })
                    .collect();
                // (not there yet: its first renewal writes `[default]` too; the user's own
                // `[default]` is left to the renewal, which says so, so that the removals above
                // are not refused with it)
                let users_default = inventory
                    .sections
                    .iter()
                    .any(|s| s.name == DEFAULT_SECTION && !s.managed);
                if let Some(active) = mirror
                    && !users_default
                    && let Some((creds, _)) = credfile::managed_credentials(&text, &active)
                {
                    edits.push(crate::engine::upsert(
                        DEFAULT_SECTION,
                        &creds,
                        region,
                        false,
                    ));
                }
                if edits.is_empty() {
                    Ok(false)
                } else {
                    file.apply(&edits)
                }
            })
            .await
            .map_err(|e| Error::Internal(format!("file task failed: {e}")))?;
            if let Err(e) = result {
                tracing::warn!(error = %e, "the credentials file was not updated for the new config");
            }
        }
        self.set_config(new);
        self.sched().book().reset();
        tracing::info!(?added, ?removed, "config reloaded");
        self.emit(Event::ConfigReloaded { added, removed });
        self.sched().wake();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use super::*;
    use crate::{sts, testutil};

    // ---- pure planning ----------------------------------------------------------------

    fn rng(seed: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(seed)
    }

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn jitter_stays_within_a_tenth_of_refresh_before_capped_at_a_minute() {
        for (rb, max) in [(10, 1), (300, 30), (600, 60), (900, 60), (3600, 60)] {
            assert_eq!(max_jitter(secs(rb)), secs(max));
            let draws: Vec<Duration> = (0..2000)
                .map(|seed| draw_jitter(secs(rb), &mut rng(seed)))
                .collect();
            assert!(draws.iter().all(|j| *j <= secs(max)), "rb {rb}");
            // uniform over the whole range, not a constant
            assert!(draws.iter().any(|j| *j < secs(max) / 4), "rb {rb}");
            assert!(draws.iter().any(|j| *j > secs(max) * 3 / 4), "rb {rb}");
        }
    }

    #[test]
    fn jitter_never_exceeds_a_tenth_of_the_slack() {
        // 15 min credentials renewed 14m50s before expiry: 10 s of slack, at most 1 s jitter
        for seed in 0..500 {
            let j = draw_jitter_within(secs(890), secs(10), &mut rng(seed));
            assert!(j <= secs(1), "{j:?}");
        }
        assert_eq!(
            draw_jitter_within(secs(900), Duration::ZERO, &mut rng(1)),
            Duration::ZERO
        );
        // plenty of slack: the usual bound
        let draws: Vec<Duration> = (0..500)
            .map(|seed| draw_jitter_within(secs(900), secs(3600), &mut rng(seed)))
            .collect();
        assert!(draws.iter().all(|j| *j <= secs(60)));
        assert!(draws.iter().any(|j| *j > secs(45)));
    }

    #[test]
    fn renewal_is_refresh_before_plus_jitter_before_expiry() {
        let exp = UNIX_EPOCH + secs(1_800_000_000);
        assert_eq!(renewal_time(exp, secs(900), secs(42)), exp - secs(942));
        // never before the epoch, whatever the numbers
        assert_eq!(
            renewal_time(UNIX_EPOCH + secs(5), secs(900), secs(1)),
            UNIX_EPOCH
        );
    }

    #[test]
    fn backoff_ceiling_doubles_from_two_seconds_and_caps_at_five_minutes() {
        let ceilings: Vec<u64> = (1..=12).map(|n| backoff_ceiling(n).as_secs()).collect();
        assert_eq!(
            ceilings,
            [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300, 300]
        );
        assert_eq!(backoff_ceiling(0), secs(2));
        assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
    }

    #[test]
    fn backoff_has_full_jitter_up_to_the_ceiling() {
        for attempt in [1, 3, 9, 40] {
            let ceiling = backoff_ceiling(attempt);
            let waits: Vec<Duration> = (0..2000).map(|s| backoff(attempt, &mut rng(s))).collect();
            assert!(waits.iter().all(|w| *w <= ceiling), "attempt {attempt}");
            // full jitter reaches down to zero, not just to half the ceiling
            assert!(waits.iter().any(|w| *w < ceiling / 10), "attempt {attempt}");
            assert!(
                waits.iter().any(|w| *w > ceiling * 9 / 10),
                "attempt {attempt}"
            );
        }
    }

    fn config() -> Config {
        testutil::config(testutil::TWO_ROLES_AND_A_CHAIN)
    }

    const T0: u64 = 1_800_000_000;

    fn at(s: u64) -> SystemTime {
        UNIX_EPOCH + secs(T0 + s)
    }

    fn book_with(config: &Config, file: &[(&str, SystemTime)], now: SystemTime) -> Book {
        let mut book = Book::new(rng(7));
        book.sync_config(config);
        let file = file
            .iter()
            .map(|(n, e)| (n.to_string(), Some(*e)))
            .collect();
        book.observe(config, &file, now);
        book
    }

    fn denied(profile: &str) -> Error {
        Error::Sts {
            profile: profile.into(),
            error: sts::Error::AccessDenied {
                role_arn: None,
                message: "not allowed".into(),
            },
        }
    }

    fn throttled(profile: &str) -> Error {
        Error::Sts {
            profile: profile.into(),
            error: sts::Error::Throttled { attempts: 3 },
        }
    }

    fn needs_mfa() -> Error {
        Error::NeedsMfa {
            source_name: "s".into(),
            mfa_serial: "arn:aws:iam::111111111111:mfa/alice".into(),
        }
    }

    #[test]
    fn missing_sections_are_due_at_once_upstream_first() {
        let c = config();
        let mono = Instant::now();
        let book = book_with(&c, &[("b", at(3600))], at(0));
        assert_eq!(book.due(&c, at(0), mono), ["a", "chained"]);
    }

    #[test]
    fn the_next_wake_is_the_earliest_renewal() {
        let c = config();
        let mono = Instant::now();
        let book = book_with(
            &c,
            &[("a", at(3600)), ("b", at(1800)), ("chained", at(7200))],
            at(0),
        );
        assert!(book.due(&c, at(0), mono).is_empty());
        let b = &book.slots["b"];
        assert_eq!(b.next, Some(at(1800) - secs(600) - b.jitter));
        assert!(b.jitter <= secs(60));
        assert_eq!(
            book.next_wake(&c, at(0), mono),
            Some(secs(1200) - b.jitter),
            "b is the earliest"
        );
        // at its time it is due, and only it
        assert_eq!(book.due(&c, b.next.unwrap(), mono), ["b"]);
    }

    #[test]
    fn parked_and_mfa_waits_get_no_renewal_deadline_only_their_expiry_warnings() {
        let c = config();
        let mono = Instant::now();
        let mut book = book_with(
            &c,
            &[("a", at(3600)), ("b", at(3600)), ("chained", at(3600))],
            at(3000),
        );
        let outcomes = vec![
            ("a".to_string(), Outcome::Failed(denied("a"))),
            ("b".to_string(), Outcome::Failed(needs_mfa())),
            ("chained".to_string(), Outcome::Failed(needs_mfa())),
        ];
        book.apply(&c, &outcomes, at(3000));
        for n in ["a", "b", "chained"] {
            let live = book.live(n).unwrap();
            assert_eq!(live.next_renewal, None, "{n}");
            assert!(!book.due(&c, at(100_000), mono).contains(&n.to_string()));
        }
        assert_eq!(book.live("a").unwrap().state, Some(State::Error));
        assert_eq!(book.live("b").unwrap().state, Some(State::NeedsMfa));
        // what is left to wait for: the warning at expiry − notify_before (5 min)
        assert_eq!(book.next_wake(&c, at(3000), mono), Some(secs(300)));
        let events = book.expiry_events(&c, at(3300));
        assert_eq!(events.len(), 3, "{events:?}");
        assert!(
            book.expiry_events(&c, at(3300)).is_empty(),
            "once per expiry"
        );
        // then the expiry itself, once
        assert_eq!(book.next_wake(&c, at(3300), mono), Some(secs(300)));
        assert_eq!(book.expiry_events(&c, at(3600)).len(), 3);
        assert!(book.expiry_events(&c, at(3700)).is_empty());
        assert_eq!(book.next_wake(&c, at(3700), mono), None);
    }

    #[test]
    fn a_chained_profile_fares_as_the_profile_it_assumes_from() {
        let c = config();
        for (upstream, want) in [
            (needs_mfa(), Some(State::NeedsMfa)),
            (denied("a"), Some(State::Error)),
            (throttled("a"), None),
        ] {
            let mut book = book_with(&c, &[], at(0));
            let outcomes = vec![
                ("a".to_string(), Outcome::Failed(upstream)),
                (
                    "chained".to_string(),
                    Outcome::Failed(Error::Upstream {
                        profile: "chained".into(),
                        upstream: "a".into(),
                        reason: "throttled".into(),
                        upstream_needs_user: false,
                        mfa_source: None,
                    }),
                ),
            ];
            book.apply(&c, &outcomes, at(0));
            let live = book.live("chained").unwrap();
            assert_eq!(live.state, want);
            if want.is_none() {
                assert_eq!(book.slots["chained"].phase, Phase::Retrying);
            }
        }
    }

    #[test]
    fn a_session_started_anywhere_resumes_every_profile_waiting_on_its_source() {
        let c = config();
        let waiting = || {
            let mut book = book_with(&c, &[("a", at(3600)), ("b", at(3600))], at(3000));
            let outcomes = [
                ("a".to_string(), Outcome::Failed(needs_mfa())),
                ("b".to_string(), Outcome::Failed(needs_mfa())),
            ];
            book.apply(&c, &outcomes, at(3000));
            assert_eq!(book.slots["b"].phase, Phase::NeedsMfa);
            book
        };
        let replanned_due = |book: &Book, name: &str| {
            assert_eq!(book.slots[name].phase, Phase::Scheduled, "{name}");
            let next = book.live(name).unwrap().next_renewal;
            assert!(next.is_some_and(|t| t <= at(3010)), "{name}: {next:?}");
        };

        // another process renewed `a` with a code: its section changed, and `b` goes on too
        let mut book = waiting();
        let file = BTreeMap::from([
            ("a".to_string(), Some(at(7200))),
            ("b".to_string(), Some(at(3600))),
        ]);
        book.observe(&c, &file, at(3010));
        replanned_due(&book, "b");

        // a session started in this process (a refresh or `use` with a code)
        let mut book = waiting();
        book.resume_sources(&c, &BTreeSet::from(["s".to_string()]));
        let file = BTreeMap::from([
            ("a".to_string(), Some(at(3600))),
            ("b".to_string(), Some(at(3600))),
        ]);
        book.observe(&c, &file, at(3010));
        replanned_due(&book, "a");
        replanned_due(&book, "b");

        // another source's session changes nothing
        let mut book = waiting();
        book.resume_sources(&c, &BTreeSet::from(["other".to_string()]));
        assert_eq!(book.slots["b"].phase, Phase::NeedsMfa);
    }

    #[test]
    fn a_locked_or_absent_keychain_is_checked_again_later_but_a_denied_one_parks() {
        use crate::vault;
        let c = config();
        for (error, phase) in [
            (
                vault::Error::Locked {
                    account: "source:s".into(),
                },
                Phase::Retrying,
            ),
            (
                vault::Error::Unavailable {
                    reason: "no Secret Service".into(),
                },
                Phase::Retrying,
            ),
            (
                vault::Error::Denied {
                    account: "source:s".into(),
                },
                Phase::Parked,
            ),
        ] {
            let mut book = book_with(&c, &[], at(0));
            book.apply(
                &c,
                &[("a".into(), Outcome::Failed(Error::Vault(error)))],
                at(0),
            );
            assert_eq!(book.slots["a"].phase, phase);
            if phase == Phase::Retrying {
                // the first retry: within the first backoff ceiling (2 s)
                let next = book.slots["a"].next.expect("a retry deadline");
                assert!(next <= at(0) + backoff_ceiling(1), "{next:?}");
            } else {
                assert_eq!(book.slots["a"].next, None);
            }
        }
    }

    #[test]
    fn only_what_the_user_can_fix_is_flagged_as_needing_them() {
        let expired = Error::Session {
            source_name: "s".into(),
            error: sts::Error::ExpiredToken,
        };
        let upstream = |upstream_needs_user| Error::Upstream {
            profile: "chained".into(),
            upstream: "a".into(),
            reason: "its reason".into(),
            upstream_needs_user,
            mfa_source: None,
        };
        assert!(denied("a").needs_user());
        assert!(needs_mfa().needs_user());
        assert!(Error::BadMfaCode(5).needs_user());
        assert!(upstream(true).needs_user());
        assert!(!throttled("a").needs_user());
        assert!(!expired.needs_user());
        assert!(!upstream(false).needs_user());
    }

    #[test]
    fn a_profile_is_never_tried_twice_within_min_gap() {
        let c = config();
        let mono = Instant::now();
        let mut book = book_with(&c, &[], at(0));
        let due = book.due(&c, at(0), mono);
        book.mark_tried(&due, mono);
        // still due by the wall clock (nothing recorded), but guarded
        assert!(book.due(&c, at(0), mono).is_empty());
        assert_eq!(book.next_wake(&c, at(0), mono), Some(MIN_GAP));
        assert_eq!(book.due(&c, at(1), mono + MIN_GAP), due);
    }

    #[test]
    fn credentials_that_come_back_due_already_back_off() {
        let c = config();
        let mut book = book_with(&c, &[], at(0));
        // five minutes left, refresh_before is ten: renewing again at once would spin
        let outcomes = vec![(
            "a".to_string(),
            Outcome::Refreshed {
                expiration: Some(at(300)),
            },
        )];
        book.apply(&c, &outcomes, at(0));
        let a = &book.slots["a"];
        assert_eq!(a.phase, Phase::Retrying);
        assert!(a.next.unwrap() <= at(0) + backoff_ceiling(1));
        assert!(a.message.as_deref().unwrap().contains("clock"), "{a:?}");
    }

    #[test]
    fn mfa_required_is_sent_once_per_episode() {
        let mut book = Book::new(rng(1));
        let mfa = Event::MfaRequired {
            source: "s".into(),
            mfa_serial: "x".into(),
        };
        assert!(book.admit(&mfa));
        assert!(!book.admit(&mfa));
        assert!(book.admit(&Event::SessionStarted {
            source: "s".into(),
            expiration: None
        }));
        assert!(book.admit(&mfa), "a new episode");
        book.reset();
        assert!(book.admit(&mfa), "a reload starts over");
    }

    // ---- the loop, with a scripted backend and paused time -----------------------------

    /// The wall clock: follows tokio's (paused) clock, and can jump on its own, as it does
    /// over a suspend.
    struct FakeClock {
        base: SystemTime,
        start: Instant,
        jumped: Mutex<Duration>,
    }

    impl FakeClock {
        fn now(&self) -> SystemTime {
            self.base + (Instant::now() - self.start) + *self.jumped.lock().unwrap()
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Reply {
        /// New credentials for this long.
        Renewed(u64),
        Throttled,
        Denied,
        /// Needs an MFA code; with one, new credentials for this long.
        NeedsMfa(u64),
        /// Never answers.
        Hang,
    }

    #[derive(Debug, Clone)]
    struct Call {
        at: Instant,
        profiles: Vec<String>,
        mfa_code: Option<String>,
    }

    struct Fake {
        shared: Shared,
        config: Arc<Config>,
        clock: FakeClock,
        events: broadcast::Sender<Event>,
        file: Mutex<BTreeMap<String, Option<SystemTime>>>,
        reply: Mutex<Reply>,
        calls: Mutex<Vec<Call>>,
        reads: Mutex<usize>,
    }

    impl Backend for Fake {
        fn shared(&self) -> &Shared {
            &self.shared
        }

        fn current_config(&self) -> Arc<Config> {
            Arc::clone(&self.config)
        }

        fn wall_now(&self) -> SystemTime {
            self.clock.now()
        }

        fn publish(&self, event: Event) {
            if self.shared.admit(&event) {
                let _ = self.events.send(event);
            }
        }

        async fn managed_expirations(&self) -> Result<BTreeMap<String, Option<SystemTime>>, Error> {
            *self.reads.lock().unwrap() += 1;
            Ok(self.file.lock().unwrap().clone())
        }

        async fn renew(
            &self,
            profiles: Vec<String>,
            mfa_code: Option<String>,
        ) -> Result<Vec<(String, Outcome)>, Error> {
            self.calls.lock().unwrap().push(Call {
                at: Instant::now(),
                profiles: profiles.clone(),
                mfa_code: mfa_code.clone(),
            });
            let reply = *self.reply.lock().unwrap();
            if matches!(reply, Reply::Hang) {
                std::future::pending::<()>().await;
            }
            let now = self.clock.now();
            let mut out = Vec::new();
            let renewed = |name: &str, life: u64| {
                let exp = now + secs(life);
                self.file.lock().unwrap().insert(name.into(), Some(exp));
                Outcome::Refreshed {
                    expiration: Some(exp),
                }
            };
            if matches!(reply, Reply::NeedsMfa(_)) && mfa_code.is_some() {
                self.publish(Event::SessionStarted {
                    source: "s".into(),
                    expiration: None,
                });
            }
            for name in profiles {
                let outcome = match reply {
                    Reply::Renewed(life) => renewed(&name, life),
                    Reply::NeedsMfa(life) if mfa_code.is_some() => renewed(&name, life),
                    Reply::NeedsMfa(_) => {
                        self.publish(Event::MfaRequired {
                            source: "s".into(),
                            mfa_serial: "arn:aws:iam::111111111111:mfa/alice".into(),
                        });
                        Outcome::Failed(needs_mfa())
                    }
                    Reply::Throttled => Outcome::Failed(throttled(&name)),
                    Reply::Denied => Outcome::Failed(denied(&name)),
                    Reply::Hang => unreachable!(),
                };
                out.push((name, outcome));
            }
            Ok(out)
        }
    }

    /// A fake whose file holds `file` (profile, seconds left); the other profiles are missing.
    fn fake(toml: &str, file: &[(&str, u64)], reply: Reply) -> Arc<Fake> {
        let clock = FakeClock {
            base: at(0),
            start: Instant::now(),
            jumped: Mutex::new(Duration::ZERO),
        };
        let file = file
            .iter()
            .map(|(n, left)| (n.to_string(), Some(at(*left))))
            .collect();
        Arc::new(Fake {
            shared: Shared::with_rng(rng(42)),
            config: Arc::new(testutil::config(toml)),
            clock,
            events: broadcast::channel(1024).0,
            file: Mutex::new(file),
            reply: Mutex::new(reply),
            calls: Mutex::new(Vec::new()),
            reads: Mutex::new(0),
        })
    }

    impl Fake {
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }

        fn next_of(&self, profile: &str) -> Option<SystemTime> {
            self.shared.book().slots.get(profile).and_then(|s| s.next)
        }

        /// How far the planned attempt of `profile` is from now on the wall clock.
        fn until(&self, profile: &str) -> Duration {
            let next = self.next_of(profile).expect("an attempt is planned");
            next.duration_since(self.clock.now()).unwrap_or_default()
        }
    }

    /// Lets the loop run until it waits again (it never waits on anything but time, a
    /// notification or the fake's answers, which are immediate).
    async fn settle() {
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
    }

    async fn advance(d: Duration) {
        tokio::time::advance(d).await;
        settle().await;
    }

    fn start(f: &Arc<Fake>) -> (CancellationToken, tokio::task::JoinHandle<()>) {
        let stop = CancellationToken::new();
        let (f, s) = (Arc::clone(f), stop.clone());
        let task = tokio::spawn(async move { drive(&*f, &s).await });
        (stop, task)
    }

    fn drain(rx: &mut broadcast::Receiver<Event>) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e);
        }
        out
    }

    const TWO: &str = r#"
[settings]
refresh_before = "10m"
notify_before = "5m"
[sources.s]
mfa_serial = "arn:aws:iam::111111111111:mfa/alice"
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
[profiles.b]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/B"
"#;

    const ONE: &str = r#"
[settings]
refresh_before = "10m"
notify_before = "5m"
[sources.s]
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
"#;

    #[tokio::test(start_paused = true)]
    async fn sleeps_until_the_earliest_deadline_and_wakes_exactly_then() {
        let f = fake(TWO, &[("a", 3600), ("b", 7200)], Reply::Renewed(5 * 3600));
        let (stop, task) = start(&f);
        settle().await;
        assert!(f.calls().is_empty(), "both are fresh");

        let until_a = f.until("a");
        assert!(
            until_a >= secs(3000 - 60) && until_a <= secs(3000),
            "{until_a:?}"
        );
        advance(until_a - Duration::from_millis(1)).await;
        assert!(f.calls().is_empty(), "not a moment early");
        advance(Duration::from_millis(1)).await;
        let calls = f.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].profiles, ["a"]);

        let until_b = f.until("b");
        advance(until_b - Duration::from_millis(1)).await;
        assert_eq!(f.calls().len(), 1);
        advance(Duration::from_millis(1)).await;
        let calls = f.calls();
        assert_eq!(calls.len(), 2);
        assert_eq!(calls[1].profiles, ["b"]);
        // renewed a is planned 5 h after its renewal, less refresh_before and jitter
        let since_a = calls[1].at - calls[0].at;
        let until_a = f.until("a") + since_a;
        assert!(
            until_a >= secs(5 * 3600 - 600 - 60) && until_a <= secs(5 * 3600 - 600),
            "{until_a:?}"
        );

        stop.cancel();
        settle().await;
        assert!(task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn no_wake_up_when_nothing_is_due() {
        let f = fake(
            TWO,
            &[("a", 10 * 3600), ("b", 10 * 3600)],
            Reply::Renewed(3600),
        );
        let (stop, _task) = start(&f);
        settle().await;
        let reads = *f.reads.lock().unwrap();
        assert_eq!(reads, 1, "one look at the file on start");
        for _ in 0..60 {
            advance(secs(60)).await;
        }
        assert!(f.calls().is_empty());
        assert_eq!(*f.reads.lock().unwrap(), reads, "the loop did not wake up");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn retryable_errors_back_off_exponentially_up_to_the_cap() {
        let f = fake(ONE, &[("a", 3600)], Reply::Throttled);
        let (stop, _task) = start(&f);
        settle().await;
        advance(f.until("a")).await;
        assert_eq!(f.calls().len(), 1);
        for n in 1..=14u32 {
            let slot = f.shared.book().slots["a"].clone();
            assert_eq!(slot.phase, Phase::Retrying);
            assert_eq!(slot.attempts, n);
            assert!(slot.message.as_deref().unwrap().contains("throttling"));
            let wait = f.until("a");
            assert!(wait <= backoff_ceiling(n), "retry {n}: {wait:?}");
            // the guard: never sooner than MIN_GAP after the previous attempt
            advance(wait.max(MIN_GAP)).await;
            assert_eq!(f.calls().len(), n as usize + 1, "retry {n}");
        }
        let calls = f.calls();
        for pair in calls.windows(2) {
            assert!(pair[1].at - pair[0].at >= MIN_GAP);
        }
        // the last waits were drawn under the 5-minute cap
        assert_eq!(backoff_ceiling(14), BACKOFF_CAP);
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_permanent_error_parks_the_profile_without_retrying() {
        let f = fake(ONE, &[], Reply::Denied);
        let mut rx = f.events.subscribe();
        let (stop, _task) = start(&f);
        settle().await;
        assert_eq!(f.calls().len(), 1, "missing: tried at once");
        for _ in 0..24 {
            advance(secs(3600)).await;
        }
        assert_eq!(f.calls().len(), 1, "parked for a day");
        let live = f.shared.live("a").unwrap();
        assert_eq!(live.state, Some(State::Error));
        assert!(live.message.unwrap().contains("not allowed"));
        assert_eq!(live.next_renewal, None);
        let changes: Vec<Event> = drain(&mut rx)
            .into_iter()
            .filter(|e| matches!(e, Event::StateChanged { .. }))
            .collect();
        assert_eq!(
            changes,
            [Event::StateChanged {
                profile: "a".into(),
                state: State::Error
            }]
        );
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn needs_mfa_is_announced_once_and_a_supplied_code_resumes_every_waiting_profile() {
        let f = fake(TWO, &[("a", 3600), ("b", 4200)], Reply::NeedsMfa(3600));
        let mut rx = f.events.subscribe();
        let (stop, _task) = start(&f);
        settle().await;
        advance(f.until("a")).await;
        assert_eq!(f.calls().len(), 1);
        advance(f.until("b")).await;
        assert_eq!(f.calls().len(), 2, "b found out for itself");
        // a day later: no retries, each expiry warned and announced once (minute steps: a
        // wake that comes after the expiry itself has nothing left to warn about)
        for _ in 0..24 * 60 {
            advance(secs(60)).await;
        }
        assert_eq!(f.calls().len(), 2);
        let events = drain(&mut rx);
        let count = |pred: &dyn Fn(&Event) -> bool| events.iter().filter(|e| pred(e)).count();
        assert_eq!(
            count(&|e| matches!(e, Event::MfaRequired { .. })),
            1,
            "{events:?}"
        );
        assert_eq!(
            count(&|e| matches!(e, Event::ExpiringSoon { .. })),
            2,
            "{events:?}"
        );
        assert_eq!(
            count(&|e| matches!(e, Event::Expired { .. })),
            2,
            "{events:?}"
        );
        for p in ["a", "b"] {
            assert_eq!(f.shared.live(p).unwrap().state, Some(State::NeedsMfa));
        }

        let config = Arc::clone(&f.config);
        let outcomes = supply(&*f, &config, "s", "123456".into()).await.unwrap();
        assert_eq!(outcomes.len(), 2);
        assert!(
            outcomes
                .iter()
                .all(|(_, o)| matches!(o, Outcome::Refreshed { .. }))
        );
        let calls = f.calls();
        assert_eq!(calls.len(), 3);
        assert_eq!(calls[2].profiles, ["a", "b"], "one pass, so one session");
        assert_eq!(calls[2].mfa_code.as_deref(), Some("123456"));
        settle().await;
        for p in ["a", "b"] {
            let live = f.shared.live(p).unwrap();
            assert_eq!(live.state, None);
            assert!(live.next_renewal.is_some());
        }
        assert_eq!(f.calls().len(), 3, "nothing due right after");
        // the next episode is announced again
        advance(f.until("a")).await;
        let events = drain(&mut rx);
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::MfaRequired { .. })),
            "{events:?}"
        );
        // a code that is not 6 digits is refused before any STS call
        let calls = f.calls().len();
        assert!(matches!(
            supply(&*f, &config, "s", "12".into()).await,
            Err(Error::BadMfaCode(_))
        ));
        assert_eq!(f.calls().len(), calls);
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn after_a_suspend_due_renewals_happen_at_once() {
        let f = fake(TWO, &[("a", 3600), ("b", 4 * 3600)], Reply::Renewed(3600));
        let (stop, _task) = start(&f);
        settle().await;
        let slept_at = Instant::now();
        // two hours of suspend: the wall clock moves, tokio's monotonic clock does not
        *f.clock.jumped.lock().unwrap() = secs(2 * 3600);
        settle().await;
        assert!(f.calls().is_empty(), "the timer has not fired");
        f.shared.wake(); // what the logind listener does (EngineHandle::resumed)
        settle().await;
        let calls = f.calls();
        assert_eq!(calls.len(), 1);
        assert_eq!(calls[0].profiles, ["a"], "b still has 2 h");
        assert_eq!(calls[0].at, slept_at, "at once");
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_the_loop_promptly_even_mid_renewal() {
        let f = fake(ONE, &[("a", 3600)], Reply::Renewed(3600));
        let (stop, task) = start(&f);
        settle().await;
        stop.cancel();
        settle().await;
        assert!(task.is_finished());

        let f = fake(ONE, &[], Reply::Hang);
        let (stop, task) = start(&f);
        settle().await;
        assert_eq!(f.calls().len(), 1, "renewing");
        let t = Instant::now();
        stop.cancel();
        settle().await;
        assert!(task.is_finished());
        assert_eq!(Instant::now(), t);
    }

    #[tokio::test(start_paused = true)]
    async fn renewed_credentials_that_are_due_again_never_spin() {
        // STS hands out 5-minute credentials while refresh_before is 10 minutes
        let f = fake(ONE, &[], Reply::Renewed(300));
        let (stop, _task) = start(&f);
        for _ in 0..3600 {
            advance(secs(1)).await;
        }
        let calls = f.calls();
        assert!(calls.len() <= 30, "{} attempts in an hour", calls.len());
        for pair in calls.windows(2) {
            assert!(pair[1].at - pair[0].at >= MIN_GAP);
        }
        stop.cancel();
    }

    #[tokio::test(start_paused = true)]
    async fn a_renewal_by_someone_else_ends_a_parked_error() {
        let f = fake(ONE, &[], Reply::Denied);
        let mut rx = f.events.subscribe();
        let (stop, _task) = start(&f);
        settle().await;
        assert_eq!(f.shared.live("a").unwrap().state, Some(State::Error));
        // `rolecall refresh` through the agent renewed it, then woke the scheduler
        f.file.lock().unwrap().insert("a".into(), Some(at(3600)));
        f.shared.wake();
        settle().await;
        let live = f.shared.live("a").unwrap();
        assert_eq!(live.state, None);
        assert!(live.next_renewal.is_some());
        assert_eq!(f.calls().len(), 1);
        let events = drain(&mut rx);
        assert!(
            events.contains(&Event::StateChanged {
                profile: "a".into(),
                state: State::Fresh
            }),
            "{events:?}"
        );
        stop.cancel();
    }

    // ---- with a real engine (no STS: the keychain is an empty in-memory store) ---------

    use crate::testutil::Sandbox;

    fn section(name: &str) -> Edit {
        use crate::credentials::{Credentials, SecretString};
        Edit::Upsert {
            section: credfile::Section {
                name: name.into(),
                credentials: Credentials {
                    access_key_id: "ASIAEXAMPLEEXAMPLE".into(),
                    secret_access_key: SecretString::from("secret"),
                    session_token: Some(SecretString::from("token")),
                    expiration: Some(SystemTime::now() + secs(3600)),
                },
                region: None,
            },
            adopt: false,
        }
    }

    const AB_ACTIVE: &str = r#"
[settings]
active = "a"
[sources.s]
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
[profiles.b]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/B"
"#;

    #[tokio::test]
    async fn reload_mirrors_a_new_active_profile_into_default_at_once() {
        use crate::credentials::{Credentials, SecretString};
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        let engine = sb.engine().await;
        let h = engine.handle();
        let keyed = |name: &str, key: &str| Edit::Upsert {
            section: credfile::Section {
                name: name.into(),
                credentials: Credentials {
                    access_key_id: key.into(),
                    secret_access_key: SecretString::from("secret"),
                    session_token: Some(SecretString::from("token")),
                    expiration: Some(SystemTime::now() + secs(3600)),
                },
                region: None,
            },
            adopt: false,
        };
        h.credentials_file()
            .apply(&[
                keyed("a", "ASIAAAAAEXAMPLE"),
                keyed("b", "ASIABBBBEXAMPLE"),
                keyed(DEFAULT_SECTION, "ASIAAAAAEXAMPLE"),
            ])
            .unwrap();
        let default_key = || {
            let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
            credfile::managed_credentials(&text, DEFAULT_SECTION).map(|(c, _)| c.access_key_id)
        };
        sb.write_config(&AB_ACTIVE.replace("active = \"a\"", "active = \"b\""));
        h.reload().await.unwrap();
        assert_eq!(default_key().as_deref(), Some("ASIABBBBEXAMPLE"));
        // the same active profile again: nothing to do
        h.reload().await.unwrap();
        assert_eq!(default_key().as_deref(), Some("ASIABBBBEXAMPLE"));
    }

    #[tokio::test]
    async fn a_users_own_default_does_not_stop_the_removals_of_a_reload() {
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        let mine = "[default]\naws_access_key_id = AKIAMINE\n";
        std::fs::write(sb.path("credentials"), mine).unwrap();
        let engine = sb.engine().await;
        let h = engine.handle();
        h.credentials_file()
            .apply(&[section("a"), section("b")])
            .unwrap();
        // `active` moves to b and a is removed, in one edit
        sb.write_config(
            &AB_ACTIVE
                .replace("active = \"a\"", "active = \"b\"")
                .replace(
                    "[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
                    "",
                ),
        );
        h.reload().await.unwrap();
        assert!(!h.config().profiles.contains_key("a"));
        let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
        let names: Vec<String> = credfile::inspect(&text)
            .sections
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["b", "default"], "{text}");
        assert!(text.ends_with(mine), "{text}");
    }

    #[tokio::test]
    async fn reload_removes_sections_of_removed_profiles_and_keeps_the_config_when_invalid() {
        let sb = Sandbox::new();
        sb.write_config(AB_ACTIVE);
        std::fs::write(
            sb.path("credentials"),
            "[mine]\naws_access_key_id = AKIAMINE\n",
        )
        .unwrap();
        let engine = sb.engine().await;
        let h = engine.handle();
        h.credentials_file()
            .apply(&[section("a"), section("b"), section(DEFAULT_SECTION)])
            .unwrap();
        let mut rx = h.subscribe();

        sb.write_config(&AB_ACTIVE.replace("active = \"a\"\n", "").replace(
            "[profiles.b]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\n",
            "[profiles.c]\nsource = \"s\"\n",
        ));
        h.reload().await.unwrap();
        let text = std::fs::read_to_string(sb.path("credentials")).unwrap();
        let names: Vec<String> = credfile::inspect(&text)
            .sections
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(names, ["a", "mine"], "{text}");
        assert!(
            text.ends_with("[mine]\naws_access_key_id = AKIAMINE\n"),
            "{text}"
        );
        assert_eq!(
            drain(&mut rx),
            [Event::ConfigReloaded {
                added: vec!["c".into()],
                removed: vec!["b".into()]
            }]
        );
        assert!(h.config().profiles.contains_key("c"));

        sb.write_config("[settings]\nrefresh_before = \"soon\"\n");
        assert!(h.reload().await.is_err());
        assert!(
            h.config().profiles.contains_key("c"),
            "the old config stays"
        );
        match drain(&mut rx).as_slice() {
            [Event::ConfigInvalid { message }] => {
                assert!(message.contains("refresh_before"), "{message}");
            }
            other => panic!("{other:?}"),
        }

        std::fs::remove_file(sb.path("rolecall/config.toml")).unwrap();
        assert!(h.reload().await.is_err());
        assert!(
            h.config().profiles.contains_key("c"),
            "a vanished file is no empty config"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn run_watches_the_config_file_and_stops_on_the_token() {
        let sb = Sandbox::new();
        sb.write_config("[sources.s]\n");
        let engine = sb.engine().await;
        let h = engine.handle();
        let mut rx = h.subscribe();
        let stop = CancellationToken::new();
        let run = {
            let stop = stop.clone();
            tokio::spawn(async move { engine.run(stop).await })
        };
        // the watcher is ready once the loop has looked at the file; an edit before that
        // would only be missed, so wait until the engine's first status is live
        let wait = async {
            loop {
                match rx.recv().await {
                    Ok(Event::ConfigReloaded { added, .. }) => return added,
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let write = async {
            // keep editing until the watcher has seen an edit (it starts asynchronously)
            for i in 0.. {
                sb.write_config(&format!(
                    "# edit {i}\n[sources.s]\n[profiles.p]\nsource = \"s\"\n"
                ));
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        };
        let added = tokio::time::timeout(Duration::from_secs(60), async {
            tokio::select! {
                a = wait => a,
                () = write => unreachable!(),
            }
        })
        .await
        .expect("the watcher saw no edit within a minute");
        assert_eq!(added, ["p"]);
        // p is missing: tried at once, and parked (no key in the empty keychain)
        let parked = async {
            loop {
                match rx.recv().await {
                    Ok(Event::StateChanged { profile, state }) if profile == "p" => return state,
                    Ok(_) => {}
                    Err(e) => panic!("{e}"),
                }
            }
        };
        let state = tokio::time::timeout(Duration::from_secs(60), parked)
            .await
            .unwrap();
        assert_eq!(state, State::Error);
        let status = h.status().await.unwrap();
        assert_eq!(status[0].state, State::Error);
        let message = status[0].message.clone().unwrap();
        assert!(
            message.contains("no key"),
            "parked with the reason: {message}"
        );
        stop.cancel();
        run.await.unwrap().unwrap();
    }
}
