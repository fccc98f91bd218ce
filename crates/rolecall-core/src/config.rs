//! Rolecall's own settings: where files live ([`Paths`]) and what to manage ([`Config`]).
//!
//! [`Paths::from_env`] is the only place that reads the process environment; everything else
//! gets paths from it, so tests and the app decide what the engine sees. The TOML schema is a
//! public contract (other tools write it): keys may be added, never renamed. Loading is
//! parse → validate (every error names the file, the line and the key, and says what is
//! allowed) → `Arc<Config>`. Edits that Rolecall makes to the file (`keys add`, `use`, `import`)
//! go through [`ConfigEditor`], which keeps the user's comments and layout.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// What went wrong with the configuration.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The file could not be read.
    #[error("cannot read config {path}: {source}; check that the file exists and is readable")]
    Read {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error(
        "cannot write config {path}: {source}; check the directory's permissions and free space"
    )]
    Write {
        /// The config file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("{}: {message}", location(path, *line, *column))]
    Syntax {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the problem, when known.
        line: Option<usize>,
        /// 1-based column of the problem, when known.
        column: Option<usize>,
        /// What is wrong and what is allowed.
        message: String,
    },
    /// A value is well-formed TOML but not allowed.
    #[error("{}: {key}: {message}", location(path, *line, None))]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// 1-based line of the key, when known.
        line: Option<usize>,
        /// Dotted path of the key (`profiles.dev-admin.duration`).
        key: String,
        /// What is wrong and what is allowed.
        message: String,
    },
}

fn location(path: &Path, line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!("{}:{l}:{c}", path.display()),
        (Some(l), None) => format!("{}:{l}", path.display()),
        _ => path.display().to_string(),
    }
}

/// Where Rolecall's files are. Built once from the environment by [`Paths::from_env`], or by
/// hand in tests.
#[derive(Debug, Clone)]
pub struct Paths {
    /// The user's home directory (for `~` in settings).
    pub home: PathBuf,
    /// Rolecall's config file (`$ROLECALL_CONFIG`, else `<config dir>/rolecall/config.toml`).
    pub config_file: PathBuf,
    /// `$AWS_SHARED_CREDENTIALS_FILE`, if set.
    pub credentials_file_env: Option<PathBuf>,
    /// The AWS config file (`$AWS_CONFIG_FILE`, else `~/.aws/config`).
    pub aws_config_file: PathBuf,
    /// Per-user runtime directory for sockets (`$XDG_RUNTIME_DIR/rolecall`, else under the
    /// user's cache dir: see `fallback_runtime_dir`).
    pub runtime_dir: PathBuf,
    /// The OS user name, used for default role session names.
    pub user_name: Option<String>,
}

/// This process's real user id.
#[cfg(unix)]
pub(crate) fn current_uid() -> u32 {
    rustix::process::getuid().as_raw()
}

/// The runtime directory without `XDG_RUNTIME_DIR` (cron, ssh without pam_systemd, macOS).
///
/// Unix: `<cache dir>/rolecall/run` (`$XDG_CACHE_HOME/rolecall/run`, else
/// `~/.cache/rolecall/run`; `~/Library/Caches/rolecall/run` on macOS), inside the user's own
/// home, which the agent creates 0700. Not a name in the shared temp dir: another local user
/// could create `/tmp/rolecall-<uid>` first and so keep the agent from ever starting. A socket
/// path longer than the OS allows (107 bytes on Linux, 103 on macOS) cannot be bound: the
/// agent then refuses to start, naming the path and how to choose a shorter one.
///
/// Windows: a per-user name in the temp dir, which is per user there (`%LOCALAPPDATA%\Temp`).
fn fallback_runtime_dir(
    base: Option<&directories::BaseDirs>,
    home: &Path,
    user_name: Option<&str>,
) -> PathBuf {
    #[cfg(unix)]
    {
        let _ = user_name;
        base.map(|b| b.cache_dir().to_path_buf())
            .unwrap_or_else(|| home.join(".cache"))
            .join("rolecall/run")
    }
    #[cfg(not(unix))]
    {
        let _ = (base, home);
        std::env::temp_dir().join(format!("rolecall-{}", user_name.unwrap_or("user")))
    }
}

