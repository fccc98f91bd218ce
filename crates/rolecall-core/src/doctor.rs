//! `rolecall doctor`: checks the setup and explains each problem with what to do.
//!
//! Checks: the config is valid, the keychain answers (and a missing key that sits in the
//! credentials file is pointed at `keys import --scrub`), the credentials file is private and
//! writable (its real mode), this computer's clock agrees with STS's, and no `~/.aws/config`
//! profile shadows a managed section (botocore prefers the config file's role settings over the
//! credentials file, so the managed keys would silently not be used).
//!
//! A `credential_process` beside a managed section is only a warning, because the clients
//! disagree. Both files' sections of one name are merged into one profile, then: botocore (the
//! AWS CLI, boto3) tries the credentials file's keys before `credential_process`
//! (`ProfileProviderBuilder.providers` in botocore's `credentials.py`: shared credentials
//! file, then process, then config file), and so does the JS SDK v3 (`resolveProfileData` in
//! `@aws-sdk/credential-provider-ini`: static keys before `isProcessProfile`); the Rust SDK
//! runs `credential_process` instead (`base_provider` in aws-config's
//! `profile/credentials/repr.rs`: web identity, SSO, login, process, and static keys last).

use std::time::{Duration, SystemTime};

use crate::EngineHandle;
use crate::config::Config;

/// How a check went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Fine.
    Ok,
    /// Works, but worth fixing.
    Warn,
    /// Broken.
    Fail,
}

/// One check's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Check {
    /// What was checked.
    pub name: &'static str,
    /// How it went.
    pub verdict: Verdict,
    /// What was found and what to do.
    pub detail: String,
}

/// Clock skew beyond which AWS rejects signatures.
const MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// Keys and cached sessions in the keychain of sources the config does not have (a source
/// removed by hand, or a removed config: nothing else removes them). Asked even when no
/// source uses the keychain (the config may be gone), but then a keychain that cannot be
/// reached is no news. A store that cannot list its entries is said to be so.
async fn orphaned_entries(engine: &EngineHandle, uses_keychain: bool, out: &mut Vec<Check>) {
    let check = |verdict, detail: String| Check {
        name: "keychain entries",
        verdict,
        detail,
    };
    let config = engine.config();
    match engine.keychain_entries().await {
        Ok(Some(entries)) => {
            for entry in entries {
                let name = entry.source;
                if config.sources.contains_key(&name) {
                    continue;
                }
                let what = match (entry.key, entry.session) {
                    (true, true) => "the key and a cached MFA session",
                    (true, false) => "the key",
                    _ => "a cached MFA session",
                };
                out.push(check(
                    Verdict::Warn,
                    format!(
                        "the keychain holds {what} of source {name}, which the config does not \
                         have; add [sources.{name}] to the config to use it again, or remove \
                         it with `rolecall keys remove {name}`"
                    ),
                ));
            }
        }
        Ok(None) => out.push(check(
            Verdict::Ok,
            "this keychain cannot list its entries, so keys and sessions of sources removed \
             from the config are not looked for"
                .into(),
        )),
        Err(e) if uses_keychain => out.push(check(Verdict::Warn, e.to_string())),
        Err(_) => {}
    }
}

