//! A sandbox's files as resources: `islo://sandboxes/{sandbox}/files/{path}`, for clients
//! that let a user attach a file to a conversation.

use rmcp::ErrorData;
use rmcp::model::{ReadResourceResult, ResourceContents, ResourceTemplate};

use crate::IsloMcp;
use crate::output::content;

const SCHEME: &str = "islo://sandboxes/";
/// The most of one file a resource read returns.
const MAX_BYTES: usize = 1 << 20;

pub fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("islo://sandboxes/{sandbox}/files/{+path}", "sandbox-file")
            .with_title("A file in a sandbox")
            .with_description(
                "The content of a file in a running sandbox (its first MiB): text, or base64 for \
                 binary content. Example: islo://sandboxes/demo/files/workspace/main.py",
            ),
    ]
}

/// `(sandbox, absolute path)` of a resource URI.
fn parse(uri: &str) -> Option<(&str, String)> {
    let rest = uri.strip_prefix(SCHEME)?;
    let (sandbox, path) = rest.split_once("/files/")?;
    if sandbox.is_empty() || sandbox.contains('/') || path.is_empty() {
        return None;
    }
    Some((sandbox, format!("/{path}")))
}

impl IsloMcp {
    pub(crate) async fn read_file_resource(
        &self,
        uri: &str,
    ) -> Result<ReadResourceResult, ErrorData> {
        let (sandbox, path) = parse(uri).ok_or_else(|| {
            ErrorData::invalid_params(
                format!("{uri:?} is not a sandbox file: use islo://sandboxes/NAME/files/PATH"),
                None,
            )
        })?;
        self.policy
            .allow("sandbox", sandbox)
            .map_err(|e| ErrorData::invalid_params(e.to_string(), None))?;
        let got = self
            .client
            .read_file(sandbox, &path, MAX_BYTES)
            .await
            .map_err(|e| ErrorData::resource_not_found(e.to_string(), None))?;
        let contents = match content(got.data, false) {
            (text, "utf8") => ResourceContents::text(text, uri),
            (b64, _) => ResourceContents::blob(b64, uri),
        };
        Ok(ReadResourceResult::new(vec![contents]))
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn uris_name_a_sandbox_and_an_absolute_path() {
        assert_eq!(
            parse("islo://sandboxes/demo/files/workspace/a.py"),
            Some(("demo", "/workspace/a.py".to_string()))
        );
        assert_eq!(parse("islo://sandboxes//files/x"), None);
        assert_eq!(parse("islo://sandboxes/demo/files/"), None);
        assert_eq!(parse("file:///etc/passwd"), None);
    }
}
