//! Incoming webhooks, their deliveries and each action's attempts (schema v16).

use islo_api::{IngressActionStatus, IngressEventStatus, WebhookActionAttempt, WebhookStatus};
use rusqlite::{OptionalExtension, Row, params};

use super::{Store, StoreError};

/// A webhook; `config` is its auth, idempotency, target and rules (JSON, secrets included).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRow {
    pub id: String,
    pub tenant_id: String,
    pub name: String,
    pub config: String,
    pub status: WebhookStatus,
    pub created_at: String,
}

/// A delivery as received (the body whole, up to the receiver's limit) and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryRow {
    pub event_id: String,
    pub webhook_id: String,
    pub idempotency_key: String,
    pub status: IngressEventStatus,
    pub attempts: u32,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// `[[name, value], …]` as JSON.
    pub headers: String,
    pub body: Vec<u8>,
    pub client: String,
    pub received_at: String,
    pub next_attempt_at: String,
    pub completed_at: Option<String>,
    pub last_error: Option<String>,
    pub resolved_sandbox_name: String,
    pub resolved_sandbox_id: Option<String>,
    pub external_event_id: Option<String>,
}

const WEBHOOK_COLUMNS: &str = "id, tenant_id, name, config, status, created_at";
const DELIVERY_COLUMNS: &str = "event_id, webhook_id, idempotency_key, status, attempts, method, \
    path, query, headers, body, client, received_at, next_attempt_at, completed_at, last_error, \
    resolved_sandbox_name, resolved_sandbox_id, external_event_id";

fn webhook(r: &Row<'_>) -> rusqlite::Result<WebhookRow> {
    Ok(WebhookRow {
        id: r.get(0)?,
        tenant_id: r.get(1)?,
        name: r.get(2)?,
        config: r.get(3)?,
        status: super::closed(r, 4, WebhookStatus::parse, "webhook status")?,
        created_at: r.get(5)?,
    })
}

fn delivery(r: &Row<'_>) -> rusqlite::Result<DeliveryRow> {
    Ok(DeliveryRow {
        event_id: r.get(0)?,
        webhook_id: r.get(1)?,
        idempotency_key: r.get(2)?,
        status: super::closed(r, 3, IngressEventStatus::parse, "delivery status")?,
        attempts: r.get(4)?,
        method: r.get(5)?,
        path: r.get(6)?,
        query: r.get(7)?,
        headers: r.get(8)?,
        body: r.get(9)?,
        client: r.get(10)?,
        received_at: r.get(11)?,
        next_attempt_at: r.get(12)?,
        completed_at: r.get(13)?,
        last_error: r.get(14)?,
        resolved_sandbox_name: r.get(15)?,
        resolved_sandbox_id: r.get(16)?,
        external_event_id: r.get(17)?,
    })
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<IngressEventStatus>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub limit: u32,
    pub offset: u32,
}

