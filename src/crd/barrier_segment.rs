//! `BarrierSegment`: one information-barrier organization segment and the policy assigned to it.

// kube's derive repeats `type_ = "string"` across printer columns, which clippy misreads as a
// duplicated attribute.
#![allow(clippy::duplicated_attributes)]

use super::formats;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// One information-barrier segment (who is in it) and its policy (whom its members may reach).
/// Barriers are bidirectional: an allow list must be mirrored by the segments it names, or the
/// tenant refuses to apply the policies; the operator checks this before asking.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "remoteassist.dev",
    cel,
    version = "v1alpha1",
    kind = "BarrierSegment",
    plural = "barriersegments",
    shortname = "bs",
    category = "remoteassist",
    status = "BarrierSegmentStatus",
    doc = "An information-barrier organization segment and its policy, so that members reach only the segments they are allowed to.",
    printcolumn(name = "Segment", type_ = "string", json_path = ".status.segmentName"),
    printcolumn(name = "Policy", type_ = "string", json_path = ".status.policyType"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("!has(self.spec.blockedSegments) || !(self.metadata.name in self.spec.blockedSegments)")
        .message("a segment cannot block itself: information barriers never restrict communication inside a segment")
        .reason(Reason::FieldValueInvalid),
    validation = Rule::new("!has(self.spec.members.hostStaff) || has(self.spec.allowedSegments)")
        .message("a hostStaff segment needs allowedSegments (it may be empty): its policy allows the vendors' engineers' segments, which the operator adds")
        .reason(Reason::FieldValueRequired),
    validation = Rule::new("size(self.metadata.name) <= 64")
        .message("a BarrierSegment name is at most 64 characters (the limit of an information-barrier policy name)"),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!(has(self.allowedSegments) && has(self.blockedSegments))")
    .message("allowedSegments and blockedSegments are mutually exclusive: a policy either allows or blocks")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("!(has(oldSelf.allowedSegments) && has(self.blockedSegments)) && !(has(oldSelf.blockedSegments) && has(self.allowedSegments))")
    .message("the policy type cannot change after creation: delete this BarrierSegment and create a new one")
    .reason(Reason::FieldValueForbidden))]
#[x_kube(validation = Rule::new("has(self.segmentName) == has(oldSelf.segmentName)")
    .message("segmentName cannot be added or removed after creation: segments cannot be renamed"))]
pub struct BarrierSegmentSpec {
    /// Name of the organization segment in the tenant. Default: this object's name.
    /// Immutable: segments cannot be renamed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64), pattern(formats::DIRECTORY_NAME))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("segmentName is immutable: segments cannot be renamed"))]
    pub segment_name: Option<String>,

    /// Who is in the segment. Exactly one source.
    pub members: SegmentMembers,

    /// Names of BarrierSegments whose members this segment's members may reach (an allow
    /// policy). The segment itself is always included. Mutually exclusive with `blockedSegments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 100),
        inner(length(min = 1, max = 64), pattern(formats::DNS_SUBDOMAIN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub allowed_segments: Option<Vec<String>>,

    /// Names of BarrierSegments whose members this segment's members may not reach (a block
    /// policy). Must not name this segment. Mutually exclusive with `allowedSegments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 100),
        inner(length(min = 1, max = 64), pattern(formats::DNS_SUBDOMAIN))
    )]
    #[schemars(extend("x-kubernetes-list-type" = "set"))]
    pub blocked_segments: Option<Vec<String>>,

    /// `Active` (default) or `Inactive`. Only Active policies take effect when policies are
    /// applied; set Inactive to lift this segment's barrier without deleting it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_state: Option<PolicyState>,

    /// Take over an organization segment that already exists in the tenant under this
    /// segment's name, and the policy assigned to it, although the operator did not create
    /// them. Default false: such a segment or policy is a `Conflict` and nothing in the tenant
    /// is changed for this BarrierSegment.
    ///
    /// What the operator created it knows from its own records: the identities its
    /// `New-OrganizationSegment` and `New-InformationBarrierPolicy` returned, kept in
    /// `status.created`, and the marker `remoteassist.dev/owner=<this object's uid>` it writes
    /// into the Comment of every policy it creates (segments have no Comment, so a segment
    /// created just before a crash is recognised by `status.created.pendingSegment`, recorded
    /// just before the create is sent). Anything else is not the operator's.
    ///
    /// An adopted segment or policy is brought to this spec (filter, allow or block list,
    /// state) while it is adopted, but never removed: deleting this BarrierSegment leaves it in
    /// the tenant as it then is. Setting this back to false makes it a `Conflict` again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adopt_existing: Option<bool>,
}

/// Where a segment's members come from: exactly one of the fields.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.vendorAccounts) ? 1 : 0) + (has(self.vendorEngineers) ? 1 : 0) + (has(self.vendor) ? 1 : 0) + (has(self.hostStaff) ? 1 : 0) + (has(self.groupId) ? 1 : 0) + (has(self.userAttribute) ? 1 : 0) == 1")
    .message("members needs exactly one of vendorAccounts, vendorEngineers, vendor, hostStaff, groupId or userAttribute")
    .reason(Reason::FieldValueInvalid))]
