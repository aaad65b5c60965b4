//! A namespace by its own name (not one of a test's labelled ones).

use super::cluster::kubectl_ok;

/// Creates a namespace if it does not exist yet.
pub fn ensure_namespace(name: &str) {
    let manifest = format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n");
    kubectl_ok(&["apply", "-f", "-"], Some(&manifest));
}
