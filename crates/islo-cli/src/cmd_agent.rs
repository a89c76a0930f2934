//! `islo use NAME --agent [AGENT] [--task "…"]` and `islo login --tool PROVIDER`: coding
//! agents in sandboxes. Profiles come from islod (`GET /agents`); this side checks the
//! provider key is stored (offering a local one), finds or installs the agent through the
//! ordinary exec path (so through the gateway, with its output as progress), then attaches to
//! a session named after the agent, or starts the task in a detached session and returns.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use islo_api::{AgentProfile, CreateSessionRequest, ExecRequest, SecretRequest};
use islo_client::{Client, ExecStreamEvent};

use crate::cli::UseArgs;
use crate::{ui, usage};

/// What `--agent` asked for.
pub enum Want {
    Named(Box<AgentProfile>),
    /// `--agent` without a name: whichever known agent the image has.
    Auto(Vec<AgentProfile>),
}

pub struct Plan {
    want: Want,
    task: Option<String>,
}

/// Before anything is created: `--task` needs `--agent`, the agent is known, its key stored.
pub async fn plan(client: &Client, a: &UseArgs) -> anyhow::Result<Option<Plan>> {
    let name = match (&a.agent, &a.task) {
        (None, Some(_)) => {
            return Err(usage(
                "--task needs --agent (e.g. --agent claude --task \"fix the tests\")",
            ));
        }
        (None, None) => return Ok(None),
        (Some(n), _) => n,
    };
    if !a.command.is_empty() {
        return Err(usage(
            "--agent starts the agent: drop the command after `--`",
        ));
    }
    if a.task.is_none() && !ui::stdin_tty() {
        return Err(usage(
            "the agent's interactive UI needs a terminal: give it a --task to run in the background",
        ));
    }
    if a.task.as_deref().is_some_and(|t| t.trim().is_empty()) {
        return Err(usage("--task needs a prompt"));
    }
    let profiles = client.agents().await?;
    let want = if name == "auto" {
        Want::Auto(profiles)
    } else {
        let names: Vec<String> = profiles.iter().map(|p| p.name.clone()).collect();
        let p = profiles
            .into_iter()
            .find(|p| &p.name == name)
            .ok_or_else(|| {
                usage(format!(
                    "unknown agent {name:?}: use one of {}",
                    names.join(", ")
                ))
            })?;
        ensure_key(client, &p).await?;
        Want::Named(Box::new(p))
    };
    Ok(Some(Plan {
        want,
        task: a.task.clone(),
    }))
}

fn secret_request(p: &AgentProfile, value: String) -> SecretRequest {
    SecretRequest {
        value,
        env_vars: p.local_env.clone().map(|v| vec![v]),
        hosts: (!p.hosts.is_empty()).then(|| p.hosts.clone()),
        auth_strategy: p.auth_strategy.clone(),
    }
}

/// The agent's provider key must be stored; a local one is offered for storage.
async fn ensure_key(client: &Client, p: &AgentProfile) -> anyhow::Result<()> {
    if client
        .secrets()
        .await?
        .iter()
        .any(|s| s.name == p.provider_key)
    {
        return Ok(());
    }
    let key = &p.provider_key;
    let local = p.local_env.as_ref().and_then(|v| {
        std::env::var(v)
            .ok()
            .filter(|x| !x.is_empty())
            .map(|x| (v, x))
    });
    if let Some((var, value)) = local
        && ui::stdin_tty()
        && ui::confirm(&format!(
            "Store your ${var} as islo's {key} secret? The gateway injects it; sandboxes only see a placeholder."
        ))
    {
        client.put_secret(key, &secret_request(p, value)).await?;
        eprintln!("Stored secret {key}");
        return Ok(());
    }
    Err(anyhow::anyhow!(
        "{} needs the {key} key, which islo does not have yet: run `islo login --tool {key}` \
         (it reads ${} or asks) or `islo secret set {key} --from-stdin`",
        p.name,
        p.local_env.as_deref().unwrap_or("the key")
    ))
}

/// `islo login --tool PROVIDER`: store a provider key from its usual env var, else stdin.
pub async fn login_tool(client: &Client, tool: &str) -> anyhow::Result<()> {
    let profiles = client.agents().await?;
    let p = profiles
        .iter()
        .find(|p| p.provider_key == tool)
        .ok_or_else(|| {
            let keys: Vec<&str> = profiles.iter().map(|p| p.provider_key.as_str()).collect();
            usage(format!(
                "unknown tool {tool:?}: use one of {}",
                keys.join(", ")
            ))
        })?;
    let from_env = p
        .local_env
        .as_ref()
        .and_then(|v| std::env::var(v).ok().filter(|x| !x.is_empty()));
    let value = match from_env {
        Some(v) => v,
        None => crate::cmd_secret::read_value(tool, false)?,
    };
    if value.is_empty() {
        return Err(usage("the key is empty"));
    }
    client.put_secret(tool, &secret_request(p, value)).await?;
    eprintln!(
        "Stored the {tool} key; the gateway injects it toward {}",
        p.hosts.join(", ")
    );
    Ok(())
}

