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
    let mut s = super::routes::api(None)
        .into_openapi()
        .to_pretty_json()
        .unwrap_or_default();
    s.push('\n');
    s
}
