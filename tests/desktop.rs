//! The tray app (`rolecall-app`) under Xvfb on the keyring's session bus: its menu read and
//! clicked over D-Bus (`com.canonical.dbusmenu`), hosting the engine itself or attached to a
//! running `rolecall daemon`.

use std::time::Duration;

use crate::support::credfile::key_id;
use crate::support::{
    App, Daemon, MenuItem, Notifications, World, Xvfb, app_bin, parse_layout, wait_until,
};

/// Three profiles of one MFA source, all started by one refresh before the app runs.
fn refreshed_world() -> World {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
}

/// The profile items ("NAME — …" check items): (label, checked).
fn profiles(menu: &[MenuItem]) -> Vec<(String, bool)> {
    menu.iter()
        .filter(|i| i.label.contains(" — "))
        .filter_map(|i| Some((i.label.clone(), i.checked?)))
        .collect()
}

fn checked(menu: &[MenuItem]) -> Vec<String> {
    profiles(menu)
        .into_iter()
        .filter(|(_, c)| *c)
        .map(|(l, _)| l)
        .collect()
}

fn has_profile_items(menu: &[MenuItem]) -> bool {
    let p = profiles(menu);
    p.len() == 3 && p.iter().all(|(l, _)| l.ends_with(" min left"))
}

/// Clicks `profile` and waits for `[default]` to become its credentials and the check mark
/// to move to it alone. The file first: GTK toggles a clicked check item by itself, so the
/// mark alone proves nothing until the app has redrawn from the engine.
fn click_and_expect_active(world: &World, app: &App, profile: &str) {
    app.click(&format!("{profile} — "));
    let switched = wait_until(Duration::from_secs(20), || {
        let creds = world.credentials();
        (key_id(&creds, "default").is_some()
            && key_id(&creds, "default") == key_id(&creds, profile))
        .then_some(())
    });
    assert!(
        switched.is_some(),
        "[default] did not become {profile}'s credentials:\n{}\n{}",
        world.credentials(),
        app.log()
    );
    let menu = app.wait_for_menu(&format!("{profile} checked alone"), |m| {
        let c = checked(m);
        c.len() == 1 && c[0].starts_with(&format!("{profile} — "))
    });
    assert!(has_profile_items(&menu), "{menu:#?}");
}

#[test]
fn tray_lists_profiles_and_a_click_makes_one_active() {
    let world = refreshed_world();
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);

    let menu = app.wait_for_menu("the three profiles, none checked", |m| {
        has_profile_items(m) && checked(m).is_empty()
    });
    let labels: Vec<String> = profiles(&menu).into_iter().map(|(l, _)| l).collect();
    for name in ["dev-admin", "audit", "session"] {
        assert!(
            labels.iter().any(|l| l.starts_with(&format!("{name} — "))),
            "no item for {name}: {labels:?}"
        );
    }
    for fixed in [
        "Refresh all",
        "Enter MFA code…",
        "Open config file",
        "End all sessions",
        "Quit",
    ] {
        assert!(
            menu.iter().any(|i| i.label == fixed),
            "no {fixed:?} in {menu:#?}"
        );
    }
    assert_eq!(key_id(&world.credentials(), "default"), None);

    click_and_expect_active(&world, &app, "dev-admin");
    click_and_expect_active(&world, &app, "session");
}

#[test]
fn the_hosting_app_is_the_agent_the_cli_reaches() {
    let world = refreshed_world();
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    app.wait_for_menu("the profiles", has_profile_items);
    assert!(
        app.log().contains("hosted=true"),
        "the app did not host the engine:\n{}",
        app.log()
    );

    // `use` goes through the app's agent: the app hears of it at once, not on its next redraw
    world.rc(&["use", "audit"]).run().success();
    app.wait_for_menu("audit checked", |m| {
        checked(m).iter().any(|l| l.starts_with("audit — "))
    });
}

