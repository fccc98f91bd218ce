//! The tray icon and its menu: one check item per profile ("dev-admin — 47 min left", checked
//! = active), then the app's actions. Menu ids are parsed into [`Action`] in one place. The
//! menu is one object for the app's lifetime (on Linux a tray menu cannot be replaced, only
//! edited): [`Tray::show`] edits it from a status list, and the icon shows the overall state.

use std::sync::Mutex;
use std::time::Duration;

use rolecall_core::{ProfileStatus, State};
use tauri::image::Image;
use tauri::menu::{CheckMenuItem, Menu, MenuItem, PredefinedMenuItem};
use tauri::tray::{TrayIcon, TrayIconBuilder};
use tauri::{AppHandle, Wry};

/// The tray's fixed id: on Linux its menu is then at
/// `/org/ayatana/NotificationItem/tray_icon_tray_app_rolecall/Menu` on the session bus.
pub const TRAY_ID: &str = "rolecall";

const PROFILE_PREFIX: &str = "profile:";

/// What a menu item asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make this profile active.
    Use(String),
    /// Renew everything that is due.
    RefreshAll,
    /// Open the MFA popup.
    EnterMfaCode,
    /// Open (or focus) the Settings window.
    Settings,
    /// Open the config file in the user's editor.
    OpenConfig,
    /// Turn starting at login on or off.
    StartAtLogin,
    /// Remove every managed section and forget cached sessions.
    EndAllSessions,
    /// Stop the app (and the engine it hosts).
    Quit,
}

impl Action {
    /// The fixed items, in menu order, with their ids and labels.
    const FIXED: &[(&'static str, &'static str, Action)] = &[
        ("refresh-all", "Refresh all", Action::RefreshAll),
        ("enter-mfa-code", "Enter MFA code…", Action::EnterMfaCode),
        ("settings", "Settings…", Action::Settings),
        ("open-config", "Open config file", Action::OpenConfig),
        ("start-at-login", "Start at login", Action::StartAtLogin),
        (
            "end-all-sessions",
            "End all sessions",
            Action::EndAllSessions,
        ),
        ("quit", "Quit", Action::Quit),
    ];

    /// The action of a menu id.
    pub fn parse(id: &str) -> Option<Action> {
        if let Some(profile) = id.strip_prefix(PROFILE_PREFIX) {
            return Some(Action::Use(profile.to_string()));
        }
        Self::FIXED
            .iter()
            .find(|(fixed, _, _)| *fixed == id)
            .map(|(_, _, a)| a.clone())
    }
}

/// The overall state the icon shows, worst first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Overall {
    /// Something failed and needs the user.
    Error,
    /// A session waits for an MFA code.
    NeedsMfa,
    /// Something expires soon, has expired or was never started.
    Expiring,
    /// All fresh (or nothing configured).
    Fresh,
}

impl Overall {
    /// The worst state among `profiles`.
    pub fn of(profiles: &[ProfileStatus]) -> Overall {
        profiles
            .iter()
            .map(|p| match p.state {
                State::Error => Overall::Error,
                State::NeedsMfa => Overall::NeedsMfa,
                State::Expiring | State::Expired | State::Missing => Overall::Expiring,
                State::Fresh => Overall::Fresh,
            })
            .min()
            .unwrap_or(Overall::Fresh)
    }

    fn tooltip(self) -> &'static str {
        match self {
            Overall::Error => "Rolecall: a profile needs attention",
            Overall::NeedsMfa => "Rolecall: an MFA code is needed",
            Overall::Expiring => "Rolecall: credentials expiring",
            Overall::Fresh => "Rolecall: all credentials fresh",
        }
    }

    /// The icon for a dark panel (light glyph). The light-panel variants are in icons/ too;
    /// choosing by the panel's colour is left for later.
    fn icon(self) -> &'static [u8] {
        match self {
            Overall::Error => include_bytes!("../../icons/tray-error-dark.png"),
            Overall::NeedsMfa => include_bytes!("../../icons/tray-needs-mfa-dark.png"),
            Overall::Expiring => include_bytes!("../../icons/tray-expiring-dark.png"),
            Overall::Fresh => include_bytes!("../../icons/tray-fresh-dark.png"),
        }
    }
}

/// A profile's menu label: "dev-admin — 47 min left".
pub fn label(p: &ProfileStatus) -> String {
    let what = match p.state {
        State::NeedsMfa => "needs an MFA code".to_string(),
        State::Error => "error".to_string(),
        State::Missing => "not started".to_string(),
        State::Expired => "expired".to_string(),
        State::Fresh | State::Expiring => match p.seconds_left {
            Some(s) => format!("{} left", left(Duration::from_secs(s))),
            None => p.state.to_string(),
        },
    };
    format!("{} — {what}", p.profile)
}

