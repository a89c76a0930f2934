//! Reading values out of a received request (headers, query, JSON paths) and checking its
//! sender: HMAC over the raw body or a template (constant-time compare, optional timestamp
//! tolerance), fixed header/query values, basic and static bearer credentials, IP allow lists,
//! and `all` / `any` of those.

use std::net::IpAddr;

use base64::Engine;
use islo_api::{
    HeaderEqualsVerifier, HmacVerifier, IpAllowlistVerifier, QueryEqualsVerifier, SignedPart,
    SignedPayload, ValueSource, Verifier, WebhookAuth,
};
use sha2::{Digest, Sha256};

/// A request as the receiver got it.
#[derive(Debug, Clone, Default)]
pub struct Received {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    /// Names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub client: Option<IpAddr>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        form_urlencoded::parse(q.as_bytes())
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    }

    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// `$.a.b[0].c` (or `a.b.0.c`) in `v`.
pub fn json_path<'a>(v: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    let p = path.trim_start_matches('$').trim_start_matches('.');
    let mut cur = v;
    for seg in p.split('.').filter(|s| !s.is_empty()) {
        let (name, indexes) = match seg.find('[') {
            Some(i) => (&seg[..i], &seg[i..]),
            None => (seg, ""),
        };
        if !name.is_empty() {
            cur = match cur {
                serde_json::Value::Array(a) => a.get(name.parse::<usize>().ok()?)?,
                other => other.get(name)?,
            };
        }
        for idx in indexes.split('[').filter(|s| !s.is_empty()) {
            cur = cur.get(idx.trim_end_matches(']').parse::<usize>().ok()?)?;
        }
    }
    Some(cur)
}

fn scalar(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `param` of a header like `t=123,v1=abc` (also `;`-separated).
fn header_param(value: &str, param: &str) -> Option<String> {
    value
        .split([',', ';'])
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| k.trim() == param)
        .map(|(_, v)| v.trim().to_string())
}

/// The value `src` names in `r`, as bytes.
pub fn extract(r: &Received, src: &ValueSource) -> Option<Vec<u8>> {
    match src {
        ValueSource::Header { name } => r.header(name).map(|v| v.as_bytes().to_vec()),
        ValueSource::HeaderParam { header, param } => {
            header_param(r.header(header)?, param).map(String::into_bytes)
        }
        ValueSource::Query { name } => r.query_param(name).map(String::into_bytes),
        ValueSource::JsonPath { path } => {
            let v = r.json()?;
            json_path(&v, path).map(|x| scalar(x).into_bytes())
        }
        ValueSource::RawBody => Some(r.body.clone()),
        ValueSource::Method => Some(r.method.clone().into_bytes()),
        ValueSource::Path => Some(r.path.clone().into_bytes()),
    }
}

/// [`extract`] as text.
pub fn extract_text(r: &Received, src: &ValueSource) -> Option<String> {
    extract(r, src).map(|b| String::from_utf8_lossy(&b).into_owned())
}

/// HMAC-SHA256 (RFC 2104).
pub fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let pad = |b: u8| k.map(|x| x ^ b);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(data)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

/// Equal, in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn hmac(h: &HmacVerifier, r: &Received, now: i64) -> Result<(), String> {
    let payload = match &h.signed_payload {
        SignedPayload::RawBody => r.body.clone(),
        SignedPayload::Template { parts } => {
            let mut out = Vec::new();
            for p in parts {
                match p {
                    SignedPart::Literal { value } => out.extend_from_slice(value.as_bytes()),
                    SignedPart::Source { source } => out.extend(
                        extract(r, source).ok_or("a part of the signed payload is missing")?,
                    ),
                }
            }
            out
        }
    };
    if let Some(ts) = &h.timestamp {
        let t: i64 = extract_text(r, &ts.source)
            .and_then(|t| t.trim().parse().ok())
            .ok_or("the timestamp is missing or not a number")?;
        if (now - t).abs() > ts.tolerance_seconds {
            return Err(format!(
                "the timestamp is {}s from now (tolerance {}s)",
                now - t,
                ts.tolerance_seconds
            ));
        }
    }
    let given = extract_text(r, &h.signature).ok_or("the signature is missing")?;
    let given = given.trim();
    let given = match &h.prefix {
        Some(p) => given
            .strip_prefix(p.as_str())
            .ok_or("the signature lacks its prefix")?,
        None => given,
    };
    let want = hex::encode(hmac_sha256(h.secret.value.as_bytes(), &payload));
    if same(given.to_ascii_lowercase().as_bytes(), want.as_bytes()) {
        Ok(())
    } else {
        Err("the signature does not match".into())
    }
}

/// `a.b.c.d/n` or an address, IPv4 or IPv6.
pub fn in_cidr(ip: IpAddr, cidr: &str) -> bool {
    let (net, bits) = match cidr.split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr, None),
    };
    let Ok(net) = net.trim().parse::<IpAddr>() else {
        return false;
    };
    let to_u128 = |a: IpAddr| match a {
        IpAddr::V4(v) => (u128::from(u32::from(v)), 32),
        IpAddr::V6(v) => (u128::from(v), 128),
    };
    let ip = match (ip, net) {
        (IpAddr::V6(v6), IpAddr::V4(_)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        _ => ip,
    };
    let ((a, width), (b, wb)) = (to_u128(ip), to_u128(net));
    if width != wb {
        return false;
    }
    let bits = bits.unwrap_or(width).min(width);
    if bits == 0 {
        return true;
    }
    let shift = width - bits;
    (a >> shift) == (b >> shift)
}

