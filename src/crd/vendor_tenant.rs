//! `VendorTenant`: one external vendor company whose engineers call the host company's support
//! engineers with Remote Assist.

// kube's derive repeats `type_ = "string"` across printer columns, which clippy misreads as a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::{LicenseRequest, formats};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Suffix of the default accounts group name: `<VendorTenant name>_RemoteAssistUser`.
pub const ACCOUNTS_GROUP_SUFFIX: &str = "_RemoteAssistUser";
/// Suffix of the default engineers group name: `<VendorTenant name>_SupportEngineer`.
pub const ENGINEERS_GROUP_SUFFIX: &str = "_SupportEngineer";

/// One vendor company: the verified domain its service accounts live under, the group holding
/// those accounts, the group of the host company's support engineers assigned to it, the
/// licences its accounts get, which namespaces may request accounts for it, and how information
/// barriers keep it apart from every other vendor.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "remoteassist.dev",
    cel,
    version = "v1alpha1",
    kind = "VendorTenant",
    plural = "vendortenants",
    shortname = "vt",
    category = "remoteassist",
    status = "VendorTenantStatus",
    doc = "An external vendor company allowed to call the host company's support engineers with Dynamics 365 Remote Assist.",
    printcolumn(name = "Domain", type_ = "string", json_path = ".spec.domain"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Accounts", type_ = "string", json_path = ".status.accounts.summary"),
    printcolumn(name = "IB Mode", type_ = "string", json_path = ".status.informationBarrierMode"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new(
        "(has(self.spec.accountsGroup) && has(self.spec.accountsGroup.displayName) ? self.spec.accountsGroup.displayName : self.metadata.name + '_RemoteAssistUser') != (has(self.spec.supportEngineers) && has(self.spec.supportEngineers.groupDisplayName) ? self.spec.supportEngineers.groupDisplayName : self.metadata.name + '_SupportEngineer')"
    ).message("the accounts group and the support engineers group must have different names").reason(Reason::FieldValueInvalid),
    validation = Rule::new("size(self.metadata.name) <= 63")
        .message("a VendorTenant name is at most 63 characters, so the group and segment names derived from it stay within Entra's limits"),
)]
#[serde(rename_all = "camelCase")]
pub struct VendorTenantSpec {
    /// The vendor company's name for people, e.g. "Fabrikam Field Services". Used in the
    /// descriptions of the groups the operator creates.
    #[schemars(length(min = 1, max = 256), pattern(formats::PRINTABLE))]
    pub display_name: String,

    /// A verified domain of the host tenant under which this vendor's service accounts are
    /// created: a licence's user principal name is `<mailNickname>@<domain>` unless it gives one.
    /// Lower case. Immutable, because accounts already exist under it.
    #[schemars(length(min = 3, max = 253), pattern(formats::DOMAIN))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("domain is immutable: accounts already exist under it"))]
    pub domain: String,

    /// The vendor's own Entra tenant id, recorded for reference only: the operator never signs
    /// in to the vendor's tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(formats::GUID))]
    pub vendor_tenant_id: Option<String>,

    /// The security group that holds this vendor's Remote Assist service accounts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_group: Option<AccountsGroup>,

    /// The host company's support engineers assigned to this vendor, and their group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub support_engineers: Option<SupportEngineers>,

    /// Licences every account of this vendor gets unless its RemoteAssistLicense overrides them.
    /// A typical set: `MICROSOFT_REMOTE_ASSIST`, a Teams SKU, and an information-barrier-capable
    /// SKU such as `SPE_E5`, `ENTERPRISEPREMIUM` (Office 365 E5) or `INFORMATION_PROTECTION_COMPLIANCE`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["skuPartNumber"]))]
    pub licenses: Vec<LicenseRequest>,

    /// How licences reach the accounts. `Direct` (default): assigned to each user.
    /// `Group`: assigned once to the accounts group (group-based licensing); the accounts
    /// inherit them, and per-licence overrides are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub license_mode: Option<LicenseMode>,

    /// Namespaces whose RemoteAssistLicenses may create accounts for this vendor. A licence in any
    /// other namespace is refused with a condition and an Event, and nothing is created.
    pub allowed_namespaces: AllowedNamespaces,

    /// Information-barrier settings for this vendor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub barriers: Option<BarrierSettings>,

    /// The most accounts (RemoteAssistLicenses) this vendor may have. Licences beyond it, by
    /// creation time, are refused with `AccountLimitReached` (and an account already made is
    /// disabled, never deleted). Default: 1000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 100000))]
    pub max_accounts: Option<i32>,

    /// Whether RemoteAssistLicenses may take over users that already exist in the tenant. This
    /// is the platform team's decision: a licence can only narrow it. Default: never.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adoption: Option<VendorAdoption>,
}

/// Default of `spec.maxAccounts`.
pub const DEFAULT_MAX_ACCOUNTS: i32 = 1000;

