//! The desktop bed: an X server (`Xvfb`) and the real tray app (`rolecall-app`) on the
//! keyring's private session bus, plus a reader of its tray menu over D-Bus.
//!
//! Nothing owns `org.kde.StatusNotifierWatcher` here, so the icon is never drawn, but the menu
//! is still exported as a `com.canonical.dbusmenu` object at [`MENU_PATH`]. The app has no
//! well-known bus name: [`App::menu`] finds its connection among the bus's unique names by the
//! app's pid. Menu item ids on the bus are libdbusmenu's integers, so tests find items by label.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{ChildStdout, Command, Stdio};
use std::time::Duration;

use super::command::{Output, TestCommand};
use super::probe::wait_until;
use super::process::Process;
use super::world::World;

/// Where the app's tray menu is (its tray id is `rolecall`).
pub const MENU_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_rolecall/Menu";
/// The app's StatusNotifierItem (libayatana-appindicator's object).
pub const ITEM_PATH: &str = "/org/ayatana/NotificationItem/tray_icon_tray_app_rolecall";
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// An Xvfb server on a free display; killed by PID on Drop.
#[derive(Debug)]
pub struct Xvfb {
    process: Process,
    /// Kept open: Xvfb wrote its display number here.
    _stdout: BufReader<ChildStdout>,
    display: String,
}

impl Xvfb {
    /// Starts Xvfb and waits until it names its display (`-displayfd`: it writes the number
    /// once it accepts connections).
    pub fn start(world: &World) -> Xvfb {
        let log = world.sandbox.log_path("xvfb");
        let err = std::fs::File::create(&log).expect("creating the Xvfb log");
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x800x24",
                "-nolisten",
                "tcp",
            ])
            .env_clear()
            .envs(world.sandbox.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting Xvfb (apt: xvfb): {e}"));
        let mut stdout = BufReader::new(child.stdout.take().expect("Xvfb's stdout is piped"));
        let process = Process::new("Xvfb", child, Some(&log));
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("reading Xvfb's display number");
        let number = line.trim();
        assert!(
            !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
            "Xvfb did not name a display ({line:?}):\n{}",
            process.log()
        );
        Xvfb {
            process,
            _stdout: stdout,
            display: format!(":{number}"),
        }
    }

    /// `:N`, for `DISPLAY`.
    pub fn display(&self) -> &str {
        &self.display
    }
}

/// A notification server (dunst) on the keyring's bus and `xvfb`'s display, and a bus monitor
/// that logs every `Notify` call; both killed by PID on Drop.
pub struct Notifications {
    // drop order: the monitor, then the server
    monitor: Process,
    server: Process,
}

impl Notifications {
    pub fn start(world: &World, xvfb: &Xvfb) -> Notifications {
        let mut env = world.sandbox.env();
        env.extend(world.keyring.env());
        let server = TestCommand::new("dunst", env.clone())
            .env("DISPLAY", xvfb.display())
            .spawn("dunst", &world.sandbox.log_path("dunst"));
        let owned = wait_until(START_TIMEOUT, || {
            let out = TestCommand::new("gdbus", env.clone())
                .args(["call", "--address", world.keyring.address()])
                .args(["--dest", "org.freedesktop.DBus", "--object-path"])
                .args(["/org/freedesktop/DBus", "--method"])
                .args([
                    "org.freedesktop.DBus.NameHasOwner",
                    "org.freedesktop.Notifications",
                ])
                .run();
            out.stdout.contains("true").then_some(())
        });
        assert!(owned.is_some(), "dunst did not start:\n{}", server.log());
        let monitor = TestCommand::new("dbus-monitor", env)
            .args(["--address", world.keyring.address()])
            .arg("type='method_call',interface='org.freedesktop.Notifications',member='Notify'")
            .spawn("dbus-monitor", &world.sandbox.log_path("notify-calls"));
        // it logs its own NameAcquired once it is connected, before it turns into a monitor
        let ready = wait_until(START_TIMEOUT, || {
            monitor.log().contains("NameLost").then_some(())
        });
        assert!(
            ready.is_some(),
            "dbus-monitor did not start:\n{}",
            monitor.log()
        );
        Notifications { monitor, server }
    }

