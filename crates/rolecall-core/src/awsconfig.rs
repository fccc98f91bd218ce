//! Reading the AWS config file (`~/.aws/config`, `$AWS_CONFIG_FILE`): never writing it (the
//! engine has `credfile` comment out what [`plan_import`] says, see [`ROLE_KEYS`]).
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
    /// `sso_start_url` or `sso_session`.
    pub sso: bool,
    /// It carries rolecall's marker (`x_rolecall_managed`): a section rolecall wrote.
    pub managed: bool,
}

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
];

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
                sso: get("sso_start_url").is_some() || get("sso_session").is_some(),
                managed: props.get(crate::credfile::MANAGED_KEY).is_some(),
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
}

/// Plans the import of `aws`'s role profiles into `existing`. Profiles whose
/// `source_profile` is itself a role profile become chained profiles; the others get a
/// source named after their `source_profile`, whose key `rolecall keys import` then copies.
pub fn plan_import(aws: &BTreeMap<String, AwsProfile>, existing: &Config) -> ImportPlan {
    let mut plan = ImportPlan::default();
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
                plan.skipped.push(skip(
                    "gets its credentials from credential_process, not from a role; left as it is",
                ));
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
            continue;
        }
        if let Err(e) = config::check_name(name) {
            plan.skipped.push((name.clone(), e));
            continue;
        }
        let Some(src) = &p.source_profile else {
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
        let chained = aws.get(src).is_some_and(|s| s.role_arn.is_some());
        if !chained && aws.get(src).is_some_and(|s| s.sso) {
            plan.skipped.push((
                name.clone(),
                format!(
                    "its source_profile {src} is an IAM Identity Center (SSO) profile, which \
                     Rolecall cannot use as a source yet; left as it is"
                ),
            ));
            continue;
        }
        if !chained && existing.profiles.contains_key(src) {
            plan.skipped
                .push(skip("its source_profile is a Rolecall profile, not a key"));
            continue;
        }
        if !chained
            && !existing.sources.contains_key(src)
            && !plan.sources.iter().any(|s| &s.name == src)
        {
            if let Err(e) = config::check_name(src) {
                plan.skipped.push((name.clone(), e));
                continue;
            }
            let src_conf = aws.get(src);
            plan.sources.push(NewSource {
                name: src.clone(),
                mfa_serial: p
                    .mfa_serial
                    .clone()
                    .or_else(|| src_conf.and_then(|s| s.mfa_serial.clone())),
                region: src_conf.and_then(|s| s.region.clone()),
            });
        } else if !chained {
            // A source has one MFA device: the one it already has (from Rolecall's config, or
            // from the profile imported first) wins; say so when this profile had another.
            let (source_mfa, from) = match plan.sources.iter().find(|s| &s.name == src) {
                Some(new) => (new.mfa_serial.clone(), "imported first"),
                None => (
                    existing.sources.get(src).and_then(|s| s.mfa_serial.clone()),
                    "in Rolecall's config",
                ),
            };
            if let Some(note) = mfa_note(src, p.mfa_serial.as_deref(), source_mfa.as_deref(), from)
            {
                plan.changed.push((name.clone(), note));
            }
        }
        let duration = p
            .duration_seconds
            .as_deref()
            .and_then(|d| d.parse::<u64>().ok())
            .map(Duration::from_secs);
        plan.unshadow.push(name.clone());
        plan.profiles.push(NewProfile {
            name: name.clone(),
            source: src.clone(),
            role_arn: role_arn.clone(),
            duration,
            region: p.region.clone(),
            external_id: p.external_id.clone(),
            session_name: p.role_session_name.clone(),
        });
    }
    plan
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
                region: None
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
    fn shadowing_names_the_key() {
        let aws = parse(AWS).unwrap();
        let found = shadowing(&aws, &["dev-admin".to_string(), "bastion".to_string()]);
        assert_eq!(found, vec![("dev-admin", "role_arn")]);
    }
}
