//! The arguments of each tool: their JSON schemas (with descriptions) are what `tools/list`
//! shows, and a call's arguments are read against them with the path of any wrong one named
//! in the error. Unknown arguments are refused, so a misspelt one is not silently ignored.

use std::collections::BTreeMap;

use rmcp::ErrorData;
use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Read `args` as `T`; a missing, unknown or wrong-typed argument is an `invalid_params`
/// error naming it.
pub fn parse<T: DeserializeOwned>(args: Option<JsonObject>) -> Result<T, ErrorData> {
    let value = serde_json::Value::Object(args.unwrap_or_default());
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner().to_string();
        let message = if path == "." || path.is_empty() {
            format!("invalid arguments: {inner}")
        } else {
            format!("invalid argument `{path}`: {inner}")
        };
        ErrorData::invalid_params(message, None)
    })
}

/// A command: a string run by `/bin/sh -c`, or an argv list run as is.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Command {
    Shell(String),
    Argv(Vec<String>),
}

impl Command {
    pub fn argv(self) -> Vec<String> {
        match self {
            Self::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s],
            Self::Argv(v) => v,
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandbox {
    /// Sandbox name (2-63 characters: letters, digits, `-`, `_`, `.`). If a sandbox of this
    /// name exists it is reused (and started if stopped). Generated when omitted.
    pub name: Option<String>,
    /// OCI image reference, e.g. `python:3.12-slim` (default: the server's default image).
    pub image: Option<String>,
    /// Virtual CPUs (1-8, default 2).
    pub vcpus: Option<u32>,
    /// Memory limit in MiB (256-8192, default 2048).
    pub memory_mb: Option<u32>,
    /// Disk size in GiB (1-100, default 10).
    pub disk_gb: Option<u32>,
    /// Gateway profile (name or id) that polices the sandbox's network egress and injects
    /// credentials (default: the tenant's default profile).
    pub gateway_profile: Option<String>,
    /// A named environment whose variables and secrets every command gets.
    pub environment: Option<String>,
    /// Environment variables for every command.
    pub env: Option<BTreeMap<String, String>>,
    /// Default working directory (relative paths are under `/workspace`).
    pub workdir: Option<String>,
    /// Git repositories cloned into `/workspace/<repo>`: `github://owner/repo[:branch]` or an
    /// HTTPS URL.
    pub sources: Option<Vec<String>>,
    /// Start from this snapshot's filesystem instead of an image (a new sandbox only).
    pub snapshot: Option<String>,
    /// Isolation class of a new sandbox: `container` (namespaces and seccomp; the default) or
    /// `gvisor` (gVisor's user-space kernel answers its system calls: for the least trusted
    /// code; slower system calls, no pause).
    pub isolation: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxRef {
    /// The sandbox's name.
    pub sandbox: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListSandboxes {
    /// Only sandboxes in these states (`running`, `stopped`, `failed`, …).
    pub status: Option<Vec<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Exec {
    /// The sandbox's name.
    pub sandbox: String,
    /// A shell command line (run by `/bin/sh -c`) or an argv list (run without a shell).
    pub command: Command,
    /// Working directory (default: the sandbox's).
    pub cwd: Option<String>,
    /// Extra environment variables.
    pub env: Option<BTreeMap<String, String>>,
    /// Seconds before the command is killed (default 60, at most 3600). What it printed
    /// until then is returned, with `timed_out: true`.
    pub timeout_secs: Option<u64>,
    /// User to run as (default: the sandbox user; `root` for root).
    pub user: Option<String>,
    /// At most this many bytes of each of stdout and stderr are returned, the end kept
    /// (default 65536).
    pub max_output_bytes: Option<usize>,
}

/// How file content is written or read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// Text (UTF-8); on read, binary content comes back as base64 anyway.
    #[default]
    Utf8,
    /// Base64 of the bytes.
    Base64,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WriteFile {
    /// The sandbox's name.
    pub sandbox: String,
    /// Absolute path of the file (missing directories are made). An existing file is replaced.
    pub path: String,
    /// The content.
    pub content: String,
    /// `utf8` (default) or `base64`.
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadFile {
    /// The sandbox's name.
    pub sandbox: String,
    /// Absolute path of the file.
    pub path: String,
    /// At most this many bytes are returned, from the start (default 262144).
    pub max_bytes: Option<usize>,
    /// `utf8` (default: text, or base64 when the content is not UTF-8) or `base64`.
    pub encoding: Option<Encoding>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListDirectory {
    /// The sandbox's name.
    pub sandbox: String,
    /// Absolute path of the directory.
    pub path: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StartProcess {
    /// The sandbox's name.
    pub sandbox: String,
    /// A shell command line (run by `/bin/sh -c`) or an argv list.
    pub command: Command,
    /// Name of the session that holds it (letters, digits, `-`, `_`; generated when
    /// omitted). Read its output with `read_process_output`.
    pub name: Option<String>,
    /// Working directory.
    pub cwd: Option<String>,
    /// Extra environment variables.
    pub env: Option<BTreeMap<String, String>>,
    /// User to run as (default: the sandbox user).
    pub user: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadProcessOutput {
    /// The sandbox's name.
    pub sandbox: String,
    /// The session's name, as `start_process` returned it.
    pub name: String,
    /// Wait up to this many seconds for the process to end, returning as soon as it does
    /// (default 0, at most 120).
    pub wait_secs: Option<u64>,
    /// At most this many bytes of output are returned, the end kept (default 32768).
    pub max_bytes: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StopProcess {
    /// The sandbox's name.
    pub sandbox: String,
    /// The session's name.
    pub name: String,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SaveSnapshot {
    /// The sandbox whose filesystem is saved.
    pub sandbox: String,
    /// Snapshot name (default: `<sandbox>-<date>-<time>`).
    pub name: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AuditLog {
    /// The sandbox's name.
    pub sandbox: String,
    /// One command's recorded output (an `exec_id` from the list); without it, the list of
    /// recorded commands, newest first.
    pub exec_id: Option<String>,
    /// At most this many commands listed (default 20).
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GatewayDecisions {
    /// The sandbox's name.
    pub sandbox: String,
    /// The last N decisions (default 50, at most 1000).
    pub limit: Option<u32>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn obj(v: serde_json::Value) -> Option<JsonObject> {
        v.as_object().cloned()
    }

    #[test]
    fn a_missing_argument_is_named() {
        let e = parse::<SandboxRef>(obj(json!({}))).unwrap_err();
        assert!(e.message.contains("sandbox"), "{}", e.message);
    }

    #[test]
    fn a_wrong_typed_argument_is_named() {
        let e = parse::<Exec>(obj(
            json!({"sandbox": "a", "command": "true", "timeout_secs": "soon"}),
        ))
        .unwrap_err();
        assert!(e.message.contains("`timeout_secs`"), "{}", e.message);
    }

    #[test]
    fn an_unknown_argument_is_refused_by_name() {
        let e = parse::<SandboxRef>(obj(json!({"sandbox": "a", "sandbx": "b"}))).unwrap_err();
        assert!(e.message.contains("sandbx"), "{}", e.message);
    }

    #[test]
    fn commands_are_shell_lines_or_argv() {
        let a: Exec = parse(obj(json!({"sandbox": "a", "command": "echo hi"}))).unwrap();
        assert_eq!(a.command.argv(), ["/bin/sh", "-c", "echo hi"]);
        let a: Exec = parse(obj(json!({"sandbox": "a", "command": ["ls", "-l"]}))).unwrap();
        assert_eq!(a.command.argv(), ["ls", "-l"]);
    }
}
