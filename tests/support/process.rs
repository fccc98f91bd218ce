//! `Process`: one child the bed started, stopped and reaped by its PID on `Drop`.
//!
//! Holding the unreaped `Child` is what makes signalling by PID safe: until we `wait` for it the
//! kernel cannot hand the PID to another process.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ExitStatus};
use std::time::{Duration, Instant};

/// A child process we own. Dropping it sends SIGKILL and reaps it.
#[derive(Debug)]
pub struct Process {
    name: String,
    child: Child,
    log: Option<PathBuf>,
}

impl Process {
    /// Takes ownership of `child`; `log` is the file its output goes to, if any.
    pub fn new(name: &str, child: Child, log: Option<&Path>) -> Process {
        Process {
            name: name.to_owned(),
            child,
            log: log.map(Path::to_path_buf),
        }
    }

    /// The name given at start, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended (reaping it), `None` while it runs.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child
            .try_wait()
            .unwrap_or_else(|e| panic!("waiting for {}: {e}", self.name))
    }

    pub fn is_running(&mut self) -> bool {
        self.try_status().is_none()
    }

    /// Waits up to `timeout` for the process to end by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_status() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, `USR1`…) with `kill(1)`, if still running.
    pub fn signal(&mut self, signal: &str) {
        if !self.is_running() {
            return;
        }
        let status = std::process::Command::new("kill")
            .args(["-s", signal, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill for {}: {e}", self.name));
        assert!(
            status.success(),
            "kill -s {signal} {} ({}) failed",
            self.pid(),
            self.name
        );
    }

    /// SIGKILL and reap; idempotent.
    pub fn kill(&mut self) {
        if self.is_running() {
            // The only error is "already exited", which the wait below settles.
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }

    /// The child's stdin, once, if it was piped.
    pub fn take_stdin(&mut self) -> Option<ChildStdin> {
        self.child.stdin.take()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// What the process wrote to its log so far (empty if it has none).
    pub fn log(&self) -> String {
        self.log
            .as_ref()
            .and_then(|path| fs::read(path).ok())
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Whether a process with this PID exists (a zombie counts: it still holds the PID).
pub fn pid_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}
