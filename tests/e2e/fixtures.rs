//! Manifests of the three kinds, as the tests make them: `vendor(name)`, `license(ns, name)` and
//! `segment(name)` start from what every test needs and take only what a test adds, so a test
//! says what is particular about its objects. [`Env::apply`](super::env::Env::apply) takes the
//! builders (and values) as they are; `build()` gives the manifest as a JSON value.
//!
//! Hostile manifests use the same builders with hostile values; only what no builder can say
//! (a document that does not parse, a field of the wrong type) stays literal YAML.

use serde_json::{Value, json};

const API_VERSION: &str = "remoteassist.dev/v1alpha1";

/// The domain every vendor of the tests owns.
pub const DOMAIN: &str = "vendors.abc.example";

/// A user principal name in [`DOMAIN`].
pub fn upn(name: &str) -> String {
    format!("{name}@{DOMAIN}")
}

/// Sets `value` at `path` under `obj`, making the objects on the way.
fn set(obj: &mut Value, path: &[&str], value: Value) {
    let (last, parents) = path.split_last().expect("a path");
    let mut at = obj;
    for key in parents {
        at = &mut at[*key];
    }
    at[*last] = value;
}

/// A VendorTenant: displayed as `Vendor <name>`, in [`DOMAIN`], offering the Remote Assist,
/// Teams and E5 licences, in no namespace until [`Vendor::namespaces`] says which.
pub fn vendor(name: &str) -> Vendor {
    Vendor(json!({
        "apiVersion": API_VERSION, "kind": "VendorTenant",
        "metadata": {"name": name},
        "spec": {
            "displayName": format!("Vendor {name}"),
            "domain": DOMAIN,
            "allowedNamespaces": {"names": []},
            "licenses": [
                {"skuPartNumber": "MICROSOFT_REMOTE_ASSIST"},
                {"skuPartNumber": "Microsoft_Teams_Enterprise_New"},
                {"skuPartNumber": "SPE_E5"},
            ],
        },
    }))
}

#[derive(Clone)]
pub struct Vendor(Value);

impl Vendor {
    fn spec(mut self, path: &[&str], value: Value) -> Self {
        set(&mut self.0["spec"], path, value);
        self
    }

    /// `allowedNamespaces.names`.
    pub fn namespaces(self, names: &[&str]) -> Self {
        self.spec(&["allowedNamespaces", "names"], json!(names))
    }

    pub fn domain(self, domain: &str) -> Self {
        self.spec(&["domain"], json!(domain))
    }

    /// `supportEngineers.members`: the host's engineers the vendor's accounts may reach.
    pub fn engineers(self, upns: &[&str]) -> Self {
        self.spec(&["supportEngineers", "members"], json!(upns))
    }

    /// `supportEngineers.membership: Exclusive`: members not listed are removed.
    pub fn exclusive_engineers(self) -> Self {
        self.spec(&["supportEngineers", "membership"], json!("Exclusive"))
    }

    /// `supportEngineers.groupDisplayName`.
    pub fn engineers_group(self, display_name: &str) -> Self {
        self.spec(&["supportEngineers", "groupDisplayName"], json!(display_name))
    }

    /// `accountsGroup.displayName`.
    pub fn accounts_group(self, display_name: &str) -> Self {
        self.spec(&["accountsGroup", "displayName"], json!(display_name))
    }

    /// `barriers.required: false`: accounts are enabled without an applied barrier.
    pub fn barriers_not_required(self) -> Self {
        self.spec(&["barriers", "required"], json!(false))
    }

    /// `barriers.generateSegments: false`: no generated BarrierSegments.
    pub fn no_generated_segments(self) -> Self {
        self.spec(&["barriers", "generateSegments"], json!(false))
    }

    /// `barriers.membershipAttribute`.
    pub fn membership_attribute(self, attribute: &str) -> Self {
        self.spec(&["barriers", "membershipAttribute"], json!(attribute))
    }

    /// `licenseMode` (`Direct` or `Group`).
    pub fn license_mode(self, mode: &str) -> Self {
        self.spec(&["licenseMode"], json!(mode))
    }

