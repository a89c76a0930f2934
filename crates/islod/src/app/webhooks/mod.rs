//! Incoming webhooks: made, listed, changed and removed by their tenant; received from anyone
//! (the webhook's own auth is the check); each verified delivery recorded once per idempotency
//! key and acted on by the delivery worker ([`deliver`]), with retries.

mod deliver;
mod rules;
pub mod verify;

use std::sync::Arc;

use islo_api::{
    CreateWebhookRequest, DeliveriesQuery, IdempotencyConfig, IncomingWebhook, IngressEventStatus,
    UpdateWebhookRequest, ValueSource, Verifier, WebhookAction, WebhookAuth, WebhookDeliveryDetail,
    WebhookDeliverySummary, WebhookReceipt, WebhookRule, WebhookStatus, WebhookTarget,
};
use serde_json::json;
use sha2::{Digest, Sha256};

pub use deliver::Worker;
use verify::Received;

use super::{App, AppError, Tenant};
use crate::store::{DeliveryFilter, DeliveryRow, WebhookRow, now_rfc3339};

/// Bytes of a body shown in a delivery's detail.
const PREVIEW: usize = 4096;

/// What a webhook does, stored as JSON with its secrets.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Config {
    auth: WebhookAuth,
    idempotency: IdempotencyConfig,
    target: WebhookTarget,
    #[serde(default)]
    rules: Vec<WebhookRule>,
}

/// Why the receiver refused a request.
#[derive(Debug)]
pub enum Refusal {
    /// No such (active) webhook: 404.
    Unknown,
    /// The sender's check failed: 401 (recorded as a failed delivery).
    Unverified(String),
    /// The event lacks what the webhook needs (idempotency key, sandbox name): 400.
    Unusable(String),
}

fn bad(m: impl Into<String>) -> AppError {
    AppError::Validation(m.into())
}

fn check_verifier(v: &Verifier) -> Result<(), AppError> {
    match v {
        Verifier::Hmac(h) if h.algorithm != "sha256" || h.encoding != "hex" => Err(bad(
            "auth: hmac supports algorithm sha256 with encoding hex",
        )),
        Verifier::Jwt(_) => Err(bad("auth: jwt is not supported by islod")),
        Verifier::IpAllowlist(v) => v.cidrs.iter().try_for_each(|c| {
            let net = c.split('/').next().unwrap_or_default();
            net.parse::<std::net::IpAddr>()
                .map(drop)
                .map_err(|_| bad(format!("auth: {c:?} is not an address or CIDR")))
        }),
        _ => Ok(()),
    }
}