    /// Every `Notify` call seen so far, as dbus-monitor printed them.
    pub fn calls(&self) -> Vec<String> {
        self.monitor
            .log()
            .split("method call ")
            .filter(|c| c.contains("member=Notify"))
            .map(str::to_owned)
            .collect()
    }

    /// Invokes the action of the notification dunst shows first (`dunstctl action 0`: with
    /// one action, dunst invokes it).
    pub fn invoke_action(&self, world: &World) {
        let mut env = world.sandbox.env();
        env.extend(world.keyring.env());
        TestCommand::new("dunstctl", env)
            .args(["action", "0"])
            .timeout(Duration::from_secs(30))
            .run()
            .success();
    }

    /// Waits until a `Notify` call carrying `text` went over the bus.
    pub fn wait_for(&self, text: &str, app: &App) {
        let seen = wait_until(Duration::from_secs(30), || {
            self.monitor.log().contains(text).then_some(())
        });
        assert!(
            seen.is_some(),
            "no notification with {text:?}; calls seen:\n{}\napp:\n{}",
            self.monitor.log(),
            app.log()
        );
    }
}

/// One item of the tray menu, as the bus shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MenuItem {
    /// libdbusmenu's id (what `Event` takes).
    pub id: i32,
    /// The label ("" for a separator).
    pub label: String,
    /// `Some(checked)` for a check item.
    pub checked: Option<bool>,
}

/// The running tray app; SIGTERM then SIGKILL on Drop.
pub struct App {
    pub process: Process,
    bus: String,
    env: Vec<(String, String)>,
    /// The app's connection that exports the menu, found once at start.
    name: String,
}

impl App {
    /// Starts `rolecall-app` with the world's environment on `xvfb`'s display and waits until
    /// its tray menu answers on the session bus.
    pub fn start(world: &World, xvfb: &Xvfb) -> App {
        let log = world.sandbox.log_path("rolecall-app");
        let process = TestCommand::new(app_bin(), world.rolecall.environment().clone())
            .env("DISPLAY", xvfb.display())
            // no accessibility bus: it would be one more process to stop
            .env("NO_AT_BRIDGE", "1")
            // the commands' debug lines say what a page asked for
            .env("ROLECALL_LOG", "info,rolecall_app::commands=debug")
            .spawn("rolecall-app", &log);
        let bus = world.keyring.address().to_owned();
        let mut app = App {
            process,
            bus,
            env: world.keyring.env(),
            name: String::new(),
        };
        let found = wait_until(START_TIMEOUT, || {
            if !app.process.is_running() {
                return Some(None);
            }
            app.connection().map(Some)
        });
        match found.flatten() {
            Some(name) => app.name = name,
            None => panic!(
                "the app's tray menu did not appear on the bus:\n{}",
                app.log()
            ),
        }
        app
    }

    pub fn log(&self) -> String {
        self.process.log()
    }

    fn gdbus(&self, args: &[&str]) -> Output {
        TestCommand::new("gdbus", self.env.iter().cloned().collect())
            // else gdbus prints every non-ASCII character of a label as '?'
            .env("LC_ALL", "C.UTF-8")
            .args(["call", "--address", &self.bus])
            .args(args)
            // the menu answers from the app's main thread, which a window being built can
            // hold for a while on a loaded machine
            .timeout(Duration::from_secs(60))
            .run()
    }