#[test]
fn attached_to_a_running_daemon_the_menu_is_the_same_and_clicks_work() {
    let world = refreshed_world();
    let _daemon = Daemon::start(&world);
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    app.wait_for_menu("the three profiles, none checked", |m| {
        has_profile_items(m) && checked(m).is_empty()
    });
    assert!(
        app.log().contains("hosted=false"),
        "the app did not attach to the daemon:\n{}",
        app.log()
    );

    click_and_expect_active(&world, &app, "dev-admin");
}

#[test]
fn layouts_parse_into_items() {
    let text = "(uint32 4, (0, {'children-display': <'submenu'>}, [<(1, {'label': \
                <'dev-admin — 59 min left'>, 'toggle-type': <'checkmark'>, 'toggle-state': \
                <1>}, @av [])>, <(2, {'type': <'separator'>}, @av [])>, <(3, {'label': \
                <'Refresh all'>}, @av [])>]))";
    assert_eq!(
        parse_layout(text),
        vec![
            MenuItem {
                id: 1,
                label: "dev-admin — 59 min left".into(),
                checked: Some(true)
            },
            MenuItem {
                id: 2,
                label: String::new(),
                checked: None
            },
            MenuItem {
                id: 3,
                label: "Refresh all".into(),
                checked: None
            },
        ]
    );
}

/// The user's own bytes of a credentials file (a CRLF line and a comment among them).
pub const USERS_OWN: &str = "# my own profile\r\n[personal]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n\
                             aws_secret_access_key = not-a-real-secret\n";

/// A credentials file holding [`USERS_OWN`], then every profile started and dev-admin active.
pub fn active_world_beside_users_own_bytes() -> World {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .sandbox
        .write(world.sandbox.credentials_path(), USERS_OWN);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    world
        .rc(&["--no-agent", "use", "dev-admin"])
        .run()
        .success();
    world
}

#[test]
fn end_all_sessions_gives_back_the_users_own_bytes() {
    let world = active_world_beside_users_own_bytes();
    let user = USERS_OWN;
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    app.wait_for_menu("dev-admin checked", |m| {
        has_profile_items(m) && checked(m).iter().any(|l| l.starts_with("dev-admin — "))
    });

    app.click("End all sessions");
    // the sessions are forgotten too: nothing renews them until a code is given
    app.wait_for_menu("no profile with time left", |m| {
        let p = profiles(m);
        p.len() == 3 && p.iter().all(|(l, _)| !l.ends_with(" min left"))
    });
    assert_eq!(world.credentials(), user, "the user's own bytes changed");
}

fn login_checked(menu: &[MenuItem]) -> Option<bool> {
    menu.iter()
        .find(|i| i.label == "Start at login")
        .and_then(|i| i.checked)
}

#[test]
fn start_at_login_writes_and_removes_a_quoted_entry_that_starts_hidden() {
    let world = refreshed_world();
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    let entry = world
        .sandbox
        .config_home()
        .join("autostart/rolecall.desktop");
    app.wait_for_menu("start at login unchecked", |m| {
        login_checked(m) == Some(false)
    });
    assert!(!entry.exists());

    app.click("Start at login");
    app.wait_for_menu("start at login checked", |m| login_checked(m) == Some(true));
    let text = std::fs::read_to_string(&entry).expect("the login entry was written");
    let exec = format!("\nExec=\"{}\" --hidden\n", app_bin().display());
    assert!(text.contains(&exec), "no {exec:?} in:\n{text}");
    assert!(text.starts_with("[Desktop Entry]\n"), "{text}");
    let validate = crate::support::TestCommand::new("desktop-file-validate", world.sandbox.env())
        .arg(&entry)
        .run();
    assert_eq!(validate.code, Some(0), "{}", validate.streams());

    app.click("Start at login");
    app.wait_for_menu("start at login unchecked again", |m| {
        login_checked(m) == Some(false)
    });
    assert!(!entry.exists(), "the login entry is still there");
}

