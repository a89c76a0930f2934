//! Snapshot calls.

use std::path::Path;

use futures_util::StreamExt;
use islo_api::{CreateSnapshotRequest, PaginatedSnapshotResponse, SnapshotResponse};
use tokio::io::AsyncWriteExt;

use crate::{Client, ClientError, seg};

impl Client {
    /// Save a snapshot; `respond_async` answers at once with a `saving` one.
    pub async fn create_snapshot(
        &self,
        req: &CreateSnapshotRequest,
        respond_async: bool,
    ) -> Result<SnapshotResponse, ClientError> {
        let mut r = self.req(reqwest::Method::POST, "/snapshots/").json(req);
        if respond_async {
            r = r.header("Prefer", "respond-async");
        }
        self.json(r).await
    }

    pub async fn list_snapshots(
        &self,
        limit: Option<u32>,
        offset: Option<u32>,
    ) -> Result<PaginatedSnapshotResponse, ClientError> {
        let q = islo_api::ListSnapshotsQuery { limit, offset };
        self.json(self.req(reqwest::Method::GET, "/snapshots/").query(&q))
            .await
    }

    pub async fn get_snapshot(&self, name: &str) -> Result<SnapshotResponse, ClientError> {
        let path = format!("/snapshots/{}", seg(name));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }

    pub async fn delete_snapshot(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/snapshots/{}", seg(name));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// Download a snapshot as an OCI image archive into `dest`; `progress` gets the bytes
    /// so far. Returns the size.
    pub async fn export_snapshot(
        &self,
        name: &str,
        dest: &Path,
        progress: &dyn Fn(u64),
    ) -> Result<u64, ClientError> {
        let path = format!("/snapshots/{}/export", seg(name));
        let resp = self.send(self.req(reqwest::Method::GET, &path)).await?;
        let io = |e: std::io::Error| ClientError::Decode(format!("{}: {e}", dest.display()));
        let mut out = tokio::fs::File::create(dest).await.map_err(io)?;
        let mut stream = resp.bytes_stream();
        let mut n = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ClientError::interrupted(&e))?;
            out.write_all(&chunk).await.map_err(io)?;
            n += chunk.len() as u64;
            progress(n);
        }
        out.flush().await.map_err(io)?;
        Ok(n)
    }

    /// Upload an OCI image archive as snapshot `name`.
    pub async fn import_snapshot(
        &self,
        name: &str,
        archive: &Path,
        trust_memory: bool,
    ) -> Result<SnapshotResponse, ClientError> {
        let file = tokio::fs::File::open(archive)
            .await
            .map_err(|e| ClientError::Decode(format!("{}: {e}", archive.display())))?;
        let len = file.metadata().await.map(|m| m.len()).unwrap_or(0);
        let stream = futures_util::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 256 * 1024];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok::<_, std::io::Error>(buf), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let r = self
            .req(reqwest::Method::POST, "/snapshots/import")
            .query(&[("name", name)])
            .query(&[("trust_memory", if trust_memory { "true" } else { "false" })])
            .header("content-type", "application/x-tar")
            .header("content-length", len)
            .body(reqwest::Body::wrap_stream(stream));
        self.json(r).await
    }
}
