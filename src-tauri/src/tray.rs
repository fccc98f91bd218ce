//! The tray icon and its menu: one check item per profile ("dev-admin — 47 min left", checked
//! = active), then the app's actions. Menu ids are parsed into [`Action`] in one place. The
//! menu is one object for the app's lifetime (on Linux a tray menu cannot be replaced, only
//! edited): [`Tray::show`] edits it from a status list, and the icon shows the overall state,
//! in the variant for the panel's colour ([`Tray::set_dark_panel`]), with a tooltip saying which
//! state and why ([`summary`]).
//!
//! On Linux the tray is a libayatana-appindicator StatusNotifierItem, which has no ToolTip
//! property (tray-icon's `set_tooltip` does nothing there): the tooltip goes into its `Title`
//! (what panels show on hover when there is no ToolTip) and its `IconAccessibleDesc`, and the
//! icon is named (`IconName` `rolecall-tray-needs-mfa-light`, say) in an icon directory the app
//! writes once (`IconThemePath`), instead of a new temporary file per change.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

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

    /// The icon's name: `rolecall-tray-STATE-light` (a dark glyph, for light panels) or
    /// `-dark` (a light glyph, for dark panels), as `icons/generate.sh` names them.
    pub fn icon_name(self, dark_panel: bool) -> &'static str {
        Self::ICONS
            .iter()
            .find(|(o, dark, _, _)| *o == self && *dark == dark_panel)
            .map_or("rolecall-tray-fresh-dark", |(_, _, name, _)| name)
    }

    fn icon(self, dark_panel: bool) -> &'static [u8] {
        Self::ICONS
            .iter()
            .find(|(o, dark, _, _)| *o == self && *dark == dark_panel)
            .map_or(&[][..], |(_, _, _, bytes)| bytes)
    }

    /// Every variant: (state, for a dark panel, name, PNG).
    const ICONS: &[(Overall, bool, &'static str, &'static [u8])] = &[
        (
            Overall::Error,
            false,
            "rolecall-tray-error-light",
            include_bytes!("../../icons/tray-error-light.png"),
        ),
        (
            Overall::Error,
            true,
            "rolecall-tray-error-dark",
            include_bytes!("../../icons/tray-error-dark.png"),
        ),
        (
            Overall::NeedsMfa,
            false,
            "rolecall-tray-needs-mfa-light",
            include_bytes!("../../icons/tray-needs-mfa-light.png"),
        ),
        (
            Overall::NeedsMfa,
            true,
            "rolecall-tray-needs-mfa-dark",
            include_bytes!("../../icons/tray-needs-mfa-dark.png"),
        ),
        (
            Overall::Expiring,
            false,
            "rolecall-tray-expiring-light",
            include_bytes!("../../icons/tray-expiring-light.png"),
        ),
        (
            Overall::Expiring,
            true,
            "rolecall-tray-expiring-dark",
            include_bytes!("../../icons/tray-expiring-dark.png"),
        ),
        (
            Overall::Fresh,
            false,
            "rolecall-tray-fresh-light",
            include_bytes!("../../icons/tray-fresh-light.png"),
        ),
        (
            Overall::Fresh,
            true,
            "rolecall-tray-fresh-dark",
            include_bytes!("../../icons/tray-fresh-dark.png"),
        ),
    ];
}

