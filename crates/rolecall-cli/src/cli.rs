//! The command line, as clap structs. Help texts are the reference documentation.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use clap_complete::{ArgValueCandidates, CompletionCandidate};

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
    /// Write the log to this file instead of stderr (appended; created with mode 0600; info
    /// level unless -v or ROLECALL_LOG say more), for cron and init systems that do not keep
    /// stderr. The command's result and errors still go to stdout/stderr, and errors also to
    /// the file.
    #[arg(long, global = true, value_name = "FILE", env = "ROLECALL_LOG_FILE")]
    pub log_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// The config's profile names, for shell completion (none when the config cannot be read).
fn profile_names() -> Vec<CompletionCandidate> {
    config_names(|c| c.profiles.keys().cloned().collect())
}

/// The config's source names, for shell completion.
fn source_names() -> Vec<CompletionCandidate> {
    config_names(|c| c.sources.keys().cloned().collect())
}

/// Names from the config of `$ROLECALL_CONFIG` or the default path (a `--config` on the line
/// being completed is not seen: the completer only gets the words, not the parse).
fn config_names(
    names: impl Fn(&rolecall_core::config::Config) -> Vec<String>,
) -> Vec<CompletionCandidate> {
    let paths = rolecall_core::config::Paths::from_env();
    rolecall_core::config::Config::load(&paths.config_file)
        .map(|c| {
            names(&c)
                .into_iter()
                .map(CompletionCandidate::new)
                .collect()
        })
        .unwrap_or_default()
}

/// How logs are written.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// A subcommand's help footer: an example, and where the global options are (they are shown
/// once, in `rolecall --help`: see [`command`]).
fn ex(example: &str) -> String {
    format!(
        "Example:\n  {example}\n\nGlobal options (--config, -v, --log-format, --log-file, \
         --no-agent): `rolecall --help`."
    )
}

/// The command line: [`Cli`], with the global options listed only in `rolecall --help`. They
/// still work after any subcommand; each subcommand gets a hidden copy, which clap then does
/// not propagate again (it skips an id the subcommand has).
pub fn command() -> clap::Command {
    use clap::CommandFactory;
    let mut cmd = Cli::command();
    let globals: Vec<clap::Arg> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .cloned()
        .collect();
    let names: Vec<String> = cmd
        .get_subcommands()
        .map(|s| s.get_name().to_string())
        .collect();
    for name in names {
        cmd = cmd.mut_subcommand(name, |sc| {
            globals
                .iter()
                .fold(sc, |sc, a| sc.arg(a.clone().hide(true)))
        });
    }
    cmd
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage long-lived keys in the OS keychain.
    #[command(subcommand, after_help = ex("rolecall keys add work --mfa-serial arn:aws:iam::123456789012:mfa/alice"))]
    Keys(Keys),
    /// List the roles a source's IAM user may assume by its own and its groups' policies.
    #[command(after_help = ex("rolecall roles work"))]
    Roles(RolesArgs),
    /// Turn role profiles of ~/.aws/config into Rolecall profiles.
    #[command(after_help = ex("rolecall import --dry-run"))]
    Import(ImportArgs),
    /// Renew profiles that are due (less than `refresh_before` left).
    #[command(after_help = ex("rolecall refresh dev-admin --force"))]
    Refresh(RefreshArgs),
    /// Show every profile: source, role, expiry, time left, state.
    #[command(after_help = ex("rolecall status --json"))]
    Status(StatusArgs),
    /// Mirror a profile into [default] (or stop with --none).
    #[command(after_help = ex("rolecall use dev-admin"))]
    Use(UseArgs),
    /// Run a command with a profile's credentials in its environment.
    #[command(after_help = ex("rolecall exec dev-admin aws sts get-caller-identity\n  rolecall exec dev-admin            (starts $SHELL)\n  rolecall exec --role-arn arn:aws:iam::123456789012:role/Deploy --duration 2h -- terraform plan"))]
    Exec(ExecArgs),
    /// Print a profile's credentials as shell variables or JSON.
    #[command(after_help = ex("eval \"$(rolecall export dev-admin)\""))]
    Export(ExportArgs),
    /// Print a profile's credentials in the `credential_process` format (for ~/.aws/config).
    #[command(after_help = ex("credential_process = rolecall credential-process dev-admin   (in ~/.aws/config)"))]
    CredentialProcess(ProfileArg),
    /// Forget cached sessions and remove managed sections (long-lived keys stay).
    #[command(after_help = ex("rolecall clear dev-admin"))]
    Clear(ClearArgs),
    /// Check the config, keychain, credentials file, clock and ~/.aws/config, and explain.
    #[command(after_help = ex("rolecall doctor"))]
    Doctor,
    /// Keep credentials fresh in the foreground: the refresh scheduler plus the local agent
    /// that `rolecall status/refresh/use` talk to. SIGHUP reloads the config.
    #[command(after_help = ex("rolecall daemon --once   (from cron)\n  rolecall daemon --install-unit   (systemd user service)"))]
    Daemon(DaemonArgs),
    /// Print the running agent's events as they happen (renewals, failures, MFA requests).
    #[command(after_help = ex("rolecall watch --json"))]
    Watch(WatchArgs),
    /// Serve a profile's credentials on a local endpoint (ECS container credentials or
    /// IMDSv2) that SDKs ask again before expiry, so long-running programs stay fresh.
    Serve(crate::cmd::serve::ServeArgs),
    /// Write the AWS config file's side of an integration (credential_process).
    #[command(subcommand)]
    Setup(crate::cmd::setup::Setup),
    /// Print shell completions (with profile and source names).
    #[command(after_help = ex("rolecall completions bash > ~/.local/share/bash-completion/completions/rolecall"))]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write the man pages into DIR: `rolecall.1` and one per subcommand (for packagers:
    /// `make package`).
    #[command(hide = true)]
    Man {
        /// The directory to write the pages into (created if missing).
        dir: std::path::PathBuf,
    },
}

