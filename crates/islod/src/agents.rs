//! The agent profiles islod offers: a built-in table, then `agents:` from its config (a
//! profile with a built-in's name replaces it). Data only: the CLI detects, installs and
//! starts an agent through the ordinary exec and session paths.

use std::collections::BTreeMap;

use islo_api::{AgentProfile, AuthMode, AuthStrategy};

fn argv(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_string()).collect()
}

fn auth(mode: AuthMode, header: Option<&str>) -> Option<AuthStrategy> {
    Some(AuthStrategy {
        mode,
        name: header.map(str::to_string),
        ..Default::default()
    })
}

/// `npm install -g PACKAGE`, saying clearly when the image has no npm.
fn npm_install(agent: &str, package: &str) -> String {
    format!(
        "command -v npm >/dev/null 2>&1 || {{ echo \"{agent} is installed with npm: use an image with Node.js 18 or newer\" >&2; exit 127; }}; \
         npm install -g --no-fund --no-audit --loglevel=http {package}"
    )
}

/// The built-in profiles.
pub fn builtin() -> Vec<AgentProfile> {
    let quiet: BTreeMap<String, String> = [
        ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
        ("DISABLE_AUTOUPDATER", "1"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
    .collect();
    vec![
        AgentProfile {
            name: "claude".into(),
            description: "Claude Code".into(),
            detect: "command -v claude".into(),
            install: npm_install("claude", "@anthropic-ai/claude-code"),
            interactive: argv(&["claude"]),
            task: argv(&["claude", "-p", "--dangerously-skip-permissions", "{task}"]),
            env: quiet,
            provider_key: "anthropic".into(),
            local_env: Some("ANTHROPIC_API_KEY".into()),
            hosts: argv(&["api.anthropic.com"]),
            auth_strategy: auth(AuthMode::Header, Some("x-api-key")),
        },
        AgentProfile {
            name: "codex".into(),
            description: "Codex CLI".into(),
            detect: "command -v codex".into(),
            install: npm_install("codex", "@openai/codex"),
            interactive: argv(&["codex"]),
            task: argv(&["codex", "exec", "--full-auto", "{task}"]),
            env: BTreeMap::new(),
            provider_key: "openai".into(),
            local_env: Some("OPENAI_API_KEY".into()),
            hosts: argv(&["api.openai.com"]),
            auth_strategy: auth(AuthMode::Bearer, None),
        },
        AgentProfile {
            name: "opencode".into(),
            description: "OpenCode".into(),
            detect: "command -v opencode".into(),
            install: npm_install("opencode", "opencode-ai"),
            interactive: argv(&["opencode"]),
            task: argv(&["opencode", "run", "{task}"]),
            env: BTreeMap::new(),
            provider_key: "anthropic".into(),
            local_env: Some("ANTHROPIC_API_KEY".into()),
            hosts: argv(&["api.anthropic.com"]),
            auth_strategy: auth(AuthMode::Header, Some("x-api-key")),
        },
        AgentProfile {
            name: "cursor".into(),
            description: "Cursor agent".into(),
            detect: "command -v cursor-agent".into(),
            install: "command -v curl >/dev/null 2>&1 || { echo 'cursor is installed with curl and bash' >&2; exit 127; }; \
                      curl -fsS https://cursor.com/install | bash && ln -sf \"$HOME/.local/bin/cursor-agent\" /usr/local/bin/cursor-agent"
                .into(),
            interactive: argv(&["cursor-agent"]),
            task: argv(&["cursor-agent", "-p", "--force", "{task}"]),
            env: BTreeMap::new(),
            provider_key: "cursor".into(),
            local_env: Some("CURSOR_API_KEY".into()),
            hosts: argv(&["*.cursor.sh"]),
            auth_strategy: auth(AuthMode::Bearer, None),
        },
    ]
}

/// The built-ins with `extra` added (same name: replaced); checked.
pub fn profiles(extra: &[AgentProfile]) -> Result<Vec<AgentProfile>, String> {
    let mut all = builtin();
    for p in extra {
        if p.name.is_empty()
            || !p
                .name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(format!(
                "agents: name {:?} must be letters, digits and -",
                p.name
            ));
        }
        if p.interactive.is_empty()
            || p.task.is_empty()
            || !p.task.iter().any(|a| a.contains("{task}"))
        {
            return Err(format!(
                "agents: {} needs an interactive argv and a task argv with a {{task}} element",
                p.name
            ));
        }
        all.retain(|b| b.name != p.name);
        all.push(p.clone());
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_complete_and_config_replaces_by_name() {
        let all = builtin();
        for want in ["claude", "codex", "opencode", "cursor"] {
            let p = all.iter().find(|p| p.name == want).unwrap();
            assert!(p.task.iter().any(|a| a == "{task}"), "{want}");
            assert!(!p.provider_key.is_empty());
        }
        let mut mine = all[0].clone();
        mine.install = "true".into();
        let merged = profiles(&[mine]).unwrap();
        assert_eq!(merged.len(), 4);
        assert_eq!(
            merged.iter().find(|p| p.name == "claude").unwrap().install,
            "true"
        );
        let mut bad = all[0].clone();
        bad.name = "my agent".into();
        assert!(profiles(&[bad]).is_err());
    }
}