#[test]
fn a_session_needing_a_code_is_notified_through_the_desktop_server() {
    let world = World::start();
    // no refresh: the first pass needs an MFA code
    world.setup(crate::support::CONFIG);
    let xvfb = Xvfb::start(&world);
    let notifications = Notifications::start(&world, &xvfb);
    let app = App::start(&world, &xvfb);
    notifications.wait_for("Rolecall needs an MFA code", &app);
    notifications.wait_for("Source bastion", &app);
    // and the app goes on answering
    app.wait_for_menu("profiles waiting for a code", |m| {
        profiles(m)
            .iter()
            .any(|(l, _)| l.ends_with("needs an MFA code"))
    });
}

/// Issue 12: the tray icon shows the overall state with a tooltip saying which and why; on
/// Linux (libayatana-appindicator, no ToolTip property) that is the StatusNotifierItem's
/// `Title` and `IconAccessibleDesc`, and the icon is named in the app's icon directory. Under
/// Xvfb GTK's theme is the default, light one: the dark-glyph variant.
#[test]
fn the_tray_icon_and_tooltip_say_all_fresh_or_who_needs_a_code() {
    let world = refreshed_world();
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    let (title, icon) = app.wait_for_indicator("all fresh", |title, _| {
        title == "Rolecall: all credentials fresh"
    });
    assert_eq!(icon, "rolecall-tray-fresh-light");
    assert_eq!(app.indicator("IconAccessibleDesc"), title);
    let dir = std::path::PathBuf::from(app.indicator("IconThemePath"));
    let drawn = std::fs::read(dir.join(format!("{icon}.png"))).expect("the icon file");
    let ours = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../icons/tray-fresh-light.png"),
    )
    .expect("icons/tray-fresh-light.png");
    assert!(
        drawn == ours,
        "the icon drawn is not icons/tray-fresh-light.png"
    );
    drop(app);

    // no refresh: every profile waits for a code
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    let (title, icon) = app.wait_for_indicator("needs an MFA code", |title, _| {
        title.ends_with("need an MFA code")
    });
    assert_eq!(icon, "rolecall-tray-needs-mfa-light", "{title}");
    assert!(title.starts_with("Rolecall: "), "{title}");
    assert!(
        ["dev-admin", "audit", "session"]
            .iter()
            .any(|name| title.starts_with(&format!("Rolecall: {name} and 2 more"))),
        "{title} does not name who needs a code"
    );
}

/// Issue 12: what needs the user is notified once, with a "Renew" action where the server
/// has actions (dunst does); invoking it opens the MFA popup; failures of profiles whose
/// source waits for a code, and passes that fail again, add no notification.
#[test]
fn a_notification_offers_renew_which_opens_the_mfa_popup_and_is_not_repeated() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let xvfb = Xvfb::start(&world);
    let notifications = Notifications::start(&world, &xvfb);
    let app = App::start(&world, &xvfb);
    notifications.wait_for("Rolecall needs an MFA code", &app);
    let calls = notifications.calls();
    assert_eq!(calls.len(), 1, "one notification:\n{calls:#?}");
    assert!(
        calls[0].contains("string \"renew\"") && calls[0].contains("string \"Renew\""),
        "no Renew action in:\n{}",
        calls[0]
    );

    notifications.invoke_action(&world);
    let opened = wait_until(Duration::from_secs(30), || {
        app.log()
            .contains("notification's Renew: opening the MFA popup")
            .then_some(())
    });
    assert!(opened.is_some(), "Renew did nothing:\n{}", app.log());
    let windows = crate::support::TestCommand::new("xwininfo", world.sandbox.env())
        .env("DISPLAY", xvfb.display())
        .args(["-root", "-tree"])
        .run()
        .success();
    assert!(
        windows.stdout.contains("Rolecall: MFA code"),
        "no MFA window:\n{}",
        windows.stdout
    );

    // each pass fails every profile again (no code): nothing new to notify
    let skipped = || app.log().matches("already notified").count();
    for round in 1..=2 {
        let before = skipped();
        app.click("Refresh all");
        let seen = wait_until(Duration::from_secs(30), || {
            (skipped() >= before + 3).then_some(())
        });
        assert!(
            seen.is_some(),
            "round {round}: the failures were not seen:\n{}",
            app.log()
        );
    }
    let calls = notifications.calls();
    assert_eq!(calls.len(), 1, "notified again:\n{calls:#?}");
}