impl Command {
    /// Replaces `--mfa-code -` with the code read from stdin (one line), so that the code never
    /// appears in the process's arguments; drops the spaces of a code given as `123 456`.
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
        // a malformed code stays as given: the engine's error says what is wrong with it
        if let Some(clean) = code.as_deref().and_then(crate::prompt::mfa_code) {
            *code = Some(clean);
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
    #[command(after_help = ex("rolecall keys add work --detect-mfa"))]
    Add {
        /// The source name (becomes [sources.NAME] in the config).
        #[arg(add = ArgValueCandidates::new(source_names))]
        name: String,
        /// The MFA device's ARN or serial number.
        #[arg(long, value_name = "ARN")]
        mfa_serial: Option<String>,
        /// Look the MFA device up with IAM ListMFADevices (signed with the key) and store it
        /// as the source's mfa_serial; with several devices, asks which one on a terminal.
        #[arg(long, conflicts_with = "mfa_serial")]
        detect_mfa: bool,
        /// Replace the key the source already has, without asking.
        #[arg(long)]
        replace: bool,
    },
    /// Copy a static key from the credentials file into the keychain.
    #[command(after_help = ex("rolecall keys import work --scrub"))]
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
        /// The MFA device's ARN or serial number. Without it (or --detect-mfa), the source's
        /// own stays; a new source gets the one the AWS files give the section (its own
        /// mfa_serial, else that of the profiles using it as source_profile).
        #[arg(long, value_name = "ARN")]
        mfa_serial: Option<String>,
        /// Look the MFA device up with IAM ListMFADevices (signed with the key) and store it
        /// as the source's mfa_serial; the user must have exactly one device.
        #[arg(long, conflicts_with = "mfa_serial")]
        detect_mfa: bool,
    },
    /// List the MFA devices of the IAM user owning a source's key (IAM ListMFADevices).
    #[command(after_help = ex("rolecall keys mfa-devices work"))]
    MfaDevices {
        /// The source name.
        #[arg(add = ArgValueCandidates::new(source_names))]
        name: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Replace a source's key with a new one: create it in IAM, check it works, store it in
    /// the keychain, then delete the old one from IAM (the user may hold at most two keys).
    #[command(after_help = ex("rolecall keys rotate work"))]
    Rotate {
        /// The source name (a keychain source).
        #[arg(add = ArgValueCandidates::new(source_names))]
        name: String,
    },
    /// List sources and what the keychain holds for them.
    #[command(after_help = ex("rolecall keys list"))]
    List {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Delete a source's key and session from the keychain and the config.
    #[command(after_help = ex("rolecall keys remove work"))]
    Remove {
        /// The source name.
        #[arg(add = ArgValueCandidates::new(source_names))]
        name: String,
    },
}

#[derive(Debug, Args)]
pub struct RolesArgs {
    /// The source whose IAM user's policies to read.
    #[arg(add = ArgValueCandidates::new(source_names))]
    pub source: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
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
    #[arg(add = ArgValueCandidates::new(profile_names))]
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
    #[arg(required_unless_present = "none", add = ArgValueCandidates::new(profile_names))]
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
    /// The profile; without one, $AWS_PROFILE when it names a Rolecall profile.
    #[arg(add = ArgValueCandidates::new(profile_names))]
    pub profile: Option<String>,
    #[command(flatten)]
    pub ask: AskArgs,
    /// The current MFA code, if a new session is needed; `-` reads it from stdin. Without it,
    /// a terminal is asked; a code on the command line shows in `ps` and in the shell's history.
    #[arg(long, value_name = "CODE")]
    pub mfa_code: Option<String>,
    /// Give the command a local container credentials endpoint (AWS_CONTAINER_CREDENTIALS_FULL_URI
    /// and AWS_CONTAINER_AUTHORIZATION_TOKEN) instead of static keys: its SDKs fetch fresh
    /// credentials from it for as long as it runs.
    #[arg(long)]
    pub endpoint: bool,
    /// The command and its arguments (`--` before it is optional); without one, your $SHELL.
    #[arg(trailing_var_arg = true, value_name = "CMD")]
    pub command: Vec<String>,
    /// The shell started when no command is given (read from $SHELL; /bin/sh without it).
    #[arg(long, env = "SHELL", hide = true, hide_env_values = true)]
    pub shell: Option<std::ffi::OsString>,
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
    /// Plain `KEY=VALUE` lines (an env file: `docker run --env-file`, systemd's
    /// `EnvironmentFile=`).
    Env,
}

/// What `exec` and `export` hand over besides a configured profile as configured.
#[derive(Debug, Args)]
pub struct AskArgs {
    /// Assume this role without a profile in the config (nothing is written to the
    /// credentials file); the source's cached MFA session is reused.
    #[arg(long, value_name = "ARN")]
    pub role_arn: Option<String>,
    /// With --role-arn: the source (or profile) to assume it from; default: the config's only
    /// source.
    #[arg(long, value_name = "NAME", requires = "role_arn", add = ArgValueCandidates::new(source_names))]
    pub source: Option<String>,
    /// With --role-arn: the MFA device, for a source without one in the config.
    #[arg(long, value_name = "ARN", requires = "role_arn")]
    pub mfa_serial: Option<String>,
    /// Role credentials lasting this long (AssumeRole: 15m to 12h, 1h when chained), made
    /// fresh and not written to the credentials file.
    #[arg(long, value_name = "DURATION", env = "ROLECALL_DURATION", value_parser = duration_arg)]
    pub duration: Option<std::time::Duration>,
    /// The lifetime of an MFA session started for this (GetSessionToken: 15m to 36h); a
    /// cached session is used while it lasts.
    #[arg(long, value_name = "DURATION", env = "ROLECALL_SESSION_DURATION", value_parser = duration_arg)]
    pub session_duration: Option<std::time::Duration>,
    /// The session credentials of the source at the root of the profile's chain instead of
    /// the profile's role (aws-runas -s).
    #[arg(long, conflicts_with = "role_arn")]
    pub session: bool,
    /// The profile used when none is named (read from $AWS_PROFILE).
    #[arg(long, env = "AWS_PROFILE", hide = true, hide_env_values = true)]
    pub aws_profile: Option<String>,
}

/// A lifetime as written in the config: `1h`, `90m`, `1h30m`.
fn duration_arg(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        format!(
            "{text:?} is not a duration: write it like \"1h\", \"90m\" or \"1h30m\" (in \
             --duration, --session-duration, ROLECALL_DURATION or ROLECALL_SESSION_DURATION)"
        )
    })
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The profile; without one, $AWS_PROFILE when it names a Rolecall profile.
    #[arg(add = ArgValueCandidates::new(profile_names))]
    pub profile: Option<String>,
    #[command(flatten)]
    pub ask: AskArgs,
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
    #[arg(add = ArgValueCandidates::new(profile_names))]
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
    #[arg(long, conflicts_with = "install_unit")]
    pub once: bool,
    /// Install the systemd user unit that runs this binary's daemon at login
    /// (`$XDG_CONFIG_HOME/systemd/user/rolecall.service`), then exit.
    #[arg(long)]
    pub install_unit: bool,
    /// With --install-unit: the directory to write the unit into.
    #[arg(long, value_name = "DIR", requires = "install_unit")]
    pub unit_dir: Option<std::path::PathBuf>,
    /// With --install-unit: the rolecall binary the unit runs, instead of this one (for
    /// packagers: `/usr/bin/rolecall`).
    #[arg(
        long,
        value_name = "PATH",
        requires = "install_unit",
        hide = true,
        value_parser = absolute_path
    )]
    pub unit_exec: Option<std::path::PathBuf>,
}

/// An absolute path (systemd runs a unit's ExecStart from no directory of the user's).
fn absolute_path(value: &str) -> Result<std::path::PathBuf, String> {
    let path = std::path::PathBuf::from(value);
    if path.is_absolute() {
        Ok(path)
    } else {
        Err("give an absolute path".into())
    }
}

#[derive(Debug, Args)]
pub struct ClearArgs {
    /// Profiles whose sections to remove (default: all managed sections and cached sessions).
    #[arg(add = ArgValueCandidates::new(profile_names))]
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
