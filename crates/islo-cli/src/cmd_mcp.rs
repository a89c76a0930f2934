//! `islo mcp`: an MCP server offering sandboxes as tools (crate `islo-mcp`), over standard
//! input/output or, with `--http`, the streamable HTTP transport.

use std::net::SocketAddr;

use clap::Args;

use crate::connect;

#[derive(Args)]
pub struct McpArgs {
    /// Serve the streamable HTTP transport at http://ADDR/mcp instead of stdio (e.g.
    /// 127.0.0.1:8765; port 0 picks one). Off loopback, ISLO_MCP_TOKEN must be set and
    /// clients send it as a bearer token.
    #[arg(long, value_name = "ADDR")]
    pub http: Option<SocketAddr>,
    /// Only sandboxes (and snapshots) whose names start with PREFIX can be used, listed or
    /// made; generated names get it too.
    #[arg(long, value_name = "PREFIX")]
    pub prefix: Option<String>,
    /// At most N sandboxes (with the prefix) at once; creates beyond it are refused.
    #[arg(long, value_name = "N")]
    pub max_sandboxes: Option<u32>,
}

pub async fn run(a: McpArgs) -> anyhow::Result<i32> {
    if a.prefix.as_deref() == Some("") {
        return Err(crate::usage("--prefix must not be empty"));
    }
    let client = connect::client().await?;
    let policy = islo_mcp::Policy {
        prefix: a.prefix,
        max_sandboxes: a.max_sandboxes,
    };
    let server = islo_mcp::IsloMcp::new(client, policy);
    match a.http {
        None => islo_mcp::serve_stdio(server).await?,
        Some(addr) => {
            let token = std::env::var("ISLO_MCP_TOKEN")
                .ok()
                .filter(|t| !t.is_empty());
            let opts = islo_mcp::HttpOptions { addr, token };
            islo_mcp::serve_http(server, opts, |at| {
                // Standard error: standard output stays free for whoever reads it.
                eprintln!("islo mcp: serving MCP at http://{at}/mcp");
            })
            .await?;
        }
    }
    Ok(0)
}
