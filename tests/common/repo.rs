//! The checkout the tests run from.

use std::path::PathBuf;

pub fn repo_root() -> PathBuf {
    // The checkout the tests run from (cargo sets this when it runs them), not the one they were
    // compiled in: a shared target directory may hold a binary built from another checkout.
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")))
}
