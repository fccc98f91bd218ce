//! `rolecall completions SHELL`: the shell's registration script for Rolecall's completions.
//!
//! The script calls `rolecall` back while completing (`ROLECALL_COMPLETE=SHELL rolecall -- WORDS…`,
//! answered in `main` by clap_complete's `CompleteEnv` before anything else runs), so that
//! profile and source names come from the config as it is now.

use clap_complete::Shell;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

/// The variable that makes `rolecall` answer a completion request instead of running. Ours,
/// not clap's generic `COMPLETE`: a `COMPLETE` some other tool left in the environment must not
/// turn `rolecall credential-process` (run by the AWS CLI with the user's environment) into a
/// completion answer.
pub const VAR: &str = "ROLECALL_COMPLETE";

pub fn run(shell: Shell) -> anyhow::Result<u8> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Elvish => &Elvish,
        Shell::PowerShell => &Powershell,
        other => {
            anyhow::bail!("no completions for {other}; use bash, zsh, fish, elvish or powershell")
        }
    };
    let mut script = Vec::new();
    completer.write_registration(VAR, "rolecall", "rolecall", "rolecall", &mut script)?;
    out!("{}", String::from_utf8_lossy(&script));
    Ok(crate::exit::OK)
}