    /// The app's unique bus name whose connection exports the tray menu. The app has other
    /// connections (the keychain's, notifications') that never answer a call they do not
    /// expect: each is asked with a short timeout ([`App::has_menu`]).
    fn connection(&self) -> Option<String> {
        let names = self.gdbus(&[
            "--dest",
            "org.freedesktop.DBus",
            "--object-path",
            "/org/freedesktop/DBus",
            "--method",
            "org.freedesktop.DBus.ListNames",
        ]);
        let pid = self.process.pid().to_string();
        unique_names(&names.stdout).into_iter().find(|name| {
            let owner = self.gdbus(&[
                "--dest",
                "org.freedesktop.DBus",
                "--object-path",
                "/org/freedesktop/DBus",
                "--method",
                "org.freedesktop.DBus.GetConnectionUnixProcessID",
                name,
            ]);
            owner.stdout.contains(&format!("uint32 {pid},")) && self.layout_of(name).code == Some(0)
        })
    }

    fn layout_of(&self, name: &str) -> Output {
        self.gdbus(&[
            "--dest",
            name,
            "--object-path",
            MENU_PATH,
            "--method",
            "com.canonical.dbusmenu.GetLayout",
            "--",
            "0",
            "-1",
            "[]",
        ])
    }

    /// Whether `name` answers GetLayout within 3 s. With dbus-send: `gdbus call` first
    /// introspects the object under its default 25 s timeout, whatever `--timeout` says, and
    /// a connection that does not dispatch calls never answers that.
    fn has_menu(&self, name: &str) -> bool {
        TestCommand::new("dbus-send", self.env.iter().cloned().collect())
            .arg(format!("--bus={}", self.bus))
            .args(["--print-reply", "--reply-timeout=3000"])
            .arg(format!("--dest={name}"))
            .args([MENU_PATH, "com.canonical.dbusmenu.GetLayout"])
            .args(["int32:0", "int32:-1", "array:string:"])
            .timeout(Duration::from_secs(15))
            .run()
            .code
            == Some(0)
    }

    /// The menu's top-level items, in order.
    pub fn menu(&self) -> Vec<MenuItem> {
        let out = self.layout_of(&self.name).success();
        parse_layout(&out.stdout)
    }

    /// Waits until the menu satisfies `want`; panics with the last menu and the app's log.
    pub fn wait_for_menu(&self, what: &str, want: impl Fn(&[MenuItem]) -> bool) -> Vec<MenuItem> {
        let mut last = Vec::new();
        let got = wait_until(Duration::from_secs(20), || {
            last = self.menu();
            want(&last).then(|| last.clone())
        });
        got.unwrap_or_else(|| panic!("menu never showed {what}; last:\n{last:#?}\n{}", self.log()))
    }

    /// The StatusNotifierItem's string property `name` (`Title`, `IconName`,
    /// `IconThemePath`, `IconAccessibleDesc`…).
    pub fn indicator(&self, name: &str) -> String {
        let out = self
            .gdbus(&[
                "--dest",
                &self.name,
                "--object-path",
                ITEM_PATH,
                "--method",
                "org.freedesktop.DBus.Properties.Get",
                "org.kde.StatusNotifierItem",
                name,
            ])
            .success();
        // (<'text'>,)
        let text = out.stdout.trim();
        text.strip_prefix("(<'")
            .and_then(|t| t.strip_suffix("'>,)"))
            .unwrap_or(text)
            .to_owned()
    }

    /// Waits until the indicator's `Title` (the tooltip) and `IconName` satisfy `want`.
    pub fn wait_for_indicator(
        &self,
        what: &str,
        want: impl Fn(&str, &str) -> bool,
    ) -> (String, String) {
        let mut last = (String::new(), String::new());
        let got = wait_until(Duration::from_secs(20), || {
            last = (self.indicator("Title"), self.indicator("IconName"));
            want(&last.0, &last.1).then(|| last.clone())
        });
        got.unwrap_or_else(|| {
            panic!(
                "the tray icon never showed {what}; last {last:?}\n{}",
                self.log()
            )
        })
    }

