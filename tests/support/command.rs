//! `TestCommand`: a builder for one run of a program with an exact environment, a timeout and
//! captured output; `Output` with assertions that show both streams when they fail.

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use super::process::Process;
use super::sandbox::Env;

/// How long `run` waits before killing a command that hangs.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One command to run; build it, then `run()` (wait for the result) or `spawn()` (keep running).
#[derive(Clone, Debug)]
pub struct TestCommand {
    program: PathBuf,
    args: Vec<OsString>,
    env: Env,
    stdin: Option<Vec<u8>>,
    cwd: Option<PathBuf>,
    timeout: Duration,
}

impl TestCommand {
    /// `program` with exactly `env` as its environment (nothing inherited).
    pub fn new(program: impl Into<PathBuf>, env: Env) -> TestCommand {
        TestCommand {
            program: program.into(),
            args: Vec::new(),
            env,
            stdin: None,
            cwd: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I>(mut self, args: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|arg| arg.as_ref().to_owned()));
        self
    }

    /// Sets one variable (paths welcome); values must be UTF-8.
    pub fn env(mut self, key: &str, value: impl AsRef<OsStr>) -> Self {
        let value = value
            .as_ref()
            .to_str()
            .expect("test env values are UTF-8")
            .to_owned();
        self.env.insert(key.to_owned(), value);
        self
    }

    pub fn envs<K: AsRef<str>, V: AsRef<str>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        for (key, value) in vars {
            self.env
                .insert(key.as_ref().to_owned(), value.as_ref().to_owned());
        }
        self
    }

    pub fn env_remove(mut self, key: &str) -> Self {
        self.env.remove(key);
        self
    }

    /// Bytes for the child's stdin (closed after them). Without this stdin is `/dev/null`.
    pub fn stdin(mut self, input: impl Into<Vec<u8>>) -> Self {
        self.stdin = Some(input.into());
        self
    }

    pub fn current_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cwd = Some(dir.into());
        self
    }

    /// Kill the command and fail the test if it runs longer than this (default 60 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    pub fn environment(&self) -> &Env {
        &self.env
    }

    /// The command line as a shell would show it, for messages.
    pub fn cmdline(&self) -> String {
        let mut line = self.program.display().to_string();
        for arg in &self.args {
            let arg = arg.to_string_lossy();
            if arg.is_empty() || arg.contains(|c: char| c.is_whitespace() || c == '\'') {
                let _ = write!(line, " '{}'", arg.replace('\'', r"'\''"));
            } else {
                let _ = write!(line, " {arg}");
            }
        }
        line
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.program);
        command.args(&self.args).env_clear().envs(&self.env);
        if let Some(dir) = &self.cwd {
            command.current_dir(dir);
        } else if let Some(home) = self.env.get("HOME") {
            command.current_dir(home);
        }
        command
    }

    /// Runs to completion (or the timeout) and captures stdout and stderr.
    pub fn run(&self) -> Output {
        let cmdline = self.cmdline();
        let mut child = self
            .command()
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting `{cmdline}`: {e}"));

        if let (Some(input), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            // A thread, so a child that never reads cannot block us; EPIPE is the child's choice.
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        let stdout = drain(child.stdout.take().expect("stdout is piped"));
        let stderr = drain(child.stderr.take().expect("stderr is piped"));

        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for the child") {
                break Some(status);
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        // A grandchild that inherited our pipes would keep them open forever; don't wait for it.
        let collect = |rx: mpsc::Receiver<Vec<u8>>, name: &str| {
            rx.recv_timeout(Duration::from_secs(5)).map_or_else(
                |_| {
                    format!("<{name} still open after the command ended: a child process holds it>")
                },
                |bytes| String::from_utf8_lossy(&bytes).into_owned(),
            )
        };
        let output = Output {
            cmdline,
            code: status.and_then(|status| status.code()),
            signal: status
                .and_then(|status| std::os::unix::process::ExitStatusExt::signal(&status)),
            stdout: collect(stdout, "stdout"),
            stderr: collect(stderr, "stderr"),
        };
        assert!(
            status.is_some(),
            "`{}` did not finish within {:?}; killed it\n{}",
            output.cmdline,
            self.timeout,
            output.streams()
        );
        output
    }

    /// Starts the command and keeps it running, output appended to `log`; the `Process` kills
    /// it on Drop.
    pub fn spawn(&self, name: &str, log: &Path) -> Process {
        let out = File::create(log).unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let err = out.try_clone().expect("cloning the log file handle");
        let mut child = self
            .command()
            .stdin(if self.stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("starting `{}`: {e}", self.cmdline()));
        if let (Some(input), Some(mut pipe)) = (self.stdin.clone(), child.stdin.take()) {
            std::thread::spawn(move || {
                let _ = pipe.write_all(&input);
            });
        }
        Process::new(name, child, Some(log))
    }
}

fn drain(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(bytes);
    });
    rx
}

/// What a finished command did.
#[derive(Clone, Debug)]
pub struct Output {
    pub cmdline: String,
    /// The exit code; `None` when a signal ended the command.
    pub code: Option<i32>,
    pub signal: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Asserts exit code 0, showing both streams otherwise.
    #[track_caller]
    pub fn success(self) -> Self {
        assert!(
            self.code == Some(0),
            "`{}` failed ({})\n{}",
            self.cmdline,
            self.describe_exit(),
            self.streams()
        );
        self
    }

    /// Asserts a non-zero exit code (not a crash by signal), showing both streams otherwise.
    #[track_caller]
    pub fn failure(self) -> Self {
        assert!(
            matches!(self.code, Some(code) if code != 0),
            "`{}` was expected to fail but {}\n{}",
            self.cmdline,
            self.describe_exit(),
            self.streams()
        );
        self
    }

    /// Asserts this exact exit code.
    #[track_caller]
    pub fn code_is(self, expected: i32) -> Self {
        assert!(
            self.code == Some(expected),
            "`{}` was expected to exit with {expected} but {}\n{}",
            self.cmdline,
            self.describe_exit(),
            self.streams()
        );
        self
    }

    /// stdout parsed as JSON (panics showing both streams if it is not).
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout of `{}` is not JSON: {e}\n{}",
                self.cmdline,
                self.streams()
            )
        })
    }

    fn describe_exit(&self) -> String {
        match (self.code, self.signal) {
            (Some(code), _) => format!("exit code {code}"),
            (None, Some(signal)) => format!("killed by signal {signal}"),
            (None, None) => "no exit status".to_owned(),
        }
    }

    /// Both streams as labelled blocks.
    pub fn streams(&self) -> String {
        let rule = "~".repeat(79);
        format!(
            "stdout:\n{rule}\n{}\n{rule}\nstderr:\n{rule}\n{}\n{rule}",
            self.stdout.trim_end(),
            self.stderr.trim_end()
        )
    }
}
