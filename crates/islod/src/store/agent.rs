//! Agent sessions ingested from transcripts found in sandboxes, and their events.

use std::collections::HashMap;

use rusqlite::params;

use super::{Store, StoreError};
use crate::transcripts::{Event, Identity};

/// A transcript and how far it has been read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transcript {
    pub id: i64,
    pub ingested: u64,
}

/// An agent session with its aggregates.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSessionRow {
    pub id: i64,
    pub path: String,
    pub name: String,
    pub agent_id: Option<String>,
    pub parent_path: Option<String>,
    pub harness: String,
    pub cwd: String,
    pub git_branch: String,
    pub first_user_text: String,
    pub model: String,
    pub first_ms: i64,
    pub last_ms: i64,
    pub event_count: u64,
    /// Input, output, cache-creation and cache-read tokens, each model answer counted once.
    pub tokens: [u64; 4],
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentEventRow {
    pub session_id: i64,
    pub ts_ms: i64,
    pub event_type: String,
    pub actor: String,
    pub model: String,
    pub tokens: Option<[u64; 4]>,
    pub cwd: String,
    pub body: String,
}

impl Store {
    /// The transcripts of a sandbox read so far, by path.
    pub fn agent_transcripts(
        &self,
        sandbox_id: &str,
    ) -> Result<HashMap<String, Transcript>, StoreError> {
        let db = self.db();
        let mut st = db
            .prepare("SELECT path, id, ingested_bytes FROM agent_sessions WHERE sandbox_id = ?1")?;
        let rows = st.query_map([sandbox_id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Transcript {
                    id: r.get(1)?,
                    ingested: r.get::<_, i64>(2)? as u64,
                },
            ))
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forget what was read of a transcript (it was rewritten or truncated).
    pub fn reset_agent_transcript(&self, id: i64) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute("DELETE FROM agent_events WHERE session_id = ?1", [id])?;
        db.execute(
            "UPDATE agent_sessions SET ingested_bytes = 0, first_user_text = '', model = '' WHERE id = ?1",
            [id],
        )?;
        Ok(())
    })
    }

    /// Append the events read from a transcript up to byte `offset`, in one transaction.
    pub fn ingest_agent_events(
        &self,
        sandbox_id: &str,
        path: &str,
        ident: &Identity,
        offset: u64,
        events: &[Event],
    ) -> Result<(), StoreError> {
        self.write(|db| {
            let tx = db;
            tx.execute(
            "INSERT INTO agent_sessions (sandbox_id, path, name, agent_id, parent_path, harness) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (sandbox_id, path) DO NOTHING",
            params![
                sandbox_id,
                path,
                ident.name,
                ident.agent_id,
                ident.parent_path,
                crate::transcripts::HARNESS
            ],
        )?;
            let id: i64 = tx.query_row(
                "SELECT id FROM agent_sessions WHERE sandbox_id = ?1 AND path = ?2",
                params![sandbox_id, path],
                |r| r.get(0),
            )?;
            let mut seq: i64 = tx.query_row(
                "SELECT COALESCE(MAX(seq), 0) FROM agent_events WHERE session_id = ?1",
                [id],
                |r| r.get(0),
            )?;
            for e in events {
                seq += 1;
                insert_event(tx, id, seq, e)?;
                note_session_facts(tx, id, path, e)?;
            }
            tx.execute(
                "UPDATE agent_sessions SET ingested_bytes = ?2 WHERE id = ?1",
                params![id, offset as i64],
            )?;
            Ok(())
        })
    }

    /// Every agent session of a sandbox that has events, with its aggregates.
    pub fn agent_sessions(&self, sandbox_id: &str) -> Result<Vec<AgentSessionRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT s.id, s.path, s.name, s.agent_id, s.parent_path, s.harness, s.cwd, s.git_branch, \
             s.first_user_text, s.model, MIN(e.ts_ms), MAX(e.ts_ms), COUNT(e.seq) \
             FROM agent_sessions s JOIN agent_events e ON e.session_id = s.id \
             WHERE s.sandbox_id = ?1 GROUP BY s.id",
        )?;
        let mut rows: Vec<AgentSessionRow> = st
            .query_map([sandbox_id], |r| {
                Ok(AgentSessionRow {
                    id: r.get(0)?,
                    path: r.get(1)?,
                    name: r.get(2)?,
                    agent_id: r.get(3)?,
                    parent_path: r.get(4)?,
                    harness: r.get(5)?,
                    cwd: r.get(6)?,
                    git_branch: r.get(7)?,
                    first_user_text: r.get(8)?,
                    model: r.get(9)?,
                    first_ms: r.get(10)?,
                    last_ms: r.get(11)?,
                    event_count: r.get::<_, i64>(12)? as u64,
                    tokens: [0; 4],
                })
            })?
            .collect::<Result<_, _>>()?;
        // One streamed answer repeats its message id and usage on several entries.
        let mut st = db.prepare(
            "SELECT session_id, SUM(i), SUM(o), SUM(c), SUM(r) FROM ( \
               SELECT e.session_id, MAX(e.input_tokens) i, MAX(e.output_tokens) o, \
                      MAX(e.cache_creation_tokens) c, MAX(e.cache_read_tokens) r \
               FROM agent_events e JOIN agent_sessions s ON s.id = e.session_id \
               WHERE s.sandbox_id = ?1 AND e.input_tokens IS NOT NULL \
               GROUP BY e.session_id, COALESCE(e.message_id, 'seq:' || e.seq)) \
             GROUP BY session_id",
        )?;
        let totals: HashMap<i64, [u64; 4]> = st
            .query_map([sandbox_id], |r| {
                let n = |i| r.get::<_, i64>(i).map(|v| v as u64);
                Ok((r.get(0)?, [n(1)?, n(2)?, n(3)?, n(4)?]))
            })?
            .collect::<Result<_, _>>()?;
        for row in &mut rows {
            row.tokens = totals.get(&row.id).copied().unwrap_or_default();
        }
        Ok(rows)
    }

    /// Events of the given sessions after `since_ms`, by time, paged.
    pub fn agent_events(
        &self,
        session_ids: &[i64],
        since_ms: Option<i64>,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<AgentEventRow>, StoreError> {
        let ids = serde_json::to_string(session_ids).unwrap_or_else(|_| "[]".into());
        let db = self.db();
        let mut st = db.prepare(
            "SELECT session_id, ts_ms, event_type, actor, model, input_tokens, output_tokens, \
             cache_creation_tokens, cache_read_tokens, cwd, body FROM agent_events \
             WHERE session_id IN (SELECT value FROM json_each(?1)) AND ts_ms > ?2 \
             ORDER BY ts_ms, session_id, seq LIMIT ?3 OFFSET ?4",
        )?;
        let rows = st.query_map(
            params![ids, since_ms.unwrap_or(i64::MIN), limit, offset],
            |r| {
                let tok = |i| r.get::<_, Option<i64>>(i).map(|v| v.unwrap_or(0) as u64);
                let has: Option<i64> = r.get(5)?;
                Ok(AgentEventRow {
                    session_id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    event_type: r.get(2)?,
                    actor: r.get(3)?,
                    model: r.get(4)?,
                    tokens: match has {
                        Some(_) => Some([tok(5)?, tok(6)?, tok(7)?, tok(8)?]),
                        None => None,
                    },
                    cwd: r.get(9)?,
                    body: r.get(10)?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Forget agent sessions of deleted sandboxes whose last event is older than `before_ms`.
    pub fn prune_agent_sessions(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.write(|db| {
        Ok(db.execute(
            "DELETE FROM agent_sessions WHERE id IN ( \
               SELECT s.id FROM agent_sessions s JOIN sandboxes b ON b.id = s.sandbox_id \
               WHERE b.deleted_at IS NOT NULL AND \
               COALESCE((SELECT MAX(ts_ms) FROM agent_events e WHERE e.session_id = s.id), 0) < ?1)",
            [before_ms],
        )?)
    })
    }
}

fn insert_event(tx: &super::Tx<'_>, id: i64, seq: i64, e: &Event) -> rusqlite::Result<()> {
    let u = e.usage;
    tx.execute(
        "INSERT INTO agent_events (session_id, seq, ts_ms, event_type, actor, model, message_id, \
         input_tokens, output_tokens, cache_creation_tokens, cache_read_tokens, cwd, body) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
        params![
            id,
            seq,
            e.ts_ms,
            e.event_type,
            e.actor,
            e.model,
            e.message_id,
            u.map(|u| u.input as i64),
            u.map(|u| u.output as i64),
            u.map(|u| u.cache_creation as i64),
            u.map(|u| u.cache_read as i64),
            e.cwd,
            e.body
        ],
    )?;
    Ok(())
}

/// The session-wide facts an event settles: first cwd, branch and typed text, latest model,
/// and (for a legacy sub-agent transcript) its parent.
fn note_session_facts(tx: &super::Tx<'_>, id: i64, path: &str, e: &Event) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE agent_sessions SET \
           cwd = CASE WHEN cwd = '' THEN ?2 ELSE cwd END, \
           git_branch = CASE WHEN git_branch = '' THEN ?3 ELSE git_branch END, \
           first_user_text = CASE WHEN first_user_text = '' THEN COALESCE(?4, '') ELSE first_user_text END, \
           model = CASE WHEN ?5 = '' OR ?5 = '<synthetic>' THEN model ELSE ?5 END, \
           parent_path = COALESCE(parent_path, ?6) \
         WHERE id = ?1",
        params![
            id,
            e.cwd,
            e.git_branch,
            e.user_text,
            e.model,
            crate::transcripts::legacy_parent(path, &e.session_id)
        ],
    )?;
    Ok(())
}
