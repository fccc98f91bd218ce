//! Reading the AWS config file (`~/.aws/config`, `$AWS_CONFIG_FILE`) and the role settings of
//! the credentials file: never writing them (the engine has `credfile` comment out or take
//! over what [`plan_import`] says, see [`ROLE_KEYS`]).
//!
//! Role profiles may sit in either file (awscli_bastion keeps `role_arn`/`source_profile` in
//! `~/.aws/credentials`). The AWS CLI merges both files' sections of one name key by key, the
//! credentials file's value winning (`Session.full_config` in botocore's `session.py`: each
//! credentials-file profile `update`s the config file's); [`merge`] does the same.
//!
//! Two uses: `rolecall import` turns its role profiles into Rolecall profiles ([`plan_import`]),
//! and `rolecall doctor` finds profiles whose role settings would shadow a managed section of
//! the same name ([`shadowing`]): botocore prefers `role_arn`/`source_profile`/
//! `credential_process` in the config file over keys in the credentials file.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{self, Config};

/// A profile of the AWS config file, with the keys Rolecall cares about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AwsProfile {
    /// `role_arn`.
    pub role_arn: Option<String>,
    /// `source_profile`.
    pub source_profile: Option<String>,
    /// `credential_source`.
    pub credential_source: Option<String>,
    /// `credential_process`.
    pub credential_process: Option<String>,
    /// `mfa_serial`.
    pub mfa_serial: Option<String>,
    /// `duration_seconds`.
    pub duration_seconds: Option<String>,
    /// `region`.
    pub region: Option<String>,
    /// `external_id`.
    pub external_id: Option<String>,
    /// `role_session_name`.
    pub role_session_name: Option<String>,
    /// `session_token_duration` (aws-runas: the MFA session's lifetime, a Go duration).
    pub session_token_duration: Option<String>,
    /// `credentials_duration` (aws-runas: the role credentials' lifetime, a Go duration).
    pub credentials_duration: Option<String>,
    /// `sso_start_url` or `sso_session`.
    pub sso: bool,
    /// It carries rolecall's marker (`x_rolecall_managed`): a section rolecall wrote.
    pub managed: bool,
    /// Its section in the credentials file holds some of [`ROLE_KEYS`] (then `import` takes
    /// that section over, see [`ImportPlan::take_over`]).
    pub role_in_credentials_file: bool,
}

/// The keys [`parse_credentials`] reads from the credentials file: settings, never a secret.
const CREDENTIALS_FILE_KEYS: &[&str] = &[
    "role_arn",
    "source_profile",
    "credential_source",
    "credential_process",
    "mfa_serial",
    "duration_seconds",
    "region",
    "external_id",
    "role_session_name",
    "session_token_duration",
    "credentials_duration",
    "sso_start_url",
    "sso_session",
];

/// The keys of a role profile that `rolecall import` moves into Rolecall's config, and then
/// comments out in `~/.aws/config` (issue 14): while `role_arn` and `source_profile` are
/// there, botocore and the SDKs assume the role themselves from the source profile's keys
/// (gone from the credentials file once `keys import --scrub` moved them) instead of using
/// Rolecall's credentials in the credentials file. The others only matter beside them.
/// `region`, `output` and every other setting stay as they are.
pub const ROLE_KEYS: &[&str] = &[
    "role_arn",
    "source_profile",
    "mfa_serial",
    "duration_seconds",
    "external_id",
    "role_session_name",
    "session_token_duration",
    "credentials_duration",
];

