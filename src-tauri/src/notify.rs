//! Native notifications for what only the user can fix: a session that needs an MFA code,
//! credentials about to expire (`notify_before`) that the engine cannot renew by itself, a
//! renewal that failed and needs the user. Each carries a "Renew" action where the server
//! supports actions; invoking it opens the MFA popup for the profile's source.
//!
//! The engine sends these events once per episode or expiry; [`Notifier`] also keeps to one
//! notification per kind, profile (or source) and expiry, so a manual "Refresh all" that fails
//! again, or an attached app that hears an event twice, shows nothing new. A failed renewal
//! whose profile waits for a code is not notified on its own: the MFA notification says it.
//!
//! Linux: the notification goes over the session bus (`org.freedesktop.Notifications`) on its
//! own connection, which then also hears the server's `ActionInvoked` (sent to the caller
//! only). Every call is bounded ([`TIMEOUT`] each, and the app waits at most that long for the
//! notification to be shown): a missing or hung server never blocks the app. The wait for an
//! action runs on the blocking pool for at most [`RENEW_WAIT`], ending early when the
//! notification is closed or the app stops. Elsewhere, `notify-rust` shows it without the
//! action.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use rolecall_core::events::Event;
use rolecall_core::{ProfileStatus, State};
use tokio_util::sync::CancellationToken;

/// The longest the app waits for the notification server, per call.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// How long a notification's "Renew" stays live; then it is closed.
pub const RENEW_WAIT: Duration = Duration::from_secs(15 * 60);

/// The action id of "Renew".
pub const RENEW: &str = "renew";

/// One notification to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    /// The title.
    pub summary: String,
    /// The text.
    pub body: String,
    /// The source whose MFA popup "Renew" opens.
    pub source: String,
    /// What it is about: (kind, profile or source, the expiry it is for).
    key: (&'static str, String, Option<SystemTime>),
}

/// The notification for `event`, if it is one the user must hear of; `profiles` is every
/// profile as last shown (for sources and expiries).
pub fn note(event: &Event, profiles: &[ProfileStatus]) -> Option<Note> {
    let of = |name: &str| profiles.iter().find(|p| p.profile == name);
    match event {
        Event::MfaRequired { source, mfa_serial } => {
            // the earliest expiry among its profiles: a new one is a new episode
            let expiry = profiles
                .iter()
                .filter(|p| p.source == *source)
                .filter_map(|p| p.expiration)
                .min();
            Some(Note {
                summary: "Rolecall needs an MFA code".into(),
                body: format!(
                    "Source {source} ({mfa_serial}): choose Renew, or Enter MFA code… in the \
                     tray menu."
                ),
                source: source.clone(),
                key: ("mfa", source.clone(), expiry),
            })
        }
        Event::ExpiringSoon {
            profile,
            expiration,
        } => Some(Note {
            summary: format!("{profile}: credentials expire soon"),
            body: format!(
                "They expire at {} and cannot be renewed without you.",
                humantime::format_rfc3339_seconds(*expiration)
            ),
            source: of(profile).map(|p| p.source.clone())?,
            key: ("expiring", profile.clone(), Some(*expiration)),
        }),
        Event::RefreshFailed {
            profile,
            message,
            needs_user: true,
        } => {
            let p = of(profile)?;
            if p.state == State::NeedsMfa {
                // the MFA notification says it, once for the source
                return None;
            }
            Some(Note {
                summary: format!("{profile}: renewal failed"),
                body: message.clone(),
                source: p.source.clone(),
                key: ("failed", profile.clone(), p.expiration),
            })
        }
        _ => None,
    }
}

/// Whether `event` is of a kind that needs the user (whether or not it is notified).
pub fn needs_user(event: &Event) -> bool {
    matches!(
        event,
        Event::MfaRequired { .. }
            | Event::ExpiringSoon { .. }
            | Event::RefreshFailed {
                needs_user: true,
                ..
            }
    )
}

