//! The refresh scheduler: keeps every managed profile fresh without being asked.
//!
//! It sits above the engine: it owns the per-profile plan (`book.rs`: next renewal, retries,
//! parked errors, waits for an MFA code), the arithmetic of it (`plan.rs`: jitter, backoff) and
//! the one loop that acts on it ([`run`]). It must not talk to STS, the keychain or the
//! credentials file itself: renewals go through the engine's refresh pass (one locked, atomic
//! write per pass; sessions before roles; chains after their upstream), behind a small
//! `Backend` seam, so that the loop is tested with a scripted fake and paused time. What it
//! knows it publishes to the engine's board (`crate::engine::board`), which `status` reads;
//! the engine never calls into the scheduler.
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

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use tokio::sync::{Notify, mpsc};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::credfile;
use crate::engine::board::{self, MfaRequest};
use crate::engine::{Engine, EngineHandle, Outcome, RefreshOptions, Targets};
use crate::error::Error;
use crate::events::Event;
use crate::status::{Live, LiveView};

mod book;
#[cfg(target_os = "linux")]
mod logind;
mod plan;
mod watch;

use book::Book;
pub use plan::*;

/// The scheduler's own state: the book, behind a std mutex that is never held across an
/// `.await` (every use is a short computation, as in mini-redis's `db.rs`).
pub(crate) struct Shared {
    book: Mutex<Book>,
}

impl Shared {
    pub(crate) fn new() -> Shared {
        Shared::with_rng(fastrand::Rng::new())
    }

    fn with_rng(rng: fastrand::Rng) -> Shared {
        Shared {
            book: Mutex::new(Book::new(rng)),
        }
    }

    fn book(&self) -> MutexGuard<'_, Book> {
        self.book.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// What the loop needs from the engine: the seam that tests replace with a scripted fake.
pub(crate) trait Backend: Send + Sync {
    /// The config in force.
    fn current_config(&self) -> Arc<Config>;
    /// The wall clock.
    fn wall_now(&self) -> SystemTime;
    /// Sends an event.
    fn publish(&self, event: Event);
    /// Shows what the scheduler knows of every profile (for `status`), and the live view.
    fn publish_live(&self, live: BTreeMap<String, Live>, view: LiveView);
    /// The sources whose session started since the last call.
    fn take_started(&self) -> std::collections::BTreeSet<String>;
    /// How many times the config was reloaded.
    fn reloads(&self) -> u64;
    /// What wakes the loop (a wake, a resume, a reload, a started session).
    fn wake_signal(&self) -> &Notify;
    /// The wall clock jumped (a suspend nobody reported, or the clock was set): the next live
    /// view is news even if only the time left changed.
    fn clock_jumped(&self);
    /// A digest of the credentials file's metadata and its directory's (size, times, mode,
    /// inode): changes when the file is written or its permissions change. `None`: cannot tell.
    fn file_stamp(&self) -> impl Future<Output = Option<u64>> + Send;
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
    fn current_config(&self) -> Arc<Config> {
        self.config()
    }

    fn wall_now(&self) -> SystemTime {
        self.now()
    }

    fn publish(&self, event: Event) {
        self.emit(event);
    }

    fn publish_live(&self, live: BTreeMap<String, Live>, view: LiveView) {
        self.board().publish_live(live);
        self.board().publish_view(view);
    }

    fn take_started(&self) -> std::collections::BTreeSet<String> {
        self.board().take_started()
    }

    fn reloads(&self) -> u64 {
        self.board().reloads()
    }

    fn wake_signal(&self) -> &Notify {
        self.board().wake_signal()
    }

    fn clock_jumped(&self) {
        tracing::info!("the wall clock jumped (a suspend, or the clock was set); re-planning");
        self.board().view_is_stale();
    }

    async fn file_stamp(&self) -> Option<u64> {
        let path = self.credentials_file().path().to_path_buf();
        crate::engine::bounded("looking at the credentials file", move || stamp(&path))
            .await
            .ok()
            .flatten()
    }

