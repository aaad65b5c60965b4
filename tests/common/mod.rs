//! The shared test helpers and the end-to-end harness as one module, for the two places outside
//! the e2e binary that drive the harness: `benches/scale.rs`, which includes this file with
//! `#[path = "../tests/common/mod.rs"]`, and `tests/harness.rs`, the harness's own tests.
//! The other test binaries include only the helper files they use (`mod common { pub mod
//! kubectl; … }`), and the e2e binary (`tests/e2e/main.rs`) includes the harness's files and
//! the helpers it needs.
// The one dead-code allowance of the tests: the bench and the harness tests each use a part of
// what is here, and the bench, outside tests/, includes this whole file. The e2e binary includes
// the same files with no allowance and uses all of them.
#![allow(dead_code)]

pub mod can_i;
#[path = "../e2e/clock.rs"]
mod clock;
pub mod cluster;
#[path = "../e2e/env.rs"]
pub mod env;
#[path = "../e2e/fixtures.rs"]
pub mod fixtures;
pub mod kubectl;
pub mod repo;
#[path = "../e2e/tenant.rs"]
mod tenant;

pub use repo::repo_root;

/// What benches/scale.rs imports as `common::e2e::{Env, vendor}`.
pub mod e2e {
    pub type Env = super::env::Env;

    /// The e2e fixture's VendorTenant in `namespaces`, with `extra` (spec fields as YAML lines
    /// indented by two, e.g. `  licenseMode: Group\n`) added to its spec.
    pub fn vendor(name: &str, namespaces: &[&str], extra: &str) -> serde_json::Value {
        let mut manifest = super::fixtures::vendor(name).namespaces(namespaces).build();
        let extra: serde_json::Value =
            serde_saphyr::from_str(&format!("spec:\n{extra}")).expect("extra spec fields");
        for (key, value) in extra["spec"].as_object().into_iter().flatten() {
            manifest["spec"][key] = value.clone();
        }
        manifest
    }
}

impl env::Env {
    /// The process id of a running operator (by the index `spawn_operator` returned); the bench
    /// reads its peak memory.
    pub fn operator_pid(&self, index: usize) -> Option<u32> {
        self.operators.get(index)?.as_ref().map(std::process::Child::id)
    }
}