/// Issue 12: credentials that expire within `notify_before` and cannot be renewed without the
/// user (their MFA session is gone) are notified once, with "Renew", which opens the popup.
#[test]
fn credentials_expiring_without_a_code_are_notified_once_with_renew() {
    let world = refreshed_world();
    // the MFA session is gone and dev-admin has 3 minutes left: its renewal needs a code
    world.keyring.clear("rolecall", "session:bastion");
    let text = world.credentials();
    let was = crate::support::credfile::expiration(&text, "dev-admin").expect("an expiry");
    let soon = std::time::SystemTime::now() + Duration::from_secs(180);
    // in [dev-admin]'s section (the others were renewed in the same second)
    let at = text.find("[dev-admin]").expect("a [dev-admin] section");
    let edited = format!(
        "{}{}",
        &text[..at],
        text[at..].replacen(
            &format!(
                "x_rolecall_expiration = {}",
                humantime::format_rfc3339_seconds(was)
            ),
            &format!(
                "x_rolecall_expiration = {}",
                humantime::format_rfc3339_seconds(soon)
            ),
            1,
        )
    );
    assert_ne!(edited, text);
    world
        .sandbox
        .write(world.sandbox.credentials_path(), &edited);
    let xvfb = Xvfb::start(&world);
    let notifications = Notifications::start(&world, &xvfb);
    let app = App::start(&world, &xvfb);
    notifications.wait_for("dev-admin: credentials expire soon", &app);
    let expiring: Vec<String> = notifications
        .calls()
        .into_iter()
        .filter(|c| c.contains("expire soon"))
        .collect();
    assert_eq!(expiring.len(), 1, "{expiring:#?}");
    assert!(
        expiring[0].contains("string \"Renew\""),
        "no Renew in:\n{}",
        expiring[0]
    );

    // a pass that fails again adds nothing for the same expiry
    let skipped = || app.log().matches("already notified").count();
    let before = skipped();
    app.click("Refresh all");
    let seen = wait_until(Duration::from_secs(30), || {
        (skipped() > before).then_some(())
    });
    assert!(seen.is_some(), "the failure was not seen:\n{}", app.log());
    let again = notifications
        .calls()
        .into_iter()
        .filter(|c| c.contains("expire soon"))
        .count();
    assert_eq!(again, 1, "notified again:\n{}", app.log());
}

/// Issue 12: the MFA popup the engine opened closes by itself when the code is given some
/// other way (here `rolecall refresh --mfa-code` at a terminal, through the app's agent), so
/// no stale window asks for a code nothing needs any more.
#[test]
fn the_mfa_popup_closes_when_the_code_is_given_at_a_terminal() {
    let world = World::start();
    // no refresh: the first pass needs an MFA code, and the app opens the popup
    world.setup(crate::support::CONFIG);
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    app.wait_for_window(&xvfb, "Rolecall: MFA code");
    app.wait_for_menu("profiles waiting for a code", |m| {
        profiles(m)
            .iter()
            .any(|(l, _)| l.ends_with("needs an MFA code"))
    });

    world
        .rc(&["refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let closed = wait_until(Duration::from_secs(30), || {
        let open = app
            .windows(&xvfb)
            .iter()
            .any(|w| w.title == "Rolecall: MFA code");
        (!open).then_some(())
    });
    assert!(
        closed.is_some(),
        "the popup stayed open after the code was given:\n{}",
        app.log()
    );
    app.wait_for_menu("every profile renewed", |m| {
        let p = profiles(m);
        !p.is_empty() && p.iter().all(|(l, _)| l.ends_with(" left"))
    });
}
