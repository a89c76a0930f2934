//! Persistent terminal sessions and terminal execs. The sessions themselves live in the
//! sandbox's agent (so they survive islod); islod lists, creates, ends and bridges them.

use islo_agent::{AttachRequest, SessionSpec, TtySize};
use islo_api::{
    CreateSessionRequest, CreateSessionResponse, ExecRequest, PtyOpen, PtySize, SessionInfo,
    SessionStatus,
};
use islo_runtime::{SandboxId, agent};

use super::stream::ExecStream;
use super::{App, AppError, Tenant};
use crate::store::SandboxRow;

/// Session names: 1-64 of letters, digits, `-`, `_`, `.`.
pub fn validate_session_name(name: &str) -> Result<(), AppError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "invalid session name {name:?}: use 1-64 letters, digits, '-', '_' or '.'"
        )))
    }
}

fn info(s: islo_agent::SessionInfo) -> SessionInfo {
    SessionInfo {
        name: s.name,
        // The agent's words are this set's; an unknown one is an agent newer than islod.
        status: SessionStatus::parse(&s.status).unwrap_or(SessionStatus::Disconnected),
        started_at_unix_ms: Some(s.started_at_unix_ms),
        clients: s.clients,
        replay_bytes: None,
    }
}

fn agent_err(e: islo_agent::ProtoError) -> AppError {
    use islo_agent::ErrorKind as K;
    match e {
        islo_agent::ProtoError::Agent(a) => match a.kind {
            K::NotFound => AppError::NotFound(a.message),
            K::CannotStart => AppError::CannotStart(a.message),
            K::Refused => AppError::Conflict(a.message),
            K::BadRequest | K::Failed => AppError::Agent(islo_agent::ProtoError::Agent(a)),
        },
        other => unreachable_agent(&other).unwrap_or(AppError::Agent(other)),
    }
}

/// Why an exec could not reach the agent, as a user is told it.
pub(super) fn agent_failure(e: &islo_agent::ProtoError) -> String {
    match (e, unreachable_agent(e)) {
        // The agent answered, refusing (its process limit, …): its reason, not "unreachable".
        (islo_agent::ProtoError::Agent(a), _) => a.message.clone(),
        (_, Some(why)) => why.to_string(),
        (_, None) => format!("sandbox agent unreachable: {e}"),
    }
}

/// What a user is told when a sandbox's agent cannot be reached, if that is the error.
pub(super) fn unreachable_agent(e: &islo_agent::ProtoError) -> Option<AppError> {
    let islo_agent::ProtoError::Io(io) = e else {
        return None;
    };
    use std::io::ErrorKind as K;
    let what = match io.kind() {
        K::ConnectionRefused => {
            "the sandbox's agent (PID 1) has ended; islod stops the sandbox within seconds, \
             and `islo use` then starts it again"
        }
        K::WouldBlock | K::TimedOut => {
            "the sandbox's agent did not answer in time: it is stopped or overloaded; \
             `islo stop` and `islo use` restart the sandbox"
        }
        _ => return None,
    };
    Some(AppError::AgentUnavailable(what.to_string()))
}

impl App {
    /// Sessions of a sandbox: those its agent holds, then those a stop ended (`dead`).
    pub async fn list_sessions(
        &self,
        t: &Tenant,
        name: &str,
    ) -> Result<Vec<SessionInfo>, AppError> {
        let row = self.get(t, name)?;
        let mut list: Vec<SessionInfo> = if row.status == islo_api::SandboxStatus::Running {
            let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
            tokio::task::spawn_blocking(move || agent::list_sessions(&sock))
                .await?
                .map_err(agent_err)?
                .into_iter()
                .map(info)
                .collect()
        } else {
            Vec::new()
        };
        for (n, started) in self.store.ended_sessions(&row.id)? {
            if !list.iter().any(|s| s.name == n) {
                list.push(SessionInfo {
                    name: n,
                    status: SessionStatus::Dead,
                    started_at_unix_ms: Some(started),
                    clients: 0,
                    replay_bytes: None,
                });
            }
        }
        Ok(list)
    }

    /// Before a stop: remember the sessions it is about to end.
    pub(super) async fn record_sessions_before_stop(&self, row: &SandboxRow) {
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let live = tokio::task::spawn_blocking(move || agent::list_sessions(&sock)).await;
        for s in live.ok().and_then(Result::ok).unwrap_or_default() {
            if let Err(e) = self
                .store
                .record_ended_session(&row.id, &s.name, s.started_at_unix_ms)
            {
                tracing::warn!(sandbox = %row.name, error = %e, "recording ended session");
            }
        }
    }

    /// What to create for `exec` (its command empty: the login shell).
    fn session_spec(&self, row: &SandboxRow, exec: &ExecRequest) -> Result<SessionSpec, AppError> {
        let r = self.agent_request(row, exec, true)?;
        Ok(SessionSpec {
            argv: r.argv,
            env: r.env,
            user: r.user,
            workdir: r.workdir,
        })
    }