/// "47 min", "3 h 5 min", "40 s".
fn left(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min", s / 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}

/// The tray icon, its menu and the profile items in it.
pub struct Tray {
    icon: TrayIcon,
    menu: Menu<Wry>,
    /// The profile items at the top of the menu, in order.
    profiles: Mutex<Vec<(String, CheckMenuItem<Wry>)>>,
    /// Shown when no profile is configured.
    empty: MenuItem<Wry>,
    /// "Start at login", checked while the login entry exists.
    login: CheckMenuItem<Wry>,
}

impl Tray {
    /// Builds the tray with its fixed items; `on_action` gets every click.
    pub fn build(
        app: &AppHandle,
        on_action: impl Fn(&AppHandle, Action) + Send + Sync + 'static,
    ) -> tauri::Result<Tray> {
        let menu = Menu::new(app)?;
        let empty = MenuItem::with_id(app, "none", "No profiles yet", false, None::<&str>)?;
        menu.append(&empty)?;
        menu.append(&PredefinedMenuItem::separator(app)?)?;
        let login = CheckMenuItem::with_id(
            app,
            "start-at-login",
            "Start at login",
            true,
            false,
            None::<&str>,
        )?;
        for (id, text, action) in Action::FIXED {
            if matches!(action, Action::Settings | Action::Quit) {
                menu.append(&PredefinedMenuItem::separator(app)?)?;
            }
            if *action == Action::StartAtLogin {
                menu.append(&login)?;
            } else {
                menu.append(&MenuItem::with_id(app, *id, *text, true, None::<&str>)?)?;
            }
        }
        let icon = TrayIconBuilder::with_id(TRAY_ID)
            .icon(Image::from_bytes(Overall::Fresh.icon())?)
            .tooltip(Overall::Fresh.tooltip())
            .menu(&menu)
            .on_menu_event(move |app, event| match Action::parse(event.id().as_ref()) {
                Some(action) => on_action(app, action),
                None => tracing::debug!(id = event.id().as_ref(), "unknown menu item"),
            })
            .build(app)?;
        Ok(Tray {
            icon,
            menu,
            profiles: Mutex::new(Vec::new()),
            empty,
            login,
        })
    }

    /// Shows `profiles`: labels, check marks (a click toggles a check item by itself, so every
    /// mark is set again) and the overall icon; and whether the app starts at login.
    pub fn show(
        &self,
        app: &AppHandle,
        profiles: &[ProfileStatus],
        starts_at_login: bool,
    ) -> tauri::Result<()> {
        self.login.set_checked(starts_at_login)?;
        let mut items = match self.profiles.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let same = items.len() == profiles.len()
            && items
                .iter()
                .zip(profiles)
                .all(|((n, _), p)| *n == p.profile);
        if !same {
            for (_, item) in items.drain(..) {
                self.menu.remove(&item)?;
            }
            for (i, p) in profiles.iter().enumerate() {
                let id = format!("{PROFILE_PREFIX}{}", p.profile);
                let item = CheckMenuItem::with_id(app, id, label(p), true, p.active, None::<&str>)?;
                self.menu.insert(&item, i)?;
                items.push((p.profile.clone(), item));
            }
            if profiles.is_empty() {
                self.menu.prepend(&self.empty)?;
            } else {
                // absent already when it was removed before: nothing to do then
                let _ = self.menu.remove(&self.empty);
            }
        }
        for ((_, item), p) in items.iter().zip(profiles) {
            let text = label(p);
            if item.text()? != text {
                item.set_text(text)?;
            }
            item.set_checked(p.active)?;
        }
        let overall = Overall::of(profiles);
        self.icon
            .set_icon(Some(Image::from_bytes(overall.icon())?))?;
        self.icon.set_tooltip(Some(overall.tooltip()))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(name: &str, state: State, seconds_left: Option<u64>) -> ProfileStatus {
        ProfileStatus {
            profile: name.into(),
            source: "main".into(),
            upstream: "main".into(),
            role_arn: None,
            active: false,
            expiration: None,
            seconds_left,
            state,
            message: None,
            next_renewal: None,
            renews_before: None,
        }
    }

    #[test]
    fn menu_ids_parse_back_into_actions() {
        assert_eq!(
            Action::parse("profile:dev-admin"),
            Some(Action::Use("dev-admin".into()))
        );
        for (id, _, action) in Action::FIXED {
            assert_eq!(Action::parse(id).as_ref(), Some(action));
        }
        assert_eq!(Action::parse("nope"), None);
    }

    #[test]
    fn labels_say_time_left_or_what_is_wrong() {
        assert_eq!(
            label(&status("dev-admin", State::Fresh, Some(47 * 60 + 5))),
            "dev-admin — 47 min left"
        );
        assert_eq!(
            label(&status("p", State::Expiring, Some(3 * 3600 + 5 * 60))),
            "p — 3 h 5 min left"
        );
        assert_eq!(
            label(&status("p", State::NeedsMfa, None)),
            "p — needs an MFA code"
        );
        assert_eq!(label(&status("p", State::Missing, None)), "p — not started");
    }

    #[test]
    fn the_icon_shows_the_worst_state() {
        let fresh = status("a", State::Fresh, Some(3000));
        let mfa = status("b", State::NeedsMfa, None);
        let error = status("c", State::Error, None);
        assert_eq!(Overall::of(&[]), Overall::Fresh);
        assert_eq!(Overall::of(std::slice::from_ref(&fresh)), Overall::Fresh);
        assert_eq!(
            Overall::of(&[fresh.clone(), mfa.clone()]),
            Overall::NeedsMfa
        );
        assert_eq!(Overall::of(&[mfa, error, fresh]), Overall::Error);
    }
}
