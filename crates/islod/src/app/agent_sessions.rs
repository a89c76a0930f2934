//! Agent sessions: coding-agent transcripts in a sandbox, ingested into the store.
//!
//! islod asks the sandbox's agent for the transcripts under the run-as user's
//! `~/.claude/projects` and reads what is new since the last look, whole lines only. That
//! happens whenever agent sessions are read and before a sandbox stops or is deleted, so what
//! was recorded outlives the sandbox. The files are the sandbox's: reads are bounded, and the
//! agent follows no symlink while finding or opening them.

use std::collections::HashMap;
use std::path::Path;

use islo_agent::{PROTOCOL_VERSION, ScanRequest};
use islo_api::{
    AgentEventsQuery, AgentSessionEventResponse, AgentSessionPlace, AgentSessionResponse,
    AgentSessionsQuery, SandboxStatus,
};
use islo_runtime::{SandboxId, agent};

use super::{App, AppError, Tenant};
use crate::store::{AgentSessionRow, SandboxRow, Store};
use crate::transcripts::{self, PROJECTS_DIR};

/// Transcripts looked at per sandbox.
const MAX_TRANSCRIPTS: u32 = 2000;
/// Bytes read per agent request.
const READ_CHUNK: u32 = 1 << 20;
/// Bytes ingested per transcript per sync (the rest waits for the next one).
const MAX_SYNC_BYTES: u64 = 64 << 20;
/// A line longer than this is skipped, not buffered.
const MAX_LINE: usize = 8 << 20;

impl App {
    /// Read what is new in the sandbox's transcripts (a running sandbox only; otherwise
    /// what was ingested before stays as it is).
    pub(super) async fn sync_agent_sessions(&self, row: &SandboxRow) {
        if row.status != SandboxStatus::Running {
            return;
        }
        let lock = self.op_lock(&format!("agent-sessions:{}", row.id));
        let _g = lock.lock().await;
        let sock = self.driver.agent_socket(&SandboxId(row.id.clone()));
        let (store, id, user) = (
            self.store.clone(),
            row.id.clone(),
            self.settings.user.clone(),
        );
        let done = tokio::task::spawn_blocking(move || sync(&store, &sock, &id, &user)).await;
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(sandbox = %row.name, error = %e, "reading agent transcripts")
            }
            Err(e) => tracing::warn!(sandbox = %row.name, error = %e, "reading agent transcripts"),
        }
    }

    /// Agent sessions of a sandbox, newest first.
    pub async fn agent_sessions(
        &self,
        t: &Tenant,
        sandbox: &str,
        q: &AgentSessionsQuery,
    ) -> Result<Vec<AgentSessionResponse>, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let since = since_ms(&q.since)?;
        self.sync_agent_sessions(&row).await;
        let rows = self.store.agent_sessions(&row.id)?;
        let tree = Tree::new(&rows);
        let mut out: Vec<AgentSessionResponse> = rows
            .iter()
            .filter(|s| q.include_subagents == Some(true) || tree.depth(s) == 0)
            .filter(|s| since.is_none_or(|t| s.last_ms >= t))
            .map(|s| session_view(s, &tree))
            .collect();
        out.sort_by(|a, b| b.last_timestamp.cmp(&a.last_timestamp));
        Ok(out)
    }

    /// Events of one agent session (and its sub-agents' with `include_descendants`).
    pub async fn agent_session_events(
        &self,
        t: &Tenant,
        sandbox: &str,
        name: &str,
        q: &AgentEventsQuery,
    ) -> Result<Vec<AgentSessionEventResponse>, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let since = since_ms(&q.since)?;
        self.sync_agent_sessions(&row).await;
        let rows = self.store.agent_sessions(&row.id)?;
        let tree = Tree::new(&rows);
        let session = rows
            .iter()
            .filter(|s| s.name == name && q.session_path.as_ref().is_none_or(|p| &s.path == p))
            .max_by_key(|s| s.last_ms)
            .ok_or_else(|| AppError::NotFound(format!("agent session {name}")))?;
        let mut ids = vec![session.id];
        if q.include_descendants == Some(true) {
            ids.extend(tree.descendants(&session.path).iter().map(|s| s.id));
        }
        let limit = q.limit.unwrap_or(1000).min(10_000);
        let events = self
            .store
            .agent_events(&ids, since, limit, q.offset.unwrap_or(0))?;
        let by_id: HashMap<i64, &AgentSessionRow> = rows.iter().map(|s| (s.id, s)).collect();
        Ok(events
            .into_iter()
            .filter_map(|e| {
                let s = by_id.get(&e.session_id)?;
                Some(AgentSessionEventResponse {
                    place: tree.place(s),
                    timestamp: rfc3339_ms(e.ts_ms),
                    event_type: e.event_type,
                    actor: e.actor,
                    model: e.model,
                    input_tokens: e.tokens.map(|t| t[0]),
                    output_tokens: e.tokens.map(|t| t[1]),
                    cache_creation_input_tokens: e.tokens.map(|t| t[2]),
                    cache_read_input_tokens: e.tokens.map(|t| t[3]),
                    harness_name: s.harness.clone(),
                    cwd: e.cwd,
                    body: e.body,
                })
            })
            .collect())
    }
}

