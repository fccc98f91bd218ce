//! Where the tools under test live: the built `rolecall` binary and the Python venv (moto, the
//! AWS CLI, boto3). The only place the bed reads the host environment.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Reads a variable of the environment `cargo test` was started in. Test children never see the
/// host environment (see `Sandbox::env`); this is for locating tools only.
#[allow(
    clippy::disallowed_methods,
    reason = "the bed locates its tools from the invoking environment (ROLECALL_VENV, \
              ROLECALL_BIN, PATH)"
)]
pub(crate) fn host_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|value| !value.is_empty())
}

/// The peer awscli-bastion's `bastion` for `make bench` (`$BASTION_BIN`), when installed.
pub fn bastion_bin() -> Option<PathBuf> {
    host_env("BASTION_BIN")
        .map(PathBuf::from)
        .filter(|p| p.is_file())
}

/// The workspace root (the parent of `tests/`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits inside the workspace root")
        .to_path_buf()
}

/// The Python venv `make deps` builds: `$ROLECALL_VENV` (exported by the Makefile) or
/// `<workspace>/build/venv`.
pub fn venv_dir() -> PathBuf {
    host_env("ROLECALL_VENV").map_or_else(|| workspace_root().join("build/venv"), PathBuf::from)
}

/// A program of the venv (`moto_server`, `aws`, `python`); panics with the fix when it is missing.
pub fn venv_bin(name: &str) -> PathBuf {
    let path = venv_dir().join("bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make deps` first",
        path.display()
    );
    path
}

/// The `rolecall` binary under test: `$ROLECALL_BIN` when set (`make bench` points it at the
/// release build), else the one beside this test executable (`target/<profile>/rolecall`),
/// found as ripgrep's tests do: `CARGO_BIN_EXE_*` only exists for binaries of the same package.
pub fn rolecall_bin() -> PathBuf {
    if let Some(path) = host_env("ROLECALL_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ROLECALL_BIN={} is not a file: build it first (`cargo build --release --bins`)",
            path.display()
        );
        return path;
    }
    let mut dir = std::env::current_exe().expect("the test executable has a path");
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(format!("rolecall{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: run `cargo build --workspace --bins` first (`make test` does)",
        path.display()
    );
    path
}