/// Parses the role settings of the credentials file's profiles (`[NAME]`), through the
/// credentials-file scanner, which copies out only [`CREDENTIALS_FILE_KEYS`] (no secret).
pub fn parse_credentials(text: &str) -> BTreeMap<String, AwsProfile> {
    use crate::credfile::{FileKind, settings_of};
    let mut out = BTreeMap::new();
    for section in settings_of(FileKind::Credentials, text, CREDENTIALS_FILE_KEYS) {
        let get = |k: &str| {
            section
                .values
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.clone())
        };
        let role_in_credentials_file = ROLE_KEYS.iter().any(|k| get(k).is_some());
        out.insert(
            section.name.clone(),
            AwsProfile {
                role_arn: get("role_arn"),
                source_profile: get("source_profile"),
                credential_source: get("credential_source"),
                credential_process: get("credential_process"),
                mfa_serial: get("mfa_serial"),
                duration_seconds: get("duration_seconds"),
                region: get("region"),
                external_id: get("external_id"),
                role_session_name: get("role_session_name"),
                session_token_duration: get("session_token_duration"),
                credentials_duration: get("credentials_duration"),
                sso: get("sso_start_url").is_some() || get("sso_session").is_some(),
                managed: section.managed,
                role_in_credentials_file,
            },
        );
    }
    out
}

/// Both files' profiles as the AWS CLI sees them: a profile in both gets each key from the
/// credentials file when it is there, else from the config file (botocore's
/// `Session.full_config`).
pub fn merge(
    config: BTreeMap<String, AwsProfile>,
    credentials: BTreeMap<String, AwsProfile>,
) -> BTreeMap<String, AwsProfile> {
    let mut out = config;
    for (name, c) in credentials {
        let Some(p) = out.get_mut(&name) else {
            out.insert(name, c);
            continue;
        };
        fn over(into: &mut Option<String>, from: Option<String>) {
            if from.is_some() {
                *into = from;
            }
        }
        over(&mut p.role_arn, c.role_arn);
        over(&mut p.source_profile, c.source_profile);
        over(&mut p.credential_source, c.credential_source);
        over(&mut p.credential_process, c.credential_process);
        over(&mut p.mfa_serial, c.mfa_serial);
        over(&mut p.duration_seconds, c.duration_seconds);
        over(&mut p.region, c.region);
        over(&mut p.external_id, c.external_id);
        over(&mut p.role_session_name, c.role_session_name);
        over(&mut p.session_token_duration, c.session_token_duration);
        over(&mut p.credentials_duration, c.credentials_duration);
        p.sso |= c.sso;
        p.role_in_credentials_file = c.role_in_credentials_file;
    }
    out
}

/// A Go `time.Duration` string as aws-runas reads `session_token_duration` and
/// `credentials_duration` (`8h`, `1h30m`, `90m`, `1.5h`, `3600s`); `None` when it is not one
/// or is negative.
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim().strip_prefix('+').unwrap_or(text.trim());
    if rest == "0" {
        return Some(Duration::ZERO);
    }
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" | "μs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total += number * seconds;
    }
    (total.is_finite() && total < 1e12).then(|| Duration::from_secs_f64(total))
}

/// Parses the AWS config file's profiles (`[default]` and `[profile NAME]`).
pub fn parse(text: &str) -> Result<BTreeMap<String, AwsProfile>, String> {
    let ini = ini::Ini::load_from_str_noescape(text).map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for (section, props) in ini.iter() {
        let Some(section) = section else { continue };
        let name = match section.trim() {
            "default" => "default".to_string(),
            s => match s.strip_prefix("profile") {
                Some(rest) if rest.starts_with(char::is_whitespace) => rest.trim().to_string(),
                _ => continue, // sso-session, services, …
            },
        };
        let get = |k: &str| {
            props
                .get(k)
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        out.insert(
            name,
            AwsProfile {
                role_arn: get("role_arn"),
                source_profile: get("source_profile"),
                credential_source: get("credential_source"),
                credential_process: get("credential_process"),
                mfa_serial: get("mfa_serial"),
                duration_seconds: get("duration_seconds"),
                region: get("region"),
                external_id: get("external_id"),
                role_session_name: get("role_session_name"),
                session_token_duration: get("session_token_duration"),
                credentials_duration: get("credentials_duration"),
                sso: get("sso_start_url").is_some() || get("sso_session").is_some(),
                managed: props.get(crate::credfile::MANAGED_KEY).is_some(),
                role_in_credentials_file: false,
            },
        );
    }
    Ok(out)
}

/// A source to add by `rolecall import`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSource {
    /// Its name (the `source_profile` it came from).
    pub name: String,
    /// Its MFA device.
    pub mfa_serial: Option<String>,
    /// Its region.
    pub region: Option<String>,
    /// Its MFA session's lifetime (`session_token_duration`).
    pub session_duration: Option<Duration>,
}