fn basic(r: &Received, user: &str, pass: &str) -> Result<(), String> {
    let h = r.header("authorization").ok_or("no Authorization header")?;
    let enc = h
        .strip_prefix("Basic ")
        .ok_or("Authorization is not Basic")?;
    let dec = base64::engine::general_purpose::STANDARD
        .decode(enc.trim())
        .map_err(|_| "Basic credentials are not base64")?;
    let want = format!("{user}:{pass}");
    if same(&dec, want.as_bytes()) {
        Ok(())
    } else {
        Err("wrong Basic credentials".into())
    }
}

fn one(v: &Verifier, r: &Received, now: i64) -> Result<(), String> {
    match v {
        Verifier::Hmac(h) => hmac(h, r, now),
        Verifier::HeaderEquals(HeaderEqualsVerifier { header, value }) => match r.header(header) {
            Some(got) if same(got.as_bytes(), value.value.as_bytes()) => Ok(()),
            Some(_) => Err(format!("header {header} has the wrong value")),
            None => Err(format!("header {header} is missing")),
        },
        Verifier::QueryEquals(QueryEqualsVerifier { query, value }) => match r.query_param(query) {
            Some(got) if same(got.as_bytes(), value.value.as_bytes()) => Ok(()),
            Some(_) => Err(format!("query parameter {query} has the wrong value")),
            None => Err(format!("query parameter {query} is missing")),
        },
        Verifier::Basic(b) => basic(r, &b.username.value, &b.password.value),
        Verifier::BearerStatic(b) => {
            let h = r.header("authorization").ok_or("no Authorization header")?;
            let got = h
                .strip_prefix("Bearer ")
                .ok_or("Authorization is not Bearer")?;
            if same(got.trim().as_bytes(), b.token.value.as_bytes()) {
                Ok(())
            } else {
                Err("wrong bearer token".into())
            }
        }
        Verifier::Jwt(_) => Err("jwt verification is not supported".into()),
        Verifier::IpAllowlist(IpAllowlistVerifier { cidrs }) => match r.client {
            Some(ip) if cidrs.iter().any(|c| in_cidr(ip, c)) => Ok(()),
            Some(ip) => Err(format!("{ip} is not in the allow list")),
            None => Err("the client address is unknown".into()),
        },
    }
}

/// The verifier a top-level auth stands for (all but `none`, `all`, `any`).
pub fn as_verifier(a: &WebhookAuth) -> Option<Verifier> {
    Some(match a.clone() {
        WebhookAuth::Hmac(v) => Verifier::Hmac(v),
        WebhookAuth::HeaderEquals(v) => Verifier::HeaderEquals(v),
        WebhookAuth::QueryEquals(v) => Verifier::QueryEquals(v),
        WebhookAuth::Basic(v) => Verifier::Basic(v),
        WebhookAuth::BearerStatic(v) => Verifier::BearerStatic(v),
        WebhookAuth::Jwt(v) => Verifier::Jwt(v),
        WebhookAuth::IpAllowlist(v) => Verifier::IpAllowlist(v),
        WebhookAuth::None | WebhookAuth::All { .. } | WebhookAuth::Any { .. } => return None,
    })
}

