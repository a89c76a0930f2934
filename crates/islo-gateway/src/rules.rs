//! Deciding a request against a profile: rules by priority, first match wins, else the
//! profile's default action. Host patterns are globs, case-insensitive, matched against the
//! host without its port; path patterns are globs over the path without its query, in the
//! normal form of [`crate::path::normalize`]: `*` stays within one segment, `**` crosses
//! them. Deny rules match paths case-insensitively (a server may not care about case, and a
//! deny must hold for `/Admin` too); allow rules match exactly, so they never widen.

use globset::{GlobBuilder, GlobMatcher};
use islo_api::{AuthMode, AuthStrategy, GatewayProfileResponse, GatewayRuleResponse, RuleAction};

/// Methods a rule may name.
const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE",
];

/// What to do with a request, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// The rule that decided; `None`: the profile's default (or internet off).
    pub rule_id: Option<String>,
    pub reason: String,
}

/// `Host` as a rule sees it: lower case, no port, no trailing dot.
pub fn normalize_host(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    let h = match h.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest).to_string(),
        None if h.matches(':').count() == 1 => h.split(':').next().unwrap_or(&h).to_string(),
        None => h,
    };
    h.trim_end_matches('.').to_string()
}

fn host_glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(&normalize_host(pattern))
        .case_insensitive(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("host_pattern {pattern:?}: {e}"))
}

fn path_glob(pattern: &str, any_case: bool) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .case_insensitive(any_case)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("path_pattern {pattern:?}: {e}"))
}

/// Check a rule's fields; the message says what is wrong.
pub fn validate(r: &GatewayRuleResponse) -> Result<(), String> {
    valid_host_pattern(&r.host_pattern).map_err(|e| format!("host_pattern: {e}"))?;
    if let Some(p) = &r.path_pattern {
        if !p.starts_with('/') {
            return Err(format!("path_pattern {p:?} must start with /"));
        }
        path_glob(p, false)?;
    }
    for m in r.methods.iter().flatten() {
        if !METHODS.contains(&m.as_str()) {
            return Err(format!("unknown method {m:?}: use {}", METHODS.join(", ")));
        }
    }
    if r.rate_limit_rpm == Some(0) {
        return Err("rate_limit_rpm must be at least 1".into());
    }
    match (&r.provider_key, &r.auth_strategy) {
        (None, Some(_)) => Err("auth_strategy needs a provider_key (the secret to inject)".into()),
        (_, Some(a)) => validate_auth(a),
        _ => Ok(()),
    }
}

/// Check a host glob (`*.github.com`, `*`).
pub fn valid_host_pattern(p: &str) -> Result<(), String> {
    if p.trim().is_empty() || p.contains('/') {
        return Err(format!(
            "host pattern {p:?} must be a host glob such as *.github.com"
        ));
    }
    host_glob(p).map(drop)
}

/// Check an auth strategy's fields.
pub fn validate_auth(a: &AuthStrategy) -> Result<(), String> {
    match a.mode {
        AuthMode::Bearer => Ok(()),
        AuthMode::Basic if a.username.is_some() => Ok(()),
        AuthMode::Basic => Err("auth_strategy basic needs a username".into()),
        AuthMode::Header
            if a.name.as_deref().is_some_and(|n| {
                !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            }) =>
        {
            Ok(())
        }
        AuthMode::Header => Err("auth_strategy header needs a header name".into()),
    }
}

/// A secret injected toward its own hosts (besides rules naming it): compiled.
#[derive(Debug)]
pub struct SecretRoute {
    pub name: String,
    hosts: Vec<GlobMatcher>,
    /// Only these paths (normal form) and methods, when set (an environment secret's rule).
    path: Option<GlobMatcher>,
    methods: Vec<String>,
    pub auth: Option<AuthStrategy>,
}

impl SecretRoute {
    pub fn new(name: &str, hosts: &[String], auth: Option<AuthStrategy>) -> Self {
        Self {
            name: name.to_string(),
            hosts: hosts.iter().filter_map(|h| host_glob(h).ok()).collect(),
            path: None,
            methods: Vec::new(),
            auth,
        }
    }

    /// Narrow to requests whose path matches `path` and whose method is one of `methods`
    /// (empty: any). A pattern that does not compile matches nothing.
    pub fn scoped(mut self, path: Option<&str>, methods: &[String]) -> Self {
        if let Some(p) = path {
            match path_glob(p, false) {
                Ok(g) => self.path = Some(g),
                Err(_) => self.hosts.clear(),
            }
        }
        self.methods = methods.iter().map(|m| m.to_ascii_uppercase()).collect();
        self
    }