fn check_config(c: &Config) -> Result<(), AppError> {
    match &c.auth {
        WebhookAuth::None => {}
        WebhookAuth::All { verifiers } | WebhookAuth::Any { verifiers } => {
            if verifiers.is_empty() {
                return Err(bad("auth: all/any needs at least one verifier"));
            }
            verifiers.iter().try_for_each(check_verifier)?;
        }
        other => check_verifier(&verify::as_verifier(other).ok_or_else(|| bad("auth"))?)?,
    }
    match &c.target {
        WebhookTarget::FixedSandboxName { sandbox_name } => {
            super::names::validate(sandbox_name).map_err(|e| bad(format!("target: {e}")))?;
        }
        WebhookTarget::SandboxNameFromEvent {
            allowed_pattern: Some(p),
            ..
        } => {
            regex::Regex::new(p).map_err(|e| bad(format!("target.allowed_pattern: {e}")))?;
        }
        WebhookTarget::SandboxNameFromEvent { .. } => {}
    }
    for (i, r) in c.rules.iter().enumerate() {
        if let Some(w) = &r.when {
            rules::check(w).map_err(|e| bad(format!("rules[{i}].when: {e}")))?;
        }
        for a in &r.actions {
            match a {
                WebhookAction::TriggerJob { .. } => {
                    return Err(bad(format!("rules[{i}]: trigger_job: islod runs no jobs")));
                }
                WebhookAction::DeliverToPort { port: 0, .. } => {
                    return Err(bad(format!(
                        "rules[{i}]: deliver_to_port.port must be 1-65535"
                    )));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn secret_ref(s: &islo_api::WebhookSecret) -> serde_json::Value {
    json!({"name": s.name})
}

/// A verifier's answer form: secrets as `secret_ref` and `*_redacted`.
fn redact_verifier(v: &Verifier, tag: &str) -> serde_json::Value {
    let mut out = match v {
        Verifier::Hmac(h) => {
            json!({"type": "hmac", "algorithm": h.algorithm, "encoding": h.encoding,
            "prefix": h.prefix, "secret_redacted": true, "secret_ref": secret_ref(&h.secret),
            "signature": h.signature, "signed_payload": h.signed_payload, "timestamp": h.timestamp})
        }
        Verifier::HeaderEquals(h) => {
            json!({"type": "header_equals", "header": h.header, "value_redacted": true})
        }
        Verifier::QueryEquals(q) => {
            json!({"type": "query_equals", "query": q.query, "value_redacted": true})
        }
        Verifier::Basic(b) => json!({"type": "basic", "secret_redacted": true,
            "secret_ref": secret_ref(&b.username)}),
        Verifier::BearerStatic(b) => json!({"type": "bearer_static", "secret_redacted": true,
            "secret_ref": secret_ref(&b.token)}),
        Verifier::Jwt(j) => {
            json!({"type": "jwt", "jwks_url": j.jwks_url, "issuer": j.issuer, "audience": j.audience})
        }
        Verifier::IpAllowlist(i) => json!({"type": "ip_allowlist", "cidrs": i.cidrs}),
    };
    if let Some(o) = out.as_object_mut() {
        o.retain(|_, v| !v.is_null());
        if tag != "type"
            && let Some(t) = o.remove("type")
        {
            o.insert(tag.into(), t);
        }
    }
    out
}

fn redact(a: &WebhookAuth) -> serde_json::Value {
    match a {
        WebhookAuth::None => json!({"auth_type": "none"}),
        WebhookAuth::All { verifiers } | WebhookAuth::Any { verifiers } => {
            let kind = if matches!(a, WebhookAuth::All { .. }) {
                "all"
            } else {
                "any"
            };
            let vs: Vec<_> = verifiers
                .iter()
                .map(|v| redact_verifier(v, "type"))
                .collect();
            json!({"auth_type": kind, "verifiers": vs})
        }
        other => verify::as_verifier(other).map_or(json!({"auth_type": "none"}), |v| {
            redact_verifier(&v, "auth_type")
        }),
    }
}

fn summary(d: &DeliveryRow) -> WebhookDeliverySummary {
    WebhookDeliverySummary {
        event_id: d.event_id.clone(),
        webhook_id: d.webhook_id.clone(),
        status: d.status,
        attempts: d.attempts,
        idempotency_key: d.idempotency_key.clone(),
        method: d.method.clone(),
        verified_at: d.received_at.clone(),
        next_attempt_at: d.next_attempt_at.clone(),
        completed_at: d.completed_at.clone(),
        last_error: d.last_error.clone(),
        external_event_id: d.external_event_id.clone(),
    }
}

impl App {
    fn webhook_view(&self, w: &WebhookRow) -> Result<IncomingWebhook, AppError> {
        let c: Config = serde_json::from_str(&w.config)
            .map_err(|e| AppError::Internal(format!("webhook {} config: {e}", w.id)))?;
        let base = self.shares.public_base();
        Ok(IncomingWebhook {
            id: w.id.clone(),
            name: w.name.clone(),
            receiver_url: format!("{}/hooks/{}", base.unwrap_or_default(), w.id),
            auth: redact(&c.auth),
            idempotency: c.idempotency,
            target: c.target,
            rules: c.rules,
            status: w.status,
            created_at: w.created_at.clone(),
        })
    }

    fn webhook_row(&self, t: &Tenant, id: &str) -> Result<WebhookRow, AppError> {
        self.store.webhook(Some(&t.id), id)?.ok_or_else(|| {
            AppError::NotFound(format!("webhook {id} (see `islo webhook incoming ls`)"))
        })
    }

    pub fn create_webhook(
        self: &Arc<Self>,
        t: &Tenant,
        req: &CreateWebhookRequest,
    ) -> Result<IncomingWebhook, AppError> {
        if req.name.trim().is_empty() || req.name.len() > 128 {
            return Err(bad("name must be 1-128 characters"));
        }
        let config = Config {
            auth: req.auth.clone(),
            idempotency: req.idempotency.clone(),
            target: req.target.clone(),
            rules: req.rules.clone().unwrap_or_default(),
        };
        check_config(&config)?;
        let row = WebhookRow {
            id: format!("wh_{}", uuid::Uuid::now_v7().simple()),
            tenant_id: t.id.clone(),
            name: req.name.clone(),
            config: serde_json::to_string(&config)
                .map_err(|e| AppError::Internal(e.to_string()))?,
            status: req.status.unwrap_or(WebhookStatus::Active),
            created_at: now_rfc3339(),
        };
        self.store.insert_webhook(&row)?;
        self.start_webhook_worker();
        self.webhook_view(&row)
    }

    pub fn list_webhooks(&self, t: &Tenant) -> Result<Vec<IncomingWebhook>, AppError> {
        self.store
            .webhooks(&t.id)?
            .iter()
            .map(|w| self.webhook_view(w))
            .collect()
    }

    pub fn get_webhook(&self, t: &Tenant, id: &str) -> Result<IncomingWebhook, AppError> {
        self.webhook_view(&self.webhook_row(t, id)?)
    }

    pub fn update_webhook(
        &self,
        t: &Tenant,
        id: &str,
        req: &UpdateWebhookRequest,
    ) -> Result<IncomingWebhook, AppError> {
        let mut row = self.webhook_row(t, id)?;
        let mut c: Config = serde_json::from_str(&row.config)
            .map_err(|e| AppError::Internal(format!("webhook {id} config: {e}")))?;
        if let Some(n) = &req.name {
            if n.trim().is_empty() || n.len() > 128 {
                return Err(bad("name must be 1-128 characters"));
            }
            row.name.clone_from(n);
        }
        if let Some(a) = &req.auth {
            c.auth = a.clone();
        }
        if let Some(i) = &req.idempotency {
            c.idempotency = i.clone();
        }
        if let Some(tg) = &req.target {
            c.target = tg.clone();
        }
        if let Some(r) = &req.rules {
            c.rules = r.clone();
        }
        if let Some(s) = req.status {
            row.status = s;
        }
        check_config(&c)?;
        row.config = serde_json::to_string(&c).map_err(|e| AppError::Internal(e.to_string()))?;
        self.store.update_webhook(&row)?;
        self.webhook_view(&row)
    }

    pub fn delete_webhook(&self, t: &Tenant, id: &str) -> Result<(), AppError> {
        if !self.store.delete_webhook(&t.id, id, &now_rfc3339())? {
            return Err(AppError::NotFound(format!("webhook {id}")));
        }
        Ok(())
    }

    pub fn webhook_deliveries(
        &self,
        t: &Tenant,
        id: &str,
        q: &DeliveriesQuery,
    ) -> Result<Vec<WebhookDeliverySummary>, AppError> {
        self.webhook_row(t, id)?;
        let status = match q.status.as_deref() {
            None => None,
            Some(s) => {
                Some(IngressEventStatus::parse(s).ok_or_else(|| bad(format!("status {s:?}")))?)
            }
        };
        let f = DeliveryFilter {
            status,
            from: q.from.clone(),
            to: q.to.clone(),
            limit: q.limit.unwrap_or(50).clamp(1, 200),
            offset: q.offset.unwrap_or(0),
        };
        Ok(self.store.deliveries(id, &f)?.iter().map(summary).collect())
    }

    pub fn webhook_delivery(
        &self,
        t: &Tenant,
        id: &str,
        event_id: &str,
    ) -> Result<WebhookDeliveryDetail, AppError> {
        self.webhook_row(t, id)?;
        let d = self
            .store
            .delivery(id, event_id)?
            .ok_or_else(|| AppError::NotFound(format!("delivery {event_id} of webhook {id}")))?;
        let cut = d.body.len() > PREVIEW;
        Ok(WebhookDeliveryDetail {
            summary: summary(&d),
            resolved_sandbox_name: d.resolved_sandbox_name.clone(),
            resolved_sandbox_id: d.resolved_sandbox_id.clone(),
            query: d.query.clone(),
            body_preview: Some(
                String::from_utf8_lossy(&d.body[..d.body.len().min(PREVIEW)]).into_owned(),
            ),
            body_truncated: cut,
            source_label: Some(d.client.clone()),
            action_attempts: self.store.attempts(&d.event_id)?,
        })
    }

    /// A request to a webhook's receiver: checked, recorded (a failed check too), and handed
    /// to the worker; a replay of a recorded event is acknowledged without acting again.
    pub fn receive_webhook(
        self: &Arc<Self>,
        id: &str,
        r: Received,
    ) -> Result<WebhookReceipt, Refusal> {
        let w = match self.store.webhook(None, id) {
            Ok(Some(w)) if w.status == WebhookStatus::Active => w,
            _ => return Err(Refusal::Unknown),
        };
        let c: Config = serde_json::from_str(&w.config).map_err(|_| Refusal::Unknown)?;
        let mut d = received(&w.id, &r);
        if let Err(refusal) = admit(&c, &r, &mut d) {
            // Recorded as failed with the reason, under a key of its own.
            let _ = self.store.insert_delivery(&d);
            if let Refusal::Unverified(why) = &refusal {
                tracing::info!(target: "audit", webhook = %w.id, reason = %why, "webhook delivery refused");
            }
            return Err(refusal);
        }
        match self.store.insert_delivery(&d) {
            Ok(Ok(())) => {
                self.start_webhook_worker();
                self.webhooks.wake();
                Ok(WebhookReceipt {
                    event_id: d.event_id,
                    status: d.status,
                    duplicate: false,
                })
            }
            Ok(Err(prev)) => Ok(WebhookReceipt {
                event_id: prev.event_id,
                status: prev.status,
                duplicate: true,
            }),
            Err(e) => Err(Refusal::Unusable(format!("recording the delivery: {e}"))),
        }
    }
}

/// A delivery of `r` as received: failed until [`admit`] says otherwise.
fn received(webhook_id: &str, r: &Received) -> DeliveryRow {
    let event_id = format!("evt_{}", uuid::Uuid::now_v7().simple());
    DeliveryRow {
        idempotency_key: format!("unverified:{event_id}"),
        event_id,
        webhook_id: webhook_id.to_string(),
        status: IngressEventStatus::Failed,
        attempts: 0,
        method: r.method.clone(),
        path: r.path.clone(),
        query: r.query.clone(),
        headers: serde_json::to_string(&r.headers).unwrap_or_default(),
        body: r.body.clone(),
        client: r
            .client
            .map_or_else(|| "unknown".into(), |ip| ip.to_string()),
        received_at: now_rfc3339(),
        next_attempt_at: now_rfc3339(),
        completed_at: Some(now_rfc3339()),
        last_error: None,
        resolved_sandbox_name: String::new(),
        resolved_sandbox_id: None,
        external_event_id: r.header("x-github-delivery").map(str::to_string),
    }
}

/// Check the sender, find the idempotency key and the sandbox: `d` becomes pending, or gets
/// the reason it failed.
fn admit(c: &Config, r: &Received, d: &mut DeliveryRow) -> Result<(), Refusal> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let outcome = verify::verify(&c.auth, r, now)
        .map_err(Refusal::Unverified)
        .and_then(|()| {
            idempotency_key(&c.idempotency, r).ok_or_else(|| {
                Refusal::Unusable(
                    "the event has no idempotency key where the webhook looks for it".into(),
                )
            })
        })
        .and_then(|key| {
            let name = resolve_target(&c.target, r).map_err(Refusal::Unusable)?;
            Ok((key, name))
        });
    match outcome {
        Ok((key, name)) => {
            d.idempotency_key = key;
            d.resolved_sandbox_name = name;
            d.status = IngressEventStatus::Pending;
            d.completed_at = None;
            Ok(())
        }
        Err(refusal) => {
            d.last_error = Some(match &refusal {
                Refusal::Unverified(why) => format!("verification failed: {why}"),
                Refusal::Unusable(why) => why.clone(),
                Refusal::Unknown => "no such webhook".into(),
            });
            Err(refusal)
        }
    }
}

/// What makes a delivery the same event as another.
fn idempotency_key(i: &IdempotencyConfig, r: &Received) -> Option<String> {
    let src = match i {
        IdempotencyConfig::BodySha256 => return Some(hex::encode(Sha256::digest(&r.body))),
        IdempotencyConfig::Header { name } => ValueSource::Header { name: name.clone() },
        IdempotencyConfig::HeaderParam { header, param } => ValueSource::HeaderParam {
            header: header.clone(),
            param: param.clone(),
        },
        IdempotencyConfig::JsonPath { path } => ValueSource::JsonPath { path: path.clone() },
    };
    verify::extract_text(r, &src).filter(|k| !k.is_empty())
}

/// The sandbox an event is for, checked against the target's constraints.
fn resolve_target(t: &WebhookTarget, r: &Received) -> Result<String, String> {
    match t {
        WebhookTarget::FixedSandboxName { sandbox_name } => Ok(sandbox_name.clone()),
        WebhookTarget::SandboxNameFromEvent {
            source,
            required_prefix,
            allowed_pattern,
            allowed_names,
        } => {
            let name = verify::extract_text(r, source)
                .filter(|n| !n.is_empty())
                .ok_or("the event does not name a sandbox where the webhook looks")?;
            if let Some(p) = required_prefix
                && !name.starts_with(p.as_str())
            {
                return Err(format!("sandbox name {name:?} lacks the prefix {p:?}"));
            }
            if let Some(p) = allowed_pattern {
                let re = regex::Regex::new(p).map_err(|e| e.to_string())?;
                if !re.is_match(&name) {
                    return Err(format!("sandbox name {name:?} does not match {p:?}"));
                }
            }
            if let Some(names) = allowed_names
                && !names.contains(&name)
            {
                return Err(format!("sandbox name {name:?} is not allowed"));
            }
            super::names::validate(&name).map_err(|e| e.to_string())?;
            Ok(name)
        }
    }
}
