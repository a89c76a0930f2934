//! The delivery worker: takes due deliveries (new, or waiting for a retry), runs the actions of
//! the rules whose condition holds, records each attempt, and retries failures with backoff
//! (1 s, 2 s, 4 s, 8 s) before giving up (`exhausted`). State is in the database, so islod
//! picks up where it was after a restart.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper_util::rt::TokioIo;
use islo_api::{
    CreateSandboxRequest, IngressActionStatus, IngressEventStatus, SandboxStatus, WebhookAction,
    WebhookActionAttempt,
};
use tokio::sync::Notify;

use super::{App, AppError, Config, Tenant};
use crate::store::{DeliveryRow, now_rfc3339};

/// Attempts before a delivery is `exhausted`.
const MAX_ATTEMPTS: u32 = 5;

/// Wakes the worker when a delivery arrives.
#[derive(Default)]
pub struct Worker {
    notify: Notify,
    started: std::sync::OnceLock<()>,
}

impl Worker {
    pub fn wake(&self) {
        self.notify.notify_one();
    }
}

fn key(a: &WebhookAction) -> &'static str {
    match a {
        WebhookAction::EnsureSandbox { .. } => "ensure_sandbox",
        WebhookAction::ResumeSandbox => "resume_sandbox",
        WebhookAction::PauseSandbox => "pause_sandbox",
        WebhookAction::DeleteSandbox => "delete_sandbox",
        WebhookAction::DeliverToPort { .. } => "deliver_to_port",
        WebhookAction::TriggerJob { .. } => "trigger_job",
    }
}