/// A profile to add by `rolecall import`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewProfile {
    /// Its name.
    pub name: String,
    /// Source or profile it assumes from.
    pub source: String,
    /// The role.
    pub role_arn: String,
    /// Lifetime (`duration_seconds`).
    pub duration: Option<Duration>,
    /// Region.
    pub region: Option<String>,
    /// External id.
    pub external_id: Option<String>,
    /// Role session name.
    pub session_name: Option<String>,
}

/// What `rolecall import` would do.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImportPlan {
    /// Sources to add.
    pub sources: Vec<NewSource>,
    /// Profiles to add.
    pub profiles: Vec<NewProfile>,
    /// Profiles left out, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Profiles imported with a setting other than the one they had, with what and why.
    pub changed: Vec<(String, String)>,
    /// Profiles of the AWS config file whose [`ROLE_KEYS`] are to be commented out, so that
    /// Rolecall's credentials for them are used: the imported ones, and Rolecall profiles that
    /// still have a role there (from an import before this was done).
    pub unshadow: Vec<String>,
    /// Sections of the credentials file to take over (those of [`Self::unshadow`] that hold
    /// role keys there): their [`ROLE_KEYS`] become comments and Rolecall's marker goes in,
    /// so the next refresh writes the profile's credentials there.
    pub take_over: Vec<String>,
    /// Attributes of imported profiles that were not carried over, with the value and why
    /// (profile, text).
    pub unmapped: Vec<(String, String)>,
}

