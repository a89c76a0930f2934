//! Sandbox handlers.

use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use islo_api::{
    CreateSandboxRequest, ListSandboxesQuery, PaginatedSandboxResponse, SandboxResponse,
    SandboxStatus,
};

use super::HttpState;
use super::error::{ApiError, ApiJson};
use crate::app::{AppError, Tenant};

/// Parse the list query by hand: `status` repeats.
fn parse_list_query(raw: Option<&str>) -> Result<ListSandboxesQuery, AppError> {
    let mut q = ListSandboxesQuery::default();
    let num = |k: &str, v: &str| {
        v.parse::<u32>()
            .map_err(|_| AppError::Validation(format!("{k} must be a non-negative integer")))
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "limit" => q.limit = Some(num("limit", &v)?),
            "offset" => q.offset = Some(num("offset", &v)?),
            "name_prefix" => q.name_prefix = Some(v.into_owned()),
            "q" => q.q = Some(v.into_owned()),
            "search" => q.search = Some(v.into_owned()),
            "created_by" => q.created_by = Some(v.into_owned()),
            "cursor" => q.cursor = Some(v.into_owned()),
            "status" => q.status.push(
                SandboxStatus::parse(&v)
                    .ok_or_else(|| AppError::Validation(format!("unknown status {v:?}")))?,
            ),
            _ => {}
        }
    }
    Ok(q)
}

#[utoipa::path(get, path = "/sandboxes", params(ListSandboxesQuery),
    responses((status = 200, body = PaginatedSandboxResponse), (status = 401, body = islo_api::ErrorResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PaginatedSandboxResponse>, ApiError> {
    let q = parse_list_query(raw.as_deref())?;
    let (items, total, limit, offset) = s.app.list(&t, &q)?;
    let end = u64::from(offset) + items.len() as u64;
    Ok(Json(PaginatedSandboxResponse {
        items: items
            .iter()
            .map(|r| s.app.view(r))
            .collect::<Result<_, _>>()?,
        total,
        limit,
        offset,
        next_cursor: (end < total).then(|| crate::app::list_cursor(end)),
    }))
}

#[utoipa::path(post, path = "/sandboxes", request_body = CreateSandboxRequest,
    responses((status = 200, body = SandboxResponse), (status = 409, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    ApiJson(req): ApiJson<CreateSandboxRequest>,
) -> Result<axum::response::Response, ApiError> {
    use axum::response::IntoResponse;
    // In a cluster, a create lands where there is room: here, or carried to that node (which
    // creates it where it is asked, without placing it again).
    if s.transport != super::Transport::Node && s.app.clustered() {
        let (app, hint, snap, who) = (
            s.app.clone(),
            req.node.clone(),
            req.snapshot_name.clone(),
            t.clone(),
        );
        let placed =
            tokio::task::spawn_blocking(move || app.place(&who, hint.as_deref(), snap.as_deref()))
                .await
                .map_err(|e| ApiError(crate::app::AppError::Join(e)))??;
        if let Some((node, address)) = placed {
            let to = (node.as_str(), address.as_str());
            return Ok(super::forward::carry_json(&s, &t, to, "/sandboxes", &req, &[]).await);
        }
    }
    Ok(Json(s.app.view(&s.app.create(&t, req).await?)?).into_response())
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}",
    responses((status = 200, body = SandboxResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<SandboxResponse>, ApiError> {
    Ok(Json(s.app.view(&s.app.get(&t, &name)?)?))
}

#[utoipa::path(get, path = "/sandboxes/-/by-id/{id}",
    responses((status = 200, body = SandboxResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get_by_id(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(id): Path<String>,
) -> Result<Json<SandboxResponse>, ApiError> {
    Ok(Json(s.app.view(&s.app.get_by_id(&t, &id)?)?))
}

#[utoipa::path(delete, path = "/sandboxes/{sandbox_name}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/stop",
    responses((status = 200, body = SandboxResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn stop(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<SandboxResponse>, ApiError> {
    Ok(Json(s.app.view(&s.app.stop(&t, &name).await?)?))
}

/// Checkpoint every process of a running sandbox to its disk and free its memory and CPU.
#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/pause",
    responses((status = 200, body = SandboxResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn pause(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<SandboxResponse>, ApiError> {
    Ok(Json(s.app.view(&s.app.pause(&t, &name).await?)?))
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/resume",
    responses((status = 200, body = SandboxResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn resume(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<SandboxResponse>, ApiError> {
    Ok(Json(s.app.view(&s.app.resume(&t, &name).await?)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_repeats_status() {
        let q = parse_list_query(Some(
            "status=running&status=deleted&limit=5&name_prefix=web-",
        ))
        .unwrap();
        assert_eq!(
            q.status,
            vec![SandboxStatus::Running, SandboxStatus::Deleted]
        );
        assert_eq!((q.limit, q.name_prefix.as_deref()), (Some(5), Some("web-")));
        assert!(
            parse_list_query(Some("status=paused")).is_ok(),
            "a word of the vocabulary"
        );
        assert!(parse_list_query(Some("status=dozing")).is_err());
        assert!(parse_list_query(Some("limit=-1")).is_err());
    }
}