/// Keeps to one notification per kind, profile (or source) and expiry, and knows which
/// sources wait for a code (an `MfaRequired` seen, no `SessionStarted` since).
#[derive(Debug, Default)]
pub struct Notifier {
    shown: Mutex<BTreeSet<(&'static str, String, Option<SystemTime>)>>,
    waiting: Mutex<BTreeSet<String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Notifier {
    /// The notification to show for `event` (see [`note`]), unless one was shown for the same
    /// kind, profile and expiry, or it is a failure of a profile whose source waits for a code
    /// (the engine fails those in the same pass that asks for the code).
    pub fn take(&self, event: &Event, profiles: &[ProfileStatus]) -> Option<Note> {
        match event {
            Event::MfaRequired { source, .. } => {
                lock(&self.waiting).insert(source.clone());
            }
            Event::SessionStarted { source, .. } => {
                lock(&self.waiting).remove(source);
            }
            _ => {}
        }
        let note = note(event, profiles)?;
        if matches!(event, Event::RefreshFailed { .. })
            && lock(&self.waiting).contains(&note.source)
        {
            return None;
        }
        self.admit(&note).then_some(note)
    }

    /// Whether `note` is new (and from now on, shown).
    fn admit(&self, note: &Note) -> bool {
        lock(&self.shown).insert(note.key.clone())
    }
}

/// Shows `note`, waiting at most [`TIMEOUT`] for the server; when the user invokes its
/// "Renew", `on_renew` is called with its source (on a blocking thread).
pub async fn show(
    note: Note,
    stop: CancellationToken,
    on_renew: impl FnOnce(String) + Send + 'static,
) {
    let (shown_tx, shown) = tokio::sync::oneshot::channel();
    // not awaited beyond TIMEOUT: the wait for "Renew" goes on by itself, bounded
    drop(tokio::task::spawn_blocking(move || {
        platform::show_and_wait(note, shown_tx, &stop, on_renew);
    }));
    match tokio::time::timeout(TIMEOUT, shown).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(e))) => tracing::info!(error = %e, "no desktop notification shown"),
        Ok(Err(_)) => tracing::warn!("the notification task ended before showing anything"),
        Err(_) => tracing::warn!(
            "the notification server did not answer within {} s",
            TIMEOUT.as_secs()
        ),
    }
}

#[cfg(target_os = "linux")]
mod platform {
    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Instant;

    use dbus::arg::{RefArg, Variant};
    use dbus::blocking::Connection;
    use dbus::message::MatchRule;
    use tokio_util::sync::CancellationToken;

    use super::{Note, RENEW, RENEW_WAIT, TIMEOUT};

    const DEST: &str = "org.freedesktop.Notifications";
    const PATH: &str = "/org/freedesktop/Notifications";

    /// How the notification ended.
    #[derive(Debug, Clone, PartialEq, Eq)]
    enum End {
        Action(String),
        Closed,
    }

    pub(super) fn show_and_wait(
        note: Note,
        shown: tokio::sync::oneshot::Sender<Result<(), String>>,
        stop: &CancellationToken,
        on_renew: impl FnOnce(String),
    ) {
        let conn = match Connection::new_session() {
            Ok(c) => c,
            Err(e) => {
                let _ = shown.send(Err(format!("no session bus: {e}")));
                return;
            }
        };
        let end: Arc<Mutex<Option<(u32, End)>>> = Arc::default();
        // listen before sending: an action invoked at once is not missed
        let listening = listen(&conn, &end);
        let proxy = conn.with_proxy(DEST, PATH, TIMEOUT);
        let actions: bool = listening.is_ok()
            && proxy
                .method_call::<(Vec<String>,), _, _, _>(DEST, "GetCapabilities", ())
                .is_ok_and(|(caps,)| caps.iter().any(|c| c == "actions"));
        let mut hints: HashMap<&str, Variant<Box<dyn RefArg>>> = HashMap::new();
        // critical: it stays until the user acts (the server's own timeout would drop it)
        hints.insert("urgency", Variant(Box::new(2u8)));
        let action_list: Vec<&str> = if actions {
            vec![RENEW, "Renew"]
        } else {
            Vec::new()
        };
        let sent: Result<(u32,), dbus::Error> = proxy.method_call(
            DEST,
            "Notify",
            (
                "Rolecall",
                0u32,
                "",
                note.summary.as_str(),
                note.body.as_str(),
                action_list,
                hints,
                -1i32,
            ),
        );
        let id = match sent {
            Ok((id,)) => {
                let _ = shown.send(Ok(()));
                id
            }
            Err(e) => {
                let _ = shown.send(Err(e.to_string()));
                return;
            }
        };
        if !actions {
            return;
        }
        let deadline = Instant::now() + RENEW_WAIT;
        let ended = loop {
            if let Some(end) = take_end(&end, id) {
                break Some(end);
            }
            if stop.is_cancelled() || Instant::now() >= deadline {
                break None;
            }
            if let Err(e) = conn.process(std::time::Duration::from_secs(1)) {
                tracing::info!(error = %e, "stopped waiting for a notification's action");
                return;
            }
        };
        match ended {
            Some(End::Action(a)) if a == RENEW || a == "default" => {
                tracing::info!(
                    source = %note.source,
                    "notification's Renew: opening the MFA popup"
                );
                on_renew(note.source);
            }
            Some(_) => {}
            None => {
                // its Renew would do nothing now: take it away
                let _: Result<(), _> = proxy.method_call(DEST, "CloseNotification", (id,));
            }
        }
    }

    fn listen(conn: &Connection, end: &Arc<Mutex<Option<(u32, End)>>>) -> Result<(), dbus::Error> {
        let e = Arc::clone(end);
        conn.add_match(
            MatchRule::new_signal(DEST, "ActionInvoked"),
            move |(id, action): (u32, String), _, _| {
                set_end(&e, id, End::Action(action));
                true
            },
        )?;
        let e = Arc::clone(end);
        conn.add_match(
            MatchRule::new_signal(DEST, "NotificationClosed"),
            move |(id, _reason): (u32, u32), _, _| {
                set_end(&e, id, End::Closed);
                true
            },
        )?;
        Ok(())
    }

