//! Credentials `exec` and `export` hand over beyond a configured profile's own (issue 17, as
//! aws-runas and assume-role do): a role not in the config (`--role-arn`), other lifetimes
//! (`--duration`, `--session-duration`), or the root source's session (`--session`).
//!
//! Each is planned as a copy of the config with one temporary profile added (and a source's
//! MFA device or session lifetime set when asked), then renewed by the usual pass over that
//! copy: the source's cached MFA session in the keychain is reused (or started and cached as
//! always), profiles it assumes from are read from or written to the credentials file as
//! usual, but the temporary profile itself is never written there, nor announced as an event.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::config::{self, Config, ProfileConfig, Upstream};
use crate::credentials::Credentials;

use super::{EngineHandle, RefreshOptions};

/// What `exec`/`export` want.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Wanted {
    /// A configured profile's credentials.
    Profile(String),
    /// The session of the source at the root of this profile's chain (aws-runas `-s`).
    Session(String),
    /// A role not in the config.
    Role {
        /// The role to assume.
        role_arn: String,
        /// A source or profile to assume it from; `None`: the config's only source.
        source: Option<String>,
        /// The MFA device, for a source without one in the config.
        mfa_serial: Option<String>,
    },
}

/// A request for credentials to hand over: what, and lifetimes other than the config's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ask {
    /// What is wanted.
    pub wanted: Wanted,
    /// The role's lifetime (AssumeRole: 15 min to 12 h, 1 h when chained).
    pub duration: Option<Duration>,
    /// The lifetime of a session started for it (GetSessionToken: 15 min to 36 h); a cached
    /// session is used while it lasts.
    pub session_duration: Option<Duration>,
}

/// Credentials handed over to the caller.
#[derive(Debug)]
pub struct Handed {
    /// The credentials.
    pub credentials: Credentials,
    /// The region to export with them.
    pub region: Option<String>,
    /// What to call them (`ROLECALL_PROFILE`): the profile's name, or the ad-hoc role's name.
    pub name: String,
}

/// Why an ad-hoc request cannot be done.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A flag's value is not allowed; the message says what is.
    #[error("{flag}: {message}")]
    Invalid {
        /// The flag (`--duration`).
        flag: &'static str,
        /// What is wrong and what to do.
        message: String,
    },
    /// No profile was named, and `$AWS_PROFILE` names none of the config's.
    #[error(
        "no profile given: name one (known profiles: {known}), set AWS_PROFILE to one, or give \
         --role-arn ARN"
    )]
    NoProfile {
        /// The config's profiles.
        known: String,
    },
}

/// The config to renew with, which of its profiles to hand over, and what to call it.
#[derive(Debug)]
pub(super) struct Plan {
    pub(super) config: Config,
    pub(super) target: String,
    pub(super) name: String,
}

fn invalid(flag: &'static str, message: impl Into<String>) -> Error {
    Error::Invalid {
        flag,
        message: message.into(),
    }
}

fn names(map: impl Iterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = map.map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else {
        v.join(", ")
    }
}

/// The temporary profile's name, as messages show it (`profile Deploy (ad hoc): …`): never a
/// configured name, which has no space or parenthesis (`config::check_name`), and never
/// written anywhere.
fn temporary_name(name: &str, what: &str) -> String {
    format!("{name} ({what})")
}

/// Checks `--session-duration` against GetSessionToken and the source, and sets it.
fn set_session_duration(config: &mut Config, source: &str, d: Duration) -> Result<(), Error> {
    config::check_session_duration(d).map_err(|m| invalid("--session-duration", m))?;
    let src = config
        .sources
        .get_mut(source)
        .ok_or_else(|| invalid("--session-duration", format!("no source named {source:?}")))?;
    if !src.kind.has_sessions() {
        return Err(invalid(
            "--session-duration",
            format!(
                "source {source} is of kind {:?}, whose credentials are already temporary (no \
                 session); leave --session-duration out",
                src.kind.as_str()
            ),
        ));
    }
    src.session_duration = Some(d);
    Ok(())
}

