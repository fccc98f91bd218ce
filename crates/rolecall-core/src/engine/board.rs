//! What the engine shares with a scheduler that runs over it, without knowing the scheduler
//! (which sits above the engine and is the only one to write here):
//!
//! - what it knows beyond the file (state overrides, last errors, next renewals), which
//!   `status` adds to what the file says;
//! - the live view ([`LiveView`]) it keeps up to date, which shells follow through
//!   [`EngineHandle::live`];
//! - the wake-up it sleeps on ([`EngineHandle::wake`], [`EngineHandle::resumed`]);
//! - the sources whose session was started in this process since it last looked (their
//!   profiles waiting for a code go on);
//! - the count of config reloads (a reload re-plans everything);
//! - the mailbox through which [`EngineHandle::supply_mfa`] hands a code to it, so that the
//!   profiles it has waiting are renewed in one pass.
//!
//! It also keeps the MFA episodes: one `MfaRequired` per source until a session starts or the
//! config is reloaded, however many profiles or passes run into it.
//!
//! Every lock here is a std mutex held for a short computation, never across an `.await`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use tokio::sync::{Notify, mpsc, oneshot, watch};

use super::{EngineHandle, Outcome, RefreshOptions, Targets, check_mfa_code};
use crate::config::{Config, Upstream};
use crate::error::Error;
use crate::events::Event;
use crate::status::{Live, LiveView};

/// An MFA code for a running scheduler, with where to send the outcomes.
pub(crate) struct MfaRequest {
    /// The source.
    pub(crate) source: String,
    /// The code (checked to be 6 digits).
    pub(crate) code: String,
    /// Every target's outcome, or why the pass failed.
    pub(crate) reply: oneshot::Sender<Result<Vec<(String, Outcome)>, Error>>,
}

/// Which sources have an open MFA episode (`MfaRequired` sent, no session started since).
#[derive(Debug, Default)]
pub(crate) struct Episodes(Mutex<BTreeSet<String>>);

impl Episodes {
    fn lock(&self) -> MutexGuard<'_, BTreeSet<String>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether to send `event`: an `MfaRequired` only opens an episode once; a started session
    /// ends it.
    pub(crate) fn admit(&self, event: &Event) -> bool {
        match event {
            Event::MfaRequired { source, .. } => self.lock().insert(source.clone()),
            Event::SessionStarted { source, .. } => {
                self.lock().remove(source);
                true
            }
            _ => true,
        }
    }

    /// Every episode ends (a reload: the next `MfaRequired` is sent again).
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Board {
    live: Mutex<BTreeMap<String, Live>>,
    view: watch::Sender<LiveView>,
    /// The next view is news whatever it shows (a resume: the time left jumped).
    view_stale: AtomicBool,
    episodes: Episodes,
    started: Mutex<BTreeSet<String>>,
    reloads: AtomicU64,
    wake: Notify,
    running: AtomicBool,
    mailbox: Mutex<Option<mpsc::Sender<MfaRequest>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // every value here stays consistent whatever panicked while holding it
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Board {
    pub(crate) fn admit(&self, event: &Event) -> bool {
        if let Event::SessionStarted { source, .. } = event {
            lock(&self.started).insert(source.clone());
            self.wake.notify_one();
        }
        self.episodes.admit(event)
    }

    /// What a running scheduler knows about `profile`.
    pub(crate) fn live(&self, profile: &str) -> Option<Live> {
        lock(&self.live).get(profile).cloned()
    }

    /// The scheduler's view replaces the previous one.
    pub(crate) fn publish_live(&self, live: BTreeMap<String, Live>) {
        *lock(&self.live) = live;
    }

    /// The scheduler's live view replaces the previous one; receivers are told only when it
    /// shows something new (not for the seconds left alone).
    pub(crate) fn publish_view(&self, view: LiveView) {
        let stale = self.view_stale.swap(false, Ordering::SeqCst);
        self.view.send_if_modified(|old| {
            let news = stale || !old.same_as(&view);
            *old = view;
            news
        });
    }

    /// The next view published is news to its receivers even if only the time left changed:
    /// after a suspend or a jump of the clock, a shell redraws at once.
    pub(crate) fn view_is_stale(&self) {
        self.view_stale.store(true, Ordering::SeqCst);
    }

    /// A receiver of the live view.
    pub(crate) fn subscribe_view(&self) -> watch::Receiver<LiveView> {
        self.view.subscribe()
    }

    /// The sources whose session started since the last call.
    pub(crate) fn take_started(&self) -> BTreeSet<String> {
        std::mem::take(&mut *lock(&self.started))
    }

    /// How many times the config was reloaded.
    pub(crate) fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::SeqCst)
    }

