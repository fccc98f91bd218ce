//! `rolecall status [--json]`.

use rolecall_core::config::Paths;
use rolecall_core::timestamp;

use crate::cli::StatusArgs;
use crate::cmd::{agent, engine, short};

pub async fn run(paths: Paths, args: StatusArgs, no_agent: bool) -> anyhow::Result<u8> {
    // a running daemon renews at its planned time; without one, renewals are only due
    let (status, daemon, local) = match agent(&paths, no_agent).await {
        // the agent runs on the same files; the file's orphans are read here (a config that
        // does not load here is the agent's to report)
        Some(mut agent) => {
            let status = agent.status().await?;
            // a config the agent refused: it runs on the last good one (issue 14)
            if let Ok(pong) = agent.ping().await
                && let Some(error) = pong.config_error
            {
                eprintln!(
                    "rolecall: warning: the running agent refused the changed config and runs \
                     on the last good config until the file is fixed: {error}"
                );
            }
            (status, true, engine(paths.clone()).await.ok())
        }
        None => {
            let engine = engine(paths.clone()).await?;
            (engine.status().await?, false, Some(engine))
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&status)?);
        return Ok(crate::exit::OK);
    }
    let orphans = match &local {
        Some(engine) => engine.orphaned_sections().await.unwrap_or_default(),
        None => Vec::new(),
    };
    let print_orphans = || {
        for name in &orphans {
            outln!("orphaned: [{name}] belongs to no profile of the config: rolecall clear {name}");
        }
    };
    if status.is_empty() {
        outln!(
            "no profiles configured; add one to {}",
            paths.config_file.display()
        );
        print_orphans();
        return Ok(crate::exit::OK);
    }
    let rows: Vec<[String; 7]> = status
        .iter()
        .map(|s| {
            [
                format!("{}{}", s.profile, if s.active { " *" } else { "" }),
                s.upstream.clone(),
                s.role_arn.clone().unwrap_or_else(|| "(session)".into()),
                s.state.to_string(),
                s.expiration
                    .map(timestamp::format)
                    .unwrap_or_else(|| "-".into()),
                s.seconds_left
                    .filter(|l| *l > 0)
                    .map(|l| short(std::time::Duration::from_secs(l)))
                    .unwrap_or_else(|| "-".into()),
                s.next_renewal
                    .map(|t| {
                        let t = timestamp::format(t);
                        if daemon { t } else { format!("due {t}") }
                    })
                    .unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let header = [
        "PROFILE", "FROM", "ROLE", "STATE", "EXPIRES", "LEFT", "RENEWS",
    ];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                out.push_str(c);
            } else {
                out.push_str(&format!("{c:w$}  ", w = widths[i]));
            }
        }
        out
    };
    outln!("{}", line(&header));
    for r in &rows {
        outln!(
            "{}",
            line(&r.iter().map(String::as_str).collect::<Vec<_>>())
        );
    }
    for s in status.iter().filter(|s| s.message.is_some()) {
        eprintln!(
            "{}: {}",
            s.profile,
            s.message.as_deref().unwrap_or_default()
        );
    }
    for note in mfa_notes(&status) {
        outln!("{note}");
    }
    for s in &status {
        if let Some(before) = s.renews_before {
            outln!(
                "({}: renewed {} before it expires, a third of its lifetime, which is not longer \
                 than refresh_before)",
                s.profile,
                short(std::time::Duration::from_secs(before))
            );
        }
    }
    if !daemon && status.iter().any(|s| s.next_renewal.is_some()) {
        outln!("(no daemon runs: due renewals happen at the next `rolecall refresh`)");
    }
    if status.iter().any(|s| s.active) {
        outln!("(* mirrored into [default])");
    }
    print_orphans();
    Ok(crate::exit::OK)
}

/// What happens to a profile that still has credentials but whose renewal needs a new MFA
/// session (issue 14: "needs MFA" beside 13 minutes left looked broken): it stays usable until
/// it expires, and the code must come before then.
fn mfa_notes(status: &[rolecall_core::ProfileStatus]) -> Vec<String> {
    status
        .iter()
        .filter(|s| s.needs_mfa() && s.seconds_left.is_some_and(|l| l > 0))
        .filter_map(|s| {
            let until = timestamp::format(s.expiration?);
            let left = short(std::time::Duration::from_secs(s.seconds_left?));
            Some(format!(
                "({}: still valid until {until}, {left} left; renewing it needs an MFA code for \
                 source {} before then: rolecall refresh)",
                s.profile, s.source
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use rolecall_core::{ProfileStatus, State};

    use super::mfa_notes;

    fn profile(name: &str, state: State, left: Option<u64>) -> ProfileStatus {
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        ProfileStatus {
            profile: name.into(),
            source: "work".into(),
            upstream: "work".into(),
            role_arn: None,
            active: false,
            expiration: left.map(|_| at),
            seconds_left: left,
            state,
            message: None,
            next_renewal: None,
            renews_before: None,
        }
    }

    #[test]
    fn a_profile_still_valid_but_needing_a_code_says_until_when() {
        let notes = mfa_notes(&[
            profile("dev", State::NeedsMfa, Some(13 * 60)),
            profile("gone", State::NeedsMfa, Some(0)),
            profile("never", State::NeedsMfa, None),
            profile("fine", State::Fresh, Some(3000)),
        ]);
        assert_eq!(
            notes,
            [
                "(dev: still valid until 2027-01-15T08:00:00Z, 13m left; renewing it needs an MFA \
              code for source work before then: rolecall refresh)"
            ]
        );
    }
}
