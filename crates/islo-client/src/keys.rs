//! API key calls, and raw authenticated calls (`islo api`).

use islo_api::{ApiKeyResponse, CreateApiKeyRequest, CreatedApiKeyResponse};

use crate::{Client, ClientError, seg};

impl Client {
    pub async fn api_keys(&self) -> Result<Vec<ApiKeyResponse>, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/api-keys")).await
    }

    pub async fn create_api_key(
        &self,
        req: &CreateApiKeyRequest,
    ) -> Result<CreatedApiKeyResponse, ClientError> {
        self.json(self.req(reqwest::Method::POST, "/api-keys").json(req))
            .await
    }

    /// Switch a key off (`false`) or on.
    pub async fn set_api_key_active(
        &self,
        id: &str,
        on: bool,
    ) -> Result<ApiKeyResponse, ClientError> {
        let verb = if on { "activate" } else { "deactivate" };
        let path = format!("/api-keys/{}/{verb}", seg(id));
        self.json(self.req(reqwest::Method::POST, &path)).await
    }

    pub async fn delete_api_key(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/api-keys/{}", seg(id));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    /// Any call, authenticated as this client is: `(status, body)`, whatever the status.
    pub async fn raw(
        &self,
        method: &str,
        path_and_query: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| ClientError::Decode(format!("{method:?} is not an HTTP method")))?;
        let path = if path_and_query.starts_with('/') {
            path_and_query.to_string()
        } else {
            format!("/{path_and_query}")
        };
        let mut r = self.req(method, &path);
        if let Some(b) = body {
            r = r
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(b);
        }
        let resp = r.send().await.map_err(|e| {
            if e.is_connect() {
                ClientError::Transport {
                    endpoint: self.endpoint.to_string(),
                    detail: e.to_string(),
                }
            } else {
                ClientError::interrupted(&e)
            }
        })?;
        let status = resp.status().as_u16();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::interrupted(&e))?;
        Ok((status, bytes.to_vec()))
    }
}
