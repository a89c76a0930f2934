//! Running commands in a sandbox: streamed, or in the background with a capped result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use islo_agent::proto::PROTOCOL_VERSION;
use islo_api::{
    ExecRequest, ExecResponse, ExecResultResponse, ExecStatus, STREAM_CAP_BYTES, SandboxStatus,
};
use islo_runtime::SandboxId;
use islo_runtime::agent;
use tokio::sync::mpsc;

use super::sandboxes::{image_env, resolve_workdir};
use super::stream::{ExecEvent, ExecInput, ExecStream, StreamError};
use super::{App, AppError, Tenant};
use crate::store::{ExecRow, SandboxRow};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SIGKILL: u8 = 9;

/// Keeps the last `cap` bytes written to it.
#[derive(Debug)]
pub struct TailBuf {
    buf: VecDeque<u8>,
    cap: usize,
    pub truncated: bool,
}

impl TailBuf {
    pub fn new(cap: usize) -> Self {
        Self {
            buf: VecDeque::new(),
            cap,
            truncated: false,
        }
    }
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend(data);
        if self.buf.len() > self.cap {
            let cut = self.buf.len() - self.cap;
            self.buf.drain(..cut);
            self.truncated = true;
        }
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.buf.into()
    }
}

impl App {
    pub fn running(&self, t: &Tenant, name: &str) -> Result<SandboxRow, AppError> {
        let row = self.get(t, name)?;
        let hint = match row.status {
            SandboxStatus::Running => return Ok(row),
            SandboxStatus::Paused => {
                "it is paused: resume it first (`islo resume NAME` or POST \
                 /sandboxes/{name}/resume), or create it with `lifecycle.auto_resume: on_activity` \
                 (`--auto-resume on_activity`) to have activity resume it"
            }
            _ => "start it first (`islo use NAME` or POST /sandboxes/{name}/resume)",
        };
        Err(AppError::InvalidState {
            name: row.name,
            status: row.status,
            hint,
        })
    }

    /// A TCP connection to `port` on the loopback of a running sandbox, relayed raw by its
    /// agent (`port-forward`, SSH `direct-tcpip`).
    pub async fn connect_port(
        &self,
        t: &Tenant,
        name: &str,
        port: u16,
    ) -> Result<tokio::net::UnixStream, AppError> {
        let row = self.awake(t, name).await?;
        self.connect_port_of(&row, port).await
    }

    /// [`Self::connect_port`] for a sandbox already looked up (a share's).
    pub async fn connect_port_of(
        &self,
        row: &SandboxRow,
        port: u16,
    ) -> Result<tokio::net::UnixStream, AppError> {
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let conn = tokio::task::spawn_blocking(move || agent::connect_port(&sock, port))
            .await?
            .map_err(|e| match e {
                islo_agent::ProtoError::Agent(a) => AppError::Conflict(a.message),
                other => AppError::Conflict(
                    other
                        .to_string()
                        .trim_start_matches("agent connection: ")
                        .to_string(),
                ),
            })?;
        conn.set_nonblocking(true)
            .and_then(|()| tokio::net::UnixStream::from_std(conn))
            .map_err(|e| AppError::Internal(format!("port connection: {e}")))
    }

    /// The agent request for `req` in `row`: image env, then sandbox env, then exec env. An
    /// empty command is allowed only where the caller means "the login shell".
    pub(super) fn agent_request(
        &self,
        row: &SandboxRow,
        req: &ExecRequest,
        allow_empty: bool,
    ) -> Result<islo_agent::ExecRequest, AppError> {
        let empty = req.command.is_empty() || req.command[0].is_empty();
        if empty && !allow_empty {
            return Err(AppError::Validation("command must not be empty".into()));
        }
        let mut env: Vec<(String, String)> = Vec::new();
        let mut set = |k: &str, v: &str| {
            env.retain(|(n, _)| n != k);
            env.push((k.to_string(), v.to_string()));
        };
        set("PATH", DEFAULT_PATH);
        for (k, v) in image_env(row) {
            set(&k, &v);
        }
        for (k, v) in self.gateway_env(row) {
            set(&k, &v);
        }
        for (k, v) in self.environment_env(row) {
            set(&k, &v);
        }
        set("HOSTNAME", &row.name);
        for (k, v) in row.env.iter().chain(req.env.iter().flatten()) {
            set(k, v);
        }
        let workdir = match &req.workdir {
            Some(w) => resolve_workdir(w)?,
            None => row.workdir.clone(),
        };
        Ok(islo_agent::ExecRequest {
            version: PROTOCOL_VERSION,
            argv: if empty {
                Vec::new()
            } else {
                req.command.clone()
            },
            env,
            user: req
                .user
                .clone()
                .unwrap_or_else(|| self.settings.user.clone()),
            workdir,
            tty: None,
        })
    }