pub struct SegmentMembers {
    /// The service accounts of the named VendorTenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_SUBDOMAIN))]
    pub vendor_accounts: Option<String>,

    /// The support engineers of the named VendorTenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_SUBDOMAIN))]
    pub vendor_engineers: Option<String>,

    /// The named VendorTenant's accounts and its engineers together: the multi-segment design,
    /// in which an engineer who serves several vendors is in each of their segments. Accounts
    /// are matched by the vendor's barrier attribute, engineers by `MemberOf` the vendor's
    /// engineers group (by object id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63), pattern(formats::DNS_SUBDOMAIN))]
    pub vendor: Option<String>,

    /// The host's other staff: users whose attribute equals the value, never any vendor's
    /// accounts. With it, engineers keep reaching their colleagues: in single-segment mode this
    /// segment and every vendor's engineers segment allow each other (engineers are left out of
    /// it, since a user can be in one segment only); in multi-segment mode the vendors'
    /// engineers are in it too. Needs `allowedSegments` (it may be empty): the engineers'
    /// segments are added to it by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_staff: Option<UserAttributeMatch>,

    /// The members of an Entra group, by object id (the segment filters on `MemberOf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(pattern(formats::GUID))]
    pub group_id: Option<String>,

    /// The users whose attribute equals a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attribute: Option<UserAttributeMatch>,
}

/// Users whose `attribute` equals `value`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct UserAttributeMatch {
    /// The attribute, as information barriers name it.
    pub attribute: SegmentAttribute,
    /// The value to match exactly. Letters, digits, space and `_ . : @ -` only, so it can never
    /// be read as filter syntax.
    #[schemars(length(min = 1, max = 256), pattern(formats::ATTRIBUTE_VALUE))]
    pub value: String,
}

// User attributes a segment can filter on by value.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum SegmentAttribute {
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
    ExtensionAttribute15,
    Department,
    Company,
    Co,
    UsageLocation,
}

// Whether a policy takes effect when policies are applied.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PolicyState {
    /// The policy is applied.
    #[default]
    Active,
    /// The policy is kept but not applied.
    Inactive,
}

// Kind of information-barrier policy, fixed at creation.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyType {
    /// Members may reach only the listed segments.
    Allow,
    /// Members may reach everyone but the listed segments.
    Block,
    /// The segment has no policy.
    None,
}

/// Observed state of a BarrierSegment.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BarrierSegmentStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready` (the roll-up) and its aspects: `SegmentReady`, `PolicyApplied`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,

    /// The segment's name in the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_name: Option<String>,

    /// The segment's identity (GUID) in the tenant, once created or adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,

    /// The policy's identity (GUID) in the tenant, once created or adopted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,

    /// What the operator itself created in the tenant for this BarrierSegment: the only
    /// objects it changes without `adoptExisting`, and the only ones it ever removes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<CreatedObjects>,

    /// The policy's type as created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_type: Option<PolicyType>,

    /// When the operator last created or changed the segment or its policy; only an
    /// application started after this puts the change into effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_changed: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// What the next policy application would change for this segment's members (the
    /// definitions written since the last one that covers them); cleared once applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_change: Option<String>,

    /// The policy application whose completion put this segment's current policy into effect.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub applied_by: Option<String>,

    /// A short summary for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The tenant objects the operator created for one BarrierSegment, by identity.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct CreatedObjects {
    /// The organization segment's identity, as the operator's `New-OrganizationSegment`
    /// returned it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub segment_id: Option<String>,

    /// The policy's identity, as the operator's `New-InformationBarrierPolicy` returned it (its
    /// Comment also carries `remoteassist.dev/owner=<uid>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_id: Option<String>,

    /// The segment name a `New-OrganizationSegment` was about to be sent for, recorded before
    /// it is sent and cleared once its answer is recorded: a segment of this name found while
    /// it is set is the one the operator created just before a crash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_segment: Option<String>,
}

impl BarrierSegment {
    /// Whether the spec opts in to taking over existing tenant objects of its name.
    pub fn adopts_existing(&self) -> bool {
        self.spec.adopt_existing.unwrap_or(false)
    }

    /// The segment's name in the tenant, with its default applied.
    pub fn segment_name(&self) -> String {
        self.spec
            .segment_name
            .clone()
            .unwrap_or_else(|| self.metadata.name.clone().unwrap_or_default())
    }

    /// The policy type the spec asks for.
    pub fn policy_type(&self) -> PolicyType {
        match (&self.spec.allowed_segments, &self.spec.blocked_segments) {
            (Some(_), _) => PolicyType::Allow,
            (None, Some(_)) => PolicyType::Block,
            (None, None) => PolicyType::None,
        }
    }
}
