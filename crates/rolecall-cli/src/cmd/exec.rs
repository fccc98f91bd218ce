//! `rolecall exec PROFILE -- CMD…`: run a command with the profile's credentials.

use anyhow::Context;
use rolecall_core::RefreshOptions;
use rolecall_core::config::Paths;

use crate::cli::ExecArgs;
use crate::cmd::engine;
use crate::cmd::export::variables;

pub async fn run(paths: Paths, args: ExecArgs) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let opts = RefreshOptions {
        force: false,
        mfa_code: args.mfa_code,
    };
    let (creds, region) = engine.credentials(&args.profile, opts).await?;
    let (program, rest) = args
        .command
        .split_first()
        .context("no command given after --")?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest)
        // the profile would make SDKs read the file instead of these variables
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_DEFAULT_PROFILE");
    for (k, v) in variables(&creds, region.as_deref()) {
        cmd.env(k, v);
    }
    let status = cmd
        .status()
        .await
        .with_context(|| format!("cannot run {program:?}"))?;
    if let Some(code) = status.code() {
        return Ok(u8::try_from(code).unwrap_or(crate::exit::FAILED));
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(sig) = status.signal() {
            return Ok(u8::try_from(128 + sig).unwrap_or(crate::exit::FAILED));
        }
    }
    Ok(crate::exit::FAILED)
}