/// Whether and how this vendor's licences may adopt existing users.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VendorAdoption {
    /// `Never` (default): a licence whose user already exists is a `Conflict`, whatever its
    /// `adoption` says. `Allowed`: a licence with `adoption: AdoptOrCreate` or `AdoptOnly` may
    /// adopt a user in this vendor's domain that holds no directory role and that no other
    /// licence manages; adoption writes the operator's mark (`employeeType`) on it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<VendorAdoptionPolicy>,

    /// Whether the operator may set a new password on an adopted user (a
    /// `remoteassist.dev/rotate-credentials` request). Default: false: the password of a user
    /// the operator did not create is never set or rotated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manage_credentials: Option<bool>,
}

// Whether licences may adopt existing users.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum VendorAdoptionPolicy {
    /// Never adopt: existing users are a Conflict.
    #[default]
    Never,
    /// Licences may adopt eligible users in the vendor's domain.
    Allowed,
}

/// The vendor's accounts group.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountsGroup {
    /// Display name of the group. Default: `<VendorTenant name>_RemoteAssistUser`. An existing
    /// group with this name is adopted when exactly one exists; more than one is a Conflict.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 120), pattern(formats::DIRECTORY_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("displayName is immutable: rename the group in Entra and adopt it instead"))]
    pub display_name: Option<String>,
}

/// The host company's support engineers who serve this vendor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SupportEngineers {
    /// Display name of the engineers' group. Default: `<VendorTenant name>_SupportEngineer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 120), pattern(formats::DIRECTORY_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("groupDisplayName is immutable: rename the group in Entra and adopt it instead"))]
    pub group_display_name: Option<String>,

    /// User principal names of existing host-company users to put in the group. The operator
    /// never creates or changes these users; an unknown UPN is reported in a condition.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 500), inner(length(max = 113), pattern(formats::UPN)))]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub members: Vec<String>,

    /// `Additive` (default): the listed engineers are added; other members are left alone.
    /// `Exclusive`: members not listed are removed from the group (never from the directory).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership: Option<MembershipMode>,
}

// How the operator treats group members it was not told about.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum MembershipMode {
    /// Add the listed members; leave any others in place.
    #[default]
    Additive,
    /// Make the membership exactly the listed members.
    Exclusive,
}

// How licences are assigned.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum LicenseMode {
    /// Assign licences to each account directly.
    #[default]
    Direct,
    /// Assign licences to the accounts group; members inherit them.
    Group,
}

/// Which namespaces may hold RemoteAssistLicenses for a vendor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.names) && size(self.names) > 0) || has(self.selector)")
    .message("allowedNamespaces needs at least one name or a selector; an empty list would allow no namespace"))]
pub struct AllowedNamespaces {
    /// Namespace names, matched exactly.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 256),
        inner(length(min = 1, max = 63), pattern(formats::DNS_LABEL))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub names: Option<Vec<String>>,

    /// A label selector over Namespaces; a namespace matching it is allowed too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<LabelSelector>,
}

/// Information-barrier settings of a vendor.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BarrierSettings {
    /// Whether this vendor's accounts must be covered by an applied barrier before they are
    /// enabled. Default: true. With false, accounts are enabled as soon as they are licensed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub required: Option<bool>,

    /// Whether the operator generates and owns the two BarrierSegments of this vendor (its
    /// accounts and its engineers, allowed to reach only each other). Default: true. With false,
    /// write BarrierSegments by hand.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generate_segments: Option<bool>,

    /// The user attribute that places a user in this vendor's segments. Default:
    /// `ExtensionAttribute15`, which the operator sets on each account (`<vendor>-accounts`) and
    /// on each listed engineer (`<vendor>-engineers`; an engineer listed by two vendors is
    /// reported and left alone, since a user can be in one segment only). `MemberOf` segments
    /// on the groups' object ids instead; Microsoft documents it for mail-enabled groups, so
    /// verify it in your tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub membership_attribute: Option<MembershipAttribute>,
}

// A user attribute that information-barrier segments can filter on.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[allow(missing_docs)]
pub enum MembershipAttribute {
    ExtensionAttribute1,
    ExtensionAttribute2,
    ExtensionAttribute3,
    ExtensionAttribute4,
    ExtensionAttribute5,
    ExtensionAttribute6,
    ExtensionAttribute7,
    ExtensionAttribute8,
    ExtensionAttribute9,
    ExtensionAttribute10,
    ExtensionAttribute11,
    ExtensionAttribute12,
    ExtensionAttribute13,
    ExtensionAttribute14,
    #[default]
    ExtensionAttribute15,
    Department,
    Company,
    MemberOf,
}

/// Observed state of a VendorTenant.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct VendorTenantStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (the roll-up) and the aspects it is made of: `GroupsReady`, `LicensesAssigned`
    /// (seats and group licences), `BarrierEnforced`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// Entra object id of the accounts group, once bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts_group_id: Option<String>,

    /// Entra object id of the support engineers' group, once bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engineers_group_id: Option<String>,

    /// Roll-up of this vendor's RemoteAssistLicenses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub accounts: Option<AccountsSummary>,

    /// Seat pre-flight per SKU: seats free in the tenant and seats this vendor still needs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["skuPartNumber"]))]
    pub seats: Vec<SeatStatus>,

    /// The tenant's information-barrier mode as last read (`Get-PolicyConfig`), which decides
    /// the generated barrier design. The operator never changes it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub information_barrier_mode: Option<crate::barriers::IbMode>,

    /// A short summary for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How many of a vendor's accounts are Ready.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct AccountsSummary {
    /// Accounts whose RemoteAssistLicense is Ready.
    pub ready: i32,
    /// All RemoteAssistLicenses of this vendor.
    pub total: i32,
    /// `ready/total`, for the printer column.
    pub summary: String,
}

