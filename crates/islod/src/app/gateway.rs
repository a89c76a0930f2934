//! Gateway profiles and rules: the tenant's policy objects, validated and kept consistent
//! (one default profile; the default and profiles in use cannot be removed), and the log of
//! the gateway's decisions.

use islo_api::{
    GatewayEventResponse, GatewayEventsQuery, GatewayProfileDetailResponse, GatewayProfileRequest,
    GatewayProfileResponse, GatewayRuleRequest, GatewayRuleResponse, ReorderRulesRequest,
    RuleAction,
};

use super::{App, AppError, Tenant};
use crate::store::{Binding, EventFilter, EventScope, StoreError, now_rfc3339};
use islo_gateway::rules;

fn valid_name(n: &str) -> Result<(), AppError> {
    let ok = (1..=64).contains(&n.len())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "invalid profile name {n:?}: use up to 64 letters, digits, '-', '_' or '.'"
        )))
    }
}

impl App {
    /// A profile by id or name.
    pub fn gateway_profile(
        &self,
        t: &Tenant,
        which: &str,
    ) -> Result<GatewayProfileResponse, AppError> {
        self.store
            .gateway_profile(&t.id, which)?
            .ok_or_else(|| AppError::NotFound(format!("gateway profile {which}")))
    }

    pub fn gateway_profiles(&self, t: &Tenant) -> Result<Vec<GatewayProfileResponse>, AppError> {
        Ok(self.store.gateway_profiles(&t.id)?)
    }

    pub fn gateway_profile_detail(
        &self,
        t: &Tenant,
        which: &str,
    ) -> Result<GatewayProfileDetailResponse, AppError> {
        let profile = self.gateway_profile(t, which)?;
        let rules = self.store.gateway_rules(&profile.id)?;
        Ok(GatewayProfileDetailResponse { profile, rules })
    }

    /// Create (`existing` `None`) or update a profile.
    pub fn put_gateway_profile(
        &self,
        t: &Tenant,
        existing: Option<&str>,
        req: &GatewayProfileRequest,
    ) -> Result<GatewayProfileResponse, AppError> {
        let now = now_rfc3339();
        let mut p = match existing {
            Some(which) => self.gateway_profile(t, which)?,
            None => {
                let name = req
                    .name
                    .clone()
                    .ok_or_else(|| AppError::Validation("name is required".into()))?;
                self.store.gateway_profiles(&t.id)?;
                GatewayProfileResponse {
                    id: uuid::Uuid::now_v7().to_string(),
                    name,
                    description: None,
                    default_action: RuleAction::Allow,
                    internet_enabled: true,
                    is_default: false,
                    tls_inspection: Default::default(),
                    rule_count: Some(0),
                    created_at: Some(now.clone()),
                    updated_at: None,
                }
            }
        };
        if existing.is_some() && p.is_default && req.is_default == Some(false) {
            return Err(AppError::Conflict(format!(
                "{} is the default profile; make another one the default instead",
                p.name
            )));
        }
        if let Some(n) = &req.name {
            valid_name(n)?;
            p.name = n.clone();
        }
        p.description = req.description.clone().or(p.description);
        p.default_action = req.default_action.unwrap_or(p.default_action);
        p.internet_enabled = req.internet_enabled.unwrap_or(p.internet_enabled);
        p.is_default = req.is_default.unwrap_or(p.is_default);
        p.tls_inspection = req.tls_inspection.unwrap_or(p.tls_inspection);
        p.updated_at = Some(now);
        match self.store.put_gateway_profile(&t.id, &p) {
            Err(StoreError::NameTaken(n)) => Err(AppError::Conflict(format!(
                "gateway profile {n} already exists"
            ))),
            other => other.map_err(AppError::from),
        }?;
        self.network_changed(None);
        self.gateway_profile(t, &p.id)
    }

    /// Remove a profile that is neither the default nor bound to a sandbox.
    pub fn delete_gateway_profile(&self, t: &Tenant, which: &str) -> Result<(), AppError> {
        let p = self.gateway_profile(t, which)?;
        if p.is_default {
            return Err(AppError::Conflict(format!(
                "{} is the default profile; make another one the default first",
                p.name
            )));
        }
        let users = self
            .store
            .sandboxes_bound_to(Binding::GatewayProfile, &p.id)?;
        if !users.is_empty() {
            return Err(AppError::Conflict(format!(
                "gateway profile {} is used by sandbox(es) {}",
                p.name,
                users.join(", ")
            )));
        }
        self.store.delete_gateway_profile(&p.id)?;
        self.network_changed(None);
        Ok(())
    }

