//! `rolecall clear [PROFILE…]`.

use rolecall_core::Targets;
use rolecall_core::config::Paths;

use crate::cli::ClearArgs;
use crate::cmd::{engine, running_agent};

pub async fn run(paths: Paths, args: ClearArgs) -> anyhow::Result<u8> {
    let agent_running = running_agent(&paths).await.is_some();
    let engine = engine(paths).await?;
    let all = args.profiles.is_empty();
    let targets = if all {
        Targets::All
    } else {
        Targets::Some(args.profiles)
    };
    let removed = engine.clear(&targets).await?;
    if removed.is_empty() {
        outln!("no managed sections to remove");
    } else {
        outln!(
            "removed [{}] from {}",
            removed.join("], ["),
            engine.credentials_file().path().display()
        );
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
