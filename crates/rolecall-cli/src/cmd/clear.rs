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
    let (removed, file) = match through_agent {
        Some(mut agent) => {
            let cleared = agent.clear(args.profiles).await?;
            (cleared.removed, cleared.credentials_file)
        }
        None => {
            let engine = engine(paths).await?;
            let targets = if all {
                Targets::All
            } else {
                Targets::Some(args.profiles)
            };
            let removed = engine.clear(&targets).await?;
            (removed, engine.credentials_file().path().to_path_buf())
        }
    };
    if removed.is_empty() {
        outln!("no managed sections to remove");
    } else {
        outln!("removed [{}] from {}", removed.join("], ["), file.display());
    }
    if all {
        outln!("forgot cached MFA sessions (long-lived keys are kept)");
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
