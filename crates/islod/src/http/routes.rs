//! The route table: each endpoint written once, as the handler its `#[utoipa::path]` describes.
//! The router and the OpenAPI document (`openapi.json`) are both made from this table, so a
//! path, a method or a parameter name cannot differ between them.

use axum::extract::DefaultBodyLimit;
use utoipa_axum::router::{OpenApiRouter, UtoipaMethodRouter};
use utoipa_axum::routes;

use super::{
    HttpState, auth, creation, environments, exec, files, forward, gateway, keys, logs,
    port_forward, pty, sandboxes, secrets, shares, snapshots, ssh, system, ui, watch, webhooks,
};

/// Every endpoint. With `auth` (the server's state), all but `/auth/token` and
/// `/openapi.json` are behind authentication; without it, the table only describes them.
pub fn api(auth: Option<HttpState>) -> OpenApiRouter<HttpState> {
    let protected = OpenApiRouter::new()
        .routes(routes!(sandboxes::list, sandboxes::create))
        .routes(routes!(sandboxes::get_by_id))
        .routes(routes!(watch::sandboxes))
        .routes(routes!(watch::decisions))
        .routes(routes!(watch::decisions_watch))
        .routes(routes!(sandboxes::get, sandboxes::delete))
        .routes(routes!(sandboxes::stop))
        .routes(routes!(sandboxes::resume))
        .routes(routes!(sandboxes::pause))
        .routes(routes!(creation::events))
        .routes(routes!(exec::start, pty::exec))
        .routes(routes!(exec::stream))
        .routes(routes!(exec::result))
        .routes(routes!(pty::list, pty::create))
        .routes(routes!(pty::kill))
        .routes(routes!(pty::attach))
        .routes(routes!(port_forward::forward))
        .routes(routes!(shares::list, shares::create))
        .routes(routes!(shares::revoke))
        .routes(routes!(shares::requests))
        .routes(routes!(shares::proxy))
        .routes(routes!(shares::ws_proxy))
        // Any path below a proxied port, any method: the same handlers.
        .route(
            "/sandboxes/{sandbox_name}/proxy/{port}/{*path}",
            axum::routing::any(shares::proxy),
        )
        .route(
            "/sandboxes/{sandbox_name}/ws-proxy/{port}/{*path}",
            axum::routing::any(shares::ws_proxy),
        )
        .routes(routes!(logs::list))
        .routes(routes!(logs::one))
        .routes(routes!(logs::logs))
        .routes(routes!(logs::asciinema))
        .routes(routes!(logs::agent_sessions))
        .routes(routes!(logs::agent_events))
        .routes(unlimited(routes!(files::download, files::upload)))
        .routes(routes!(files::list))
        .routes(unlimited(routes!(
            files::download_archive,
            files::upload_archive
        )))
        .routes(routes!(snapshots::list, snapshots::create))
        .routes(routes!(snapshots::import))
        .routes(routes!(snapshots::get, snapshots::delete))
        .routes(routes!(snapshots::export))
        .routes(routes!(gateway::list, gateway::create))
        .routes(routes!(gateway::get, gateway::update, gateway::delete))
        .routes(routes!(gateway::add_rule))
        .routes(routes!(gateway::reorder))
        .routes(routes!(gateway::update_rule, gateway::delete_rule))
        .routes(routes!(gateway::events))
        .routes(routes!(environments::list, environments::create))
        .routes(routes!(
            environments::get,
            environments::update,
            environments::delete
        ))
        .routes(routes!(environments::set_default))
        .routes(routes!(webhooks::list, webhooks::create))
        .routes(routes!(webhooks::get, webhooks::update, webhooks::delete))
        .routes(routes!(webhooks::deliveries))
        .routes(routes!(webhooks::delivery))
        .routes(routes!(keys::list, keys::create))
        .routes(routes!(keys::delete))
        .routes(routes!(keys::deactivate))
        .routes(routes!(keys::activate))
        .routes(routes!(secrets::list))
        .routes(routes!(secrets::put, secrets::delete))
        .routes(routes!(ssh::sign))
        .routes(routes!(ssh::connect))
        .routes(routes!(system::pull))
        .routes(routes!(system::info))
        .routes(routes!(system::doctor))
        .routes(routes!(system::nodes))
        .routes(routes!(system::agents))
        // The reference lists snapshots at `/snapshots/`; clients also call it without the
        // slash. The same handlers, not a second description.
        .route(
            "/snapshots",
            axum::routing::get(snapshots::list).post(snapshots::create),
        );
    let protected = match auth {
        Some(state) => protected
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                forward::to_owner,
            ))
            .route_layer(axum::middleware::from_fn_with_state(state, auth::require)),
        None => protected,
    };
    OpenApiRouter::with_openapi(super::openapi::base())
        .routes(routes!(auth::token))
        .route("/openapi.json", axum::routing::get(system::openapi))
        // Webhook receivers: the webhook's own auth is the check; the body limit is its own.
        .route(
            "/hooks/{webhook_id}",
            axum::routing::any(webhooks::receive).layer(DefaultBodyLimit::disable()),
        )
        // The dashboard's pages and its login (its API calls are the protected routes).
        .route("/ui", axum::routing::get(ui::root))
        .route("/ui/", axum::routing::get(ui::index))
        .route("/ui/assets/{*file}", axum::routing::get(ui::asset))
        .route("/ui/login", axum::routing::post(ui::login))
        .route("/ui/logout", axum::routing::post(ui::logout))
        .route("/ui/session", axum::routing::get(ui::session))
        // Public share URLs: the token is the credential.
        .route("/s/{token}", axum::routing::any(shares::share_root))
        .route("/s/{token}/", axum::routing::any(shares::share_path))
        .route("/s/{token}/{*rest}", axum::routing::any(shares::share_path))
        .merge(protected)
}

/// Uploads and downloads of any size (the quota, not the body limit, bounds them).
fn unlimited(r: UtoipaMethodRouter<HttpState>) -> UtoipaMethodRouter<HttpState> {
    let (schemas, paths, methods) = r;
    (schemas, paths, methods.layer(DefaultBodyLimit::disable()))
}
