//! Sandbox tools: create or reuse, list, stop, delete, and snapshots.

use std::time::{Duration, Instant};

use islo_api::{
    CreateSandboxRequest, CreateSnapshotRequest, ErrorCode, SandboxResponse, SandboxStatus,
    SourceSpec,
};
use serde_json::json;

use crate::args::{CreateSandbox, ListSandboxes, SandboxRef, SaveSnapshot};
use crate::{IsloMcp, ToolError, ToolResult};

/// How long a create waits for a sandbox someone else is starting or stopping (a first pull
/// of a large image takes minutes).
const SETTLE: Duration = Duration::from_secs(600);

fn view(sb: &SandboxResponse, reused: bool) -> ToolResult {
    let mut v = serde_json::to_value(sb).map_err(|e| ToolError::Failed(e.to_string()))?;
    if let Some(o) = v.as_object_mut() {
        o.insert("reused".into(), reused.into());
    }
    Ok(v)
}

impl IsloMcp {
    pub(crate) async fn create_sandbox(&self, a: CreateSandbox) -> ToolResult {
        let name = a.name.clone().unwrap_or_else(|| self.policy.new_name());
        self.policy.allow("sandbox", &name)?;
        if let Some(s) = &a.snapshot {
            self.policy.allow("snapshot", s)?;
        }
        match self.client.get_sandbox(&name).await {
            Ok(_) if a.snapshot.is_some() => {
                return Err(ToolError::Failed(format!(
                    "sandbox {name} already exists; `snapshot` only starts new sandboxes (pick another name)"
                )));
            }
            Ok(sb) => return view(&self.ensure_running(sb).await?, true),
            Err(e) if e.code() == Some(ErrorCode::SandboxNotFound) => {}
            Err(e) => return Err(e.into()),
        }
        if self.policy.max_sandboxes.is_some() {
            self.policy.room_for_one(self.count().await?)?;
        }
        let req = CreateSandboxRequest {
            name: Some(name.clone()),
            image: a.image,
            vcpus: a.vcpus,
            memory_mb: a.memory_mb,
            disk_gb: a.disk_gb,
            env: a.env,
            workdir: a.workdir,
            sources: a.sources.map(|s| {
                s.into_iter()
                    .map(|url| SourceSpec {
                        url,
                        ..Default::default()
                    })
                    .collect()
            }),
            gateway_profile: a.gateway_profile,
            environment: a.environment,
            snapshot_name: a.snapshot,
            isolation: a.isolation,
            ..Default::default()
        };
        match self.client.create_sandbox(&req).await {
            Ok(sb) => view(&sb, false),
            // Made by someone else meanwhile: use it.
            Err(e) if e.code() == Some(ErrorCode::SandboxAlreadyExists) => {
                let sb = self.client.get_sandbox(&name).await?;
                view(&self.ensure_running(sb).await?, true)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// `sb` running: waited for while starting or stopping, started when stopped, resumed
    /// when paused.
    async fn ensure_running(&self, mut sb: SandboxResponse) -> Result<SandboxResponse, ToolError> {
        let since = Instant::now();
        while matches!(sb.status, SandboxStatus::Starting | SandboxStatus::Stopping)
            && since.elapsed() < SETTLE
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            sb = self.client.get_sandbox(&sb.name).await?;
        }
        match sb.status {
            SandboxStatus::Running => Ok(sb),
            SandboxStatus::Stopped | SandboxStatus::Paused => {
                Ok(self.client.resume_sandbox(&sb.name).await?)
            }
            s => Err(ToolError::Failed(format!(
                "sandbox {} is {}{}; delete it (delete_sandbox) or use another name",
                sb.name,
                s.as_str(),
                sb.status_reason
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            ))),
        }
    }

    /// Sandboxes within reach, whatever their state.
    async fn count(&self) -> Result<u64, ToolError> {
        let page = self
            .client
            .list_sandboxes(1, 0, &[], self.policy.prefix.as_deref())
            .await?;
        Ok(page.total)
    }

    pub(crate) async fn list_sandboxes(&self, a: ListSandboxes) -> ToolResult {
        let statuses = a
            .status
            .unwrap_or_default()
            .iter()
            .map(|s| {
                SandboxStatus::parse(s).ok_or_else(|| {
                    ToolError::Failed(format!(
                        "`status`: unknown state {s:?} (running, stopped, starting, stopping, failed, paused)"
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut all = Vec::new();
        loop {
            let page = self
                .client
                .list_sandboxes(
                    200,
                    all.len() as u32,
                    &statuses,
                    self.policy.prefix.as_deref(),
                )
                .await?;
            let n = page.items.len();
            all.extend(page.items);
            if n == 0 || all.len() as u64 >= page.total {
                break;
            }
        }
        let items: Vec<_> = all
            .iter()
            .map(|s| {
                json!({
                    "name": s.name, "status": s.status, "image": s.image,
                    "created_at": s.created_at, "status_reason": s.status_reason,
                })
            })
            .collect();
        Ok(json!({ "sandboxes": items }))
    }

    pub(crate) async fn stop_sandbox(&self, a: SandboxRef) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        view(&self.client.stop_sandbox(&a.sandbox).await?, false)
    }

    pub(crate) async fn pause_sandbox(&self, a: SandboxRef) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        view(&self.client.pause_sandbox(&a.sandbox).await?, false)
    }

    pub(crate) async fn delete_sandbox(&self, a: SandboxRef) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        self.client.delete_sandbox(&a.sandbox).await?;
        Ok(json!({ "deleted": a.sandbox }))
    }

    pub(crate) async fn save_snapshot(&self, a: SaveSnapshot) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        if let Some(n) = &a.name {
            self.policy.allow("snapshot", n)?;
        }
        let req = CreateSnapshotRequest {
            sandbox_name: Some(a.sandbox),
            name: a.name,
            ..Default::default()
        };
        let snap = self.client.create_snapshot(&req, false).await?;
        serde_json::to_value(snap).map_err(|e| ToolError::Failed(e.to_string()))
    }
}
