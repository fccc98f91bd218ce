//! The process's own protection while it holds secrets, and what `exec` hands back to its child.
//!
//! At start, before the runtime starts any thread ([`harden`]):
//! - the umask becomes 077, so that every file Rolecall creates (config, locks, temp files) is
//!   private to the user;
//! - the process cannot dump core (soft `RLIMIT_CORE` 0) and, on Linux, is not dumpable
//!   (`PR_SET_DUMPABLE` 0), as ssh-agent does: other processes of the same user cannot ptrace
//!   it or read its memory through `/proc/PID/mem`, and a crash leaves no core file with
//!   credentials in it. (macOS has no `PR_SET_DUMPABLE`: there only the core limit applies.)
//!
//! The caller's umask and core limit are kept: `exec`'s child gets them back ([`for_child`]),
//! so its build artefacts are not private and a program debugged under `rolecall exec` still
//! dumps core. Dumpability needs no restoring: the kernel resets it at `execve`.

use std::sync::OnceLock;

use rustix::fs::Mode;
use rustix::process::{Resource, Rlimit};

/// What the caller set and the child of `exec` gets back.
#[derive(Debug, Clone)]
struct Inherited {
    umask: Mode,
    core: Rlimit,
}

static INHERITED: OnceLock<Inherited> = OnceLock::new();

/// Our own settings: private files, no core dumps, not dumpable. Call first in `main`, before
/// any thread exists (the umask and limits are per process).
pub fn harden() {
    let umask = rustix::process::umask(Mode::from_raw_mode(0o077));
    let core = rustix::process::getrlimit(Resource::Core);
    // only the soft limit: lowering the hard one could not be undone for `exec`'s child
    let ours = Rlimit {
        current: Some(0),
        maximum: core.maximum,
    };
    if let Err(e) = rustix::process::setrlimit(Resource::Core, ours) {
        tracing::warn!(error = %e, "cannot turn off core dumps");
    }
    #[cfg(any(target_os = "linux", target_os = "android"))]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        tracing::warn!(error = %e, "cannot make the process non-dumpable");
    }
    let _ = INHERITED.set(Inherited { umask, core });
}

/// Runs `spawn` with the caller's umask and core limit in force, then puts ours back: the
/// child started inside inherits the caller's settings, not ours. `exec` starts its child
/// this way after the credentials are in hand, when this process writes no more files.
pub fn for_child<T>(spawn: impl FnOnce() -> T) -> T {
    let Some(inherited) = INHERITED.get() else {
        return spawn();
    };
    let ours = rustix::process::umask(inherited.umask);
    let our_core = rustix::process::getrlimit(Resource::Core);
    if let Err(e) = rustix::process::setrlimit(Resource::Core, inherited.core) {
        tracing::debug!(error = %e, "cannot restore the caller's core limit for the child");
    }
    let out = spawn();
    rustix::process::umask(ours);
    if let Err(e) = rustix::process::setrlimit(Resource::Core, our_core) {
        tracing::warn!(error = %e, "cannot turn off core dumps again");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One test, as the settings are per process (and this test binary's own).
    #[test]
    fn hardening_turns_off_dumps_and_a_child_gets_the_callers_settings_back() {
        rustix::process::umask(Mode::from_raw_mode(0o022));
        harden();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        assert_eq!(
            rustix::process::dumpable_behavior().unwrap(),
            rustix::process::DumpableBehavior::NotDumpable
        );
        assert_eq!(rustix::process::getrlimit(Resource::Core).current, Some(0));
        let in_child = for_child(|| {
            let mask = rustix::process::umask(Mode::from_raw_mode(0o022));
            mask.bits()
        });
        assert_eq!(in_child, 0o022, "the child's umask is the caller's");
        let now = rustix::process::umask(Mode::from_raw_mode(0o077));
        assert_eq!(now.bits(), 0o077, "ours is back after the spawn");
    }
}
