//! `rolecall import [--dry-run]`: role profiles of ~/.aws/config into Rolecall's config.

use rolecall_core::config::Paths;

use crate::cli::ImportArgs;
use crate::cmd::engine;

pub async fn run(paths: Paths, args: ImportArgs) -> anyhow::Result<u8> {
    let aws = paths.aws_config_file.clone();
    let engine = engine(paths).await?;
    let plan = engine.import_aws_config(args.dry_run).await?;
    let verb = if args.dry_run { "would add" } else { "added" };
    if plan.sources.is_empty() && plan.profiles.is_empty() {
        outln!("nothing to import from {}", aws.display());
    }
    for s in &plan.sources {
        outln!(
            "{verb} source {}{}",
            s.name,
            s.mfa_serial
                .as_deref()
                .map(|m| format!(" (MFA {m})"))
                .unwrap_or_default()
        );
    }
    for p in &plan.profiles {
        outln!(
            "{verb} profile {} ({} from {})",
            p.name,
            p.role_arn,
            p.source
        );
    }
    for (name, why) in &plan.skipped {
        outln!("skipped {name}: {why}");
    }
    if !plan.sources.is_empty() && !args.dry_run {
        outln!(
            "next: store each source's key with `rolecall keys import NAME --scrub` or `rolecall keys add NAME`"
        );
    }
    Ok(crate::exit::OK)
}