    pub fn max_accounts(self, n: u32) -> Self {
        self.spec(&["maxAccounts"], json!(n))
    }

    /// `adoption.policy: Allowed`: licences may adopt existing users.
    pub fn adoption_allowed(self) -> Self {
        self.spec(&["adoption", "policy"], json!("Allowed"))
    }

    pub fn vendor_tenant_id(self, id: &str) -> Self {
        self.spec(&["vendorTenantId"], json!(id))
    }

    pub fn build(self) -> Value {
        self.0
    }
}

/// A RemoteAssistLicense in `ns`: displayed as `Technician <name>`, mail nickname `<name>`,
/// usage location US. [`License::vendor`] names its VendorTenant.
pub fn license(ns: &str, name: &str) -> License {
    License(json!({
        "apiVersion": API_VERSION, "kind": "RemoteAssistLicense",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "displayName": format!("Technician {name}"),
            "mailNickname": name,
            "usageLocation": "US",
        },
    }))
}

#[derive(Clone)]
pub struct License(Value);

impl License {
    pub fn name(&self) -> &str {
        self.0["metadata"]["name"].as_str().expect("a name")
    }

    fn spec(mut self, path: &[&str], value: Value) -> Self {
        set(&mut self.0["spec"], path, value);
        self
    }

    /// `vendorRef.name`.
    pub fn vendor(self, vendor: &str) -> Self {
        self.spec(&["vendorRef", "name"], json!(vendor))
    }

    /// `userPrincipalName` (the default is the mail nickname in the vendor's domain).
    pub fn upn(self, upn: &str) -> Self {
        self.spec(&["userPrincipalName"], json!(upn))
    }

    /// `adoption`: `CreateOnly`, `AdoptOnly` or `AdoptOrCreate`.
    pub fn adoption(self, adoption: &str) -> Self {
        self.spec(&["adoption"], json!(adoption))
    }

    /// `deletionPolicy`: `Delete`, `Disable` or `Orphan`.
    pub fn deletion_policy(self, policy: &str) -> Self {
        self.spec(&["deletionPolicy"], json!(policy))
    }

    pub fn suspended(self, suspended: bool) -> Self {
        self.spec(&["suspended"], json!(suspended))
    }

    /// `licenses`: an override of the vendor's, one entry per SKU part number.
    pub fn licenses(self, skus: &[&str]) -> Self {
        let list: Vec<Value> = skus.iter().map(|s| json!({"skuPartNumber": s})).collect();
        self.spec(&["licenses"], json!(list))
    }

    /// `licenses`: one SKU with some of its service plans disabled.
    pub fn license_without_plans(self, sku: &str, disabled_plans: &[&str]) -> Self {
        let entry = json!({"skuPartNumber": sku, "disabledPlans": disabled_plans});
        self.spec(&["licenses"], json!([entry]))
    }

    /// `credentialsSecretName`.
    pub fn credentials_secret(self, name: &str) -> Self {
        self.spec(&["credentialsSecretName"], json!(name))
    }

    pub fn display_name(self, name: &str) -> Self {
        self.spec(&["displayName"], json!(name))
    }

    pub fn mail_nickname(self, nickname: &str) -> Self {
        self.spec(&["mailNickname"], json!(nickname))
    }

    pub fn usage_location(self, country: &str) -> Self {
        self.spec(&["usageLocation"], json!(country))
    }

    /// An annotation (`remoteassist.dev/mode`, `remoteassist.dev/rotate-credentials`).
    pub fn annotation(mut self, key: &str, value: &str) -> Self {
        set(&mut self.0, &["metadata", "annotations", key], json!(value));
        self
    }

    pub fn build(self) -> Value {
        self.0
    }
}

/// A BarrierSegment with an empty spec: its members and policy are what the test gives.
pub fn segment(name: &str) -> Segment {
    Segment(json!({
        "apiVersion": API_VERSION, "kind": "BarrierSegment",
        "metadata": {"name": name},
        "spec": {},
    }))
}