    async fn managed_expirations(&self) -> Result<BTreeMap<String, Option<SystemTime>>, Error> {
        // not half-way through a pass (one the agent runs may have just woken us)
        let text = self.read_credentials_text_between_passes().await?;
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

/// See [`Backend::file_stamp`].
fn stamp(path: &std::path::Path) -> Option<u64> {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    let mut seen = false;
    for p in [Some(path), path.parent()].into_iter().flatten() {
        let Ok(m) = std::fs::metadata(p) else {
            continue;
        };
        seen = true;
        m.len().hash(&mut h);
        m.modified().ok().hash(&mut h);
        m.permissions().readonly().hash(&mut h);
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            (m.mode(), m.ino(), m.ctime(), m.ctime_nsec(), m.uid()).hash(&mut h);
        }
    }
    seen.then(|| h.finish())
}

fn publish_all<B: Backend>(b: &B, events: Vec<Event>) {
    for e in events {
        b.publish(e);
    }
}

/// The loop: runs until `stop` is cancelled; takes MFA codes from `mailbox`.
pub(crate) async fn drive<B: Backend>(
    b: &B,
    shared: &Shared,
    stop: &CancellationToken,
    mut mailbox: Option<&mut mpsc::Receiver<MfaRequest>>,
) {
    // consecutive failures to read the credentials file: retried with backoff, since nothing
    // can be planned without it
    let mut read_failures = 0u32;
    loop {
        if stop.is_cancelled() {
            return;
        }
        let reloads = b.reloads();
        let config = b.current_config();
        let generation = shared.book().generation;
        let (file, stamp) = tokio::select! {
            biased;
            () = stop.cancelled() => return,
            r = async { (b.managed_expirations().await, b.file_stamp().await) } => r,
        };
        // the wall clock, read again on every wake: this is what catches a suspend or a jump
        let (now, mono) = (b.wall_now(), Instant::now());
        let (due, events) = {
            let mut book = shared.book();
            if book.generation != generation {
                // outcomes were recorded while the file was read: read it again
                continue;
            }
            book.sync_config(&config);
            book.catch_up(reloads);
            let started = b.take_started();
            book.resume_sources(&config, &started);
            book.file_seen(stamp);
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
            b.publish_live(book.live_all(), book.view(&config, now));
            (due, events)
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
            let stamp = match &result {
                Err(_) => b.file_stamp().await,
                Ok(_) => None,
            };
            let events = {
                let mut book = shared.book();
                let events = match &result {
                    _ if b.reloads() != reloads => {
                        tracing::debug!("the config was reloaded during the pass; re-planning");
                        Vec::new()
                    }
                    Ok(outcomes) => book.apply(&config, outcomes, now),
                    Err(e) => {
                        tracing::warn!(error = %e, "refresh pass failed");
                        book.fail_all(&config, &due, e, stamp, now)
                    }
                };
                b.publish_live(book.live_all(), book.view(&config, now));
                events
            };
            publish_all(b, events);
            continue;
        }
        let (events, wake) = {
            let mut book = shared.book();
            let mut events = book.expiry_events(&config, now);
            // the clock may have moved a profile into its expiring window, or past its expiry
            events.extend(book.state_events(&config, now));
            b.publish_live(book.live_all(), book.view(&config, now));
            let mut wake = book.next_wake(&config, now, mono);
            if read_failures > 0 {
                let again = backoff_ceiling(read_failures);
                wake = Some(wake.map_or(again, |w| w.min(again)));
            }
            (events, wake)
        };
        publish_all(b, events);
        tracing::debug!(sleep = ?wake, "scheduler idle");
        // the deadline on the wall clock. tokio's timer runs on the monotonic clock, which
        // stops while the machine sleeps where the OS does not count suspend in it (macOS), and
        // only Linux's logind tells us of a resume: so sleep at most MAX_NAP at a time and look
        // at the wall clock in between (no file read, no work: at most one wake-up per MAX_NAP)
        let until = wake.map(|d| now + d);
        loop {
            let (wall, mono) = (b.wall_now(), Instant::now());
            let nap = match until {
                Some(t) => t
                    .duration_since(b.wall_now())
                    .unwrap_or_default()
                    .min(MAX_NAP),
                None => MAX_NAP,
            };
            let sleep = async {
                match until {
                    Some(_) => tokio::time::sleep(nap).await,
                    None => std::future::pending().await,
                }
            };
            let request = async {
                match mailbox.as_mut() {
                    Some(m) => m.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                Some(req) = request => {
                    let r = supply(b, shared, &config, &req.source, req.code).await;
                    // the caller may have gone: nothing to tell then
                    let _ = req.reply.send(r);
                    break;
                }
                () = b.wake_signal().notified() => break,
                () = sleep => {
                    if jumped(wall, b.wall_now(), mono.elapsed()) {
                        b.clock_jumped();
                        break;
                    }
                    if until.is_none_or(|t| b.wall_now() >= t) {
                        break;
                    }
                }
            }
        }
    }
}

/// How far the wall clock may run from the monotonic one over a nap before it counts as a
/// jump (NTP slews far slower than this).
const JUMP_SLACK: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the wall clock went from `before` to `after` while the monotonic clock counted
/// `elapsed`, give or take [`JUMP_SLACK`]: a suspend the monotonic clock did not count, or the
/// clock set forward or back.
fn jumped(before: SystemTime, after: SystemTime, elapsed: std::time::Duration) -> bool {
    match after.duration_since(before) {
        Ok(wall) => wall.abs_diff(elapsed) > JUMP_SLACK,
        Err(back) => back.duration() + elapsed > JUMP_SLACK,
    }
}

/// [`EngineHandle::supply_mfa`] as the scheduler does it: the profiles of `source` waiting for
/// a code (or parked), else those made from it directly, renewed in one pass with `code`.
async fn supply<B: Backend>(
    b: &B,
    shared: &Shared,
    config: &Config,
    source: &str,
    code: String,
) -> Result<Vec<(String, Outcome)>, Error> {
    crate::engine::check_mfa_code(&code)?;
    let mut targets = shared.book().waiting_on(config, source);
    if targets.is_empty() {
        // nothing waits: start a new session for the profiles made from it directly
        targets = board::made_from(config, source);
    }
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let all = b.renew(targets.clone(), Some(code)).await?;
    let now = b.wall_now();
    let events = {
        let mut book = shared.book();
        book.sync_config(config);
        let events = book.apply(config, &all, now);
        b.publish_live(book.live_all(), book.view(config, now));
        events
    };
    publish_all(b, events);
    b.wake_signal().notify_one();
    Ok(all
        .into_iter()
        .filter(|(n, _)| targets.contains(n))
        .collect())
}

/// Runs the refresh scheduler over `engine` until `shutdown` is cancelled: renews every
/// managed profile before it expires, retries, waits for MFA codes (which
/// [`EngineHandle::supply_mfa`] hands to it), and also watches the config file (reloading it
/// on change) and, on Linux, logind's suspend/resume signal. Everything it starts stops with
/// `shutdown`, and this returns once all of it has. Renewals use the engine's
/// [`crate::MfaPrompter`] when a session needs a code (a daemon uses [`crate::NoPrompt`] and
/// gets codes through [`EngineHandle::supply_mfa`]).
pub async fn run(engine: &Engine, shutdown: CancellationToken) -> Result<(), Error> {
    let handle = engine.handle();
    let (mail, mut mailbox) = mpsc::channel(8);
    if !handle.board().start(mail) {
        return Err(Error::Internal(
            "the scheduler of this engine is already running".into(),
        ));
    }
    // cleared however this ends (also when the caller drops the future)
    struct Running<'a>(&'a EngineHandle);
    impl Drop for Running<'_> {
        fn drop(&mut self) {
            self.0.board().stop();
        }
    }
    let _running = Running(&handle);
    let stop = shutdown.child_token();
    let mut tasks = JoinSet::new();
    tasks.spawn(watch::config_file(handle.clone(), stop.clone()));
    #[cfg(target_os = "linux")]
    {
        let h = handle.clone();
        tasks.spawn(logind::resumes(move || h.resumed(), stop.clone()));
    }
    tracing::info!("scheduler started");
    let shared = Shared::new();
    drive(&handle, &shared, &stop, Some(&mut mailbox)).await;
    stop.cancel();
    while let Some(r) = tasks.join_next().await {
        if let Err(e) = r {
            tracing::warn!(error = %e, "scheduler task failed");
        }
    }
    tracing::info!("scheduler stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use tokio::sync::broadcast;

    use std::collections::BTreeSet;
    use std::time::Duration;

    use super::book::Phase;
    use super::book::tests::{at, denied, needs_mfa, rng, secs, throttled};
    use super::*;
    use crate::engine::board::Episodes;
    use crate::status::State;
    use crate::testutil;
    use crate::testutil::Sandbox;
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
        /// The whole pass fails: the credentials file is read-only.
        ReadOnly,
    }

