//! The OpenAPI document, generated from the handlers and the `islo-api` types.
//! `openapi.json` at the repository root is this document, committed; a test checks they agree.

use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "islod",
        description = "islo sandbox server (Islo-compatible compute API)"
    ),
    paths(
        super::auth::token,
        super::sandboxes::list,
        super::sandboxes::create,
        super::sandboxes::get,
        super::sandboxes::get_by_id,
        super::sandboxes::delete,
        super::sandboxes::stop,
        super::sandboxes::resume,
        super::exec::start,
        super::exec::result,
        super::exec::stream,
        super::system::info,
        super::system::pull,
    ),
    components(schemas(islo_api::ErrorCode, islo_api::SandboxStatus, islo_api::ExecStatus))
)]
struct ApiDoc;

/// The document, pretty JSON with a final newline.
pub fn document() -> String {
    let mut s = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
