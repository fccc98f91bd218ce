//! `rolecall doctor`: checks the setup and explains each problem with what to do.
//!
//! Checks: the config is valid, the keychain answers, the credentials file is private and
//! readable, this computer's clock agrees with STS's, and no `~/.aws/config` profile shadows a
//! managed section (botocore prefers the config file's role settings over the credentials
//! file, so the managed keys would silently not be used).

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
            } else {
                out.push(check(
                    "keychain",
                    Verdict::Warn,
                    format!(
                        "reachable, but no key stored for source(s) {}; run `rolecall keys add NAME`",
                        missing.join(", ")
                    ),
                ));
            }
        }
        Some(Err(e)) => out.push(check("keychain", Verdict::Fail, e.to_string())),
    }

    let cred_path = engine.credentials_file().path().to_path_buf();
    let text = match engine.read_credentials_text().await {
        Ok(t) => {
            out.push(file_mode_check(&cred_path));
            t
        }
        Err(e) => {
            out.push(check("credentials file", Verdict::Fail, e.to_string()));
            zeroize::Zeroizing::new(String::new())
        }
    };

    match engine.sts().server_time(None).await {
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
                    out.push(check(
                        "aws config",
                        Verdict::Fail,
                        format!(
                            "[profile {name}] in {} has {key}, so the AWS CLI and SDKs ignore Rolecall's [{name}] \
                             credentials; remove {key} from that profile (or rename one of them)",
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
    match std::fs::metadata(path) {
        Ok(m) if m.permissions().mode() & 0o077 != 0 => Check {
            name: "credentials file",
            verdict: Verdict::Warn,
            detail: format!(
                "{} is readable by others (mode {:o}); run `chmod 600 {}`",
                path.display(),
                m.permissions().mode() & 0o777,
                path.display()
            ),
        },
        Ok(_) => Check {
            name: "credentials file",
            verdict: Verdict::Ok,
            detail: format!("{} is private (0600)", path.display()),
        },
        Err(_) => Check {
            name: "credentials file",
            verdict: Verdict::Ok,
            detail: format!(
                "{} does not exist yet; `rolecall refresh` creates it",
                path.display()
            ),
        },
    }
}

#[cfg(not(unix))]
fn file_mode_check(path: &std::path::Path) -> Check {
    Check {
        name: "credentials file",
        verdict: Verdict::Ok,
        detail: format!("{} is readable", path.display()),
    }
}
