//! The audit log: recorded exec and terminal sessions and their input and output.

use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// A recorded session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditSession {
    pub id: String,
    pub sandbox_id: String,
    pub interactive: bool,
    pub user: String,
    pub command: String,
    pub started_at: String,
    pub ended_at: Option<String>,
    pub exit_code: Option<i32>,
    pub bytes: u64,
    pub cut: bool,
    /// Time of the last recorded chunk (or the start).
    pub last_at: String,
    pub log_count: u64,
    /// First line typed (interactive sessions).
    pub first_input: Option<String>,
}

/// One recorded chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub seq: i64,
    pub ts: String,
    pub stream: String,
    pub data: Vec<u8>,
}

const SESSION_COLUMNS: &str = "s.id, s.sandbox_id, s.interactive, s.user, s.command, s.started_at, s.ended_at, s.exit_code, \
     s.bytes, s.cut, COALESCE((SELECT MAX(ts) FROM exec_log_lines l WHERE l.exec_id = s.id), s.started_at), \
     (SELECT COUNT(*) FROM exec_log_lines l WHERE l.exec_id = s.id)";

fn session(r: &Row<'_>) -> rusqlite::Result<AuditSession> {
    Ok(AuditSession {
        id: r.get(0)?,
        sandbox_id: r.get(1)?,
        interactive: r.get(2)?,
        user: r.get(3)?,
        command: r.get(4)?,
        started_at: r.get(5)?,
        ended_at: r.get(6)?,
        exit_code: r.get(7)?,
        bytes: r.get::<_, i64>(8)? as u64,
        cut: r.get(9)?,
        last_at: r.get(10)?,
        log_count: r.get::<_, i64>(11)? as u64,
        first_input: None,
    })
}

/// The first line typed: input up to the first Enter, without terminal escape sequences
/// (a terminal's answers to queries arrive on input too) or control characters.
pub fn first_line(input: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(input);
    let mut line = String::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => {
                // CSI: ESC [ params final-byte; other escapes: ESC + one char.
                if chars.peek() == Some(&'[') {
                    chars.next();
                    for d in chars.by_ref() {
                        if ('@'..='~').contains(&d) {
                            break;
                        }
                    }
                } else {
                    chars.next();
                }
            }
            '\r' | '\n' if !line.trim().is_empty() => return Some(line.trim().to_string()),
            '\u{7f}' | '\u{8}' => {
                line.pop();
            }
            c if c.is_control() => {}
            c => line.push(c),
        }
    }
    (!line.trim().is_empty()).then(|| line.trim().to_string())
}

/// One write of the audit log's writer.
#[derive(Debug, Clone)]
pub enum AuditWrite {
    Start {
        id: String,
        sandbox_id: String,
        interactive: bool,
        user: String,
        command: String,
        at: String,
    },
    /// `line` of session `id`, which has now recorded `bytes` (and was `cut`).
    Chunk {
        id: String,
        line: LogLine,
        bytes: u64,
        cut: bool,
    },
    End {
        id: String,
        at: String,
        exit: Option<i32>,
    },
}

fn apply(db: &rusqlite::Connection, w: &AuditWrite) -> rusqlite::Result<()> {
    match w {
        AuditWrite::Start {
            id,
            sandbox_id,
            interactive,
            user,
            command,
            at,
        } => db.execute(
            "INSERT INTO exec_sessions (id, sandbox_id, interactive, user, command, started_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, sandbox_id, interactive, user, command, at],
        ),
        AuditWrite::Chunk {
            id,
            line,
            bytes,
            cut,
        } => {
            db.execute(
                "INSERT INTO exec_log_lines (exec_id, seq, ts, stream, data) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, line.seq, line.ts, line.stream, line.data],
            )?;
            db.execute(
                "UPDATE exec_sessions SET bytes = ?2, cut = ?3 WHERE id = ?1",
                params![id, *bytes as i64, cut],
            )
        }
        AuditWrite::End { id, at, exit } => db.execute(
            "UPDATE exec_sessions SET ended_at = ?2, exit_code = ?3 WHERE id = ?1 AND ended_at IS NULL",
            params![id, at, exit],
        ),
    }
    .map(drop)
}

