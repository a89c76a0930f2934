//! Incoming webhook calls.

use islo_api::{
    CreateWebhookRequest, DeliveriesQuery, IncomingWebhook, UpdateWebhookRequest,
    WebhookDeliveryDetail, WebhookDeliverySummary,
};

use crate::{Client, ClientError, seg};

impl Client {
    pub async fn webhooks(&self) -> Result<Vec<IncomingWebhook>, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/webhooks/incoming"))
            .await
    }

    pub async fn webhook(&self, id: &str) -> Result<IncomingWebhook, ClientError> {
        let path = format!("/webhooks/incoming/{}", seg(id));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }

    pub async fn create_webhook(
        &self,
        req: &CreateWebhookRequest,
    ) -> Result<IncomingWebhook, ClientError> {
        self.json(
            self.req(reqwest::Method::POST, "/webhooks/incoming")
                .json(req),
        )
        .await
    }

    pub async fn update_webhook(
        &self,
        id: &str,
        req: &UpdateWebhookRequest,
    ) -> Result<IncomingWebhook, ClientError> {
        let path = format!("/webhooks/incoming/{}", seg(id));
        self.json(self.req(reqwest::Method::PATCH, &path).json(req))
            .await
    }

    pub async fn delete_webhook(&self, id: &str) -> Result<(), ClientError> {
        let path = format!("/webhooks/incoming/{}", seg(id));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    pub async fn webhook_deliveries(
        &self,
        id: &str,
        q: &DeliveriesQuery,
    ) -> Result<Vec<WebhookDeliverySummary>, ClientError> {
        let path = format!("/webhooks/incoming/{}/deliveries", seg(id));
        self.json(self.req(reqwest::Method::GET, &path).query(q))
            .await
    }

    pub async fn webhook_delivery(
        &self,
        id: &str,
        event: &str,
    ) -> Result<WebhookDeliveryDetail, ClientError> {
        let path = format!("/webhooks/incoming/{}/deliveries/{}", seg(id), seg(event));
        self.json(self.req(reqwest::Method::GET, &path)).await
    }
}
