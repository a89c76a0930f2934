//! `islo stop`, `islo rm` and `islo resume`, each on one or more sandboxes named or by id.

use islo_api::SandboxStatus;
use islo_client::Client;

use crate::{EXIT_USAGE, Exit, ui};

/// The name of the live sandbox `what` names (a name, or an id).
async fn resolve(client: &Client, what: &str) -> anyhow::Result<String> {
    match client.get_sandbox(what).await {
        Ok(s) => Ok(s.name),
        Err(e) if uuid_like(what) => match client.get_sandbox_by_id(what).await {
            Ok(s) if s.status != SandboxStatus::Deleted => Ok(s.name),
            _ => Err(e.into()),
        },
        Err(e) => Err(e.into()),
    }
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-')
}

/// Resolve every one first, so that nothing is done when one is unknown.
async fn resolve_all(client: &Client, all: &[String]) -> anyhow::Result<Vec<String>> {
    let mut names = Vec::new();
    for w in all {
        let n = resolve(client, w).await?;
        if !names.contains(&n) {
            names.push(n);
        }
    }
    Ok(names)
}

fn listed(names: &[String]) -> String {
    match names {
        [one] => format!("sandbox {one}"),
        many => format!("sandboxes {}", many.join(", ")),
    }
}

/// Run `op` on each; report each failure and return the first (after trying them all).
async fn each<'a, F, Fut>(names: &'a [String], op: F) -> anyhow::Result<()>
where
    F: Fn(&'a str) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut first = None;
    for n in names {
        if let Err(e) = op(n).await {
            if names.len() > 1 {
                eprintln!("islo: {n}: {e:#}");
            }
            first.get_or_insert(e);
        }
    }
    first.map_or(Ok(()), Err)
}

/// `islo stop NAME… [-f]`: asks on a terminal unless forced; proceeds without one.
pub async fn stop(client: &Client, all: &[String], force: bool) -> anyhow::Result<()> {
    let names = resolve_all(client, all).await?;
    if !force && ui::stdin_tty() && !ui::confirm(&format!("Stop {}?", listed(&names))) {
        eprintln!("Aborted.");
        return Ok(());
    }
    each(&names, |n| async move {
        client.stop_sandbox(n).await?;
        eprintln!("Sandbox {n} stopped");
        Ok(())
    })
    .await
}

/// `islo resume NAME…`: start stopped sandboxes again.
pub async fn pause(client: &Client, all: &[String]) -> anyhow::Result<()> {
    let names = resolve_all(client, all).await?;
    each(&names, |n| async move {
        client.pause_sandbox(n).await?;
        eprintln!("Sandbox {n} paused");
        Ok(())
    })
    .await
}

pub async fn resume(client: &Client, all: &[String]) -> anyhow::Result<()> {
    let names = resolve_all(client, all).await?;
    each(&names, |n| async move {
        client.resume_sandbox(n).await?;
        eprintln!("Sandbox {n} running");
        Ok(())
    })
    .await
}

/// `islo rm NAME… [-f]`: asks on a terminal unless forced; refuses without one.
pub async fn rm(client: &Client, all: &[String], force: bool) -> anyhow::Result<()> {
    let names = resolve_all(client, all).await?;
    if !force {
        if !ui::stdin_tty() {
            return Err(Exit {
                code: EXIT_USAGE,
                message: format!(
                    "refusing to remove {} without confirmation: pass -f to remove",
                    listed(&names)
                ),
            }
            .into());
        }
        if !ui::confirm(&format!("Remove {} and all their files?", listed(&names))) {
            eprintln!("Aborted.");
            return Ok(());
        }
    }
    each(&names, |n| async move {
        client.delete_sandbox(n).await?;
        eprintln!("Sandbox {n} removed");
        Ok(())
    })
    .await
}
