//! Environments: named sets of variables and secrets, one default per tenant. A sandbox made
//! with one reads it at each command, so an update reaches running sandboxes (as secrets do).

use islo_api::{
    AuthMode, AuthStrategy, CreateEnvironmentRequest, EntryKind, EntryPlacement,
    EnvironmentEntryInput, EnvironmentEntryResponse, EnvironmentListItem, EnvironmentResponse,
    EnvironmentRuleResponse, UpdateEnvironmentRequest,
};

use super::{App, AppError, Tenant};
use crate::store::{EntryRow, EnvRow, SandboxRow, now_rfc3339};

fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

fn valid_name(n: &str) -> Result<(), AppError> {
    let ok = (1..=64).contains(&n.len())
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "name {n:?} must be 1-64 letters, digits, '-', '_' or '.', starting with a letter or digit"
        )))
    }
}

fn valid_key(k: &str) -> Result<(), AppError> {
    let ok = (1..=128).contains(&k.len())
        && k.bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "entries: key {k:?} must be an env var name (letters, digits, _; not starting with a digit)"
        )))
    }
}

fn field(key: &str, what: String) -> AppError {
    AppError::Validation(format!("entries: {key}: {what}"))
}

/// The rule of a `gateway_injected` secret, checked; bearer unless it says otherwise.
fn checked_rule(
    e: &EnvironmentEntryInput,
    id: String,
) -> Result<EnvironmentRuleResponse, AppError> {
    let r = e.rule.as_ref().ok_or_else(|| {
        field(
            &e.key,
            "a gateway_injected secret needs a rule with host_pattern".into(),
        )
    })?;
    if r.rate_limit_rpm.is_some() || r.content_filter.is_some() {
        return Err(field(
            &e.key,
            "rule.rate_limit_rpm and rule.content_filter are not supported on an environment's \
             rule; put them on a gateway profile's rule"
                .into(),
        ));
    }
    let auth = r.auth_strategy.clone().unwrap_or(AuthStrategy {
        mode: AuthMode::Bearer,
        name: None,
        username: None,
        format: None,
    });
    let as_rule = islo_api::GatewayRuleResponse {
        id: id.clone(),
        priority: 0,
        host_pattern: r.host_pattern.clone(),
        path_pattern: r.path_pattern.clone(),
        methods: r.methods.clone(),
        action: islo_api::RuleAction::Allow,
        rate_limit_rpm: None,
        provider_key: Some(e.key.clone()),
        auth_strategy: Some(auth.clone()),
        created_at: None,
        updated_at: None,
    };
    islo_gateway::rules::validate(&as_rule).map_err(|m| field(&e.key, format!("rule.{m}")))?;
    Ok(EnvironmentRuleResponse {
        id,
        host_pattern: r.host_pattern.clone(),
        path_pattern: r.path_pattern.clone(),
        methods: r.methods.clone(),
        auth_strategy: Some(auth),
    })
}

/// Check entries and make rows; a secret without a value keeps `old`'s of the same key.
fn entry_rows(
    inputs: &[EnvironmentEntryInput],
    old: &[EntryRow],
) -> Result<Vec<EntryRow>, AppError> {
    let now = now_rfc3339();
    let mut rows: Vec<EntryRow> = Vec::new();
    for e in inputs {
        valid_key(&e.key)?;
        if rows.iter().any(|r| r.key == e.key) {
            return Err(field(&e.key, "given twice".into()));
        }
        let prev = old.iter().find(|o| o.key == e.key && o.kind == e.kind);
        let placement = match (e.kind, e.placement) {
            (EntryKind::Variable, None | Some(EntryPlacement::SandboxEnv)) => {
                EntryPlacement::SandboxEnv
            }
            (EntryKind::Variable, Some(_)) => {
                return Err(field(
                    &e.key,
                    "a variable's placement is sandbox_env".into(),
                ));
            }
            (EntryKind::Secret, Some(p)) => p,
            (EntryKind::Secret, None) => {
                return Err(field(
                    &e.key,
                    "a secret needs placement sandbox_env or gateway_injected".into(),
                ));
            }
        };
        let value = match (&e.value, prev) {
            (Some(v), _) => v.clone(),
            (None, Some(p)) if e.kind == EntryKind::Secret => p.value.clone().unwrap_or_default(),
            (None, _) => return Err(field(&e.key, "value is required".into())),
        };
        if e.kind == EntryKind::Secret && value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(field(
                &e.key,
                "a secret's value has control characters".into(),
            ));
        }
        let id = prev.map_or_else(|| new_id("ent"), |p| p.id.clone());
        let rule = match placement {
            EntryPlacement::GatewayInjected => Some(checked_rule(e, new_id("rule"))?),
            EntryPlacement::SandboxEnv if e.rule.is_some() => {
                return Err(field(
                    &e.key,
                    "a rule only goes with placement gateway_injected".into(),
                ));
            }
            EntryPlacement::SandboxEnv => None,
        };
        rows.push(EntryRow {
            id,
            key: e.key.clone(),
            kind: e.kind,
            placement,
            value: Some(value),
            rule,
            created_at: prev.map_or_else(|| now.clone(), |p| p.created_at.clone()),
            updated_at: now.clone(),
        });
    }
    Ok(rows)
}