#[derive(Clone)]
pub struct Segment(Value);

impl Segment {
    fn spec(mut self, path: &[&str], value: Value) -> Self {
        set(&mut self.0["spec"], path, value);
        self
    }

    /// `members.userAttribute`: the users whose `attribute` is `value`.
    pub fn members_with(self, attribute: &str, value: &str) -> Self {
        let by = json!({"attribute": attribute, "value": value});
        self.spec(&["members", "userAttribute"], by)
    }

    /// `members.groupId`.
    pub fn members_of_group(self, id: &str) -> Self {
        self.spec(&["members", "groupId"], json!(id))
    }

    /// `members.vendorAccounts`: a vendor's accounts.
    pub fn vendor_accounts(self, vendor: &str) -> Self {
        self.spec(&["members", "vendorAccounts"], json!(vendor))
    }

    /// `members.vendorEngineers`: a vendor's support engineers.
    pub fn vendor_engineers(self, vendor: &str) -> Self {
        self.spec(&["members", "vendorEngineers"], json!(vendor))
    }

    /// `members.hostStaff`: the host's other staff, by an attribute, with the allow list the
    /// operator fills with the engineers' segments.
    pub fn host_staff(self, attribute: &str, value: &str) -> Self {
        let by = json!({"attribute": attribute, "value": value});
        self.spec(&["members", "hostStaff"], by).allows(&[])
    }

    /// `allowedSegments` (an empty list is an allow policy that allows nothing else).
    pub fn allows(self, segments: &[&str]) -> Self {
        self.spec(&["allowedSegments"], json!(segments))
    }

    /// `blockedSegments`.
    pub fn blocks(self, segments: &[&str]) -> Self {
        self.spec(&["blockedSegments"], json!(segments))
    }

    /// `policyState`: `Active` or `Inactive`.
    pub fn policy_state(self, state: &str) -> Self {
        self.spec(&["policyState"], json!(state))
    }

    /// `segmentName`: the name in the tenant, when it is not the object's.
    pub fn segment_name(self, name: &str) -> Self {
        self.spec(&["segmentName"], json!(name))
    }

    /// `adoptExisting: true`.
    pub fn adopt_existing(self) -> Self {
        self.spec(&["adoptExisting"], json!(true))
    }

    pub fn build(self) -> Value {
        self.0
    }
}

/// What [`Env::apply`](super::env::Env::apply) takes: YAML text as it is written, or manifest
/// values (one or more); each document is labelled `e2e=<id>`.
pub trait Manifests {
    /// The documents as kubectl reads them, each labelled `e2e=<id>`.
    fn labelled(self, id: &str) -> String;
}

impl Manifests for &str {
    fn labelled(self, id: &str) -> String {
        self.replace("metadata:\n", &format!("metadata:\n  labels: {{e2e: {id}}}\n"))
    }
}

impl Manifests for &String {
    fn labelled(self, id: &str) -> String {
        self.as_str().labelled(id)
    }
}

impl Manifests for &Value {
    fn labelled(self, id: &str) -> String {
        let mut doc = self.clone();
        set(&mut doc, &["metadata", "labels", "e2e"], json!(id));
        // JSON documents one after another: kubectl reads them as a stream.
        format!("{doc}\n")
    }
}

impl Manifests for Vec<Value> {
    fn labelled(self, id: &str) -> String {
        self.iter().map(|doc| doc.labelled(id)).collect()
    }
}

impl Manifests for Vendor {
    fn labelled(self, id: &str) -> String {
        self.0.labelled(id)
    }
}

impl Manifests for License {
    fn labelled(self, id: &str) -> String {
        self.0.labelled(id)
    }
}

impl Manifests for Segment {
    fn labelled(self, id: &str) -> String {
        self.0.labelled(id)
    }
}

/// Documents as one multi-document YAML file (for the `plan` command's `-f`): each in JSON,
/// which is YAML, between `---` lines.
pub fn yaml(docs: &[Value]) -> String {
    docs.iter().map(|doc| format!("---\n{doc}\n")).collect()
}
