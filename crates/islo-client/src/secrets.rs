//! Secret calls and the gateway's decision log.

use islo_api::{
    GatewayEventResponse, GatewayEventsQuery, GatewayEventsResponse, SecretRequest, SecretResponse,
    SecretsResponse,
};

use crate::{Client, ClientError, seg};

impl Client {
    pub async fn secrets(&self) -> Result<Vec<SecretResponse>, ClientError> {
        let r: SecretsResponse = self
            .json(self.req(reqwest::Method::GET, "/secrets"))
            .await?;
        Ok(r.secrets)
    }

    pub async fn put_secret(
        &self,
        name: &str,
        req: &SecretRequest,
    ) -> Result<SecretResponse, ClientError> {
        let path = format!("/secrets/{}", seg(name));
        self.json(self.req(reqwest::Method::PUT, &path).json(req))
            .await
    }

    pub async fn delete_secret(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("/secrets/{}", seg(name));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    pub async fn gateway_events(
        &self,
        sandbox: &str,
        q: &GatewayEventsQuery,
    ) -> Result<Vec<GatewayEventResponse>, ClientError> {
        let path = format!("/sandboxes/{}/gateway-events", seg(sandbox));
        let r: GatewayEventsResponse = self
            .json(self.req(reqwest::Method::GET, &path).query(q))
            .await?;
        Ok(r.events)
    }
}
