//! Sandboxes, auth tokens and server information.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Accepted ranges and defaults of a create.
pub mod limits {
    pub const VCPUS: (u32, u32, u32) = (1, 8, 2);
    pub const MEMORY_MB: (u32, u32, u32) = (256, 8192, 2048);
    pub const DISK_GB: (u32, u32, u32) = (1, 100, 10);
    pub const NAME_LEN: (usize, usize) = (2, 63);
    pub const WORKDIR_LEN: usize = 255;
    pub const DEFAULT_WORKDIR: &str = "/workspace";
    pub const DEFAULT_IMAGE: &str = "python:3.12-slim";
    pub const LIST_LIMIT: (u32, u32, u32) = (1, 200, 50);
}

crate::closed::closed_set! {
    /// Lifecycle states, exactly the server vocabulary of the reference.
    SandboxStatus {
        Starting = "starting",
        Running = "running",
        Stopping = "stopping",
        Stopped = "stopped",
        /// Its processes checkpointed to its disk (`POST …/pause`), its memory and CPU freed.
        Paused = "paused",
        Failed = "failed",
        Deleted = "deleted",
    }
}

/// Resources of a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxSpec {
    pub vcpus: u32,
    pub memory_mb: u32,
    pub disk_gb: u32,
}

/// `POST /sandboxes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateSandboxRequest {
    /// Tenant-unique name; generated when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpus: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gb: Option<u32>,
    /// Environment of every later exec.
    #[serde(
        default,
        deserialize_with = "crate::env_map",
        skip_serializing_if = "Option::is_none"
    )]
    pub env: Option<BTreeMap<String, String>>,
    /// Default working directory; relative paths are under `/workspace`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Run once after creation, in order, as the sandbox user in `/workspace` with bash; the
    /// first failure skips the rest. Not run for sandboxes made from a snapshot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_scripts: Option<Vec<SetupScript>>,
    /// Git repositories cloned into `/workspace/<repo>` at creation, before setup (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sources: Option<Vec<SourceSpec>>,
    /// When a source cannot be cloned, keep the sandbox (stopped, `failed`, with the reason)
    /// instead of removing it (extension).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_failed: Option<bool>,
    /// Gateway profile (name or id) the sandbox is bound to; default: the tenant's default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_profile: Option<String>,
    /// A named environment's variables and secrets (default: the tenant's default one, if
    /// any).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// `false` cuts this sandbox off the internet whatever its gateway profile allows (`true`
    /// cannot grant what the profile denies).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internet_enabled: Option<bool>,
    /// What to start inside besides islo's own agent: `{"type": "minimal" | "full"}`, or
    /// `{"type": "custom", "capabilities": ["ssh"]}`. SSH is served by islod for every
    /// sandbox, so all of these are met; `docker` is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<serde_json::Value>,
    /// Legacy form of `init`: capabilities (`ssh`, `core-gateway-proxy`, `terminal`, `devtools`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_capabilities: Option<Vec<String>>,
    /// The tool cache key the CLI computes; recorded and shown (islod keeps no shared cache).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    /// When it pauses or is deleted on its own, and whether activity wakes it when paused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecyclePolicy>,
    /// Start from this snapshot's filesystem (and its image, env and workdir unless given).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_name: Option<String>,
    /// Extension: its isolation class, one of `GET /system/info`'s `isolation_classes`
    /// (`container`: namespaces, a user namespace, seccomp under crun or runc; `gvisor`:
    /// gVisor's user-space kernel under runsc). Default: the server's (`default_isolation` in
    /// islod.yaml, else `container`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<String>,
    /// Extension: in a cluster, the node to create it on (operators; default: the least
    /// loaded node that takes new sandboxes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// Idempotency key: a replay with the same body answers the same sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// A repository to clone: `github://owner/repo[:branch]` or an HTTPS URL (`[:branch]`).
