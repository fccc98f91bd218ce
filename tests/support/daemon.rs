//! `Daemon`: a real `rolecall daemon` in the world's sandbox, ready when its agent answers;
//! SIGTERM then SIGKILL on Drop, by PID.

use std::path::PathBuf;
use std::time::Duration;

use super::probe::wait_until;
use super::process::Process;
use super::world::World;

/// A running `rolecall daemon`.
pub struct Daemon {
    pub process: Process,
    pub socket: PathBuf,
}

impl Daemon {
    /// Starts `rolecall -v daemon` and waits until its agent answers `rolecall status`.
    pub fn start(world: &World) -> Daemon {
        let log = world.sandbox.log_dir().join(format!(
            "daemon-{}.log",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let process = world.rc(&["-v", "daemon"]).spawn("rolecall daemon", &log);
        let socket = world.sandbox.runtime_dir().join("rolecall/agent.sock");
        let mut d = Daemon { process, socket };
        let ready = wait_until(Duration::from_secs(20), || {
            if !d.process.is_running() {
                return Some(false);
            }
            (d.socket.exists() && world.rc(&["status", "--json"]).run().code == Some(0))
                .then_some(true)
        });
        assert_eq!(
            ready,
            Some(true),
            "the daemon did not come up:\n{}",
            d.process.log()
        );
        d
    }

    /// The daemon's log so far.
    pub fn log(&self) -> String {
        self.process.log()
    }

    /// Sends a signal by name ("TERM", "HUP").
    pub fn signal(&mut self, sig: &str) {
        self.process.signal(sig);
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.process.is_running() {
            self.process.signal("TERM");
            if self.process.wait_timeout(Duration::from_secs(10)).is_none() {
                self.process.kill();
            }
        }
    }
}
