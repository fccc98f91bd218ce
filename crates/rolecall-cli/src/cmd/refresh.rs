//! `rolecall refresh`: renew what is due, report each profile, exit 1 if any failed.
//!
//! With a running agent the agent does the work (and keeps its schedule); otherwise it is done
//! in this process. Through an agent, a code the agent needs is asked on the terminal, and
//! another client of the agent may give it meanwhile: the tray app, which hosts the agent and
//! opens its MFA popup on the same request. The first answer wins. With no terminal (a
//! script, an IDE, cron) and an app that asks for codes in its window, the command waits for
//! the code there, at most [`POPUP_WAIT`], then fails with how to give it.

use rolecall_core::timestamp;
use std::io::IsTerminal;

use rolecall_core::config::{Config, Paths};
use rolecall_core::events::Event;
use rolecall_core::serve::client::{self, AgentClient, AgentEvent};
use rolecall_core::serve::protocol::{Report, ReportKind};
use rolecall_core::{RefreshOptions, Targets};

use crate::cli::RefreshArgs;
use crate::cmd::{agent, engine, left, running_agent};

/// How long a command with no terminal waits for a code given in the tray app's popup.
pub const POPUP_WAIT: std::time::Duration = std::time::Duration::from_secs(120);

/// Who gives the codes the agent needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Asker {
    /// This terminal (or the app's popup, whichever answers first).
    Terminal,
    /// Only the app's popup: no terminal here.
    Popup,
}

pub async fn run(paths: Paths, args: RefreshArgs, no_agent: bool) -> anyhow::Result<u8> {
    let profiles = if args.all { Vec::new() } else { args.profiles };
    if let Some(mut agent) = agent(&paths, no_agent).await {
        let asker = if std::io::stdin().is_terminal() {
            Some(Asker::Terminal)
        } else if agent.ping().await.is_ok_and(|p| p.asks_codes) {
            Some(Asker::Popup)
        } else {
            None
        };
        // subscribed before asking, so a session another client starts from now on is seen
        let mut sessions = match asker {
            Some(_) => session_watch(&paths).await,
            None => None,
        };
        let mut reports = agent.refresh(profiles, args.force, args.mfa_code).await?;
        // the agent cannot prompt: ask here, as the in-process engine's prompter would
        if let Some(asker) = asker {
            supply_mfa(
                asker,
                &mut agent,
                &mut sessions,
                &mut reports,
                &paths,
                args.force,
            )
            .await;
        }
        return Ok(print(&reports, &paths));
    }
    let engine = engine(paths.clone()).await?;
    let targets = if profiles.is_empty() {
        Targets::All
    } else {
        Targets::Some(profiles)
    };
    let opts = RefreshOptions {
        force: args.force,
        mfa_code: args.mfa_code,
    };
    let outcomes = engine.refresh(&targets, opts).await?;
    Ok(print(
        &rolecall_core::serve::protocol::Report::all(&outcomes),
        &paths,
    ))
}

