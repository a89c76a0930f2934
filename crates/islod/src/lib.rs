//! islod: the islo server.
//!
//! `http` is the API surface (axum), `app` the sandbox lifecycle the server owns, `store` its
//! SQLite state, `images` the registry pull and layer cache; sandboxes themselves run through
//! an `islo_runtime::Driver`.

pub mod agents;
pub mod app;
pub mod cluster;
pub mod config;
pub mod doctor;
pub mod fault;
pub mod files;
pub mod gateway;
pub mod http;
pub mod ids;
pub mod images;
pub mod server;
pub mod sparse;
pub mod ssh;
pub mod store;
pub mod transcripts;
