//! Everything the TOML types cannot check: names, ranges (STS limits), references, cycles.

use std::time::Duration;

use super::Config;
use super::schema::MAX_EXTENDS_DEPTH;

const MIN_DURATION: Duration = Duration::from_secs(900);
const MAX_SESSION_DURATION: Duration = Duration::from_secs(36 * 3600);
const MAX_ROLE_DURATION: Duration = Duration::from_secs(12 * 3600);
const MAX_CHAINED_DURATION: Duration = Duration::from_secs(3600);
/// The least `refresh_before`: renewing later leaves no room for a slow or retried STS call
/// before the credentials in the file expire.
const MIN_REFRESH_BEFORE: Duration = Duration::from_secs(60);
/// configparser's `default_section`, which botocore's credentials-file reader uses: its keys are
/// inherited by every other section, so the credentials writer refuses to write it.
const CONFIGPARSER_DEFAULT_SECTION: &str = "DEFAULT";

impl Config {
    /// Checks every `extends`: it names another profile, and following it ends within
    /// [`MAX_EXTENDS_DEPTH`] links without coming back (before the values are taken through it).
    pub(super) fn validate_extends(&self) -> Result<(), (String, String)> {
        for (name, p) in &self.profiles {
            let Some(first) = &p.extends else {
                continue;
            };
            let key = ["profiles", name, "extends"].join("\u{0}");
            if first == name {
                return Err((key, "a profile cannot extend itself".into()));
            }
            let mut chain = vec![name.as_str()];
            let mut next = Some(first.as_str());
            while let Some(parent) = next {
                let Some(up) = self.profiles.get(parent) else {
                    let last = chain.last().copied().unwrap_or(name);
                    let known: Vec<&String> = self.profiles.keys().collect();
                    return Err((
                        ["profiles", last, "extends"].join("\u{0}"),
                        format!(
                            "{parent:?} is not a profile; known profiles: {}",
                            list(known.into_iter())
                        ),
                    ));
                };
                if chain.contains(&parent) {
                    chain.push(parent);
                    return Err((
                        key,
                        format!(
                            "profiles extend each other in a cycle ({}); remove one of these \
                             extends",
                            chain.join(" → ")
                        ),
                    ));
                }
                chain.push(parent);
                if chain.len() > MAX_EXTENDS_DEPTH + 1 {
                    return Err((
                        key,
                        format!(
                            "extends chain is longer than {MAX_EXTENDS_DEPTH} profiles ({} → …); \
                             set the values in a profile nearer to this one",
                            chain.join(" → ")
                        ),
                    ));
                }
                next = up.extends.as_deref();
            }
        }
        Ok(())
    }