    #[derive(Debug, Clone)]
    struct Call {
        at: Instant,
        profiles: Vec<String>,
        mfa_code: Option<String>,
    }

    struct Fake {
        shared: Shared,
        episodes: Episodes,
        started: Mutex<BTreeSet<String>>,
        wake: Notify,
        config: Arc<Config>,
        clock: FakeClock,
        events: broadcast::Sender<Event>,
        file: Mutex<BTreeMap<String, Option<SystemTime>>>,
        reply: Mutex<Reply>,
        calls: Mutex<Vec<Call>>,
        reads: Mutex<usize>,
        stamp: Mutex<u64>,
        /// Only for its live view.
        board: board::Board,
    }

    impl Backend for Fake {
        fn current_config(&self) -> Arc<Config> {
            Arc::clone(&self.config)
        }

        fn wall_now(&self) -> SystemTime {
            self.clock.now()
        }

        fn publish(&self, event: Event) {
            if let Event::SessionStarted { source, .. } = &event {
                self.started.lock().unwrap().insert(source.clone());
                self.wake.notify_one();
            }
            if self.episodes.admit(&event) {
                let _ = self.events.send(event);
            }
        }

        fn publish_live(&self, _: BTreeMap<String, Live>, view: LiveView) {
            self.board.publish_view(view);
        }