/// One pass over a sandbox's transcripts.
fn sync(store: &Store, sock: &Path, sandbox_id: &str, user: &str) -> Result<(), AppError> {
    let proto = AppError::Agent;
    let found = agent::scan_files(
        sock,
        ScanRequest {
            version: PROTOCOL_VERSION,
            dir: PROJECTS_DIR.into(),
            user: Some(user.into()),
            suffix: ".jsonl".into(),
            max_depth: 3,
            max_files: MAX_TRANSCRIPTS,
        },
    )
    .map_err(proto)?;
    let known = store.agent_transcripts(sandbox_id)?;
    for f in found.files {
        let mut from = known.get(&f.path).map_or(0, |t| t.ingested);
        if let Some(t) = known.get(&f.path)
            && f.size < t.ingested
        {
            store.reset_agent_transcript(t.id)?;
            from = 0;
        }
        if f.size > from {
            let abs = format!("{}/{}", found.root.trim_end_matches('/'), f.path);
            ingest(store, sock, sandbox_id, &f.path, &abs, from, f.size).map_err(proto)?;
        }
    }
    Ok(())
}

/// Read `abs` from `from` towards `size` and store its complete lines.
fn ingest(
    store: &Store,
    sock: &Path,
    sandbox_id: &str,
    rel: &str,
    abs: &str,
    from: u64,
    size: u64,
) -> Result<(), islo_agent::ProtoError> {
    let ident = transcripts::identity(rel);
    let end = size.min(from + MAX_SYNC_BYTES);
    let (mut at, mut pending) = (from, Vec::new());
    while at < end {
        let chunk = agent::read_file(sock, abs, at, READ_CHUNK)?;
        if chunk.is_empty() {
            break;
        }
        at += chunk.len() as u64;
        pending.extend_from_slice(&chunk);
        let Some(cut) = pending.iter().rposition(|b| *b == b'\n') else {
            if pending.len() > MAX_LINE {
                // An endless line: skip what is here and carry on after it.
                pending.clear();
                store_events(store, sandbox_id, rel, &ident, at, &[])?;
            }
            continue;
        };
        let rest = pending.split_off(cut + 1);
        let events: Vec<_> = String::from_utf8_lossy(&pending)
            .lines()
            .filter_map(transcripts::parse_line)
            .collect();
        store_events(
            store,
            sandbox_id,
            rel,
            &ident,
            at - rest.len() as u64,
            &events,
        )?;
        pending = rest;
    }
    Ok(())
}

fn store_events(
    store: &Store,
    sandbox_id: &str,
    rel: &str,
    ident: &transcripts::Identity,
    offset: u64,
    events: &[transcripts::Event],
) -> Result<(), islo_agent::ProtoError> {
    store
        .ingest_agent_events(sandbox_id, rel, ident, offset, events)
        .map_err(|e| islo_agent::ProtoError::Io(std::io::Error::other(e.to_string())))
}

