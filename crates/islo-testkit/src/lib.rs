//! Test support shared by the integration and end-to-end tests.
//!
//! - [`oci`]: build real OCI image layouts (from a directory, or from hand-made tar entries
//!   for hostile layers) and push them with skopeo to the loopback registry.
//! - [`registry`]: where the test registry is, failing loudly when it is not up.
//! - [`etcd`]: a real etcd cluster on loopback for the cluster tests.

pub mod etcd;
pub mod oci;
pub mod registry;

/// The static `islo-agent` for tests: `ISLO_AGENT_PATH`, else the one
/// `scripts/build-agent.sh` builds. Panics with the fix when it is missing.
pub fn agent_path() -> std::path::PathBuf {
    if let Some(p) = std::env::var_os("ISLO_AGENT_PATH") {
        return p.into();
    }
    let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/x86_64-unknown-linux-gnu/release/islo-agent");
    assert!(
        p.is_file(),
        "static agent missing at {}: run scripts/build-agent.sh (scripts/test.sh does)",
        p.display()
    );
    p
}