/// For each source that still needs an MFA code (in the order of the first profile waiting on
/// it), asks for the code and has the agent renew the profiles waiting on it (chained ones
/// included) with it; its answer replaces their reports, the others (other sources, other
/// failures) stay. When `sessions` sees the source's session start while the terminal waits
/// (the app's popup got the code), the question is dropped and the agent renews them from that
/// session, without a code. The session started this way also resumes whatever else of the agent's
/// waited on that source. A source whose code is
/// not given, or that the agent refuses (a malformed code), stays failed with the reason, and
/// the next source is asked all the same, as the in-process engine's prompter does. With
/// [`Asker::Popup`] only the popup can answer: each source waits at most [`POPUP_WAIT`].
async fn supply_mfa(
    asker: Asker,
    agent: &mut AgentClient,
    sessions: &mut Option<AgentClient>,
    reports: &mut [Report],
    paths: &Paths,
    force: bool,
) {
    let mut sources: Vec<String> = Vec::new();
    for source in reports.iter().filter_map(|r| r.mfa_source.as_ref()) {
        if !sources.contains(source) {
            sources.push(source.clone());
        }
    }
    if sources.is_empty() {
        return;
    }
    let config = Config::load(&paths.config_file).ok();
    for source in &sources {
        let waiting = |r: &Report| r.mfa_source.as_ref() == Some(source);
        if !reports.iter().any(waiting) {
            continue;
        }
        let serial = config
            .as_ref()
            .and_then(|c| c.sources.get(source))
            .and_then(|s| s.mfa_serial.clone())
            .unwrap_or_default();
        let code = match asker {
            Asker::Terminal => tokio::select! {
                code = crate::prompt::ask_mfa(source, &serial) => match code {
                    Some(code) => Some(code),
                    None => continue,
                },
                Some(()) = session_started(sessions, source) => {
                    eprintln!("\nrolecall: the code for source {source} was given in the Rolecall app");
                    None
                }
            },
            Asker::Popup => {
                let wait = humantime::format_duration(POPUP_WAIT);
                eprintln!(
                    "rolecall: source {source} needs an MFA code: waiting up to {wait} for it \
                     in the Rolecall app's window"
                );
                match tokio::time::timeout(POPUP_WAIT, session_started(sessions, source)).await {
                    Ok(Some(())) => {
                        eprintln!(
                            "rolecall: the code for source {source} was given in the Rolecall app"
                        );
                        None
                    }
                    Ok(None) | Err(_) => {
                        let why = format!(
                            "no MFA code for source {source} was given in the Rolecall app's \
                             window within {wait}; give it there, or run `rolecall refresh \
                             --mfa-code CODE`"
                        );
                        for r in reports.iter_mut().filter(|r| waiting(r)) {
                            r.message = Some(why.clone());
                        }
                        continue;
                    }
                }
            }
        };
        let profiles: Vec<String> = reports
            .iter()
            .filter(|r| waiting(r))
            .map(|r| r.profile.clone())
            .collect();
        match agent.refresh(profiles, force, code).await {
            Ok(answer) => merge(reports, answer),
            Err(e) => {
                let message = e.to_string();
                for r in reports.iter_mut() {
                    if waiting(r) {
                        r.message = Some(message.clone());
                    }
                }
                // the connection broke: the next code would be asked for in vain
                if !matches!(e, client::Error::Remote(_)) {
                    return;
                }
            }
        }
    }
}

/// A second connection to the agent, subscribed to its events; `None` when that fails (then
/// only the terminal can answer).
pub(crate) async fn session_watch(paths: &Paths) -> Option<AgentClient> {
    let mut client = running_agent(paths).await?;
    match client.subscribe().await {
        Ok(()) => Some(client),
        Err(e) => {
            tracing::debug!(error = %e, "cannot follow the agent's events");
            None
        }
    }
}