/// The overall state and the tooltip saying which and why: "Rolecall: dev needs an MFA code".
/// `now` is for the time left of an expiring profile.
pub fn summary(profiles: &[ProfileStatus], now: SystemTime) -> (Overall, String) {
    let overall = Overall::of(profiles);
    let names = |pick: &dyn Fn(&ProfileStatus) -> bool| -> (String, usize) {
        let picked: Vec<&str> = profiles
            .iter()
            .filter(|p| pick(p))
            .map(|p| p.profile.as_str())
            .collect();
        let shown = match picked.as_slice() {
            [] => String::new(),
            [one] => (*one).to_string(),
            [a, b] => format!("{a} and {b}"),
            [a, rest @ ..] => format!("{a} and {} more", rest.len()),
        };
        (shown, picked.len())
    };
    let text = match overall {
        Overall::Error => {
            let (who, n) = names(&|p| p.state == State::Error);
            let why = profiles
                .iter()
                .find(|p| p.state == State::Error)
                .and_then(|p| p.message.as_deref())
                .filter(|_| n == 1)
                .map(|m| format!(": {}", shorten(m, 120)))
                .unwrap_or_default();
            format!("Rolecall: {who} could not be renewed{why}")
        }
        Overall::NeedsMfa => {
            let (who, n) = names(&|p| p.state == State::NeedsMfa);
            let verb = if n == 1 { "needs" } else { "need" };
            format!("Rolecall: {who} {verb} an MFA code")
        }
        Overall::Expiring => {
            let expired = names(&|p| p.state == State::Expired);
            let expiring = names(&|p| p.state == State::Expiring);
            let missing = names(&|p| p.state == State::Missing);
            if expired.1 > 0 {
                let verb = if expired.1 == 1 { "has" } else { "have" };
                format!("Rolecall: {} {verb} expired", expired.0)
            } else if expiring.1 > 0 {
                let soonest = profiles
                    .iter()
                    .filter(|p| p.state == State::Expiring)
                    .filter_map(|p| p.time_left(now))
                    .min();
                match soonest {
                    Some(d) if expiring.1 == 1 => {
                        format!("Rolecall: {} expires in {}", expiring.0, left(d))
                    }
                    _ => format!("Rolecall: {} expiring soon", expiring.0),
                }
            } else {
                format!("Rolecall: {} not started yet", missing.0)
            }
        }
        Overall::Fresh if profiles.is_empty() => "Rolecall: no profiles yet".to_string(),
        Overall::Fresh => "Rolecall: all credentials fresh".to_string(),
    };
    (overall, text)
}