/// Parent and child links among a sandbox's sessions.
struct Tree<'a> {
    by_path: HashMap<&'a str, &'a AgentSessionRow>,
}

impl<'a> Tree<'a> {
    fn new(rows: &'a [AgentSessionRow]) -> Self {
        Self {
            by_path: rows.iter().map(|s| (s.path.as_str(), s)).collect(),
        }
    }

    fn parent(&self, s: &AgentSessionRow) -> Option<&'a AgentSessionRow> {
        s.parent_path
            .as_deref()
            .and_then(|p| self.by_path.get(p).copied())
    }

    /// Ancestors, nearest first (bounded: transcripts could name each other in a loop).
    fn ancestors(&self, s: &AgentSessionRow) -> Vec<&'a AgentSessionRow> {
        let mut out: Vec<&AgentSessionRow> = Vec::new();
        let mut cur = self.parent(s);
        while let Some(p) = cur {
            if out.len() >= 16 || p.path == s.path || out.iter().any(|o| o.path == p.path) {
                break;
            }
            out.push(p);
            cur = self.parent(p);
        }
        out
    }

    fn depth(&self, s: &AgentSessionRow) -> u32 {
        self.ancestors(s).len() as u32
    }

    fn descendants(&self, path: &str) -> Vec<&'a AgentSessionRow> {
        self.by_path
            .values()
            .filter(|s| s.path != path && self.ancestors(s).iter().any(|a| a.path == path))
            .copied()
            .collect()
    }

    fn place(&self, s: &AgentSessionRow) -> AgentSessionPlace {
        let ancestors = self.ancestors(s);
        let parent = ancestors.first();
        let root = ancestors.last().copied().unwrap_or(s);
        AgentSessionPlace {
            session_path: s.path.clone(),
            session_name: s.name.clone(),
            parent_session_path: parent.map(|p| p.path.clone()),
            parent_session_name: parent.map(|p| p.name.clone()),
            root_session_path: root.path.clone(),
            root_session_name: root.name.clone(),
            is_subagent: s.agent_id.is_some() || !ancestors.is_empty(),
            session_depth: ancestors.len() as u32,
            agent_id: s.agent_id.clone(),
        }
    }
}

fn session_view(s: &AgentSessionRow, tree: &Tree<'_>) -> AgentSessionResponse {
    let children = tree
        .by_path
        .values()
        .filter(|c| tree.parent(c).is_some_and(|p| p.path == s.path))
        .count();
    AgentSessionResponse {
        place: tree.place(s),
        child_count: children as u32,
        first_timestamp: rfc3339_ms(s.first_ms),
        last_timestamp: rfc3339_ms(s.last_ms),
        event_count: s.event_count,
        model: s.model.clone(),
        total_input_tokens: s.tokens[0],
        total_output_tokens: s.tokens[1],
        total_cache_creation_tokens: s.tokens[2],
        total_cache_read_tokens: s.tokens[3],
        cwd: s.cwd.clone(),
        git_branch: s.git_branch.clone(),
        harness_name: s.harness.clone(),
        first_user_text: s.first_user_text.clone(),
    }
}

/// Milliseconds since the epoch as RFC 3339 with milliseconds, UTC (sorts as text).
fn rfc3339_ms(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let fmt = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(&fmt).unwrap_or_default()
}

fn since_ms(v: &Option<String>) -> Result<Option<i64>, AppError> {
    let Some(v) = v else { return Ok(None) };
    let t = time::OffsetDateTime::parse(v, &time::format_description::well_known::Rfc3339)
        .map_err(|_| AppError::Validation(format!("since must be an RFC 3339 time, got {v:?}")))?;
    Ok(Some((t.unix_timestamp_nanos() / 1_000_000) as i64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn millisecond_times() {
        assert_eq!(rfc3339_ms(1_795_168_801_000), "2026-11-20T10:00:01.000Z");
        assert_eq!(
            since_ms(&Some("2026-11-20T11:00:01+01:00".into())).unwrap(),
            Some(1_795_168_801_000)
        );
        assert!(since_ms(&Some("yesterday".into())).is_err());
    }
}
