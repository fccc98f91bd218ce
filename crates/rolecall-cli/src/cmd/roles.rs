//! `rolecall roles SOURCE`: the roles the source's IAM user may assume, as its own policies and
//! its groups' say.

use rolecall_core::config::Paths;

use crate::cli::RolesArgs;
use crate::cmd::engine;

/// What the listing cannot see, said every time.
const NOTE: &str = "note: read from the IAM user's own policies and its groups' (Allow \
    statements with sts:AssumeRole; Deny, NotAction and NotResource are not weighed); each \
    role's trust policy, permissions boundaries and organization policies are not visible to \
    the user, so a role listed may still refuse it, and a role that trusts the user by name may \
    be missing";

pub async fn run(paths: Paths, args: RolesArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let found = engine.assumable_roles(&args.source).await?;
    if args.json {
        let out = serde_json::json!({
            "user": found.user,
            "roles": found.items.grants,
            "unreadable_policies": found.items.unreadable,
        });
        outln!("{}", serde_json::to_string_pretty(&out)?);
    } else if found.items.grants.is_empty() {
        outln!(
            "IAM user {}'s policies allow sts:AssumeRole on no role",
            found.user
        );
    } else {
        for grant in &found.items.grants {
            outln!("{}", grant.role);
            for via in &grant.via {
                outln!("    from {via}");
            }
        }
    }
    for policy in &found.items.unreadable {
        eprintln!("rolecall: warning: {policy} is not a readable policy document; skipped");
    }
    eprintln!("rolecall: {NOTE}");
    Ok(crate::exit::OK)
}
