//! The tool table: each tool's name, description, argument schema and hints, and the
//! dispatch of a call to what does it.

use std::sync::{Arc, OnceLock};

use rmcp::handler::server::common::schema_for_input;
use rmcp::model::{CallToolRequestParams, CallToolResult, Tool, ToolAnnotations};
use rmcp::{ErrorData, schemars::JsonSchema};

use crate::args::{self, parse};
use crate::{IsloMcp, ToolResult};

/// How a tool behaves, for clients that show or gate tools by it.
#[derive(Clone, Copy)]
enum Kind {
    /// Reads only.
    Reads,
    /// Changes things, nothing lost.
    Writes,
    /// Destroys something.
    Destroys,
}

fn tool<A: JsonSchema + 'static>(
    name: &'static str,
    description: &'static str,
    kind: Kind,
) -> Tool {
    let schema = schema_for_input::<A>().unwrap_or_else(|_| Arc::new(Default::default()));
    let hints = match kind {
        Kind::Reads => ToolAnnotations::new().read_only(true),
        Kind::Writes => ToolAnnotations::new().read_only(false).destructive(false),
        Kind::Destroys => ToolAnnotations::new().read_only(false).destructive(true),
    };
    Tool::new(name, description, schema).with_annotations(hints)
}

/// Every tool, in the order `tools/list` shows them.
pub fn all() -> &'static [Tool] {
    static TOOLS: OnceLock<Vec<Tool>> = OnceLock::new();
    TOOLS.get_or_init(|| {
        vec![
            tool::<args::CreateSandbox>(
                "create_sandbox",
                "Create an isolated sandbox (a Linux container with its own filesystem and network, \
                 whose internet access goes through islo's gateway), or reuse the one of that name. \
                 Returns it once running. Pass `snapshot` to start from a saved snapshot.",
                Kind::Writes,
            ),
            tool::<args::ListSandboxes>(
                "list_sandboxes",
                "List the sandboxes this server may use, with their status and image.",
                Kind::Reads,
            ),
            tool::<args::Exec>(
                "exec",
                "Run a command in a sandbox and wait for it: returns exit_code, stdout and stderr \
                 (the end kept when longer than max_output_bytes, marked truncated), and \
                 timed_out when it ran past timeout_secs and was killed.",
                Kind::Writes,
            ),
            tool::<args::WriteFile>(
                "write_file",
                "Write a file in a sandbox (replaced whole; missing directories are made).",
                Kind::Writes,
            ),
            tool::<args::ReadFile>(
                "read_file",
                "Read a file from a sandbox: text, or base64 for binary content.",
                Kind::Reads,
            ),
            tool::<args::ListDirectory>(
                "list_directory",
                "List a directory of a sandbox: name, type, size, mode and modification time.",
                Kind::Reads,
            ),
            tool::<args::StartProcess>(
                "start_process",
                "Start a long-running command in the background, in a named session that keeps \
                 running between calls (a server, a watcher, a build). Read what it prints with \
                 read_process_output.",
                Kind::Writes,
            ),
            tool::<args::ReadProcessOutput>(
                "read_process_output",
                "What a background process printed so far (its terminal, the end kept) and \
                 whether it still runs or how it exited; wait_secs waits for it to end.",
                Kind::Reads,
            ),
            tool::<args::StopProcess>(
                "stop_process",
                "End a background process (its whole process group).",
                Kind::Destroys,
            ),
            tool::<args::SandboxRef>(
                "stop_sandbox",
                "Stop a sandbox: its processes end, its files stay; create_sandbox with the same \
                 name starts it again.",
                Kind::Writes,
            ),
            tool::<args::SandboxRef>(
                "pause_sandbox",
                "Pause a sandbox: its processes and their memory are saved to its disk and its \
                 memory and CPU freed; create_sandbox with the same name brings them back where \
                 they were.",
                Kind::Writes,
            ),
            tool::<args::SandboxRef>(
                "delete_sandbox",
                "Delete a sandbox and its files for good.",
                Kind::Destroys,
            ),
            tool::<args::SaveSnapshot>(
                "save_snapshot",
                "Save a sandbox's filesystem as a named snapshot; create_sandbox with `snapshot` \
                 starts new sandboxes from it.",
                Kind::Writes,
            ),
            tool::<args::AuditLog>(
                "read_audit_log",
                "The audit log of a sandbox: the commands run in it (who, what, when, exit \
                 code), or with exec_id what one of them printed.",
                Kind::Reads,
            ),
            tool::<args::GatewayDecisions>(
                "read_gateway_decisions",
                "The egress gateway's recent decisions for a sandbox: each outbound request's \
                 host, method, path, whether it was allowed or denied and by which rule.",
                Kind::Reads,
            ),
        ]
    })
}

impl IsloMcp {
    /// Run the tool a call names. Bad arguments are protocol errors (`invalid_params`);
    /// anything the tool meets while working is a tool error the caller reads.
    pub(crate) async fn dispatch(
        &self,
        call: CallToolRequestParams,
    ) -> Result<CallToolResult, ErrorData> {
        let a = call.arguments;
        let done: ToolResult = match call.name.as_ref() {
            "create_sandbox" => self.create_sandbox(parse(a)?).await,
            "list_sandboxes" => self.list_sandboxes(parse(a)?).await,
            "exec" => self.exec(parse(a)?).await,
            "write_file" => self.write_file(parse(a)?).await,
            "read_file" => self.read_file(parse(a)?).await,
            "list_directory" => self.list_directory(parse(a)?).await,
            "start_process" => self.start_process(parse(a)?).await,
            "read_process_output" => self.read_process_output(parse(a)?).await,
            "stop_process" => self.stop_process(parse(a)?).await,
            "stop_sandbox" => self.stop_sandbox(parse(a)?).await,
            "pause_sandbox" => self.pause_sandbox(parse(a)?).await,
            "delete_sandbox" => self.delete_sandbox(parse(a)?).await,
            "save_snapshot" => self.save_snapshot(parse(a)?).await,
            "read_audit_log" => self.read_audit_log(parse(a)?).await,
            "read_gateway_decisions" => self.read_gateway_decisions(parse(a)?).await,
            other => {
                return Err(ErrorData::invalid_params(
                    format!("no tool named {other:?}; tools/list shows the tools"),
                    None,
                ));
            }
        };
        Ok(match done {
            Ok(v) => CallToolResult::structured(v),
            Err(e) => e.into_result(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_has_an_object_schema_and_a_description() {
        let tools = all();
        assert_eq!(tools.len(), 15);
        for t in tools {
            assert_eq!(
                t.input_schema.get("type").and_then(|v| v.as_str()),
                Some("object"),
                "{}",
                t.name
            );
            assert!(
                t.description.as_ref().is_some_and(|d| d.len() > 20),
                "{}",
                t.name
            );
        }
        let exec = tools.iter().find(|t| t.name == "exec").unwrap();
        let props = exec.input_schema.get("properties").unwrap();
        assert!(props.get("timeout_secs").is_some() && props.get("command").is_some());
        let required = exec.input_schema.get("required").unwrap().to_string();
        assert!(
            required.contains("sandbox") && required.contains("command"),
            "{required}"
        );
    }
}
