//! `islo use [NAME] [-- CMD…]`: create the sandbox if needed, start it if stopped, run CMD.

use std::collections::BTreeMap;

use futures_util::StreamExt;
use islo_api::{
    CreateSandboxRequest, ErrorCode, ExecRequest, ImagePullEvent, SandboxResponse, SandboxStatus,
};
use islo_client::{Client, ClientError};

use crate::cli::{Output, UseArgs};
use crate::project::Project;
use crate::{EXIT_FAILURE, Exit, connect, ui, usage};

fn parse_env(pairs: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err(usage(format!("invalid --env {p:?}: expected KEY=VALUE"))),
        })
        .collect()
}

/// `--source` flags, else islo.yaml's `sources`.
fn sources(
    a: &UseArgs,
    project: Option<&Project>,
) -> anyhow::Result<Option<Vec<islo_api::SourceSpec>>> {
    let specs: Vec<islo_api::SourceSpec> = if a.source.is_empty() {
        let from_file = project.and_then(|p| p.sources.as_ref());
        from_file
            .into_iter()
            .flatten()
            .map(crate::project::Source::spec)
            .collect()
    } else {
        let v = a.source.iter().map(|s| islo_api::SourceSpec {
            url: s.clone(),
            ..Default::default()
        });
        v.collect()
    };
    if let Some(bad) = specs.iter().find(|s| {
        !["github://", "https://", "http://"]
            .iter()
            .any(|p| s.url.starts_with(p))
    }) {
        return Err(usage(format!(
            "invalid --source {:?}: use github://owner/repo[:branch] or https://host/path/repo.git[:branch]",
            bad.url
        )));
    }
    Ok((!specs.is_empty()).then_some(specs))
}

/// Run `islo use`; returns the command's exit code.
pub async fn run(a: UseArgs, project: Option<&Project>, output: Output) -> anyhow::Result<i32> {
    let interactive = a.command.is_empty() && !a.list_sessions && a.agent.is_none();
    if interactive && !ui::stdin_tty() {
        return Err(usage(
            "an interactive session needs a terminal (standard input is not one): pass a command after `--`",
        ));
    }
    if !a.command.is_empty() && (a.session.is_some() || a.new_session) {
        return Err(usage(
            "-s/--session and --new-session open a shell: drop the command after `--`",
        ));
    }
    let mut env = BTreeMap::new();
    for f in &a.env_file {
        env.extend(crate::dotenv::load(f)?);
    }
    env.extend(parse_env(&a.env)?);
    let client = connect::client().await?;
    let agent = crate::cmd_agent::plan(&client, &a).await?;
    let name = a
        .name
        .clone()
        .or_else(|| project.and_then(|p| p.sandbox.clone()));
    let existing = match &name {
        Some(n) => match client.get_sandbox(n).await {
            Ok(sb) => Some(sb),
            Err(e) if e.code() == Some(ErrorCode::SandboxNotFound) => None,
            Err(e) => return Err(e.into()),
        },
        None => None,
    };
    if a.list_sessions {
        let name = name.ok_or_else(|| usage("--list-sessions needs a sandbox name"))?;
        let sb = existing.ok_or_else(|| Exit {
            code: crate::EXIT_NOT_FOUND,
            message: format!("sandbox {name} not found"),
        })?;
        return crate::cmd_session::list(&client, &sb.name, output)
            .await
            .map(|_| 0);
    }
    let sandbox = match existing {
        Some(sb) if a.snapshot.is_some() => {
            return Err(usage(format!(
                "sandbox {} already exists; --snapshot only creates new sandboxes (pick another name)",
                sb.name
            )));
        }
        Some(sb) => ensure_running(&client, sb).await?,
        None => create(&client, &a, project, name, env.clone()).await?,
    };
    let tty = interactive || (ui::stdin_tty() && ui::stdout_tty());
    if tty && !env.contains_key("TERM") {
        env.insert(
            "TERM".into(),
            std::env::var("TERM").unwrap_or_else(|_| "xterm-256color".into()),
        );
    }
    let user = match (a.run_as_user.as_str(), project.and_then(|p| p.user.clone())) {
        ("islo", Some(u)) => u,
        (u, _) => u.to_string(),
    };
    if let Some(plan) = agent {
        return crate::cmd_agent::launch(
            &client,
            &sandbox.name,
            plan,
            env,
            &user,
            a.workdir.clone(),
        )
        .await;
    }
    let req = ExecRequest {
        command: a.command.clone(),
        env: (!env.is_empty()).then_some(env),
        user: Some(user),
        workdir: a.workdir.clone(),
        ..Default::default()
    };
    let code = run_in(&client, &sandbox.name, &a, req, interactive, tty).await?;
    if output == Output::Json && code != 0 {
        eprintln!("Exit code: {code}");
    }
    Ok(code)
}

