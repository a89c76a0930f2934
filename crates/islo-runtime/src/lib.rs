//! Sandbox back ends behind one [`Driver`] trait.
//!
//! Two implementations shape the trait: [`fake::FakeDriver`] (in-process, no privileges, for
//! islod's unit tests) and [`oci::OciDriver`] (crun or runc, namespaces, cgroups, seccomp,
//! overlayfs on a quota-bounded loop disk). Both pass `conformance` (feature `conformance`). Drivers take and return
//! plain data and report what they observe; islod owns the lifecycle.

pub mod activity;
pub mod agent;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
mod driver;
pub mod fake;
pub mod host;
mod idmap;
pub mod layer_tar;
mod loopdev;
mod mntns;
pub mod oci;
mod rtnl;
mod spawn;

pub use driver::{
    ClassSupport, Driver, DriverError, IdMap, Isolation, Limits, NetworkSpec, OVERFLOW_ID,
    Observed, Rootfs, SandboxId, SandboxSpec, Usage,
};
