//! `rolecall import [--dry-run]`: role profiles of ~/.aws/config and ~/.aws/credentials into
//! Rolecall's config, and their role keys there commented out (their credentials-file
//! sections taken over) so that the AWS tools use Rolecall's credentials.

use rolecall_core::config::Paths;
use rolecall_core::engine::LineChange;

use crate::cli::ImportArgs;
use crate::cmd::engine;

pub async fn run(paths: Paths, args: ImportArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let outcome = engine.import_aws_config(args.dry_run).await?;
    let plan = &outcome.plan;
    let aws = outcome.aws_config.display();
    let verb = if args.dry_run { "would add" } else { "added" };
    let credentials = outcome.credentials_file.display();
    let nothing = plan.sources.is_empty()
        && plan.profiles.is_empty()
        && outcome.aws_config_changes.is_empty()
        && outcome.credentials_file_changes.is_empty();
    if nothing {
        outln!("nothing to import from {aws} or {credentials}");
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
    for (name, what) in &plan.changed {
        outln!("changed {name}: {what}");
    }
    for (name, what) in &plan.unmapped {
        outln!("not mapped in {name}: {what}");
    }
    for (name, why) in &plan.skipped {
        outln!("skipped {name}: {why}");
    }
    if !outcome.aws_config_changes.is_empty() {
        let what = "the role keys of the imported profiles become comments, so that the AWS \
                    CLI and the SDKs use Rolecall's credentials for them (region, output and \
                    every other line stay as they are)";
        match (&outcome.backup, args.dry_run) {
            (_, true) => outln!("would change {aws}: {what}"),
            (Some(backup), false) => outln!(
                "changed {aws} (kept as it was in {}): {what}",
                backup.display()
            ),
            (None, false) => outln!("changed {aws}: {what}"),
        }
        print_changes(&outcome.aws_config_changes);
    }
    if !outcome.credentials_file_changes.is_empty() {
        let what = "the sections of the imported role profiles become Rolecall's (their role \
                    keys become comments, the marker x_rolecall_managed goes in), so that the \
                    next refresh writes their credentials there; every other section stays as \
                    it is";
        let verb = if args.dry_run {
            "would change"
        } else {
            "changed"
        };
        outln!("{verb} {credentials}: {what}");
        print_changes(&outcome.credentials_file_changes);
    }
    if args.dry_run {
        if !nothing {
            outln!("next: rolecall import   (this was a dry run: nothing was changed)");
        }
        return Ok(crate::exit::OK);
    }
    for s in &plan.sources {
        if outcome.keys_in_credentials_file.contains(&s.name) {
            outln!(
                "next: rolecall keys import {0} --scrub   (moves the key of [{0}] in the \
                 credentials file into the keychain)",
                s.name
            );
        } else {
            outln!(
                "next: rolecall keys add {}   (stores its access key in the keychain)",
                s.name
            );
        }
    }
    if !plan.profiles.is_empty()
        || !outcome.aws_config_changes.is_empty()
        || !outcome.credentials_file_changes.is_empty()
    {
        outln!(
            "next: rolecall refresh   (asks for an MFA code if a session needs one, then writes \
             the profiles' credentials, which the AWS CLI uses: aws --profile NAME …)"
        );
    }
    Ok(crate::exit::OK)
}

/// The changed lines as a diff: a `@@ line N [section] @@` line per run of adjacent lines,
/// then each line before (`-`) and after (`+`).
fn print_changes(changes: &[LineChange]) {
    let mut previous: Option<&LineChange> = None;
    for change in changes {
        let adjacent =
            previous.is_some_and(|p| p.line + 1 == change.line && p.section == change.section);
        if !adjacent {
            outln!(
                "@@ line {}{} @@",
                change.line,
                change
                    .section
                    .as_deref()
                    .map(|s| format!(" {s}"))
                    .unwrap_or_default()
            );
        }
        if !change.inserted {
            outln!("-{}", change.old);
        }
        outln!("+{}", change.new);
        previous = Some(change);
    }
}
