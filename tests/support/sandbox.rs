//! `Sandbox`: a throwaway HOME per test and the clean environment its child processes get.
//!
//! Layout of the temp dir (removed on Drop):
//! `home/` is HOME, with `.config`, `.local/share`, `.local/state`, `.cache` as the XDG dirs;
//! `run/` (0700) is XDG_RUNTIME_DIR; `logs/` and `bed/` hold the bed's own logs and files, kept
//! out of HOME so tests that list HOME see only what the software under test wrote.
//!
//! Children start from an empty environment (like ripgrep's tests dropping
//! RIPGREP_CONFIG_PATH): nothing of the developer's `AWS_*`, `ROLECALL_*`, D-Bus or keyring
//! reaches them unless a test adds it.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::tools::host_env;

/// Environment variables for a child process, by name.
pub type Env = BTreeMap<String, String>;

/// A fresh HOME with XDG dirs inside it.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
    home: PathBuf,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let dir = tempfile::Builder::new()
            .prefix("rolecall-test-")
            .tempdir()
            .expect("creating the sandbox temp dir");
        let home = dir.path().join("home");
        let sandbox = Sandbox { dir, home };
        for path in [
            sandbox.home.clone(),
            sandbox.config_home(),
            sandbox.data_home(),
            sandbox.state_home(),
            sandbox.cache_home(),
            sandbox.aws_dir(),
            sandbox.log_dir(),
            sandbox.bed_dir(),
        ] {
            fs::create_dir_all(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        }
        let runtime = sandbox.runtime_dir();
        fs::create_dir(&runtime).unwrap_or_else(|e| panic!("mkdir {}: {e}", runtime.display()));
        // XDG_RUNTIME_DIR must be 0700 (basedir spec); gnome-keyring refuses anything looser.
        fs::set_permissions(&runtime, fs::Permissions::from_mode(0o700))
            .expect("chmod 0700 XDG_RUNTIME_DIR");
        sandbox
    }

    /// The temp dir holding HOME, the runtime dir and the bed's files.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn home(&self) -> &Path {
        &self.home
    }

    /// A path relative to HOME.
    pub fn path(&self, rel: impl AsRef<Path>) -> PathBuf {
        let rel = rel.as_ref();
        assert!(
            rel.is_relative(),
            "{} must be relative to HOME",
            rel.display()
        );
        self.home.join(rel)
    }

    pub fn config_home(&self) -> PathBuf {
        self.home.join(".config")
    }

    pub fn data_home(&self) -> PathBuf {
        self.home.join(".local/share")
    }

    pub fn state_home(&self) -> PathBuf {
        self.home.join(".local/state")
    }

    pub fn cache_home(&self) -> PathBuf {
        self.home.join(".cache")
    }

    pub fn runtime_dir(&self) -> PathBuf {
        self.root().join("run")
    }

    /// `~/.aws`
    pub fn aws_dir(&self) -> PathBuf {
        self.home.join(".aws")
    }

    /// `$XDG_CONFIG_HOME/rolecall/config.toml`
    pub fn config_path(&self) -> PathBuf {
        self.config_home().join("rolecall/config.toml")
    }

    /// `~/.aws/credentials`
    pub fn credentials_path(&self) -> PathBuf {
        self.aws_dir().join("credentials")
    }

    /// `~/.aws/config`
    pub fn aws_config_path(&self) -> PathBuf {
        self.aws_dir().join("config")
    }

    /// Where helpers put the logs of the processes they start (outside HOME).
    pub fn log_dir(&self) -> PathBuf {
        self.root().join("logs")
    }

    /// A log file path for a helper process, outside HOME.
    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir().join(format!("{name}.log"))
    }

    /// Scratch space for the bed's own files (bus config…), outside HOME.
    pub fn bed_dir(&self) -> PathBuf {
        self.root().join("bed")
    }

    /// The whole environment of a child: PATH (the host's), HOME, the XDG dirs, LANG=C.UTF-8.
    pub fn env(&self) -> Env {
        let utf8 = |path: PathBuf| path.to_str().expect("sandbox paths are UTF-8").to_owned();
        let path = host_env("PATH").map_or_else(
            || "/usr/local/bin:/usr/bin:/bin".to_owned(),
            |path| path.to_string_lossy().into_owned(),
        );
        Env::from([
            ("PATH".to_owned(), path),
            ("HOME".to_owned(), utf8(self.home.clone())),
            ("XDG_CONFIG_HOME".to_owned(), utf8(self.config_home())),
            ("XDG_DATA_HOME".to_owned(), utf8(self.data_home())),
            ("XDG_STATE_HOME".to_owned(), utf8(self.state_home())),
            ("XDG_CACHE_HOME".to_owned(), utf8(self.cache_home())),
            ("XDG_RUNTIME_DIR".to_owned(), utf8(self.runtime_dir())),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ])
    }

    /// Writes `text` to a file relative to HOME (or absolute inside the sandbox), creating
    /// parent dirs.
    pub fn write(&self, rel: impl AsRef<Path>, text: &str) {
        let path = self.resolve(rel.as_ref());
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }

    /// Reads a file relative to HOME (or absolute inside the sandbox) as UTF-8.
    pub fn read(&self, rel: impl AsRef<Path>) -> String {
        let path = self.resolve(rel.as_ref());
        fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    }

    pub fn exists(&self, rel: impl AsRef<Path>) -> bool {
        self.resolve(rel.as_ref()).exists()
    }

    /// The permission bits (`0o600`…) of a file relative to HOME or absolute in the sandbox.
    pub fn mode(&self, rel: impl AsRef<Path>) -> u32 {
        let path = self.resolve(rel.as_ref());
        let meta = fs::metadata(&path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
        meta.permissions().mode() & 0o7777
    }

    fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            assert!(
                path.starts_with(self.root()),
                "{} is outside the sandbox {}",
                path.display(),
                self.root().display()
            );
            path.to_path_buf()
        } else {
            self.home.join(path)
        }
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Sandbox::new()
    }
}
