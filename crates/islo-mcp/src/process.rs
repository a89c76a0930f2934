//! Background processes: each is a named terminal session in the sandbox's agent, so it
//! keeps running between calls (and across islod restarts) and keeps its last 2 MiB of
//! output; reading it is an attach that replays that output and, for one that ended, its
//! exit. A user can `islo attach` the same session.

use std::time::Duration;

use islo_api::{CreateSessionRequest, PtyFrame, PtySize, SessionStatus};
use islo_client::PtyReceiver;
use serde_json::json;
use tokio::time::Instant;

use crate::args::{ReadProcessOutput, StartProcess, StopProcess};
use crate::output::{tail, terminal_text};
use crate::{IsloMcp, ToolError, ToolResult};

const MAX_WAIT_SECS: u64 = 120;
const DEFAULT_OUTPUT_BYTES: usize = 32 * 1024;
/// The size of the terminal a read attaches with.
const SIZE: PtySize = PtySize {
    rows: 40,
    cols: 160,
};
/// How long a replay may take to arrive before the read returns what it has.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// What one attach read: output and, when the process ended, its exit code.
#[derive(Default)]
struct Read {
    output: Vec<u8>,
    exit: Option<i32>,
    error: Option<String>,
}

/// Read the replay (everything up to `Info`'s `replay_bytes`), then live output until the
/// process ends or `until`.
async fn read(rx: &mut PtyReceiver, until: Instant) -> Result<Read, ToolError> {
    let mut r = Read::default();
    let mut replay: Option<u64> = None;
    let replay_until = Instant::now() + REPLAY_WAIT;
    loop {
        let replaying = replay.is_none_or(|n| (r.output.len() as u64) < n);
        let limit = if replaying { replay_until } else { until };
        if !replaying && Instant::now() >= until {
            return Ok(r);
        }
        let frame = match tokio::time::timeout_at(limit, rx.next()).await {
            Err(_) | Ok(None) => return Ok(r),
            Ok(Some(f)) => f?,
        };
        match frame {
            PtyFrame::Info(i) => replay = Some(i.replay_bytes.unwrap_or(0)),
            PtyFrame::Data(d) => r.output.extend_from_slice(&d),
            PtyFrame::Exit(e) => {
                r.exit = Some(e.code);
                return Ok(r);
            }
            PtyFrame::Error(m) => r.error = Some(m),
            _ => {}
        }
    }
}

impl IsloMcp {
    pub(crate) async fn start_process(&self, a: StartProcess) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        let name = a
            .name
            .unwrap_or_else(|| format!("proc-{:06x}", rand::random::<u32>() & 0xff_ffff));
        let listed = self.client.list_sessions(&a.sandbox).await?;
        if listed
            .sessions
            .iter()
            .any(|s| s.name == name && s.status != SessionStatus::Dead)
        {
            return Err(ToolError::Failed(format!(
                "a process named {name:?} still runs in {}; stop_process it or pick another name",
                a.sandbox
            )));
        }
        let argv = a.command.argv();
        if argv.is_empty() {
            return Err(ToolError::Failed("`command` is empty".into()));
        }
        let req = CreateSessionRequest {
            name: name.clone(),
            command: Some(argv),
            env: a.env,
            ttl: None,
            user: a.user,
            workdir: a.cwd,
        };
        let s = self.client.create_session(&a.sandbox, &req).await?;
        Ok(json!({ "name": s.name, "status": "running", "sandbox": a.sandbox }))
    }

    pub(crate) async fn read_process_output(&self, a: ReadProcessOutput) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        let wait = Duration::from_secs(a.wait_secs.unwrap_or(0).min(MAX_WAIT_SECS));
        let max = a.max_bytes.unwrap_or(DEFAULT_OUTPUT_BYTES);
        let conn = self
            .client
            .pty_attach(&a.sandbox, &a.name, None, SIZE)
            .await?;
        let (tx, mut rx) = conn.split();
        let got = read(&mut rx, Instant::now() + wait).await;
        tx.close().await;
        let got = got?;
        if let Some(e) = got.error {
            return Err(ToolError::Failed(format!(
                "no process {:?} in {}: {e}",
                a.name, a.sandbox
            )));
        }
        let (output, truncated) = tail(&terminal_text(&got.output), max);
        Ok(json!({
            "name": a.name,
            "status": if got.exit.is_some() { "exited" } else { "running" },
            "exit_code": got.exit,
            "output": output,
            "truncated": truncated,
        }))
    }

    pub(crate) async fn stop_process(&self, a: StopProcess) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        self.client.kill_session(&a.sandbox, &a.name).await?;
        Ok(json!({ "name": a.name, "status": "stopped" }))
    }
}