pub(crate) async fn run(engine: &EngineHandle) -> Vec<Check> {
    let mut out = Vec::new();
    let paths = engine.paths().clone();
    let check = |name, verdict, detail: String| Check {
        name,
        verdict,
        detail,
    };

    match Config::load(&paths.config_file) {
        Ok(c) => out.push(check(
            "config",
            Verdict::Ok,
            format!(
                "{}: {} source(s), {} profile(s)",
                paths.config_file.display(),
                c.sources.len(),
                c.profiles.len()
            ),
        )),
        Err(e) => out.push(check("config", Verdict::Fail, e.to_string())),
    }

    let cred_path = engine.credentials_file().path().to_path_buf();
    let (text, cred_check) = match engine.read_credentials_text().await {
        Ok(t) => (t, file_mode_check(&cred_path)),
        Err(e) => (
            zeroize::Zeroizing::new(String::new()),
            check("credentials file", Verdict::Fail, e.to_string()),
        ),
    };

    let uses_keychain = engine
        .config()
        .sources
        .values()
        .any(|s| s.kind == crate::config::SourceKind::Keychain);
    // a server with only instance-profile/environment sources never needs a keychain
    let keys = if uses_keychain {
        Some(engine.list_keys().await)
    } else {
        out.push(check(
            "keychain",
            Verdict::Ok,
            "not used: no source of kind \"keychain\"".into(),
        ));
        None
    };
    match keys {
        None => {}
        Some(Ok(keys)) => {
            let missing: Vec<&str> = keys
                .iter()
                .filter(|k| k.key_id.is_none())
                .map(|k| k.name.as_str())
                .collect();
            if missing.is_empty() {
                out.push(check(
                    "keychain",
                    Verdict::Ok,
                    format!("reachable; {} key(s) stored", keys.len()),
                ));
            }
            for name in missing {
                // the user's own key may sit in the credentials file: that is the one to move
                let in_file = crate::credfile::static_key(&text, name, &cred_path).is_ok();
                let fix = if in_file {
                    format!(
                        "its key is in [{name}] of {}: move it with `rolecall keys import {name} \
                         --scrub`",
                        cred_path.display()
                    )
                } else {
                    format!("run `rolecall keys add {name}`")
                };
                out.push(check(
                    "keychain",
                    Verdict::Warn,
                    format!("reachable, but no key stored for source {name}; {fix}"),
                ));
            }
        }
        Some(Err(e)) => out.push(check("keychain", Verdict::Fail, e.to_string())),
    }
    orphaned_entries(engine, uses_keychain, &mut out).await;
    out.push(cred_check);

    match engine.sts().await.server_time(None).await {
        Ok(server) => {
            let now = SystemTime::now();
            let skew = now
                .duration_since(server)
                .or_else(|e| Ok::<_, ()>(e.duration()))
                .unwrap_or_default();
            let verdict = if skew > MAX_SKEW {
                Verdict::Fail
            } else if skew > Duration::from_secs(60) {
                Verdict::Warn
            } else {
                Verdict::Ok
            };
            let mut detail = format!("this computer's clock is {}s off STS's", skew.as_secs());
            if verdict != Verdict::Ok {
                detail.push_str(
                    "; AWS rejects requests 5 min off: sync the clock (`timedatectl set-ntp true`)",
                );
            }
            out.push(check("clock", verdict, detail));
        }
        Err(e) => out.push(check(
            "clock",
            Verdict::Warn,
            format!("could not compare with STS: {e}"),
        )),
    }

    // Rolecall's sections that no profile has any more: nothing removes them by itself
    for name in crate::engine::orphans(&engine.config(), &text) {
        out.push(check(
            "orphaned section",
            Verdict::Warn,
            format!(
                "[{name}] in {} was written by Rolecall but belongs to no profile of the \
                 config (removed while no daemon ran, or the config is gone); remove it with \
                 `rolecall clear {name}`",
                cred_path.display()
            ),
        ));
    }

    // a profile whose section the user wrote cannot be renewed (issue 17: doctor said all
    // was well while every refresh of it failed)
    let inventory = crate::credfile::inspect(&text);
    let roles = crate::awsconfig::parse_credentials(&text);
    for name in engine.config().profiles.keys() {
        let Some(section) = inventory.get(name) else {
            continue;
        };
        if section.managed || section.changed {
            continue; // `changed` gets its own message from the refresh
        }
        let fix = if roles
            .get(name)
            .is_some_and(|p| p.role_arn.is_some() || p.source_profile.is_some())
        {
            "it is a role profile (role_arn/source_profile): run `rolecall import`, which moves \
             its role into Rolecall and takes the section over"
                .to_string()
        } else {
            format!("delete or rename it, then run `rolecall refresh {name}`")
        };
        out.push(check(
            "credentials file",
            Verdict::Fail,
            format!(
                "[{name}] in {} was written by you, not Rolecall, so profile {name} cannot be \
                 renewed there; {fix}",
                cred_path.display()
            ),
        ));
    }

    let managed: Vec<String> = crate::credfile::inspect(&text)
        .sections
        .into_iter()
        .filter(|s| s.managed)
        .map(|s| s.name)
        .chain(engine.config().profiles.keys().cloned())
        .collect();
    match std::fs::read_to_string(&paths.aws_config_file) {
        Ok(aws_text) => match crate::awsconfig::parse(&aws_text) {
            Ok(aws) => {
                let found = crate::awsconfig::shadowing(&aws, &managed);
                if found.is_empty() {
                    out.push(check(
                        "aws config",
                        Verdict::Ok,
                        "no profile shadows a managed section".into(),
                    ));
                }
                for (name, key) in found {
                    if key == "credential_process" {
                        out.push(check(
                            "aws config",
                            Verdict::Warn,
                            format!(
                                "[profile {name}] in {} has credential_process beside Rolecall's \
                                 [{name}] in the credentials file: the AWS CLI, boto3 and the JS \
                                 SDK use Rolecall's keys, but the Rust SDK runs the \
                                 credential_process instead; keep one of the two (remove \
                                 credential_process, or `rolecall clear {name}` and use \
                                 credential_process = rolecall credential-process {name})",
                                paths.aws_config_file.display()
                            ),
                        ));
                        continue;
                    }
                    // `rolecall import` comments out the role keys of a Rolecall profile
                    let fix = if key == "role_arn" && engine.config().profiles.contains_key(name) {
                        "run `rolecall import`, which comments out its role keys (keeping a \
                         backup), or remove them yourself"
                            .to_string()
                    } else {
                        format!("remove {key} from that profile (or rename one of them)")
                    };
                    out.push(check(
                        "aws config",
                        Verdict::Fail,
                        format!(
                            "[profile {name}] in {} has {key}, so the AWS CLI and SDKs ignore Rolecall's [{name}] \
                             credentials; {fix}",
                            paths.aws_config_file.display()
                        ),
                    ));
                }
            }
            Err(e) => out.push(check(
                "aws config",
                Verdict::Warn,
                format!("{} cannot be parsed: {e}", paths.aws_config_file.display()),
            )),
        },
        Err(_) => out.push(check(
            "aws config",
            Verdict::Ok,
            format!("{} absent", paths.aws_config_file.display()),
        )),
    }
    out
}

