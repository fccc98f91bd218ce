//! `Moto`: moto's server (the STS the tests talk to) on a free loopback port, one per test.
//!
//! moto is not AWS: GetSessionToken always returns AccessKeyId `AKIAIOSFODNN7EXAMPLE` with the
//! same secret and token (only Expiration changes), AssumeRole returns fresh `ASIA…` keys, any
//! MFA code is accepted and nothing is ever throttled. Failures come from `FaultProxy`.

use std::fs::File;
use std::net::TcpListener;
use std::process::{ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use super::probe::{http_request, wait_until};
use super::process::Process;
use super::sandbox::Sandbox;
use super::tools::venv_bin;

/// How long moto may take to answer its first probe (it starts in ~0.7 s here).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs `moto.server.main` (what `moto_server` runs) with a watchdog thread that exits when
/// stdin closes: the test process holds the other end, so moto dies with it even when the
/// test binary is SIGKILLed and no Drop runs.
const LAUNCHER: &str = "\
import os, sys, threading
def watchdog():
    sys.stdin.buffer.read()
    os._exit(0)
threading.Thread(target=watchdog, daemon=True).start()
from moto.server import main
sys.exit(main(sys.argv[1:]))
";

/// A running moto server.
#[derive(Debug)]
pub struct Moto {
    process: Process,
    port: u16,
    /// Kept open: moto's watchdog exits when this closes.
    _lifeline: ChildStdin,
}

impl Moto {
    /// Starts moto on a free port and waits until `GET /moto-api/` answers 200.
    pub fn start(sandbox: &Sandbox) -> Moto {
        // Probing moto_server (not only python) keeps the "run make deps" hint accurate.
        venv_bin("moto_server");
        let python = venv_bin("python");
        let log = sandbox.log_path("moto");
        let mut last_log = String::new();
        // Another process can take the port between our probe bind and moto's; then retry.
        for _attempt in 0..5 {
            let port = free_port();
            let out = File::create(&log).expect("creating the moto log");
            let err = out.try_clone().expect("cloning the moto log handle");
            let child = Command::new(&python)
                .arg("-u")
                .arg("-c")
                .arg(LAUNCHER)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .env_clear()
                .envs(sandbox.env())
                .current_dir(sandbox.root())
                .stdin(Stdio::piped())
                .stdout(out)
                .stderr(err)
                .spawn()
                .unwrap_or_else(|e| panic!("starting moto ({}): {e}", python.display()));
            let mut process = Process::new("moto", child, Some(&log));
            let lifeline = process.take_stdin().expect("moto's stdin is piped");
            match wait_ready(&mut process, port) {
                Ready::Yes => {
                    return Moto {
                        process,
                        port,
                        _lifeline: lifeline,
                    };
                }
                Ready::PortTaken => last_log = process.log(),
                Ready::Failed(why) => panic!("moto did not start: {why}\nlog:\n{}", process.log()),
            }
        }
        panic!("moto lost the race for a free port 5 times\nlast log:\n{last_log}");
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Forgets every resource (roles, users, sessions): `POST /moto-api/reset`.
    pub fn reset(&self) {
        let url = format!("{}/moto-api/reset", self.url());
        match http_request("POST", &url, "") {
            Ok((200, _)) => {}
            other => panic!("moto reset failed: {other:?}\nlog:\n{}", self.log()),
        }
    }

    /// moto's stdout and stderr so far (one line per request it served).
    pub fn log(&self) -> String {
        self.process.log()
    }
}

enum Ready {
    Yes,
    PortTaken,
    Failed(String),
}

/// Ready means: our child is alive, *it* says it is listening on our port (so a 200 cannot come
/// from someone else's server that won the port), and the API answers 200.
fn wait_ready(process: &mut Process, port: u16) -> Ready {
    let listening = format!("Running on http://127.0.0.1:{port}");
    let url = format!("http://127.0.0.1:{port}/moto-api/");
    let started = Instant::now();
    let outcome = wait_until(START_TIMEOUT, || {
        if let Some(status) = process.try_status() {
            let log = process.log();
            return Some(if log.contains("Address already in use") {
                Ready::PortTaken
            } else {
                Ready::Failed(format!("moto exited with {status}"))
            });
        }
        if !process.log().contains(&listening) {
            return None;
        }
        match http_request("GET", &url, "") {
            Ok((200, _)) => Some(Ready::Yes),
            _ => None,
        }
    });
    outcome.unwrap_or_else(|| {
        Ready::Failed(format!("no 200 from {url} within {:?}", started.elapsed()))
    })
}

/// A port that was free a moment ago (the kernel's pick for 127.0.0.1:0).
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener
        .local_addr()
        .expect("local address of a bound socket")
        .port()
}