/// Run `sh -c script` in the sandbox; with `show`, its output goes to our stderr. Exit code.
async fn run_sh(
    client: &Client,
    sandbox: &str,
    script: &str,
    user: &str,
    show: bool,
) -> anyhow::Result<i32> {
    let req = ExecRequest {
        command: vec!["sh".into(), "-c".into(), script.to_string()],
        user: Some(user.to_string()),
        ..Default::default()
    };
    let mut events = Box::pin(client.exec_stream(sandbox, &req).await?);
    while let Some(ev) = events.next().await {
        match ev? {
            ExecStreamEvent::Stdout(b) | ExecStreamEvent::Stderr(b) if show => {
                use std::io::Write;
                let _ = std::io::stderr().write_all(&b);
            }
            ExecStreamEvent::Exit(code) => return Ok(code),
            ExecStreamEvent::Error(m) => return Err(anyhow::anyhow!("{m}")),
            _ => {}
        }
    }
    Err(anyhow::anyhow!(
        "the sandbox closed the command without an exit code"
    ))
}

/// The agent, installed if it is missing.
async fn ensure_installed(
    client: &Client,
    sandbox: &str,
    p: &AgentProfile,
    user: &str,
) -> anyhow::Result<()> {
    if run_sh(client, sandbox, &p.detect, user, false).await? == 0 {
        return Ok(());
    }
    eprintln!(
        "Installing {} ({}) in {sandbox} through the gateway…",
        p.description, p.name
    );
    let code = run_sh(client, sandbox, &p.install, "root", true).await?;
    if code != 0 || run_sh(client, sandbox, &p.detect, user, false).await? != 0 {
        return Err(anyhow::anyhow!(
            "installing {} failed (exit {code}); the output above says why",
            p.name
        ));
    }
    eprintln!("Installed {}", p.name);
    Ok(())
}

/// The first known agent the image has.
async fn detect_any(
    client: &Client,
    sandbox: &str,
    all: Vec<AgentProfile>,
    user: &str,
) -> anyhow::Result<AgentProfile> {
    for p in all {
        if run_sh(client, sandbox, &p.detect, user, false).await? == 0 {
            return Ok(p);
        }
    }
    Err(usage(format!(
        "no known agent found in {sandbox}: name one, e.g. --agent claude (islo installs it)"
    )))
}

/// After the sandbox is ready: start the agent. Returns the exit code for `islo use`.
pub async fn launch(
    client: &Client,
    sandbox: &str,
    plan: Plan,
    env: BTreeMap<String, String>,
    user: &str,
    workdir: Option<String>,
) -> anyhow::Result<i32> {
    let p = match plan.want {
        Want::Named(p) => *p,
        Want::Auto(all) => {
            let p = detect_any(client, sandbox, all, user).await?;
            ensure_key(client, &p).await?;
            p
        }
    };
    ensure_installed(client, sandbox, &p, user).await?;
    let mut env = env;
    env.extend(p.env.clone());
    let Some(task) = plan.task else {
        let req = ExecRequest {
            command: p.interactive.clone(),
            env: Some(env),
            user: Some(user.to_string()),
            workdir,
            ..Default::default()
        };
        return crate::cmd_session::attach(client, sandbox, &p.name, req).await;
    };
    let session = crate::cmd_session::new_name_with(&format!("{}-task", p.name));
    let command = p.task.iter().map(|a| a.replace("{task}", &task)).collect();
    client
        .create_session(
            sandbox,
            &CreateSessionRequest {
                name: session.clone(),
                command: Some(command),
                env: Some(env),
                ttl: None,
                user: Some(user.to_string()),
                workdir,
            },
        )
        .await?;
    eprintln!(
        "Started {} on the task in session {session} of {sandbox}; it runs in the background.",
        p.name
    );
    eprintln!(
        "  its work:     islo logs {sandbox} --type agent   (then `islo logs {sandbox} ID -f`)"
    );
    eprintln!("  its terminal: islo use {sandbox} -s {session}");
    outln!("{session}");
    Ok(0)
}
