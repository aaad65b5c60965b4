//! `RemoteAssistLicense`: one vendor service account, licensed for Remote Assist.

// kube's derive repeats `type_ = "string"` across printer columns, which clippy misreads as a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::{LicenseRequest, formats};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One service account for a vendor's engineer: a member user in the host tenant, licensed for
/// Remote Assist, placed in its vendor's accounts group and barrier segment. Its generated
/// credentials are written to a Secret in the same namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "remoteassist.dev",
    cel,
    version = "v1alpha1",
    kind = "RemoteAssistLicense",
    plural = "remoteassistlicenses",
    shortname = "ral",
    category = "remoteassist",
    namespaced,
    status = "RemoteAssistLicenseStatus",
    doc = "A vendor's Remote Assist service account: an Entra user with licences, group membership and an information barrier.",
    printcolumn(name = "UPN", type_ = "string", json_path = ".status.userPrincipalName"),
    printcolumn(name = "Vendor", type_ = "string", json_path = ".spec.vendorRef.name"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Reason",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        description = "The Ready condition's message: what the account waits for, or why it is refused",
        priority = "1"
    ),
    selectable = ".spec.vendorRef.name"
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(oldSelf.userPrincipalName) || has(self.userPrincipalName)")
    .message("userPrincipalName cannot be removed once set"))]
#[x_kube(validation = Rule::new("has(self.userPrincipalName) || !has(oldSelf.mailNickname) || self.mailNickname == oldSelf.mailNickname")
    .message("mailNickname cannot change while it determines the user principal name; set userPrincipalName to keep the account's name"))]
pub struct RemoteAssistLicenseSpec {
    /// The VendorTenant this account belongs to. Immutable.
    #[x_kube(validation = Rule::new("self == oldSelf").message("vendorRef is immutable: an account cannot move to another vendor"))]
    pub vendor_ref: VendorRef,

    /// The account's name for people, e.g. "Fabrikam Technician 01".
    #[schemars(length(min = 1, max = 256), pattern(formats::PRINTABLE))]
    pub display_name: String,

    /// The account's mail nickname. The user principal name is `<mailNickname>@<vendor domain>`
    /// unless `userPrincipalName` is given.
    #[schemars(length(min = 1, max = 64), pattern(formats::NICKNAME))]
    #[x_kube(validation = Rule::new("!self.contains('..')").message("mailNickname cannot contain two dots in a row"))]
    pub mail_nickname: String,

    /// The user principal name, if it should not be derived from `mailNickname`. Its domain must
    /// be the vendor's `spec.domain` (compared case-insensitively); any other is refused with
    /// `OutsideVendorDomain` and nothing is read or written for it. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 3, max = 113), pattern(formats::UPN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("userPrincipalName is immutable once set"))]
    pub user_principal_name: Option<String>,

    /// Where the account is used, as an ISO 3166-1 alpha-2 code. Required before Graph assigns
    /// any licence.
    #[schemars(schema_with = "formats::country_code_schema")]
    pub usage_location: String,

    /// Licences for this account instead of the vendor's defaults. Refused in `Group` licence
    /// mode, where licences come from the vendor's accounts group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["skuPartNumber"]))]
    pub licenses: Option<Vec<LicenseRequest>>,

    /// Name of a Secret in this namespace that receives the generated credentials
    /// (`userPrincipalName`, `password`). Default: `<this object's name>-credentials`. The
    /// operator creates and owns it, and never overwrites a Secret it does not own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253), pattern(formats::DNS_SUBDOMAIN))]
    pub credentials_secret_name: Option<String>,

    /// What happens to the Entra user when this object is deleted. `Delete` (default): the user
    /// is deleted (Entra keeps it restorable for 30 days). `Disable`: sign-in is blocked and
    /// licences are removed. `Orphan`: the user is left as it is. An adopted user (one the
    /// operator did not create) is never deleted or disabled: it is orphaned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deletion_policy: Option<DeletionPolicy>,

    /// When true, sign-in is blocked and the account's licences are released (in `Group` licence
    /// mode it leaves the accounts group, which releases the inherited ones); the user, its
    /// password and its barrier attribute are kept, and everything comes back when set to false.
    /// Default: false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suspended: Option<bool>,

    /// What to do when a user with this principal name already exists. `CreateOnly` (default):
    /// refuse it with a `Conflict` condition. `AdoptOrCreate`: adopt it, or create one if none
    /// exists. `AdoptOnly`: adopt it, and never create one. Adoption happens only where the
    /// VendorTenant allows it (`spec.adoption.policy: Allowed`; otherwise `AdoptOrCreate` acts
    /// as `CreateOnly` and `AdoptOnly` is refused), and only for a user in the vendor's domain
    /// that holds no directory role and that no other licence manages. The operator never sets
    /// an adopted user's password unless the VendorTenant allows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<AdoptionPolicy>,
}

/// A reference to a cluster-scoped VendorTenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VendorRef {
    /// The VendorTenant's name.
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_SUBDOMAIN))]
    pub name: String,
}

// What happens to the Entra user when its RemoteAssistLicense is deleted.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Delete the user (soft delete; restorable for 30 days).
    #[default]
    Delete,
    /// Block sign-in and remove licences; keep the user.
    Disable,
    /// Leave the user untouched.
    Orphan,
}

// How a pre-existing user with the same principal name is treated.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum AdoptionPolicy {
    /// Adopt an existing user, or create one.
    AdoptOrCreate,
    /// Create the user; an existing one is a Conflict.
    #[default]
    CreateOnly,
    /// Adopt an existing user; never create one.
    AdoptOnly,
}

/// Observed state of a RemoteAssistLicense.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RemoteAssistLicenseStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (the roll-up) and its aspects: `AccountReady`, `LicensesAssigned`,
    /// `BarrierEnforced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The account's Entra object id, once created or adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,

    /// The account's user principal name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_principal_name: Option<String>,

    /// Whether the operator created the user (true) or adopted an existing one (false). An
    /// adopted user is never deleted or disabled by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by_operator: Option<bool>,

    /// The `employeeType` an adopted user had before the operator wrote its mark there; put
    /// back when the licence releases the user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_employee_type: Option<String>,

    /// When the operator last set the account's password. Rotations (and resets after a lost
    /// Secret) are rate-limited from this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_set_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// When the operator last set the account's barrier attribute: only a policy application
    /// started after this can enforce the account's barrier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barrier_attribute_set_at: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// When the licence was first Ready: the end of its provisioning, kept when it later
    /// drifts and recovers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_ready_time: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// SKU part numbers currently assigned to the account.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assigned_licenses: Vec<String>,

    /// In `Plan` or `Observe` mode (annotation `remoteassist.dev/mode`): what the operator would
    /// do, in plain words, without doing it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planned_actions: Vec<String>,

    /// A short summary for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl RemoteAssistLicense {
    /// The name of the credentials Secret, with its default applied.
    pub fn credentials_secret_name(&self) -> String {
        self.spec.credentials_secret_name.clone().unwrap_or_else(|| {
            format!(
                "{}-credentials",
                self.metadata.name.as_deref().unwrap_or_default()
            )
        })
    }

    /// The user principal name for a vendor domain: the explicit one, or nickname@domain.
    pub fn user_principal_name(&self, vendor_domain: &str) -> String {
        self.spec
            .user_principal_name
            .clone()
            .unwrap_or_else(|| format!("{}@{vendor_domain}", self.spec.mail_nickname))
    }
}
