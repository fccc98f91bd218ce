//! `rolecall watch [--json]`: print the running agent's events as they happen.

use anyhow::Context;
use rolecall_core::config::Paths;
use rolecall_core::events::Event;

use crate::cli::WatchArgs;
use crate::cmd::running_agent;

pub async fn run(paths: Paths, args: WatchArgs) -> anyhow::Result<u8> {
    let mut client = running_agent(&paths).await.context(
        "no rolecall agent is running, so there are no events to watch; start one with \
         `rolecall daemon` (or the tray app)",
    )?;
    client.subscribe().await?;
    while let Some(line) = client.next_event().await? {
        // `rolecall watch | head -3`: nobody reads any more
        if crate::out::gone() {
            return Ok(crate::exit::OK);
        }
        if args.json {
            outln!("{line}");
            continue;
        }
        let now = rolecall_core::timestamp::format(std::time::SystemTime::now());
        if let Some(n) = line.get("lagged") {
            outln!("{now}  ({n} events missed)");
        } else if let Some(ev) = line.get("event") {
            match serde_json::from_value::<Event>(ev.clone()) {
                Ok(event) => outln!("{now}  {event}"),
                // an event this build does not know (newer agent): show it raw
                Err(_) => outln!("{now}  {ev}"),
            }
        }
    }
    eprintln!("rolecall: the agent closed the connection");
    Ok(crate::exit::FAILED)
}
