//! The command line, as clap structs. Help texts are the reference documentation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const AFTER_HELP: &str = "\
Exit codes: 0 ok, 1 some profiles failed (the others were done), 2 usage or configuration error.
`rolecall exec` exits with the command's own code.

Files: config $ROLECALL_CONFIG or ~/.config/rolecall/config.toml; credentials
$AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials (only Rolecall's own sections are touched);
long-lived keys and MFA sessions in the OS keychain (service \"rolecall\").";

/// Keeps AWS temporary credentials fresh: long-lived keys in the OS keychain, MFA sessions and
/// role credentials renewed before they expire, written into the shared credentials file.
#[derive(Debug, Parser)]
#[command(name = "rolecall", version, after_help = AFTER_HELP, max_term_width = 100)]
pub struct Cli {
    /// Use this config file instead of $ROLECALL_CONFIG or the default.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// More logging on stderr (-v info, -vv debug); or set ROLECALL_LOG.
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Log format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Do the work in this process even when a rolecall agent (daemon, tray app) is running.
    #[arg(long, global = true)]
    pub no_agent: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage long-lived keys in the OS keychain.
    #[command(subcommand)]
    Keys(Keys),
    /// Turn role profiles of ~/.aws/config into Rolecall profiles.
    Import(ImportArgs),
    /// Renew profiles that are due (less than `refresh_before` left).
    Refresh(RefreshArgs),
    /// Show every profile: source, role, expiry, time left, state.
    Status(StatusArgs),
    /// Mirror a profile into [default] (or stop with --none).
    Use(UseArgs),
    /// Run a command with a profile's credentials in its environment.
    Exec(ExecArgs),
    /// Print a profile's credentials as shell variables or JSON.
    Export(ExportArgs),
    /// Print a profile's credentials in the `credential_process` format (for ~/.aws/config).
    CredentialProcess(ProfileArg),
    /// Forget cached sessions and remove managed sections (long-lived keys stay).
    Clear(ClearArgs),
    /// Check the config, keychain, credentials file, clock and ~/.aws/config, and explain.
    Doctor,
    /// Keep credentials fresh in the foreground: the refresh scheduler plus the local agent
    /// that `rolecall status/refresh/use` talk to. SIGHUP reloads the config.
    Daemon(DaemonArgs),
    /// Print the running agent's events as they happen (renewals, failures, MFA requests).
    Watch(WatchArgs),
    /// Write the AWS config file's side of an integration (credential_process).
    #[command(subcommand)]
    Setup(crate::cmd::setup::Setup),
    /// Print shell completions.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

impl Command {
    /// Replaces `--mfa-code -` with the code read from stdin (one line), so that the code never
    /// appears in the process's arguments.
    pub fn read_mfa_code_from_stdin(&mut self) -> anyhow::Result<()> {
        let code = match self {
            Command::Refresh(a) => &mut a.mfa_code,
            Command::Use(a) => &mut a.mfa_code,
            Command::Exec(a) => &mut a.mfa_code,
            Command::Export(a) => &mut a.mfa_code,
            _ => return Ok(()),
        };
        if code.as_deref() == Some("-") {
            *code = Some(read_code(std::io::stdin().lock())?);
        }
        Ok(())
    }
}

/// The first line of `input`, trimmed: an MFA code given with `--mfa-code -`.
fn read_code(mut input: impl std::io::BufRead) -> anyhow::Result<String> {
    use anyhow::Context;
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the MFA code from stdin (--mfa-code -)")?;
    let code = line.trim();
    anyhow::ensure!(
        !code.is_empty(),
        "--mfa-code -: stdin had no MFA code; give the code as the first line of stdin, or run \
         the command on a terminal without --mfa-code to be asked for it"
    );
    Ok(code.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Keys {
    /// Store a long-lived key for a source (prompts on a terminal; else reads the access key id
    /// and the secret access key as two lines from stdin).
    Add {
        /// The source name (becomes [sources.NAME] in the config).
        name: String,
        /// The MFA device's ARN or serial number.
        #[arg(long, value_name = "ARN")]
        mfa_serial: Option<String>,
        /// Look the MFA device up with IAM ListMFADevices (signed with the key) and store it
        /// as the source's mfa_serial; the user must have exactly one device.
        #[arg(long, conflicts_with = "mfa_serial")]
        detect_mfa: bool,
    },
    /// Copy a static key from the credentials file into the keychain.
    Import {
        /// The profile (section) of the credentials file holding the key.
        profile: String,
        /// The source name to store it as (default: the profile's name).
        #[arg(long = "as", value_name = "NAME")]
        as_name: Option<String>,
        /// Then remove that section from the credentials file (after reading the key back from
        /// the keychain).
        #[arg(long)]
        scrub: bool,
    },
    /// List sources and what the keychain holds for them.
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a source's key and session from the keychain and the config.
    Remove {
        /// The source name.
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Show what would be added without changing anything.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct RefreshArgs {
    /// Profiles to renew (default: all).
    pub profiles: Vec<String>,
    /// Renew all profiles.
    #[arg(long, conflicts_with = "profiles")]
    pub all: bool,
    /// The current MFA code, for a source whose session must be renewed; `-` reads it from
    /// stdin. Without it, a terminal is asked; a code on the command line shows in `ps` and in
    /// the shell's history.
    #[arg(long, value_name = "CODE")]
    pub mfa_code: Option<String>,
    /// Renew even what is still fresh.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct UseArgs {
    /// The profile to mirror into [default].
    #[arg(required_unless_present = "none")]
    pub profile: Option<String>,
    /// Stop mirroring: remove Rolecall's [default] section.
    #[arg(long, conflicts_with = "profile")]
    pub none: bool,
    /// Take over a [default] section that Rolecall did not write.
    #[arg(long)]
    pub adopt: bool,
    /// The current MFA code, if a new session is needed; `-` reads it from stdin. Without it,
    /// a terminal is asked; a code on the command line shows in `ps` and in the shell's history.
    #[arg(long, value_name = "CODE")]
    pub mfa_code: Option<String>,
}

#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The profile.
    pub profile: String,
    /// The current MFA code, if a new session is needed; `-` reads it from stdin. Without it,
    /// a terminal is asked; a code on the command line shows in `ps` and in the shell's history.
    #[arg(long, value_name = "CODE")]
    pub mfa_code: Option<String>,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// POSIX shell `export` lines.
    Sh,
    /// fish `set -gx` lines.
    Fish,
    /// PowerShell `$Env:` lines.
    Powershell,
    /// A JSON object.
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The profile.
    pub profile: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Sh)]
    pub format: ExportFormat,
    /// The current MFA code, if a new session is needed; `-` reads it from stdin. Without it,
    /// a terminal is asked; a code on the command line shows in `ps` and in the shell's history.
    #[arg(long, value_name = "CODE")]
    pub mfa_code: Option<String>,
}

#[derive(Debug, Args)]
pub struct ProfileArg {
    /// The profile.
    pub profile: String,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Print JSON lines as the agent sends them.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Renew what is due, then exit (cron mode).
    #[arg(long)]
    pub once: bool,
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Profiles whose sections to remove (default: all managed sections and cached sessions).
    pub profiles: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_mfa_code_from_stdin_is_its_first_line_trimmed() {
        assert_eq!(read_code(&b"123456\n"[..]).unwrap(), "123456");
        assert_eq!(read_code(&b" 654321 \r\nmore\n"[..]).unwrap(), "654321");
        let err = read_code(&b"\n"[..]).unwrap_err().to_string();
        assert!(err.contains("stdin had no MFA code"), "{err}");
        assert!(read_code(&b""[..]).is_err());
    }
}
