//! Environment calls.

use islo_api::{
    CreateEnvironmentRequest, EnvironmentListItem, EnvironmentResponse, UpdateEnvironmentRequest,
};

use crate::{Client, ClientError, seg};

impl Client {
    pub async fn environments(&self) -> Result<Vec<EnvironmentListItem>, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/environments"))
            .await
    }

    pub async fn environment(&self, reference: &str) -> Result<EnvironmentResponse, ClientError> {
        let path = format!("/environments/{}", seg(reference));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }

    pub async fn create_environment(
        &self,
        req: &CreateEnvironmentRequest,
    ) -> Result<EnvironmentResponse, ClientError> {
        self.json(self.req(reqwest::Method::POST, "/environments").json(req))
            .await
    }

    pub async fn update_environment(
        &self,
        reference: &str,
        req: &UpdateEnvironmentRequest,
    ) -> Result<EnvironmentResponse, ClientError> {
        let path = format!("/environments/{}", seg(reference));
        self.json(self.req(reqwest::Method::PATCH, &path).json(req))
            .await
    }

    pub async fn delete_environment(&self, reference: &str) -> Result<(), ClientError> {
        let path = format!("/environments/{}", seg(reference));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    pub async fn set_default_environment(
        &self,
        reference: &str,
    ) -> Result<EnvironmentResponse, ClientError> {
        let path = format!("/environments/{}/default", seg(reference));
        self.json(self.req(reqwest::Method::POST, &path)).await
    }
}