/// The SDKs' `GitSource` spells the URL `repo_url`; both are read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SourceSpec {
    #[serde(alias = "repo_url")]
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// Where to clone it, relative to `/workspace` (or absolute under it); default
    /// `/workspace/<repository name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_path: Option<String>,
}

/// A sandbox as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxResponse {
    pub id: String,
    pub name: String,
    pub status: SandboxStatus,
    pub image: String,
    /// RFC 3339.
    pub created_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted_at: Option<String>,
    /// Where its creation is: `image_pull`, `disk`, `network`, `sources`, `setup`, `ready`,
    /// `failed` (live progress: `GET /sandboxes/{sandbox_name}/events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creation_phase: Option<String>,
    /// The tool cache key it was created with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<SandboxSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    /// Extension: when the sandbox last started (RFC 3339), for uptime.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// Extension: why the sandbox is in its status, when the server knows more.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    /// The setup scripts' results, in order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup_steps: Option<Vec<SetupStepResult>>,
    /// Extension: the id of the gateway profile it is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway_profile_id: Option<String>,
    /// Extension: how it is isolated from its host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub isolation: Option<Isolation>,
    /// The lifecycle policy it was created with (fixed after creation).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifecycle: Option<LifecyclePolicy>,
    /// Extension: the cluster node it lives on (absent on a single host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

/// A sandbox's lifecycle policy: all periods in seconds, omitted or null = never.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LifecyclePolicy {
    /// Pause after this long without activity: no exec, no terminal, SSH or port-forward
    /// traffic and no gateway request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after_idle: Option<u64>,
    /// Pause after this long running since it was created or last resumed, active or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pause_after: Option<u64>,
    /// Delete this long after creation, whatever it is doing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete_after: Option<u64>,
    /// Whether activity (exec, attach, SSH, port-forward, the files API) resumes it while
    /// paused (`on_activity`) or is refused with 409 (`never`, the default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auto_resume: Option<AutoResume>,
}

crate::closed::closed_set! {
    /// What wakes a paused sandbox.
    AutoResume {
        Never = "never",
        OnActivity = "on_activity",
    }
}

impl LifecyclePolicy {
    /// Whether activity resumes a paused sandbox under this policy.
    pub fn resumes_on_activity(p: Option<&Self>) -> bool {
        p.and_then(|p| p.auto_resume) == Some(AutoResume::OnActivity)
    }
}

/// Extension: how a sandbox is isolated from its host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Isolation {
    /// Its isolation class: `container` or `gvisor`.
    #[serde(default = "default_class")]
    pub class: String,
    /// It runs in a user namespace of its own: its root is an unprivileged host id.
    pub user_namespace: bool,
    /// The host ids its ids map to (`first`, `first + count`), with a user namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ids: Option<HostIds>,
    /// What is reduced and what to do about it, when isolation is reduced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

fn default_class() -> String {
    "container".into()
}

/// A range of host ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HostIds {
    pub first: u32,
    pub count: u32,
}

/// One setup step of a create request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupScript {
    /// Shown in output and logs (default `step-N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// A bash script.
    pub script: String,
}

crate::closed::closed_set! {
    /// Where a setup step is.
    #[derive(Default)]
    SetupStepStatus {
        #[default]
        Pending = "pending",
        Running = "running",
        Succeeded = "succeeded",
        Failed = "failed",
        Skipped = "skipped",
    }
}

/// How a setup step went.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SetupStepResult {
    pub name: String,
    /// `pending`, `running`, `succeeded`, `failed` or `skipped`.
    pub status: SetupStepStatus,
    /// The tail of its output (64 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr: Option<String>,
    /// Extension: its exit code once it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// Extension: its recording in the audit log (follow it with `…/exec-sessions/{id}/logs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec_id: Option<String>,
}

/// `GET /sandboxes` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PaginatedSandboxResponse {
    pub items: Vec<SandboxResponse>,
    pub total: u64,
    pub limit: u32,
    pub offset: u32,
    /// Pass as `cursor` for the next page; absent on the last one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