    /// Clicks the item labelled starting with `prefix`.
    pub fn click(&self, prefix: &str) {
        let name = &self.name;
        let item = self
            .menu()
            .into_iter()
            .find(|i| i.label.starts_with(prefix))
            .unwrap_or_else(|| panic!("no menu item {prefix:?}"));
        self.gdbus(&[
            "--dest",
            name,
            "--object-path",
            MENU_PATH,
            "--method",
            "com.canonical.dbusmenu.Event",
            "--",
            &item.id.to_string(),
            "clicked",
            "<int32 0>",
            "0",
        ])
        .success();
    }
}

/// A top-level X window, as `xwininfo -root -tree` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct X11Window {
    /// The window id (`0x…`), for `import -window`.
    pub id: String,
    /// Its title (`WM_NAME`).
    pub title: String,
}

impl App {
    /// The named windows on `xvfb`'s display (the app's and any other client's).
    pub fn windows(&self, xvfb: &Xvfb) -> Vec<X11Window> {
        let out = TestCommand::new("xwininfo", self.env.iter().cloned().collect())
            .env("DISPLAY", xvfb.display())
            .env("LC_ALL", "C.UTF-8")
            .args(["-root", "-children"])
            .run()
            .success();
        parse_windows(&out.stdout)
    }

    /// Waits until `xvfb` shows a window titled `title`; returns every such window.
    pub fn wait_for_window(&self, xvfb: &Xvfb, title: &str) -> Vec<X11Window> {
        let mut last = Vec::new();
        let got = wait_until(Duration::from_secs(30), || {
            last = self.windows(xvfb);
            let titled: Vec<X11Window> =
                last.iter().filter(|w| w.title == title).cloned().collect();
            (!titled.is_empty()).then_some(titled)
        });
        got.unwrap_or_else(|| panic!("no window {title:?}; windows:\n{last:#?}\n{}", self.log()))
    }
}

/// The named windows of `xwininfo -children` output: `0x400003 "Title": ("class" "Class") …`.
pub fn parse_windows(text: &str) -> Vec<X11Window> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim_start();
            let (id, rest) = line.split_once(' ')?;
            let title = rest.strip_prefix('"')?.split("\":").next()?;
            id.starts_with("0x").then(|| X11Window {
                id: id.to_owned(),
                title: title.to_owned(),
            })
        })
        .collect()
}

impl Drop for App {
    fn drop(&mut self) {
        if self.process.is_running() {
            self.process.signal("TERM");
            if self.process.wait_timeout(Duration::from_secs(10)).is_none() {
                self.process.kill();
            }
        }
    }
}

/// The built `rolecall-app`, beside the `rolecall` binary.
pub fn app_bin() -> PathBuf {
    let path = super::tools::rolecall_bin().with_file_name("rolecall-app");
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}

/// `(['org.freedesktop.DBus', ':1.0', …],)` → the unique names.
fn unique_names(list: &str) -> Vec<String> {
    list.split('\'')
        .filter(|s| s.starts_with(':'))
        .map(str::to_owned)
        .collect()
}

/// The top-level items of a GetLayout answer in GVariant text:
/// `(uint32 7, (0, {…}, [<(1, {'label': <'a'>, 'toggle-state': <1>, …}, @av [])>, …]))`.
pub fn parse_layout(text: &str) -> Vec<MenuItem> {
    let mut items = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("<(") {
        rest = &rest[at + 2..];
        let Some(comma) = rest.find(',') else { break };
        let Ok(id) = rest[..comma].trim().parse::<i32>() else {
            continue;
        };
        let props_end = rest.find('}').unwrap_or(rest.len());
        let props = &rest[..props_end];
        let label = props
            .split("'label': <'")
            .nth(1)
            .and_then(|s| s.split("'>").next())
            .unwrap_or_default()
            .to_owned();
        let checked = props
            .contains("'toggle-type': <'checkmark'>")
            .then(|| props.contains("'toggle-state': <1>"));
        items.push(MenuItem { id, label, checked });
        rest = &rest[props_end..];
    }
    items
}