impl Store {
    pub fn insert_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
                &format!(
                    "INSERT INTO webhooks ({WEBHOOK_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6)"
                ),
                params![
                    w.id,
                    w.tenant_id,
                    w.name,
                    w.config,
                    w.status.as_str(),
                    w.created_at
                ],
            )?;
            Ok(())
        })
    }

    pub fn update_webhook(&self, w: &WebhookRow) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE webhooks SET name = ?3, config = ?4, status = ?5 WHERE tenant_id = ?1 AND id = ?2",
            params![w.tenant_id, w.id, w.name, w.config, w.status.as_str()],
        )?;
        Ok(())
    })
    }

    /// A tenant's live webhooks.
    pub fn webhooks(&self, tenant_id: &str) -> Result<Vec<WebhookRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE tenant_id = ?1 AND deleted_at IS NULL \
             ORDER BY created_at, id"
        ))?;
        let rows = st.query_map([tenant_id], webhook)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// A live webhook; of any tenant when `tenant_id` is `None` (the receiver).
    pub fn webhook(
        &self,
        tenant_id: Option<&str>,
        id: &str,
    ) -> Result<Option<WebhookRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {WEBHOOK_COLUMNS} FROM webhooks WHERE id = ?1 AND deleted_at IS NULL \
                     AND (?2 IS NULL OR tenant_id = ?2)"
                ),
                params![id, tenant_id],
                webhook,
            )
            .optional()?)
    }

    /// Soft delete; false when the tenant has no such live webhook.
    pub fn delete_webhook(&self, tenant_id: &str, id: &str, at: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            let n = db.execute(
                "UPDATE webhooks SET deleted_at = ?3, status = 'disabled' \
             WHERE tenant_id = ?1 AND id = ?2 AND deleted_at IS NULL",
                params![tenant_id, id, at],
            )?;
            Ok(n == 1)
        })
    }

    /// Record a delivery; `Err(existing)` when one with its idempotency key is there.
    pub fn insert_delivery(&self, d: &DeliveryRow) -> Result<Result<(), DeliveryRow>, StoreError> {
        self.write(|db| {
            let existing = db
                .query_row(
                    &format!(
                        "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
                     WHERE webhook_id = ?1 AND idempotency_key = ?2"
                    ),
                    params![d.webhook_id, d.idempotency_key],
                    delivery,
                )
                .optional()?;
            if let Some(e) = existing {
                return Ok(Err(e));
            }
            db.execute(
            &format!(
                "INSERT INTO webhook_deliveries ({DELIVERY_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, \
                 ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)"
            ),
            params![
                d.event_id,
                d.webhook_id,
                d.idempotency_key,
                d.status.as_str(),
                d.attempts,
                d.method,
                d.path,
                d.query,
                d.headers,
                d.body,
                d.client,
                d.received_at,
                d.next_attempt_at,
                d.completed_at,
                d.last_error,
                d.resolved_sandbox_name,
                d.resolved_sandbox_id,
                d.external_event_id
            ],
        )?;
            Ok(Ok(()))
        })
    }

    /// Write where a delivery is.
    pub fn update_delivery(&self, d: &DeliveryRow) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "UPDATE webhook_deliveries SET status = ?2, attempts = ?3, next_attempt_at = ?4, \
             completed_at = ?5, last_error = ?6, resolved_sandbox_name = ?7, resolved_sandbox_id = ?8 \
             WHERE event_id = ?1",
            params![
                d.event_id,
                d.status.as_str(),
                d.attempts,
                d.next_attempt_at,
                d.completed_at,
                d.last_error,
                d.resolved_sandbox_name,
                d.resolved_sandbox_id
            ],
        )?;
        Ok(())
    })
    }

    pub fn delivery(
        &self,
        webhook_id: &str,
        event_id: &str,
    ) -> Result<Option<DeliveryRow>, StoreError> {
        Ok(self
            .db()
            .query_row(
                &format!(
                    "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?1 AND event_id = ?2"
                ),
                params![webhook_id, event_id],
                delivery,
            )
            .optional()?)
    }

    /// A webhook's deliveries, newest first.
    pub fn deliveries(
        &self,
        webhook_id: &str,
        f: &DeliveryFilter,
    ) -> Result<Vec<DeliveryRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries WHERE webhook_id = ?1 \
             AND (?2 IS NULL OR status = ?2) AND (?3 IS NULL OR received_at >= ?3) \
             AND (?4 IS NULL OR received_at < ?4) ORDER BY received_at DESC, event_id DESC \
             LIMIT ?5 OFFSET ?6"
        ))?;
        let status = f.status.map(|s| s.as_str());
        let rows = st.query_map(
            params![webhook_id, status, f.from, f.to, f.limit, f.offset],
            delivery,
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Deliveries whose next attempt is due at `now` (pending or being retried).
    pub fn due_deliveries(&self, now: &str) -> Result<Vec<DeliveryRow>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {DELIVERY_COLUMNS} FROM webhook_deliveries \
             WHERE status IN ('pending', 'processing') AND next_attempt_at <= ?1 \
             ORDER BY next_attempt_at LIMIT 32"
        ))?;
        let rows = st.query_map([now], delivery)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn insert_attempt(
        &self,
        event_id: &str,
        a: &WebhookActionAttempt,
    ) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute(
            "INSERT INTO webhook_attempts (event_id, action_index, action_key, status, started_at, \
             completed_at, error) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                event_id,
                a.action_index,
                a.action_key,
                a.status.as_str(),
                a.started_at,
                a.completed_at,
                a.error
            ],
        )?;
            Ok(())
        })
    }

    pub fn attempts(&self, event_id: &str) -> Result<Vec<WebhookActionAttempt>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(
            "SELECT action_index, action_key, status, started_at, completed_at, error \
             FROM webhook_attempts WHERE event_id = ?1 ORDER BY id",
        )?;
        let rows = st.query_map([event_id], |r| {
            Ok(WebhookActionAttempt {
                action_index: r.get(0)?,
                action_key: r.get(1)?,
                status: super::closed(r, 2, IngressActionStatus::parse, "attempt status")?,
                started_at: r.get(3)?,
                completed_at: r.get(4)?,
                error: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}