/// Check the sender of `r` at unix time `now`; the reason when it fails.
pub fn verify(auth: &WebhookAuth, r: &Received, now: i64) -> Result<(), String> {
    match auth {
        WebhookAuth::None => Ok(()),
        WebhookAuth::All { verifiers } => verifiers.iter().try_for_each(|v| one(v, r, now)),
        WebhookAuth::Any { verifiers } => {
            let mut why = Vec::new();
            for v in verifiers {
                match one(v, r, now) {
                    Ok(()) => return Ok(()),
                    Err(e) => why.push(e),
                }
            }
            Err(format!("no verifier passed: {}", why.join("; ")))
        }
        other => one(&as_verifier(other).ok_or("unknown auth")?, r, now),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use islo_api::{TimestampCheck, WebhookSecret};

    fn secret(v: &str) -> WebhookSecret {
        WebhookSecret {
            name: "s".into(),
            value: v.into(),
        }
    }

    fn github(secret_value: &str) -> WebhookAuth {
        WebhookAuth::Hmac(HmacVerifier {
            algorithm: "sha256".into(),
            encoding: "hex".into(),
            prefix: Some("sha256=".into()),
            secret: secret(secret_value),
            signature: ValueSource::Header {
                name: "X-Hub-Signature-256".into(),
            },
            signed_payload: SignedPayload::RawBody,
            timestamp: None,
        })
    }

    fn req(headers: &[(&str, &str)], body: &str) -> Received {
        Received {
            method: "POST".into(),
            path: "/hooks/x".into(),
            query: Some("token=abc&x=1".into()),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            client: Some("10.1.2.3".parse().unwrap()),
        }
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // RFC 4231 test case 2.
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_github_signature_verifies_and_a_forged_one_does_not() {
        let body = r#"{"ref":"refs/heads/main"}"#;
        let sig = format!(
            "sha256={}",
            hex::encode(hmac_sha256(b"topsecret", body.as_bytes()))
        );
        let ok = req(&[("X-Hub-Signature-256", &sig)], body);
        verify(&github("topsecret"), &ok, 0).unwrap();
        let tampered = req(
            &[("X-Hub-Signature-256", &sig)],
            &body.replace("main", "evil"),
        );
        assert!(
            verify(&github("topsecret"), &tampered, 0)
                .unwrap_err()
                .contains("does not match")
        );
        let missing = req(&[], body);
        assert!(
            verify(&github("topsecret"), &missing, 0)
                .unwrap_err()
                .contains("missing")
        );
        let no_prefix = req(&[("X-Hub-Signature-256", &sig[7..])], body);
        assert!(
            verify(&github("topsecret"), &no_prefix, 0)
                .unwrap_err()
                .contains("prefix")
        );
    }

    #[test]
    fn timestamps_are_checked_against_their_tolerance() {
        let mut h = match github("k") {
            WebhookAuth::Hmac(h) => h,
            _ => unreachable!(),
        };
        h.prefix = None;
        h.signature = ValueSource::HeaderParam {
            header: "Sig".into(),
            param: "v1".into(),
        };
        h.signed_payload = SignedPayload::Template {
            parts: vec![
                SignedPart::Source {
                    source: ValueSource::HeaderParam {
                        header: "Sig".into(),
                        param: "t".into(),
                    },
                },
                SignedPart::Literal { value: ".".into() },
                SignedPart::Source {
                    source: ValueSource::RawBody,
                },
            ],
        };
        h.timestamp = Some(TimestampCheck {
            source: ValueSource::HeaderParam {
                header: "Sig".into(),
                param: "t".into(),
            },
            tolerance_seconds: 300,
        });
        let mac = hex::encode(hmac_sha256(b"k", b"1000.{}"));
        let r = req(&[("Sig", &format!("t=1000,v1={mac}"))], "{}");
        let auth = WebhookAuth::Hmac(h);
        verify(&auth, &r, 1100).unwrap();
        assert!(verify(&auth, &r, 2000).unwrap_err().contains("tolerance"));
    }

    #[test]
    fn simple_verifiers_and_combinations() {
        let basic = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode("u:p")
        );
        let r = req(&[("X-Token", "t0k"), ("Authorization", &basic)], "{}");
        let header = WebhookAuth::HeaderEquals(HeaderEqualsVerifier {
            header: "x-token".into(),
            value: secret("t0k"),
        });
        verify(&header, &r, 0).unwrap();
        let query = WebhookAuth::QueryEquals(QueryEqualsVerifier {
            query: "token".into(),
            value: secret("nope"),
        });
        assert!(verify(&query, &r, 0).is_err());
        verify(
            &WebhookAuth::Basic(islo_api::BasicVerifier {
                username: secret("u"),
                password: secret("p"),
            }),
            &r,
            0,
        )
        .unwrap();
        let ips = |c: &[&str]| {
            Verifier::IpAllowlist(IpAllowlistVerifier {
                cidrs: c.iter().map(|s| s.to_string()).collect(),
            })
        };
        let any = WebhookAuth::Any {
            verifiers: vec![ips(&["192.168.0.0/16"]), ips(&["10.0.0.0/8"])],
        };
        verify(&any, &r, 0).unwrap();
        let all = WebhookAuth::All {
            verifiers: vec![
                ips(&["10.1.2.0/24"]),
                Verifier::BearerStatic(islo_api::BearerStaticVerifier { token: secret("x") }),
            ],
        };
        assert!(verify(&all, &r, 0).unwrap_err().contains("Bearer"));
        assert!(in_cidr("::ffff:10.1.2.3".parse().unwrap(), "10.1.0.0/16"));
        assert!(in_cidr("2001:db8::1".parse().unwrap(), "2001:db8::/32"));
        assert!(!in_cidr("10.1.2.3".parse().unwrap(), "2001:db8::/32"));
    }

    #[test]
    fn values_come_from_json_paths_headers_and_the_query() {
        let r = req(
            &[("X-Req", "k=v; id=42")],
            r#"{"repository":{"name":"demo","tags":["a","b"]}}"#,
        );
        let v = r.json().unwrap();
        assert_eq!(json_path(&v, "$.repository.name").unwrap(), "demo");
        assert_eq!(json_path(&v, "repository.tags[1]").unwrap(), "b");
        assert!(json_path(&v, "$.nope").is_none());
        let id = ValueSource::HeaderParam {
            header: "x-req".into(),
            param: "id".into(),
        };
        assert_eq!(extract_text(&r, &id).unwrap(), "42");
        assert_eq!(
            extract_text(&r, &ValueSource::Query { name: "x".into() }).unwrap(),
            "1"
        );
    }
}
