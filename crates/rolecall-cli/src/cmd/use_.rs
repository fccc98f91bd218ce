//! `rolecall use PROFILE | --none`.

use rolecall_core::RefreshOptions;
use rolecall_core::config::Paths;

use crate::cli::UseArgs;
use crate::cmd::{engine, rfc3339};

pub async fn run(paths: Paths, args: UseArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let profile = if args.none {
        None
    } else {
        args.profile.as_deref()
    };
    let opts = RefreshOptions {
        force: false,
        mfa_code: args.mfa_code,
    };
    let expiration = engine.use_profile(profile, args.adopt, opts).await?;
    match (profile, expiration) {
        (Some(p), Some(e)) => println!("[default] now mirrors {p} (expires {})", rfc3339(e)),
        (Some(p), None) => println!("[default] now mirrors {p}"),
        (None, _) => println!("[default] is no longer managed by rolecall"),
    }
    Ok(crate::exit::OK)
}