    fn set_end(end: &Mutex<Option<(u32, End)>>, id: u32, what: End) {
        let mut g = end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        // the first of an action and the close that follows it
        if g.as_ref().is_none_or(|(i, _)| *i != id) {
            *g = Some((id, what));
        }
    }

    fn take_end(end: &Mutex<Option<(u32, End)>>, id: u32) -> Option<End> {
        let mut g = end
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match g.take() {
            Some((i, what)) if i == id => Some(what),
            // another notification of the same server: not ours
            _ => None,
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod platform {
    use tokio_util::sync::CancellationToken;

    use super::Note;

    pub(super) fn show_and_wait(
        note: Note,
        shown: tokio::sync::oneshot::Sender<Result<(), String>>,
        _: &CancellationToken,
        _: impl FnOnce(String),
    ) {
        let r = notify_rust::Notification::new()
            .appname("Rolecall")
            .summary(&note.summary)
            .body(&note.body)
            .show()
            .map(|_| ())
            .map_err(|e| e.to_string());
        let _ = shown.send(r);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, source: &str, state: State, exp: Option<u64>) -> ProfileStatus {
        ProfileStatus {
            profile: name.into(),
            source: source.into(),
            upstream: source.into(),
            role_arn: None,
            active: false,
            expiration: exp.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
            seconds_left: None,
            state,
            message: None,
            next_renewal: None,
            renews_before: None,
        }
    }

    #[test]
    fn only_what_needs_the_user_is_notified() {
        let profiles = [status("dev", "bastion", State::Fresh, Some(1000))];
        let mfa = Event::MfaRequired {
            source: "bastion".into(),
            mfa_serial: "arn:aws:iam::1:mfa/a".into(),
        };
        let n = note(&mfa, &profiles).expect("MFA is notified");
        assert_eq!(n.summary, "Rolecall needs an MFA code");
        assert!(n.body.contains("bastion"), "{}", n.body);
        assert_eq!(n.source, "bastion");
        let retrying = Event::RefreshFailed {
            profile: "dev".into(),
            message: "throttled; will retry".into(),
            needs_user: false,
        };
        assert_eq!(note(&retrying, &profiles), None);
        assert_eq!(
            note(&Event::ActiveChanged { profile: None }, &profiles),
            None
        );
    }

    #[test]
    fn one_notification_per_profile_and_expiry() {
        let at = |s| SystemTime::UNIX_EPOCH + Duration::from_secs(s);
        let failed = Event::RefreshFailed {
            profile: "ci".into(),
            message: "access denied".into(),
            needs_user: true,
        };
        let notifier = Notifier::default();
        let before = [status("ci", "main", State::Error, Some(1000))];
        let n = note(&failed, &before).expect("a failure that needs the user");
        assert!(notifier.admit(&n));
        assert!(!notifier.admit(&n), "the same expiry again");
        let expiring = |e| Event::ExpiringSoon {
            profile: "ci".into(),
            expiration: at(e),
        };
        assert!(notifier.admit(&note(&expiring(1000), &before).unwrap()));
        assert!(!notifier.admit(&note(&expiring(1000), &before).unwrap()));
        // renewed since: its next expiry is news
        let after = [status("ci", "main", State::Error, Some(5000))];
        assert!(notifier.admit(&note(&failed, &after).unwrap()));
        assert!(notifier.admit(&note(&expiring(5000), &after).unwrap()));
        // a profile waiting for a code: the MFA notification says it
        let waiting = [status("ci", "main", State::NeedsMfa, Some(5000))];
        assert_eq!(note(&failed, &waiting), None);
    }

    #[test]
    fn failures_of_a_source_waiting_for_a_code_are_not_notified_on_their_own() {
        let notifier = Notifier::default();
        // the view has not caught up yet: the profile still shows as missing
        let profiles = [status("dev", "bastion", State::Missing, None)];
        let mfa = Event::MfaRequired {
            source: "bastion".into(),
            mfa_serial: "arn:aws:iam::1:mfa/a".into(),
        };
        let failed = Event::RefreshFailed {
            profile: "dev".into(),
            message: "needs an MFA code".into(),
            needs_user: true,
        };
        assert!(notifier.take(&mfa, &profiles).is_some());
        assert_eq!(notifier.take(&mfa, &profiles), None, "once per episode");
        assert_eq!(notifier.take(&failed, &profiles), None);
        let started = Event::SessionStarted {
            source: "bastion".into(),
            expiration: None,
        };
        assert_eq!(notifier.take(&started, &profiles), None);
        assert!(
            notifier.take(&failed, &profiles).is_some(),
            "a failure of its own"
        );
    }
}