    /// Add a rule (`rule_id` `None`) or change one.
    pub fn put_gateway_rule(
        &self,
        t: &Tenant,
        which: &str,
        rule_id: Option<&str>,
        req: &GatewayRuleRequest,
    ) -> Result<GatewayRuleResponse, AppError> {
        let p = self.gateway_profile(t, which)?;
        let existing = self.store.gateway_rules(&p.id)?;
        let now = now_rfc3339();
        let mut r = match rule_id {
            Some(id) => existing
                .iter()
                .find(|r| r.id == id)
                .cloned()
                .ok_or_else(|| {
                    AppError::NotFound(format!("rule {id} of gateway profile {}", p.name))
                })?,
            None => GatewayRuleResponse {
                id: uuid::Uuid::now_v7().to_string(),
                priority: existing.iter().map(|r| r.priority).max().unwrap_or(0) + 10,
                host_pattern: req
                    .host_pattern
                    .clone()
                    .ok_or_else(|| AppError::Validation("host_pattern is required".into()))?,
                path_pattern: None,
                methods: None,
                action: RuleAction::Allow,
                rate_limit_rpm: None,
                provider_key: None,
                auth_strategy: None,
                created_at: Some(now.clone()),
                updated_at: None,
            },
        };
        if let Some(h) = &req.host_pattern {
            r.host_pattern = h.clone();
        }
        r.path_pattern = req.path_pattern.clone().or(r.path_pattern);
        r.methods = req
            .methods
            .clone()
            .map(|ms| ms.iter().map(|m| m.to_ascii_uppercase()).collect())
            .or(r.methods);
        r.action = req.action.unwrap_or(r.action);
        r.priority = req.priority.unwrap_or(r.priority);
        r.rate_limit_rpm = req.rate_limit_rpm.or(r.rate_limit_rpm);
        r.provider_key = req.provider_key.clone().or(r.provider_key);
        r.auth_strategy = req.auth_strategy.clone().or(r.auth_strategy);
        if r.provider_key.is_some() && r.auth_strategy.is_none() {
            r.auth_strategy = Some(islo_api::AuthStrategy {
                mode: islo_api::AuthMode::Bearer,
                ..Default::default()
            });
        }
        r.updated_at = Some(now);
        rules::validate(&r).map_err(AppError::Validation)?;
        self.store.put_gateway_rule(&p.id, &r)?;
        self.network_changed(None);
        Ok(r)
    }

    pub fn delete_gateway_rule(
        &self,
        t: &Tenant,
        which: &str,
        rule_id: &str,
    ) -> Result<(), AppError> {
        let p = self.gateway_profile(t, which)?;
        if !self.store.delete_gateway_rule(&p.id, rule_id)? {
            return Err(AppError::NotFound(format!(
                "rule {rule_id} of gateway profile {}",
                p.name
            )));
        }
        self.network_changed(None);
        Ok(())
    }

    /// Give rules new priorities in one step; all must belong to the profile.
    pub fn reorder_gateway_rules(
        &self,
        t: &Tenant,
        which: &str,
        req: &ReorderRulesRequest,
    ) -> Result<Vec<GatewayRuleResponse>, AppError> {
        let p = self.gateway_profile(t, which)?;
        let mut rules = self.store.gateway_rules(&p.id)?;
        for e in &req.rules {
            let r = rules
                .iter_mut()
                .find(|r| r.id == e.rule_id)
                .ok_or_else(|| {
                    AppError::NotFound(format!("rule {} of gateway profile {}", e.rule_id, p.name))
                })?;
            r.priority = e.priority;
        }
        for r in &rules {
            self.store.put_gateway_rule(&p.id, r)?;
        }
        self.network_changed(None);
        Ok(self.store.gateway_rules(&p.id)?)
    }

    /// A sandbox's gateway decisions (live by name, or by id after deletion).
    pub fn gateway_events(
        &self,
        t: &Tenant,
        sandbox: &str,
        q: &GatewayEventsQuery,
    ) -> Result<Vec<GatewayEventResponse>, AppError> {
        let row = self.sandbox_for_logs(t, sandbox)?;
        let filter = event_filter(q)?;
        Ok(self
            .store
            .gateway_events(EventScope::Sandbox(&row.id), &filter)?)
    }

    /// The decisions of every sandbox of `t` (the dashboard's live stream).
    pub fn tenant_gateway_events(
        &self,
        t: &Tenant,
        q: &GatewayEventsQuery,
    ) -> Result<Vec<GatewayEventResponse>, AppError> {
        let filter = event_filter(q)?;
        Ok(self
            .store
            .gateway_events(EventScope::Tenant(&t.id), &filter)?)
    }
}

fn event_filter(q: &GatewayEventsQuery) -> Result<EventFilter, AppError> {
    Ok(EventFilter {
        after_id: q.after_id,
        since: super::logs::since(&q.since)?,
        limit: q.limit.unwrap_or(100).clamp(1, 1000),
    })
}
