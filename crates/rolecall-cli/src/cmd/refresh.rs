//! `rolecall refresh`: renew what is due, report each profile, exit 1 if any failed.
//!
//! With a running agent the agent does the work (and keeps its schedule); otherwise it is done
//! in this process.

use std::io::IsTerminal;

use rolecall_core::config::Paths;
use rolecall_core::serve::protocol::{Report, ReportKind};
use rolecall_core::{RefreshOptions, Targets};

use crate::cli::RefreshArgs;
use crate::cmd::{agent, engine, left, rfc3339};

pub async fn run(paths: Paths, args: RefreshArgs, no_agent: bool) -> anyhow::Result<u8> {
    let profiles = if args.all { Vec::new() } else { args.profiles };
    if let Some(mut agent) = agent(&paths, no_agent).await {
        let mut reports = agent
            .refresh(profiles, args.force, args.mfa_code.clone())
            .await?;
        // the agent cannot prompt: ask here, then hand it the code
        if args.mfa_code.is_none()
            && std::io::stdin().is_terminal()
            && let Some(source) = reports.iter().find_map(|r| r.mfa_source.clone())
        {
            let serial = rolecall_core::config::Config::load(&paths.config_file)
                .ok()
                .and_then(|c| c.sources.get(&source).and_then(|s| s.mfa_serial.clone()))
                .unwrap_or_default();
            if let Some(code) = crate::prompt::ask_mfa(&source, &serial).await {
                reports = agent.mfa(&source, code).await?;
            }
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

/// Prints one line per profile (failures' reasons on stderr); the exit code.
pub fn print(reports: &[Report], paths: &Paths) -> u8 {
    if reports.is_empty() {
        println!(
            "no profiles configured; add one to {}",
            paths.config_file.display()
        );
    }
    let width = reports.iter().map(|r| r.profile.len()).max().unwrap_or(0);
    let mut failed = false;
    for r in reports {
        let name = &r.profile;
        match (r.result, r.expiration) {
            (ReportKind::Refreshed, Some(e)) => {
                println!(
                    "{name:width$}  renewed, expires {} (in {})",
                    rfc3339(e),
                    left(e)
                );
            }
            (ReportKind::Refreshed, None) => println!("{name:width$}  renewed"),
            (ReportKind::StillValid, Some(e)) => {
                println!(
                    "{name:width$}  still valid until {} ({} left)",
                    rfc3339(e),
                    left(e)
                );
            }
            (ReportKind::StillValid, None) => println!("{name:width$}  still valid"),
            (ReportKind::Failed, _) => {
                failed = true;
                println!("{name:width$}  FAILED");
                eprintln!("rolecall: {}", r.message.as_deref().unwrap_or("failed"));
            }
        }
    }
    if failed {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    }
}
