//! The CRDs committed in `crds/` are exactly what the Rust types generate, and every example
//! manifest parses as the kind it claims and passes the CEL rules client-side.

mod common;

use remote_assist_operator::crd::{self, BarrierSegment, RemoteAssistLicense, VendorTenant};
use serde::Deserialize;

#[test]
fn committed_crds_match_the_code() {
    let dir = common::repo_root().join("crds");
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
    let on_disk = common::yaml_files(&dir).len();
    assert_eq!(
        on_disk,
        generated.len(),
        "crds/ holds files that the code does not generate"
    );
}

#[test]
fn examples_parse_and_pass_cel_rules() {
    let mut seen = std::collections::BTreeMap::<String, usize>::new();
    for path in common::yaml_files(&common::repo_root().join("deploy/examples")) {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
            let where_ = format!("{} ({kind} {})", path.display(), doc["metadata"]["name"]);
            let result = match kind.as_str() {
                "VendorTenant" => VendorTenant::deserialize(&doc).map(|o| o.validate_cel()),
                "BarrierSegment" => BarrierSegment::deserialize(&doc).map(|o| o.validate_cel()),
                "RemoteAssistLicense" => RemoteAssistLicense::deserialize(&doc).map(|o| o.validate_cel()),
                _ => Ok(Ok(())),
            };
            let cel = result.unwrap_or_else(|e| panic!("{where_} does not parse: {e}"));
            assert!(cel.is_ok(), "{where_} breaks a CEL rule: {cel:?}");
            *seen.entry(kind).or_default() += 1;
        }
    }
    for kind in ["VendorTenant", "BarrierSegment", "RemoteAssistLicense"] {
        assert!(seen.get(kind).copied().unwrap_or(0) > 0, "no example of {kind}");
    }
}