/// Plans `ask` over `config`; `None` when it is a configured profile as configured (the usual
/// [`EngineHandle::credentials`]). The profile named by `Profile`/`Session` must exist.
pub(super) fn plan(config: &Config, ask: &Ask) -> Result<Option<Plan>, Error> {
    let mut derived = config.clone();
    let (profile, name) = match &ask.wanted {
        Wanted::Profile(p) => {
            if ask.duration.is_none() && ask.session_duration.is_none() {
                return Ok(None);
            }
            let mut profile = config.profiles[p].clone();
            if let Some(d) = ask.duration {
                if profile.role_arn.is_none() {
                    return Err(invalid(
                        "--duration",
                        format!(
                            "profile {p} has no role_arn: its credentials are its source's \
                             session; give --session-duration instead"
                        ),
                    ));
                }
                let chained = matches!(config.upstream(p), Some(Upstream::Profile(_)));
                config::check_role_duration(d, chained).map_err(|m| invalid("--duration", m))?;
                profile.duration = Some(d);
            }
            (profile, p.clone())
        }
        Wanted::Session(p) => {
            if ask.duration.is_some() {
                return Err(invalid(
                    "--duration",
                    "sets a role's lifetime; with --session, give --session-duration",
                ));
            }
            let root = config.root_source(p).unwrap_or_default().to_string();
            let profile = ProfileConfig {
                source: root,
                role_arn: None,
                duration: None,
                region: config.region(p).map(str::to_string),
                external_id: None,
                session_name: None,
                extends: None,
                refresh_before: None,
                inherited: BTreeMap::new(),
            };
            (profile, p.clone())
        }
        Wanted::Role {
            role_arn,
            source,
            mfa_serial,
        } => {
            config::check_role_arn(role_arn).map_err(|m| invalid("--role-arn", m))?;
            let source = match source {
                Some(s) if config.sources.contains_key(s) || config.profiles.contains_key(s) => {
                    s.clone()
                }
                Some(s) => {
                    return Err(invalid(
                        "--source",
                        format!(
                            "{s:?} is neither a source nor a profile; known sources: {}; \
                             profiles: {}",
                            names(config.sources.keys()),
                            names(config.profiles.keys())
                        ),
                    ));
                }
                None if config.sources.len() == 1 => {
                    config.sources.keys().next().cloned().unwrap_or_default()
                }
                None if config.sources.is_empty() => {
                    return Err(invalid(
                        "--role-arn",
                        "the config has no source to assume the role from; add one with \
                         `rolecall keys add NAME`",
                    ));
                }
                None => {
                    return Err(invalid(
                        "--source",
                        format!(
                            "needed with --role-arn: the config has several sources ({}); name \
                             the one (or a profile) to assume the role from",
                            names(config.sources.keys())
                        ),
                    ));
                }
            };
            let chained = config.profiles.contains_key(&source);
            if let Some(serial) = mfa_serial {
                config::check_mfa_serial(serial).map_err(|m| invalid("--mfa-serial", m))?;
                let Some(src) = derived.sources.get_mut(&source) else {
                    return Err(invalid(
                        "--mfa-serial",
                        format!(
                            "{source} is a profile, whose chain has its own source's MFA \
                             device; leave --mfa-serial out"
                        ),
                    ));
                };
                if !src.kind.has_sessions() {
                    return Err(invalid(
                        "--mfa-serial",
                        format!(
                            "source {source} is of kind {:?}, which takes no MFA code",
                            src.kind.as_str()
                        ),
                    ));
                }
                match &src.mfa_serial {
                    Some(own) if own != serial => {
                        return Err(invalid(
                            "--mfa-serial",
                            format!(
                                "source {source} uses MFA device {own} (in the config); leave \
                                 --mfa-serial out, or change the source's mfa_serial"
                            ),
                        ));
                    }
                    _ => src.mfa_serial = Some(serial.clone()),
                }
            }
            if let Some(d) = ask.duration {
                config::check_role_duration(d, chained).map_err(|m| invalid("--duration", m))?;
            }
            let name = role_arn
                .rsplit('/')
                .next()
                .unwrap_or(role_arn.as_str())
                .to_string();
            let profile = ProfileConfig {
                source,
                role_arn: Some(role_arn.clone()),
                duration: ask.duration,
                region: None,
                external_id: None,
                session_name: None,
                extends: None,
                refresh_before: None,
                inherited: BTreeMap::new(),
            };
            (profile, name)
        }
    };
    if let Some(d) = ask.session_duration {
        let Some(root) = derived.upstream_of(&profile) else {
            return Err(invalid(
                "--session-duration",
                "the profile's chain has no source",
            ));
        };
        set_session_duration(&mut derived, &root, d)?;
    }
    let what = match (&ask.wanted, ask.duration.is_some()) {
        (Wanted::Session(_), _) => "session",
        (Wanted::Role { .. }, _) => "ad hoc",
        (Wanted::Profile(_), true) => "other duration",
        (Wanted::Profile(_), false) => "other session duration",
    };
    let temp = temporary_name(&name, what);
    derived.profiles.insert(temp.clone(), profile);
    Ok(Some(Plan {
        config: derived,
        target: temp,
        name,
    }))
}

