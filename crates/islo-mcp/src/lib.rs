//! `islo mcp`: islo sandboxes as tools for any client of the Model Context Protocol, over
//! stdio or the streamable HTTP transport (the `rmcp` SDK speaks the protocol).
//!
//! The server is a client of islod like the CLI, through [`islo_client::Client`]: the
//! gateway's policy and credentials apply to what an agent runs, every command lands in the
//! audit log, and a [`Policy`] keeps the agent to sandboxes with a name prefix.
//!
//! - `tools`: the tool table (names, descriptions, schemas) and the dispatch;
//! - `sandboxes`, `exec`, `process`, `files`, `logs`: what each tool does;
//! - `resources`: a sandbox's files as `islo://` resources;
//! - `transport`: stdio and HTTP.

mod args;
mod exec;
mod files;
mod handler;
mod logs;
mod output;
mod policy;
mod process;
mod resources;
mod sandboxes;
mod tools;
mod transport;

use std::sync::Arc;

use islo_client::{Client, ClientError};
use rmcp::model::{CallToolResult, ContentBlock};

pub use policy::{Policy, Refusal};
pub use transport::{HttpOptions, ServeError, serve_http, serve_stdio};

/// The MCP server: one per connection (stdio) or per HTTP session; cheap to clone.
#[derive(Clone)]
pub struct IsloMcp {
    client: Client,
    policy: Arc<Policy>,
}

impl IsloMcp {
    pub fn new(client: Client, policy: Policy) -> Self {
        Self {
            client,
            policy: Arc::new(policy),
        }
    }
}

/// Why a tool did not do its work: told to the caller as a tool error (`isError`), so a
/// model reads it and can act on it.
#[derive(Debug, thiserror::Error)]
pub enum ToolError {
    #[error("{0}")]
    Refused(#[from] Refusal),
    #[error("{0}")]
    Islo(#[from] ClientError),
    #[error("{0}")]
    Failed(String),
}

impl ToolError {
    fn into_result(self) -> CallToolResult {
        CallToolResult::error(vec![ContentBlock::text(self.to_string())])
    }
}

/// What a tool answers: a JSON value (sent as structured content and as its text).
pub(crate) type ToolResult = Result<serde_json::Value, ToolError>;
