//! `islo gateway log SANDBOX [-f] [--since …] [--tail N]`: the gateway's decisions for a
//! sandbox (allowed, denied, rate limited, failed), oldest first.

use std::time::Duration;

use clap::Parser;
use islo_api::{GatewayEventResponse, GatewayEventsQuery};
use islo_client::Client;

use crate::cli::Output;

#[derive(Parser)]
#[command(no_binary_name = true, name = "islo gateway log")]
struct LogArgs {
    /// Sandbox name (or id, after deletion).
    sandbox: String,
    /// Keep printing new decisions.
    #[arg(short, long)]
    follow: bool,
    /// Only decisions since (`30m`, `2h`, or an RFC 3339 time).
    #[arg(long)]
    since: Option<String>,
    /// The last N decisions (default 100).
    #[arg(long)]
    tail: Option<u32>,
}

fn line(e: &GatewayEventResponse) -> String {
    let target = format!("{}://{}{}", e.scheme, e.host, e.path);
    let status = if e.status == 0 {
        "-".to_string()
    } else {
        e.status.to_string()
    };
    format!(
        "{}  {:<12} {:>3} {:<7} {}  {}B↑ {}B↓ {:.1}ms  {}",
        e.at, e.action, status, e.method, target, e.bytes_up, e.bytes_down, e.latency_ms, e.reason
    )
}

fn print(events: &[GatewayEventResponse], output: Output) -> anyhow::Result<()> {
    for e in events {
        if output == Output::Json {
            outln!("{}", serde_json::to_string(e)?);
        } else {
            outln!("{}", line(e));
        }
    }
    Ok(())
}

pub async fn run(client: &Client, args: &[String], output: Output) -> anyhow::Result<()> {
    let a = LogArgs::try_parse_from(args).unwrap_or_else(|e| e.exit());
    let since = a.since.as_deref().map(crate::cmd_logs::since).transpose()?;
    let mut q = GatewayEventsQuery {
        since,
        after_id: None,
        limit: a.tail,
    };
    let events = client.gateway_events(&a.sandbox, &q).await?;
    print(&events, output)?;
    if !a.follow {
        return Ok(());
    }
    q.after_id = Some(events.last().map_or(0, |e| e.id));
    q.limit = Some(1000);
    loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let more = client.gateway_events(&a.sandbox, &q).await?;
        if let Some(last) = more.last() {
            q.after_id = Some(last.id);
        }
        print(&more, output)?;
    }
}
