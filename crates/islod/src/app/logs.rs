//! Reading the audit log.

use islo_api::{ExecLogLineResponse, ExecLogsQuery, ExecLogsResponse, ExecSessionResponse};

use super::{App, AppError, Tenant};
use crate::store::{AuditSession, SandboxRow};

fn view(s: AuditSession) -> ExecSessionResponse {
    let first = if s.interactive {
        s.first_input.clone()
    } else {
        Some(s.command.clone())
    };
    ExecSessionResponse {
        exec_id: s.id,
        is_interactive: s.interactive,
        first_timestamp: s.started_at,
        last_timestamp: s.ended_at.clone().unwrap_or(s.last_at),
        log_count: s.log_count,
        first_stdin_line: first,
        user: s.user,
        command: s.command,
        exit_code: s.exit_code,
        ended_at: s.ended_at,
        truncated: s.cut,
    }
}

/// An RFC 3339 time, validated.
pub(super) fn since(v: &Option<String>) -> Result<Option<String>, AppError> {
    let Some(v) = v else { return Ok(None) };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::Validation(format!("since must be an RFC 3339 time, got {v:?}")))?;
    Ok(Some(
        t.to_offset(time::UtcOffset::UTC)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    ))
}

impl App {
    /// A sandbox by name (live) or by id (deleted ones too): logs outlive their sandbox.
    pub(super) fn sandbox_for_logs(
        &self,
        t: &Tenant,
        name_or_id: &str,
    ) -> Result<SandboxRow, AppError> {
        match self.store.sandbox_by_name(&t.id, name_or_id)? {
            Some(r) => Ok(r),
            None => self.get_by_id(t, name_or_id),
        }
    }

    /// Recorded sessions of a sandbox, newest first.
    pub fn exec_sessions(
        &self,
        t: &Tenant,
        sandbox: &str,
        since_q: &Option<String>,
    ) -> Result<Vec<ExecSessionResponse>, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let since = since(since_q)?;
        Ok(self
            .store
            .audit_sessions(&row.id, since.as_deref())?
            .into_iter()
            .map(view)
            .collect())
    }

    /// One recorded session.
    pub fn exec_session(
        &self,
        t: &Tenant,
        sandbox: &str,
        exec_id: &str,
    ) -> Result<ExecSessionResponse, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let s = self
            .store
            .audit_session(&row.id, exec_id)?
            .ok_or_else(|| AppError::NotFound(format!("session {exec_id}")))?;
        Ok(view(s))
    }

    /// What a recorded session printed (and was typed into it).
    pub fn exec_logs(
        &self,
        t: &Tenant,
        sandbox: &str,
        exec_id: &str,
        q: &ExecLogsQuery,
    ) -> Result<ExecLogsResponse, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        self.store
            .audit_session(&row.id, exec_id)?
            .ok_or_else(|| AppError::NotFound(format!("session {exec_id}")))?;
        let since = since(&q.since)?;
        let mut lines =
            self.store
                .audit_lines(exec_id, q.after_seq.unwrap_or(0), since.as_deref())?;
        if let Some(n) = q.limit {
            lines.truncate(n as usize);
        }
        if let Some(n) = q.tail {
            let cut = lines.len().saturating_sub(n as usize);
            lines.drain(..cut);
        }
        let logs = lines
            .into_iter()
            .map(|l| ExecLogLineResponse {
                timestamp: l.ts,
                seq: l.seq,
                stream: l.stream,
                data: String::from_utf8_lossy(&l.data).into_owned(),
            })
            .collect();
        Ok(ExecLogsResponse {
            exec_id: exec_id.to_string(),
            logs,
        })
    }
}

/// Seconds between two RFC 3339 times.
fn offset_secs(start: &str, at: &str) -> f64 {
    let p = |x: &str| {
        time::OffsetDateTime::parse(x, &time::format_description::well_known::Rfc3339).ok()
    };
    match (p(start), p(at)) {
        (Some(a), Some(b)) => ((b - a).as_seconds_f64()).max(0.0),
        _ => 0.0,
    }
}

/// `COLSxROWS`.
fn parse_size(data: &[u8]) -> Option<(u16, u16)> {
    let (c, r) = std::str::from_utf8(data).ok()?.split_once('x')?;
    Some((c.parse().ok()?, r.parse().ok()?))
}

impl App {
    /// A recorded session as an asciinema v2 recording: a header line, then one
    /// `[seconds, "o"|"i", data]` line per chunk of output or input.
    pub fn exec_asciinema(
        &self,
        t: &Tenant,
        sandbox: &str,
        exec_id: &str,
    ) -> Result<String, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let s = self
            .store
            .audit_session(&row.id, exec_id)?
            .ok_or_else(|| AppError::NotFound(format!("session {exec_id}")))?;
        let start = time::OffsetDateTime::parse(
            &s.started_at,
            &time::format_description::well_known::Rfc3339,
        )
        .map(|t| t.unix_timestamp())
        .unwrap_or(0);
        let lines = self.store.audit_lines(exec_id, 0, None)?;
        // The terminal's size when it opened is the header's; later ones are `r` events.
        let first_size = lines.iter().position(|l| l.stream == "resize");
        let (width, height) = first_size
            .and_then(|i| parse_size(&lines[i].data))
            .unwrap_or((80, 24));
        let header = serde_json::json!({
            "version": 2, "width": width, "height": height, "timestamp": start,
            "title": s.command, "env": {"SHELL": "/bin/sh", "TERM": "xterm-256color"}
        });
        let mut out = header.to_string();
        out.push('\n');
        for (i, l) in lines.iter().enumerate() {
            let kind = match l.stream.as_str() {
                "resize" if Some(i) == first_size => continue,
                "resize" => "r",
                "stdin" => "i",
                _ => "o",
            };
            let ev = serde_json::json!([
                offset_secs(&s.started_at, &l.ts),
                kind,
                String::from_utf8_lossy(&l.data)
            ]);
            out.push_str(&ev.to_string());
            out.push('\n');
        }
        Ok(out)
    }
}