    /// Start `req` and stream its events; `Exit` or `Error` is the last one (consumers stop
    /// there: the channel itself stays open). Dropping the receiver kills the command.
    pub fn exec_stream(
        &self,
        t: &Tenant,
        name: &str,
        req: &ExecRequest,
    ) -> Result<(SandboxRow, mpsc::Receiver<ExecEvent>, String), AppError> {
        let row = self.running(t, name)?;
        let areq = self.agent_request(&row, req, false)?;
        let socket = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let rec = self
            .audit
            .start(&row.id, false, &areq.user, super::shell_line(&areq.argv));
        let exec_id = rec.id().to_string();
        let (tx, rx) = mpsc::channel(64);
        let timeout = req.timeout_secs.filter(|s| *s > 0).map(Duration::from_secs);
        let busy = self.busy(&row.id);
        tokio::spawn(async move {
            let stream = agent::exec_async(&socket, areq)
                .await
                .map(|(events, input)| {
                    ExecStream::new(events, input, Some(rec.clone())).keep_busy(busy)
                });
            match stream {
                Ok(s) => relay(s, timeout, tx).await,
                Err(e) => {
                    let ev = ExecEvent::Error(StreamError::cannot_start(
                        super::sessions::agent_failure(&e),
                    ));
                    super::stream::record_event(&rec, &ev).await;
                    let _ = tx.send(ev).await;
                }
            }
        });
        Ok((row, rx, exec_id))
    }

    /// Start `req` in the background; its result is kept (each stream's tail, capped).
    pub fn exec_start(
        self: &Arc<Self>,
        t: &Tenant,
        name: &str,
        req: &ExecRequest,
    ) -> Result<ExecResponse, AppError> {
        let (row, mut rx, exec_id) = self.exec_stream(t, name, req)?;
        self.store.insert_exec(&exec_id, &row.id)?;
        let (app, id, sandbox_id) = (self.clone(), exec_id.clone(), row.id.clone());
        tokio::spawn(async move {
            let (mut out, mut err) = (
                TailBuf::new(STREAM_CAP_BYTES),
                TailBuf::new(STREAM_CAP_BYTES),
            );
            let (mut status, mut code) = (ExecStatus::Failed, None);
            while let Some(ev) = rx.recv().await {
                match ev {
                    ExecEvent::Stdout(b) => out.push(&b),
                    ExecEvent::Stderr(b) => err.push(&b),
                    ExecEvent::TimedOut => status = ExecStatus::Timeout,
                    ExecEvent::Exit(c) => {
                        code = Some(c);
                        if status != ExecStatus::Timeout {
                            status = ExecStatus::Completed;
                        }
                        break;
                    }
                    ExecEvent::Error(e) => {
                        err.push(format!("islo: {e}\n").as_bytes());
                        break;
                    }
                }
            }
            let truncated = out.truncated || err.truncated;
            let row = ExecRow {
                id,
                sandbox_id,
                status,
                exit_code: code,
                stdout: out.into_vec(),
                stderr: err.into_vec(),
                truncated,
            };
            if let Err(e) = app.store.finish_exec(&row) {
                tracing::error!(exec = %row.id, error = %e, "recording exec result");
            }
        });
        Ok(ExecResponse {
            exec_id,
            sandbox_id: row.id,
            status: ExecStatus::Running,
        })
    }

    /// The state or result of a background exec.
    pub fn exec_result(
        &self,
        t: &Tenant,
        name: &str,
        exec_id: &str,
    ) -> Result<ExecResultResponse, AppError> {
        let row = self.get(t, name)?;
        let e = self
            .store
            .exec(&row.id, exec_id)?
            .ok_or_else(|| AppError::NotFound(format!("exec {exec_id}")))?;
        Ok(ExecResultResponse {
            exec_id: e.id,
            status: e.status,
            stdout: String::from_utf8_lossy(&e.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&e.stderr).into_owned(),
            truncated: e.truncated,
            exit_code: e.exit_code,
        })
    }
}

/// Relay a pipe exec (its input closed at once) to `out` until its last event. A timeout
/// kills it (`TimedOut` then precedes its `Exit`); when the receiver goes away (the client
/// disconnected) the stream is dropped, which kills the command even if it is silent.
async fn relay(mut s: ExecStream, timeout: Option<Duration>, out: mpsc::Sender<ExecEvent>) {
    s.input.send(ExecInput::Eof).await;
    // Without a timeout the deadline is never armed (the branch below is disabled).
    let deadline = tokio::time::Instant::now() + timeout.unwrap_or_default();
    let mut timed_out = false;
    loop {
        let ev = tokio::select! {
            ev = s.output.next() => ev,
            () = tokio::time::sleep_until(deadline), if timeout.is_some() && !timed_out => {
                timed_out = true;
                s.output.record_timeout();
                s.input.send(ExecInput::Signal(SIGKILL)).await;
                continue;
            }
            () = out.closed() => return,
        };
        let Some(ev) = ev else { return };
        if timed_out
            && matches!(ev, ExecEvent::Exit(_))
            && out.send(ExecEvent::TimedOut).await.is_err()
        {
            return;
        }
        if out.send(ev).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_buffer_keeps_the_tail() {
        let mut t = TailBuf::new(4);
        t.push(b"ab");
        assert!(!t.truncated);
        t.push(b"cdef");
        assert!(t.truncated);
        assert_eq!(t.into_vec(), b"cdef");
    }
}
