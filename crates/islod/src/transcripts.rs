//! Claude Code transcripts: `~/.claude/projects/PROJECT/SESSION.jsonl`, one JSON entry per
//! line, and its sub-agents' in `PROJECT/SESSION/subagents/agent-ID.jsonl` (older versions:
//! `PROJECT/agent-ID.jsonl`, the parent named by each entry's `sessionId`).
//!
//! Pure parsing: what a path says about a session, and what one line says happened. The
//! content is the sandbox's, so it is untrusted: nothing here fails on odd input, it skips it.

use serde_json::Value;

/// The harness these transcripts come from.
pub const HARNESS: &str = "claude-code";
/// Where transcripts live, relative to the user's home.
pub const PROJECTS_DIR: &str = ".claude/projects";
/// Longest event body kept; the rest is cut with a marker.
pub const BODY_CAP: usize = 16 * 1024;

/// What a transcript's path says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub agent_id: Option<String>,
    /// Known from the path alone (`PROJECT/SESSION/subagents/…`).
    pub parent_path: Option<String>,
}

/// The identity of the transcript at `path` (relative to the projects directory).
pub fn identity(path: &str) -> Identity {
    let parts: Vec<&str> = path.split('/').collect();
    let stem = parts
        .last()
        .map(|f| f.strip_suffix(".jsonl").unwrap_or(f))
        .unwrap_or_default();
    let agent_id = stem.strip_prefix("agent-").map(str::to_string);
    let parent_path = match parts.as_slice() {
        [project, session, "subagents", _] if agent_id.is_some() => {
            Some(format!("{project}/{session}.jsonl"))
        }
        _ => None,
    };
    Identity {
        name: stem.to_string(),
        agent_id,
        parent_path,
    }
}

/// The parent of a legacy sub-agent transcript (`PROJECT/agent-ID.jsonl`), from the
/// `sessionId` its entries carry.
pub fn legacy_parent(path: &str, session_id: &str) -> Option<String> {
    let (project, file) = path.rsplit_once('/')?;
    let plausible = !session_id.is_empty()
        && session_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    (file.starts_with("agent-") && plausible).then(|| format!("{project}/{session_id}.jsonl"))
}

/// Token usage of one model answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input: u64,
    pub output: u64,
    pub cache_creation: u64,
    pub cache_read: u64,
}

/// One transcript entry worth showing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub ts_ms: i64,
    pub event_type: &'static str,
    pub actor: &'static str,
    pub model: String,
    /// A model answer streamed over several entries repeats its id and usage: totals count
    /// each id once.
    pub message_id: Option<String>,
    pub usage: Option<Usage>,
    pub cwd: String,
    pub git_branch: String,
    pub session_id: String,
    pub body: String,
    /// Text a person typed (not a tool result, command echo or harness note).
    pub user_text: Option<String>,
}

/// The event on one line, or `None` for entries that are not conversation (summaries,
/// snapshots, progress) or are malformed.
pub fn parse_line(line: &str) -> Option<Event> {
    let v: Value = serde_json::from_str(line).ok()?;
    let kind = v.get("type")?.as_str()?;
    let ts = v.get("timestamp")?.as_str()?;
    let ts_ms = time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)?;
    let text = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let msg = v.get("message");
    let content = msg.and_then(|m| m.get("content"));
    let (event_type, actor, body, user_text) = match kind {
        "user" => user_event(
            content,
            v.get("isMeta").and_then(Value::as_bool) == Some(true),
        )?,
        "assistant" => {
            let (t, body) = assistant_event(content)?;
            (t, "assistant", body, None)
        }
        "system" => {
            let body = v
                .get("content")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| text("subtype"));
            ("system", "system", body, None)
        }
        _ => return None,
    };
    let str_at = |m: Option<&Value>, k: &str| {
        m.and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    Some(Event {
        ts_ms,
        event_type,
        actor,
        model: str_at(msg, "model").unwrap_or_default(),
        message_id: str_at(msg, "id"),
        usage: msg.and_then(|m| m.get("usage")).map(usage),
        cwd: text("cwd"),
        git_branch: text("gitBranch"),
        session_id: text("sessionId"),
        body: cap(body),
        user_text,
    })
}

type Parts = (&'static str, &'static str, String, Option<String>);

fn user_event(content: Option<&Value>, meta: bool) -> Option<Parts> {
    match content? {
        Value::String(s) => {
            let typed = !meta && !s.trim_start().starts_with('<');
            let user_text = typed.then(|| s.trim().to_string());
            Some(("user_message", "user", s.clone(), user_text))
        }
        Value::Array(blocks) => {
            let results: Vec<String> = blocks
                .iter()
                .filter(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
                .map(|b| block_text(b.get("content")))
                .collect();
            if !results.is_empty() {
                return Some(("tool_result", "tool", results.join("\n"), None));
            }
            let body = block_text(Some(&Value::Array(blocks.clone())));
            let user_text = (!meta && !body.trim().is_empty()).then(|| body.trim().to_string());
            Some(("user_message", "user", body, user_text))
        }
        _ => None,
    }
}

fn assistant_event(content: Option<&Value>) -> Option<(&'static str, String)> {
    let blocks = content?.as_array()?;
    let kind_of = |b: &Value| {
        b.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let kinds: Vec<String> = blocks.iter().map(kind_of).collect();
    let event_type = if kinds.iter().any(|k| k == "tool_use") {
        "tool_use"
    } else if kinds.iter().any(|k| k == "text") {
        "assistant_message"
    } else if kinds.iter().any(|k| k == "thinking") {
        "thinking"
    } else {
        return None;
    };
    let body: Vec<String> = blocks
        .iter()
        .filter_map(|b| match b.get("type").and_then(Value::as_str)? {
            "text" => b.get("text")?.as_str().map(str::to_string),
            "thinking" => b.get("thinking")?.as_str().map(str::to_string),
            "tool_use" => Some(format!(
                "{} {}",
                b.get("name")?.as_str()?,
                b.get("input").map(Value::to_string).unwrap_or_default()
            )),
            _ => None,
        })
        .collect();
    Some((event_type, body.join("\n")))
}

/// Text of a content value: a string, or the `text` of its blocks.
fn block_text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

fn usage(u: &Value) -> Usage {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Usage {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_creation: n("cache_creation_input_tokens"),
        cache_read: n("cache_read_input_tokens"),
    }
}

fn cap(mut s: String) -> String {
    if s.len() <= BODY_CAP {
        return s;
    }
    let mut end = BODY_CAP;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str("\n[islo: cut]");
    s
}

#[cfg(test)]
#[path = "transcripts_tests.rs"]
mod tests;