/// Plans the import of `aws`'s role profiles (both files, [`merge`]d) into `existing`.
/// Profiles whose `source_profile` is itself a role profile become chained profiles; the
/// others get a source named after their `source_profile`, whose key `rolecall keys import`
/// then copies. A `source_profile` that is only a session of another profile's key (no
/// `role_arn`, but a `source_profile` of its own: awscli_bastion's `[bastion-sts]`, whose
/// `credential_process` makes the MFA session) gives a source named after the profile
/// holding the key, with the session profile's `mfa_serial` and `session_token_duration`.
///
/// Attributes: `duration_seconds` (the AWS CLI's) or else `credentials_duration` (aws-runas's)
/// become the profile's `duration`; `session_token_duration` (aws-runas's) the source's
/// `session_duration`; `mfa_serial` the source's (the profile's own, else the source
/// profile's, as aws-runas looks it up); `region`, `external_id`, `role_session_name` the
/// profile's. aws-runas reads its two durations from the profile, else its source profile,
/// else `[default]`; so does this. A value Rolecall's config would refuse is left out and
/// listed in [`ImportPlan::unmapped`] with the reason.
pub fn plan_import(aws: &BTreeMap<String, AwsProfile>, existing: &Config) -> ImportPlan {
    let mut plan = ImportPlan::default();
    let refresh_before = existing.settings.refresh_before;
    for (name, p) in aws {
        let skip = |why: &str| (name.clone(), why.to_string());
        let Some(role_arn) = &p.role_arn else {
            if p.managed {
                continue; // rolecall's own
            }
            if p.sso {
                plan.skipped.push(skip(
                    "an IAM Identity Center (SSO) profile, which Rolecall cannot renew yet; \
                     left as it is, the AWS CLI keeps using it",
                ));
            } else if p.credential_process.is_some() {
                let users: Vec<&str> = aws
                    .iter()
                    .filter(|(_, q)| {
                        q.role_arn.is_some() && q.source_profile.as_deref() == Some(name)
                    })
                    .map(|(n, _)| n.as_str())
                    .collect();
                let why = match (&p.source_profile, users.is_empty()) {
                    (Some(key), false) => format!(
                        "gets its credentials from credential_process, not from a role; left as \
                         it is (the profiles that assumed from it, {}, now assume from source \
                         {key}, whose MFA sessions Rolecall makes itself)",
                        users.join(", ")
                    ),
                    _ => "gets its credentials from credential_process, not from a role; left \
                          as it is"
                        .to_string(),
                };
                plan.skipped.push((name.clone(), why));
            }
            continue;
        };
        if name == "default" {
            plan.skipped.push(skip(
                "\"default\" is reserved for `rolecall use`; rename it",
            ));
            continue;
        }
        if existing.profiles.contains_key(name) {
            plan.skipped.push(skip("already a Rolecall profile"));
            plan.unshadow.push(name.clone());
            if p.role_in_credentials_file {
                plan.take_over.push(name.clone());
            }
            continue;
        }
        if let Err(e) = config::check_name(name) {
            plan.skipped.push((name.clone(), e));
            continue;
        }
        let Some(via) = &p.source_profile else {
            let why = match &p.credential_source {
                Some(cs) => format!("credential_source = {cs} is not supported yet"),
                None => "has role_arn but no source_profile".into(),
            };
            plan.skipped.push((name.clone(), why));
            continue;
        };
        if let Err(e) = config::check_role_arn(role_arn) {
            plan.skipped.push((name.clone(), e));
            continue;
        }
        let via_conf = aws.get(via);
        let chained = via_conf.is_some_and(|s| s.role_arn.is_some());
        // a session profile between the role and the key (awscli_bastion's [bastion-sts])
        let hop = via_conf
            .filter(|s| !chained && !s.sso && s.source_profile.as_deref().is_some_and(|k| k != via))
            .and_then(|s| s.source_profile.clone());
        let src = hop.clone().unwrap_or_else(|| via.clone());
        let src_conf = aws.get(&src);
        if !chained && (via_conf.is_some_and(|s| s.sso) || src_conf.is_some_and(|s| s.sso)) {
            plan.skipped.push((
                name.clone(),
                format!(
                    "its source_profile {via} is an IAM Identity Center (SSO) profile, which \
                     Rolecall cannot use as a source yet; left as it is"
                ),
            ));
            continue;
        }
        if !chained && existing.profiles.contains_key(&src) {
            plan.skipped
                .push(skip("its source_profile is a Rolecall profile, not a key"));
            continue;
        }
        // aws-runas's lookup: the profile, its source profile(s), then [default]
        let lookup = |get: &dyn Fn(&AwsProfile) -> Option<String>| {
            std::iter::once(Some(p))
                .chain([via_conf, hop.as_ref().and(src_conf), aws.get("default")])
                .flatten()
                .find_map(get)
        };
        let mfa_serial = std::iter::once(Some(p))
            .chain([via_conf, hop.as_ref().and(src_conf)])
            .flatten()
            .find_map(|q| q.mfa_serial.clone());
        let session_duration = if chained {
            None
        } else {
            lookup(&|q| q.session_token_duration.clone()).and_then(|text| {
                let d = parse_go_duration(&text)
                    .ok_or_else(|| "is not a duration like \"8h\" or \"1h30m\"".to_string());
                match d.and_then(|d| {
                    config::import_checks::session_duration(d, refresh_before).map(|()| d)
                }) {
                    Ok(d) => Some(d),
                    Err(why) => {
                        plan.unmapped.push((
                            name.clone(),
                            format!(
                                "session_token_duration = {text}: {why}; source {src} keeps \
                                 the default MFA session lifetime (12h)"
                            ),
                        ));
                        None
                    }
                }
            })
        };
        if hop.is_some() {
            plan.changed.push((
                name.clone(),
                format!(
                    "its source_profile {via} is a session made from the key of [{src}]: it \
                     assumes from source {src}, whose MFA sessions Rolecall makes itself{}",
                    mfa_serial
                        .as_deref()
                        .map(|m| format!(" (MFA {m}, from [{via}])"))
                        .unwrap_or_default()
                ),
            ));
        }
        if !chained
            && !existing.sources.contains_key(&src)
            && !plan.sources.iter().any(|s| s.name == src)
        {
            if let Err(e) = config::check_name(&src) {
                plan.skipped.push((name.clone(), e));
                continue;
            }
            plan.sources.push(NewSource {
                name: src.clone(),
                mfa_serial: mfa_serial.clone(),
                region: src_conf.and_then(|s| s.region.clone()),
                session_duration,
            });
        } else if !chained {
            // A source has one MFA device: the one it already has (from Rolecall's config, or
            // from the profile imported first) wins; say so when this profile had another.
            let (source_mfa, kept_duration, from) =
                match plan.sources.iter().find(|s| s.name == src) {
                    Some(new) => (
                        new.mfa_serial.clone(),
                        new.session_duration,
                        "imported first",
                    ),
                    None => {
                        let s = existing.sources.get(&src);
                        (
                            s.and_then(|s| s.mfa_serial.clone()),
                            s.and_then(|s| s.session_duration),
                            "in Rolecall's config",
                        )
                    }
                };
            if let Some(note) = mfa_note(&src, mfa_serial.as_deref(), source_mfa.as_deref(), from) {
                plan.changed.push((name.clone(), note));
            }
            if let Some(d) = session_duration
                && kept_duration != Some(d)
            {
                plan.unmapped.push((
                    name.clone(),
                    format!(
                        "session_token_duration = {}: source {src} ({from}) already has {}; \
                         a source has one MFA session lifetime",
                        config::format_duration(d),
                        kept_duration
                            .map(config::format_duration)
                            .unwrap_or_else(|| "the default (12h)".into())
                    ),
                ));
            }
        }
        let duration = role_duration(
            name,
            p,
            lookup(&|q| q.credentials_duration.clone()).as_deref(),
            chained,
            &mut plan.unmapped,
        );
        let mut checked =
            |key: &str, value: &Option<String>, check: fn(&str) -> Result<(), String>| {
                let v = value.as_ref()?;
                match check(v) {
                    Ok(()) => Some(v.clone()),
                    Err(why) => {
                        plan.unmapped
                            .push((name.clone(), format!("{key} = {v}: {why}")));
                        None
                    }
                }
            };
        let region = checked("region", &p.region, config::import_checks::region);
        let external_id = checked(
            "external_id",
            &p.external_id,
            config::import_checks::external_id,
        );
        let session_name = checked(
            "role_session_name",
            &p.role_session_name,
            config::import_checks::session_name,
        );
        plan.unshadow.push(name.clone());
        if p.role_in_credentials_file {
            plan.take_over.push(name.clone());
        }
        plan.profiles.push(NewProfile {
            name: name.clone(),
            source: if chained { via.clone() } else { src },
            role_arn: role_arn.clone(),
            duration,
            region,
            external_id,
            session_name,
        });
    }
    plan
}

