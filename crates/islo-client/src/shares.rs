//! Share calls.

use islo_api::{CreateShareRequest, ShareRequestRecord, ShareResponse};

use crate::{Client, ClientError, seg};

impl Client {
    pub async fn shares(&self, sandbox: &str) -> Result<Vec<ShareResponse>, ClientError> {
        let path = format!("/sandboxes/{}/shares", seg(sandbox));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }

    pub async fn create_share(
        &self,
        sandbox: &str,
        req: &CreateShareRequest,
    ) -> Result<ShareResponse, ClientError> {
        let path = format!("/sandboxes/{}/shares", seg(sandbox));
        self.json(self.req(reqwest::Method::POST, &path).json(req))
            .await
    }

    /// Revoke by id (`sh_…`) or by URL.
    pub async fn revoke_share(&self, sandbox: &str, id_or_url: &str) -> Result<(), ClientError> {
        let path = format!("/sandboxes/{}/shares/{}", seg(sandbox), seg(id_or_url));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    pub async fn share_requests(
        &self,
        sandbox: &str,
        id: &str,
        limit: u32,
    ) -> Result<Vec<ShareRequestRecord>, ClientError> {
        let path = format!("/sandboxes/{}/shares/{}/requests", seg(sandbox), seg(id));
        self.json(
            self.req(reqwest::Method::GET, &path)
                .query(&[("limit", limit)]),
        )
        .await
    }
}