    /// Whether requests to `host` get this secret.
    pub fn matches(&self, host: &str) -> bool {
        let host = normalize_host(host);
        self.hosts.iter().any(|g| g.is_match(&host))
    }

    /// Whether a request (`path` in its normal form) gets this secret.
    pub fn applies(&self, method: &str, host: &str, path: &str) -> bool {
        self.matches(host)
            && self.path.as_ref().is_none_or(|p| p.is_match(path))
            && (self.methods.is_empty()
                || self.methods.iter().any(|m| m.eq_ignore_ascii_case(method)))
    }
}

/// A rule with its patterns compiled.
#[derive(Debug)]
struct Compiled {
    rule: GatewayRuleResponse,
    host: Option<GlobMatcher>,
    path: Option<GlobMatcher>,
}

/// A profile and its rules, compiled once and ordered by priority: what the proxy applies to
/// every request.
#[derive(Debug)]
pub struct Policy {
    profile_name: String,
    internet_enabled: bool,
    default_action: RuleAction,
    tls_inspection: islo_api::TlsInspection,
    rules: Vec<Compiled>,
}

impl Policy {
    /// Compile `profile` and its `rules` (any order). A rule whose pattern does not compile
    /// (it was validated when stored, so only a corrupted store) never matches.
    pub fn compile(profile: &GatewayProfileResponse, rules: &[GatewayRuleResponse]) -> Self {
        let mut ordered: Vec<&GatewayRuleResponse> = rules.iter().collect();
        ordered.sort_by_key(|r| r.priority);
        Self {
            profile_name: profile.name.clone(),
            internet_enabled: profile.internet_enabled,
            default_action: profile.default_action,
            tls_inspection: profile.tls_inspection,
            rules: ordered
                .into_iter()
                .map(|r| Compiled {
                    rule: r.clone(),
                    host: host_glob(&r.host_pattern).ok(),
                    path: r
                        .path_pattern
                        .as_deref()
                        .and_then(|p| path_glob(p, r.action == RuleAction::Deny).ok()),
                })
                .collect(),
        }
    }

    /// Whether some TLS flows may go undecrypted (`tls_inspection: when_needed`).
    pub fn may_skip_inspection(&self) -> bool {
        self.tls_inspection == islo_api::TlsInspection::WhenNeeded
    }

    /// The decision on a TLS flow to `host` taken without decrypting it, when the profile
    /// allows that (`tls_inspection: when_needed`) and the decision needs nothing but the
    /// host: the first rule for the host names no path or method, and an allowing one has
    /// neither rate limit nor credential. `None`: the flow must be inspected. (Secrets that go
    /// to hosts of their own are the caller's to check.)
    pub fn decide_uninspected(&self, host: &str) -> Option<Decision> {
        if self.tls_inspection != islo_api::TlsInspection::WhenNeeded {
            return None;
        }
        if !self.internet_enabled {
            return Some(self.internet_off());
        }
        let host = normalize_host(host);
        let first = self
            .rules
            .iter()
            .find(|c| c.host.as_ref().is_some_and(|g| g.is_match(&host)));
        let Some(c) = first else {
            // No rule for the host: the default decides, whatever the request.
            return Some(self.by_default());
        };
        let r = &c.rule;
        let by_request = r.path_pattern.is_some() || r.methods.is_some();
        let needs_request =
            r.rate_limit_rpm.is_some() || r.provider_key.is_some() || r.auth_strategy.is_some();
        if by_request || (r.action == RuleAction::Allow && needs_request) {
            return None;
        }
        Some(self.by_rule(r))
    }

    fn internet_off(&self) -> Decision {
        Decision {
            allowed: false,
            rule_id: None,
            reason: format!(
                "internet access is off in gateway profile {}",
                self.profile_name
            ),
        }
    }

    fn by_rule(&self, r: &GatewayRuleResponse) -> Decision {
        Decision {
            allowed: r.action == RuleAction::Allow,
            rule_id: Some(r.id.clone()),
            reason: format!(
                "rule {} ({} {}) of gateway profile {}",
                r.id, r.action, r.host_pattern, self.profile_name
            ),
        }
    }

    fn by_default(&self) -> Decision {
        Decision {
            allowed: self.default_action == RuleAction::Allow,
            rule_id: None,
            reason: format!(
                "default action {} of gateway profile {}",
                self.default_action, self.profile_name
            ),
        }
    }

