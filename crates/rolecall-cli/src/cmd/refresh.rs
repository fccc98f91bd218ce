//! `rolecall refresh`: renew what is due, report each profile, exit 1 if any failed.

use rolecall_core::config::Paths;
use rolecall_core::{Outcome, RefreshOptions, Targets};

use crate::cli::RefreshArgs;
use crate::cmd::{engine, left, rfc3339};

pub async fn run(paths: Paths, args: RefreshArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let targets = if args.all || args.profiles.is_empty() {
        Targets::All
    } else {
        Targets::Some(args.profiles)
    };
    let opts = RefreshOptions {
        force: args.force,
        mfa_code: args.mfa_code,
    };
    let outcomes = engine.refresh(&targets, opts).await?;
    if outcomes.is_empty() {
        println!(
            "no profiles configured; add one to {}",
            engine.paths().config_file.display()
        );
    }
    let width = outcomes.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
    let mut failed = false;
    for (name, outcome) in &outcomes {
        match outcome {
            Outcome::Refreshed {
                expiration: Some(e),
            } => {
                println!(
                    "{name:width$}  renewed, expires {} (in {})",
                    rfc3339(*e),
                    left(*e)
                );
            }
            Outcome::Refreshed { expiration: None } => println!("{name:width$}  renewed"),
            Outcome::StillValid {
                expiration: Some(e),
            } => {
                println!(
                    "{name:width$}  still valid until {} ({} left)",
                    rfc3339(*e),
                    left(*e)
                );
            }
            Outcome::StillValid { expiration: None } => println!("{name:width$}  still valid"),
            Outcome::Failed(e) => {
                failed = true;
                println!("{name:width$}  FAILED");
                eprintln!("rolecall: {e}");
            }
        }
    }
    Ok(if failed {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    })
}