fn entry_view(e: EntryRow) -> EnvironmentEntryResponse {
    let secret = e.kind == EntryKind::Secret;
    EnvironmentEntryResponse {
        id: e.id,
        key: e.key,
        kind: e.kind,
        placement: e.placement,
        has_value: secret.then(|| e.value.as_deref().is_some_and(|v| !v.is_empty())),
        value: if secret { None } else { e.value },
        rule: e.rule,
        created_at: e.created_at,
        updated_at: e.updated_at,
    }
}

impl App {
    fn env_row(&self, t: &Tenant, reference: &str) -> Result<EnvRow, AppError> {
        self.store.environment(&t.id, reference)?.ok_or_else(|| {
            AppError::NotFound(format!(
                "environment {reference} (see `islo environment ls`)"
            ))
        })
    }

    fn env_view(&self, env: EnvRow) -> Result<EnvironmentResponse, AppError> {
        let entries = self.store.environment_entries(&env.id)?;
        Ok(EnvironmentResponse {
            id: env.id,
            name: env.name,
            is_default: env.is_default,
            entries: entries.into_iter().map(entry_view).collect(),
            created_at: env.created_at,
            updated_at: env.updated_at,
        })
    }

    pub fn list_environments(&self, t: &Tenant) -> Result<Vec<EnvironmentListItem>, AppError> {
        let mut out = Vec::new();
        for e in self.store.environments(&t.id)? {
            let entries = self.store.environment_entries(&e.id)?;
            let count = |k| entries.iter().filter(|x| x.kind == k).count() as u32;
            out.push(EnvironmentListItem {
                variable_count: count(EntryKind::Variable),
                secret_count: count(EntryKind::Secret),
                id: e.id,
                name: e.name,
                is_default: e.is_default,
                created_at: e.created_at,
                updated_at: e.updated_at,
            });
        }
        Ok(out)
    }

    pub fn get_environment(
        &self,
        t: &Tenant,
        reference: &str,
    ) -> Result<EnvironmentResponse, AppError> {
        self.env_view(self.env_row(t, reference)?)
    }

    pub fn create_environment(
        &self,
        t: &Tenant,
        req: &CreateEnvironmentRequest,
    ) -> Result<EnvironmentResponse, AppError> {
        valid_name(&req.name)?;
        let entries = entry_rows(req.entries.as_deref().unwrap_or_default(), &[])?;
        let now = now_rfc3339();
        let env = EnvRow {
            id: new_id("env"),
            tenant_id: t.id.clone(),
            name: req.name.clone(),
            is_default: req.is_default.unwrap_or(false),
            created_at: now.clone(),
            updated_at: now,
        };
        self.store
            .insert_environment(&env, &entries)
            .map_err(|e| match e {
                crate::store::StoreError::NameTaken(n) => {
                    AppError::Conflict(format!("an environment named {n} exists"))
                }
                e => e.into(),
            })?;
        self.network_changed(None);
        self.env_view(env)
    }

    pub fn update_environment(
        &self,
        t: &Tenant,
        reference: &str,
        req: &UpdateEnvironmentRequest,
    ) -> Result<EnvironmentResponse, AppError> {
        let mut env = self.env_row(t, reference)?;
        if let Some(n) = &req.name {
            valid_name(n)?;
            env.name.clone_from(n);
        }
        if let Some(d) = req.is_default {
            env.is_default = d;
        }
        let entries = match &req.entries {
            Some(inputs) => Some(entry_rows(
                inputs,
                &self.store.environment_entries(&env.id)?,
            )?),
            None => None,
        };
        self.store
            .update_environment(&env, entries.as_deref())
            .map_err(|e| match e {
                crate::store::StoreError::NameTaken(n) => {
                    AppError::Conflict(format!("an environment named {n} exists"))
                }
                e => e.into(),
            })?;
        self.network_changed(None);
        self.get_environment(t, &env.id)
    }

    pub fn set_default_environment(
        &self,
        t: &Tenant,
        reference: &str,
    ) -> Result<EnvironmentResponse, AppError> {
        let req = UpdateEnvironmentRequest {
            is_default: Some(true),
            ..Default::default()
        };
        self.update_environment(t, reference, &req)
    }

