//! Test support shared by the integration and end-to-end tests.
//!
//! - [`oci`]: build real OCI image layouts (from a directory, or from hand-made tar entries
//!   for hostile layers) and push them with skopeo to the loopback registry.
//! - [`registry`]: where the test registry is, failing loudly when it is not up.

pub mod oci;
pub mod registry;