impl Paths {
    /// Reads HOME, XDG_*, `ROLECALL_CONFIG`, `AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE`
    /// and the user name. The only function in the engine that reads the environment.
    #[allow(clippy::disallowed_methods)] // this is the one place allowed to read the environment
    pub fn from_env() -> Paths {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        let base = directories::BaseDirs::new();
        let home = base
            .as_ref()
            .map(|b| b.home_dir().to_path_buf())
            .or_else(|| var("HOME"))
            .unwrap_or_else(|| PathBuf::from("."));
        let config_file = var("ROLECALL_CONFIG").unwrap_or_else(|| {
            directories::ProjectDirs::from("", "", "rolecall")
                .map(|d| d.config_dir().join("config.toml"))
                .unwrap_or_else(|| home.join(".config/rolecall/config.toml"))
        });
        let user_name = std::env::var("USER")
            .or_else(|_| std::env::var("USERNAME"))
            .ok()
            .filter(|u| !u.is_empty());
        let runtime_dir = base
            .as_ref()
            .and_then(|b| b.runtime_dir().map(|d| d.join("rolecall")))
            .unwrap_or_else(|| fallback_runtime_dir(base.as_ref(), &home, user_name.as_deref()));
        Paths {
            aws_config_file: var("AWS_CONFIG_FILE").unwrap_or_else(|| home.join(".aws/config")),
            credentials_file_env: var("AWS_SHARED_CREDENTIALS_FILE"),
            config_file,
            runtime_dir,
            user_name,
            home,
        }
    }

    /// The credentials file Rolecall writes: `settings.credentials_file`, else
    /// `$AWS_SHARED_CREDENTIALS_FILE`, else `~/.aws/credentials`.
    pub fn credentials_file(&self, settings: &Settings) -> PathBuf {
        if let Some(p) = &settings.credentials_file {
            return self.expand(p);
        }
        self.credentials_file_env
            .clone()
            .unwrap_or_else(|| self.home.join(".aws/credentials"))
    }

    /// Expands a leading `~/` to the home directory.
    pub fn expand(&self, p: &str) -> PathBuf {
        match p.strip_prefix("~/") {
            Some(rest) => self.home.join(rest),
            None if p == "~" => self.home.clone(),
            None => PathBuf::from(p),
        }
    }
}

/// The whole configuration file.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Global settings.
    #[serde(default)]
    pub settings: Settings,
    /// Where long-lived credentials come from, by name.
    #[serde(default)]
    pub sources: BTreeMap<String, SourceConfig>,
    /// Managed profiles, by name (the section name in the credentials file).
    #[serde(default)]
    pub profiles: BTreeMap<String, ProfileConfig>,
}

/// `[settings]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// The credentials file to write; default `$AWS_SHARED_CREDENTIALS_FILE`, else
    /// `~/.aws/credentials`.
    pub credentials_file: Option<String>,
    /// Renew when less than this lifetime remains.
    #[serde(with = "humantime_serde")]
    pub refresh_before: Duration,
    /// Desktop warning lead time (used by the app).
    #[serde(with = "humantime_serde")]
    pub notify_before: Duration,
    /// The profile mirrored into `[default]`; when absent `[default]` is never touched.
    pub active: Option<String>,
    /// Time limit for one STS request attempt.
    #[serde(with = "humantime_serde")]
    pub sts_timeout: Duration,
    /// Attempts per STS call for retryable errors (throttling, 5xx, timeouts), 1 to 10.
    pub sts_max_attempts: u32,
    /// How many profiles one refresh pass renews at the same time (1 to 64).
    pub max_concurrent_refreshes: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            credentials_file: None,
            refresh_before: Duration::from_secs(15 * 60),
            notify_before: Duration::from_secs(10 * 60),
            active: None,
            sts_timeout: Duration::from_secs(10),
            sts_max_attempts: 3,
            max_concurrent_refreshes: 8,
        }
    }
}

/// Where a source's base credentials come from (`kind = "…"`; see `engine::sources`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// An IAM user key stored in the OS keychain (`rolecall keys add`), turned into an MFA
    /// session with GetSessionToken.
    #[default]
    Keychain,
    /// The EC2 instance role, read from the instance metadata service with IMDSv2. Already
    /// temporary: no keychain, no session, no MFA.
    InstanceProfile,
    /// The standard environment variables (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`) of the process running Rolecall. A long-lived key goes through
    /// GetSessionToken (with MFA when `mfa_serial` is set), the session kept in memory only.
    Environment,
}

