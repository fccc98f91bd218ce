//! The scheduler's book: one slot per configured profile (what the file holds, the phase, the
//! next attempt, retries, parked errors, MFA waits, announced expiries), and how outcomes,
//! file changes and reloads move it. Synchronous: the loop (`super::drive`) locks it for short
//! computations only.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use super::plan::{
    BACKOFF_CAP, MAX_SLEEP, MIN_GAP, backoff, draw_jitter_within, max_jitter, renewal_time,
    whole_secs,
};
use crate::config::Config;
use crate::engine::Outcome;
use crate::error::Error;
use crate::events::Event;
use crate::status::{Live, LiveView, ProfileStatus, State, profile_renew_before, state_of};

fn in_file(expiration: Option<SystemTime>) -> InFile {
    expiration.map_or(InFile::NoExpiry, |e| InFile::Expires(whole_secs(e)))
}

/// A profile's section in the credentials file, as last seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum InFile {
    Missing,
    NoExpiry,
    Expires(SystemTime),
}

/// Where a profile is in the scheduler's life cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
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
pub(super) struct Slot {
    /// `None` until the file was read (or after a config reload: re-plan everything).
    pub(super) file: Option<InFile>,
    pub(super) phase: Phase,
    /// Wall-clock time of the next attempt (scheduled or retrying); `None`: none planned.
    pub(super) next: Option<SystemTime>,
    /// Consecutive failures.
    pub(super) attempts: u32,
    /// Why the last attempt failed.
    pub(super) message: Option<String>,
    /// The jitter drawn for the current expiry.
    pub(super) jitter: Duration,
    /// The expiry `ExpiringSoon` was sent for.
    pub(super) warned: Option<SystemTime>,
    /// The expiry `Expired` was sent for.
    pub(super) expired: Option<SystemTime>,
    /// When it was last tried, on the monotonic clock (the busy-loop guard).
    pub(super) last_attempt: Option<Instant>,
    /// The state last shown (in the live view, and by `StateChanged`): a change of it, by an
    /// outcome, the file or the clock, is announced once.
    pub(super) shown: Option<State>,
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
            shown: None,
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

    /// The state `rolecall status` shows for it: an error or a wait for a code, else what the
    /// file says at `now` (a retry shows in the message, not the state).
    fn state(&self, now: SystemTime, refresh_before: Duration) -> State {
        match self.phase {
            Phase::Parked => return State::Error,
            Phase::NeedsMfa => return State::NeedsMfa,
            Phase::Scheduled | Phase::Retrying => {}
        }
        let section = match self.file {
            None | Some(InFile::Missing) => None,
            Some(InFile::NoExpiry) => Some(None),
            Some(InFile::Expires(e)) => Some(Some(e)),
        };
        state_of(section, now, refresh_before)
    }

    /// When its state changes by the clock alone: it enters its expiring window
    /// (`expiry − renew_before`), or expires. `None`: not by the clock (an error or a wait for
    /// a code shows as such whatever the time, and a section without expiry stays fresh).
    fn next_crossing(&self, now: SystemTime, refresh_before: Duration) -> Option<SystemTime> {
        if !matches!(self.phase, Phase::Scheduled | Phase::Retrying) {
            return None;
        }
        let Some(InFile::Expires(e)) = self.file else {
            return None;
        };
        [e.checked_sub(refresh_before), Some(e)]
            .into_iter()
            .flatten()
            .find(|t| *t > now)
    }
}

/// What an outcome means for the schedule.
enum Verdict {
    Fresh(Option<SystemTime>),
    Retry(String),
    Park(String),
    Mfa(String),
}

/// The scheduler's book: one slot per configured profile.
pub(crate) struct Book {
    pub(super) slots: BTreeMap<String, Slot>,
    rng: fastrand::Rng,
    /// Bumped whenever outcomes are recorded, so that a file read that raced with a refresh
    /// pass is not taken for news.
    pub(super) generation: u64,
    /// The engine's reload count this book was last reset for ([`Book::catch_up`]): the
    /// outcomes of a pass that started before a reload are about the old config and are dropped
    /// (the file tells what was renewed).
    pub(super) reloads: u64,
    /// The credentials file's stamp when it refused a whole pass, and the profiles parked on
    /// that ([`Book::fail_all`]).
    file_block: Option<(Option<u64>, BTreeSet<String>)>,
}

