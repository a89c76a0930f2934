//! Gateway profile and rule calls (profiles by name or id).

use islo_api::{
    GatewayProfileDetailResponse, GatewayProfileRequest, GatewayProfileResponse,
    GatewayRuleRequest, GatewayRuleResponse, ReorderRulesRequest,
};

use crate::{Client, ClientError, seg};

fn profile_path(which: &str) -> String {
    format!("/gateway/profiles/{}", seg(which))
}

impl Client {
    pub async fn gateway_profiles(&self) -> Result<Vec<GatewayProfileResponse>, ClientError> {
        self.json(self.req(reqwest::Method::GET, "/gateway/profiles"))
            .await
    }

    pub async fn gateway_profile(
        &self,
        which: &str,
    ) -> Result<GatewayProfileDetailResponse, ClientError> {
        self.json(self.req(reqwest::Method::GET, &profile_path(which)))
            .await
    }

    pub async fn create_gateway_profile(
        &self,
        req: &GatewayProfileRequest,
    ) -> Result<GatewayProfileResponse, ClientError> {
        self.json(
            self.req(reqwest::Method::POST, "/gateway/profiles")
                .json(req),
        )
        .await
    }

    pub async fn update_gateway_profile(
        &self,
        which: &str,
        req: &GatewayProfileRequest,
    ) -> Result<GatewayProfileResponse, ClientError> {
        self.json(
            self.req(reqwest::Method::PATCH, &profile_path(which))
                .json(req),
        )
        .await
    }

    pub async fn delete_gateway_profile(&self, which: &str) -> Result<(), ClientError> {
        self.send(self.req(reqwest::Method::DELETE, &profile_path(which)))
            .await
            .map(drop)
    }

    pub async fn add_gateway_rule(
        &self,
        which: &str,
        req: &GatewayRuleRequest,
    ) -> Result<GatewayRuleResponse, ClientError> {
        let path = format!("{}/rules", profile_path(which));
        self.json(self.req(reqwest::Method::POST, &path).json(req))
            .await
    }

    pub async fn update_gateway_rule(
        &self,
        which: &str,
        rule: &str,
        req: &GatewayRuleRequest,
    ) -> Result<GatewayRuleResponse, ClientError> {
        let path = format!("{}/rules/{}", profile_path(which), seg(rule));
        self.json(self.req(reqwest::Method::PATCH, &path).json(req))
            .await
    }

    pub async fn delete_gateway_rule(&self, which: &str, rule: &str) -> Result<(), ClientError> {
        let path = format!("{}/rules/{}", profile_path(which), seg(rule));
        self.send(self.req(reqwest::Method::DELETE, &path))
            .await
            .map(drop)
    }

    pub async fn reorder_gateway_rules(
        &self,
        which: &str,
        req: &ReorderRulesRequest,
    ) -> Result<Vec<GatewayRuleResponse>, ClientError> {
        let path = format!("{}/rules/reorder", profile_path(which));
        self.json(self.req(reqwest::Method::POST, &path).json(req))
            .await
    }
}
