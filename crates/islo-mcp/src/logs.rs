//! What was done in a sandbox: its audit log (every command, who ran it, what it printed)
//! and the gateway's decisions on its outbound requests.

use islo_api::{ExecLogsQuery, GatewayEventsQuery};
use serde_json::json;

use crate::args::{AuditLog, GatewayDecisions};
use crate::output::tail;
use crate::{IsloMcp, ToolError, ToolResult};

const DEFAULT_COMMANDS: usize = 20;
/// The most recorded output one call returns, the end kept.
const LOG_BYTES: usize = 64 * 1024;
/// Entries of one command's log read (its end).
const LOG_ENTRIES: u32 = 2000;

fn to_value<T: serde::Serialize>(v: T) -> ToolResult {
    serde_json::to_value(v).map_err(|e| ToolError::Failed(e.to_string()))
}

impl IsloMcp {
    pub(crate) async fn read_audit_log(&self, a: AuditLog) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        let Some(id) = a.exec_id else {
            let mut list = self.client.exec_sessions(&a.sandbox, None).await?;
            list.truncate(a.limit.unwrap_or(DEFAULT_COMMANDS));
            return Ok(json!({ "commands": to_value(list)? }));
        };
        let session = self.client.exec_session(&a.sandbox, &id).await?;
        let q = ExecLogsQuery {
            tail: Some(LOG_ENTRIES),
            ..Default::default()
        };
        let logs = self.client.exec_logs(&a.sandbox, &id, &q).await?;
        // Output and input as one text in order; the recorder's own notes stay visible.
        let mut text = String::new();
        for l in logs.logs.iter().filter(|l| l.stream != "resize") {
            match l.stream.as_str() {
                "stdout" => text.push_str(&l.data),
                other => {
                    text.push_str(&format!("[{other}] {}", l.data));
                    if !l.data.ends_with('\n') {
                        text.push('\n');
                    }
                }
            }
        }
        let (output, truncated) = tail(text.as_bytes(), LOG_BYTES);
        Ok(json!({
            "command": to_value(session)?,
            "output": output,
            "truncated": truncated,
        }))
    }

    pub(crate) async fn read_gateway_decisions(&self, a: GatewayDecisions) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        let q = GatewayEventsQuery {
            limit: Some(a.limit.unwrap_or(50).clamp(1, 1000)),
            ..Default::default()
        };
        let events = self.client.gateway_events(&a.sandbox, &q).await?;
        Ok(json!({ "decisions": to_value(events)? }))
    }
}
