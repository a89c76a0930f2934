//! Gateway profiles and rules over the API: the tenant default, validation, ordering,
//! the default and in-use protections, tenancy, and binding sandboxes at creation.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking

mod common;

use common::*;
use islo_api::{GatewayProfileRequest, GatewayRuleRequest, ReorderRulesRequest, RulePriority};

fn profile(name: &str, default_action: &str) -> GatewayProfileRequest {
    GatewayProfileRequest {
        name: Some(name.into()),
        default_action: Some(islo_api::RuleAction::parse(default_action).unwrap()),
        ..Default::default()
    }
}

fn rule(host: &str, action: &str) -> GatewayRuleRequest {
    GatewayRuleRequest {
        host_pattern: Some(host.into()),
        action: Some(islo_api::RuleAction::parse(action).unwrap()),
        ..Default::default()
    }
}

fn status(e: ClientError) -> u16 {
    match e {
        ClientError::Api { status, .. } => status,
        other => panic!("not an API error: {other}"),
    }
}

#[tokio::test]
async fn profiles_rules_and_bindings() {
    let s = server().await;
    let (a, b) = (s.client("alpha"), s.client("beta"));
    let all = a.gateway_profiles().await.unwrap();
    assert_eq!(all.len(), 1);
    assert_eq!((all[0].name.as_str(), all[0].is_default), ("default", true));

    let strict = a
        .create_gateway_profile(&profile("strict", "deny"))
        .await
        .unwrap();
    assert_eq!(
        (strict.default_action.as_str(), strict.internet_enabled),
        ("deny", true)
    );
    assert_eq!(
        status(
            a.create_gateway_profile(&profile("strict", "deny"))
                .await
                .unwrap_err()
        ),
        409
    );
    // A word outside the set is refused with 422 naming it (the typed client cannot send one).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let resp = reqwest::Client::new()
        .post(format!("{}/gateway/profiles", s.tcp))
        .bearer_auth(s.key("alpha"))
        .json(&serde_json::json!({ "name": "x", "default_action": "maybe" }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("maybe"), "{v}");

    let gh = a
        .add_gateway_rule("strict", &rule("*.github.com", "allow"))
        .await
        .unwrap();
    let all_deny = a
        .add_gateway_rule("strict", &rule("*", "deny"))
        .await
        .unwrap();
    assert!(gh.priority < all_deny.priority, "new rules go last");
    let mut inject = rule("api.openai.com", "allow");
    inject.provider_key = Some("openai".into());
    let r = a.add_gateway_rule(&strict.id, &inject).await.unwrap();
    assert_eq!(
        r.auth_strategy.unwrap().mode,
        islo_api::AuthMode::Bearer,
        "bearer by default"
    );
    let mut bad = rule("*.x.com", "allow");
    bad.methods = Some(vec!["FETCH".into()]);
    let e = a.add_gateway_rule("strict", &bad).await.unwrap_err();
    assert!(e.to_string().contains("unknown method"), "{e}");

    // Reorder: the catch-all first.
    let order = ReorderRulesRequest {
        rules: vec![RulePriority {
            rule_id: all_deny.id.clone(),
            priority: 1,
        }],
    };
    let rules = a.reorder_gateway_rules("strict", &order).await.unwrap();
    assert_eq!(rules[0].id, all_deny.id);
    let detail = a.gateway_profile("strict").await.unwrap();
    assert_eq!(
        (detail.rules.len(), detail.profile.rule_count),
        (3, Some(3))
    );
    a.delete_gateway_rule("strict", &r.id).await.unwrap();
    assert_eq!(
        status(a.delete_gateway_rule("strict", &r.id).await.unwrap_err()),
        404
    );

    // Other tenants see none of it.
    assert_eq!(status(b.gateway_profile("strict").await.unwrap_err()), 404);
    assert_eq!(b.gateway_profiles().await.unwrap().len(), 1);

    // Sandboxes bind at creation: the default, or a named profile; unknown ones are refused.
    let sb = a.create_sandbox(&create("plain")).await.unwrap();
    assert_eq!(sb.gateway_profile_id.as_deref(), Some(all[0].id.as_str()));
    let mut req = create("strict-sb");
    req.gateway_profile = Some("strict".into());
    assert_eq!(
        a.create_sandbox(&req).await.unwrap().gateway_profile_id,
        Some(strict.id.clone())
    );
    req.name = Some("ghost-sb".into());
    req.gateway_profile = Some("ghost".into());
    assert_eq!(status(a.create_sandbox(&req).await.unwrap_err()), 404);
    assert!(
        a.get_sandbox("ghost-sb").await.is_err(),
        "nothing was created"
    );

    // The default moves; the default and profiles in use cannot be removed.
    let e = a.delete_gateway_profile("strict").await.unwrap_err();
    assert!(e.to_string().contains("strict-sb"), "{e}");
    let moved = GatewayProfileRequest {
        is_default: Some(true),
        ..Default::default()
    };
    a.update_gateway_profile("strict", &moved).await.unwrap();
    let now = a.gateway_profiles().await.unwrap();
    assert_eq!(now.iter().filter(|p| p.is_default).count(), 1);
    assert_eq!(
        status(a.delete_gateway_profile("strict").await.unwrap_err()),
        409
    );
    a.delete_sandbox("plain").await.unwrap();
    a.delete_gateway_profile("default").await.unwrap();
}
