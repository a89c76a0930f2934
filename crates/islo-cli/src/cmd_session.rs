//! Terminals from `islo use`: attach to a persistent session, run a command on a terminal,
//! list sessions.

use islo_api::ExecRequest;
use islo_client::Client;

use crate::cli::Output;
use crate::terminal::{self, DETACH_HINT, Ended};
use crate::ui;

/// A generated session name (time-derived suffix; the server refuses nothing but clashes
/// would attach to the older one, so the suffix changes every nanosecond).
pub fn new_name() -> String {
    new_name_with("session")
}

/// A generated name starting `PREFIX-`.
pub fn new_name_with(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{:06x}",
        (nanos as u64 ^ u64::from(std::process::id())) & 0xff_ffff
    )
}

/// Attach to `session` (creating it with `req`'s settings and the login shell); returns the
/// exit code: the shell's when it ends, 0 on detach.
pub async fn attach(
    client: &Client,
    sandbox: &str,
    session: &str,
    req: ExecRequest,
) -> anyhow::Result<i32> {
    let conn = client
        .pty_attach(sandbox, session, Some(req), terminal::size())
        .await?;
    eprint!("Attached to session {session} of {sandbox}; detach with {DETACH_HINT}.\r\n");
    match terminal::run(conn, true).await? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => {
            eprintln!(
                "\r\nDetached from session {session}; `islo use {sandbox} -s {session}` attaches again."
            );
            Ok(0)
        }
    }
}

/// Run a command on a terminal; returns its exit code.
pub async fn exec_tty(client: &Client, sandbox: &str, req: ExecRequest) -> anyhow::Result<i32> {
    let conn = client
        .pty_exec(sandbox, req, terminal::size(), true)
        .await?;
    match terminal::run(conn, false).await? {
        Ended::Exited(code) => Ok(code),
        Ended::Detached => Ok(130),
    }
}

/// Run a command on pipes: standard input is forwarded (its end too), stdout and stderr
/// stay apart. Returns the command's exit code.
pub async fn exec_pipes(client: &Client, sandbox: &str, req: ExecRequest) -> anyhow::Result<i32> {
    // No terminal on pipes: the size is only nominal.
    let size = islo_api::PtySize { rows: 24, cols: 80 };
    let conn = client.pty_exec(sandbox, req, size, false).await?;
    terminal::pipes(conn).await
}

/// `--list-sessions`.
pub async fn list(client: &Client, sandbox: &str, output: Output) -> anyhow::Result<()> {
    let sessions = client.list_sessions(sandbox).await?.sessions;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&sessions)?),
        Output::Plain => sessions
            .iter()
            .for_each(|s| outln!("{}\t{}", s.name, s.status)),
        Output::Table => {
            let rows = sessions
                .iter()
                .map(|s| {
                    let started = s
                        .started_at_unix_ms
                        .map(ui::ago_unix_ms)
                        .unwrap_or_default();
                    vec![
                        s.name.clone(),
                        s.status.to_string(),
                        started,
                        s.clients.to_string(),
                    ]
                })
                .collect();
            out!(
                "{}",
                ui::table(&["NAME", "STATUS", "STARTED", "CLIENTS"], rows)
            );
        }
    }
    Ok(())
}
