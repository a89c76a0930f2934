//! `islo ls` and `islo status`.

use islo_api::{SandboxResponse, SandboxStatus};
use islo_client::Client;

use crate::cli::{LsArgs, Output};
use crate::project::Project;
use crate::{connect, ui, usage};

fn row(s: &SandboxResponse) -> Vec<String> {
    let (cpu, mem) = s
        .spec
        .map(|p| (p.vcpus.to_string(), ui::memory(p.memory_mb)))
        .unwrap_or_default();
    vec![
        s.name.clone(),
        s.image.clone(),
        ui::title(s.status.as_str()),
        cpu,
        mem,
        ui::ago(&s.created_at),
    ]
}

/// `islo ls`.
pub async fn ls(client: &Client, a: &LsArgs, output: Output) -> anyhow::Result<()> {
    let statuses = a
        .status
        .iter()
        .map(|s| SandboxStatus::parse(s).ok_or_else(|| usage(format!("unknown status {s:?}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut items = client.all_sandboxes(&statuses).await?;
    if a.all && !statuses.contains(&SandboxStatus::Deleted) {
        items.extend(client.all_sandboxes(&[SandboxStatus::Deleted]).await?);
    }
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&items)?),
        Output::Plain => items
            .iter()
            .for_each(|s| outln!("{}\t{}", s.name, s.status.as_str())),
        Output::Table => out!(
            "{}",
            ui::table(
                &["NAME", "IMAGE", "STATUS", "CPU", "MEMORY", "CREATED"],
                items.iter().map(row).collect()
            )
        ),
    }
    Ok(())
}

/// `islo status NAME`.
pub async fn status_one(client: &Client, name: &str, output: Output) -> anyhow::Result<()> {
    let s = client.get_sandbox(name).await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&s)?);
        return Ok(());
    }
    outln!("Sandbox: {}", s.name);
    outln!("Status: {}", ui::title(s.status.as_str()));
    if let Some(r) = &s.status_reason {
        outln!("Reason: {r}");
    }
    outln!("Image: {}", s.image);
    if let Some(n) = &s.node {
        outln!("Node: {n}");
    }
    if let Some(i) = &s.isolation {
        match (i.class.as_str(), &i.host_ids, &i.warning) {
            ("gvisor", ..) => {
                outln!("Isolation: gvisor (gVisor's kernel answers its system calls)")
            }
            (c, _, Some(w)) => outln!("Isolation: {c}; {w}"),
            (c, Some(h), None) => outln!(
                "Isolation: {c}, user namespace (root is host uid {}; ids {}-{})",
                h.first,
                h.first,
                u64::from(h.first) + u64::from(h.count) - 1
            ),
            (c, None, None) => outln!("Isolation: {c}"),
        }
    }
    if let Some(p) = s.spec {
        outln!("Resources:");
        outln!("  CPU: {} cores", p.vcpus);
        outln!("  Memory: {}", ui::memory(p.memory_mb));
        outln!("  Disk: {}Gi", p.disk_gb);
    }
    if let Some(w) = &s.workdir {
        outln!("Workdir: {w}");
    }
    outln!("Created: {}", ui::datetime(&s.created_at));
    if s.status == SandboxStatus::Running
        && let Some(up) = s.started_at.as_deref().and_then(ui::age_secs)
    {
        outln!("Uptime: {}", ui::duration(up));
    }
    if let Some(steps) = s.setup_steps.as_ref().filter(|s| !s.is_empty()) {
        outln!("Setup:");
        for st in steps {
            let code = st
                .exit_code
                .map(|c| format!(" (exit {c})"))
                .unwrap_or_default();
            outln!("  {}: {}{code}", st.name, st.status);
        }
    }
    outln!("ID: {}", s.id);
    Ok(())
}

fn which(tool: &str) -> Option<String> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(tool))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// `islo status`: server, auth, config and tools.
pub async fn status_all(project: Option<&Project>, output: Output) -> anyhow::Result<()> {
    let endpoint = connect::endpoint();
    let client = connect::client().await?;
    let info = client.system().await;
    let authenticated = info.is_ok();
    let tools: Vec<(&str, Option<String>)> = ["crun", "runc", "skopeo"]
        .iter()
        .map(|t| (*t, which(t)))
        .collect();
    if output == Output::Json {
        let v = serde_json::json!({
            "server": {"endpoint": endpoint.to_string(), "info": info.as_ref().ok()},
            "auth": {"authenticated": authenticated, "tenant": info.as_ref().ok().map(|i| i.tenant.clone())},
            "config": {"islo_yaml": project.is_some(), "sandbox": project.and_then(|p| p.sandbox.clone())},
            "tools": tools.iter().map(|(t, p)| (t.to_string(), p.clone())).collect::<std::collections::BTreeMap<_, _>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        outln!("Server: {endpoint}");
        match &info {
            Ok(i) => {
                outln!(
                    "  islod {} with runtime {}, state in {}",
                    i.version,
                    i.runtime,
                    i.state_dir
                );
                outln!(
                    "  {} sandboxes running, {} images cached",
                    i.sandboxes_running,
                    i.images_cached
                );
                outln!("Auth: authenticated (tenant {})", i.tenant);
            }
            Err(e) => outln!("Auth: not authenticated ({e})"),
        }
        match project {
            Some(p) => outln!(
                "Config: islo.yaml (sandbox: {})",
                p.sandbox.as_deref().unwrap_or("-")
            ),
            None => outln!("Config: no islo.yaml"),
        }
        outln!("Tools:");
        for (t, p) in &tools {
            outln!("  {t}: {}", p.as_deref().unwrap_or("not found"));
        }
    }
    info.map(drop).map_err(Into::into)
}