    /// Checks everything that TOML types cannot: names, ranges (STS limits), references,
    /// cycles. Returns the dotted key and the message.
    pub(super) fn validate(&self) -> Result<(), (String, String)> {
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
        if s.refresh_before < MIN_REFRESH_BEFORE {
            return Err((
                key(&["settings", "refresh_before"]),
                format!(
                    "{} is too short: must be at least {}, so that a renewal has time to finish \
                     before the credentials expire",
                    format_duration(s.refresh_before),
                    format_duration(MIN_REFRESH_BEFORE)
                ),
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
            // A cached session is reused only while more than `refresh_before` of it is left,
            // so a shorter one would be replaced on every renewal, with an MFA prompt each time.
            if src.kind.has_sessions() && src.session_duration() <= s.refresh_before {
                let (session, refresh) = (
                    format_duration(src.session_duration()),
                    format_duration(s.refresh_before),
                );
                return Err(match src.session_duration {
                    Some(_) => (
                        key(&["sources", name, "session_duration"]),
                        format!(
                            "{session} must be longer than settings.refresh_before ({refresh}), \
                             or every renewal would start a new session and ask for an MFA \
                             code; raise session_duration or lower refresh_before"
                        ),
                    ),
                    None => (
                        key(&["settings", "refresh_before"]),
                        format!(
                            "{refresh} must be shorter than the session_duration of source \
                             {name:?} ({session}), or every renewal would start a new session \
                             and ask for an MFA code; lower refresh_before or set a longer \
                             session_duration"
                        ),
                    ),
                });
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
            if name == CONFIGPARSER_DEFAULT_SECTION {
                return Err((
                    key(&["profiles", name]),
                    "\"DEFAULT\" is reserved: the AWS CLI and SDKs for Python read a [DEFAULT] \
                     section in the credentials file as defaults for every profile; pick \
                     another name"
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
            if let Some(rb) = p.refresh_before
                && rb < MIN_REFRESH_BEFORE
            {
                return Err((
                    k("refresh_before"),
                    format!(
                        "{} is too short: must be at least {}, so that a renewal has time to \
                         finish before the credentials expire",
                        format_duration(rb),
                        format_duration(MIN_REFRESH_BEFORE)
                    ),
                ));
            }
            if let Some(x) = &p.external_id {
                check_chars(x, 2, 1224, "=,.@:/-").map_err(|m| (k("external_id"), m))?;
            }
            if let Some(x) = &p.session_name {
                // `{iam_user}` stands for an IAM user name, of the same alphabet
                let x = x.replace(crate::sts::IAM_USER, "iam-user");
                check_chars(&x, 2, 64, "=,.@-").map_err(|m| (k("session_name"), m))?;
            }
            if self.root_source(name).is_none() {
                return Err((
                    k("source"),
                    "profiles assume from each other in a cycle".into(),
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

/// The checks `rolecall import` makes on the values it maps (the same ones a load makes), so
/// a value the config would refuse is listed as not mapped instead of failing the import.
pub mod import_checks {
    use super::*;

    /// A role profile's `duration` (15m to 12h; 1h when it assumes from another profile).
    pub fn role_duration(d: Duration, chained: bool) -> Result<(), String> {
        if chained {
            check_range(d, MIN_DURATION, MAX_CHAINED_DURATION)
                .map_err(|m| format!("{m} (role chaining is limited to 1h)"))
        } else {
            check_range(d, MIN_DURATION, MAX_ROLE_DURATION)
        }
    }

    /// A source's `session_duration` (15m to 36h, and longer than `refresh_before`).
    pub fn session_duration(d: Duration, refresh_before: Duration) -> Result<(), String> {
        check_range(d, MIN_DURATION, MAX_SESSION_DURATION)?;
        if d <= refresh_before {
            return Err(format!(
                "{} is not longer than refresh_before ({})",
                format_duration(d),
                format_duration(refresh_before)
            ));
        }
        Ok(())
    }

    /// A `region`.
    pub fn region(r: &str) -> Result<(), String> {
        check_region(r)
    }

    /// An `external_id`.
    pub fn external_id(x: &str) -> Result<(), String> {
        check_chars(x, 2, 1224, "=,.@:/-")
    }

    /// A role `session_name`.
    pub fn session_name(x: &str) -> Result<(), String> {
        check_chars(x, 2, 64, "=,.@-")
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

/// A duration the way people write it in the config: `40h`, `36h`, `15m`, `1h30m`, `90s`,
/// `100ms` (humantime's own format says `1day 16h`, which no one writes for a session length).
/// What it prints parses back to the same duration.
pub fn format_duration(d: Duration) -> String {
    let ms = d.subsec_millis();
    let s = d.as_secs();
    if ms != 0 {
        return if s == 0 {
            format!("{ms}ms")
        } else {
            humantime::format_duration(d).to_string()
        };
    }
    if s == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (n, unit) in [(s / 3600, "h"), (s % 3600 / 60, "m"), (s % 60, "s")] {
        if n != 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    out
}

/// Checks a role lifetime against AssumeRole's limits: 15 minutes to 12 hours, 1 hour when the
/// role is assumed from another role (chaining).
pub fn check_role_duration(d: Duration, chained: bool) -> Result<(), String> {
    if chained {
        check_range(d, MIN_DURATION, MAX_CHAINED_DURATION)
            .map_err(|m| format!("{m} (role chaining is limited to 1h)"))
    } else {
        check_range(d, MIN_DURATION, MAX_ROLE_DURATION)
    }
}

/// Checks a session lifetime against GetSessionToken's limits: 15 minutes to 36 hours.
pub fn check_session_duration(d: Duration) -> Result<(), String> {
    check_range(d, MIN_DURATION, MAX_SESSION_DURATION)
}

fn check_range(d: Duration, min: Duration, max: Duration) -> Result<(), String> {
    if d < min || d > max {
        Err(format!(
            "{} is out of range: must be from {} to {} (written like \"15m\", \"12h\" or \
             \"1h30m\")",
            format_duration(d),
            format_duration(min),
            format_duration(max)
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

#[cfg(test)]
mod tests {
    use crate::testutil::parse_config;
    use rstest::rstest;

    #[rstest]
    #[case(40 * 3600, "40h")]
    #[case(36 * 3600, "36h")]
    #[case(900, "15m")]
    #[case(5400, "1h30m")]
    #[case(90, "1m30s")]
    #[case(3601, "1h1s")]
    fn durations_are_written_as_people_write_them(#[case] secs: u64, #[case] text: &str) {
        let d = std::time::Duration::from_secs(secs);
        assert_eq!(super::format_duration(d), text);
        assert_eq!(humantime::parse_duration(text).unwrap(), d);
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
    #[case::configparser_default_section(
        "[sources.s]\n[profiles.DEFAULT]\nsource = \"s\"\n",
        "2",
        "profiles.DEFAULT: \"DEFAULT\" is reserved"
    )]
    #[case::zero_refresh_before(
        "[settings]\nrefresh_before = \"0s\"\n",
        "2",
        "settings.refresh_before: 0s is too short"
    )]
    #[case::session_as_short_as_refresh_before(
        "[settings]\nrefresh_before = \"30m\"\n[sources.s]\nsession_duration = \"30m\"\n",
        "4",
        "sources.s.session_duration: 30m must be longer than settings.refresh_before (30m)"
    )]
    #[case::default_session_not_longer_than_refresh_before(
        "[settings]\nrefresh_before = \"12h\"\n[sources.s]\nkind = \"environment\"\n",
        "2",
        "settings.refresh_before: 12h must be shorter than the session_duration of source \"s\" (12h)"
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
    #[case::extends_unknown(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nextends = \"nope\"\n",
        "4",
        "profiles.a.extends: \"nope\" is not a profile"
    )]
    #[case::extends_itself(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nextends = \"a\"\n",
        "4",
        "profiles.a.extends: a profile cannot extend itself"
    )]
    #[case::extends_cycle(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nextends = \"b\"\n\
         [profiles.b]\nsource = \"s\"\nextends = \"a\"\n",
        "4",
        "profiles.a.extends: profiles extend each other in a cycle (a → b → a)"
    )]
    #[case::extends_too_deep(
        "[sources.s]\n\
         [profiles.p0]\nsource = \"s\"\nextends = \"p1\"\n\
         [profiles.p1]\nsource = \"s\"\nextends = \"p2\"\n\
         [profiles.p2]\nsource = \"s\"\nextends = \"p3\"\n\
         [profiles.p3]\nsource = \"s\"\nextends = \"p4\"\n\
         [profiles.p4]\nsource = \"s\"\nextends = \"p5\"\n\
         [profiles.p5]\nsource = \"s\"\nextends = \"p6\"\n\
         [profiles.p6]\nsource = \"s\"\n",
        "4",
        "profiles.p0.extends: extends chain is longer than 5 profiles"
    )]
    #[case::inherited_duration_too_long_for_a_chain(
        "[sources.s]\n\
         [profiles.base]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\nduration = \"4h\"\n\
         [profiles.deep]\nsource = \"base\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\nextends = \"base\"\n",
        "9",
        "profiles.deep.extends: duration taken from profile \"base\": 4h is out of range"
    )]
    #[case::profile_refresh_before_too_short(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrefresh_before = \"10s\"\n",
        "4",
        "profiles.a.refresh_before: 10s is too short"
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

    /// Issue 13: AWS's shortest role lifetime (15 min) is no longer refused with the default
    /// `refresh_before` (15 min), nor is a role shorter than `refresh_before`: the scheduler
    /// renews such profiles at a fraction of their lifetime instead.
    #[rstest]
    #[case::shortest_role_default_refresh(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\nduration = \"15m\"\n"
    )]
    #[case::role_shorter_than_refresh_before(
        "[settings]\nrefresh_before = \"2h\"\n[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n"
    )]
    #[case::chained_shortest_role(
        "[sources.s]\n[profiles.a]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/A\"\n[profiles.b]\nsource = \"a\"\nrole_arn = \"arn:aws:iam::222222222222:role/B\"\nduration = \"15m\"\n"
    )]
    #[case::session_just_longer_than_refresh_before(
        "[settings]\nrefresh_before = \"15m\"\n[sources.s]\nsession_duration = \"16m\"\n[profiles.p]\nsource = \"s\"\n"
    )]
    fn issue_13_short_lifetimes_are_accepted(#[case] text: &str) {
        if let Err(e) = parse_config(text) {
            panic!("refused: {e}");
        }
    }

    /// A profile may be called "Default": botocore's section names are case-sensitive and only
    /// `default` and configparser's `DEFAULT` are special.
    #[test]
    fn other_case_variants_of_default_are_ordinary_names() {
        let c = parse_config("[sources.s]\n[profiles.Default]\nsource = \"s\"\n").unwrap();
        assert!(c.profiles.contains_key("Default"));
    }

    /// Issue 17 (IMSA's `extends`): unset values come from the nearest profile extended that
    /// sets them; role-only values only reach role profiles; own values win.
    #[test]
    fn extends_fills_unset_values_from_the_nearest_profile() {
        let c = parse_config(
            "[sources.s]\n\
             [profiles.top]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/T\"\n\
             session_name = \"alice\"\nexternal_id = \"ext-1\"\nduration = \"2h\"\nregion = \"eu-west-1\"\n\
             [profiles.mid]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/M\"\n\
             extends = \"top\"\nduration = \"3h\"\n\
             [profiles.leaf]\nsource = \"s\"\nrole_arn = \"arn:aws:iam::222222222222:role/L\"\n\
             extends = \"mid\"\nregion = \"us-west-2\"\n\
             [profiles.plain]\nsource = \"s\"\nextends = \"top\"\n",
        )
        .unwrap();
        let leaf = &c.profiles["leaf"];
        assert_eq!(leaf.session_name.as_deref(), Some("alice"));
        assert_eq!(leaf.external_id.as_deref(), Some("ext-1"));
        assert_eq!(
            leaf.duration,
            Some(std::time::Duration::from_secs(3 * 3600))
        );
        assert_eq!(leaf.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            leaf.inherited.get("duration").map(String::as_str),
            Some("mid")
        );
        assert_eq!(
            leaf.inherited.get("session_name").map(String::as_str),
            Some("top")
        );
        assert!(!leaf.inherited.contains_key("region"));
        // a session-token profile takes the region only
        let plain = &c.profiles["plain"];
        assert_eq!(plain.region.as_deref(), Some("eu-west-1"));
        assert_eq!(plain.duration, None);
        assert_eq!(plain.session_name, None);
        assert_eq!(c.region("plain"), Some("eu-west-1"));
    }

    /// Five links are allowed.
    #[test]
    fn extends_chains_of_five_links_load() {
        let mut text = String::from("[sources.s]\n");
        for i in 0..5 {
            text.push_str(&format!(
                "[profiles.p{i}]\nsource = \"s\"\nextends = \"p{}\"\n",
                i + 1
            ));
        }
        text.push_str("[profiles.p5]\nsource = \"s\"\nregion = \"eu-west-1\"\n");
        let c = parse_config(&text).unwrap();
        assert_eq!(c.profiles["p0"].region.as_deref(), Some("eu-west-1"));
    }

    #[test]
    fn a_profile_refresh_before_overrides_the_global_one() {
        let c = parse_config(
            "[settings]\nrefresh_before = \"10m\"\n[sources.s]\n\
             [profiles.a]\nsource = \"s\"\nrefresh_before = \"30m\"\n[profiles.b]\nsource = \"s\"\n",
        )
        .unwrap();
        assert_eq!(c.refresh_before("a"), std::time::Duration::from_secs(1800));
        assert_eq!(c.refresh_before("b"), std::time::Duration::from_secs(600));
    }
}