impl SourceKind {
    /// The name written in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Keychain => "keychain",
            SourceKind::InstanceProfile => "instance-profile",
            SourceKind::Environment => "environment",
        }
    }

    /// Whether sources of this kind can start MFA sessions (so `mfa_serial` and
    /// `session_duration` apply).
    pub fn has_sessions(self) -> bool {
        matches!(self, SourceKind::Keychain | SourceKind::Environment)
    }
}

impl fmt::Display for SourceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[sources.NAME]`: where base credentials come from.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Where the credentials come from.
    #[serde(default)]
    pub kind: SourceKind,
    /// The MFA device (keychain and environment sources); when set, sessions need a code.
    pub mfa_serial: Option<String>,
    /// GetSessionToken lifetime (900 s to 36 h; default 12 h; keychain and environment sources).
    #[serde(default, with = "humantime_serde")]
    pub session_duration: Option<Duration>,
    /// Region for STS calls made with this source.
    pub region: Option<String>,
}

impl SourceConfig {
    /// The session lifetime to ask for.
    pub fn session_duration(&self) -> Duration {
        self.session_duration.unwrap_or(DEFAULT_SESSION_DURATION)
    }
}

/// `[profiles.NAME]`: a managed profile.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileConfig {
    /// A source name, or another profile's name (role chaining).
    pub source: String,
    /// The role to assume; absent means a plain session-token profile.
    pub role_arn: Option<String>,
    /// Role session lifetime (900 s to 12 h, 1 h when chained; default 1 h).
    #[serde(default, with = "humantime_serde")]
    pub duration: Option<Duration>,
    /// Region written with the profile and exported by `exec`/`export`.
    pub region: Option<String>,
    /// External id for AssumeRole.
    pub external_id: Option<String>,
    /// Role session name; default derived from the OS user.
    pub session_name: Option<String>,
}

/// GetSessionToken's default lifetime.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(12 * 3600);
/// AssumeRole's default lifetime.
pub const DEFAULT_ROLE_DURATION: Duration = Duration::from_secs(3600);
const MIN_DURATION: Duration = Duration::from_secs(900);
const MAX_SESSION_DURATION: Duration = Duration::from_secs(36 * 3600);
const MAX_ROLE_DURATION: Duration = Duration::from_secs(12 * 3600);
const MAX_CHAINED_DURATION: Duration = Duration::from_secs(3600);

/// What a profile's credentials are made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Upstream<'a> {
    /// A source's session.
    Source(&'a str),
    /// Another profile's role credentials (role chaining).
    Profile(&'a str),
}

impl Config {
    /// Reads and validates the config file; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<Config, Error> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(Error::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// Parses and validates config text; `path` is used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, Error> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|s| line_col(text, s.start))
                .map_or((None, None), |(l, c)| (Some(l), Some(c)));
            let key = e.span().and_then(|s| key_at(text, s.start));
            let message = e.message().trim();
            Error::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: match key {
                    Some(k) if !message.contains(&k) => format!("{k}: {message}"),
                    _ => message.to_string(),
                },
            }
        })?;
        config.validate().map_err(|(key, message)| {
            let parts: Vec<&str> = key.split('\u{0}').collect();
            Error::Invalid {
                path: path.to_path_buf(),
                line: locate(text, &parts),
                key: key.replace('\u{0}', "."),
                message,
            }
        })?;
        Ok(config)
    }

    /// What `profile` is made from, or `None` when it names nothing known.
    pub fn upstream(&self, profile: &str) -> Option<Upstream<'_>> {
        let p = self.profiles.get(profile)?;
        if self.sources.contains_key(&p.source) {
            Some(Upstream::Source(&p.source))
        } else if self.profiles.contains_key(&p.source) {
            Some(Upstream::Profile(&p.source))
        } else {
            None
        }
    }

    /// The source at the root of `profile`'s chain.
    pub fn root_source(&self, profile: &str) -> Option<&str> {
        let mut name = profile;
        for _ in 0..=self.profiles.len() {
            match self.upstream(name)? {
                Upstream::Source(s) => return Some(s),
                Upstream::Profile(p) => name = p,
            }
        }
        None
    }

    /// The role lifetime to ask for.
    pub fn role_duration(&self, profile: &ProfileConfig) -> Duration {
        profile.duration.unwrap_or(DEFAULT_ROLE_DURATION)
    }

    /// The region for STS calls and exported variables of `profile`: its own, else its
    /// chain's, else its source's.
    pub fn region(&self, profile: &str) -> Option<&str> {
        let mut name = profile;
        for _ in 0..=self.profiles.len() {
            let p = self.profiles.get(name)?;
            if let Some(r) = &p.region {
                return Some(r);
            }
            match self.upstream(name)? {
                Upstream::Source(s) => return self.sources.get(s)?.region.as_deref(),
                Upstream::Profile(up) => name = up,
            }
        }
        None
    }

    /// The profiles in an order where every profile comes after the one it assumes from.
    pub fn ordered_profiles(&self) -> Vec<&str> {
        let mut done: BTreeSet<&str> = BTreeSet::new();
        let mut out = Vec::with_capacity(self.profiles.len());
        fn visit<'a>(
            c: &'a Config,
            n: &'a str,
            done: &mut BTreeSet<&'a str>,
            out: &mut Vec<&'a str>,
        ) {
            if !done.insert(n) {
                return;
            }
            if let Some(Upstream::Profile(up)) = c.upstream(n) {
                visit(c, up, done, out);
            }
            out.push(n);
        }
        for name in self.profiles.keys() {
            visit(self, name, &mut done, &mut out);
        }
        out
    }

    /// Checks everything that TOML types cannot: names, ranges (STS limits), references,
    /// cycles. Returns the dotted key and the message.
    fn validate(&self) -> Result<(), (String, String)> {
        let s = &self.settings;
        let key = |parts: &[&str]| parts.join("\u{0}");
        if !(1..=64).contains(&s.max_concurrent_refreshes) {
            return Err((
                key(&["settings", "max_concurrent_refreshes"]),
                "must be from 1 to 64".into(),
            ));
        }
        if !(1..=10).contains(&s.sts_max_attempts) {
            return Err((
                key(&["settings", "sts_max_attempts"]),
                "must be from 1 to 10".into(),
            ));
        }
        if s.sts_timeout < Duration::from_millis(100) || s.sts_timeout > Duration::from_secs(300) {
            return Err((
                key(&["settings", "sts_timeout"]),
                "must be from 100ms to 5m".into(),
            ));
        }
        for (name, src) in &self.sources {
            check_name(name).map_err(|m| (key(&["sources", name]), m))?;
            if !src.kind.has_sessions() {
                let field = if src.mfa_serial.is_some() {
                    Some("mfa_serial")
                } else if src.session_duration.is_some() {
                    Some("session_duration")
                } else {
                    None
                };
                if let Some(field) = field {
                    return Err((
                        key(&["sources", name, field]),
                        format!(
                            "only applies to sources of kind \"keychain\" or \"environment\"; \
                             a {:?} source's credentials are already temporary (no session, no \
                             MFA): remove {field}, or change kind",
                            src.kind.as_str()
                        ),
                    ));
                }
            }
            if let Some(serial) = &src.mfa_serial {
                check_mfa_serial(serial).map_err(|m| (key(&["sources", name, "mfa_serial"]), m))?;
            }
            if let Some(d) = src.session_duration {
                check_range(d, MIN_DURATION, MAX_SESSION_DURATION)
                    .map_err(|m| (key(&["sources", name, "session_duration"]), m))?;
            }
            if let Some(r) = &src.region {
                check_region(r).map_err(|m| (key(&["sources", name, "region"]), m))?;
            }
        }
        for (name, p) in &self.profiles {
            check_name(name).map_err(|m| (key(&["profiles", name]), m))?;
            if name == "default" {
                return Err((
                    key(&["profiles", name]),
                    "\"default\" is reserved for the active profile; pick another name and \
                     run `rolecall use NAME`"
                        .into(),
                ));
            }
            let k = |field: &str| key(&["profiles", name, field]);
            match (
                self.sources.contains_key(&p.source),
                self.profiles.contains_key(&p.source),
            ) {
                (true, true) => {
                    return Err((
                        k("source"),
                        format!("{:?} is both a source and a profile; rename one", p.source),
                    ));
                }
                (false, false) => {
                    return Err((
                        k("source"),
                        format!(
                            "{:?} is neither a source nor a profile; known sources: {}",
                            p.source,
                            list(self.sources.keys())
                        ),
                    ));
                }
                _ => {}
            }
            let chained = self.profiles.contains_key(&p.source);
            if chained && p.role_arn.is_none() {
                return Err((
                    k("role_arn"),
                    format!(
                        "profile assumes from profile {:?}, so it needs a role_arn",
                        p.source
                    ),
                ));
            }
            if let Some(arn) = &p.role_arn {
                check_role_arn(arn).map_err(|m| (k("role_arn"), m))?;
            } else if p.duration.is_some() || p.external_id.is_some() || p.session_name.is_some() {
                let field = if p.duration.is_some() {
                    "duration"
                } else if p.external_id.is_some() {
                    "external_id"
                } else {
                    "session_name"
                };
                return Err((
                    k(field),
                    "only applies to role profiles (with role_arn); a session-token profile \
                     takes its lifetime from the source's session_duration"
                        .into(),
                ));
            }
            if let Some(d) = p.duration {
                let max = if chained {
                    MAX_CHAINED_DURATION
                } else {
                    MAX_ROLE_DURATION
                };
                check_range(d, MIN_DURATION, max).map_err(|m| {
                    let m = if chained {
                        format!("{m} (role chaining is limited to 1h)")
                    } else {
                        m
                    };
                    (k("duration"), m)
                })?;
            }
            if let Some(r) = &p.region {
                check_region(r).map_err(|m| (k("region"), m))?;
            }
            if let Some(x) = &p.external_id {
                check_chars(x, 2, 1224, "=,.@:/-").map_err(|m| (k("external_id"), m))?;
            }
            if let Some(x) = &p.session_name {
                check_chars(x, 2, 64, "=,.@-").map_err(|m| (k("session_name"), m))?;
            }
            if self.root_source(name).is_none() {
                return Err((
                    k("source"),
                    "profiles assume from each other in a cycle".into(),
                ));
            }
            let lifetime = match &p.role_arn {
                Some(_) => self.role_duration(p),
                None => self
                    .sources
                    .get(&p.source)
                    .map(SourceConfig::session_duration)
                    .unwrap_or_default(),
            };
            if s.refresh_before >= lifetime {
                return Err((
                    key(&["settings", "refresh_before"]),
                    format!(
                        "({}) must be shorter than the lifetime of profile {name:?} ({}), or it \
                         would be renewed on every run",
                        humantime::format_duration(s.refresh_before),
                        humantime::format_duration(lifetime)
                    ),
                ));
            }
        }
        if let Some(active) = &s.active
            && !self.profiles.contains_key(active)
        {
            return Err((
                key(&["settings", "active"]),
                format!(
                    "{active:?} is not a profile; known profiles: {}",
                    list(self.profiles.keys())
                ),
            ));
        }
        Ok(())
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// Checks a source or profile name: it becomes an INI section name and a keychain account.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.@+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid name: use 1 to 64 letters, digits and - _ . @ +"
        ))
    }
}

fn check_range(d: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if d < min || d > max {
        Err(format!(
            "{} is out of range: must be from {} to {}",
            humantime::format_duration(d),
            humantime::format_duration(min),
            humantime::format_duration(max)
        ))
    } else {
        Ok(())
    }
}

fn check_region(r: &str) -> Result<(), String> {
    let ok = r.len() >= 3
        && r.len() <= 32
        && r.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!("{r:?} is not a region name like \"eu-west-1\""))
    }
}

fn check_chars(v: &str, min: usize, max: usize, extra: &str) -> Result<(), String> {
    let ok = (min..=max).contains(&v.len())
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '+' || extra.contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{v:?} must be {min} to {max} characters of letters, digits and _+{extra}"
        ))
    }
}

fn arn_parts(arn: &str) -> Option<(&str, &str, &str)> {
    // arn:PARTITION:iam::ACCOUNT:RESOURCE
    let mut it = arn.splitn(6, ':');
    let (a, partition, service, region, account, resource) = (
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    );
    let ok = a == "arn"
        && partition.starts_with("aws")
        && service == "iam"
        && region.is_empty()
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit());
    ok.then_some((partition, account, resource))
}

/// Checks a role ARN's shape (`arn:aws:iam::123456789012:role/Name`).
pub fn check_role_arn(arn: &str) -> Result<(), String> {
    match arn_parts(arn) {
        Some((_, _, res)) if res.starts_with("role/") && res.len() > 5 => Ok(()),
        _ => Err(format!(
            "{arn:?} is not a role ARN like \"arn:aws:iam::123456789012:role/Admin\""
        )),
    }
}

/// Checks an MFA device id: a virtual device ARN or a hardware serial number.
pub fn check_mfa_serial(serial: &str) -> Result<(), String> {
    let arn_ok = matches!(arn_parts(serial), Some((_, _, res)) if
        (res.starts_with("mfa/") || res.starts_with("u2f/")) && res.len() > 4);
    let hw_ok =
        (9..=256).contains(&serial.len()) && serial.chars().all(|c| c.is_ascii_alphanumeric());
    if arn_ok || hw_ok {
        Ok(())
    } else {
        Err(format!(
            "{serial:?} is not an MFA device like \"arn:aws:iam::123456789012:mfa/alice\" \
             or a hardware serial number"
        ))
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// The dotted key written on the line holding `offset` (`settings.refresh_before`), if that
/// line is a `key = value` line.
fn key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let (key, _) = line.split_once('=')?;
    let key = key.trim().trim_matches('"');
    let table = text[..start]
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(['[', ']']).trim().to_string());
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}

/// The 1-based line where the key at `path` is written, found with toml_edit's spans.
fn locate(text: &str, path: &[&str]) -> Option<usize> {
    let doc = toml_edit::Document::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let (last, parents) = path.split_last()?;
    let mut fallback = None;
    for p in parents {
        let (key, item) = table.get_key_value(p)?;
        fallback = key.span().or_else(|| item.span()).or(fallback);
        table = item.as_table_like()?;
    }
    let span = match table.get_key_value(last) {
        Some((key, item)) => key.span().or_else(|| item.span()),
        None => fallback,
    }?;
    Some(line_col(text, span.start).0)
}

/// Edits the config file in place, keeping comments and layout, and writes it atomically.
pub struct ConfigEditor {
    path: PathBuf,
    doc: toml_edit::DocumentMut,
}

impl ConfigEditor {
    /// Opens the config file for editing (a missing file starts empty).
    pub fn open(path: &Path) -> Result<ConfigEditor, Error> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(Error::Read {
                    path: path.to_path_buf(),
                    source,
                });
            }
        };
        // validate first, so that an edit never builds on a broken file
        Config::parse(&text, path)?;
        let doc = text
            .parse::<toml_edit::DocumentMut>()
            .map_err(|e| Error::Syntax {
                path: path.to_path_buf(),
                line: None,
                column: None,
                message: e.message().to_string(),
            })?;
        Ok(ConfigEditor {
            path: path.to_path_buf(),
            doc,
        })
    }

    fn table(&mut self, section: &str) -> &mut toml_edit::Table {
        let root = self.doc.as_table_mut();
        let item = root.entry(section).or_insert_with(|| {
            let mut t = toml_edit::Table::new();
            t.set_implicit(true);
            toml_edit::Item::Table(t)
        });
        if !item.is_table() {
            // the file was validated, so `section` can only be an inline table here
            *item = toml_edit::Item::Table(toml_edit::Table::new());
        }
        item.as_table_mut().expect("just made sure it is a table")
    }

    /// Sets `[section.name]` to the given key/values (string values), replacing the keys given
    /// and keeping others.
    pub fn set_entry(&mut self, section: &str, name: &str, values: &[(&str, Option<String>)]) {
        let t = self.table(section);
        if !t.contains_key(name) {
            t.insert(name, toml_edit::Item::Table(toml_edit::Table::new()));
        }
        if let Some(entry) = t.get_mut(name).and_then(toml_edit::Item::as_table_mut) {
            for (k, v) in values {
                match v {
                    Some(v) => {
                        entry.insert(k, toml_edit::value(v.as_str()));
                    }
                    None => {
                        entry.remove(k);
                    }
                }
            }
        }
    }

    /// Whether `[section.name]` exists.
    pub fn has_entry(&self, section: &str, name: &str) -> bool {
        self.doc.get(section).and_then(|s| s.get(name)).is_some()
    }

    /// Removes `[section.name]`; returns whether it existed.
    pub fn remove_entry(&mut self, section: &str, name: &str) -> bool {
        self.table(section).remove(name).is_some()
    }

    /// Sets or removes a `[settings]` key.
    pub fn set_setting(&mut self, key: &str, value: Option<&str>) {
        let t = self.table("settings");
        match value {
            Some(v) => {
                t.insert(key, toml_edit::value(v));
            }
            None => {
                t.remove(key);
            }
        }
    }

    /// Validates the edited text and writes it atomically; returns the new config.
    pub fn save(self) -> Result<Config, Error> {
        let text = self.doc.to_string();
        let config = Config::parse(&text, &self.path)?;
        write_atomic(&self.path, text.as_bytes()).map_err(|source| Error::Write {
            path: self.path.clone(),
            source,
        })?;
        Ok(config)
    }
}

fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".config.")
        .suffix(".tmp")
        .tempfile_in(dir)?;
    tmp.write_all(bytes)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

impl fmt::Display for Upstream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Source(s) => write!(f, "source {s}"),
            Upstream::Profile(p) => write!(f, "profile {p}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse_config;
    use rstest::rstest;

    const GOOD: &str = r#"
[settings]
refresh_before = "15m"
active = "dev-admin"

[sources.bastion]
mfa_serial = "arn:aws:iam::111111111111:mfa/alice"
session_duration = "12h"
region = "us-east-1"

[profiles.dev-admin]
source = "bastion"
role_arn = "arn:aws:iam::222222222222:role/Admin"
duration = "1h"
region = "eu-west-1"

[profiles.chained]
source = "dev-admin"
role_arn = "arn:aws:iam::333333333333:role/Deep"

[profiles.plain]
source = "bastion"
"#;

    #[test]
    fn parses_the_documented_schema() {
        let c = parse_config(GOOD).unwrap();
        assert_eq!(c.settings.refresh_before, Duration::from_secs(900));
        assert_eq!(c.settings.active.as_deref(), Some("dev-admin"));
        assert_eq!(c.upstream("chained"), Some(Upstream::Profile("dev-admin")));
        assert_eq!(c.root_source("chained"), Some("bastion"));
        assert_eq!(c.region("chained"), Some("eu-west-1"));
        assert_eq!(c.region("plain"), Some("us-east-1"));
        let order = c.ordered_profiles();
        let pos = |n| order.iter().position(|x| *x == n).unwrap();
        assert!(pos("dev-admin") < pos("chained"));
    }

    #[test]
    fn source_kinds_parse_with_keychain_as_default() {
        let c = parse_config(
            "[sources.a]\n[sources.ec2]\nkind = \"instance-profile\"\nregion = \"eu-west-1\"\n\
             [sources.env]\nkind = \"environment\"\nmfa_serial = \"arn:aws:iam::111111111111:mfa/al\"\n\
             session_duration = \"1h\"\n\
             [profiles.direct]\nsource = \"ec2\"\n",
        )
        .unwrap();
        assert_eq!(c.sources["a"].kind, SourceKind::Keychain);
        assert_eq!(c.sources["ec2"].kind, SourceKind::InstanceProfile);
        assert_eq!(c.sources["env"].kind, SourceKind::Environment);
        assert!(!SourceKind::InstanceProfile.has_sessions());
        assert_eq!(SourceKind::InstanceProfile.to_string(), "instance-profile");
    }

    #[test]
    fn empty_config_is_valid() {
        let c = parse_config("").unwrap();
        assert!(c.profiles.is_empty());
        assert_eq!(c.settings.refresh_before, Duration::from_secs(900));
    }

    #[rstest]
    #[case::unknown_key("[settings]\nrefresh_befor = \"1m\"\n", "2", "refresh_befor")]
    #[case::bad_duration("[settings]\nrefresh_before = \"soon\"\n", "2", "refresh_before")]
    #[case::unknown_source(
        "[profiles.a]\nsource = \"nope\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
        "2",
        "neither a source nor a profile"
    )]
    #[case::duration_too_long(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\nduration = \"13h\"\n",
        "5",
        "profiles.a.duration"
    )]
    #[case::chained_over_an_hour(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n[profiles.b]\nsource = \"a\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\nduration = \"2h\"\n",
        "8",
        "role chaining"
    )]
    #[case::session_too_short(
        "[sources.s]\nsession_duration = \"5m\"\n",
        "2",
        "sources.s.session_duration"
    )]
    #[case::bad_arn(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::22:role/A\"\n",
        "4",
        "not a role ARN"
    )]
    #[case::bad_mfa("[sources.s]\nmfa_serial = \"alice\"\n", "2", "not an MFA device")]
    #[case::active_unknown("[settings]\nactive = \"x\"\n", "2", "settings.active")]
    #[case::default_reserved("[sources.s]\n[profiles.default]\nsource = \"s\"\n", "2", "reserved")]
    #[case::cycle(
        "[sources.s]\n[profiles.a]\nsource = \"b\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n[profiles.b]\nsource = \"a\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\n",
        "",
        "cycle"
    )]
    #[case::refresh_before_too_long(
        "[settings]\nrefresh_before = \"2h\"\n[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n",
        "2",
        "must be shorter"
    )]
    #[case::not_toml("[settings\n", "1", "/cfg/config.toml:1")]
    #[case::no_concurrency(
        "[settings]\nmax_concurrent_refreshes = 0\n",
        "2",
        "settings.max_concurrent_refreshes: must be from 1 to 64"
    )]
    #[case::mfa_on_instance_profile(
        "[sources.ec2]\nkind = \"instance-profile\"\nmfa_serial = \"arn:aws:iam::111111111111:mfa/al\"\n",
        "3",
        "sources.ec2.mfa_serial: only applies to sources of kind \"keychain\" or \"environment\""
    )]
    #[case::session_duration_on_instance_profile(
        "[sources.ec2]\nkind = \"instance-profile\"\nsession_duration = \"1h\"\n",
        "3",
        "sources.ec2.session_duration"
    )]
    #[case::unknown_kind(
        "[sources.s]\nkind = \"vault\"\n",
        "2",
        "`keychain`, `instance-profile`, `environment`"
    )]
    fn invalid_config_names_file_line_and_key(
        #[case] text: &str,
        #[case] line: &str,
        #[case] needle: &str,
    ) {
        let err = parse_config(text).unwrap_err().to_string();
        assert!(err.starts_with("/cfg/config.toml"), "{err}");
        if !line.is_empty() {
            assert!(
                err.contains(&format!("config.toml:{line}")),
                "want line {line}: {err}"
            );
        }
        assert!(err.contains(needle), "want {needle:?}: {err}");
    }

    #[test]
    fn editor_keeps_comments_and_validates() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(
            &path,
            "# my settings\n[settings]\nrefresh_before = \"20m\" # keep\n",
        )
        .unwrap();
        let mut ed = ConfigEditor::open(&path).unwrap();
        ed.set_entry(
            "sources",
            "work",
            &[(
                "mfa_serial",
                Some("arn:aws:iam::111111111111:mfa/al".into()),
            )],
        );
        let c = ed.save().unwrap();
        assert!(c.sources.contains_key("work"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("# my settings\n[settings]\nrefresh_before = \"20m\" # keep\n"),
            "{text}"
        );
        assert!(text.contains("[sources.work]"), "{text}");

        let mut ed = ConfigEditor::open(&path).unwrap();
        ed.set_setting("active", Some("missing"));
        let err = ed.save().unwrap_err().to_string();
        assert!(err.contains("settings.active"), "{err}");
        // a refused edit leaves the file as it was
        assert!(!std::fs::read_to_string(&path).unwrap().contains("missing"));
    }

    #[test]
    fn paths_expand_tilde() {
        let p = Paths {
            home: PathBuf::from("/home/a"),
            config_file: PathBuf::new(),
            credentials_file_env: Some(PathBuf::from("/env/creds")),
            aws_config_file: PathBuf::new(),
            runtime_dir: PathBuf::new(),
            user_name: None,
        };
        let mut s = Settings::default();
        assert_eq!(p.credentials_file(&s), PathBuf::from("/env/creds"));
        s.credentials_file = Some("~/x/creds".into());
        assert_eq!(p.credentials_file(&s), PathBuf::from("/home/a/x/creds"));
    }
}