fn later(secs: u64) -> String {
    let t = time::OffsetDateTime::now_utc() + time::Duration::seconds(secs as i64);
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

impl App {
    /// Start the worker once (at serve, or with the first webhook).
    pub fn start_webhook_worker(self: &Arc<Self>) {
        if self.webhooks.started.set(()).is_err() {
            return;
        }
        let app = self.clone();
        tokio::spawn(async move {
            loop {
                let due = app.store.due_deliveries(&now_rfc3339()).unwrap_or_default();
                for d in due {
                    app.process(d).await;
                }
                tokio::select! {
                    () = app.webhooks.notify.notified() => {}
                    () = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        });
    }

    async fn process(self: &Arc<Self>, mut d: DeliveryRow) {
        let outcome = self.run_actions(&mut d).await;
        d.attempts += 1;
        match outcome {
            Ok(()) => {
                d.status = IngressEventStatus::Delivered;
                d.completed_at = Some(now_rfc3339());
                d.last_error = None;
            }
            Err(e) if d.attempts >= MAX_ATTEMPTS => {
                d.status = IngressEventStatus::Exhausted;
                d.completed_at = Some(now_rfc3339());
                d.last_error = Some(e);
            }
            Err(e) => {
                d.status = IngressEventStatus::Processing;
                d.next_attempt_at = later(1 << (d.attempts - 1));
                d.last_error = Some(e);
            }
        }
        if let Err(e) = self.store.update_delivery(&d) {
            tracing::error!(event = %d.event_id, error = %e, "recording a delivery");
        }
        tracing::info!(webhook = %d.webhook_id, event = %d.event_id, status = %d.status,
            attempts = d.attempts, "webhook delivery processed");
    }

    /// Run every action of every matching rule, in order; the first failure stops them.
    async fn run_actions(self: &Arc<Self>, d: &mut DeliveryRow) -> Result<(), String> {
        let w = self
            .store
            .webhook(None, &d.webhook_id)
            .map_err(|e| e.to_string())?
            .ok_or("the webhook was removed")?;
        let c: Config = serde_json::from_str(&w.config).map_err(|e| e.to_string())?;
        let t = Tenant {
            name: self
                .store
                .tenant_name(&w.tenant_id)
                .ok()
                .flatten()
                .unwrap_or_default(),
            id: w.tenant_id.clone(),
        };
        let body: serde_json::Value = serde_json::from_slice(&d.body).unwrap_or_default();
        let mut index = 0u32;
        for rule in &c.rules {
            let holds = match &rule.when {
                None => true,
                Some(w) => super::rules::eval(w, &body)?,
            };
            if !holds {
                index += rule.actions.len() as u32;
                continue;
            }
            for action in &rule.actions {
                let started = now_rfc3339();
                let result = self.act(&t, d, action).await;
                let attempt = WebhookActionAttempt {
                    action_index: index,
                    action_key: key(action).into(),
                    status: if result.is_ok() {
                        IngressActionStatus::Completed
                    } else {
                        IngressActionStatus::Failed
                    },
                    started_at: started,
                    completed_at: Some(now_rfc3339()),
                    error: result.as_ref().err().cloned(),
                };
                let _ = self.store.insert_attempt(&d.event_id, &attempt);
                result?;
                index += 1;
            }
        }
        Ok(())
    }

    async fn act(
        self: &Arc<Self>,
        t: &Tenant,
        d: &mut DeliveryRow,
        a: &WebhookAction,
    ) -> Result<(), String> {
        let name = d.resolved_sandbox_name.clone();
        let err = |e: AppError| e.to_string();
        match a {
            WebhookAction::EnsureSandbox { template } => self.ensure(t, d, template).await,
            WebhookAction::ResumeSandbox => {
                let row = self.get(t, &name).map_err(err)?;
                d.resolved_sandbox_id = Some(row.id.clone());
                self.running_or_start(t, &name, row.status).await
            }
            WebhookAction::DeleteSandbox => {
                if let Ok(row) = self.get(t, &name) {
                    d.resolved_sandbox_id = Some(row.id);
                }
                match self.delete(t, &name).await {
                    Ok(()) | Err(AppError::SandboxNotFound(_)) => Ok(()),
                    Err(e) => Err(err(e)),
                }
            }
            WebhookAction::DeliverToPort {
                port,
                path,
                auto_resume,
                ..
            } => {
                let row = self.get(t, &name).map_err(err)?;
                d.resolved_sandbox_id = Some(row.id.clone());
                if auto_resume.as_deref() == Some("on_activity") {
                    self.running_or_start(t, &name, row.status).await?;
                }
                self.forward_delivery(t, d, *port, path.as_deref()).await
            }
            WebhookAction::PauseSandbox => {
                let row = self.get(t, &name).map_err(err)?;
                d.resolved_sandbox_id = Some(row.id.clone());
                match self.pause(t, &name).await {
                    // Already paused: what the action asks for holds.
                    Ok(_)
                    | Err(AppError::InvalidState {
                        status: SandboxStatus::Paused,
                        ..
                    }) => Ok(()),
                    Err(e) => Err(err(e)),
                }
            }
            WebhookAction::TriggerJob { .. } => {
                Err(format!("{} is not available in this islod", key(a)))
            }
        }
    }

    /// Create the event's sandbox from `template` if it is missing; start it if stopped.
    async fn ensure(
        self: &Arc<Self>,
        t: &Tenant,
        d: &mut DeliveryRow,
        template: &islo_api::WebhookSandboxTemplate,
    ) -> Result<(), String> {
        let name = d.resolved_sandbox_name.clone();
        let err = |e: AppError| e.to_string();
        let row = match self.get(t, &name) {
            Ok(row) => row,
            Err(AppError::SandboxNotFound(_)) => {
                let req = CreateSandboxRequest {
                    name: Some(name.clone()),
                    image: Some(template.image.clone()),
                    vcpus: Some(template.vcpus),
                    memory_mb: Some(template.memory_mb),
                    disk_gb: Some(template.disk_gb),
                    env: template.env.clone(),
                    gateway_profile: template.gateway_profile.clone(),
                    workdir: template.workdir.clone(),
                    snapshot_name: template.snapshot_name.clone(),
                    setup_scripts: template.setup_scripts.clone(),
                    sources: template.sources.clone(),
                    cache_key: template.cache_key.clone(),
                    init: template.init.clone(),
                    ..Default::default()
                };
                self.create(t, req).await.map_err(err)?
            }
            Err(e) => return Err(err(e)),
        };
        d.resolved_sandbox_id = Some(row.id.clone());
        self.running_or_start(t, &row.name, row.status).await
    }

    async fn running_or_start(
        &self,
        t: &Tenant,
        name: &str,
        status: SandboxStatus,
    ) -> Result<(), String> {
        match status {
            SandboxStatus::Running => Ok(()),
            _ => self
                .resume(t, name)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        }
    }

    /// The original request (method, headers, body) to `port` inside; a 5xx or no answer fails.
    async fn forward_delivery(
        &self,
        t: &Tenant,
        d: &DeliveryRow,
        port: u16,
        path: Option<&str>,
    ) -> Result<(), String> {
        let stream = self
            .connect_port(t, &d.resolved_sandbox_name, port)
            .await
            .map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake::<
            _,
            http_body_util::Full<bytes::Bytes>,
        >(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = hyper::Request::new(http_body_util::Full::new(bytes::Bytes::from(
            d.body.clone(),
        )));
        *req.method_mut() =
            hyper::Method::from_bytes(d.method.as_bytes()).map_err(|e| e.to_string())?;
        let target = match (path, &d.query) {
            (Some(p), _) => p.to_string(),
            (None, Some(q)) => format!("/?{q}"),
            (None, None) => "/".into(),
        };
        *req.uri_mut() = target.parse().map_err(|_| format!("bad path {target:?}"))?;
        let headers: Vec<(String, String)> = serde_json::from_str(&d.headers).unwrap_or_default();
        for (k, v) in headers {
            let hop = [
                "host",
                "connection",
                "content-length",
                "transfer-encoding",
                "keep-alive",
                "upgrade",
            ];
            if hop.contains(&k.as_str()) {
                continue;
            }
            if let (Ok(k), Ok(v)) = (
                hyper::header::HeaderName::from_bytes(k.as_bytes()),
                v.parse(),
            ) {
                req.headers_mut().append(k, v);
            }
        }
        if let Ok(h) = format!("localhost:{port}").parse() {
            req.headers_mut().insert(hyper::header::HOST, h);
        }
        let resp = tokio::time::timeout(Duration::from_secs(30), send.send_request(req))
            .await
            .map_err(|_| format!("port {port} did not answer within 30 s"))?
            .map_err(|e| e.to_string())?;
        let status = resp.status();
        let _ = resp.into_body().collect().await;
        if status.is_server_error() {
            return Err(format!("port {port} answered {status}"));
        }
        Ok(())
    }
}