/// `GET /sandboxes` query (status repeatable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct ListSandboxesQuery {
    pub limit: Option<u32>,
    pub offset: Option<u32>,
    pub name_prefix: Option<String>,
    #[serde(default)]
    pub status: Vec<SandboxStatus>,
    /// Words found in a sandbox's name, image or id (case-insensitive); wins over `search`.
    pub q: Option<String>,
    pub search: Option<String>,
    /// `me` (or the caller's tenant): every sandbox a caller sees is its tenant's.
    pub created_by: Option<String>,
    /// A page's `next_cursor` (instead of `offset`).
    pub cursor: Option<String>,
}

/// `POST /auth/token`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    pub access_key: String,
}

/// `POST /auth/token` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub session_token: String,
    /// Seconds the token lives.
    pub cookie_max_age: u64,
}

/// Extension `POST /images/pull`: fetch an image ahead of a create, streaming progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImagePullRequest {
    pub image: String,
}

/// One event of an image pull (SSE `data` of event `progress`, `done` or `error`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ImagePullEvent {
    /// Bytes of one layer fetched so far.
    Progress {
        layer: String,
        current: u64,
        total: u64,
    },
    /// The image is in the cache (`cached`: nothing was fetched).
    Done {
        digest: String,
        cached: bool,
    },
    Error {
        message: String,
    },
}

crate::closed::closed_set! {
    /// A step of a sandbox's creation.
    CreationPhase {
        ImagePull = "image_pull",
        Disk = "disk",
        Network = "network",
        Sources = "sources",
        Setup = "setup",
        Ready = "ready",
        Failed = "failed",
    }
}

/// One event of `GET /sandboxes/{sandbox_name}/events` (SSE `event: phase`, this as data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreationEvent {
    pub phase: CreationPhase,
    /// The layer being fetched, the repository being cloned, the setup step, or why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Image pulls: bytes of the layer so far, and its size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    /// RFC 3339.
    pub at: String,
}

/// One check of `GET /system/doctor` (an islo extension).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DoctorCheck {
    /// `runtime`, `user_namespaces`, `cgroups`, `nftables`, `gateway`, `registry_mirror`,
    /// `disk`, …
    pub name: String,
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// What to do about it, when not ok.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// `GET /system/doctor`: what islod's host has and lacks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DoctorReport {
    pub checks: Vec<DoctorCheck>,
}

/// Extension `GET /system`: what `islo status` shows of the server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ServerInfo {
    pub version: String,
    pub runtime: String,
    pub tenant: String,
    pub state_dir: String,
    pub images_cached: u64,
    pub sandboxes_running: u64,
    /// Extension: the isolation classes this host offers, the default first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolation_classes: Vec<String>,
    /// Extension: the cluster node that answered (absent on a single host).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn golden_sandbox_response() {
        let s = SandboxResponse {
            id: "0190-x".into(),
            name: "demo".into(),
            status: SandboxStatus::Running,
            image: "python:3.12-slim".into(),
            created_at: "2026-11-28T10:00:00Z".into(),
            created_by: None,
            deleted_at: None,
            creation_phase: None,
            cache_key: None,
            spec: Some(SandboxSpec {
                vcpus: 2,
                memory_mb: 2048,
                disk_gb: 10,
            }),
            workdir: Some("/workspace".into()),
            started_at: None,
            status_reason: None,
            setup_steps: None,
            gateway_profile_id: None,
            isolation: None,
            lifecycle: None,
            node: None,
        };
        assert_eq!(
            serde_json::to_string(&s).unwrap(),
            r#"{"id":"0190-x","name":"demo","status":"running","image":"python:3.12-slim","created_at":"2026-11-28T10:00:00Z","spec":{"vcpus":2,"memory_mb":2048,"disk_gb":10},"workdir":"/workspace"}"#
        );
        for st in [
            "starting", "running", "stopping", "stopped", "paused", "failed", "deleted",
        ] {
            assert_eq!(SandboxStatus::parse(st).unwrap().as_str(), st);
        }
    }
}
