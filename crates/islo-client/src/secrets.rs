//! Secret calls, the gateway's decision log, agent profiles and detached sessions.

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

impl Client {
    /// Agent profiles the server offers.
    pub async fn agents(&self) -> Result<Vec<islo_api::AgentProfile>, ClientError> {
        let r: islo_api::AgentProfilesResponse =
            self.json(self.req(reqwest::Method::GET, "/agents")).await?;
        Ok(r.agents)
    }

    /// Start a persistent session running a command, without attaching.
    pub async fn create_session(
        &self,
        sandbox: &str,
        req: &islo_api::CreateSessionRequest,
    ) -> Result<islo_api::CreateSessionResponse, ClientError> {
        let path = format!("/sandboxes/{}/sessions", seg(sandbox));
        self.json(self.req(reqwest::Method::POST, &path).json(req))
            .await
    }
}
