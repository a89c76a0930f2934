//! Fields of a create request beyond the sandbox's shape: `init`, `init_capabilities`,
//! `cache_key`, `lifecycle`. Each is met, recorded or refused with what is wrong; none is
//! dropped without a word.

use islo_api::CreateSandboxRequest;

use super::AppError;

/// Capabilities every sandbox has here: islod serves SSH and the gateway itself.
const MET: [&str; 4] = ["ssh", "core-gateway-proxy", "terminal", "devtools"];

fn capability(what: &str, c: &str) -> Result<(), AppError> {
    match c {
        c if MET.contains(&c) => Ok(()),
        "docker" => Err(AppError::Validation(format!(
            "{what}: docker inside sandboxes is not supported by islod"
        ))),
        other => Err(AppError::Validation(format!(
            "{what}: unknown capability {other:?} (ssh, docker)"
        ))),
    }
}

fn init(v: &serde_json::Value) -> Result<(), AppError> {
    let bad = |m: &str| AppError::Validation(format!("init: {m}"));
    let kind = v
        .get("type")
        .and_then(|t| t.as_str())
        .ok_or_else(|| bad("expected {\"type\": \"minimal\" | \"full\" | \"custom\"}"))?;
    match kind {
        "minimal" | "full" => Ok(()),
        "custom" => {
            let caps = match v.get("capabilities") {
                None | Some(serde_json::Value::Null) => Vec::new(),
                Some(serde_json::Value::Array(a)) => a.clone(),
                Some(_) => return Err(bad("capabilities must be a list")),
            };
            for c in caps {
                let c = c.as_str().ok_or_else(|| bad("capabilities are strings"))?;
                capability("init.capabilities", c)?;
            }
            match v.get("await_ready") {
                None | Some(serde_json::Value::Null | serde_json::Value::Bool(_)) => Ok(()),
                Some(_) => Err(bad("await_ready must be true or false")),
            }
        }
        other => Err(bad(&format!(
            "unknown type {other:?} (minimal, full, custom)"
        ))),
    }
}

/// Check what a create request asks beyond the sandbox's shape.
pub(super) fn check(req: &CreateSandboxRequest) -> Result<(), AppError> {
    if let Some(v) = req.init.as_ref().filter(|v| !v.is_null()) {
        init(v)?;
    }
    for c in req.init_capabilities.iter().flatten() {
        capability("init_capabilities", c)?;
    }
    if req.cache_key.as_ref().is_some_and(|k| k.len() > 255) {
        return Err(AppError::Validation(
            "cache_key must be at most 255 characters".into(),
        ));
    }
    if let Some(l) = &req.lifecycle {
        lifecycle(l)?;
    }
    Ok(())
}

/// Longest period a lifecycle policy takes: ten years.
const LIFECYCLE_MAX_SECS: u64 = 10 * 365 * 86_400;

fn lifecycle(l: &islo_api::LifecyclePolicy) -> Result<(), AppError> {
    for (what, v) in [
        ("pause_after_idle", l.pause_after_idle),
        ("pause_after", l.pause_after),
        ("delete_after", l.delete_after),
    ] {
        if let Some(v) = v
            && !(1..=LIFECYCLE_MAX_SECS).contains(&v)
        {
            return Err(AppError::Validation(format!(
                "lifecycle.{what} must be between 1 and {LIFECYCLE_MAX_SECS} seconds (omit it \
                 for never), not {v}"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn req(init: Option<serde_json::Value>) -> CreateSandboxRequest {
        CreateSandboxRequest {
            init,
            ..Default::default()
        }
    }

    #[test]
    fn init_is_met_or_refused_naming_the_field() {
        for ok in [
            json!({"type": "minimal"}),
            json!({"type": "full"}),
            json!({"type": "custom", "capabilities": ["ssh"], "await_ready": true}),
        ] {
            check(&req(Some(ok))).unwrap();
        }
        check(&req(Some(serde_json::Value::Null))).unwrap();
        for (bad, want) in [
            (
                json!({"type": "custom", "capabilities": ["docker"]}),
                "docker",
            ),
            (json!({"type": "huge"}), "unknown type"),
            (json!("minimal"), "expected"),
        ] {
            let e = check(&req(Some(bad))).unwrap_err().to_string();
            assert!(e.starts_with("init") && e.contains(want), "{e}");
        }
        let mut r = req(None);
        r.init_capabilities = Some(vec!["docker".into()]);
        assert!(
            check(&r)
                .unwrap_err()
                .to_string()
                .starts_with("init_capabilities")
        );
        let mut r = req(None);
        r.lifecycle = Some(islo_api::LifecyclePolicy {
            delete_after: Some(0),
            ..Default::default()
        });
        assert!(
            check(&r)
                .unwrap_err()
                .to_string()
                .starts_with("lifecycle.delete_after")
        );
        r.lifecycle = Some(islo_api::LifecyclePolicy {
            pause_after_idle: Some(60),
            auto_resume: Some(islo_api::AutoResume::OnActivity),
            ..Default::default()
        });
        assert!(check(&r).is_ok());
        let mut r = req(None);
        r.cache_key = Some("k".repeat(256));
        assert!(check(&r).unwrap_err().to_string().starts_with("cache_key"));
    }
}
