//! Gateway profiles and rules.

use islo_api::{GatewayProfileResponse, GatewayRuleResponse, RuleAction, TlsInspection};
use rusqlite::{Row, params};

use super::{Store, StoreError, now_rfc3339};

const PROFILE: &str = "p.id, p.name, p.description, p.default_action, p.internet_enabled, p.is_default, \
     (SELECT COUNT(*) FROM gateway_rules r WHERE r.profile_id = p.id), p.created_at, p.updated_at, \
     p.tls_inspection";
const RULE: &str = "id, priority, host_pattern, path_pattern, methods, action, rate_limit_rpm, provider_key, \
     auth_strategy, created_at, updated_at";

fn profile(r: &Row<'_>) -> rusqlite::Result<GatewayProfileResponse> {
    Ok(GatewayProfileResponse {
        id: r.get(0)?,
        name: r.get(1)?,
        description: r.get(2)?,
        default_action: super::closed(r, 3, RuleAction::parse, "default action")?,
        internet_enabled: r.get(4)?,
        is_default: r.get(5)?,
        rule_count: Some(r.get::<_, i64>(6)? as u32),
        created_at: r.get(7)?,
        updated_at: r.get(8)?,
        tls_inspection: super::closed(r, 9, TlsInspection::parse, "TLS inspection")?,
    })
}

fn rule(r: &Row<'_>) -> rusqlite::Result<GatewayRuleResponse> {
    let json = |i: usize| -> rusqlite::Result<Option<String>> { r.get(i) };
    Ok(GatewayRuleResponse {
        id: r.get(0)?,
        priority: r.get(1)?,
        host_pattern: r.get(2)?,
        path_pattern: r.get(3)?,
        methods: json(4)?.and_then(|s| serde_json::from_str(&s).ok()),
        action: super::closed(r, 5, RuleAction::parse, "rule action")?,
        rate_limit_rpm: r.get(6)?,
        provider_key: r.get(7)?,
        auth_strategy: json(8)?.and_then(|s| serde_json::from_str(&s).ok()),
        created_at: r.get(9)?,
        updated_at: r.get(10)?,
    })
}

fn to_json<T: serde::Serialize>(v: &Option<T>) -> Option<String> {
    v.as_ref().and_then(|v| serde_json::to_string(v).ok())
}

impl Store {
    /// A tenant's profiles by name; the `default` one is made on first use.
    pub fn gateway_profiles(
        &self,
        tenant: &str,
    ) -> Result<Vec<GatewayProfileResponse>, StoreError> {
        self.write(|db| {
        let now = now_rfc3339();
        db.execute(
            "INSERT INTO gateway_profiles (id, tenant_id, name, description, default_action, internet_enabled, is_default, created_at, updated_at) \
             SELECT ?2, ?1, 'default', 'The tenant default profile', 'allow', 1, 1, ?3, ?3 \
             WHERE NOT EXISTS (SELECT 1 FROM gateway_profiles WHERE tenant_id = ?1)",
            params![tenant, uuid::Uuid::now_v7().to_string(), now],
        )?;
        let mut st = db.prepare(&format!(
            "SELECT {PROFILE} FROM gateway_profiles p WHERE p.tenant_id = ?1 ORDER BY p.name"
        ))?;
        let rows = st.query_map([tenant], profile)?;
        Ok(rows.collect::<Result<_, _>>()?)
    })
    }

    /// A profile by id or name.
    pub fn gateway_profile(
        &self,
        tenant: &str,
        id_or_name: &str,
    ) -> Result<Option<GatewayProfileResponse>, StoreError> {
        Ok(self
            .gateway_profiles(tenant)?
            .into_iter()
            .find(|p| p.id == id_or_name || p.name == id_or_name))
    }

    /// Insert or replace a profile; [`StoreError::NameTaken`] when the name is another's.
    pub fn put_gateway_profile(
        &self,
        tenant: &str,
        p: &GatewayProfileResponse,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        let tx = db;
        if p.is_default {
            tx.execute(
                "UPDATE gateway_profiles SET is_default = 0 WHERE tenant_id = ?1 AND id != ?2",
                params![tenant, p.id],
            )?;
        }
        let res = tx.execute(
            "INSERT INTO gateway_profiles (id, tenant_id, name, description, default_action, internet_enabled, is_default, created_at, updated_at, tls_inspection) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) \
             ON CONFLICT (id) DO UPDATE SET name = ?3, description = ?4, default_action = ?5, \
             internet_enabled = ?6, is_default = ?7, updated_at = ?9, tls_inspection = ?10",
            params![
                p.id, tenant, p.name, p.description, p.default_action.as_str(), p.internet_enabled,
                p.is_default, p.created_at, p.updated_at, p.tls_inspection.as_str()
            ],
        );
        match res {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                return Err(StoreError::NameTaken(p.name.clone()));
            }
            other => other?,
        };
        Ok(())
    })
    }

    pub fn delete_gateway_profile(&self, id: &str) -> Result<(), StoreError> {
        self.write(|db| {
            db.execute("DELETE FROM gateway_rules WHERE profile_id = ?1", [id])?;
            db.execute("DELETE FROM gateway_profiles WHERE id = ?1", [id])?;
            Ok(())
        })
    }

    /// Rules of a profile, by priority.
    pub fn gateway_rules(&self, profile_id: &str) -> Result<Vec<GatewayRuleResponse>, StoreError> {
        let db = self.db();
        let mut st = db.prepare(&format!(
            "SELECT {RULE} FROM gateway_rules WHERE profile_id = ?1 ORDER BY priority, created_at, id"
        ))?;
        let rows = st.query_map([profile_id], rule)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Insert or replace a rule.
    pub fn put_gateway_rule(
        &self,
        profile_id: &str,
        r: &GatewayRuleResponse,
    ) -> Result<(), StoreError> {
        self.write(|db| {
        db.execute(
            "INSERT INTO gateway_rules (id, profile_id, priority, host_pattern, path_pattern, methods, action, \
             rate_limit_rpm, provider_key, auth_strategy, created_at, updated_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
             ON CONFLICT (id) DO UPDATE SET priority = ?3, host_pattern = ?4, path_pattern = ?5, methods = ?6, \
             action = ?7, rate_limit_rpm = ?8, provider_key = ?9, auth_strategy = ?10, updated_at = ?12",
            params![
                r.id, profile_id, r.priority, r.host_pattern, r.path_pattern, to_json(&r.methods), r.action.as_str(),
                r.rate_limit_rpm, r.provider_key, to_json(&r.auth_strategy), r.created_at, r.updated_at
            ],
        )?;
        Ok(())
    })
    }

    /// Remove a rule; whether it was there.
    pub fn delete_gateway_rule(&self, profile_id: &str, rule_id: &str) -> Result<bool, StoreError> {
        self.write(|db| {
            Ok(db.execute(
                "DELETE FROM gateway_rules WHERE profile_id = ?1 AND id = ?2",
                params![profile_id, rule_id],
            )? > 0)
        })
    }
}
