//! The tray app's Settings window (opened from the tray's "Settings…" item, at most one) and
//! the `end_sessions_on_quit` setting it writes (Quit then ends every session), with the real
//! app under Xvfb on the keyring's session bus, hosting the engine or attached to a daemon.

use std::time::Duration;

use rolecall_core::SettingsChange;

use crate::support::credfile::key_id;
use crate::support::{App, Daemon, MenuItem, World, X11Window, Xvfb, parse_windows, wait_until};

const TITLE: &str = "Rolecall Settings";

/// The three profiles of `support::CONFIG` have time left.
fn started(menu: &[MenuItem]) -> bool {
    menu.iter()
        .filter(|i| i.label.contains(" — "))
        .filter(|i| i.label.ends_with(" min left"))
        .count()
        == 3
}

fn settings_windows(app: &App, xvfb: &Xvfb) -> Vec<X11Window> {
    app.windows(xvfb)
        .into_iter()
        .filter(|w| w.title == TITLE)
        .collect()
}

#[test]
fn the_settings_item_opens_one_settings_window() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    let xvfb = Xvfb::start(&world);
    let app = App::start(&world, &xvfb);
    let menu = app.wait_for_menu("a Settings… item", |m| {
        m.iter().any(|i| i.label == "Settings…")
    });
    // between the MFA item and the config file's
    let at = |label: &str| menu.iter().position(|i| i.label == label);
    assert!(at("Enter MFA code…") < at("Settings…"), "{menu:#?}");
    assert!(at("Settings…") < at("Open config file"), "{menu:#?}");
    assert!(
        settings_windows(&app, &xvfb).is_empty(),
        "a settings window before any click"
    );

    app.click("Settings…");
    let first = app.wait_for_window(&xvfb, TITLE);
    assert_eq!(first.len(), 1, "{first:#?}");
    // its page loaded and may call its commands (CSP, capability, handler)
    let read = wait_until(Duration::from_secs(30), || {
        app.log()
            .contains("the settings window read the settings")
            .then_some(())
    });
    assert!(
        read.is_some(),
        "the page never read the settings:\n{}",
        app.log()
    );

    // a second click brings that one forward instead of making another
    app.click("Settings…");
    let handled = wait_until(Duration::from_secs(30), || {
        app.log()
            .contains("focused the open settings window")
            .then_some(())
    });
    assert!(handled.is_some(), "the second click:\n{}", app.log());
    assert_eq!(settings_windows(&app, &xvfb), first);
}

/// Quit with `end_sessions_on_quit` set (through core, as the Settings window writes it, after
/// the app started) removes every managed section; the user's own bytes stay identical.
fn quit_ends_sessions(attached: bool) {
    let world = crate::desktop::active_world_beside_users_own_bytes();
    let user = crate::desktop::USERS_OWN;
    let _daemon = attached.then(|| Daemon::start(&world));
    let xvfb = Xvfb::start(&world);
    let mut app = App::start(&world, &xvfb);
    app.wait_for_menu("the profiles started", started);
    assert!(
        app.log().contains(&format!("hosted={}", !attached)),
        "{}",
        app.log()
    );

    let change = SettingsChange {
        end_sessions_on_quit: Some(true),
        ..SettingsChange::default()
    };
    let config = rolecall_core::change_settings(&world.sandbox.config_path(), &change).unwrap();
    assert!(config.settings.end_sessions_on_quit);
    assert!(key_id(&world.credentials(), "default").is_some());

    app.click("Quit");
    let status = app.process.wait_timeout(Duration::from_secs(60));
    assert!(
        status.is_some_and(|s| s.success()),
        "the app did not quit: {status:?}\n{}",
        app.log()
    );
    assert_eq!(
        world.credentials(),
        user,
        "the sessions were not ended, or the user's own bytes changed:\n{}",
        app.log()
    );
}

#[test]
fn quit_ends_all_sessions_when_the_setting_says_so() {
    quit_ends_sessions(false);
}

#[test]
fn quit_ends_all_sessions_through_the_daemon_it_is_attached_to() {
    quit_ends_sessions(true);
}

#[test]
fn quit_keeps_the_sessions_by_default() {
    let world = World::start();
    world.setup(crate::support::CONFIG);
    world
        .rc(&["--no-agent", "refresh", "--mfa-code", "123456"])
        .run()
        .success();
    let before = world.credentials();
    let xvfb = Xvfb::start(&world);
    let mut app = App::start(&world, &xvfb);
    app.wait_for_menu("the profiles started", started);
    app.click("Quit");
    let status = app.process.wait_timeout(Duration::from_secs(60));
    assert!(status.is_some_and(|s| s.success()), "{}", app.log());
    assert_eq!(world.credentials(), before);
}

#[test]
fn window_lists_parse_into_ids_and_titles() {
    let text = "\nxwininfo: Window id: 0x3d8 (the root window) (has no name)\n\n  Root window id: \
                0x3d8 (the root window) (has no name)\n  Parent window id: 0x0 (none)\n     2 \
                children:\n     0x400007 \"Rolecall Settings\": (\"rolecall-app\" \
                \"Rolecall-app\")  520x600+0+0  +0+0\n     0x400001 (has no name): ()  1x1+-1+-1  \
                +-1+-1\n";
    assert_eq!(
        parse_windows(text),
        vec![X11Window {
            id: "0x400007".into(),
            title: "Rolecall Settings".into()
        },]
    );
}