        fn clock_jumped(&self) {
            self.board.view_is_stale();
        }

        fn take_started(&self) -> BTreeSet<String> {
            std::mem::take(&mut *self.started.lock().unwrap())
        }

        fn reloads(&self) -> u64 {
            0
        }

        fn wake_signal(&self) -> &Notify {
            &self.wake
        }

        async fn file_stamp(&self) -> Option<u64> {
            Some(*self.stamp.lock().unwrap())
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
            if matches!(reply, Reply::ReadOnly) {
                return Err(Error::Credfile(credfile::Error::ReadOnly {
                    path: "/home/u/.aws/credentials".into(),
                }));
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
                    Reply::Hang | Reply::ReadOnly => unreachable!(),
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
            episodes: Episodes::default(),
            started: Mutex::new(BTreeSet::new()),
            wake: Notify::new(),
            config: Arc::new(testutil::config(toml)),
            clock,
            events: broadcast::channel(1024).0,
            file: Mutex::new(file),
            reply: Mutex::new(reply),
            calls: Mutex::new(Vec::new()),
            reads: Mutex::new(0),
            stamp: Mutex::new(1),
            board: board::Board::default(),
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
        let task = tokio::spawn(async move { drive(&*f, &f.shared, &s, None).await });
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

    fn state_changes(events: &[Event]) -> Vec<State> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::StateChanged { state, .. } => Some(*state),
                _ => None,
            })
            .collect()
    }

    /// Advances the paused clock to `secs` after the fake's start.
    async fn advance_to(f: &Fake, s: u64) {
        let target = f.clock.start + secs(s);
        advance(target.saturating_duration_since(Instant::now())).await;
    }

    /// Issue 12: a profile whose renewal keeps failing (so nothing renews it) is announced as
    /// expiring when it enters its expiring window (expiry − refresh_before), and as expired at
    /// its expiry, on time: the scheduler wakes for it. The live view follows.
    #[tokio::test(start_paused = true)]
    async fn issue_12_entering_the_expiring_window_is_announced_when_it_happens() {
        let f = fake(ONE, &[("a", 3600)], Reply::Throttled);
        let mut rx = f.events.subscribe();
        let view = f.board.subscribe_view();
        let (stop, _task) = start(&f);
        settle().await;
        // the renewal (up to a minute before the window) fails and is retried
        advance(f.until("a")).await;
        assert!(!f.calls().is_empty());
        advance_to(&f, 3000 - 1).await;
        let before = drain(&mut rx);
        assert_eq!(state_changes(&before), [], "still fresh: {before:?}");
        let a = view.borrow().profiles[0].clone();
        assert_eq!((a.profile.as_str(), a.state), ("a", State::Fresh));
        assert!(a.message.unwrap().contains("throttling"), "the retry shows");
        advance(Duration::from_millis(999)).await;
        assert_eq!(state_changes(&drain(&mut rx)), [], "not a moment early");
        // (tokio's timer rounds a deadline up to its next millisecond)
        advance(Duration::from_millis(2)).await;
        assert_eq!(state_changes(&drain(&mut rx)), [State::Expiring]);
        assert_eq!(view.borrow().profiles[0].state, State::Expiring);
        assert_eq!(view.borrow().profiles[0].seconds_left, Some(599));
        advance_to(&f, 3600 - 1).await;
        assert_eq!(state_changes(&drain(&mut rx)), []);
        advance(secs(1)).await;
        assert_eq!(state_changes(&drain(&mut rx)), [State::Expired]);
        assert_eq!(view.borrow().profiles[0].state, State::Expired);
        stop.cancel();
    }

