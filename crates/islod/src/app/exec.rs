//! Running commands in a sandbox: streamed, or in the background with a capped result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use islo_agent::proto::PROTOCOL_VERSION;
use islo_api::{
    ExecRequest, ExecResponse, ExecResultResponse, ExecStatus, STREAM_CAP_BYTES, SandboxStatus,
};
use islo_runtime::SandboxId;
use islo_runtime::agent::{self, ExecEvent as AgentEvent};
use tokio::sync::mpsc;

use super::sandboxes::{image_env, resolve_workdir};
use super::{App, AppError, Tenant};
use crate::store::{ExecRow, SandboxRow};

const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
const SIGKILL: u8 = 9;

/// One event of a running exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecEvent {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The command ended with this code (128+N for signal N).
    Exit(i32),
    /// The command ran past its `timeout_secs` and was killed; `Exit` follows.
    TimedOut,
    /// The command could not run or the sandbox went away.
    Error(String),
}

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
        if row.status != SandboxStatus::Running {
            return Err(AppError::InvalidState {
                name: row.name,
                status: row.status,
                hint: "start it first (`islo use NAME` or POST /sandboxes/{name}/resume)",
            });
        }
        Ok(row)
    }

    /// A TCP connection to `port` on the loopback of a running sandbox, relayed raw by its
    /// agent (`port-forward`).
    pub async fn connect_port(
        &self,
        t: &Tenant,
        name: &str,
        port: u16,
    ) -> Result<std::os::unix::net::UnixStream, AppError> {
        let row = self.running(t, name)?;
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        tokio::task::spawn_blocking(move || islo_runtime::agent::connect_port(&sock, port))
            .await
            .map_err(|e| AppError::Internal(e.to_string()))?
            .map_err(|e| {
                AppError::Conflict(
                    e.to_string()
                        .trim_start_matches("agent connection: ")
                        .to_string(),
                )
            })
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
        let handle = tokio::runtime::Handle::current();
        std::thread::spawn(move || pump(&socket, areq, timeout, Recorded { tx, rec }, &handle));
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
                    ExecEvent::Error(m) => {
                        err.push(format!("islo: {m}\n").as_bytes());
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

/// The event channel of an exec, recording what passes through it.
struct Recorded {
    tx: mpsc::Sender<ExecEvent>,
    rec: Arc<super::Recording>,
}

impl Recorded {
    /// Record and forward; `false` when the receiver is gone. The log is complete before the
    /// exit (or error) is forwarded.
    fn send(&self, ev: ExecEvent) -> bool {
        match &ev {
            ExecEvent::Stdout(b) => self.rec.chunk_stored_blocking("stdout", b),
            ExecEvent::Stderr(b) => self.rec.chunk_stored_blocking("stderr", b),
            ExecEvent::Exit(code) => self.rec.end(Some(*code)),
            ExecEvent::Error(m) => {
                self.rec.chunk("islo", format!("{m}\n").as_bytes());
                self.rec.end(None);
            }
            ExecEvent::TimedOut => self.rec.chunk("islo", b"timed out; killed\n"),
        }
        self.tx.blocking_send(ev).is_ok()
    }
}

/// Bridge a blocking agent connection to `out`. When the receiver goes away (the client
/// disconnected) the connection is hung up, which kills the command even if it is silent.
fn pump(
    socket: &std::path::Path,
    req: islo_agent::ExecRequest,
    timeout: Option<Duration>,
    out: Recorded,
    rt: &tokio::runtime::Handle,
) {
    let fail = |out: &Recorded, m: String| {
        out.send(ExecEvent::Error(m));
    };
    let mut conn = match agent::exec(socket, req) {
        Ok(c) => c,
        Err(e) => return fail(&out, super::sessions::agent_failure(&e)),
    };
    let mut ctl = match conn.control() {
        Ok(c) => c,
        Err(e) => return fail(&out, e.to_string()),
    };
    let _ = ctl.close_stdin();
    if let Ok(watch) = conn.control() {
        let gone = out.tx.clone();
        rt.spawn(async move {
            gone.closed().await;
            watch.hang_up();
        });
    }
    let timed_out = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicBool::new(false));
    if let Some(limit) = timeout {
        let (flag, done) = (timed_out.clone(), done.clone());
        std::thread::spawn(move || {
            std::thread::sleep(limit);
            if !done.load(Ordering::SeqCst) {
                flag.store(true, Ordering::SeqCst);
                let _ = ctl.signal(SIGKILL);
            }
        });
    }
    loop {
        let ev = match conn.next_event() {
            Ok(Some(AgentEvent::Stdout(b))) => ExecEvent::Stdout(b),
            Ok(Some(AgentEvent::Stderr(b))) => ExecEvent::Stderr(b),
            Ok(Some(AgentEvent::Exit(st))) => {
                done.store(true, Ordering::SeqCst);
                if timed_out.load(Ordering::SeqCst) {
                    out.send(ExecEvent::TimedOut);
                }
                out.send(ExecEvent::Exit(st.code));
                return;
            }
            Ok(Some(AgentEvent::Error(m))) => return fail(&out, m),
            Ok(None) => return fail(&out, "the sandbox stopped while the command ran".into()),
            Err(e) => return fail(&out, format!("sandbox agent connection: {e}")),
        };
        if !out.send(ev) {
            return; // the client went away: dropping the connection kills the command
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