    pub fn delete_environment(&self, t: &Tenant, reference: &str) -> Result<(), AppError> {
        let env = self.env_row(t, reference)?;
        self.store.delete_environment(&t.id, &env.id)?;
        self.network_changed(None);
        Ok(())
    }

    /// The environment a new sandbox gets: the one named, else the tenant's default.
    pub(super) fn environment_for_create(
        &self,
        t: &Tenant,
        name: Option<&str>,
    ) -> Result<Option<String>, AppError> {
        Ok(match name {
            Some(n) => Some(self.env_row(t, n)?.id),
            None => self.store.default_environment(&t.id)?.map(|e| e.id),
        })
    }

    /// What `row`'s environment puts in a command's env: values of variables and
    /// `sandbox_env` secrets, placeholders of `gateway_injected` ones (networked sandboxes).
    pub(super) fn environment_env(&self, row: &SandboxRow) -> Vec<(String, String)> {
        let Some(env_id) = &row.stored.environment_id else {
            return Vec::new();
        };
        let entries = self
            .store
            .tenant_environment_entries(&row.tenant_id, env_id)
            .unwrap_or_default();
        let nonce = row.stored.gateway_nonce.as_deref();
        entries
            .into_iter()
            .filter_map(|e| match (e.placement, nonce) {
                (EntryPlacement::SandboxEnv, _) => Some((e.key, e.value.unwrap_or_default())),
                (EntryPlacement::GatewayInjected, Some(n)) => {
                    let name = crate::gateway::environment_secret_name(env_id, &e.key);
                    Some((
                        e.key,
                        format!("{}{name}", crate::gateway::placeholder_prefix(n)),
                    ))
                }
                (EntryPlacement::GatewayInjected, None) => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use islo_api::EnvironmentGatewayRule;

    fn input(
        kind: EntryKind,
        key: &str,
        value: Option<&str>,
        placement: Option<EntryPlacement>,
    ) -> EnvironmentEntryInput {
        EnvironmentEntryInput {
            kind,
            key: key.into(),
            value: value.map(Into::into),
            placement,
            rule: None,
        }
    }

    #[test]
    fn entries_are_checked_naming_the_key() {
        use EntryKind::*;
        use EntryPlacement::*;
        let bad = [
            (input(Variable, "1X", Some("v"), None), "key"),
            (input(Variable, "X", None, None), "value is required"),
            (
                input(Variable, "X", Some("v"), Some(GatewayInjected)),
                "sandbox_env",
            ),
            (input(Secret, "X", Some("v"), None), "needs placement"),
            (
                input(Secret, "X", Some("v"), Some(GatewayInjected)),
                "needs a rule",
            ),
            (
                input(Secret, "X", Some("a\nb"), Some(SandboxEnv)),
                "control",
            ),
        ];
        for (e, want) in bad {
            let err = entry_rows(&[e], &[]).unwrap_err().to_string();
            assert!(err.contains(want), "{err} lacks {want}");
        }
        let twice = [
            input(Variable, "X", Some("1"), None),
            input(Variable, "X", Some("2"), None),
        ];
        assert!(
            entry_rows(&twice, &[])
                .unwrap_err()
                .to_string()
                .contains("twice")
        );
        let mut g = input(Secret, "T", Some("s"), Some(GatewayInjected));
        g.rule = Some(EnvironmentGatewayRule {
            host_pattern: "api.example.com".into(),
            ..Default::default()
        });
        let rows = entry_rows(&[g.clone()], &[]).unwrap();
        let rule = rows[0].rule.as_ref().unwrap();
        assert_eq!(rule.auth_strategy.as_ref().unwrap().mode, AuthMode::Bearer);
        // A secret given again without its value keeps the stored one.
        g.value = None;
        let again = entry_rows(&[g.clone()], &rows).unwrap();
        assert_eq!(
            (again[0].value.as_deref(), &again[0].id),
            (Some("s"), &rows[0].id)
        );
        g.rule.as_mut().unwrap().rate_limit_rpm = Some(5);
        assert!(
            entry_rows(&[g], &rows)
                .unwrap_err()
                .to_string()
                .contains("not supported")
        );
    }

    #[test]
    fn secrets_are_never_shown() {
        let rows = entry_rows(
            &[input(
                EntryKind::Secret,
                "S",
                Some("hidden"),
                Some(EntryPlacement::SandboxEnv),
            )],
            &[],
        )
        .unwrap();
        let v = entry_view(rows[0].clone());
        assert_eq!((v.value, v.has_value), (None, Some(true)));
    }
}
