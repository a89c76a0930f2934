//! The OpenAPI document, generated from the route table (`routes.rs`), the handlers and the
//! `islo-api` types.
//! `openapi.json` at the repository root is this document, committed; a test checks they agree.

use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

/// Every endpoint but `/auth/token` and `/openapi.json` takes a bearer token.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let scheme =
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build());
        api.components
            .get_or_insert_with(Default::default)
            .add_security_scheme("bearer", scheme);
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "islod",
        description = "islo sandbox server (Islo-compatible compute API)"
    ),
    components(schemas(islo_api::ErrorCode, islo_api::SandboxStatus, islo_api::ExecStatus)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

/// What the document says besides its paths (those come from the route table).
pub(super) fn base() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The document, pretty JSON with a final newline.
pub fn document() -> String {
    let doc = super::routes::api(None).into_openapi();
    let mut v = serde_json::to_value(&doc).unwrap_or_default();
    complete(&mut v);
    let mut s = serde_json::to_string_pretty(&v).unwrap_or_default();
    s.push('\n');
    s
}

/// Paths that take no bearer token.
const PUBLIC: [&str; 2] = ["/auth/token", "/openapi.json"];

/// What every operation shares, written once here rather than on each handler: each `{x}` of
/// its path declared as a path parameter, and the error answers the common layers give (401
/// from authentication, 404 for an unknown sandbox, 422 from decoding, 500).
fn complete(doc: &mut serde_json::Value) {
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, ops) in paths.iter_mut() {
        let Some(ops) = ops.as_object_mut() else {
            continue;
        };
        for (method, op) in ops.iter_mut() {
            complete_op(path, method, op);
        }
    }
}

fn complete_op(path: &str, method: &str, op: &mut serde_json::Value) {
    use serde_json::json;
    let segments: Vec<String> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .map(str::to_string)
        .collect();
    let params = op
        .as_object_mut()
        .map(|o| o.entry("parameters").or_insert_with(|| json!([])));
    if let Some(serde_json::Value::Array(list)) = params {
        for seg in &segments {
            let declared = list
                .iter()
                .any(|p| p["name"] == seg.as_str() && p["in"] == "path");
            if !declared {
                list.push(json!({"name": seg, "in": "path", "required": true,
                                 "schema": {"type": "string"}}));
            }
        }
    }
    let has_input = op.get("requestBody").is_some()
        || op["parameters"]
            .as_array()
            .is_some_and(|l| l.iter().any(|p| p["in"] == "query"));
    let mut add = vec![("500", "Internal error")];
    if !PUBLIC.contains(&path) {
        add.push(("401", "Missing, expired or unknown bearer token"));
    }
    if segments.iter().any(|s| s == "sandbox_name") {
        add.push(("404", "No such sandbox (or thing in it)"));
    }
    if has_input {
        add.push((
            "422",
            "A field is missing or has a bad value (named in the message)",
        ));
    }
    if path == "/sandboxes" && method == "post" {
        add.extend([
            ("429", "A quota of the tenant would be passed"),
            ("502", "The image registry failed"),
            ("503", "The host cannot hold another sandbox"),
        ]);
    }
    let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
        return;
    };
    for (code, what) in add {
        responses.entry(code).or_insert_with(|| {
            json!({"description": what, "content": {"application/json": {"schema":
                {"$ref": "#/components/schemas/ErrorResponse"}}}})
        });
    }
}