/// Waits until `sessions` reports a new session of `source`; `None` (never, for the caller's
/// `select!`) when there is no stream or it ends.
pub(crate) async fn session_started(
    sessions: &mut Option<AgentClient>,
    source: &str,
) -> Option<()> {
    let client = sessions.as_mut()?;
    loop {
        match client.next_event().await {
            Ok(Some(AgentEvent::Event(Event::SessionStarted { source: s, .. }))) if s == source => {
                return Some(());
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => {
                *sessions = None;
                return None;
            }
        }
    }
}

/// Replaces the reports of the profiles in `answer` with the new ones, in place. Profiles not
/// reported yet (the agent also resumed ones that were not asked for) are left out: the
/// output and the exit code are about what was asked.
fn merge(reports: &mut [Report], answer: Vec<Report>) {
    for new in answer {
        if let Some(old) = reports.iter_mut().find(|r| r.profile == new.profile) {
            *old = new;
        }
    }
}

/// Prints one line per profile, a failure with its short reason; then, on stderr, each full
/// reason (what to do) once, however many profiles it stopped. Returns the exit code.
pub fn print(reports: &[Report], paths: &Paths) -> u8 {
    if reports.is_empty() {
        outln!(
            "no profiles configured; add one to {}",
            paths.config_file.display()
        );
    }
    let width = reports.iter().map(|r| r.profile.len()).max().unwrap_or(0);
    let mut causes: Vec<&str> = Vec::new();
    for r in reports {
        let name = &r.profile;
        match (r.result, r.expiration) {
            (ReportKind::Refreshed, Some(e)) => {
                outln!(
                    "{name:width$}  renewed, expires {} (in {})",
                    timestamp::format(e),
                    left(e)
                );
            }
            (ReportKind::Refreshed, None) => outln!("{name:width$}  renewed"),
            (ReportKind::StillValid, Some(e)) => {
                outln!(
                    "{name:width$}  still valid until {} ({} left)",
                    timestamp::format(e),
                    left(e)
                );
            }
            (ReportKind::StillValid, None) => outln!("{name:width$}  still valid"),
            (ReportKind::Failed, _) => {
                let message = r.message.as_deref().unwrap_or("failed");
                outln!("{name:width$}  FAILED: {}", short_reason(name, message));
                causes.push(message);
            }
        }
    }
    for cause in shared_causes(&causes) {
        eprintln!("rolecall: {cause}");
    }
    if !causes.is_empty() {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    }
}

/// What failed, without what to do about it, and without the profile's name (the line starts
/// with it): the part of the message before its first `; ` or ` (`. Messages say what failed,
/// then what to do, and a chained profile's failure holds its upstream's message in brackets.
fn short_reason<'a>(profile: &str, message: &'a str) -> &'a str {
    let message = message
        .strip_prefix("profile ")
        .and_then(|m| m.strip_prefix(profile))
        .and_then(|m| m.strip_prefix(": "))
        .unwrap_or(message);
    let end = [message.find("; "), message.find(" (")]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(message.len());
    &message[..end]
}

/// The failures' full messages, each once: a message already said, or holding one already said
/// (a chained profile's, which quotes its upstream's), is left out.
fn shared_causes<'a>(messages: &[&'a str]) -> Vec<&'a str> {
    let mut out: Vec<&str> = Vec::new();
    for m in messages {
        if !messages.iter().any(|other| other != m && m.contains(other)) && !out.contains(m) {
            out.push(m);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(profile: &str, result: ReportKind, mfa_source: Option<&str>) -> Report {
        Report {
            profile: profile.into(),
            result,
            expiration: None,
            message: (result == ReportKind::Failed).then(|| format!("{profile} failed")),
            mfa_source: mfa_source.map(str::to_string),
        }
    }

    #[test]
    fn a_failure_is_named_short_and_its_cause_said_once() {
        let no_key = "source work: no key in the keychain; store one with `rolecall keys add work`";
        let upstream =
            format!("profile audit: not renewed because profile dev-admin failed ({no_key})");
        assert_eq!(
            short_reason("dev-admin", no_key),
            "source work: no key in the keychain"
        );
        assert_eq!(
            short_reason("audit", &upstream),
            "not renewed because profile dev-admin failed"
        );
        assert_eq!(shared_causes(&[no_key, &upstream, no_key]), [no_key]);
    }

    #[test]
    fn an_mfa_answer_replaces_its_profiles_and_keeps_the_others() {
        let mut reports = vec![
            report("a", ReportKind::Failed, Some("s")),
            report("b", ReportKind::Failed, None),
            report("c", ReportKind::Failed, Some("t")),
            report("d", ReportKind::StillValid, None),
        ];
        merge(
            &mut reports,
            vec![
                report("a", ReportKind::Refreshed, None),
                report("x", ReportKind::Refreshed, None),
            ],
        );
        let got: Vec<(&str, ReportKind)> = reports
            .iter()
            .map(|r| (r.profile.as_str(), r.result))
            .collect();
        assert_eq!(
            got,
            [
                ("a", ReportKind::Refreshed),
                ("b", ReportKind::Failed),
                ("c", ReportKind::Failed),
                ("d", ReportKind::StillValid),
            ]
        );
    }
}