impl Config {
    /// The source at the root of the chain of a profile not (yet) in the config.
    fn upstream_of(&self, profile: &ProfileConfig) -> Option<String> {
        if self.sources.contains_key(&profile.source) {
            Some(profile.source.clone())
        } else {
            self.root_source(&profile.source).map(str::to_string)
        }
    }
}

impl EngineHandle {
    /// The credentials `ask` wants, for `exec` and `export`: a configured profile's as
    /// [`EngineHandle::credentials`] gives them; otherwise made by a pass over a copy of the
    /// config with a temporary profile, which is never written to the credentials file.
    pub async fn hand_over(&self, ask: &Ask, opts: RefreshOptions) -> Result<Handed, crate::Error> {
        let config = self.config();
        if let Wanted::Profile(p) | Wanted::Session(p) = &ask.wanted {
            self.resolve(&config, &super::Targets::Some(vec![p.clone()]))?;
        }
        let Some(plan) = plan(&config, ask)? else {
            let Wanted::Profile(p) = &ask.wanted else {
                return Err(crate::Error::Internal(
                    "an ad-hoc request was not planned".into(),
                ));
            };
            let (credentials, region) = self.credentials(p, opts).await?;
            return Ok(Handed {
                credentials,
                region,
                name: p.clone(),
            });
        };
        let region = plan.config.region(&plan.target).map(str::to_string);
        let credentials = self
            .credentials_of(std::sync::Arc::new(plan.config), &plan.target, opts)
            .await?;
        Ok(Handed {
            credentials,
            region,
            name: plan.name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::parse_config;

    const CONFIG: &str = r#"
[sources.s]
mfa_serial = "arn:aws:iam::111111111111:mfa/alice"
region = "us-east-1"
[sources.ec2]
kind = "instance-profile"
[profiles.a]
source = "s"
role_arn = "arn:aws:iam::222222222222:role/A"
region = "eu-west-1"
[profiles.b]
source = "a"
role_arn = "arn:aws:iam::222222222222:role/B"
[profiles.plain]
source = "s"
"#;

    fn ask(wanted: Wanted) -> Ask {
        Ask {
            wanted,
            duration: None,
            session_duration: None,
        }
    }

    fn role(source: Option<&str>, mfa: Option<&str>) -> Wanted {
        Wanted::Role {
            role_arn: "arn:aws:iam::222222222222:role/Deploy".into(),
            source: source.map(str::to_string),
            mfa_serial: mfa.map(str::to_string),
        }
    }

    fn err(config: &Config, ask: &Ask) -> String {
        plan(config, ask).unwrap_err().to_string()
    }

    #[test]
    fn a_configured_profile_as_configured_needs_no_plan() {
        let c = parse_config(CONFIG).unwrap();
        assert!(
            plan(&c, &ask(Wanted::Profile("a".into())))
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn an_ad_hoc_role_is_a_temporary_profile_of_the_source() {
        let c = parse_config(CONFIG).unwrap();
        let mut a = ask(role(Some("s"), None));
        a.duration = Some(Duration::from_secs(7200));
        let p = plan(&c, &a).unwrap().unwrap();
        assert_eq!(p.name, "Deploy");
        assert_eq!(p.target, "Deploy (ad hoc)");
        assert!(!c.profiles.contains_key(&p.target));
        let t = &p.config.profiles[&p.target];
        assert_eq!(t.source, "s");
        assert_eq!(t.duration, Some(Duration::from_secs(7200)));
        // the source's region, as for a configured profile
        assert_eq!(p.config.region(&p.target), Some("us-east-1"));
    }

    #[test]
    fn lifetimes_are_checked_against_the_aws_limits_with_the_flag_named() {
        let c = parse_config(CONFIG).unwrap();
        let mut a = ask(role(Some("s"), None));
        a.duration = Some(Duration::from_secs(13 * 3600));
        assert!(
            err(&c, &a).starts_with("--duration: 13h is out of range: must be from 15m to 12h"),
            "{}",
            err(&c, &a)
        );
        a.duration = Some(Duration::from_secs(600));
        assert!(err(&c, &a).contains("10m is out of range"));
        // chained: one hour at most
        let mut a = ask(role(Some("a"), None));
        a.duration = Some(Duration::from_secs(7200));
        assert!(err(&c, &a).contains("role chaining is limited to 1h"));
        let mut a = ask(Wanted::Profile("a".into()));
        a.session_duration = Some(Duration::from_secs(37 * 3600));
        assert!(err(&c, &a).starts_with("--session-duration: 37h is out of range"));
        a.session_duration = Some(Duration::from_secs(36 * 3600));
        let p = plan(&c, &a).unwrap().unwrap();
        assert_eq!(
            p.config.sources["s"].session_duration,
            Some(Duration::from_secs(36 * 3600))
        );
        // the real profile is left as it is; a copy under another name is handed over
        assert_eq!(p.name, "a");
        assert_ne!(p.target, "a");
    }

    #[test]
    fn duration_of_a_session_or_session_token_profile_points_at_session_duration() {
        let c = parse_config(CONFIG).unwrap();
        let mut a = ask(Wanted::Profile("plain".into()));
        a.duration = Some(Duration::from_secs(3600));
        assert!(err(&c, &a).contains("give --session-duration instead"));
        let mut a = ask(Wanted::Session("b".into()));
        a.duration = Some(Duration::from_secs(3600));
        assert!(err(&c, &a).contains("with --session, give --session-duration"));
    }

    #[test]
    fn session_is_the_root_source_with_the_profile_region() {
        let c = parse_config(CONFIG).unwrap();
        let p = plan(&c, &ask(Wanted::Session("b".into())))
            .unwrap()
            .unwrap();
        let t = &p.config.profiles[&p.target];
        assert_eq!((t.source.as_str(), t.role_arn.as_deref()), ("s", None));
        assert_eq!(p.config.region(&p.target), Some("eu-west-1"));
        assert_eq!(p.name, "b");
    }

    #[test]
    fn source_must_be_named_when_there_are_several_and_mfa_must_not_contradict() {
        let c = parse_config(CONFIG).unwrap();
        assert!(err(&c, &ask(role(None, None))).contains("several sources (ec2, s)"));
        assert!(err(&c, &ask(role(Some("x"), None))).contains("neither a source nor a profile"));
        let other = "arn:aws:iam::111111111111:mfa/bob";
        assert!(err(&c, &ask(role(Some("s"), Some(other)))).contains("uses MFA device"));
        assert!(err(&c, &ask(role(Some("ec2"), Some(other)))).contains("takes no MFA code"));
        assert!(err(&c, &ask(role(Some("s"), Some("bob")))).starts_with("--mfa-serial:"));
        // a source without a device gets the one given
        let one = parse_config("[sources.solo]\n").unwrap();
        let p = plan(&one, &ask(role(None, Some(other)))).unwrap().unwrap();
        assert_eq!(p.config.sources["solo"].mfa_serial.as_deref(), Some(other));
        let bad = Wanted::Role {
            role_arn: "arn:aws:iam::1:role/X".into(),
            source: None,
            mfa_serial: None,
        };
        assert!(err(&one, &ask(bad)).starts_with("--role-arn:"));
    }
}