    pub(crate) fn reloaded(&self) {
        self.episodes.clear();
        self.reloads.fetch_add(1, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// What the scheduler sleeps on (a permit is kept while it is busy, so no wake is lost).
    pub(crate) fn wake_signal(&self) -> &Notify {
        &self.wake
    }

    /// Marks a scheduler as running; `false` when one already is.
    pub(crate) fn start(&self, mailbox: mpsc::Sender<MfaRequest>) -> bool {
        if self.running.swap(true, Ordering::SeqCst) {
            return false;
        }
        *lock(&self.mailbox) = Some(mailbox);
        true
    }

    /// The scheduler stopped: its live view goes with it.
    pub(crate) fn stop(&self) {
        *lock(&self.mailbox) = None;
        lock(&self.live).clear();
        self.publish_view(LiveView::default());
        self.running.store(false, Ordering::SeqCst);
    }

    fn mailbox(&self) -> Option<mpsc::Sender<MfaRequest>> {
        lock(&self.mailbox).clone()
    }
}

/// The profiles made directly from `source` (what a code renews when nothing waits for one).
pub(crate) fn made_from(config: &Config, source: &str) -> Vec<String> {
    config
        .ordered_profiles()
        .into_iter()
        .filter(|n| config.upstream(n) == Some(Upstream::Source(source)))
        .map(str::to_string)
        .collect()
}

impl EngineHandle {
    /// Renews, with `code`, every profile of `source` that waits for an MFA code (or is parked
    /// on an error: a new code is a change worth a try) in one pass, so one GetSessionToken;
    /// when none waits (or no scheduler runs), the profiles made directly from `source`. A
    /// running scheduler then re-plans.
    pub async fn supply_mfa(
        &self,
        source: &str,
        code: String,
    ) -> Result<Vec<(String, Outcome)>, Error> {
        let config = self.config();
        if !config.sources.contains_key(source) {
            return Err(Error::UnknownSource {
                name: source.to_string(),
                config: self.config_path(),
            });
        }
        check_mfa_code(&code)?;
        let code = match self.inner.board.mailbox() {
            None => code,
            Some(mailbox) => {
                let (reply, answer) = oneshot::channel();
                let request = MfaRequest {
                    source: source.to_string(),
                    code,
                    reply,
                };
                match mailbox.send(request).await {
                    Ok(()) => match answer.await {
                        Ok(r) => return r,
                        Err(_) => {
                            // the scheduler stopped before it got to it: the code is spent or
                            // not, we cannot know; say so rather than use it twice
                            return Err(Error::Internal(
                                "the scheduler stopped while using the MFA code; run \
                                 `rolecall refresh` to try again"
                                    .into(),
                            ));
                        }
                    },
                    // it stopped before taking the code: use it here
                    Err(mpsc::error::SendError(r)) => r.code,
                }
            }
        };
        let targets = made_from(&config, source);
        if targets.is_empty() {
            return Ok(Vec::new());
        }
        let opts = RefreshOptions {
            force: true,
            mfa_code: Some(code),
        };
        let all = self
            .refresh_pass(&Targets::Some(targets.clone()), opts)
            .await?;
        Ok(all
            .into_iter()
            .filter(|(n, _, _)| targets.contains(n))
            .map(|(n, o, _)| (n, o))
            .collect())
    }

    /// Makes a running scheduler re-plan now (after a manual renewal, `use`, or anything else
    /// that changed the credentials file behind its back).
    pub fn wake(&self) {
        self.inner.board.wake.notify_one();
    }

    /// Tells a running scheduler that the machine resumed from suspend: it re-reads the wall
    /// clock and renews whatever came due meanwhile. Called by the logind listener on Linux;
    /// other platforms (and tests) may call it themselves.
    pub fn resumed(&self) {
        tracing::info!("resumed from suspend; re-planning");
        self.inner.board.view_is_stale();
        self.wake();
    }

    /// The live view of every profile (see [`LiveView`]): a `watch` receiver a shell awaits
    /// (`changed()`) instead of polling `status`. Kept by the scheduler running over this
    /// engine ([`crate::scheduler::run`], which [`crate::host::start`] starts); empty, with
    /// `at: None`, while none runs.
    pub fn live(&self) -> watch::Receiver<LiveView> {
        self.inner.board.subscribe_view()
    }

    /// What a running scheduler shares with the engine.
    pub(crate) fn board(&self) -> &Board {
        &self.inner.board
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_view_tells_its_receivers_of_news_only() {
        use crate::status::{LiveView, ProfileStatus, State};
        use std::time::{Duration, UNIX_EPOCH};
        let board = Board::default();
        let mut rx = board.view.subscribe();
        let row = |state, left| ProfileStatus {
            profile: "p".into(),
            source: "s".into(),
            upstream: "s".into(),
            role_arn: None,
            active: false,
            expiration: Some(UNIX_EPOCH + Duration::from_secs(5000)),
            seconds_left: Some(left),
            state,
            message: None,
            next_renewal: None,
            renews_before: None,
        };
        let view = |at: u64, state, left| LiveView {
            at: Some(UNIX_EPOCH + Duration::from_secs(at)),
            profiles: vec![row(state, left)],
        };
        board.publish_view(view(1000, State::Fresh, 4000));
        assert!(rx.has_changed().unwrap(), "the first view is news");
        rx.mark_unchanged();
        board.publish_view(view(1060, State::Fresh, 3940));
        assert!(!rx.has_changed().unwrap(), "only the time left moved");
        assert_eq!(
            rx.borrow().profiles[0].seconds_left,
            Some(3940),
            "kept anyway"
        );
        board.publish_view(view(4500, State::Expiring, 500));
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        // after a resume, the time left alone is news (once)
        board.view_is_stale();
        board.publish_view(view(4560, State::Expiring, 440));
        assert!(rx.has_changed().unwrap(), "a resume redraws");
        rx.mark_unchanged();
        board.publish_view(view(4620, State::Expiring, 380));
        assert!(!rx.has_changed().unwrap(), "then only news again");
        board.stop();
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow(), LiveView::default(), "no scheduler, no view");
    }

    #[test]
    fn mfa_required_is_sent_once_per_episode() {
        let board = Board::default();
        let mfa = Event::MfaRequired {
            source: "s".into(),
            mfa_serial: "x".into(),
        };
        assert!(board.admit(&mfa));
        assert!(!board.admit(&mfa));
        assert!(board.admit(&Event::SessionStarted {
            source: "s".into(),
            expiration: None
        }));
        assert_eq!(board.take_started(), BTreeSet::from(["s".to_string()]));
        assert!(board.take_started().is_empty());
        assert!(board.admit(&mfa), "a new episode");
        board.reloaded();
        assert!(board.admit(&mfa), "a reload starts over");
    }
}
