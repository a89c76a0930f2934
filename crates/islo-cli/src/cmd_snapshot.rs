//! `islo snapshot save|ls|rm|export|import`.

use std::path::PathBuf;

use islo_api::{CreateSnapshotRequest, SnapshotResponse};
use islo_client::Client;

use crate::cli::{Output, SnapshotCmd};
use crate::{EXIT_USAGE, Exit, ui, usage};

/// Run a snapshot subcommand.
pub async fn run(client: &Client, cmd: SnapshotCmd, output: Output) -> anyhow::Result<()> {
    match cmd {
        SnapshotCmd::Save {
            sandbox,
            name,
            no_wait,
            memory,
        } => save(client, sandbox, name, (no_wait, memory), output).await,
        SnapshotCmd::Ls => ls(client, output).await,
        SnapshotCmd::Rm { names, force } => rm(client, &names, force).await,
        SnapshotCmd::Export { name, to } => export(client, &name, &to).await,
        SnapshotCmd::Import {
            archive,
            name,
            trust_memory,
        } => import(client, &archive, &name, trust_memory, output).await,
    }
}

fn print_one(s: &SnapshotResponse, output: Output) -> anyhow::Result<()> {
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(s)?),
        _ => outln!("{}", s.name),
    }
    Ok(())
}

async fn save(
    client: &Client,
    sandbox: String,
    name: Option<String>,
    (no_wait, memory): (bool, bool),
    output: Output,
) -> anyhow::Result<()> {
    client.get_sandbox(&sandbox).await?;
    let req = CreateSnapshotRequest {
        sandbox_name: Some(sandbox.clone()),
        sandbox_id: None,
        name,
        memory: memory.then_some(true),
    };
    if !no_wait && ui::stderr_tty() {
        eprintln!("Saving a snapshot of {sandbox}…");
    }
    let s = client.create_snapshot(&req, no_wait).await?;
    match (no_wait, s.size_bytes) {
        (true, _) => eprintln!(
            "Saving snapshot {} in the background; see `islo snapshot ls`",
            s.name
        ),
        (false, size) => eprintln!(
            "Saved snapshot {} ({}); start sandboxes from it with `islo use NEW --snapshot {}`",
            s.name,
            ui::bytes(size.unwrap_or(0)),
            s.name
        ),
    }
    print_one(&s, output)
}

async fn ls(client: &Client, output: Output) -> anyhow::Result<()> {
    let mut items = Vec::new();
    loop {
        let page = client
            .list_snapshots(Some(1000), Some(items.len() as u32))
            .await?;
        let done = page.items.is_empty() || items.len() + page.items.len() >= page.total as usize;
        items.extend(page.items);
        if done {
            break;
        }
    }
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&items)?),
        Output::Plain => items
            .iter()
            .for_each(|s| outln!("{}\t{}", s.name, s.status)),
        Output::Table => {
            let rows = items
                .iter()
                .map(|s| {
                    vec![
                        s.name.clone(),
                        s.status.to_string(),
                        s.size_bytes.map(ui::bytes).unwrap_or_else(|| "-".into()),
                        s.created_at
                            .as_deref()
                            .map(ui::datetime)
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            out!(
                "{}",
                ui::table(&["NAME", "STATUS", "SIZE", "CREATED"], rows)
            );
        }
    }
    Ok(())
}

async fn rm(client: &Client, names: &[String], force: bool) -> anyhow::Result<()> {
    for n in names {
        client.get_snapshot(n).await?;
    }
    if !force {
        let list = names.join(", ");
        if !ui::stdin_tty() {
            return Err(Exit {
                code: EXIT_USAGE,
                message: format!(
                    "refusing to remove snapshot(s) {list} without confirmation: pass -f to remove"
                ),
            }
            .into());
        }
        if !ui::confirm(&format!("Remove snapshot(s) {list}?")) {
            eprintln!("Aborted.");
            return Ok(());
        }
    }
    for n in names {
        client.delete_snapshot(n).await?;
        eprintln!("Snapshot {n} removed");
    }
    Ok(())
}

/// `oci-archive:PATH` (or a bare path for import).
fn archive_path(spec: &str, bare_ok: bool) -> anyhow::Result<PathBuf> {
    match spec.strip_prefix("oci-archive:") {
        Some(p) if !p.is_empty() => Ok(PathBuf::from(p)),
        None if bare_ok && !spec.contains("://") => Ok(PathBuf::from(spec)),
        _ => Err(usage(format!(
            "unsupported destination {spec:?}: use oci-archive:PATH (then push it with any OCI tool)"
        ))),
    }
}

async fn export(client: &Client, name: &str, to: &str) -> anyhow::Result<()> {
    let path = archive_path(to, false)?;
    let snap = client.get_snapshot(name).await?;
    let bar = ui::stderr_tty().then(|| {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} exporting {msg} {bytes}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.set_message(snap.name.clone());
        b
    });
    let n = client
        .export_snapshot(name, &path, &|n| {
            if let Some(b) = &bar {
                b.set_position(n);
            }
        })
        .await?;
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    eprintln!(
        "Exported snapshot {name} to oci-archive:{} ({})",
        path.display(),
        ui::bytes(n)
    );
    Ok(())
}

async fn import(
    client: &Client,
    archive: &str,
    name: &str,
    trust_memory: bool,
    output: Output,
) -> anyhow::Result<()> {
    let path = archive_path(archive, true)?;
    if !path.is_file() {
        return Err(Exit {
            code: crate::EXIT_NOT_FOUND,
            message: format!("{} is not a file", path.display()),
        }
        .into());
    }
    let s = client.import_snapshot(name, &path, trust_memory).await?;
    eprintln!("Imported snapshot {}", s.name);
    if let Some(why) = &s.status_reason {
        eprintln!("note: {why}");
    }
    print_one(&s, output)
}