/// A role profile's lifetime: `duration_seconds` (what the AWS CLI reads), else aws-runas's
/// `credentials_duration`; a value out of range is listed in `unmapped` and left out.
fn role_duration(
    name: &str,
    p: &AwsProfile,
    runas: Option<&str>,
    chained: bool,
    unmapped: &mut Vec<(String, String)>,
) -> Option<Duration> {
    let (key, text) = match (&p.duration_seconds, runas) {
        // one inherited from the source profile or [default] gives way silently
        (Some(seconds), Some(other)) if p.credentials_duration.is_some() => {
            unmapped.push((
                name.to_string(),
                format!(
                    "credentials_duration = {other}: duration_seconds = {seconds} is used \
                     instead (the AWS CLI's setting wins)"
                ),
            ));
            ("duration_seconds", seconds.clone())
        }
        (Some(seconds), _) => ("duration_seconds", seconds.clone()),
        (None, Some(other)) => ("credentials_duration", other.to_string()),
        (None, None) => return None,
    };
    let parsed = if key == "duration_seconds" {
        text.parse::<u64>()
            .ok()
            .map(Duration::from_secs)
            .ok_or_else(|| "is not a whole number of seconds".to_string())
    } else {
        parse_go_duration(&text)
            .ok_or_else(|| "is not a duration like \"2h\" or \"1h30m\"".to_string())
    };
    match parsed.and_then(|d| config::import_checks::role_duration(d, chained).map(|()| d)) {
        Ok(d) => Some(d),
        Err(why) => {
            unmapped.push((
                name.to_string(),
                format!("{key} = {text}: {why}; the profile keeps the default lifetime (1h)"),
            ));
            None
        }
    }
}

