//! Secrets (kept for the gateway, never shown again).

use islo_api::{SecretRequest, SecretResponse};

use super::{App, AppError, Tenant};
use crate::store::SecretMeta;

fn valid_secret_name(n: &str) -> Result<(), AppError> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "secret name {n:?} must be 1-64 of a-z, 0-9, _ and - (e.g. github, openai, my-api)"
        )))
    }
}

fn valid_env_var(v: &str) -> Result<(), AppError> {
    let ok = v
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_uppercase() || b == b'_')
        && v.bytes()
            .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(AppError::Validation(format!(
            "env var {v:?} must be upper case letters, digits and _ (e.g. GITHUB_TOKEN)"
        )))
    }
}

impl App {
    /// Set a secret (its value is only ever handed to the gateway).
    pub fn put_secret(
        &self,
        t: &Tenant,
        name: &str,
        req: &SecretRequest,
    ) -> Result<SecretResponse, AppError> {
        valid_secret_name(name)?;
        let value = req.value.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            return Err(AppError::Validation("the secret's value is empty".into()));
        }
        if value.bytes().any(|b| b < 0x20 || b == 0x7f) {
            return Err(AppError::Validation(
                "the secret's value has control characters (it must fit in an HTTP header)".into(),
            ));
        }
        // What an agent's provider key needs is in the agent's profile; others have presets.
        let preset = self
            .settings
            .agents
            .iter()
            .find(|a| a.provider_key == name)
            .map(|a| SecretMeta {
                env_vars: a.local_env.clone().into_iter().collect(),
                hosts: a.hosts.clone(),
                auth_strategy: a.auth_strategy.clone(),
            })
            .unwrap_or_else(|| crate::gateway::preset(name));
        let meta = SecretMeta {
            env_vars: req.env_vars.clone().unwrap_or(preset.env_vars),
            auth_strategy: match (&req.auth_strategy, &req.hosts) {
                (Some(a), _) => Some(a.clone()),
                (None, None) => preset.auth_strategy,
                (None, Some(_)) => None,
            },
            hosts: req.hosts.clone().unwrap_or(preset.hosts),
        };
        for v in &meta.env_vars {
            valid_env_var(v)?;
        }
        for h in &meta.hosts {
            islo_gateway::rules::valid_host_pattern(h).map_err(AppError::Validation)?;
        }
        if let Some(a) = &meta.auth_strategy {
            islo_gateway::rules::validate_auth(a).map_err(AppError::Validation)?;
        }
        self.store.put_secret(&t.id, name, value, &meta)?;
        self.network_changed(None);
        self.secrets(t)?
            .into_iter()
            .find(|s| s.name == name)
            .ok_or_else(|| AppError::Internal(format!("secret {name} vanished")))
    }

    pub fn secrets(&self, t: &Tenant) -> Result<Vec<SecretResponse>, AppError> {
        Ok(self.store.secrets(&t.id)?)
    }

    pub fn delete_secret(&self, t: &Tenant, name: &str) -> Result<(), AppError> {
        if self.store.delete_secret(&t.id, name)? {
            self.network_changed(None);
            Ok(())
        } else {
            Err(AppError::NotFound(format!("secret {name}")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(valid_secret_name("github").is_ok());
        assert!(valid_secret_name("my-api_2").is_ok());
        assert!(valid_secret_name("GitHub").is_err());
        assert!(valid_secret_name("-x").is_err());
        assert!(valid_secret_name("").is_err());
        assert!(valid_env_var("GITHUB_TOKEN").is_ok());
        assert!(valid_env_var("1X").is_err());
        assert!(valid_env_var("a").is_err());
    }
}
