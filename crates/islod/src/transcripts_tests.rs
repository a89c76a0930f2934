use super::*;

const FIXTURES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/fixtures/claude-code"
);
const SID: &str = "5c2b8f4e-7a1d-4d0e-9b3a-2f6c8e1d4a70";

fn events(rel: &str) -> Vec<Event> {
    let text = std::fs::read_to_string(format!("{FIXTURES}/{rel}")).unwrap();
    text.lines().filter_map(parse_line).collect()
}

#[test]
fn identities_from_paths() {
    let top = identity(&format!("-workspace-app/{SID}.jsonl"));
    assert_eq!(
        (top.name.as_str(), top.agent_id, top.parent_path),
        (SID, None, None)
    );
    let sub = identity(&format!(
        "-workspace-app/{SID}/subagents/agent-a3f9c21.jsonl"
    ));
    assert_eq!(sub.name, "agent-a3f9c21");
    assert_eq!(sub.agent_id.as_deref(), Some("a3f9c21"));
    assert_eq!(sub.parent_path, Some(format!("-workspace-app/{SID}.jsonl")));
    let legacy = identity("-workspace-app/agent-a3f9c21.jsonl");
    assert_eq!(
        (legacy.agent_id.as_deref(), legacy.parent_path),
        (Some("a3f9c21"), None)
    );
    assert_eq!(
        legacy_parent("-workspace-app/agent-a3f9c21.jsonl", SID),
        Some(format!("-workspace-app/{SID}.jsonl"))
    );
    assert_eq!(
        legacy_parent("-workspace-app/agent-1.jsonl", "../../etc/x"),
        None
    );
    assert_eq!(
        legacy_parent(&format!("-workspace-app/{SID}.jsonl"), SID),
        None
    );
}

#[test]
fn a_real_session_reads_as_conversation() {
    let ev = events(&format!("-workspace-app/{SID}.jsonl"));
    let kinds: Vec<&str> = ev.iter().map(|e| e.event_type).collect();
    // The snapshot and the summary are not conversation; the meta caveat is a user entry.
    assert_eq!(
        kinds,
        [
            "user_message",
            "user_message",
            "thinking",
            "assistant_message",
            "tool_use",
            "tool_result",
            "tool_use",
            "tool_result",
            "system",
            "assistant_message"
        ]
    );
    assert_eq!(ev[0].user_text, None, "the meta caveat is not typed text");
    assert_eq!(
        ev[1].user_text.as_deref(),
        Some("Add a /healthz endpoint to server.py and a test for it")
    );
    assert_eq!(ev[2].body, "I should find the server entry point first.");
    assert!(ev[4].body.starts_with("Task {"), "{}", ev[4].body);
    assert!(ev[4].body.contains("\"subagent_type\":\"Explore\""));
    assert_eq!(ev[5].actor, "tool");
    assert_eq!(ev[5].body, "The entry point is /workspace/app/server.py");
    assert_eq!(ev[8].user_text, None);
    assert!(
        ev[8].body.starts_with("<command-name>/cost"),
        "{}",
        ev[8].body
    );
    let last = ev.last().unwrap();
    assert_eq!(last.model, "claude-sonnet-4-5-20250929");
    assert_eq!(last.message_id.as_deref(), Some("msg_01HxC"));
    assert_eq!(
        last.usage,
        Some(Usage {
            input: 4,
            output: 37,
            cache_creation: 0,
            cache_read: 5330
        })
    );
    assert_eq!(
        (last.cwd.as_str(), last.git_branch.as_str()),
        ("/workspace/app", "feature/health")
    );
    assert_eq!(ev[1].ts_ms, 1_795_168_801_000);
}

#[test]
fn sub_agent_entries_carry_the_parent_session() {
    let ev = events(&format!(
        "-workspace-app/{SID}/subagents/agent-a3f9c21.jsonl"
    ));
    assert_eq!(ev.len(), 4);
    assert!(ev.iter().all(|e| e.session_id == SID));
    assert_eq!(ev[1].model, "claude-haiku-4-5-20251001");
}

#[test]
fn odd_lines_are_skipped_and_bodies_capped() {
    assert_eq!(parse_line("not json"), None);
    assert_eq!(parse_line("{\"type\":\"user\"}"), None, "no timestamp");
    assert_eq!(parse_line("[1,2]"), None);
    let big = "x".repeat(BODY_CAP + 10);
    let line = serde_json::json!({
        "type": "user", "timestamp": "2026-11-20T10:00:00Z",
        "message": {"role": "user", "content": big}
    });
    let e = parse_line(&line.to_string()).unwrap();
    assert!(e.body.len() < BODY_CAP + 20 && e.body.ends_with("[islo: cut]"));
}
