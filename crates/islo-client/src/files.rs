//! File transfer calls.

use std::path::Path;

use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::{Client, ClientError, seg};

fn io(path: &Path) -> impl Fn(std::io::Error) -> ClientError + '_ {
    move |e| ClientError::Decode(format!("{}: {e}", path.display()))
}

/// A local file as a streamed multipart part, reporting bytes sent.
async fn part(
    local: &Path,
    progress: std::sync::Arc<dyn Fn(u64) + Send + Sync>,
) -> Result<reqwest::multipart::Part, ClientError> {
    let file = tokio::fs::File::open(local).await.map_err(io(local))?;
    let len = file.metadata().await.map_err(io(local))?.len();
    let stream = futures_util::stream::unfold((file, 0u64), move |(mut f, sent)| {
        let progress = progress.clone();
        async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    progress(sent + n as u64);
                    Some((Ok::<_, std::io::Error>(buf), (f, sent + n as u64)))
                }
                Err(e) => Some((Err(e), (f, sent))),
            }
        }
    });
    let name = local
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    Ok(
        reqwest::multipart::Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
            .file_name(name),
    )
}

impl Client {
    /// A call on `…/{kind}?path=PATH` of `sandbox` (`files`, `files-archive`, `files-list`).
    fn file_req(
        &self,
        method: reqwest::Method,
        sandbox: &str,
        kind: &str,
        path: &str,
    ) -> reqwest::RequestBuilder {
        self.req(method, &format!("/sandboxes/{}/{kind}", seg(sandbox)))
            .query(&[("path", path)])
    }

    /// Upload `local` to `remote` (`…/files`, or `…/files-archive` when `archive`: a tar.gz
    /// unpacked into the directory `remote`).
    pub async fn upload(
        &self,
        sandbox: &str,
        remote: &str,
        local: &Path,
        archive: bool,
        progress: std::sync::Arc<dyn Fn(u64) + Send + Sync>,
    ) -> Result<islo_api::FileUploadStatusResponse, ClientError> {
        let kind = if archive { "files-archive" } else { "files" };
        let form = reqwest::multipart::Form::new().part("file", part(local, progress).await?);
        let r = self
            .file_req(reqwest::Method::POST, sandbox, kind, remote)
            .multipart(form);
        self.json(r).await
    }

    /// Download `remote` (a file, or with `archive` a directory as tar.gz) into `dest`;
    /// `progress` gets the bytes so far. Returns the size.
    pub async fn download(
        &self,
        sandbox: &str,
        remote: &str,
        dest: &Path,
        archive: bool,
        progress: &dyn Fn(u64),
    ) -> Result<u64, ClientError> {
        let kind = if archive { "files-archive" } else { "files" };
        let r = self.file_req(reqwest::Method::GET, sandbox, kind, remote);
        let resp = self.send(r).await?;
        let mut out = tokio::fs::File::create(dest).await.map_err(io(dest))?;
        let (mut stream, mut n) = (resp.bytes_stream(), 0u64);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::interrupted(&e))?;
            out.write_all(&chunk).await.map_err(io(dest))?;
            n += chunk.len() as u64;
            progress(n);
        }
        out.flush().await.map_err(io(dest))?;
        Ok(n)
    }
}

/// A file read into memory, up to a limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileBytes {
    /// The first bytes of the file (at most the limit asked for).
    pub data: Vec<u8>,
    /// The file's whole size.
    pub size: u64,
}

impl Client {
    /// The entries of directory `path` in `sandbox`.
    pub async fn list_files(
        &self,
        sandbox: &str,
        path: &str,
    ) -> Result<islo_api::FileListResponse, ClientError> {
        let r = self.file_req(reqwest::Method::GET, sandbox, "files-list", path);
        self.json(r).await
    }

    /// The first `max` bytes of file `path` in `sandbox`, and its size; the rest is not read.
    pub async fn read_file(
        &self,
        sandbox: &str,
        path: &str,
        max: usize,
    ) -> Result<FileBytes, ClientError> {
        let r = self.file_req(reqwest::Method::GET, sandbox, "files", path);
        let resp = self.send(r).await?;
        let size = resp.content_length().unwrap_or(0);
        let (mut stream, mut data) = (resp.bytes_stream(), Vec::new());
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::interrupted(&e))?;
            let room = max - data.len();
            data.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if data.len() >= max {
                break;
            }
        }
        let size = size.max(data.len() as u64);
        Ok(FileBytes { data, size })
    }

    /// Write `data` to file `path` in `sandbox` (replacing it whole).
    pub async fn write_file(
        &self,
        sandbox: &str,
        path: &str,
        data: Vec<u8>,
    ) -> Result<islo_api::FileUploadStatusResponse, ClientError> {
        let name = path.rsplit('/').next().unwrap_or("file").to_string();
        let part = reqwest::multipart::Part::bytes(data).file_name(name);
        let form = reqwest::multipart::Form::new().part("file", part);
        let r = self
            .file_req(reqwest::Method::POST, sandbox, "files", path)
            .multipart(form);
        self.json(r).await
    }
}