/// Seats of one SKU.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct SeatStatus {
    /// The SKU's part number.
    pub sku_part_number: String,
    /// Enabled units not yet consumed in the tenant.
    pub free: i32,
    /// Units this vendor's accounts still need that are not yet assigned.
    pub needed: i32,
}

impl VendorTenant {
    /// The accounts group's display name, with its default applied.
    pub fn accounts_group_name(&self) -> String {
        self.spec
            .accounts_group
            .as_ref()
            .and_then(|g| g.display_name.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}{ACCOUNTS_GROUP_SUFFIX}",
                    self.metadata.name.as_deref().unwrap_or_default()
                )
            })
    }

    /// The support engineers group's display name, with its default applied.
    pub fn engineers_group_name(&self) -> String {
        self.spec
            .support_engineers
            .as_ref()
            .and_then(|g| g.group_display_name.clone())
            .unwrap_or_else(|| {
                format!(
                    "{}{ENGINEERS_GROUP_SUFFIX}",
                    self.metadata.name.as_deref().unwrap_or_default()
                )
            })
    }

    /// The licence mode, with its default applied.
    pub fn license_mode(&self) -> LicenseMode {
        self.spec.license_mode.unwrap_or_default()
    }

    /// Whether accounts must be behind an applied barrier before they are enabled (default true).
    pub fn barriers_required(&self) -> bool {
        self.spec
            .barriers
            .as_ref()
            .and_then(|b| b.required)
            .unwrap_or(true)
    }

    /// Whether the operator generates this vendor's two BarrierSegments (default true).
    pub fn generates_segments(&self) -> bool {
        self.spec
            .barriers
            .as_ref()
            .and_then(|b| b.generate_segments)
            .unwrap_or(true)
    }

    /// The user attribute barrier segments filter on, with its default applied.
    pub fn membership_attribute(&self) -> MembershipAttribute {
        self.spec
            .barriers
            .as_ref()
            .and_then(|b| b.membership_attribute)
            .unwrap_or_default()
    }

    /// The account limit, with its default applied.
    pub fn max_accounts(&self) -> usize {
        self.spec.max_accounts.unwrap_or(DEFAULT_MAX_ACCOUNTS).max(0) as usize
    }

    /// Whether the platform team lets this vendor's licences adopt existing users.
    pub fn adoption_allowed(&self) -> bool {
        self.spec
            .adoption
            .as_ref()
            .and_then(|a| a.policy)
            .unwrap_or_default()
            == VendorAdoptionPolicy::Allowed
    }

    /// Whether the operator may set the password of a user it adopted.
    pub fn manages_adopted_credentials(&self) -> bool {
        self.spec
            .adoption
            .as_ref()
            .and_then(|a| a.manage_credentials)
            .unwrap_or(false)
    }

    /// The attribute value that places a user in this vendor's accounts segment.
    pub fn accounts_segment_value(&self) -> String {
        format!("{}-accounts", self.metadata.name.as_deref().unwrap_or_default())
    }

    /// The name of this vendor's one segment in multi-segment mode (accounts and engineers).
    pub fn vendor_segment_value(&self) -> String {
        format!("{}-vendor", self.metadata.name.as_deref().unwrap_or_default())
    }

    /// The attribute value that places a user in this vendor's engineers segment.
    pub fn engineers_segment_value(&self) -> String {
        format!("{}-engineers", self.metadata.name.as_deref().unwrap_or_default())
    }
}

impl MembershipAttribute {
    /// The Graph user property (a path inside the user object) this attribute maps to, or
    /// `None` for `MemberOf`, which segments on group ids instead of a user property.
    pub fn graph_property(self) -> Option<(&'static str, Option<String>)> {
        use MembershipAttribute::*;
        let ext = |n: u8| {
            Some((
                "onPremisesExtensionAttributes",
                Some(format!("extensionAttribute{n}")),
            ))
        };
        match self {
            ExtensionAttribute1 => ext(1),
            ExtensionAttribute2 => ext(2),
            ExtensionAttribute3 => ext(3),
            ExtensionAttribute4 => ext(4),
            ExtensionAttribute5 => ext(5),
            ExtensionAttribute6 => ext(6),
            ExtensionAttribute7 => ext(7),
            ExtensionAttribute8 => ext(8),
            ExtensionAttribute9 => ext(9),
            ExtensionAttribute10 => ext(10),
            ExtensionAttribute11 => ext(11),
            ExtensionAttribute12 => ext(12),
            ExtensionAttribute13 => ext(13),
            ExtensionAttribute14 => ext(14),
            ExtensionAttribute15 => ext(15),
            Department => Some(("department", None)),
            Company => Some(("companyName", None)),
            MemberOf => None,
        }
    }
}
