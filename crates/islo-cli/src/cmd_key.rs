//! `islo api-key create|ls|deactivate|activate|rm` (alias `islo key`) and `islo api PATH`.

use std::io::Read;

use clap::{Args, Subcommand};
use islo_api::CreateApiKeyRequest;
use islo_client::Client;

use crate::cli::Output;
use crate::{ui, usage};

#[derive(Args)]
pub struct KeyArgs {
    #[command(subcommand)]
    cmd: KeyCmd,
}

#[derive(Subcommand)]
enum KeyCmd {
    /// Make a key (its secret is shown once).
    Create {
        /// A label for it.
        name: String,
        /// Days until it stops working (default: never).
        #[arg(long, value_name = "DAYS")]
        expires: Option<i64>,
        /// Write the secret to this file (mode 0600) instead of standard output.
        #[arg(long, value_name = "PATH")]
        output_file: Option<std::path::PathBuf>,
        /// Print the secret (what happens anyway without --output-file; there is no clipboard
        /// on a server).
        #[arg(long, conflicts_with = "output_file")]
        show: bool,
        /// The tenant it acts for (the installation's administrator only; default: yours).
        #[arg(long)]
        tenant: Option<String>,
    },
    /// List your tenant's keys.
    #[command(visible_alias = "list")]
    Ls,
    /// Switch a key off: it and the sessions it opened stop working at once.
    Deactivate { id: String },
    /// Switch a key on again.
    Activate { id: String },
    /// Delete a key.
    #[command(visible_alias = "delete")]
    Rm { id: String },
}

fn write_secret(path: &std::path::Path, secret: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| usage(format!("--output-file {}: {e}", path.display())))?;
    writeln!(f, "{secret}")?;
    Ok(())
}

/// `islo api-key ls`.
async fn ls(client: &Client, output: Output) -> anyhow::Result<()> {
    let all = client.api_keys().await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .into_iter()
        .map(|k| {
            let exp = k.expires_at.as_deref().map_or("never".into(), ui::datetime);
            vec![
                k.id,
                k.name,
                k.status.to_string(),
                exp,
                ui::ago(&k.created_at),
            ]
        })
        .collect();
    out!(
        "{}",
        ui::table(&["ID", "NAME", "STATUS", "EXPIRES", "CREATED"], rows)
    );
    Ok(())
}

pub async fn run(client: &Client, a: KeyArgs, output: Output) -> anyhow::Result<()> {
    match a.cmd {
        KeyCmd::Create {
            name,
            expires,
            output_file,
            show: _,
            tenant,
        } => {
            let req = CreateApiKeyRequest {
                name,
                expires_in_days: expires,
                tenant,
            };
            let k = client.create_api_key(&req).await?;
            if output == Output::Json {
                outln!("{}", serde_json::to_string_pretty(&k)?);
                return Ok(());
            }
            match output_file {
                Some(p) => {
                    write_secret(&p, &k.api_key)?;
                    eprintln!(
                        "API key {} ({}) written to {}",
                        k.key.id,
                        k.key.name,
                        p.display()
                    );
                }
                None => {
                    eprintln!(
                        "API key {} ({}); the secret is shown once:",
                        k.key.id, k.key.name
                    );
                    outln!("{}", k.api_key);
                }
            }
            Ok(())
        }
        KeyCmd::Ls => ls(client, output).await,
        KeyCmd::Deactivate { id } => {
            client.set_api_key_active(&id, false).await?;
            eprintln!("API key {id} deactivated");
            Ok(())
        }
        KeyCmd::Activate { id } => {
            client.set_api_key_active(&id, true).await?;
            eprintln!("API key {id} activated");
            Ok(())
        }
        KeyCmd::Rm { id } => {
            client.delete_api_key(&id).await?;
            eprintln!("API key {id} deleted");
            Ok(())
        }
    }
}

#[derive(Args)]
pub struct ApiArgs {
    /// Path and query, e.g. `/sandboxes?status=running`.
    pub path: String,
    /// HTTP method (default GET, or POST with -d).
    #[arg(short = 'X', long)]
    pub method: Option<String>,
    /// JSON body; `@FILE` reads a file, `-` standard input.
    #[arg(short = 'd', long)]
    pub data: Option<String>,
}

/// `islo api`: prints the body (pretty when JSON); exits 0 on 2xx, 1 on 401, 3 on 404,
/// else 125.
pub async fn api(client: &Client, a: &ApiArgs) -> anyhow::Result<i32> {
    let body = match a.data.as_deref() {
        None => None,
        Some("-") => {
            let mut b = Vec::new();
            std::io::stdin().read_to_end(&mut b)?;
            Some(b)
        }
        Some(d) if d.starts_with('@') => {
            Some(std::fs::read(&d[1..]).map_err(|e| usage(format!("-d {d}: {e}")))?)
        }
        Some(d) => Some(d.as_bytes().to_vec()),
    };
    if let Some(b) = &body {
        serde_json::from_slice::<serde_json::Value>(b)
            .map_err(|e| usage(format!("-d is not JSON: {e}")))?;
    }
    let method = a
        .method
        .clone()
        .unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    let (status, out) = client.raw(&method, &a.path, body).await?;
    match serde_json::from_slice::<serde_json::Value>(&out) {
        Ok(v) => outln!("{}", serde_json::to_string_pretty(&v)?),
        Err(_) if !out.is_empty() => out!("{}", String::from_utf8_lossy(&out)),
        Err(_) => {}
    }
    if (200..300).contains(&status) {
        return Ok(0);
    }
    eprintln!("islo: HTTP {status}");
    Ok(match status {
        401 => crate::EXIT_AUTH,
        404 => crate::EXIT_NOT_FOUND,
        _ => crate::EXIT_FAILURE,
    })
}
