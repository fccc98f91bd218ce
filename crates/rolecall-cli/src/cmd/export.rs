//! `rolecall export PROFILE` and `rolecall credential-process PROFILE`.

use rolecall_core::timestamp;
use std::sync::Arc;

use rolecall_core::RefreshOptions;
use rolecall_core::config::{Config, Paths};
use rolecall_core::credentials::{Credentials, ExposeSecret};
use rolecall_core::engine::adhoc::{self, Ask, Wanted};

use crate::cli::{AskArgs, ExportArgs, ExportFormat, ProfileArg};
use crate::cmd::{engine, engine_with};
use crate::prompt::TtyPrompt;

/// The environment variables that carry a profile's credentials, in a stable order, and
/// `ROLECALL_PROFILE` naming the profile (as aws-vault's `AWS_VAULT`), for shell prompts.
pub fn variables(
    profile: &str,
    creds: &Credentials,
    region: Option<&str>,
) -> Vec<(&'static str, String)> {
    let mut v = vec![
        ("ROLECALL_PROFILE", profile.to_string()),
        ("AWS_ACCESS_KEY_ID", creds.access_key_id.clone()),
        (
            "AWS_SECRET_ACCESS_KEY",
            creds.secret_access_key.expose_secret().to_string(),
        ),
    ];
    if let Some(t) = &creds.session_token {
        v.push(("AWS_SESSION_TOKEN", t.expose_secret().to_string()));
    }
    if let Some(e) = creds.expiration {
        v.push(("AWS_CREDENTIAL_EXPIRATION", timestamp::format(e)));
    }
    if let Some(r) = region {
        v.push(("AWS_REGION", r.to_string()));
        v.push(("AWS_DEFAULT_REGION", r.to_string()));
    }
    v
}

fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn ps_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// What `exec` or `export` asks for: the profile named first in `words` (then, for `exec`,
/// the command), or with `--role-arn` none (the words are the command), or `$AWS_PROFILE`
/// when it names a Rolecall profile and `words` does not start with one (said on stderr);
/// with the flags' lifetimes. What `exec` runs is left in `words`.
pub fn ask(
    config: &Config,
    words: &mut Vec<String>,
    args: AskArgs,
    exec: bool,
) -> Result<Ask, rolecall_core::Error> {
    let session = args.session;
    let wanted = move |p: String| {
        if session {
            Wanted::Session(p)
        } else {
            Wanted::Profile(p)
        }
    };
    let known = |w: &String| config.profiles.contains_key(w);
    let wanted = if let Some(role_arn) = args.role_arn {
        if !exec && !words.is_empty() {
            return Err(adhoc::Error::Invalid {
                flag: "--role-arn",
                message: "names the role itself: leave PROFILE out".into(),
            }
            .into());
        }
        Wanted::Role {
            role_arn,
            source: args.source,
            mfa_serial: args.mfa_serial,
        }
    } else if words.first().is_some_and(known) || (!exec && !words.is_empty()) {
        wanted(words.remove(0))
    } else if let Some(p) = args.aws_profile.filter(known) {
        eprintln!("rolecall: no profile named: using profile {p} from $AWS_PROFILE");
        wanted(p)
    } else if !words.is_empty() {
        // not a profile: the engine says so, with the known ones
        wanted(words.remove(0))
    } else {
        let names: Vec<&str> = config.profiles.keys().map(String::as_str).collect();
        return Err(adhoc::Error::NoProfile {
            known: if names.is_empty() {
                "(none)".into()
            } else {
                names.join(", ")
            },
        }
        .into());
    };
    Ok(Ask {
        wanted,
        duration: args.duration,
        session_duration: args.session_duration,
    })
}

pub async fn run(paths: Paths, args: ExportArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let opts = RefreshOptions {
        force: false,
        mfa_code: args.mfa_code,
    };
    let mut words: Vec<String> = args.profile.into_iter().collect();
    let ask = ask(&engine.config(), &mut words, args.ask, false)?;
    let handed = engine.hand_over(&ask, opts).await?;
    let (creds, region) = (handed.credentials, handed.region);
    let vars = variables(&handed.name, &creds, region.as_deref());
    let mut out = String::new();
    match args.format {
        ExportFormat::Sh => {
            out.push_str("unset AWS_PROFILE\n");
            for (k, v) in &vars {
                out.push_str(&format!("export {k}={}\n", sh_quote(v)));
            }
        }
        ExportFormat::Fish => {
            out.push_str("set -e AWS_PROFILE\n");
            for (k, v) in &vars {
                out.push_str(&format!("set -gx {k} {}\n", sh_quote(v)));
            }
        }
        ExportFormat::Powershell => {
            out.push_str("Remove-Item Env:AWS_PROFILE -ErrorAction SilentlyContinue\n");
            for (k, v) in &vars {
                out.push_str(&format!("$Env:{k} = {}\n", ps_quote(v)));
            }
        }
        ExportFormat::Json => {
            let map: serde_json::Map<String, serde_json::Value> = vars
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.into()))
                .collect();
            out = serde_json::to_string_pretty(&map)? + "\n";
        }
        ExportFormat::Env => {
            // no quoting: docker's --env-file and systemd take the value as it is (and the
            // values here hold no newline or leading space)
            for (k, v) in &vars {
                out.push_str(&format!("{k}={v}\n"));
            }
        }
    }
    out!("{out}");
    Ok(crate::exit::OK)
}

