//! The app's windows driven through WebDriver: `tauri-driver` (built into `build/tools` by
//! `make deps`) in front of WebKitGTK's `WebKitWebDriver` (Debian `webkit2gtk-driver`), spoken
//! to with `fantoccini`.
//!
//! A session launches the app itself: `WebKitWebDriver` starts `rolecall-app` with the
//! environment `tauri-driver` was given (the world's: sandbox HOME, the keyring's private bus,
//! STS behind the fault proxy, Xvfb's display) and with `TAURI_WEBVIEW_AUTOMATION=true`. The
//! session needs a webview to attach to, and wry hands the automation session the *first*
//! webview the app makes; a tray app starts with none, so the tests start it in a state where
//! it opens the MFA popup by itself (a code is needed at start, not `--hidden`), and the
//! session's window is that popup. Deleting the session quits the app; [`Driver`]'s `Drop`
//! deletes it, then stops `tauri-driver` by PID and kills by PID whatever of its process tree
//! is left (`tauri-driver` SIGKILLs `WebKitWebDriver`, which then cannot stop the app).

use std::path::PathBuf;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;

use super::command::TestCommand;
use super::desktop::{Xvfb, app_bin};
use super::moto::free_port;
use super::probe::wait_until;
use super::process::{Process, pid_exists};
use super::tools::workspace_root;
use super::world::World;

/// How long a window's element may take to show what a test waits for (STS calls included).
const WAIT: Duration = Duration::from_secs(30);
/// The bound on one WebDriver command. A new session waits for the app's first webview for
/// ever (measured: still waiting after 400 s when the app opened no window), and a command to
/// a window that hangs would too.
const COMMAND: Duration = Duration::from_secs(60);

/// `build/tools/bin/tauri-driver`, installed by `make deps`.
pub fn tauri_driver_bin() -> PathBuf {
    let path = workspace_root().join("build/tools/bin/tauri-driver");
    assert!(
        path.is_file(),
        "{} is missing: run `make deps` (it runs `cargo install tauri-driver --root build/tools`)",
        path.display()
    );
    path
}

/// A running `tauri-driver` with one session open on the app: the app's first window.
pub struct Driver {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    process: Process,
}

