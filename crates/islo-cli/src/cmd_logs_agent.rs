//! `islo logs SANDBOX [SESSION] --type agent` (the default): coding-agent sessions.

use std::io::Write;
use std::time::Duration;

use islo_api::{
    AgentEventsQuery, AgentSessionEventResponse, AgentSessionResponse, AgentSessionsQuery,
};
use islo_client::Client;

use crate::cli::{LogsArgs, Output};
use crate::ui;

/// Events fetched per request.
const PAGE: u32 = 1000;

fn secs_between(a: &str, b: &str) -> Option<i64> {
    let p = |x: &str| {
        time::OffsetDateTime::parse(x, &time::format_description::well_known::Rfc3339).ok()
    };
    Some((p(b)? - p(a)?).whole_seconds())
}

fn row(s: &AgentSessionResponse, indent: bool) -> Vec<String> {
    let name = if indent {
        format!("└ {}", s.place.session_name)
    } else {
        s.place.session_name.clone()
    };
    let tokens = format!(
        "{}/{}",
        s.total_input_tokens + s.total_cache_creation_tokens + s.total_cache_read_tokens,
        s.total_output_tokens
    );
    let mut prompt: String = s.first_user_text.lines().next().unwrap_or("").to_string();
    if prompt.chars().count() > 60 {
        prompt = prompt.chars().take(59).collect::<String>() + "…";
    }
    vec![
        name,
        ui::ago(&s.first_timestamp),
        secs_between(&s.first_timestamp, &s.last_timestamp)
            .map(ui::duration)
            .unwrap_or_default(),
        s.event_count.to_string(),
        s.model.clone(),
        tokens,
        prompt,
    ]
}

/// List agent sessions, newest first, each followed by its sub-agents.
pub async fn list(
    client: &Client,
    a: &LogsArgs,
    since: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let q = AgentSessionsQuery {
        since,
        include_subagents: Some(true),
    };
    let all = client.agent_sessions(&a.sandbox, &q).await?;
    let (mut tops, subs): (Vec<_>, Vec<_>) = all.into_iter().partition(|s| !s.place.is_subagent);
    if let Some(n) = a.tail {
        tops.truncate(n);
    }
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&tops)?),
        Output::Plain => tops.iter().for_each(|s| {
            outln!(
                "{}\t{}\t{}",
                s.place.session_name,
                s.last_timestamp,
                s.first_user_text
            )
        }),
        Output::Table => {
            if tops.is_empty() {
                eprintln!(
                    "No agent sessions in {}. Commands and shells are under --type exec and --type interactive.",
                    a.sandbox
                );
                return Ok(());
            }
            let mut rows = Vec::new();
            for t in &tops {
                rows.push(row(t, false));
                let mine = subs
                    .iter()
                    .filter(|s| s.place.root_session_path == t.place.session_path);
                rows.extend(mine.map(|s| row(s, true)));
            }
            let head = [
                "SESSION",
                "STARTED",
                "DURATION",
                "EVENTS",
                "MODEL",
                "TOKENS IN/OUT",
                "PROMPT",
            ];
            out!("{}", ui::table(&head, rows));
        }
    }
    Ok(())
}

/// Print one agent session's events (its sub-agents' interleaved); `-f` keeps polling.
pub async fn show(
    client: &Client,
    sandbox: &str,
    name: &str,
    a: &LogsArgs,
    since: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let fetch = |offset: u32, limit: u32| AgentEventsQuery {
        session_path: None,
        include_descendants: Some(true),
        limit: Some(limit),
        offset: Some(offset),
        since: since.clone(),
    };
    let want = a.head.unwrap_or(usize::MAX);
    let mut events = Vec::new();
    loop {
        let limit = (want - events.len()).min(PAGE as usize) as u32;
        if limit == 0 {
            break;
        }
        let page = client
            .agent_session_events(sandbox, name, &fetch(events.len() as u32, limit))
            .await?;
        let short = page.len() < limit as usize;
        events.extend(page);
        if short {
            break;
        }
    }
    let mut seen = events.len() as u32;
    if let Some(n) = a.tail {
        events.drain(..events.len().saturating_sub(n));
    }
    if output == Output::Json && !a.follow {
        outln!("{}", serde_json::to_string_pretty(&events)?);
        return Ok(());
    }
    print_events(&events, name, output)?;
    if !a.follow {
        return Ok(());
    }
    // Agent sessions have no end: follow until Ctrl-C or until the sandbox stops running.
    loop {
        tokio::time::sleep(Duration::from_millis(1000)).await;
        let more = client
            .agent_session_events(sandbox, name, &fetch(seen, PAGE))
            .await?;
        seen += more.len() as u32;
        print_events(&more, name, output)?;
        if more.is_empty()
            && client.get_sandbox(sandbox).await?.status != islo_api::SandboxStatus::Running
        {
            return Ok(());
        }
    }
}

fn print_events(
    events: &[AgentSessionEventResponse],
    top: &str,
    output: Output,
) -> anyhow::Result<()> {
    let mut out = std::io::stdout();
    for e in events {
        if output == Output::Json {
            writeln!(out, "{}", serde_json::to_string(e)?)?;
            continue;
        }
        let time = e.timestamp.get(11..19).unwrap_or(&e.timestamp);
        let from = if e.place.session_name == top {
            String::new()
        } else {
            format!("[{}] ", e.place.session_name)
        };
        let mut lines = e.body.lines();
        let first = lines.next().unwrap_or("");
        writeln!(out, "{time}  {:<17}  {from}{first}", e.event_type)?;
        for l in lines {
            writeln!(out, "{:29}{l}", "")?;
        }
    }
    out.flush()?;
    Ok(())
}
