//! File transfer handlers: single files and gzipped tar archives of directories.

use axum::extract::{Multipart, Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use axum::{Extension, Json};
use islo_api::{FilePathQuery, FileUploadStatusResponse};
use tokio::io::AsyncWriteExt;

use super::HttpState;
use super::error::ApiError;
use crate::app::{AppError, Tenant};

/// Read and drop the rest of a body, so that a refusal reaches a client still sending it
/// (instead of a broken pipe).
async fn drain(mut mp: Multipart) {
    while let Ok(Some(mut field)) = mp.next_field().await {
        while let Ok(Some(_)) = field.chunk().await {}
    }
}

/// The `file` field of a multipart body, written to `out`; bytes written.
async fn receive(mut mp: Multipart, out: &mut tokio::fs::File) -> Result<u64, AppError> {
    let bad = |e: axum::extract::multipart::MultipartError| {
        AppError::Invalid(format!("reading the upload: {e}"))
    };
    while let Some(mut field) = mp.next_field().await.map_err(bad)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut n = 0u64;
        while let Some(chunk) = field.chunk().await.map_err(bad)? {
            out.write_all(&chunk)
                .await
                .map_err(|e| AppError::FileOperation(format!("writing: {e}")))?;
            n += chunk.len() as u64;
        }
        out.flush()
            .await
            .map_err(|e| AppError::FileOperation(format!("writing: {e}")))?;
        return Ok(n);
    }
    Err(AppError::Validation(
        "the multipart body has no `file` field".into(),
    ))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/files", params(FilePathQuery),
    responses((status = 200, description = "the file's bytes"), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn download(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<FilePathQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let (file, len) = s
        .app
        .awake_files_root(&t, &name)
        .await?
        .read(&q.path)
        .map_err(AppError::from)?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        super::file_body(file),
    ))
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/files", params(FilePathQuery),
    request_body(content_type = "multipart/form-data", description = "field `file`"),
    responses((status = 200, body = FileUploadStatusResponse), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn upload(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<FilePathQuery>,
    mp: Multipart,
) -> Result<Json<FileUploadStatusResponse>, ApiError> {
    let opened = s
        .app
        .awake_files_root(&t, &name)
        .await
        .and_then(|r| r.create(&q.path, 0o644).map_err(AppError::from));
    let (writer, file) = match opened.and_then(|f| Ok((f.try_clone()?, f))) {
        Ok(f) => f,
        Err(e) => {
            drain(mp).await;
            return Err(e.into());
        }
    };
    // Written beside its name and put in place whole: an upload cut short keeps the old file.
    let n = receive(mp, &mut tokio::fs::File::from_std(writer)).await?;
    crate::fault::point("upload.received");
    tokio::task::spawn_blocking(move || file.commit().map_err(AppError::from)).await??;
    Ok(Json(FileUploadStatusResponse {
        status: "success".into(),
        written: Some(n),
    }))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/files-list", params(FilePathQuery),
    responses((status = 200, body = islo_api::FileListResponse), (status = 404, body = islo_api::ErrorResponse)))]
/// A directory's entries (extension).
pub async fn list(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<FilePathQuery>,
) -> Result<Json<islo_api::FileListResponse>, ApiError> {
    s.app.awake(&t, &name).await?;
    let app = s.app.clone();
    Ok(Json(
        tokio::task::spawn_blocking(move || app.list_files(&t, &name, &q.path)).await??,
    ))
}

#[utoipa::path(get, path = "/sandboxes/{sandbox_name}/files-archive", params(FilePathQuery),
    responses((status = 200, description = "the directory as a tar.gz"), (status = 404, body = islo_api::ErrorResponse)))]
pub async fn download_archive(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<FilePathQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let root = s.app.awake_files_root(&t, &name).await?;
    let scratch = s.app.scratch_dir();
    let file = tokio::task::spawn_blocking(move || {
        let mut f = tempfile::tempfile_in(scratch).map_err(AppError::io("scratch file"))?;
        root.tar_dir(&q.path, &mut f)?;
        std::io::Seek::rewind(&mut f).map_err(AppError::io("scratch file"))?;
        Ok::<_, AppError>(f)
    })
    .await??;
    Ok((
        [(header::CONTENT_TYPE, "application/gzip")],
        super::file_body(file),
    ))
}

#[utoipa::path(post, path = "/sandboxes/{sandbox_name}/files-archive", params(FilePathQuery),
    request_body(content_type = "multipart/form-data", description = "field `file`: a tar.gz"),
    responses((status = 200, body = FileUploadStatusResponse), (status = 404, body = islo_api::ErrorResponse),
              (status = 422, body = islo_api::ErrorResponse)))]
pub async fn upload_archive(
    State(s): State<HttpState>,
    Extension(t): Extension<Tenant>,
    Path(name): Path<String>,
    Query(q): Query<FilePathQuery>,
    mp: Multipart,
) -> Result<Json<FileUploadStatusResponse>, ApiError> {
    let root = match s.app.awake_files_root(&t, &name).await {
        Ok(r) => r,
        Err(e) => {
            drain(mp).await;
            return Err(e.into());
        }
    };
    let tmp = tempfile::tempfile_in(s.app.scratch_dir()).map_err(AppError::io("scratch file"))?;
    let mut out = tokio::fs::File::from_std(tmp.try_clone().map_err(AppError::io("scratch file"))?);
    receive(mp, &mut out).await?;
    let (written, _) = tokio::task::spawn_blocking(move || {
        let mut tmp = tmp;
        std::io::Seek::rewind(&mut tmp).map_err(AppError::io("scratch file"))?;
        root.untar_into(&q.path, std::io::BufReader::new(tmp))
            .map_err(AppError::from)
    })
    .await??;
    Ok(Json(FileUploadStatusResponse {
        status: "success".into(),
        written: Some(written),
    }))
}
