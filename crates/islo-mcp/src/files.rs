//! File tools, over islod's files API (paths stay inside the sandbox; writes are atomic).

use base64::Engine;
use serde_json::json;

use crate::args::{Encoding, ListDirectory, ReadFile, WriteFile};
use crate::output::content;
use crate::{IsloMcp, ToolError, ToolResult};

pub(crate) const DEFAULT_READ_BYTES: usize = 256 * 1024;
/// The most one read returns (a model's context is the real limit).
const MAX_READ_BYTES: usize = 8 << 20;

fn absolute(path: &str) -> Result<(), ToolError> {
    if path.starts_with('/') {
        Ok(())
    } else {
        Err(ToolError::Failed(format!(
            "`path` must be absolute (start with /), got {path:?}"
        )))
    }
}

impl IsloMcp {
    pub(crate) async fn write_file(&self, a: WriteFile) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        absolute(&a.path)?;
        let data = match a.encoding.unwrap_or_default() {
            Encoding::Utf8 => a.content.into_bytes(),
            Encoding::Base64 => base64::engine::general_purpose::STANDARD
                .decode(a.content.trim())
                .map_err(|e| ToolError::Failed(format!("`content` is not base64: {e}")))?,
        };
        let n = data.len();
        self.client.write_file(&a.sandbox, &a.path, data).await?;
        Ok(json!({ "path": a.path, "bytes_written": n }))
    }

    pub(crate) async fn read_file(&self, a: ReadFile) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        absolute(&a.path)?;
        let max = a
            .max_bytes
            .unwrap_or(DEFAULT_READ_BYTES)
            .min(MAX_READ_BYTES);
        let got = self.client.read_file(&a.sandbox, &a.path, max).await?;
        let truncated = (got.data.len() as u64) < got.size;
        let (text, encoding) = content(got.data, a.encoding == Some(Encoding::Base64));
        Ok(json!({
            "path": a.path,
            "content": text,
            "encoding": encoding,
            "size": got.size,
            "truncated": truncated,
        }))
    }

    pub(crate) async fn list_directory(&self, a: ListDirectory) -> ToolResult {
        self.policy.allow("sandbox", &a.sandbox)?;
        absolute(&a.path)?;
        let list = self.client.list_files(&a.sandbox, &a.path).await?;
        serde_json::to_value(list).map_err(|e| ToolError::Failed(e.to_string()))
    }
}