/// `credential_process`: the AWS CLI and SDKs run it with stdout and stderr piped, so an MFA
/// code is asked for on the controlling terminal, or not at all (see `TtyPrompt`).
pub async fn credential_process(paths: Paths, args: ProfileArg) -> anyhow::Result<u8> {
    let engine = engine_with(paths, Arc::new(TtyPrompt)).await?;
    let profile = &args.profile;
    let mut got = engine.credentials(profile, RefreshOptions::default()).await;
    // no terminal answered: the tray app's popup can (the SDK that runs us waits meanwhile)
    let mut popup = Popup::NotShown;
    if let Err(e) = &got
        && let Some(source) = e.mfa_source()
    {
        popup = code_from_the_app(engine.paths(), profile, source).await;
        if popup == Popup::Answered {
            got = engine.credentials(profile, RefreshOptions::default()).await;
        }
    }
    let (creds, _) = match got {
        Ok(got) => got,
        Err(e) if e.mfa_source().is_some() => {
            // name what actually runs: a code given to `rolecall refresh` reaches a running
            // agent (daemon or tray app), or renews in-process when none runs
            let agent = match crate::cmd::running_agent(engine.paths()).await {
                Some(mut agent) => agent.ping().await.ok().map(|pong| pong.pid),
                None => None,
            };
            let then = match agent {
                Some(pid) => format!(
                    "run `rolecall refresh {profile}` in a terminal (it hands the code to the \
                     running rolecall agent, pid {pid}), then try again"
                ),
                None => format!(
                    "no rolecall agent is running; run `rolecall refresh {profile}` in a \
                     terminal, then try again"
                ),
            };
            let why = if popup == Popup::Unanswered {
                let wait = humantime::format_duration(crate::cmd::refresh::POPUP_WAIT);
                format!(
                    "no code was entered in the Rolecall app's MFA window within {wait} (open it \
                     again from the tray: Enter MFA code…); or "
                )
            } else {
                "credential_process could not ask for an MFA code (no terminal, or no code \
                 entered); "
                    .to_owned()
            };
            return Err(anyhow::Error::new(e).context(format!("profile {profile}: {why}{then}")));
        }
        Err(e) => return Err(e.into()),
    };
    let mut doc = serde_json::json!({
        "Version": 1,
        "AccessKeyId": creds.access_key_id,
        "SecretAccessKey": creds.secret_access_key.expose_secret(),
    });
    if let Some(t) = &creds.session_token {
        doc["SessionToken"] = t.expose_secret().into();
    }
    if let Some(e) = creds.expiration {
        doc["Expiration"] = timestamp::format(e).into();
    }
    outln!("{doc}");
    Ok(crate::exit::OK)
}

/// What came of asking the tray app for a code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Popup {
    /// No app that asks for codes runs (or it could not be asked).
    NotShown,
    /// The popup was shown and the session started.
    Answered,
    /// The popup was shown but no session started within the wait.
    Unanswered,
}

/// When an app asks for codes in its window (`ping`'s `asks_codes`), has the agent ask for
/// `source`'s code (the popup opens) and waits, at most [`crate::cmd::refresh::POPUP_WAIT`],
/// for the session to start.
async fn code_from_the_app(paths: &Paths, profile: &str, source: &str) -> Popup {
    let Some(mut agent) = crate::cmd::agent(paths, false).await else {
        return Popup::NotShown;
    };
    if !agent.ping().await.is_ok_and(|p| p.asks_codes) {
        return Popup::NotShown;
    }
    // subscribed before asking, so the session the popup starts is seen
    let mut sessions = crate::cmd::refresh::session_watch(paths).await;
    if sessions.is_none() {
        return Popup::NotShown;
    }
    let wait = humantime::format_duration(crate::cmd::refresh::POPUP_WAIT);
    eprintln!(
        "rolecall: profile {profile} needs an MFA code for source {source}: waiting up to {wait} \
         for it in the Rolecall app's window"
    );
    // the agent's engine asks the app for the code (it fails for want of one at first)
    if let Err(e) = agent.refresh(vec![profile.to_owned()], false, None).await {
        tracing::debug!(error = %e, "the agent's refresh");
    }
    let started = tokio::time::timeout(
        crate::cmd::refresh::POPUP_WAIT,
        crate::cmd::refresh::session_started(&mut sessions, source),
    )
    .await;
    if matches!(started, Ok(Some(()))) {
        Popup::Answered
    } else {
        Popup::Unanswered
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_quoting_survives_quotes() {
        assert_eq!(sh_quote("a'b"), r"'a'\''b'");
        assert_eq!(ps_quote("a'b"), "'a''b'");
    }
}
