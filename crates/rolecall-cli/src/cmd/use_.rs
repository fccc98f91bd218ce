//! `rolecall use PROFILE | --none`.

use rolecall_core::RefreshOptions;
use rolecall_core::config::Paths;
use rolecall_core::timestamp;

use crate::cli::UseArgs;
use crate::cmd::{agent, engine};

pub async fn run(paths: Paths, args: UseArgs, no_agent: bool) -> anyhow::Result<u8> {
    let profile = if args.none {
        None
    } else {
        args.profile.as_deref()
    };
    let expiration = match agent(&paths, no_agent).await {
        Some(mut agent) => {
            agent
                .use_profile(profile.map(str::to_string), args.adopt, args.mfa_code)
                .await?
        }
        None => {
            let opts = RefreshOptions {
                force: false,
                mfa_code: args.mfa_code,
            };
            engine(paths)
                .await?
                .use_profile(profile, args.adopt, opts)
                .await?
        }
    };
    match (profile, expiration) {
        (Some(p), Some(e)) => outln!(
            "[default] now mirrors {p} (expires {})",
            timestamp::format(e)
        ),
        (Some(p), None) => outln!("[default] now mirrors {p}"),
        (None, _) => outln!("[default] is no longer managed by rolecall"),
    }
    Ok(crate::exit::OK)
}
