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
pub mod cluster;
#[path = "../e2e/env.rs"]
pub mod env;
pub mod kubectl;
pub mod repo;

pub use repo::repo_root;

/// What benches/scale.rs imports as `common::e2e::{Env, vendor}`.
pub mod e2e {
    pub type Env = super::env::Env;

    /// A VendorTenant manifest. `extra` is appended to `spec` (indented by the caller).
    pub fn vendor(name: &str, namespaces: &[&str], extra: &str) -> String {
        super::env::vendor(name, namespaces, extra)
    }
}

impl env::Env {
    /// The process id of a running operator (by the index `spawn_operator` returned); the bench
    /// reads its peak memory.
    pub fn operator_pid(&self, index: usize) -> Option<u32> {
        self.operators.get(index)?.as_ref().map(std::process::Child::id)
    }
}