/// The line closing a session islod stopped in the middle of.
pub const INTERRUPTED: &str =
    "[islo: islod stopped while this ran; output after this point was not recorded]\n";

impl Store {
    /// Store `writes` in order, in one transaction. One that fails (a session whose sandbox
    /// was removed meanwhile) is logged and skipped; the others are kept.
    pub fn write_audit(&self, writes: &[AuditWrite]) -> Result<(), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        for w in writes {
            if let Err(e) = apply(&tx, w) {
                tracing::warn!(error = %e, "audit log write skipped");
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Sessions of a sandbox with activity at or after `since`, newest first.
    pub fn audit_sessions(
        &self,
        sandbox_id: &str,
        since: Option<&str>,
    ) -> Result<Vec<AuditSession>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {SESSION_COLUMNS} FROM exec_sessions s WHERE s.sandbox_id = ?1 \
             AND (?2 IS NULL OR COALESCE(s.ended_at, '9999') >= ?2) ORDER BY s.started_at DESC, s.id DESC"
        ))?;
        let rows: Vec<AuditSession> = st
            .query_map(params![sandbox_id, since], session)?
            .collect::<Result<_, _>>()?;
        drop(st);
        drop(db);
        rows.into_iter().map(|s| self.with_first_input(s)).collect()
    }

    fn with_first_input(&self, mut s: AuditSession) -> Result<AuditSession, StoreError> {
        if s.interactive {
            let db = self.db();
            let mut st = db.prepare("SELECT data FROM exec_log_lines WHERE exec_id = ?1 AND stream = 'stdin' ORDER BY seq LIMIT 64")?;
            let chunks = st
                .query_map([&s.id], |r| r.get::<_, Vec<u8>>(0))?
                .collect::<Result<Vec<_>, _>>()?;
            s.first_input = first_line(&chunks.concat());
        }
        Ok(s)
    }

    pub fn audit_session(
        &self,
        sandbox_id: &str,
        id: &str,
    ) -> Result<Option<AuditSession>, StoreError> {
        let found = self
            .db()
            .query_row(&format!("SELECT {SESSION_COLUMNS} FROM exec_sessions s WHERE s.sandbox_id = ?1 AND s.id = ?2"), params![sandbox_id, id], session)
            .optional()?;
        found.map(|s| self.with_first_input(s)).transpose()
    }

    /// Chunks of a session after `after_seq`, at or after `since`, in order.
    pub fn audit_lines(
        &self,
        id: &str,
        after_seq: i64,
        since: Option<&str>,
    ) -> Result<Vec<LogLine>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT seq, ts, stream, data FROM exec_log_lines WHERE exec_id = ?1 AND seq > ?2 AND (?3 IS NULL OR ts >= ?3) ORDER BY seq",
        )?;
        let rows = st.query_map(params![id, after_seq, since], |r| {
            Ok(LogLine {
                seq: r.get(0)?,
                ts: r.get(1)?,
                stream: r.get(2)?,
                data: r.get(3)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Sessions still open when islod stopped can no longer record: close them.
    pub fn end_open_audits(&self, at: &str) -> Result<usize, StoreError> {
        self.write(|db| {
        let tx = db;
        // What islod had not stored when it stopped is lost: the log says so.
        tx.execute(
            "INSERT INTO exec_log_lines (exec_id, seq, ts, stream, data) \
             SELECT s.id, COALESCE((SELECT MAX(seq) FROM exec_log_lines WHERE exec_id = s.id), 0) + 1, \
             ?1, 'islo', ?2 FROM exec_sessions s WHERE s.ended_at IS NULL",
            params![at, INTERRUPTED.as_bytes()],
        )?;
        let n = tx.execute(
            "UPDATE exec_sessions SET ended_at = ?1, cut = 1 WHERE ended_at IS NULL",
            [at],
        )?;
        Ok(n)
    })
    }

    /// Forget sessions that ended before `before`.
    pub fn prune_audit(&self, before: &str) -> Result<usize, StoreError> {
        self.write(|db| {
        db.execute(
            "DELETE FROM exec_log_lines WHERE exec_id IN (SELECT id FROM exec_sessions WHERE ended_at < ?1)",
            [before],
        )?;
        Ok(db.execute("DELETE FROM exec_sessions WHERE ended_at < ?1", [before])?)
    })
    }
}

#[cfg(test)]
mod tests {
    use super::super::sandboxes::tests::row;
    use super::*;

    #[test]
    fn first_typed_line() {
        assert_eq!(
            first_line(b"\x1b[9;14Recho hi\r").as_deref(),
            Some("echo hi")
        );
        assert_eq!(first_line(b"\r\nls -lx\x7f\r").as_deref(), Some("ls -l"));
        assert_eq!(first_line(b""), None);
    }

    #[test]
    fn sessions_open_at_start_up_end_marked_as_cut() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let sb = row(&t, "box");
        s.insert_sandbox(&sb).unwrap();
        let start = AuditWrite::Start {
            id: "open".into(),
            sandbox_id: sb.id.clone(),
            interactive: false,
            user: "islo".into(),
            command: "yes".into(),
            at: "2026-01-01T00:00:00Z".into(),
        };
        let chunk = AuditWrite::Chunk {
            id: "open".into(),
            line: LogLine {
                seq: 1,
                ts: "2026-01-01T00:00:01Z".into(),
                stream: "stdout".into(),
                data: b"y\n".to_vec(),
            },
            bytes: 2,
            cut: false,
        };
        s.write_audit(&[start, chunk]).unwrap();
        assert_eq!(s.end_open_audits("2026-01-01T00:00:02Z").unwrap(), 1);
        let lines = s.audit_lines("open", 0, None).unwrap();
        let last = lines.last().unwrap();
        assert_eq!((last.seq, last.stream.as_str()), (2, "islo"));
        assert_eq!(last.data, INTERRUPTED.as_bytes());
        let ended = s.audit_session(&sb.id, "open").unwrap().unwrap();
        assert!(ended.cut && ended.ended_at.is_some());
    }

    #[test]
    fn record_list_read_prune() {
        let s = Store::memory().unwrap();
        let t = s.ensure_tenant("a").unwrap();
        let sb = row(&t, "box");
        s.insert_sandbox(&sb).unwrap();
        let line = |seq, ts: &str, stream: &str, data: &[u8]| LogLine {
            seq,
            ts: ts.into(),
            stream: stream.into(),
            data: data.to_vec(),
        };
        let chunk = |line, bytes| AuditWrite::Chunk {
            id: "e1".into(),
            line,
            bytes,
            cut: false,
        };
        s.write_audit(&[
            AuditWrite::Start {
                id: "e1".into(),
                sandbox_id: sb.id.clone(),
                interactive: true,
                user: "islo".into(),
                command: "sh".into(),
                at: "2026-01-01T00:00:00Z".into(),
            },
            chunk(line(1, "2026-01-01T00:00:01Z", "stdin", b"ls -l\r"), 6),
            chunk(line(2, "2026-01-01T00:00:02Z", "stdout", b"total 0\n"), 14),
            AuditWrite::End {
                id: "e1".into(),
                at: "2026-01-01T00:00:03Z".into(),
                exit: Some(0),
            },
        ])
        .unwrap();
        let list = s.audit_sessions(&sb.id, None).unwrap();
        assert_eq!(list.len(), 1);
        let e = &list[0];
        assert_eq!(
            (e.log_count, e.first_input.as_deref(), e.exit_code),
            (2, Some("ls -l"), Some(0))
        );
        assert_eq!(e.last_at, "2026-01-01T00:00:02Z");
        assert_eq!(s.audit_lines("e1", 1, None).unwrap().len(), 1);
        assert_eq!(
            s.audit_lines("e1", 0, Some("2026-01-01T00:00:02Z"))
                .unwrap()
                .len(),
            1
        );
        assert!(
            s.audit_sessions(&sb.id, Some("2026-02-01T00:00:00Z"))
                .unwrap()
                .is_empty()
        );
        assert_eq!(s.prune_audit("2026-01-02T00:00:00Z").unwrap(), 1);
        assert!(s.audit_lines("e1", 0, None).unwrap().is_empty());
    }
}