    /// Attach to (or create) a session in the running sandbox `row`; the stream carries its
    /// terminal. With `record`, the attach is recorded in the audit log as an interactive
    /// session.
    pub async fn attach_session(
        &self,
        row: &SandboxRow,
        session: &str,
        open: &PtyOpen,
        record: bool,
    ) -> Result<(ExecStream, SessionInfo), AppError> {
        validate_session_name(session)?;
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let create = open
            .exec
            .as_ref()
            .map(|e| self.session_spec(row, e))
            .transpose()?;
        // An attach that creates nothing runs nothing: it watches (and types into) what runs.
        let (user, what) = match &create {
            Some(c) => (c.user.clone(), super::shell_line(&c.argv)),
            None => (self.settings.user.clone(), "(attach)".to_string()),
        };
        let req = AttachRequest {
            version: islo_agent::PROTOCOL_VERSION,
            session: session.to_string(),
            size: Some(TtySize {
                rows: open.size.rows,
                cols: open.size.cols,
            }),
            create,
        };
        let (conn, i) = tokio::task::spawn_blocking(move || agent::attach(&sock, req))
            .await?
            .map_err(agent_err)?;
        let command = format!("[session {session}] {what}");
        let rec = record.then(|| self.audit.start(&row.id, true, &user, command));
        if let Some(r) = &rec {
            r.skip_stdout(i.replay_bytes);
        }
        let (events, input) =
            agent::stream::split(conn).map_err(AppError::io("the agent connection"))?;
        let stream = ExecStream::new(events, input, rec).keep_busy(self.busy(&row.id));
        stream.input.record_size(open.size.cols, open.size.rows);
        let replay = i.replay_bytes;
        Ok((
            stream,
            SessionInfo {
                replay_bytes: Some(replay),
                ..info(i)
            },
        ))
    }

    /// `POST …/sessions`: create a session (or find it running) without attaching.
    pub async fn create_session(
        &self,
        t: &Tenant,
        name: &str,
        req: &CreateSessionRequest,
    ) -> Result<CreateSessionResponse, AppError> {
        let exec = ExecRequest {
            command: req.command.clone().unwrap_or_default(),
            env: req.env.clone(),
            user: req.user.clone(),
            workdir: req.workdir.clone(),
            ..Default::default()
        };
        let open = PtyOpen {
            version: islo_api::PTY_PROTOCOL_VERSION,
            size: islo_api::PtySize { rows: 24, cols: 80 },
            exec: Some(exec),
            tty: None,
        };
        let row = self.awake(t, name).await?;
        let (stream, i) = self.attach_session(&row, &req.name, &open, false).await?;
        drop(stream);
        Ok(CreateSessionResponse {
            name: i.name,
            status: SessionStatus::Disconnected,
        })
    }

    /// `DELETE …/sessions/{session}`: end a live session, or forget an ended one.
    pub async fn kill_session(
        &self,
        t: &Tenant,
        name: &str,
        session: &str,
    ) -> Result<(), AppError> {
        validate_session_name(session)?;
        let row = self.get(t, name)?;
        let forgotten = self.store.forget_ended_session(&row.id, session)?;
        if row.status != islo_api::SandboxStatus::Running {
            return if forgotten {
                Ok(())
            } else {
                Err(AppError::NotFound(format!("session {session:?}")))
            };
        }
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let s = session.to_string();
        let killed = tokio::task::spawn_blocking(move || agent::kill_session(&sock, &s))
            .await?
            .map_err(agent_err);
        match killed {
            Err(AppError::NotFound(_)) if forgotten => Ok(()),
            other => other,
        }
    }

    /// Start a command in the running sandbox `row` on a terminal (on pipes when `open.tty`
    /// is `false`).
    pub async fn exec_terminal(
        &self,
        row: &SandboxRow,
        open: &PtyOpen,
    ) -> Result<ExecStream, AppError> {
        let exec = open
            .exec
            .as_ref()
            .ok_or_else(|| AppError::Validation("exec needs a command".into()))?;
        let tty = (open.tty != Some(false)).then_some(open.size);
        self.open_exec(row, exec, tty, false).await
    }

    /// Start `exec` in the running sandbox `row` (on a terminal of size `tty`, else on
    /// pipes), recorded; an empty command runs the user's login shell when `login_shell`
    /// allows it (SSH shells). The terminal's size is the recording's first entry.
    pub async fn open_exec(
        &self,
        row: &SandboxRow,
        exec: &ExecRequest,
        tty: Option<PtySize>,
        login_shell: bool,
    ) -> Result<ExecStream, AppError> {
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let mut req = self.agent_request(row, exec, login_shell)?;
        req.tty = tty.map(|t| TtySize {
            rows: t.rows,
            cols: t.cols,
        });
        let (user, line) = (req.user.clone(), super::shell_line(&req.argv));
        let (events, input) = agent::exec_async(&sock, req).await.map_err(agent_err)?;
        // Recorded once the agent has it: a refused start leaves no session open in the log.
        let rec = self.audit.start(&row.id, tty.is_some(), &user, line);
        let stream = ExecStream::new(events, input, Some(rec)).keep_busy(self.busy(&row.id));
        if let Some(t) = tty {
            stream.input.record_size(t.cols, t.rows);
        }
        Ok(stream)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn session_names() {
        for ok in ["main", "debug-1", "a.b_c"] {
            super::validate_session_name(ok).unwrap();
        }
        for bad in ["", "..", "a/b", "sp ace", &"x".repeat(65)] {
            assert!(super::validate_session_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_agent_that_refuses_is_not_called_unreachable() {
        use islo_agent::{AgentError, ErrorKind, ProtoError};
        let refused = ProtoError::Agent(AgentError::new(ErrorKind::CannotStart, "limit"));
        assert_eq!(super::agent_failure(&refused), "limit");
        let gone = ProtoError::Io(std::io::ErrorKind::ConnectionRefused.into());
        assert!(super::agent_failure(&gone).contains("has ended"));
        let other = ProtoError::Io(std::io::ErrorKind::BrokenPipe.into());
        assert!(super::agent_failure(&other).starts_with("sandbox agent unreachable"));
    }
}