/// A shell in a session, or the command on a terminal or on pipes; its exit code.
async fn run_in(
    client: &Client,
    sandbox: &str,
    a: &UseArgs,
    req: ExecRequest,
    interactive: bool,
    tty: bool,
) -> anyhow::Result<i32> {
    if interactive {
        let session = match (&a.session, a.new_session) {
            (_, true) => crate::cmd_session::new_name(),
            (Some(s), false) => s.clone(),
            (None, false) => "main".into(),
        };
        crate::cmd_session::attach(client, sandbox, &session, req).await
    } else if tty {
        crate::cmd_session::exec_tty(client, sandbox, req).await
    } else {
        crate::cmd_session::exec_pipes(client, sandbox, req).await
    }
}

/// How long `islo use` waits for a sandbox another caller is starting or stopping (a
/// first pull of a large image takes minutes).
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(900);

/// Wait while another caller starts or stops the sandbox; what it is once settled.
async fn settled(client: &Client, mut sb: SandboxResponse) -> anyhow::Result<SandboxResponse> {
    let since = std::time::Instant::now();
    let mut told = false;
    while matches!(sb.status, SandboxStatus::Starting | SandboxStatus::Stopping)
        && since.elapsed() < SETTLE_TIMEOUT
    {
        if !told && ui::stderr_tty() {
            eprintln!(
                "Waiting for sandbox {}, which is {}…",
                sb.name,
                sb.status.as_str()
            );
            told = true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        sb = client.get_sandbox(&sb.name).await?;
    }
    Ok(sb)
}

/// The flags' lifecycle policy over islo.yaml's.
/// The class asked for (`--isolation`, else islo.yaml's), checked against what the server
/// offers: one it lacks is a usage error listing those it has.
async fn isolation(
    client: &Client,
    a: &UseArgs,
    project: Option<&Project>,
) -> anyhow::Result<Option<String>> {
    let Some(class) = a
        .isolation
        .clone()
        .or_else(|| project.and_then(|p| p.isolation.clone()))
    else {
        return Ok(None);
    };
    let offered = client.system().await?.isolation_classes;
    if !offered.is_empty() && !offered.contains(&class) {
        return Err(usage(format!(
            "isolation class {class:?} is not offered by this server; it offers: {} \
             (`islo doctor` says why a class is missing)",
            offered.join(", ")
        )));
    }
    Ok(Some(class))
}

fn lifecycle(a: &UseArgs, project: Option<&Project>) -> Option<islo_api::LifecyclePolicy> {
    let mut l = project
        .and_then(|p| p.lifecycle.clone())
        .unwrap_or_default();
    l.pause_after_idle = a.pause_after_idle.or(l.pause_after_idle);
    l.pause_after = a.pause_after.or(l.pause_after);
    l.delete_after = a.delete_after.or(l.delete_after);
    if let Some(w) = a
        .auto_resume
        .as_deref()
        .and_then(islo_api::AutoResume::parse)
    {
        l.auto_resume = Some(w);
    }
    (l != islo_api::LifecyclePolicy::default()).then_some(l)
}

async fn ensure_running(client: &Client, sb: SandboxResponse) -> anyhow::Result<SandboxResponse> {
    let sb = settled(client, sb).await?;
    match sb.status {
        SandboxStatus::Running => Ok(sb),
        SandboxStatus::Stopped => {
            if ui::stderr_tty() {
                eprintln!("Starting stopped sandbox {}…", sb.name);
            }
            Ok(client.resume_sandbox(&sb.name).await?)
        }
        SandboxStatus::Paused => {
            // Its policy may say activity resumes it; else asked on a terminal (as the hosted
            // CLI does), and refused without one.
            let auto = islo_api::LifecyclePolicy::resumes_on_activity(sb.lifecycle.as_ref());
            let asked = || ui::confirm(&format!("Sandbox {} is paused. Resume it?", sb.name));
            if !(auto || ui::stdin_tty() && asked()) {
                return Err(Exit {
                    code: EXIT_FAILURE,
                    message: format!(
                        "sandbox {0} is paused: resume it with `islo resume {0}` (or create it \
                         with --auto-resume on_activity)",
                        sb.name
                    ),
                }
                .into());
            }
            if ui::stderr_tty() {
                eprintln!("Resuming paused sandbox {}…", sb.name);
            }
            Ok(client.resume_sandbox(&sb.name).await?)
        }
        s => Err(Exit {
            code: EXIT_FAILURE,
            message: format!(
                "sandbox {} is {}{}; `islo status {}` shows it, `islo rm` removes it",
                sb.name,
                s.as_str(),
                sb.status_reason
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default(),
                sb.name
            ),
        }
        .into()),
    }
}

async fn create(
    client: &Client,
    a: &UseArgs,
    project: Option<&Project>,
    name: Option<String>,
    env: BTreeMap<String, String>,
) -> anyhow::Result<SandboxResponse> {
    // A snapshot brings its own image; islo.yaml's does not apply to it.
    let image = match &a.snapshot {
        Some(_) => a.image.clone(),
        None => a
            .image
            .clone()
            .or_else(|| project.and_then(|p| p.image.clone())),
    };
    let mut all_env = project.map(|p| p.env.clone()).unwrap_or_default();
    all_env.extend(env);
    let req = CreateSandboxRequest {
        name: name.clone(),
        image: image.clone(),
        vcpus: a.cpu.or_else(|| project.and_then(|p| p.cpu)),
        memory_mb: a.memory.or_else(|| project.and_then(|p| p.memory_mb)),
        disk_gb: a.disk.or_else(|| project.and_then(|p| p.disk_gb)),
        env: (!all_env.is_empty()).then_some(all_env),
        workdir: a
            .workdir
            .clone()
            .or_else(|| project.and_then(|p| p.workdir.clone())),
        snapshot_name: a.snapshot.clone(),
        sources: sources(a, project)?,
        keep_failed: a.keep_failed.then_some(true),
        gateway_profile: a
            .gateway_profile
            .clone()
            .or_else(|| project.and_then(|p| p.gateway_profile.clone())),
        environment: a
            .environment
            .clone()
            .or_else(|| project.and_then(|p| p.environment.clone())),
        init: project.and_then(|p| p.init.clone()),
        internet_enabled: None,
        init_capabilities: None,
        cache_key: None,
        lifecycle: lifecycle(a, project),
        isolation: isolation(client, a, project).await?,
        node: a.node.clone(),
        // Setup runs once, at creation; a snapshot already holds what it did.
        setup_scripts: project
            .filter(|_| a.snapshot.is_none())
            .map(Project::setup)
            .filter(|s| !s.is_empty()),
        request_id: None,
    };
    if ui::stderr_tty() && a.snapshot.is_none() {
        pull_with_progress(
            client,
            image.as_deref().unwrap_or(islo_api::limits::DEFAULT_IMAGE),
        )
        .await?;
    }
    let sb = match client.create_sandbox(&req).await {
        // Someone else created it meanwhile: use theirs.
        Err(ClientError::Api { body, .. })
            if body.code == ErrorCode::SandboxAlreadyExists && name.is_some() =>
        {
            use_theirs(client, &req, name.as_deref().unwrap_or_default()).await?
        }
        other => other?,
    };
    if name.is_none() || ui::stderr_tty() {
        eprintln!("Created sandbox {}", sb.name);
    }
    if sb.setup_steps.as_ref().is_some_and(|s| !s.is_empty()) {
        crate::cmd_setup::follow(client, &sb.name).await?;
    }
    Ok(sb)
}

/// Someone else is making (or made) the sandbox `name`: wait for it and use it; if theirs
/// failed and went away meanwhile, make it here.
async fn use_theirs(
    client: &Client,
    req: &CreateSandboxRequest,
    name: &str,
) -> anyhow::Result<SandboxResponse> {
    match client.get_sandbox(name).await {
        Ok(sb) => ensure_running(client, sb).await,
        Err(e) if e.code() == Some(ErrorCode::SandboxNotFound) => {
            Ok(client.create_sandbox(req).await?)
        }
        Err(e) => Err(e.into()),
    }
}

/// Pull with one progress bar per layer (TTY only).
async fn pull_with_progress(client: &Client, image: &str) -> anyhow::Result<()> {
    let bars = indicatif::MultiProgress::new();
    let mut by_layer: BTreeMap<String, indicatif::ProgressBar> = BTreeMap::new();
    let style =
        indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    let mut events = Box::pin(client.pull_image(image).await?);
    while let Some(ev) = events.next().await {
        match ev? {
            ImagePullEvent::Progress {
                layer,
                current,
                total,
            } => {
                let bar = by_layer.entry(layer.clone()).or_insert_with(|| {
                    let b = bars.add(indicatif::ProgressBar::new(total));
                    b.set_style(style.clone());
                    b.set_prefix(
                        layer
                            .trim_start_matches("sha256:")
                            .chars()
                            .take(12)
                            .collect::<String>(),
                    );
                    b
                });
                bar.set_position(current);
            }
            ImagePullEvent::Done { .. } => break,
            ImagePullEvent::Error { message } => {
                return Err(Exit {
                    code: EXIT_FAILURE,
                    message: format!("pulling {image}: {message}"),
                }
                .into());
            }
        }
    }
    for b in by_layer.values() {
        b.finish();
    }
    Ok(())
}
