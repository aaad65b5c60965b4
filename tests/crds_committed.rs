//! The CRDs committed in `crds/` are exactly what the Rust types generate, and every example
//! manifest parses as the kind it claims and passes the CEL rules client-side.

mod common {
    pub mod repo;
    pub mod yaml_files;
}

use common::repo::repo_root;
use common::yaml_files::yaml_files;
use remote_assist_operator::crd::{self, BarrierSegment, RemoteAssistLicense, VendorTenant};
use serde::Deserialize;

#[test]
fn committed_crds_match_the_code() {
    let dir = repo_root().join("crds");
    let generated = crd::all_crds();
    for (file, definition) in &generated {
        let committed = std::fs::read_to_string(dir.join(file)).unwrap_or_else(|e| {
            panic!("crds/{file} is missing ({e}); run `cargo run -- crdgen --out-dir crds`")
        });
        assert_eq!(
            committed,
            crd::render_crd(definition),
            "crds/{file} is stale; run `cargo run -- crdgen --out-dir crds` and commit the result"
        );
    }
    let on_disk = yaml_files(&dir).len();
    assert_eq!(
        on_disk,
        generated.len(),
        "crds/ holds files that the code does not generate"
    );
}

/// Checks one example document: it parses as the kind it claims and passes the CEL rules.
/// Returns its kind; a kind this project does not know (a typo such as `VendorTenants`) is an
/// error, not a document to skip. Namespaces are the only other kind the examples hold.
fn check_example(doc: &serde_json::Value) -> Result<String, String> {
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let result = match kind.as_str() {
        "VendorTenant" => VendorTenant::deserialize(doc).map(|o| o.validate_cel()),
        "BarrierSegment" => BarrierSegment::deserialize(doc).map(|o| o.validate_cel()),
        "RemoteAssistLicense" => RemoteAssistLicense::deserialize(doc).map(|o| o.validate_cel()),
        "Namespace" if doc["apiVersion"] == "v1" => Ok(Ok(())),
        _ => return Err(format!("unknown kind {kind:?} ({})", doc["apiVersion"])),
    };
    let cel = result.map_err(|e| format!("does not parse: {e}"))?;
    cel.map_err(|e| format!("breaks a CEL rule: {e:?}"))?;
    Ok(kind)
}

#[test]
fn examples_parse_and_pass_cel_rules() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for path in yaml_files(&repo_root().join("deploy/examples")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            let where_ = format!("{} ({} {})", path.display(), doc["kind"], doc["metadata"]["name"]);
            let kind = check_example(&doc).unwrap_or_else(|e| panic!("{where_}: {e}"));
            *seen.entry(kind).or_default() += 1;
        }
    }
    for kind in ["VendorTenant", "BarrierSegment", "RemoteAssistLicense"] {
        assert!(seen.get(kind).copied().unwrap_or(0) > 0, "no example of {kind}");
    }
}

#[test]
fn an_example_of_an_unknown_kind_is_an_error() {
    for (api_version, kind) in [
        ("remoteassist.dev/v1alpha1", "VendorTenants"),
        ("remoteassist.dev/v1alpha1", "RemoteAssistLicence"),
        ("v1", "ConfigMap"),
        ("remoteassist.dev/v1alpha1", ""),
    ] {
        let doc = serde_json::json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "x"}});
        let err = check_example(&doc).expect_err(kind);
        assert!(err.contains("unknown kind"), "{kind}: {err}");
    }
}