/// `text` cut to at most `max` characters (an ellipsis marks the cut).
fn shorten(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
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
    /// Where the icon variants were written (the indicator's `IconThemePath`).
    icons: PathBuf,
    /// Whether the panel is dark (the light-glyph variants).
    dark_panel: AtomicBool,
    /// What the icon shows: (name, tooltip); set again only when it changes.
    shown: Mutex<Option<(&'static str, String)>>,
    menu: Menu<Wry>,
    /// The profile items at the top of the menu, in order.
    profiles: Mutex<Vec<(String, CheckMenuItem<Wry>)>>,
    /// Shown when no profile is configured.
    empty: MenuItem<Wry>,
    /// "Start at login", checked while the login entry exists.
    login: CheckMenuItem<Wry>,
}

impl Tray {
    /// Builds the tray with its fixed items; `on_action` gets every click. The icon variants
    /// are written into `icons` (a private directory of the app's).
    pub fn build(
        app: &AppHandle,
        icons: &Path,
        on_action: impl Fn(&AppHandle, Action) + Send + Sync + 'static,
    ) -> tauri::Result<Tray> {
        std::fs::create_dir_all(icons)?;
        for (_, _, name, bytes) in Overall::ICONS {
            std::fs::write(icons.join(format!("{name}.png")), bytes)?;
        }
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
            .icon(Image::from_bytes(Overall::Fresh.icon(true))?)
            .menu(&menu)
            .on_menu_event(move |app, event| match Action::parse(event.id().as_ref()) {
                Some(action) => on_action(app, action),
                None => tracing::debug!(id = event.id().as_ref(), "unknown menu item"),
            })
            .build(app)?;
        Ok(Tray {
            icon,
            icons: icons.to_path_buf(),
            dark_panel: AtomicBool::new(true),
            shown: Mutex::new(None),
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
        drop(items);
        let (overall, tooltip) = summary(profiles, SystemTime::now());
        let dark = self.dark_panel.load(Ordering::Relaxed);
        let name = overall.icon_name(dark);
        let mut shown = match self.shown.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if shown
            .as_ref()
            .is_some_and(|(n, t)| *n == name && *t == tooltip)
        {
            return Ok(());
        }
        self.set_icon(overall, dark, name, &tooltip)?;
        *shown = Some((name, tooltip));
        Ok(())
    }

    /// Chooses the variants for a dark panel (light glyph) or a light one; shown at the next
    /// [`Tray::show`].
    pub fn set_dark_panel(&self, dark: bool) {
        self.dark_panel.store(dark, Ordering::Relaxed);
    }

    #[cfg(target_os = "linux")]
    fn set_icon(
        &self,
        _: Overall,
        _: bool,
        name: &'static str,
        tooltip: &str,
    ) -> tauri::Result<()> {
        let dir = self.icons.to_string_lossy().into_owned();
        let tooltip = tooltip.to_string();
        self.icon.with_inner_tray_icon(move |inner| {
            // tray-icon has no safe way to set these on Linux (its set_tooltip does nothing
            // there); its AppIndicator is a plain pointer to the GObject without a Drop, so a
            // copy drives the same indicator, and dropping the copy frees nothing
            #[allow(unsafe_code)]
            // SAFETY: the pointer is into `inner`, which is alive for this call, made on the
            // main thread (with_inner_tray_icon), where the indicator is used
            let mut indicator = unsafe { std::ptr::read(inner.app_indicator()) };
            indicator.set_icon_theme_path(&dir);
            indicator.set_icon_full(name, &tooltip);
            indicator.set_title(&tooltip);
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn set_icon(
        &self,
        overall: Overall,
        dark: bool,
        _: &'static str,
        tooltip: &str,
    ) -> tauri::Result<()> {
        let _ = &self.icons;
        self.icon
            .set_icon(Some(Image::from_bytes(overall.icon(dark))?))?;
        self.icon.set_tooltip(Some(tooltip))
    }
}

/// Whether the desktop's panel is dark, as GTK (the toolkit the tray and its menu use on Linux)
/// tells it: `gtk-application-prefer-dark-theme`, or a theme named dark ("Adwaita-dark",
/// "Breeze-Dark", "Yaru-dark"), the same rule as Tauri's own window theme on Linux. Called on
/// the main thread.
#[cfg(target_os = "linux")]
pub fn panel_is_dark() -> bool {
    use gtk::prelude::*;
    let Some(settings) = gtk::Settings::default() else {
        return true;
    };
    settings.is_gtk_application_prefer_dark_theme()
        || settings
            .gtk_theme_name()
            .is_some_and(|n| n.to_lowercase().contains("dark"))
}

/// Calls `changed` (on the main thread) whenever GTK's theme settings change.
#[cfg(target_os = "linux")]
pub fn on_theme_change(changed: impl Fn() + Clone + 'static) {
    use gtk::prelude::*;
    if let Some(settings) = gtk::Settings::default() {
        let c = changed.clone();
        settings.connect_gtk_theme_name_notify(move |_| c());
        settings.connect_gtk_application_prefer_dark_theme_notify(move |_| changed());
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
    fn the_tooltip_says_which_state_and_why() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let tip = |profiles: &[ProfileStatus]| summary(profiles, now);
        let fresh = status("prod", State::Fresh, Some(3000));
        assert_eq!(
            tip(&[]),
            (Overall::Fresh, "Rolecall: no profiles yet".to_string())
        );
        assert_eq!(
            tip(std::slice::from_ref(&fresh)),
            (Overall::Fresh, "Rolecall: all credentials fresh".into())
        );
        let mfa = |n: &str| status(n, State::NeedsMfa, None);
        assert_eq!(
            tip(&[fresh.clone(), mfa("dev")]),
            (Overall::NeedsMfa, "Rolecall: dev needs an MFA code".into())
        );
        assert_eq!(
            tip(&[mfa("dev"), mfa("audit"), mfa("ops")]).1,
            "Rolecall: dev and 2 more need an MFA code"
        );
        let mut broken = status("ci", State::Error, None);
        broken.message = Some("profile ci: access denied".into());
        assert_eq!(
            tip(&[mfa("dev"), broken, fresh.clone()]),
            (
                Overall::Error,
                "Rolecall: ci could not be renewed: profile ci: access denied".into()
            )
        );
        let mut expiring = status("dev", State::Expiring, None);
        expiring.expiration = Some(now + Duration::from_secs(4 * 60 + 30));
        assert_eq!(
            tip(&[fresh, expiring]),
            (Overall::Expiring, "Rolecall: dev expires in 4 min".into())
        );
        assert_eq!(
            tip(&[
                status("a", State::Expired, None),
                status("b", State::Expired, None)
            ])
            .1,
            "Rolecall: a and b have expired"
        );
        let long = "x".repeat(500);
        assert_eq!(shorten(&long, 120).chars().count(), 121);
    }

    #[test]
    fn every_state_has_a_light_and_a_dark_icon() {
        for o in [
            Overall::Error,
            Overall::NeedsMfa,
            Overall::Expiring,
            Overall::Fresh,
        ] {
            let (light, dark) = (o.icon_name(false), o.icon_name(true));
            assert!(
                light.ends_with("-light") && dark.ends_with("-dark"),
                "{o:?}"
            );
            assert_ne!(o.icon(false), o.icon(true));
            for bytes in [o.icon(false), o.icon(true)] {
                assert!(bytes.starts_with(b"\x89PNG"), "{o:?}");
            }
        }
        assert_eq!(
            Overall::NeedsMfa.icon_name(false),
            "rolecall-tray-needs-mfa-light"
        );
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
