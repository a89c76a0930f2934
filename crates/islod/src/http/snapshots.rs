//! Snapshot handlers.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::{Extension, Json};
use futures_util::StreamExt;
use islo_api::{
    CreateSnapshotRequest, ImportSnapshotQuery, ListSnapshotsQuery, PaginatedSnapshotResponse,
    SnapshotResponse,
};
use tokio::io::AsyncWriteExt;

use super::HttpState;
use super::error::ApiError;
use crate::app::{AppError, Tenant, snapshot_view};
use crate::images::MAX_LAYER_BYTES;

#[utoipa::path(get, path = "/snapshots/", params(ListSnapshotsQuery),
    responses((status = 200, body = PaginatedSnapshotResponse)))]
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Query(q): Query<ListSnapshotsQuery>,
) -> Result<Json<PaginatedSnapshotResponse>, ApiError> {
    let (rows, total, limit, offset) = s.app.list_snapshots(&t, q.limit, q.offset)?;
    Ok(Json(PaginatedSnapshotResponse {
        items: rows.iter().map(snapshot_view).collect(),
        total,
        limit,
        offset,
    }))
}

#[utoipa::path(post, path = "/snapshots/", request_body = CreateSnapshotRequest,
    params(("Prefer" = Option<String>, Header, description = "`respond-async`: answer at once with a `saving` snapshot")),
    responses((status = 200, body = SnapshotResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn create(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    headers: HeaderMap,
    Json(req): Json<CreateSnapshotRequest>,
) -> Result<axum::response::Response, ApiError> {
    let respond_async = headers
        .get_all("prefer")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            v.split(',')
                .any(|p| p.trim().eq_ignore_ascii_case("respond-async"))
        });
    // In a cluster, the save runs on the node that holds the sandbox.
    let source = req.sandbox_name.clone().or_else(|| req.sandbox_id.clone());
    if let Some(source) =
        source.filter(|_| s.transport != super::Transport::Node && s.app.clustered())
    {
        let (app, who) = (s.app.clone(), t.clone());
        let owner = tokio::task::spawn_blocking(move || app.owner_elsewhere(&who, &source))
            .await
            .map_err(|e| ApiError(crate::app::AppError::Join(e)))??;
        if let Some((node, address)) = owner {
            let Some(address) = address else {
                return Err(ApiError(crate::app::AppError::ClusterUnavailable(format!(
                    "this sandbox lives on node {node}, which is not answering"
                ))));
            };
            let prefer: &[(&str, &str)] = if respond_async {
                &[("prefer", "respond-async")]
            } else {
                &[]
            };
            let (to, path) = ((node.as_str(), address.as_str()), "/snapshots/");
            return Ok(super::forward::carry_json(&s, &t, to, path, &req, prefer).await);
        }
    }
    let row = s.app.save_snapshot(&t, &req, !respond_async).await?;
    Ok(Json(snapshot_view(&row)).into_response())
}

#[utoipa::path(get, path = "/snapshots/{name}",
    responses((status = 200, body = SnapshotResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn get(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<Json<SnapshotResponse>, ApiError> {
    Ok(Json(snapshot_view(&s.app.snapshot(&t, &name)?)))
}

#[utoipa::path(delete, path = "/snapshots/{name}",
    responses((status = 204), (status = 404, body = islo_api::ErrorResponse),
              (status = 409, body = islo_api::ErrorResponse)))]
pub async fn delete(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    s.app.delete_snapshot(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/snapshots/{name}/export",
    responses((status = 200, description = "extension: the snapshot as an OCI image archive (application/x-tar)"),
              (status = 404, body = islo_api::ErrorResponse)))]
pub async fn export(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
) -> Result<impl IntoResponse, ApiError> {
    let file = s.app.export_snapshot(&t, &name).await?;
    Ok((
        [(header::CONTENT_TYPE, "application/x-tar")],
        super::file_body(file),
    ))
}

#[utoipa::path(post, path = "/snapshots/import", params(ImportSnapshotQuery),
    request_body(content = Vec<u8>, content_type = "application/x-tar", description = "an OCI image archive"),
    responses((status = 200, body = SnapshotResponse), (status = 409, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn import(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Query(q): Query<ImportSnapshotQuery>,
    body: Body,
) -> Result<Json<SnapshotResponse>, ApiError> {
    let tmp = tempfile::tempfile_in(s.app.scratch_dir()).map_err(AppError::io("scratch file"))?;
    let mut out = tokio::fs::File::from_std(tmp.try_clone().map_err(AppError::io("scratch file"))?);
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| AppError::Invalid(format!("reading the archive: {e}")))?;
        let before = received;
        received += chunk.len() as u64;
        if received > MAX_LAYER_BYTES {
            return Err(AppError::Validation(format!(
                "the archive is larger than {MAX_LAYER_BYTES} bytes, the most a snapshot holds"
            ))
            .into());
        }
        if before >> 26 != received >> 26 {
            s.app.ensure_room()?;
        }
        out.write_all(&chunk)
            .await
            .map_err(AppError::io("storing the archive"))?;
    }
    out.flush()
        .await
        .map_err(AppError::io("storing the archive"))?;
    let mut tmp = tmp;
    std::io::Seek::rewind(&mut tmp).map_err(AppError::io("scratch file"))?;
    let trust = q.trust_memory == Some(true);
    let row = s.app.import_snapshot(&t, &q.name, tmp, trust).await?;
    Ok(Json(snapshot_view(&row)))
}