    /// Decide `method host path`; the rule that matched, if any, comes along.
    pub fn decide(
        &self,
        method: &str,
        host: &str,
        path: &str,
    ) -> (Decision, Option<&GatewayRuleResponse>) {
        if !self.internet_enabled {
            return (self.internet_off(), None);
        }
        let host = normalize_host(host);
        let path = path.split('?').next().unwrap_or(path);
        let method = method.to_ascii_uppercase();
        for c in &self.rules {
            let r = &c.rule;
            let host_ok = c.host.as_ref().is_some_and(|g| g.is_match(&host));
            let path_ok = match (&r.path_pattern, &c.path) {
                (None, _) => true,
                (Some(_), Some(g)) => g.is_match(path),
                (Some(_), None) => false,
            };
            let method_ok = r.methods.as_ref().is_none_or(|ms| ms.contains(&method));
            if host_ok && path_ok && method_ok {
                return (self.by_rule(r), Some(r));
            }
        }
        (self.by_default(), None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compile and decide in one step.
    fn decide(
        profile: &GatewayProfileResponse,
        rules: &[GatewayRuleResponse],
        method: &str,
        host: &str,
        path: &str,
    ) -> Decision {
        Policy::compile(profile, rules).decide(method, host, path).0
    }

    fn profile(default: &str) -> GatewayProfileResponse {
        GatewayProfileResponse {
            id: "p".into(),
            name: "strict".into(),
            description: None,
            default_action: RuleAction::parse(default).unwrap(),
            internet_enabled: true,
            is_default: false,
            tls_inspection: Default::default(),
            rule_count: None,
            created_at: None,
            updated_at: None,
        }
    }

    fn rule(id: &str, prio: i64, host: &str, action: &str) -> GatewayRuleResponse {
        GatewayRuleResponse {
            id: id.into(),
            priority: prio,
            host_pattern: host.into(),
            path_pattern: None,
            methods: None,
            action: RuleAction::parse(action).unwrap(),
            rate_limit_rpm: None,
            provider_key: None,
            auth_strategy: None,
            created_at: None,
            updated_at: None,
        }
    }

    #[test]
    fn only_host_decisions_skip_inspection_and_only_when_the_profile_says_so() {
        let mut p = profile("deny");
        let mut scoped = rule("scoped", 1, "api.example.com", "allow");
        scoped.path_pattern = Some("/v1/*".into());
        let mut limited = rule("limited", 2, "slow.example.com", "allow");
        limited.rate_limit_rpm = Some(10);
        let mut keyed = rule("keyed", 3, "llm.example.com", "allow");
        keyed.provider_key = Some("KEY".into());
        let mut get_only = rule("get", 4, "ro.example.com", "deny");
        get_only.methods = Some(vec!["POST".into()]);
        let rules = [
            scoped,
            limited,
            keyed,
            get_only,
            rule("plain", 5, "*.github.com", "allow"),
            rule("blocked", 6, "evil.example.com", "deny"),
        ];
        assert_eq!(
            Policy::compile(&p, &rules).decide_uninspected("api.github.com"),
            None,
            "`always` (the default) inspects everything"
        );
        p.tls_inspection = islo_api::TlsInspection::WhenNeeded;
        let pol = Policy::compile(&p, &rules);
        let d = pol.decide_uninspected("API.GitHub.com:443").unwrap();
        assert!(d.allowed && d.rule_id.as_deref() == Some("plain"));
        let d = pol.decide_uninspected("evil.example.com").unwrap();
        assert!(!d.allowed && d.rule_id.as_deref() == Some("blocked"));
        let d = pol.decide_uninspected("elsewhere.org").unwrap();
        assert!(!d.allowed && d.rule_id.is_none(), "the default, deny");
        for needs in [
            "api.example.com",
            "slow.example.com",
            "llm.example.com",
            "ro.example.com",
        ] {
            assert_eq!(pol.decide_uninspected(needs), None, "{needs}");
        }
        p.internet_enabled = false;
        let off = Policy::compile(&p, &rules).decide_uninspected("api.example.com");
        assert!(
            off.is_some_and(|d| !d.allowed),
            "internet off denies on the host"
        );
    }

    #[test]
    fn scoped_secret_routes_match_path_and_method_too() {
        let r = SecretRoute::new("s", &["api.example.com".into()], None)
            .scoped(Some("/v1/**"), &["post".into()]);
        assert!(r.applies("POST", "API.example.com:443", "/v1/chat"));
        assert!(!r.applies("GET", "api.example.com", "/v1/chat"));
        assert!(!r.applies("POST", "api.example.com", "/v2/chat"));
        assert!(!r.applies("POST", "other.com", "/v1/chat"));
        let any = SecretRoute::new("s", &["*.example.com".into()], None).scoped(None, &[]);
        assert!(any.applies("DELETE", "x.example.com", "/"));
        let broken = SecretRoute::new("s", &["a.com".into()], None).scoped(Some("[x"), &[]);
        assert!(!broken.applies("GET", "a.com", "/"));
    }

    #[test]
    fn hosts_normalize() {
        assert_eq!(normalize_host("API.GitHub.com:443"), "api.github.com");
        assert_eq!(normalize_host("[::1]:8080"), "::1");
        assert_eq!(normalize_host("example.org."), "example.org");
    }

    #[test]
    fn first_match_wins_then_the_default() {
        let p = profile("deny");
        let mut rules = vec![
            rule("a", 10, "*.github.com", "allow"),
            rule("b", 20, "*", "deny"),
        ];
        let d = decide(&p, &rules, "get", "API.GITHUB.COM:443", "/x");
        assert_eq!((d.allowed, d.rule_id.as_deref()), (true, Some("a")));
        assert!(!decide(&p, &rules, "GET", "example.com", "/").allowed);
        // Reordering changes the outcome.
        rules[1].priority = 5;
        let d = decide(&p, &rules, "GET", "api.github.com", "/");
        assert_eq!((d.allowed, d.rule_id.as_deref()), (false, Some("b")));
        let d = decide(&p, &[], "GET", "x.org", "/");
        assert!(!d.allowed && d.rule_id.is_none() && d.reason.contains("default action deny"));
        let mut off = profile("allow");
        off.internet_enabled = false;
        assert!(!decide(&off, &rules, "GET", "api.github.com", "/").allowed);
    }

    #[test]
    fn paths_and_methods_narrow_a_rule() {
        let p = profile("deny");
        let mut r = rule("api", 1, "api.example.com", "allow");
        r.path_pattern = Some("/v1/**".into());
        r.methods = Some(vec!["GET".into()]);
        let rules = [r];
        assert!(decide(&p, &rules, "GET", "api.example.com", "/v1/a/b?q=1").allowed);
        assert!(!decide(&p, &rules, "POST", "api.example.com", "/v1/a").allowed);
        assert!(!decide(&p, &rules, "GET", "api.example.com", "/v2/a").allowed);
    }

    #[test]
    fn one_star_stays_in_its_segment_and_denies_hold_in_any_case() {
        let p = profile("allow");
        let mut public = rule("public", 1, "api.example.com", "allow");
        public.path_pattern = Some("/public/*".into());
        public.provider_key = Some("vendor".into());
        let mut admin = rule("admin", 2, "api.example.com", "deny");
        admin.path_pattern = Some("/admin/**".into());
        let mut private = rule("private", 3, "api.example.com", "deny");
        private.path_pattern = Some("/private".into());
        let rules = [public, admin, private];
        let policy = Policy::compile(&p, &rules);
        let rule_of = |path: &str| {
            let path = crate::path::normalize(path).unwrap().matched;
            policy.decide("GET", "api.example.com", &path).0.rule_id
        };
        assert_eq!(rule_of("/public/a").as_deref(), Some("public"));
        // The credential-scoped allow does not reach deeper, nor other spellings of its case.
        assert_eq!(rule_of("/public/a/b"), None);
        assert_eq!(rule_of("/PUBLIC/a"), None);
        for p in [
            "/private",
            "/public/../private",
            "/%70rivate",
            "//private",
            "/./private",
            "/Private",
        ] {
            assert_eq!(rule_of(p).as_deref(), Some("private"), "{p}");
        }
        for p in ["/admin/x", "/Admin/x/y", "/public/../ADMIN/x"] {
            assert_eq!(rule_of(p).as_deref(), Some("admin"), "{p}");
        }
    }

    #[test]
    fn bad_rules_say_what_is_wrong() {
        let ok = rule("r", 1, "*.example.com", "allow");
        validate(&ok).unwrap();
        let bad = |f: &dyn Fn(&mut GatewayRuleResponse)| {
            let mut r = ok.clone();
            f(&mut r);
            validate(&r).unwrap_err()
        };
        assert!(bad(&|r| r.host_pattern = "https://x.com/".into()).contains("host glob"));
        assert!(bad(&|r| r.path_pattern = Some("v1".into())).contains("start with /"));
        assert!(bad(&|r| r.methods = Some(vec!["FETCH".into()])).contains("unknown method"));
        assert!(bad(&|r| r.rate_limit_rpm = Some(0)).contains("at least 1"));
        let header = AuthStrategy {
            mode: AuthMode::Header,
            ..Default::default()
        };
        assert!(bad(&|r| r.auth_strategy = Some(header.clone())).contains("provider_key"));
        assert!(
            bad(&|r| {
                r.provider_key = Some("openai".into());
                r.auth_strategy = Some(header.clone());
            })
            .contains("header name")
        );
    }
}