#[cfg(unix)]
fn file_mode_check(path: &std::path::Path) -> Check {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Check {
            name: "credentials file",
            verdict: Verdict::Ok,
            detail: format!(
                "{} does not exist yet; `rolecall refresh` creates it",
                path.display()
            ),
        };
    };
    let mode = meta.permissions().mode() & 0o7777;
    let (verdict, detail) = mode_verdict(mode);
    let path = path.display();
    Check {
        name: "credentials file",
        verdict,
        detail: match verdict {
            Verdict::Ok => format!("{path} (mode {mode:04o}) is private and writable"),
            _ => format!("{path} (mode {mode:04o}) {detail}"),
        },
    }
}

/// What a credentials file's mode means: read-only is what the writer refuses (it respects a
/// file nobody may write, see `credfile::Error::ReadOnly`), group or other bits expose keys.
/// Judged by the mode, not by trying: root may write any file, but the writer still refuses a
/// read-only one.
#[cfg(unix)]
fn mode_verdict(mode: u32) -> (Verdict, String) {
    // no write bit at all is what the writer refuses; no owner write bit fails it as well
    if mode & 0o200 == 0 {
        return (
            Verdict::Fail,
            "is read-only, so Rolecall cannot update it; run `chmod u+w` on it".into(),
        );
    }
    let how = |bits: u32| match (bits & 0o4 != 0, bits & 0o2 != 0) {
        (true, true) => Some("readable and writable"),
        (true, false) => Some("readable"),
        (false, true) => Some("writable"),
        (false, false) => None,
    };
    let exposed: Vec<String> = [(mode >> 3 & 0o7, "the group"), (mode & 0o7, "others")]
        .into_iter()
        .filter_map(|(bits, who)| how(bits).map(|h| format!("{h} by {who}")))
        .collect();
    if exposed.is_empty() {
        return (Verdict::Ok, String::new());
    }
    (
        Verdict::Warn,
        format!("is {}; run `chmod 600` on it", exposed.join(" and ")),
    )
}

#[cfg(not(unix))]
fn file_mode_check(path: &std::path::Path) -> Check {
    Check {
        name: "credentials file",
        verdict: Verdict::Ok,
        detail: format!("{} is readable", path.display()),
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn a_mode_is_told_as_it_is() {
        assert_eq!(mode_verdict(0o600).0, Verdict::Ok);
        assert_eq!(mode_verdict(0o400).0, Verdict::Fail);
        assert_eq!(mode_verdict(0o460).0, Verdict::Fail);
        assert!(mode_verdict(0o400).1.contains("read-only"));
        assert_eq!(
            mode_verdict(0o640).1,
            "is readable by the group; run `chmod 600` on it"
        );
        assert_eq!(
            mode_verdict(0o664).1,
            "is readable and writable by the group and readable by others; run `chmod 600` on it"
        );
        assert_eq!(mode_verdict(0o644).0, Verdict::Warn);
    }
}