    /// Issue 12: after a suspend nobody reported (the wall clock jumped, nothing came due),
    /// the live view is news within a nap, so a shell redraws the time left; the minutes that
    /// pass otherwise are not.
    #[tokio::test(start_paused = true)]
    async fn issue_12_after_a_clock_jump_the_live_view_is_news_even_if_no_state_changed() {
        let f = fake(
            TWO,
            &[("a", 10 * 3600), ("b", 10 * 3600)],
            Reply::Renewed(3600),
        );
        let mut view = f.board.subscribe_view();
        let (stop, _task) = start(&f);
        settle().await;
        assert!(view.has_changed().unwrap());
        view.mark_unchanged();
        *f.clock.jumped.lock().unwrap() = secs(1800);
        let jumped_at = Instant::now();
        for _ in 0..MAX_NAP.as_secs() {
            advance(secs(1)).await;
            if view.has_changed().unwrap() {
                break;
            }
        }
        assert!(view.has_changed().unwrap(), "no redraw after the jump");
        let elapsed = (Instant::now() - jumped_at).as_secs();
        let left = view.borrow_and_update().profiles[0].seconds_left;
        assert_eq!(
            left,
            Some(10 * 3600 - 1800 - elapsed),
            "the time left after it"
        );
        assert!(f.calls().is_empty(), "nothing was due");
        for _ in 0..10 {
            advance(secs(60)).await;
        }
        assert!(
            !view.has_changed().unwrap(),
            "the minutes alone are no news"
        );
        stop.cancel();
    }

    #[test]
    fn a_jump_is_the_wall_clock_running_away_from_the_monotonic_one() {
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let s = Duration::from_secs;
        assert!(!jumped(t, t + s(120), s(120)));
        assert!(!jumped(t, t + s(122), s(120)), "a little drift");
        assert!(jumped(t, t + s(3600), s(120)), "a suspend");
        assert!(jumped(t, t - s(60), s(120)), "set back");
    }

    /// Issue 12: a profile renewed on schedule never shows a change (fresh stays fresh), and one
    /// renewed from missing is announced fresh once.
    #[tokio::test(start_paused = true)]
    async fn renewals_on_schedule_announce_no_state_change() {
        let f = fake(TWO, &[("a", 3600)], Reply::Renewed(3600));
        let mut rx = f.events.subscribe();
        let view = f.board.subscribe_view();
        let (stop, _task) = start(&f);
        settle().await;
        let events = drain(&mut rx);
        assert_eq!(
            events
                .iter()
                .filter(|e| matches!(e, Event::StateChanged { .. }))
                .collect::<Vec<_>>(),
            [&Event::StateChanged {
                profile: "b".into(),
                state: State::Fresh
            }],
            "b: missing, then renewed"
        );
        for _ in 0..5 * 60 {
            advance(secs(60)).await;
        }
        assert!(f.calls().len() >= 5, "{:?}", f.calls());
        assert_eq!(state_changes(&drain(&mut rx)), []);
        let shown: Vec<(String, State)> = view
            .borrow()
            .profiles
            .iter()
            .map(|p| (p.profile.clone(), p.state))
            .collect();
        assert_eq!(
            shown,
            [("a".into(), State::Fresh), ("b".into(), State::Fresh)]
        );
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
        let live = f.shared.book().live("a").unwrap();
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
            assert_eq!(
                f.shared.book().live(p).unwrap().state,
                Some(State::NeedsMfa)
            );
        }

