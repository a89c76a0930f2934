//! Live views for the dashboard, as server-sent events: the tenant's sandboxes with what they
//! use, and the gateway's decisions across its sandboxes. Each open stream reads the store
//! every few seconds on islod's side (one indexed query), so a page left open costs the
//! server a query a tick and the browser nothing but the events.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use islo_api::ui::SandboxesSnapshot;
use islo_api::{GatewayEventsQuery, GatewayEventsResponse, ListSandboxesQuery};

use super::HttpState;
use super::error::ApiError;
use super::sse;
use crate::app::{AppError, Tenant};

const SANDBOXES_EVERY: Duration = Duration::from_secs(2);
const DECISIONS_EVERY: Duration = Duration::from_secs(1);
/// A comment this often keeps a quiet stream open through proxies.
const KEEPALIVE: Duration = Duration::from_secs(15);

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Every sandbox of `t` (all pages), with the use of the running ones.
fn snapshot(s: &HttpState, t: &Tenant) -> Result<SandboxesSnapshot, AppError> {
    let (mut sandboxes, mut usage) = (Vec::new(), std::collections::BTreeMap::new());
    let mut q = ListSandboxesQuery {
        limit: Some(islo_api::limits::LIST_LIMIT.1),
        ..Default::default()
    };
    loop {
        let (rows, total, _, offset) = s.app.list(t, &q)?;
        let end = u64::from(offset) + rows.len() as u64;
        for r in &rows {
            if let Some(u) = s.app.usage(r) {
                usage.insert(r.id.clone(), u);
            }
            sandboxes.push(s.app.view(r)?);
        }
        if rows.is_empty() || end >= total {
            break;
        }
        q.cursor = Some(crate::app::list_cursor(end));
    }
    Ok(SandboxesSnapshot {
        sandboxes,
        usage,
        at_ms: now_ms(),
    })
}

fn event_stream(body: axum::body::Body) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[utoipa::path(get, path = "/sandboxes/-/watch",
    responses((status = 200, description = "text/event-stream: a `sandboxes` event (SandboxesSnapshot as data) now and every 2 s"),
              (status = 401, body = islo_api::ErrorResponse)))]
/// The tenant's sandboxes, live (extension).
pub async fn sandboxes(State(s): State<HttpState>, Extension(t): Extension<Tenant>) -> Response {
    let stream = futures_util::stream::unfold(true, move |first| {
        let (s, t) = (s.clone(), t.clone());
        async move {
            if !first {
                tokio::time::sleep(SANDBOXES_EVERY).await;
            }
            let snap = tokio::task::spawn_blocking(move || snapshot(&s, &t))
                .await
                .ok()?;
            let ev = match snap {
                Ok(v) => sse::event("sandboxes", &serde_json::to_string(&v).unwrap_or_default()),
                Err(e) => sse::event("error", &e.to_string()),
            };
            Some((Ok::<_, std::io::Error>(ev), false))
        }
    });
    event_stream(axum::body::Body::from_stream(stream))
}

#[utoipa::path(get, path = "/gateway/events", params(GatewayEventsQuery),
    responses((status = 200, body = GatewayEventsResponse), (status = 401, body = islo_api::ErrorResponse)))]
/// The gateway's decisions across the tenant's sandboxes (extension).
pub async fn decisions(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Query(q): Query<GatewayEventsQuery>,
) -> Result<Json<GatewayEventsResponse>, ApiError> {
    Ok(Json(GatewayEventsResponse {
        events: s.app.tenant_gateway_events(&t, &q)?,
    }))
}

/// What the decision stream has said so far.
struct Follow {
    s: HttpState,
    t: Tenant,
    after: i64,
    quiet: Duration,
}

#[utoipa::path(get, path = "/gateway/events/watch", params(GatewayEventsQuery),
    responses((status = 200, description = "text/event-stream: `decisions` events (a JSON array of GatewayEventResponse) as they are made, after `after_id`"),
              (status = 401, body = islo_api::ErrorResponse)))]
/// The gateway's decisions across the tenant's sandboxes, live (extension).
pub async fn decisions_watch(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Query(q): Query<GatewayEventsQuery>,
) -> Response {
    // Without a starting point: from now on (history is `GET /gateway/events`).
    let after = match q.after_id {
        Some(a) => a,
        None => {
            let last = GatewayEventsQuery {
                limit: Some(1),
                ..Default::default()
            };
            let (s, t) = (s.clone(), t.clone());
            tokio::task::spawn_blocking(move || s.app.tenant_gateway_events(&t, &last))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|v| v.last().map(|e| e.id))
                .unwrap_or(0)
        }
    };
    let start = Follow {
        s,
        t,
        after,
        quiet: Duration::ZERO,
    };
    let stream = futures_util::stream::unfold(start, |mut f| async move {
        loop {
            tokio::time::sleep(DECISIONS_EVERY).await;
            let q = GatewayEventsQuery {
                after_id: Some(f.after),
                limit: Some(500),
                ..Default::default()
            };
            let (s, t) = (f.s.clone(), f.t.clone());
            let got = tokio::task::spawn_blocking(move || s.app.tenant_gateway_events(&t, &q))
                .await
                .ok()?;
            match got {
                Ok(events) if !events.is_empty() => {
                    f.after = events.last().map(|e| e.id).unwrap_or(f.after);
                    f.quiet = Duration::ZERO;
                    let data = serde_json::to_string(&events).unwrap_or_default();
                    return Some((Ok::<_, std::io::Error>(sse::event("decisions", &data)), f));
                }
                Ok(_) => {
                    f.quiet += DECISIONS_EVERY;
                    if f.quiet >= KEEPALIVE {
                        f.quiet = Duration::ZERO;
                        return Some((Ok(sse::keepalive()), f));
                    }
                }
                Err(e) => return Some((Ok(sse::event("error", &e.to_string())), f)),
            }
        }
    });
    event_stream(axum::body::Body::from_stream(stream))
}