/// What changes for a profile whose source already has an MFA device (`source_mfa`, `from`
/// where): `None` when nothing does.
fn mfa_note(src: &str, own: Option<&str>, source_mfa: Option<&str>, from: &str) -> Option<String> {
    match (own, source_mfa) {
        (Some(own), Some(kept)) if own != kept => Some(format!(
            "its mfa_serial {own} differs from {kept}, the MFA device of source {src} ({from}); \
             a source has one MFA device, so its sessions use {kept} (use another source name \
             for the other device: `rolecall keys add NAME --mfa-serial ARN`)"
        )),
        (Some(own), None) => Some(format!(
            "its mfa_serial {own} is not used: source {src} ({from}) has no MFA device; add \
             mfa_serial = \"{own}\" to [sources.{src}] if its sessions need MFA"
        )),
        (None, Some(kept)) => Some(format!(
            "it had no mfa_serial, but source {src} ({from}) uses {kept}: its sessions need \
             that MFA code too"
        )),
        _ => None,
    }
}

/// Config-file profiles whose settings make botocore ignore a managed section of the same
/// name, with the key responsible.
pub fn shadowing<'a>(
    aws: &'a BTreeMap<String, AwsProfile>,
    managed: &[String],
) -> Vec<(&'a str, &'static str)> {
    let mut out = Vec::new();
    for (name, p) in aws {
        if !managed.iter().any(|m| m == name) {
            continue;
        }
        let key = if p.role_arn.is_some() {
            "role_arn"
        } else if p.source_profile.is_some() {
            "source_profile"
        } else if p.credential_process.is_some() {
            "credential_process"
        } else if p.sso {
            "sso_start_url"
        } else {
            continue;
        };
        out.push((name.as_str(), key));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWS: &str = "\
[default]
region = us-east-1

[profile bastion]
mfa_serial = arn:aws:iam::111111111111:mfa/alice

[profile dev-admin]
role_arn = arn:aws:iam::222222222222:role/Admin
source_profile = bastion
mfa_serial = arn:aws:iam::111111111111:mfa/alice
duration_seconds = 7200
region = eu-west-1
external_id = xyz
role_session_name = alice

[profile deep]
role_arn = arn:aws:iam::333333333333:role/Deep
source_profile = dev-admin

[profile ec2]
role_arn = arn:aws:iam::444444444444:role/X
credential_source = Ec2InstanceMetadata

[sso-session corp]
sso_start_url = https://example.invalid/start
";

    #[test]
    fn import_maps_roles_sources_and_chains() {
        let aws = parse(AWS).unwrap();
        let plan = plan_import(&aws, &Config::default());
        assert_eq!(
            plan.sources,
            vec![NewSource {
                name: "bastion".into(),
                mfa_serial: Some("arn:aws:iam::111111111111:mfa/alice".into()),
                region: None,
                session_duration: None,
            }]
        );
        let dev = plan
            .profiles
            .iter()
            .find(|p| p.name == "dev-admin")
            .unwrap();
        assert_eq!(dev.source, "bastion");
        assert_eq!(dev.duration, Some(Duration::from_secs(7200)));
        assert_eq!(dev.session_name.as_deref(), Some("alice"));
        let deep = plan.profiles.iter().find(|p| p.name == "deep").unwrap();
        assert_eq!(deep.source, "dev-admin");
        assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
        assert!(plan.skipped[0].1.contains("credential_source"));
    }

    #[test]
    fn issue_14_import_says_what_it_skipped_and_changed() {
        let aws = parse(
            "[profile corp]\nsso_session = corp\nsso_account_id = 1\nsso_role_name = R\n\n\
             [profile old-sso]\nsso_start_url = https://example.invalid\n\n\
             [profile via-sso]\nrole_arn = arn:aws:iam::222222222222:role/A\nsource_profile = corp\n\n\
             [profile proc]\ncredential_process = /bin/true\n\n\
             [profile ours]\nx_rolecall_managed = true\ncredential_process = /bin/true\n\n\
             [profile a]\nrole_arn = arn:aws:iam::222222222222:role/A\nsource_profile = work\n\
             mfa_serial = arn:aws:iam::111111111111:mfa/one\n\n\
             [profile b]\nrole_arn = arn:aws:iam::222222222222:role/B\nsource_profile = work\n\
             mfa_serial = arn:aws:iam::111111111111:mfa/two\n\n\
             [profile c]\nrole_arn = arn:aws:iam::222222222222:role/C\nsource_profile = work\n",
        )
        .unwrap();
        let plan = plan_import(&aws, &Config::default());
        let skipped: Vec<&str> = plan.skipped.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(skipped, ["corp", "old-sso", "proc", "via-sso"]);
        assert!(plan.skipped[0].1.contains("SSO"), "{:?}", plan.skipped);
        assert!(
            plan.skipped[3].1.contains("source_profile corp"),
            "{:?}",
            plan.skipped
        );
        // one source, with the first profile's device; the other two said what changed
        assert_eq!(plan.sources.len(), 1);
        assert_eq!(
            plan.sources[0].mfa_serial.as_deref(),
            Some("arn:aws:iam::111111111111:mfa/one")
        );
        let changed: Vec<&str> = plan.changed.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(changed, ["b", "c"]);
        assert!(
            plan.changed[0].1.contains("mfa/two differs from"),
            "{:?}",
            plan.changed
        );
        assert!(
            plan.changed[1].1.contains("had no mfa_serial"),
            "{:?}",
            plan.changed
        );
        assert_eq!(plan.unshadow, ["a", "b", "c"]);
    }

    #[test]
    fn issue_14_a_rolecall_profile_still_shadowed_is_unshadowed() {
        let aws = parse(AWS).unwrap();
        let mut existing = Config::default();
        let plan = plan_import(&aws, &existing);
        let imported = plan_import(&aws, &existing).profiles;
        for p in &imported {
            existing.profiles.insert(
                p.name.clone(),
                toml::from_str(&format!("source = \"x\"\nrole_arn = \"{}\"\n", p.role_arn))
                    .unwrap(),
            );
        }
        let again = plan_import(&aws, &existing);
        assert!(again.profiles.is_empty());
        assert_eq!(again.unshadow, plan.unshadow);
    }

    #[test]
    fn issue_17_go_durations_read_as_aws_runas_reads_them() {
        let d = |s| parse_go_duration(s);
        assert_eq!(d("8h"), Some(Duration::from_secs(8 * 3600)));
        assert_eq!(d("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(d("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(d("3600s"), Some(Duration::from_secs(3600)));
        assert_eq!(d("0"), Some(Duration::ZERO));
        for bad in ["", "8", "h", "-1h", "8 hours", "1x"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn issue_17_the_credentials_file_wins_key_by_key_as_in_botocore() {
        let config = parse(
            "[profile dev]\nrole_arn = arn:aws:iam::222222222222:role/Config\nregion = eu-west-1\n",
        )
        .unwrap();
        let credentials = parse_credentials(
            "[dev]\nrole_arn = arn:aws:iam::222222222222:role/Creds\nsource_profile = work\n\
             aws_secret_access_key = never-copied\n",
        );
        let dev = &merge(config, credentials)["dev"];
        assert_eq!(
            dev.role_arn.as_deref(),
            Some("arn:aws:iam::222222222222:role/Creds")
        );
        assert_eq!(dev.region.as_deref(), Some("eu-west-1"));
        assert_eq!(dev.source_profile.as_deref(), Some("work"));
        assert!(dev.role_in_credentials_file);
        assert!(!format!("{dev:?}").contains("never-copied"));
    }

    #[test]
    fn issue_17_every_attribute_is_mapped_or_listed_with_why() {
        let aws = merge(
            parse(
                "[default]\ncredentials_duration = 2h\n\n\
                 [profile runas]\nrole_arn = arn:aws:iam::222222222222:role/A\n\
                 source_profile = work\nsession_token_duration = 8h\n\n\
                 [profile both]\nrole_arn = arn:aws:iam::222222222222:role/B\n\
                 source_profile = other\nduration_seconds = 1800\ncredentials_duration = 3h\n\
                 external_id = x\nregion = Not A Region\nrole_session_name = me\n\n\
                 [profile long]\nrole_arn = arn:aws:iam::222222222222:role/C\n\
                 source_profile = runas\nduration_seconds = 7200\n\n\
                 [profile bad]\nrole_arn = arn:aws:iam::222222222222:role/D\n\
                 source_profile = third\nsession_token_duration = 99h\n",
            )
            .unwrap(),
            BTreeMap::new(),
        );
        let plan = plan_import(&aws, &Config::default());
        let profile = |n: &str| plan.profiles.iter().find(|p| p.name == n).unwrap();
        let source = |n: &str| plan.sources.iter().find(|s| s.name == n).unwrap();
        // aws-runas's attributes, the role duration from [default] as aws-runas reads it
        assert_eq!(profile("runas").duration, Some(Duration::from_secs(7200)));
        assert_eq!(
            source("work").session_duration,
            Some(Duration::from_secs(8 * 3600))
        );
        // duration_seconds wins over credentials_duration; bad values are listed
        assert_eq!(profile("both").duration, Some(Duration::from_secs(1800)));
        assert_eq!(profile("both").external_id, None);
        assert_eq!(profile("both").region, None);
        assert_eq!(profile("both").session_name.as_deref(), Some("me"));
        // a chained role is limited to 1h
        assert_eq!(profile("long").duration, None);
        assert_eq!(source("third").session_duration, None);
        let unmapped: Vec<String> = plan
            .unmapped
            .iter()
            .map(|(n, w)| format!("{n}: {w}"))
            .collect();
        let has = |text: &str| {
            assert!(
                unmapped.iter().any(|u| u.contains(text)),
                "{text} not in {unmapped:#?}"
            );
        };
        has("both: credentials_duration = 3h: duration_seconds = 1800 is used instead");
        has("both: external_id = x:");
        has("both: region = Not A Region:");
        has("long: duration_seconds = 7200:");
        has("role chaining is limited to 1h");
        has("bad: session_token_duration = 99h:");
        assert_eq!(unmapped.len(), 5, "{unmapped:#?}");
    }

    #[test]
    fn issue_17_a_session_profile_between_role_and_key_names_the_key_source() {
        let aws = parse_credentials(
            "[bastion]\naws_access_key_id = AKIAEXAMPLE\naws_secret_access_key = s\n\n\
             [bastion-sts]\nmfa_serial = arn:aws:iam::123456789012:mfa/a\n\
             credential_process = bastion get-session-token\nsource_profile = bastion\n\n\
             [dev-admin]\nrole_arn = arn:aws:iam::234567890123:role/admin\n\
             source_profile = bastion-sts\n",
        );
        let plan = plan_import(&aws, &Config::default());
        assert_eq!(plan.sources.len(), 1);
        assert_eq!(plan.sources[0].name, "bastion");
        assert_eq!(
            plan.sources[0].mfa_serial.as_deref(),
            Some("arn:aws:iam::123456789012:mfa/a")
        );
        assert_eq!(plan.profiles[0].source, "bastion");
        assert_eq!(plan.take_over, ["dev-admin"]);
        assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
        assert!(plan.skipped[0].1.contains("now assume from source bastion"));
    }

    #[test]
    fn shadowing_names_the_key() {
        let aws = parse(AWS).unwrap();
        let found = shadowing(&aws, &["dev-admin".to_string(), "bastion".to_string()]);
        assert_eq!(found, vec![("dev-admin", "role_arn")]);
    }
}
