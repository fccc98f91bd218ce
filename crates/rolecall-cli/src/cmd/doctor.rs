//! `rolecall doctor`.

use rolecall_core::config::Paths;
use rolecall_core::doctor::Verdict;

use crate::cmd::engine;

pub async fn run(paths: Paths) -> anyhow::Result<u8> {
    let engine = engine(paths).await?;
    let checks = engine.doctor().await;
    let mut worst = Verdict::Ok;
    for c in &checks {
        let tag = match c.verdict {
            Verdict::Ok => "ok  ",
            Verdict::Warn => "warn",
            Verdict::Fail => "FAIL",
        };
        outln!("{tag}  {:16} {}", c.name, c.detail);
        if c.verdict == Verdict::Fail || (c.verdict == Verdict::Warn && worst == Verdict::Ok) {
            worst = c.verdict;
        }
    }
    Ok(if worst == Verdict::Fail {
        crate::exit::FAILED
    } else {
        crate::exit::OK
    })
}
