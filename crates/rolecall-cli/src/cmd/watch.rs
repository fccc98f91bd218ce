//! `rolecall watch [--json]`: print the running agent's events as they happen.

use anyhow::Context;
use rolecall_core::config::Paths;
use rolecall_core::serve::client::AgentEvent;

use crate::cli::WatchArgs;
use crate::cmd::running_agent;

pub async fn run(paths: Paths, args: WatchArgs) -> anyhow::Result<u8> {
    let mut client = running_agent(&paths).await.context(
        "no rolecall agent is running, so there are no events to watch; start one with \
         `rolecall daemon` (or the tray app)",
    )?;
    client.subscribe().await?;
    while let Some(item) = client.next_event().await? {
        // `rolecall watch | head -3`: nobody reads any more
        if crate::out::gone() {
            return Ok(crate::exit::OK);
        }
        if args.json {
            outln!("{}", item.to_json());
            continue;
        }
        let now = rolecall_core::timestamp::format(std::time::SystemTime::now());
        match item {
            AgentEvent::Event(event) => outln!("{now}  {event}"),
            AgentEvent::Lagged(n) => outln!("{now}  ({n} events missed)"),
            // an event this build does not know (newer agent): show it raw
            AgentEvent::Unknown(line) => {
                let ev = line.get("event").unwrap_or(&line);
                outln!("{now}  {ev}");
            }
            _ => {}
        }
    }
    eprintln!("rolecall: the agent closed the connection");
    Ok(crate::exit::FAILED)
}