impl Driver {
    /// Starts `tauri-driver` with the world's environment on `xvfb`'s display and opens a
    /// session, which launches `rolecall-app` and attaches to the first window it opens.
    pub fn launch_app(world: &World, xvfb: &Xvfb) -> Driver {
        let (port, native_port) = (free_port(), free_port());
        let mut env = world.rolecall.environment().clone();
        env.insert("DISPLAY".into(), xvfb.display().into());
        // no accessibility bus: it would be one more process to stop
        env.insert("NO_AT_BRIDGE".into(), "1".into());
        env.insert("ROLECALL_LOG".into(), "info".into());
        let process = TestCommand::new(tauri_driver_bin(), env)
            .args(["--port", &port.to_string()])
            .args(["--native-port", &native_port.to_string()])
            .spawn("tauri-driver", &world.sandbox.log_path("tauri-driver"));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime for the WebDriver client");
        let mut driver = Driver {
            runtime,
            client: None,
            process,
        };
        let url = format!("http://127.0.0.1:{port}");
        // tauri-driver forwards to WebKitWebDriver, which starts listening a little later
        let listening = wait_until(WAIT, || {
            [port, native_port]
                .iter()
                .all(|p| std::net::TcpStream::connect(("127.0.0.1", *p)).is_ok())
                .then_some(())
        });
        assert!(
            listening.is_some(),
            "tauri-driver (port {port}) and WebKitWebDriver (port {native_port}) did not both \
             listen:\n{}",
            driver.log()
        );
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), "wry".into());
        caps.insert(
            "tauri:options".into(),
            serde_json::json!({ "application": app_bin() }),
        );
        let session = driver.bounded(
            ClientBuilder::new(HttpConnector::new())
                .capabilities(caps)
                .connect(&url),
        );
        match session {
            Some(Ok(client)) => driver.client = Some(client),
            Some(Err(e)) => panic!("no WebDriver session on the app: {e}\n{}", driver.log()),
            None => panic!(
                "no WebDriver session within {COMMAND:?}: did the app open no window (a session \
                 drives the app's first webview)?\n{}",
                driver.log()
            ),
        }
        driver
    }

    /// Runs one WebDriver exchange, `None` when it takes longer than [`COMMAND`].
    fn bounded<T>(&self, call: impl std::future::Future<Output = T>) -> Option<T> {
        self.runtime
            .block_on(async { tokio::time::timeout(COMMAND, call).await.ok() })
    }

    /// tauri-driver's output, which is also `WebKitWebDriver`'s and the app's.
    pub fn log(&self) -> String {
        self.process.log()
    }

    fn client(&self) -> &Client {
        self.client
            .as_ref()
            .expect("the session is open until Drop")
    }

    /// Runs `script` in the window (`arguments` as given) and returns its value; `None` when
    /// the window is gone or the script failed.
    pub fn eval(&self, script: &str, args: Vec<serde_json::Value>) -> Option<serde_json::Value> {
        self.bounded(self.client().execute(script, args))?.ok()
    }

    /// The text of the element `css` (`None` when there is none or no window).
    pub fn text(&self, css: &str) -> Option<String> {
        self.bounded(async {
            let element = self.client().find(Locator::Css(css)).await.ok()?;
            element.text().await.ok()
        })?
    }

    /// Waits until the element `css` shows a text that `want` accepts; returns it.
    pub fn wait_for_text(&self, css: &str, what: &str, want: impl Fn(&str) -> bool) -> String {
        let mut last = None;
        let got = wait_until(WAIT, || {
            last = self.text(css);
            last.as_deref().filter(|t| want(t)).map(str::to_owned)
        });
        got.unwrap_or_else(|| {
            panic!(
                "{css} never showed {what}; last: {last:?}\npage: {:?}\n{}",
                self.source(),
                self.log()
            )
        })
    }

    /// The page's HTML, for failure messages.
    pub fn source(&self) -> Option<String> {
        self.bounded(self.client().source())?.ok()
    }

    /// Types `keys` into the element `css` as key presses (WebDriver's Element Send Keys).
    pub fn type_into(&self, css: &str, keys: &str) {
        let sent = self.bounded(async {
            let element = self.client().find(Locator::Css(css)).await?;
            element.send_keys(keys).await
        });
        match sent {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("typing into {css}: {e}\n{}", self.log()),
            None => panic!(
                "typing into {css}: no answer in {COMMAND:?}\n{}",
                self.log()
            ),
        }
    }

    /// Pastes `text` into the element `css` through the clipboard with key presses, as a
    /// person would: Ctrl+C in a scratch field the test puts on the page (with `text` selected
    /// in it), the field removed, then Ctrl+V in `css`. So the browser's own paste handling
    /// (`maxlength` included) applies, which setting the value from a script would skip.
    pub fn paste_into(&self, css: &str, text: &str) {
        let staged = self.eval(
            "const t = document.createElement('textarea'); t.value = arguments[0]; \
             document.body.append(t); t.focus(); t.select(); window.__scratch = t; return true",
            vec![text.into()],
        );
        assert_eq!(staged, Some(true.into()), "{}", self.log());
        self.chord('c');
        let focused = self.eval(
            "window.__scratch.remove(); delete window.__scratch; \
             const e = document.querySelector(arguments[0]); e.focus(); \
             return document.activeElement === e",
            vec![css.into()],
        );
        assert_eq!(focused, Some(true.into()), "{}", self.log());
        self.chord('v');
    }

    /// Ctrl+`key` as key presses to the focused element.
    fn chord(&self, key: char) {
        use fantoccini::actions::{InputSource, KeyAction, KeyActions};
        use fantoccini::key::Key;
        let control: char = Key::Control.into();
        let keys = KeyActions::new("keyboard".into())
            .then(KeyAction::Down { value: control })
            .then(KeyAction::Down { value: key })
            .then(KeyAction::Up { value: key })
            .then(KeyAction::Up { value: control });
        match self.bounded(self.client().perform_actions(keys)) {
            Some(Ok(())) => {}
            Some(Err(e)) => panic!("pressing Ctrl+{key}: {e}\n{}", self.log()),
            None => panic!(
                "pressing Ctrl+{key}: no answer in {COMMAND:?}\n{}",
                self.log()
            ),
        }
    }

    /// The window's handles: empty once the app closed its last window.
    pub fn windows(&self) -> Vec<String> {
        self.bounded(self.client().windows())
            .and_then(Result::ok)
            .map(|w| w.into_iter().map(String::from).collect())
            .unwrap_or_default()
    }

    /// Waits until the session's window is closed (the popup closes itself on success).
    pub fn wait_closed(&self) {
        let closed = wait_until(WAIT, || {
            // a closed window answers no script
            self.eval("return 1", vec![]).is_none().then_some(())
        });
        assert!(
            closed.is_some(),
            "the window stayed open; page: {:?}\n{}",
            self.source(),
            self.log()
        );
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        match self.bounded(self.client().screenshot()) {
            Some(Ok(png)) => png,
            Some(Err(e)) => panic!("screenshot: {e}\n{}", self.log()),
            None => panic!("screenshot: no answer in {COMMAND:?}\n{}", self.log()),
        }
    }

    /// Every process under tauri-driver (WebKitWebDriver, the app, WebKit's helpers).
    fn descendants(&self) -> Vec<u32> {
        let mut found = vec![self.process.pid()];
        let mut at = 0;
        while at < found.len() {
            let parent = found[at];
            found.extend(children_of(parent));
            at += 1;
        }
        found.remove(0);
        found
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let tree = self.descendants();
        if let Some(client) = self.client.take() {
            // ends the session: WebKitWebDriver stops the app
            let _ = self.bounded(client.close());
        }
        wait_until(Duration::from_secs(10), || {
            tree.iter().all(|pid| !is_live(*pid)).then_some(())
        });
        self.process.signal("TERM");
        if self.process.wait_timeout(Duration::from_secs(10)).is_none() {
            self.process.kill();
        }
        for pid in tree {
            if is_live(pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-s", "KILL", &pid.to_string()])
                    .status();
            }
        }
    }
}

/// Whether `pid` runs (a zombie does not count: its parent reaps it).
fn is_live(pid: u32) -> bool {
    pid_exists(pid)
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, r)| !r.starts_with(" Z"))
        })
}

/// The PIDs whose parent is `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
                // "PID (comm) STATE PPID …": comm may hold spaces and parentheses
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}
