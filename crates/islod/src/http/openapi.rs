//! The OpenAPI document, generated from the handlers and the `islo-api` types.
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
        super::pty::list,
        super::pty::create,
        super::pty::kill,
        super::pty::exec,
        super::pty::attach,
        super::port_forward::forward,
        super::ssh::sign,
        super::gateway::list,
        super::gateway::create,
        super::gateway::get,
        super::gateway::update,
        super::gateway::delete,
        super::gateway::add_rule,
        super::gateway::update_rule,
        super::gateway::delete_rule,
        super::gateway::reorder,
        super::system::agents,
        super::secrets::list,
        super::secrets::put,
        super::secrets::delete,
        super::secrets::events,
        super::files::download,
        super::files::upload,
        super::files::download_archive,
        super::files::upload_archive,
        super::ssh::connect,
        super::logs::list,
        super::logs::one,
        super::logs::logs,
        super::logs::asciinema,
        super::logs::agent_sessions,
        super::logs::agent_events,
        super::snapshots::list,
        super::snapshots::create,
        super::snapshots::get,
        super::snapshots::delete,
        super::snapshots::export,
        super::snapshots::import,
    ),
    components(schemas(islo_api::ErrorCode, islo_api::SandboxStatus, islo_api::ExecStatus)),
    modifiers(&Bearer),
    security(("bearer" = []))
)]
struct ApiDoc;

/// The document, pretty JSON with a final newline.
pub fn document() -> String {
    let mut s = ApiDoc::openapi().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}