        let config = Arc::clone(&f.config);
        let outcomes = supply(&*f, &f.shared, &config, "s", "123456".into())
            .await
            .unwrap();
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
            let live = f.shared.book().live(p).unwrap();
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
            supply(&*f, &f.shared, &config, "s", "12".into()).await,
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
        f.wake.notify_one(); // what the logind listener does (EngineHandle::resumed)
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
        assert_eq!(f.shared.book().live("a").unwrap().state, Some(State::Error));
        // `rolecall refresh` through the agent renewed it, then woke the scheduler
        f.file.lock().unwrap().insert("a".into(), Some(at(3600)));
        f.wake.notify_one();
        settle().await;
        let live = f.shared.book().live("a").unwrap();
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

    /// Issue 13, item 4: where the monotonic clock stops during a suspend (macOS) and nothing
    /// says the machine woke, a renewal that came due meanwhile is at most one nap late.
    #[tokio::test(start_paused = true)]
    async fn issue_13_a_suspend_nobody_reports_is_caught_within_a_nap() {
        let f = fake(TWO, &[("a", 3600), ("b", 4 * 3600)], Reply::Renewed(3600));
        let (stop, _task) = start(&f);
        settle().await;
        let slept_at = Instant::now();
        // two hours of suspend: the wall clock moves, tokio's monotonic clock does not, and no
        // resume signal comes
        *f.clock.jumped.lock().unwrap() = secs(2 * 3600);
        settle().await;
        assert!(f.calls().is_empty(), "nothing woke the loop yet");
        for _ in 0..MAX_NAP.as_secs() {
            advance(secs(1)).await;
        }
        let calls = f.calls();
        assert_eq!(calls.len(), 1, "{calls:?}");
        assert_eq!(calls[0].profiles, ["a"], "b still has 2 h");
        assert!(calls[0].at - slept_at <= MAX_NAP);
        // and idle, it looks at the wall clock only once per nap: no file read, no renewal
        let reads = *f.reads.lock().unwrap();
        for _ in 0..30 {
            advance(secs(60)).await;
        }
        assert_eq!(*f.reads.lock().unwrap(), reads);
        assert_eq!(f.calls().len(), 1);
        stop.cancel();
    }

    /// Issue 13: a pass that the credentials file refuses (read-only, no permission) is not
    /// retried with STS calls every few minutes; the profiles wait until the file changes.
    #[tokio::test(start_paused = true)]
    async fn issue_13_a_read_only_file_parks_the_pass_until_the_file_changes() {
        let f = fake(ONE, &[], Reply::ReadOnly);
        let (stop, _task) = start(&f);
        settle().await;
        assert_eq!(f.calls().len(), 1, "missing: tried at once");
        for _ in 0..24 {
            advance(secs(3600)).await;
        }
        assert_eq!(f.calls().len(), 1, "parked for a day");
        let live = f.shared.book().live("a").unwrap();
        assert_eq!(live.state, Some(State::Error));
        assert!(live.message.unwrap().contains("read-only"));
        // chmod u+w: the file's stamp changes, and the next look at it tries again
        *f.reply.lock().unwrap() = Reply::Renewed(3600);
        *f.stamp.lock().unwrap() = 2;
        advance(BACKOFF_CAP).await;
        assert_eq!(f.calls().len(), 2);
        assert_eq!(f.shared.book().live("a").unwrap().state, None);
        stop.cancel();
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
            tokio::spawn(async move { run(&engine, stop).await })
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

    /// Issue 12: on a first run the config's directory does not exist yet; a config written
    /// after the watcher started is still seen.
    #[tokio::test]
    async fn a_config_created_after_start_is_watched_too() {
        let sb = Sandbox::new();
        assert!(!sb.path("rolecall").exists());
        let engine = sb.engine().await;
        let h = engine.handle();
        let mut rx = h.subscribe();
        let stop = CancellationToken::new();
        let watcher = tokio::spawn(watch::config_file(h.clone(), stop.clone()));
        // one thread: the watcher runs until it waits (it has looked for the directory by
        // then, and found none) before anything below
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
        assert!(!sb.path("rolecall").exists());
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
        .expect("the watcher saw no config within a minute");
        assert_eq!(added, ["p"]);
        stop.cancel();
        watcher.await.unwrap();
    }
}
