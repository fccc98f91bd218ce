//! `rolecall clear [PROFILE…]`: done by the running agent when there is one on our files (so
//! that its cached sessions are forgotten too and its subscribers hear of it), else in-process.

use rolecall_core::Targets;
use rolecall_core::config::Paths;

use crate::cli::ClearArgs;
use crate::cmd::{agent, engine, running_agent};

pub async fn run(paths: Paths, args: ClearArgs, no_agent: bool) -> anyhow::Result<u8> {
    let all = args.profiles.is_empty();
    let through_agent = agent(&paths, no_agent).await;
    // any agent (another config's, or one --no-agent passed by) renews what it manages
    let agent_running = through_agent.is_some() || running_agent(&paths).await.is_some();
    let (removed, file, forgotten) = match through_agent {
        Some(mut agent) => {
            let cleared = agent.clear(args.profiles).await?;
            (
                cleared.removed,
                cleared.credentials_file,
                cleared.forgotten_sessions,
            )
        }
        None => {
            let engine = engine(paths).await?;
            let targets = if all {
                Targets::All
            } else {
                Targets::Some(args.profiles)
            };
            let cleared = engine.clear_reported(&targets).await?;
            (
                cleared.removed,
                engine.credentials_file().path().to_path_buf(),
                Some(cleared.forgotten_sessions),
            )
        }
    };
    if removed.is_empty() {
        outln!("no managed sections to remove");
    } else {
        outln!("removed [{}] from {}", removed.join("], ["), file.display());
    }
    // only what was in the keychain and is gone (an agent that predates the answer says
    // nothing about it, so neither does this)
    match forgotten.as_deref() {
        Some([]) if all => {
            outln!("no cached MFA session to forget (long-lived keys are kept)");
        }
        Some([one]) => {
            outln!("forgot the cached MFA session of source {one} (long-lived keys are kept)");
        }
        Some(many) if !many.is_empty() => outln!(
            "forgot the cached MFA sessions of sources {} (long-lived keys are kept)",
            many.join(", ")
        ),
        _ => {}
    }
    if agent_running && !removed.is_empty() {
        // the daemon treats a missing section as due: say so rather than surprise
        eprintln!(
            "rolecall: note: a rolecall agent (daemon or tray app) is running and will write \
             these profiles again when it can; stop it to keep them removed"
        );
    }
    Ok(crate::exit::OK)
}
