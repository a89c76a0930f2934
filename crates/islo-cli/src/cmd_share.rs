//! `islo share NAME [PORT] [--ttl 1h]`, `islo shares NAME [--requests ID]` and
//! `islo unshare NAME ID|URL`: public URLs for a sandbox's port.

use clap::Args;
use islo_api::CreateShareRequest;
use islo_client::Client;

use crate::cli::Output;
use crate::{ui, usage};

#[derive(Args)]
pub struct ShareArgs {
    /// Sandbox name.
    pub name: String,
    /// Port inside the sandbox.
    #[arg(default_value_t = 8080)]
    pub port: u16,
    /// How long the URL works: `30m`, `1h`, `24h`, `7d` (1 minute to 7 days).
    #[arg(long, default_value = "24h")]
    pub ttl: String,
}

#[derive(Args)]
pub struct SharesArgs {
    /// Sandbox name.
    pub name: String,
    /// Show the requests served through this share (`sh_…`) instead.
    #[arg(long, value_name = "SHARE_ID")]
    pub requests: Option<String>,
    /// With --requests: how many of the newest.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
}

#[derive(Args)]
pub struct UnshareArgs {
    /// Sandbox name.
    pub name: String,
    /// The share's id (`sh_…`) or its URL.
    pub share: String,
}

fn ttl_seconds(ttl: &str) -> anyhow::Result<i64> {
    let d = humantime::parse_duration(ttl)
        .map_err(|e| usage(format!("--ttl {ttl:?}: {e} (e.g. 30m, 1h, 24h, 7d)")))?;
    let s = d.as_secs();
    if !(islo_api::SHARE_TTL_MIN..=islo_api::SHARE_TTL_MAX).contains(&s) {
        return Err(usage(format!(
            "--ttl {ttl}: a share lasts from 1 minute to 7 days"
        )));
    }
    Ok(s as i64)
}

/// `islo share`.
pub async fn share(client: &Client, a: &ShareArgs, output: Output) -> anyhow::Result<()> {
    let req = CreateShareRequest {
        port: i64::from(a.port),
        ttl_seconds: Some(ttl_seconds(&a.ttl)?),
    };
    let s = client.create_share(&a.name, &req).await?;
    match output {
        Output::Json => outln!("{}", serde_json::to_string_pretty(&s)?),
        Output::Plain => outln!("{}", s.url),
        Output::Table => {
            outln!("{}", s.url);
            let until = s
                .expires_at
                .as_deref()
                .map(ui::datetime)
                .unwrap_or_default();
            eprintln!(
                "Port {} of {} is shared as {} until {until}: anyone with the URL can reach it \
                 (`islo unshare {} {}` ends it).",
                s.port, a.name, s.share_id, a.name, s.share_id
            );
        }
    }
    Ok(())
}

/// `islo shares`.
pub async fn shares(client: &Client, a: &SharesArgs, output: Output) -> anyhow::Result<()> {
    if let Some(id) = &a.requests {
        let rows = client.share_requests(&a.name, id, a.limit).await?;
        if output == Output::Json {
            outln!("{}", serde_json::to_string_pretty(&rows)?);
            return Ok(());
        }
        let rows = rows
            .into_iter()
            .map(|r| {
                vec![
                    ui::datetime(&r.at),
                    r.client,
                    r.method,
                    r.path,
                    r.status.to_string(),
                    ui::bytes(r.bytes_in),
                    ui::bytes(r.bytes_out),
                ]
            })
            .collect();
        let head = ["TIME", "CLIENT", "METHOD", "PATH", "STATUS", "IN", "OUT"];
        out!("{}", ui::table(&head, rows));
        return Ok(());
    }
    let all = client.shares(&a.name).await?;
    if output == Output::Json {
        outln!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    let rows = all
        .into_iter()
        .map(|s| {
            let expires = s
                .expires_at
                .as_deref()
                .map(ui::datetime)
                .unwrap_or_default();
            vec![s.share_id, s.port.to_string(), s.url, expires]
        })
        .collect();
    out!(
        "{}",
        ui::table(&["SHARE ID", "PORT", "URL", "EXPIRES"], rows)
    );
    Ok(())
}

/// `islo unshare`.
pub async fn unshare(client: &Client, a: &UnshareArgs) -> anyhow::Result<()> {
    client.revoke_share(&a.name, &a.share).await?;
    eprintln!(
        "Share {} of {} revoked; its open connections are closed.",
        a.share, a.name
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn ttls_read_like_the_docs() {
        assert_eq!(super::ttl_seconds("30m").unwrap(), 1800);
        assert_eq!(super::ttl_seconds("7d").unwrap(), 7 * 86400);
        assert!(super::ttl_seconds("30s").is_err());
        assert!(super::ttl_seconds("8d").is_err());
        assert!(super::ttl_seconds("soon").is_err());
    }
}