impl Book {
    pub(super) fn new(rng: fastrand::Rng) -> Book {
        Book {
            slots: BTreeMap::new(),
            rng,
            generation: 0,
            reloads: 0,
            file_block: None,
        }
    }

    /// One slot per configured profile: new profiles get one, removed ones lose theirs.
    pub(super) fn sync_config(&mut self, config: &Config) {
        self.slots.retain(|n, _| config.profiles.contains_key(n));
        for name in config.profiles.keys() {
            self.slots.entry(name.clone()).or_default();
        }
    }

    /// Takes in what the credentials file holds (`name → expiry` of managed sections). A
    /// section that changed under the scheduler (renewed by the CLI, removed, or first seen)
    /// is planned afresh, which also ends a parked error or an MFA wait: someone acted.
    pub(super) fn observe(
        &mut self,
        config: &Config,
        file: &BTreeMap<String, Option<SystemTime>>,
        now: SystemTime,
    ) -> Vec<Event> {
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
            let rb = profile_renew_before(config, name);
            slot.file = Some(seen);
            slot.reschedule(rb, &mut self.rng, now);
        }
        events.extend(self.state_events(config, now));
        events
    }

    /// `StateChanged` for every profile whose state (as `status` and the live view show it)
    /// differs from the one last shown: by an outcome, a change of the file, or the clock (it
    /// entered its expiring window, or expired). The first state seen of a profile is not a
    /// change.
    pub(super) fn state_events(&mut self, config: &Config, now: SystemTime) -> Vec<Event> {
        let mut events = Vec::new();
        for (name, slot) in &mut self.slots {
            if slot.file.is_none() {
                continue;
            }
            let state = slot.state(now, profile_renew_before(config, name));
            if slot.shown != Some(state) {
                if slot.shown.is_some() {
                    events.push(Event::StateChanged {
                        profile: name.clone(),
                        state,
                    });
                }
                slot.shown = Some(state);
            }
        }
        events
    }

    /// The profiles due at `now` and not tried within [`MIN_GAP`], upstreams first.
    pub(super) fn due(&self, config: &Config, now: SystemTime, mono: Instant) -> Vec<String> {
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

    pub(super) fn mark_tried(&mut self, names: &[String], mono: Instant) {
        for n in names {
            if let Some(s) = self.slots.get_mut(n) {
                s.last_attempt = Some(mono);
            }
        }
    }

    /// How long to sleep: until the earliest renewal or retry (not before its guard ends), or
    /// the earliest expiry warning or expiry still to announce. `None`: nothing to wait for.
    pub(super) fn next_wake(
        &self,
        config: &Config,
        now: SystemTime,
        mono: Instant,
    ) -> Option<Duration> {
        let notify_before = config.settings.notify_before;
        let mut best: Option<Duration> = None;
        let mut consider = |d: Duration| best = Some(best.map_or(d, |b| b.min(d)));
        for (name, slot) in &self.slots {
            // a state the clock changes is shown (and announced) when it does
            if let Some(t) = slot.next_crossing(now, profile_renew_before(config, name)) {
                consider(t.duration_since(now).unwrap_or_default());
            }
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
        if self.file_block.is_some() {
            // look at the file again now and then (a stat, no STS call)
            consider(BACKOFF_CAP);
        }
        best.map(|d| d.min(MAX_SLEEP))
    }

    /// Records the outcomes of a pass (every profile of it, dependencies too).
    pub(super) fn apply(
        &mut self,
        config: &Config,
        outcomes: &[(String, Outcome)],
        now: SystemTime,
    ) -> Vec<Event> {
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
        for (name, verdict, renewed) in verdicts {
            let Some(slot) = self.slots.get_mut(name) else {
                continue;
            };
            let rb = profile_renew_before(config, name);
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
        }
        self.generation += 1;
        self.state_events(config, now)
    }

    /// A whole pass failed before any profile could be tried (the file could not be read or
    /// written): every profile of it retries, unless the file refuses us (read-only, no
    /// permission, a read-only file system): then they are parked until the file (its `stamp`,
    /// see [`Book::file_seen`]) or the config changes, since trying again, with STS calls each
    /// time, cannot help before.
    pub(super) fn fail_all(
        &mut self,
        config: &Config,
        names: &[String],
        error: &Error,
        stamp: Option<u64>,
        now: SystemTime,
    ) -> Vec<Event> {
        let message = error.to_string();
        let refused = refused_by_file(error);
        for n in names {
            if let Some(slot) = self.slots.get_mut(n) {
                let attempts = slot.attempts;
                if refused {
                    slot.phase = Phase::Parked;
                    slot.attempts = attempts.saturating_add(1);
                    slot.next = None;
                    slot.message = Some(message.clone());
                    let (_, parked) = self
                        .file_block
                        .get_or_insert_with(|| (stamp, BTreeSet::new()));
                    parked.insert(n.clone());
                } else {
                    retry(slot, message.clone(), attempts, &mut self.rng, now);
                }
            }
        }
        self.generation += 1;
        self.state_events(config, now)
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
    pub(super) fn expiry_events(&mut self, config: &Config, now: SystemTime) -> Vec<Event> {
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
    pub(super) fn waiting_on(&self, config: &Config, source: &str) -> Vec<String> {
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

    /// The credentials file looks like `stamp` now (its size, times, mode and its directory's):
    /// when that differs from what it was when a pass was refused by it, the profiles parked on
    /// it are planned again (someone may have fixed it).
    pub(super) fn file_seen(&mut self, stamp: Option<u64>) {
        let Some((at, parked)) = &self.file_block else {
            return;
        };
        if *at == stamp {
            return;
        }
        for n in parked {
            if let Some(slot) = self.slots.get_mut(n)
                && slot.phase == Phase::Parked
            {
                slot.replan();
            }
        }
        self.file_block = None;
        self.generation += 1;
    }

    /// After a config reload (the engine's count of them is `reloads`), everything is planned
    /// again from the file: parked errors and MFA waits end (the config changed, so they may be
    /// fixed). What was already announced about the current expiries is kept.
    pub(super) fn catch_up(&mut self, reloads: u64) {
        if self.reloads == reloads {
            return;
        }
        self.reloads = reloads;
        self.file_block = None;
        for slot in self.slots.values_mut() {
            slot.replan();
        }
        self.generation += 1;
    }

    /// The profiles waiting for an MFA code from one of `sources` are planned again from the
    /// file at the next wake: a session of that source exists now (started in this process by
    /// any request, or by another process, which then cached it in the keychain).
    pub(super) fn resume_sources(&mut self, config: &Config, sources: &BTreeSet<String>) {
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

    pub(super) fn live(&self, profile: &str) -> Option<Live> {
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

    /// The live view at `now`: every configured profile as `status` would show it, from the
    /// file as last read and what the book knows (no keychain read). A profile not seen in the
    /// file yet shows as missing.
    pub(super) fn view(&self, config: &Config, now: SystemTime) -> LiveView {
        let profiles = config
            .ordered_profiles()
            .into_iter()
            .filter_map(|name| {
                let p = config.profiles.get(name)?;
                let slot = self.slots.get(name);
                let rb = profile_renew_before(config, name);
                let expiration = match slot.and_then(|s| s.file) {
                    Some(InFile::Expires(e)) => Some(e),
                    _ => None,
                };
                let live = self.live(name);
                Some(ProfileStatus {
                    profile: name.to_string(),
                    source: config.root_source(name).unwrap_or_default().to_string(),
                    upstream: config
                        .upstream(name)
                        .map(|u| u.to_string())
                        .unwrap_or_default(),
                    role_arn: p.role_arn.clone(),
                    active: config.settings.active.as_deref() == Some(name),
                    expiration,
                    seconds_left: expiration
                        .map(|e| e.duration_since(now).unwrap_or_default().as_secs()),
                    state: slot.map_or(State::Missing, |s| s.state(now, rb)),
                    message: live.as_ref().and_then(|l| l.message.clone()),
                    next_renewal: live.and_then(|l| l.next_renewal),
                    renews_before: (rb < config.refresh_before(name)).then_some(rb.as_secs()),
                })
            })
            .collect();
        LiveView {
            at: Some(now),
            profiles,
        }
    }

    /// What the engine shows of every profile (see [`Live`]).
    pub(super) fn live_all(&self) -> BTreeMap<String, Live> {
        self.slots
            .keys()
            .filter_map(|n| self.live(n).map(|l| (n.clone(), l)))
            .collect()
    }
}

/// Whether `e` means the credentials file refuses to be written (or read) by us: read-only,
/// no permission, a read-only file system. Only the user (or a change of the file) fixes that.
fn refused_by_file(e: &Error) -> bool {
    match e {
        Error::Credfile(crate::credfile::Error::ReadOnly { .. }) => true,
        Error::Credfile(crate::credfile::Error::Io { source, .. }) => matches!(
            source.kind(),
            std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
        ),
        _ => false,
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

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::scheduler::plan::backoff_ceiling;
    use crate::{sts, testutil};
    use std::time::UNIX_EPOCH;

    pub(crate) fn rng(seed: u64) -> fastrand::Rng {
        fastrand::Rng::with_seed(seed)
    }

    pub(crate) fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    pub(crate) fn config() -> Config {
        testutil::config(testutil::TWO_ROLES_AND_A_CHAIN)
    }

    pub(crate) const T0: u64 = 1_800_000_000;

    pub(crate) fn at(s: u64) -> SystemTime {
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

    pub(crate) fn denied(profile: &str) -> Error {
        Error::Sts {
            profile: profile.into(),
            error: sts::Error::AccessDenied {
                role_arn: None,
                message: "not allowed".into(),
            },
        }
    }

    pub(crate) fn throttled(profile: &str) -> Error {
        Error::Sts {
            profile: profile.into(),
            error: sts::Error::Throttled { attempts: 3 },
        }
    }

    pub(crate) fn needs_mfa() -> Error {
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

    /// Issue 13: a 15-minute role (the shortest AWS allows) with the default `refresh_before`
    /// (15 minutes) is renewed 5 minutes before it expires, not over and over at once.
    #[test]
    fn issue_13_a_15_minute_role_is_renewed_at_a_third_of_its_lifetime() {
        let mut c = testutil::config(
            "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
        );
        // (the config's own validation of this is another change's)
        c.profiles.get_mut("a").unwrap().duration = Some(secs(900));
        let mono = Instant::now();
        let book = book_with(&c, &[("a", at(900))], at(0));
        assert!(
            book.due(&c, at(0), mono).is_empty(),
            "just renewed: not due"
        );
        let a = &book.slots["a"];
        let next = a.next.unwrap();
        assert!(next <= at(600) && next >= at(600) - secs(60), "{next:?}");
        assert_eq!(a.state(at(0), profile_renew_before(&c, "a")), State::Fresh);
        assert_eq!(book.due(&c, at(600), mono), ["a"]);
    }

    /// Issue 17: a profile's own `refresh_before` (gossamer's per-role `-t`) overrides the
    /// global one in the scheduler's plan.
    #[test]
    fn issue_17_a_profile_refresh_before_moves_its_renewal() {
        let c = testutil::config(
            "[settings]\nrefresh_before = \"10m\"\n[sources.s]\n\
             [profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n\
             [profiles.b]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\n\
             refresh_before = \"30m\"\n",
        );
        let mono = Instant::now();
        let book = book_with(&c, &[("a", at(3600)), ("b", at(3600))], at(0));
        let (a, b) = (book.slots["a"].next.unwrap(), book.slots["b"].next.unwrap());
        assert!(a <= at(3000) && a >= at(3000) - secs(60), "{a:?}");
        assert!(b <= at(1800) && b >= at(1800) - secs(60), "{b:?}");
        assert_eq!(book.due(&c, at(1800), mono), ["b"]);
        assert_eq!(book.due(&c, at(3000), mono), ["a", "b"]);
    }
}
