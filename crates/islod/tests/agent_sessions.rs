//! Agent sessions over the API, from Claude Code transcripts in the on-disk format the real
//! CLI writes (`tests/fixtures/claude-code`), placed in a fake sandbox's home directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{AgentEventsQuery, AgentSessionsQuery};

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/claude-code"
);
const SID: &str = "5c2b8f4e-7a1d-4d0e-9b3a-2f6c8e1d4a70";
const PROJECT: &str = "-workspace-app";

/// The fake sandbox's `~islo/.claude/projects`.
fn projects(s: &Server, id: &str) -> std::path::PathBuf {
    s.dir
        .path()
        .join(format!("fake/{id}.root/home/islo/.claude/projects"))
}

fn copy_fixture(to: &std::path::Path, rel: &str, bytes: Option<usize>) {
    let data = std::fs::read(format!("{FIXTURES}/{rel}")).unwrap();
    let dest = to.join(rel);
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    std::fs::write(dest, &data[..bytes.unwrap_or(data.len())]).unwrap();
}

fn all() -> AgentSessionsQuery {
    AgentSessionsQuery {
        include_subagents: Some(true),
        ..Default::default()
    }
}

#[tokio::test]
async fn transcripts_become_agent_sessions_with_their_tree_and_totals() {
    let s = server().await;
    let a = s.client("alpha");
    let id = a.create_sandbox(&create("agents")).await.unwrap().id;
    assert!(a.agent_sessions("agents", &all()).await.unwrap().is_empty());

    let dir = projects(&s, &id);
    let main = format!("{PROJECT}/{SID}.jsonl");
    let sub = format!("{PROJECT}/{SID}/subagents/agent-a3f9c21.jsonl");
    // Half a file first, cut inside a line: only whole lines are read.
    let full = std::fs::read(format!("{FIXTURES}/{main}")).unwrap();
    copy_fixture(&dir, &main, Some(full.len() / 2));
    let early = a.agent_sessions("agents", &all()).await.unwrap();
    assert_eq!(early.len(), 1);
    let partial = early[0].event_count;
    assert!(partial > 0 && partial < 10, "{partial}");

    copy_fixture(&dir, &main, None);
    copy_fixture(&dir, &sub, None);
    let list = a.agent_sessions("agents", &all()).await.unwrap();
    assert_eq!(list.len(), 2, "{list:#?}");
    let top = list.iter().find(|x| !x.place.is_subagent).unwrap();
    let child = list.iter().find(|x| x.place.is_subagent).unwrap();
    assert_eq!(top.place.session_name, SID);
    assert_eq!(
        top.event_count, 10,
        "the line cut in half was read once, whole"
    );
    assert_eq!(top.model, "claude-sonnet-4-5-20250929");
    // msg_01HxA is streamed over three entries: its usage counts once (at its largest).
    assert_eq!(
        (
            top.total_input_tokens,
            top.total_output_tokens,
            top.total_cache_creation_tokens,
            top.total_cache_read_tokens
        ),
        (3 + 6 + 4, 96 + 140 + 37, 5120 + 210, 5120 + 5330)
    );
    assert_eq!(
        (
            top.cwd.as_str(),
            top.git_branch.as_str(),
            top.harness_name.as_str()
        ),
        ("/workspace/app", "feature/health", "claude-code")
    );
    assert_eq!(
        top.first_user_text,
        "Add a /healthz endpoint to server.py and a test for it"
    );
    assert_eq!(top.first_timestamp, "2026-11-20T10:00:00.010Z");
    assert_eq!(top.last_timestamp, "2026-11-20T10:00:31.250Z");
    assert_eq!((top.child_count, top.place.session_depth), (1, 0));
    assert_eq!(top.place.root_session_name, SID);

    assert_eq!(child.place.session_name, "agent-a3f9c21");
    assert_eq!(child.place.agent_id.as_deref(), Some("a3f9c21"));
    assert_eq!(child.place.parent_session_name.as_deref(), Some(SID));
    assert_eq!(
        child.place.parent_session_path.as_deref(),
        Some(main.as_str())
    );
    assert_eq!(
        (
            child.place.root_session_path.as_str(),
            child.place.session_depth
        ),
        (main.as_str(), 1)
    );
    assert_eq!(child.model, "claude-haiku-4-5-20251001");
    assert_eq!(
        child.first_user_text,
        "Locate the HTTP server entry point in /workspace/app"
    );

    // Top-level sessions only by default; `since` filters by last activity.
    let tops = a
        .agent_sessions("agents", &AgentSessionsQuery::default())
        .await
        .unwrap();
    assert_eq!(tops.len(), 1);
    let later = AgentSessionsQuery {
        since: Some("2026-11-20T10:00:20Z".into()),
        include_subagents: Some(true),
    };
    assert_eq!(a.agent_sessions("agents", &later).await.unwrap().len(), 1);

    // Events: in time order, with descendants interleaved on request, paged.
    let q = AgentEventsQuery::default();
    let ev = a.agent_session_events("agents", SID, &q).await.unwrap();
    assert_eq!(ev.len(), 10);
    assert!(ev.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
    assert_eq!(ev[4].event_type, "tool_use");
    assert!(ev[4].body.starts_with("Task {"));
    assert_eq!(ev[9].output_tokens, Some(37));
    let deep = AgentEventsQuery {
        include_descendants: Some(true),
        ..Default::default()
    };
    let ev = a.agent_session_events("agents", SID, &deep).await.unwrap();
    assert_eq!(ev.len(), 14);
    assert_eq!(
        ev[5].place.session_name, "agent-a3f9c21",
        "sub-agent events interleave by time"
    );
    let page = AgentEventsQuery {
        since: Some("2026-11-20T10:00:04.530Z".into()),
        offset: Some(1),
        limit: Some(2),
        ..Default::default()
    };
    let ev = a.agent_session_events("agents", SID, &page).await.unwrap();
    let kinds: Vec<_> = ev.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(
        kinds,
        ["tool_result", "tool_use"],
        "since is exclusive, then offset"
    );

    // Unknown names and other tenants get 404; bad times get 422.
    let e = a
        .agent_session_events("agents", "nope", &q)
        .await
        .unwrap_err();
    assert_eq!(code(e), ErrorCode::ResourceNotFound);
    let b = s.client("beta");
    assert_eq!(
        code(b.agent_sessions("agents", &all()).await.unwrap_err()),
        ErrorCode::SandboxNotFound
    );
    let bad = AgentSessionsQuery {
        since: Some("last week".into()),
        ..Default::default()
    };
    let e = a.agent_sessions("agents", &bad).await.unwrap_err();
    assert!(matches!(e, ClientError::Api { status: 422, .. }), "{e}");

    // Recorded sessions outlive the sandbox.
    a.delete_sandbox("agents").await.unwrap();
    assert_eq!(a.agent_sessions(&id, &all()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn rewritten_transcripts_are_read_again_and_links_are_ignored() {
    let s = server().await;
    let a = s.client("alpha");
    let id = a.create_sandbox(&create("rw")).await.unwrap().id;
    let dir = projects(&s, &id);
    let main = format!("{PROJECT}/{SID}.jsonl");
    copy_fixture(&dir, &main, None);
    assert_eq!(
        a.agent_sessions("rw", &all()).await.unwrap()[0].event_count,
        10
    );

    // Truncated and rewritten shorter (as after a `/clear` that reuses the file).
    let full = std::fs::read_to_string(format!("{FIXTURES}/{main}")).unwrap();
    let first_three: String = full.lines().take(3).map(|l| format!("{l}\n")).collect();
    std::fs::write(dir.join(&main), first_three).unwrap();
    let list = a.agent_sessions("rw", &all()).await.unwrap();
    assert_eq!(
        list[0].event_count, 2,
        "snapshot skipped, caveat and prompt kept"
    );
    assert_eq!(list[0].total_output_tokens, 0);

    // A symlink planted where a transcript would be is not followed.
    let outside = s.dir.path().join("outside.jsonl");
    std::fs::write(&outside, full.as_bytes()).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(format!("{PROJECT}/link.jsonl"))).unwrap();
    assert_eq!(a.agent_sessions("rw", &all()).await.unwrap().len(), 1);
}
