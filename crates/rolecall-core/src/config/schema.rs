//! The typed config file ([`Config`] and its tables), loading it, the questions the engine
//! asks of it (upstream, region, order), and finding where in the text a problem is.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::Error;

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
    /// Renew when less than this lifetime remains (at least 1 minute, and shorter than every
    /// source's session). A profile whose whole lifetime is not longer than this is still
    /// accepted: the scheduler renews it at a fraction of its lifetime.
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
    /// Whether the tray app's Quit ends every session first (like "End all sessions" and
    /// `rolecall clear`); default false: credentials stay in the file after the app quits.
    pub end_sessions_on_quit: bool,
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
            end_sessions_on_quit: false,
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
    /// Role session name; default derived from the OS user. `{iam_user}` in it stands for the
    /// IAM user owning the root source's key.
    pub session_name: Option<String>,
    /// Another profile this one takes `session_name`, `external_id`, `duration` and `region`
    /// from when it does not set them (the first three only for a role profile); the other
    /// profile may extend a third, up to [`MAX_EXTENDS_DEPTH`] links.
    pub extends: Option<String>,
    /// Renew this profile when less than this lifetime remains; default
    /// `settings.refresh_before` (see [`Config::refresh_before`]).
    #[serde(default, with = "humantime_serde")]
    pub refresh_before: Option<Duration>,
    /// The fields taken through `extends`, each with the profile written in (for messages).
    #[serde(skip)]
    pub inherited: BTreeMap<&'static str, String>,
}

/// The longest `extends` chain accepted (links from a profile to the last one it extends).
pub const MAX_EXTENDS_DEPTH: usize = 5;

/// GetSessionToken's default lifetime.
pub const DEFAULT_SESSION_DURATION: Duration = Duration::from_secs(12 * 3600);
/// AssumeRole's default lifetime.
pub const DEFAULT_ROLE_DURATION: Duration = Duration::from_secs(3600);

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
            // a table written twice (appending README's `[settings]` block to a file that has
            // one): toml names no key, so say which table and where the first one is
            let twice = e.span().and_then(|s| table_twice(text, s.start));
            let message = match twice {
                Some(m) if message.starts_with("duplicate key") => m,
                // humantime_serde only says "expected a duration": show how one is written
                _ if message.contains("expected a duration") => format!(
                    "{message}: write a duration as a quoted number with a unit, e.g. \
                     duration = \"1h\" (or \"15m\", \"12h\", \"1h30m\")"
                ),
                _ => message.to_string(),
            };
            Error::Syntax {
                path: path.to_path_buf(),
                line,
                column,
                message: match key {
                    Some(k) if !message.contains(&k) => format!("{k}: {message}"),
                    _ => message,
                },
            }
        })?;
        let mut config = config;
        config
            .validate_extends()
            .and_then(|()| {
                config.apply_extends();
                config.validate()
            })
            .map_err(|(key, message)| {
                // a value taken through `extends` is reported at the `extends` line that
                // brought it in, naming where it is written
                let (key, message) = config.blame_extends(key, message);
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

    /// Fills each profile's unset `session_name`, `external_id`, `duration` (role profiles
    /// only) and `region` from the profiles it extends, nearest first, and records where each
    /// came from. Runs after [`Config::validate_extends`], so every chain ends.
    fn apply_extends(&mut self) {
        let names: Vec<String> = self.profiles.keys().cloned().collect();
        for name in names {
            let mut chain = Vec::new();
            let mut next = self.profiles[&name].extends.clone();
            while let Some(parent) = next {
                if chain.contains(&parent) || chain.len() > MAX_EXTENDS_DEPTH {
                    break;
                }
                next = self.profiles.get(&parent).and_then(|p| p.extends.clone());
                chain.push(parent);
            }
            for parent in chain {
                let Some(from) = self.profiles.get(&parent).cloned() else {
                    break;
                };
                let Some(p) = self.profiles.get_mut(&name) else {
                    break;
                };
                let role = p.role_arn.is_some();
                let mut take = |field: &'static str, mine: bool, theirs: bool| {
                    let yes = !mine && theirs;
                    if yes {
                        p.inherited.insert(field, parent.clone());
                    }
                    yes
                };
                // (a field is taken from the nearest profile that sets it: once set, `mine`)
                let region = take("region", p.region.is_some(), from.region.is_some());
                let session_name = role
                    && take(
                        "session_name",
                        p.session_name.is_some(),
                        from.session_name.is_some(),
                    );
                let external_id = role
                    && take(
                        "external_id",
                        p.external_id.is_some(),
                        from.external_id.is_some(),
                    );
                let duration =
                    role && take("duration", p.duration.is_some(), from.duration.is_some());
                if region {
                    p.region = from.region;
                }
                if session_name {
                    p.session_name = from.session_name;
                }
                if external_id {
                    p.external_id = from.external_id;
                }
                if duration {
                    p.duration = from.duration;
                }
            }
        }
    }

    /// A validation error about a value a profile took through `extends` moves to that
    /// profile's `extends` key and names the profile the value is written in.
    fn blame_extends(&self, key: String, message: String) -> (String, String) {
        let parts: Vec<&str> = key.split('\u{0}').collect();
        if let ["profiles", name, field] = parts[..]
            && let Some(from) = self.profiles.get(name).and_then(|p| p.inherited.get(field))
        {
            return (
                ["profiles", name, "extends"].join("\u{0}"),
                format!("{field} taken from profile {from:?}: {message}"),
            );
        }
        (key, message)
    }

    /// The `refresh_before` of `profile`: its own, else `settings.refresh_before`.
    pub fn refresh_before(&self, profile: &str) -> Duration {
        self.profiles
            .get(profile)
            .and_then(|p| p.refresh_before)
            .unwrap_or(self.settings.refresh_before)
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
}

impl fmt::Display for Upstream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Upstream::Source(s) => write!(f, "source {s}"),
            Upstream::Profile(p) => write!(f, "profile {p}"),
        }
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

/// When the line at `offset` is a table header (`[settings]`) that an earlier line already
/// opened: what to say about it.
fn table_twice(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let header = text[start..].lines().next()?.trim();
    let header = header.split('#').next()?.trim();
    if !header.starts_with('[') || header.starts_with("[[") {
        return None;
    }
    let first = text[..start]
        .lines()
        .position(|l| l.split('#').next().map(str::trim) == Some(header))?;
    Some(format!(
        "table {header} is written twice (first at line {}); merge the two into one",
        first + 1
    ))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse_config;

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
        assert!(!c.settings.end_sessions_on_quit);
        let c = parse_config("[settings]\nend_sessions_on_quit = true\n").unwrap();
        assert!(c.settings.end_sessions_on_quit);
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
}
