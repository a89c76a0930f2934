//! `islo stop` and `islo rm`.

use islo_client::Client;

use crate::{EXIT_USAGE, Exit, ui};

/// `islo stop NAME [-f]`: asks on a terminal unless forced; proceeds without one.
pub async fn stop(client: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    client.get_sandbox(name).await?;
    if !force && ui::stdin_tty() && !ui::confirm(&format!("Stop sandbox {name}?")) {
        eprintln!("Aborted.");
        return Ok(());
    }
    client.stop_sandbox(name).await?;
    eprintln!("Sandbox {name} stopped");
    Ok(())
}

/// `islo rm NAME [-f]`: asks on a terminal unless forced; refuses without one.
pub async fn rm(client: &Client, name: &str, force: bool) -> anyhow::Result<()> {
    client.get_sandbox(name).await?;
    if !force {
        if !ui::stdin_tty() {
            return Err(Exit {
                code: EXIT_USAGE,
                message: format!(
                    "refusing to remove sandbox {name} without confirmation: pass -f to remove it"
                ),
            }
            .into());
        }
        if !ui::confirm(&format!("Remove sandbox {name} and all its files?")) {
            eprintln!("Aborted.");
            return Ok(());
        }
    }
    client.delete_sandbox(name).await?;
    eprintln!("Sandbox {name} removed");
    Ok(())
}
