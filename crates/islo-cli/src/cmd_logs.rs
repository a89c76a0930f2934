//! `islo logs SANDBOX [SESSION_ID]`: the audit log of exec and interactive sessions (agent
//! sessions are in `cmd_logs_agent`).

use std::io::Write;
use std::time::Duration;

use islo_api::{ExecLogsQuery, ExecSessionResponse};
use islo_client::Client;

use crate::cli::{LogType, LogsArgs, Output};
use crate::{EXIT_NOT_FOUND, Exit, ui, usage};

/// `--since`: a duration back from now (`30m`, `2h`, `2d`) or an RFC 3339 time.
pub fn since(v: &str) -> anyhow::Result<String> {
    let fmt = &time::format_description::well_known::Rfc3339;
    if time::OffsetDateTime::parse(v, fmt).is_ok() {
        return Ok(v.to_string());
    }
    let d = humantime::parse_duration(v).map_err(|_| {
        usage(format!(
            "invalid --since {v:?}: use 30m, 1h, 2d or an RFC 3339 time"
        ))
    })?;
    let t = time::OffsetDateTime::now_utc() - d;
    Ok(t.format(fmt)?)
}

fn kind(s: &ExecSessionResponse) -> &'static str {
    if s.is_interactive {
        "interactive"
    } else {
        "exec"
    }
}

fn row(s: &ExecSessionResponse) -> Vec<String> {
    let secs = |a: &str, b: &str| -> Option<i64> {
        let p = |x: &str| {
            time::OffsetDateTime::parse(x, &time::format_description::well_known::Rfc3339).ok()
        };
        Some((p(b)? - p(a)?).whole_seconds())
    };
    let duration = match &s.ended_at {
        Some(end) => secs(&s.first_timestamp, end)
            .map(ui::duration)
            .unwrap_or_default(),
        None => "running".into(),
    };
    let exit = s
        .exit_code
        .map(|c| c.to_string())
        .unwrap_or_else(|| "-".into());
    let what = if s.is_interactive {
        s.first_stdin_line
            .clone()
            .unwrap_or_else(|| s.command.clone())
    } else {
        s.command.clone()
    };
    vec![
        s.exec_id.clone(),
        kind(s).into(),
        ui::ago(&s.first_timestamp),
        duration,
        exit,
        what,
    ]
}

/// Run `islo logs`.
pub async fn run(client: &Client, a: &LogsArgs, output: Output) -> anyhow::Result<()> {
    let since = a.since.as_deref().map(since).transpose()?;
    if a.head.is_some() && a.tail.is_some() {
        return Err(usage("--head and --tail exclude each other"));
    }
    let agent = a.r#type.is_none_or(|t| t == LogType::Agent);
    match &a.session {
        Some(id) if agent && !a.asciinema => {
            match crate::cmd_logs_agent::show(client, &a.sandbox, id, a, since.clone(), output)
                .await
            {
                // Not an agent session: maybe an exec or interactive one.
                Err(e) if is_not_found(&e) => show(client, &a.sandbox, id, a, since, output).await,
                other => other,
            }
        }
        Some(id) => show(client, &a.sandbox, id, a, since, output).await,
        None if agent => crate::cmd_logs_agent::list(client, a, since, output).await,
        None => list(client, a, since, output).await,
    }
}

/// An agent session the server does not know (the sandbox itself exists).
fn is_not_found(e: &anyhow::Error) -> bool {
    e.downcast_ref::<islo_client::ClientError>()
        .and_then(islo_client::ClientError::code)
        == Some(islo_api::ErrorCode::ResourceNotFound)
}

async fn list(
    client: &Client,
    a: &LogsArgs,
    since: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let all = client.exec_sessions(&a.sandbox, since.as_deref()).await?;
    let interactive = a.r#type == Some(LogType::Interactive);
    let mut items: Vec<ExecSessionResponse> = all
        .into_iter()
        .filter(|s| s.is_interactive == interactive)
        .collect();
    if let Some(n) = a.tail {
        items.truncate(n);
    }
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&items)?),
        Output::Plain => items
            .iter()
            .for_each(|s| outln!("{}\t{}\t{}", s.exec_id, kind(s), s.command)),
        Output::Table => out!(
            "{}",
            ui::table(
                &["ID", "TYPE", "STARTED", "DURATION", "EXIT", "COMMAND"],
                items.iter().map(row).collect()
            )
        ),
    }
    Ok(())
}

async fn show(
    client: &Client,
    sandbox: &str,
    id: &str,
    a: &LogsArgs,
    since: Option<String>,
    output: Output,
) -> anyhow::Result<()> {
    let session = match client.exec_session(sandbox, id).await {
        Ok(s) => s,
        Err(e) if e.code() == Some(islo_api::ErrorCode::ResourceNotFound) => {
            return Err(Exit {
                code: EXIT_NOT_FOUND,
                message: format!("no session {id} in the logs of {sandbox}"),
            }
            .into());
        }
        Err(e) => return Err(e.into()),
    };
    if a.asciinema {
        out!("{}", client.exec_asciinema(sandbox, id).await?);
        return Ok(());
    }
    let q = ExecLogsQuery {
        limit: a.head.map(|n| n as u32),
        tail: a.tail.map(|n| n as u32),
        since,
        after_seq: None,
    };
    let first = client.exec_logs(sandbox, id, &q).await?;
    if output == Output::Json && !a.follow {
        outln!("{}", serde_json::to_string_pretty(&first)?);
        return Ok(());
    }
    let mut last = print_lines(&first.logs, output)?;
    if !a.follow || session.ended_at.is_some() {
        return Ok(());
    }
    // Follow: poll for new entries until the session ends (or Ctrl-C).
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let q = ExecLogsQuery {
            after_seq: Some(last),
            ..Default::default()
        };
        let more = client.exec_logs(sandbox, id, &q).await?;
        if let Some(l) = print_lines(&more.logs, output).ok().filter(|l| *l > last) {
            last = l;
        }
        if more.logs.is_empty() && client.exec_session(sandbox, id).await?.ended_at.is_some() {
            let rest = client
                .exec_logs(
                    sandbox,
                    id,
                    &ExecLogsQuery {
                        after_seq: Some(last),
                        ..Default::default()
                    },
                )
                .await?;
            print_lines(&rest.logs, output)?;
            return Ok(());
        }
    }
}

/// Print output entries (what was typed is echoed by the terminal already); returns the last seq.
fn print_lines(lines: &[islo_api::ExecLogLineResponse], output: Output) -> anyhow::Result<i64> {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let mut last = 0;
    for l in lines {
        last = l.seq;
        if output == Output::Json {
            writeln!(out, "{}", serde_json::to_string(l)?)?;
            continue;
        }
        match l.stream.as_str() {
            "stdout" => out.write_all(l.data.as_bytes())?,
            "stderr" | "islo" => err.write_all(l.data.as_bytes())?,
            _ => {}
        }
    }
    out.flush()?;
    Ok(last)
}
