//! Every `reason` the operator writes in a status condition, what it means for Argo CD's health
//! of the object, and which kinds can carry it.
//!
//! A condition's reason is the machine-readable half of its state: the Argo CD health checks in
//! `deploy/argocd/resource_customizations/remoteassist.dev/<Kind>/health.lua` classify a `Ready`
//! condition that is not True by its reason alone (they get no string library to read messages).
//! `Ready` rolls up the kind's aspects, so every reason of an aspect can become `Ready`'s.
//!
//! This list is kept complete and in step with the scripts by three checks:
//! - [`ConditionUpdate::new`](super::conditions::ConditionUpdate::new) `debug_assert!`s that its
//!   reason is listed here, so a test that makes the operator write an unlisted reason panics;
//! - the unit tests below scan `src/` for reason literals in reason positions and fail on any
//!   that is not listed (and on a listed reason nothing writes any more);
//! - `tests/argocd_health_reasons.rs` reads each kind's health.lua and fails when a reason the
//!   kind can carry is missing from its tables or classified differently from here.
//!
//! Adding a reason: add it here with its [`Health`] and kinds, then to the matching table of each
//! of those kinds' health.lua, then run `scripts/lua-health.sh --write-cm`.

/// Argo CD's health of an object whose `Ready` condition has this reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Health {
    /// The reason of a True condition: converged. The scripts need no table for these (a True
    /// `Ready` is Healthy whatever its reason).
    Healthy,
    /// Not True for a reason that resolves by itself: waiting, applying, replicating, retrying,
    /// throttled, pending. Health script table `PROGRESSING`.
    Progressing,
    /// Not True for a reason that needs a person: refused, conflict, no seats, a tenant error
    /// that retrying does not fix. Health script table `TERMINAL`.
    Degraded,
    /// Stopped on purpose (suspended, or plan/observe mode holding back changes until a person
    /// acts). Health script table `SUSPENDED`.
    Suspended,
}

impl Health {
    pub fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "Healthy",
            Health::Progressing => "Progressing",
            Health::Degraded => "Degraded",
            Health::Suspended => "Suspended",
        }
    }
}

/// The operator's three kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    VendorTenant,
    BarrierSegment,
    RemoteAssistLicense,
}

impl Kind {
    pub const ALL: [Kind; 3] = [
        Kind::VendorTenant,
        Kind::BarrierSegment,
        Kind::RemoteAssistLicense,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::VendorTenant => "VendorTenant",
            Kind::BarrierSegment => "BarrierSegment",
            Kind::RemoteAssistLicense => "RemoteAssistLicense",
        }
    }
}

/// One condition reason.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reason {
    /// CamelCase, exactly as written in `status.conditions[].reason`.
    pub name: &'static str,
    pub health: Health,
    /// The kinds whose conditions can carry it (directly or through the `Ready` roll-up).
    pub kinds: &'static [Kind],
    /// What it means, in a few words.
    pub meaning: &'static str,
}

use Health::{Degraded, Healthy, Progressing, Suspended};

const L: &[Kind] = &[Kind::RemoteAssistLicense];
const V: &[Kind] = &[Kind::VendorTenant];
const B: &[Kind] = &[Kind::BarrierSegment];
const LV: &[Kind] = &[Kind::RemoteAssistLicense, Kind::VendorTenant];
const LB: &[Kind] = &[Kind::RemoteAssistLicense, Kind::BarrierSegment];
const VB: &[Kind] = &[Kind::VendorTenant, Kind::BarrierSegment];
const ALL: &[Kind] = &Kind::ALL;

const fn r(name: &'static str, health: Health, kinds: &'static [Kind], meaning: &'static str) -> Reason {
    Reason {
        name,
        health,
        kinds,
        meaning,
    }
}

/// Every condition reason the operator writes, grouped by where it comes from.
#[rustfmt::skip]
pub const REASONS: &[Reason] = &[
    // The Ready roll-up (crd::conditions::ready_rollup), on every kind.
    r("Converged", Healthy, ALL, "every aspect is True"),
    r("Pending", Progressing, ALL, "an aspect has not been reported yet; on a BarrierSegment's PolicyApplied also: waiting for an application that includes the latest definition"),
    // RemoteAssistLicense refusals before anything is read in the tenant (license::admit,
    // license::authority): AccountReady False, nothing written, any bound account disabled.
    r("VendorNotFound", Degraded, L, "the VendorTenant in spec.vendorRef does not exist"),
    r("NamespaceNotAllowed", Degraded, L, "the VendorTenant does not allow the licence's namespace"),
    r("LicenseOverrideRefused", Degraded, L, "spec.licenses is set but the vendor assigns licences to its group (licenseMode: Group)"),
    r("OutsideVendorDomain", Degraded, L, "the user principal name (or the user found) is not in the vendor's domain"),
    r("LicenseNotOffered", Degraded, L, "spec.licenses names a SKU the VendorTenant does not list"),
    r("AccountLimitReached", Degraded, L, "the vendor's spec.maxAccounts is used up by older licences"),
    r("AdoptionNotAllowed", Degraded, L, "adoption: AdoptOnly but the VendorTenant does not allow adoption"),
    r("VendorNotReady", Progressing, L, "the VendorTenant has no accounts group yet (normal start-up)"),
    r("UnknownLicense", Degraded, LV, "a requested SKU or service plan does not exist in the tenant"),
    // RemoteAssistLicense plan (license::plan): blocked, or one part refused while the rest goes on.
    r("SecretConflict", Degraded, L, "the credentials Secret exists and is not this licence's"),
    r("UserNotFound", Degraded, L, "adoption: AdoptOnly and no user exists to adopt"),
    r("Conflict", Degraded, ALL, "the name is taken by something the operator may not bind: a user or group someone else manages, or a segment/policy name the tenant already uses; several BarrierSegments selecting one vendor's accounts"),
    r("PrivilegedUser", Degraded, L, "the user to adopt holds a directory role; it is never adopted"),
    r("AdoptionCheckPending", Progressing, L, "the directory roles of the user to adopt are not known yet (fail closed until they are read)"),
    r("CredentialsNotManaged", Degraded, L, "a password rotation was requested for an adopted user whose vendor does not let the operator set passwords; the request is ignored"),
    r("RotationRateLimited", Progressing, L, "a password was set recently; the rotation runs when the interval has passed"),
    // RemoteAssistLicense AccountReady (license::status).
    r("Replicating", Progressing, L, "a new object is not visible everywhere in the directory yet"),
    r("DirectoryRoleMissing", Degraded, L, "Graph refused to set the account's password (403): the operator's app lacks the User Administrator role over the account"),
    r("Creating", Progressing, L, "the user is being created"),
    r("JoiningGroup", Progressing, L, "the add to the accounts group is queued and written behind with other accounts' adds, in PATCHes of up to 20"),
    r("Provisioned", Healthy, L, "the operator's user is in the accounts group"),
    r("Adopted", Healthy, L, "the adopted user is in the accounts group"),
    // RemoteAssistLicense LicensesAssigned (license::status).
    r("Assigned", Healthy, L, "every requested licence is assigned"),
    r("Assigning", Progressing, L, "licences are being assigned"),
    r("AwaitingGroupLicenses", Progressing, L, "waiting for the accounts group's licences to reach the account"),
    r("NoSeats", Degraded, L, "no seats left for a SKU"),
    r("GroupLicenseError", Degraded, L, "group licensing recorded an error on the account (CountViolation, MutuallyExclusiveViolation, DependencyViolation, ProhibitedInUsageLocationViolation, UniquenessViolation); the message names it and the fix"),
    r("Released", Suspended, L, "licences are released while suspended"),
    // RemoteAssistLicense BarrierEnforced (license::barrier).
    r("NotRequired", Healthy, L, "the vendor does not require barriers"),
    r("Enforced", Healthy, L, "an application that started after the account joined its segment completed"),
    r("NoSegment", Progressing, L, "no BarrierSegment holds the vendor's accounts yet (it is being generated, or has to be written)"),
    r("SegmentConflict", Degraded, L, "several BarrierSegments select the vendor's accounts; none is trusted"),
    r("NotIsolating", Degraded, L, "the accounts' BarrierSegment has no Active allow policy"),
    r("SegmentNotApplied", Progressing, L, "the accounts' BarrierSegment's policy is not applied yet"),
    r("AttributePending", Progressing, L, "the account has not been placed in its segment yet"),
    r("Applying", Progressing, LB, "a policy application is running"),
    r("ApplicationFailed", Degraded, LB, "the policy application failed"),
    r("AwaitingApplication", Progressing, L, "waiting for a policy application that starts after the account joined its segment"),
    // RemoteAssistLicense Ready (license::status::finish).
    r("Enabling", Progressing, L, "everything is in place; sign-in is being enabled"),
    r("Suspended", Suspended, L, "spec.suspended is true: sign-in blocked, licences released"),
    // RemoteAssistLicense plan and observe modes (license::mode): the Planned condition (True),
    // and Ready while actions are held back.
    r("NothingToDo", Healthy, L, "plan mode: nothing would change"),
    r("NoDrift", Healthy, L, "observe mode: the account matches its spec"),
    r("Planned", Suspended, L, "plan mode: actions are planned and held back until the annotation is removed"),
    r("DriftObserved", Suspended, L, "observe mode: differences are reported and left as they are"),
    // VendorTenant GroupsReady and LicensesAssigned (vendor, vendor::seats).
    r("Bound", Healthy, V, "both groups exist and the engineers are members"),
    r("EngineerShared", Degraded, V, "single-segment tenant: a support engineer is listed by another vendor too"),
    r("EngineerSegmentLimit", Degraded, V, "multi-segment tenant: a support engineer already serves as many vendors as a user can have segments"),
    r("ComplianceSignInRequired", Degraded, V, "the delegated compliance credential was refused or is missing (revoked, expired, never signed in); the message names the login command"),
    r("BarrierModeUnknown", Progressing, V, "the tenant's information-barrier mode is not read yet; the generated segments wait for it"),
    r("EngineerNotFound", Degraded, V, "a support engineer's UPN does not exist in the tenant"),
    r("SegmentNameTaken", Degraded, VB, "the segment name is held by another BarrierSegment (or, for a vendor, a segment it does not own exists under a generated name)"),
    r("SeatsAvailable", Healthy, V, "every SKU has the seats the vendor's accounts need"),
    r("InsufficientSeats", Degraded, V, "not enough free seats for the vendor's accounts"),
    r("GroupLicenseRefused", Degraded, V, "the tenant refused to assign licences to the accounts group"),
    // VendorTenant Ready while it is deleted (vendor::cleanup).
    r("Terminating", Progressing, V, "waiting for the vendor's RemoteAssistLicenses to be deleted first"),
    r("AccountsHoldSegments", Degraded, V, "enabled accounts are still in the vendor's segments; its barriers stay until they are disabled or deleted"),
    // BarrierSegment SegmentReady (segment).
    r("MembersUnresolved", Degraded, B, "spec.members cannot be turned into a filter (no source, no such vendor, or the vendor has no group id yet)"),
    r("UnknownSegment", Degraded, B, "an allowed or blocked BarrierSegment does not exist"),
    r("Refused", Degraded, B, "the tenant refused a segment or policy command"),
    r("WaitingForApplication", Progressing, B, "a policy application is running; definitions cannot change until it ends"),
    r("Defined", Healthy, B, "the segment and its policy are defined in the tenant"),
    // BarrierSegment PolicyApplied (segment::applied).
    r("NoPolicy", Healthy, B, "the segment has no policy of its own"),
    r("Applied", Healthy, B, "in effect since an application that started after the last change completed"),
    r("CrossVendorPath", Degraded, B, "applications are held back: the policies would open a path between vendors"),
    r("Asymmetric", Degraded, B, "applications are held back: an allow list is not mirrored"),
    r("Unverified", Progressing, B, "the last application's answer could not be read or believed; another is requested"),
    // BarrierSegment Ready while it is deleted (segment::wait_for_holders).
    r("AccountsHoldSegment", Degraded, B, "enabled accounts are still in the segment; it stays until they are disabled or deleted"),
    // Reconcile errors (context::Error::reason). Today these are reported as Events only (the
    // error policy writes no condition), but they are documented as condition reasons too, so
    // they are classified here and in every script.
    r("Throttled", Progressing, ALL, "Graph throttled the operator; retried after Retry-After"),
    r("AuthenticationFailed", Degraded, ALL, "the operator's Graph credentials were refused"),
    r("TenantUnreachable", Progressing, ALL, "the tenant could not be reached; retried"),
    r("PermissionDenied", Degraded, ALL, "Graph answered 403: the operator's app lacks a permission"),
    r("GraphUnavailable", Progressing, ALL, "Graph answered with a transient error; retried"),
    r("GraphError", Degraded, ALL, "Graph refused a request with a non-transient error"),
    r("ComplianceUnreachable", Progressing, ALL, "the compliance endpoint could not be reached; retried"),
    r("ComplianceError", Progressing, ALL, "the compliance endpoint answered with an error; retried"),
    r("KubernetesError", Progressing, ALL, "a Kubernetes API call failed; retried"),
    r("FinalizerUpdateFailed", Progressing, ALL, "adding or removing the finalizer failed; retried"),
    r("Waiting", Progressing, ALL, "cleanup waits for something else first"),
];

/// The registered reason of that name.
pub fn find(name: &str) -> Option<&'static Reason> {
    REASONS.iter().find(|r| r.name == name)
}

pub fn is_registered(name: &str) -> bool {
    find(name).is_some()
}

/// The reasons a kind's conditions can carry.
pub fn carried_by(kind: Kind) -> impl Iterator<Item = &'static Reason> {
    REASONS.iter().filter(move |r| r.kinds.contains(&kind))
}

#[cfg(test)]
mod tests {
    //! Completeness of [`REASONS`]: a scan of the operator's source for reason literals.
    //!
    //! The scan tokenizes every `src/**/*.rs` (without `*_tests.rs` files and `#[cfg(test)]`
    //! items), and takes a CamelCase string literal (or a `const` holding one, or a local `let`
    //! bound to one by an `if`/`else`) as a condition reason where it stands in one of these
    //! positions:
    //! - right after a `Status::…` argument or tuple element (`ConditionUpdate::new(t, Status::False,
    //!   "X", ..)`, `b.set(t, Status::True, "X", ..)`, `(Status::False, "X", message)`);
    //! - the argument of a function, method or closure whose parameter there is named `reason`
    //!   (`refusal("X", ..)`, `blocked(..)`, `pending(..)`, `verdict(..)`, `refuse(..)`, ...);
    //! - a `reason: "X"` field (`Refusal { reason: "X", .. }`);
    //! - the first of a pair, as a tuple or a tuple variant (`("X", message)`, `Halt::Refused(reason,
    //!   message)`), the shape reasons travel in between the functions that decide and write them;
    //! - anywhere in a `fn reason` (`context::Error::reason`).
    //!
    //! Events are not conditions: the arguments of `event(..)` and of the vendor reconciler's
    //! `done` list of Events are left out.
    use super::*;
    use std::collections::{BTreeMap, BTreeSet, HashMap};
    use std::path::{Path, PathBuf};

    #[derive(Clone, Debug, PartialEq)]
    enum Tok {
        Ident(String),
        Str(String),
        Punct(String),
        /// Numbers, char literals, lifetimes.
        Other,
    }

    #[derive(Clone, Debug)]
    enum Node {
        Tok(Tok, usize),
        Group(char, Vec<Node>),
    }

    fn lex(src: &str) -> Vec<(Tok, usize)> {
        let c: Vec<char> = src.chars().collect();
        let at = |i: usize| c.get(i).copied().unwrap_or('\0');
        let (mut i, mut line, mut out) = (0, 1, Vec::new());
        while i < c.len() {
            let ch = c[i];
            if ch == '\n' {
                line += 1;
                i += 1;
            } else if ch.is_whitespace() {
                i += 1;
            } else if ch == '/' && at(i + 1) == '/' {
                while i < c.len() && c[i] != '\n' {
                    i += 1;
                }
            } else if ch == '/' && at(i + 1) == '*' {
                let mut depth = 0;
                while i < c.len() {
                    if c[i] == '/' && at(i + 1) == '*' {
                        depth += 1;
                        i += 2;
                    } else if c[i] == '*' && at(i + 1) == '/' {
                        depth -= 1;
                        i += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        line += usize::from(c[i] == '\n');
                        i += 1;
                    }
                }
            } else if let Some(start) = raw_string_start(&c, i) {
                let mut j = start;
                let mut hashes = 0;
                while at(j) == '#' {
                    hashes += 1;
                    j += 1;
                }
                j += 1; // the opening quote
                let (from, first_line) = (j, line);
                while j < c.len() && !(c[j] == '"' && (0..hashes).all(|k| at(j + 1 + k) == '#')) {
                    line += usize::from(c[j] == '\n');
                    j += 1;
                }
                out.push((Tok::Str(c[from..j.min(c.len())].iter().collect()), first_line));
                i = j + 1 + hashes;
            } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
                let mut j = i + if ch == 'b' { 2 } else { 1 };
                let (mut s, first_line) = (String::new(), line);
                while j < c.len() && c[j] != '"' {
                    if c[j] == '\\' {
                        s.push('\\');
                        j += 1;
                    }
                    if let Some(&x) = c.get(j) {
                        line += usize::from(x == '\n');
                        s.push(x);
                    }
                    j += 1;
                }
                out.push((Tok::Str(s), first_line));
                i = j + 1;
            } else if ch == '\'' {
                // A char literal ('x', '\n', '\'', '\u{..}') or a lifetime ('a, 'static).
                if at(i + 1) == '\\' {
                    let mut j = i + 3;
                    while j < c.len() && c[j] != '\'' {
                        j += 1;
                    }
                    i = j + 1;
                } else if at(i + 2) == '\'' {
                    i += 3;
                } else {
                    i += 1;
                    while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                        i += 1;
                    }
                }
                out.push((Tok::Other, line));
            } else if ch.is_alphabetic() || ch == '_' {
                let from = i;
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Ident(c[from..i].iter().collect()), line));
            } else if ch.is_ascii_digit() {
                while i < c.len() && (c[i].is_alphanumeric() || c[i] == '_') {
                    i += 1;
                }
                out.push((Tok::Other, line));
            } else {
                let two: String = [ch, at(i + 1)].iter().collect();
                let p =
                    if ["::", "=>", "->", "==", "!=", "<=", ">=", "&&", "||", ".."].contains(&two.as_str()) {
                        two
                    } else {
                        ch.to_string()
                    };
                i += p.chars().count();
                out.push((Tok::Punct(p), line));
            }
        }
        out
    }

    /// Where the `#`s or the quote of a raw string start, if one starts at `i`.
    fn raw_string_start(c: &[char], i: usize) -> Option<usize> {
        let at = |i: usize| c.get(i).copied().unwrap_or('\0');
        let prefix = match (at(i), at(i + 1)) {
            ('r', _) => 1,
            ('b', 'r') => 2,
            _ => return None,
        };
        if i > 0 && (c[i - 1].is_alphanumeric() || c[i - 1] == '_') {
            return None;
        }
        let mut j = i + prefix;
        while at(j) == '#' {
            j += 1;
        }
        (at(j) == '"').then_some(i + prefix)
    }

    fn tree(tokens: Vec<(Tok, usize)>) -> Vec<Node> {
        let mut stack: Vec<(char, Vec<Node>)> = vec![(' ', Vec::new())];
        for (t, line) in tokens {
            match &t {
                Tok::Punct(p) if matches!(p.as_str(), "(" | "[" | "{") => {
                    stack.push((p.chars().next().expect("one char"), Vec::new()))
                }
                Tok::Punct(p) if matches!(p.as_str(), ")" | "]" | "}") => {
                    if stack.len() > 1 {
                        let (d, nodes) = stack.pop().expect("open group");
                        stack.last_mut().expect("root").1.push(Node::Group(d, nodes));
                    }
                }
                _ => stack.last_mut().expect("root").1.push(Node::Tok(t, line)),
            }
        }
        while stack.len() > 1 {
            let (d, nodes) = stack.pop().expect("open group");
            stack.last_mut().expect("root").1.push(Node::Group(d, nodes));
        }
        stack.pop().expect("root").1
    }

    fn ident(n: Option<&Node>) -> Option<&str> {
        match n {
            Some(Node::Tok(Tok::Ident(s), _)) => Some(s),
            _ => None,
        }
    }

    fn punct(n: Option<&Node>, p: &str) -> bool {
        matches!(n, Some(Node::Tok(Tok::Punct(q), _)) if q == p)
    }

    /// Drops `#[cfg(test)]` items: the attribute, any attributes after it, and the item up to
    /// its `;` or through its body.
    fn strip_tests(nodes: Vec<Node>) -> Vec<Node> {
        let mut out = Vec::new();
        let mut it = nodes.into_iter().peekable();
        while let Some(n) = it.next() {
            let cfg_test = |g: &Node| match g {
                Node::Group('[', inner) => {
                    ident(inner.first()) == Some("cfg")
                        && matches!(inner.get(1), Some(Node::Group('(', a)) if a.len() == 1 && ident(a.first()) == Some("test"))
                }
                _ => false,
            };
            if punct(Some(&n), "#") && it.peek().is_some_and(cfg_test) {
                for n in it.by_ref() {
                    if punct(Some(&n), ";") || matches!(n, Node::Group('{', _)) {
                        break;
                    }
                }
                continue;
            }
            out.push(match n {
                Node::Group(d, inner) => Node::Group(d, strip_tests(inner)),
                t => t,
            });
        }
        out
    }

    /// Splits a group's content at its top-level commas; `angles` also treats `<`/`>` as
    /// brackets (for parameter lists, whose types may hold commas).
    fn split(nodes: &[Node], angles: bool) -> Vec<&[Node]> {
        let (mut out, mut from, mut depth) = (Vec::new(), 0, 0i32);
        for (i, n) in nodes.iter().enumerate() {
            if angles && punct(Some(n), "<") {
                depth += 1;
            } else if angles && punct(Some(n), ">") {
                depth -= 1;
            } else if depth <= 0 && punct(Some(n), ",") {
                out.push(&nodes[from..i]);
                from = i + 1;
            }
        }
        if from < nodes.len() {
            out.push(&nodes[from..]);
        }
        out
    }

    /// The binding a parameter declares, and whether it is the `self` receiver.
    fn param_name(p: &[Node]) -> (Option<&str>, bool) {
        let mut p = p;
        while punct(p.first(), "&")
            || ident(p.first()) == Some("mut")
            || matches!(p.first(), Some(Node::Tok(Tok::Other, _)))
        {
            p = &p[1..];
        }
        match ident(p.first()) {
            Some("self") => (None, true),
            name => (name, false),
        }
    }

    /// The indices of the parameters named `reason` (the receiver not counted), and whether
    /// there is a receiver.
    fn reason_params(params: &[&[Node]]) -> (BTreeSet<usize>, bool) {
        let mut receiver = false;
        let mut found = BTreeSet::new();
        let mut index = 0;
        for p in params {
            match param_name(p) {
                (_, true) => receiver = true,
                (name, false) => {
                    if name == Some("reason") {
                        found.insert(index);
                    }
                    index += 1;
                }
            }
        }
        (found, receiver)
    }

    /// What the functions, methods, closures and constants of the whole source say.
    #[derive(Default)]
    struct Defs {
        /// `const NAME: &str = "Literal";`
        consts: HashMap<String, String>,
        /// `.name(..)` calls: the argument indices of `reason` parameters.
        methods: HashMap<String, BTreeSet<usize>>,
        /// `Type::name(..)` calls.
        associated: HashMap<String, BTreeSet<usize>>,
        /// `name(..)` and `module::name(..)` calls, by file (closures are local to theirs).
        free: HashMap<String, BTreeMap<String, BTreeSet<usize>>>,
    }

    /// Names whose `reason` parameter is an Event's: Events are not conditions.
    const EVENTS: &[&str] = &["event"];

    fn collect(nodes: &[Node], file: &str, impl_type: Option<&str>, defs: &mut Defs) {
        let mut i = 0;
        while i < nodes.len() {
            match ident(nodes.get(i)) {
                Some("const") => {
                    let name = ident(nodes.get(i + 1));
                    let eq = (i..nodes.len()).find(|&j| punct(nodes.get(j), "=") || punct(nodes.get(j), ";"));
                    if let (Some(name), Some(eq)) = (name, eq)
                        && let Some(Node::Tok(Tok::Str(s), _)) = nodes.get(eq + 1)
                        && punct(nodes.get(eq + 2), ";")
                    {
                        defs.consts.insert(name.to_owned(), s.clone());
                    }
                }
                Some("impl") => {
                    let body = (i + 1..nodes.len())
                        .find(|&j| matches!(nodes[j], Node::Group('{', _)) || punct(nodes.get(j), ";"));
                    if let Some(body) = body
                        && let Node::Group('{', inner) = &nodes[body]
                    {
                        let mut depth = 0;
                        let mut name = None;
                        for n in &nodes[i + 1..body] {
                            if punct(Some(n), "<") {
                                depth += 1;
                            } else if punct(Some(n), ">") {
                                depth -= 1;
                            } else if depth == 0
                                && let Some(id) = ident(Some(n))
                                && !matches!(id, "for" | "where")
                            {
                                name = Some(id);
                            }
                        }
                        collect(inner, file, name, defs);
                        i = body + 1;
                        continue;
                    }
                }
                Some("fn") => {
                    let name = ident(nodes.get(i + 1)).unwrap_or_default().to_owned();
                    if let Some(Node::Group('(', params)) =
                        nodes[i + 1..].iter().find(|n| matches!(n, Node::Group('(', _)))
                    {
                        let (found, receiver) = reason_params(&split(params, true));
                        if !found.is_empty() && !EVENTS.contains(&name.as_str()) {
                            let indices = match (receiver, impl_type) {
                                (true, _) => defs.methods.entry(name).or_default(),
                                (false, Some(t)) => {
                                    defs.associated.entry(format!("{t}::{name}")).or_default()
                                }
                                (false, None) => defs
                                    .free
                                    .entry(file.to_owned())
                                    .or_default()
                                    .entry(name)
                                    .or_default(),
                            };
                            indices.extend(found);
                        }
                    }
                }
                Some("let") => {
                    // let name = [move] |params| ...
                    if let Some(name) = ident(nodes.get(i + 1))
                        && punct(nodes.get(i + 2), "=")
                    {
                        let mut j = i + 3;
                        if ident(nodes.get(j)) == Some("move") {
                            j += 1;
                        }
                        if punct(nodes.get(j), "|")
                            && let Some(end) = (j + 1..nodes.len()).find(|&k| punct(nodes.get(k), "|"))
                        {
                            let (found, _) = reason_params(&split(&nodes[j + 1..end], true));
                            if !found.is_empty() {
                                let local = defs.free.entry(file.to_owned()).or_default();
                                local.entry(name.to_owned()).or_default().extend(found);
                            }
                        }
                    }
                }
                _ => {}
            }
            if let Node::Group(_, inner) = &nodes[i] {
                collect(inner, file, None, defs);
            }
            i += 1;
        }
    }

    /// A reason literal found in the source.
    #[derive(Clone, Debug)]
    struct Found {
        reason: String,
        file: String,
        line: usize,
        rule: &'static str,
    }

    fn reason_like(s: &str) -> bool {
        let mut chars = s.chars();
        chars.next().is_some_and(|c| c.is_ascii_uppercase())
            && s.chars().all(|c| c.is_ascii_alphanumeric())
            && s.chars().any(|c| c.is_ascii_lowercase())
    }

    struct Scan<'a> {
        defs: &'a Defs,
        file: &'a str,
        found: Vec<Found>,
    }

    impl Scan<'_> {
        fn add(&mut self, values: Vec<(String, usize)>, rule: &'static str) {
            for (reason, line) in values {
                if reason_like(&reason) {
                    self.found.push(Found {
                        reason,
                        file: self.file.to_owned(),
                        line,
                        rule,
                    });
                }
            }
        }

        /// The literal(s) an expression stands for: a literal, a constant, or a local bound by
        /// `let x = "X";` or `let x = if .. { "X" } else { "Y" };` in the enclosing function.
        fn resolve(&self, e: &[Node], scope: &[Node], follow: bool) -> Vec<(String, usize)> {
            let mut e = e;
            while punct(e.first(), "&") {
                e = &e[1..];
            }
            match e {
                [Node::Tok(Tok::Str(s), line)] => vec![(s.clone(), *line)],
                [Node::Tok(Tok::Str(s), line), dot, conv, Node::Group('(', args)]
                    if punct(Some(dot), ".")
                        && matches!(ident(Some(conv)), Some("into" | "to_owned" | "to_string"))
                        && args.is_empty() =>
                {
                    vec![(s.clone(), *line)]
                }
                [.., Node::Tok(Tok::Ident(name), line)]
                    if e.iter().all(|n| ident(Some(n)).is_some() || punct(Some(n), "::"))
                        && self.defs.consts.contains_key(name) =>
                {
                    vec![(self.defs.consts[name].clone(), *line)]
                }
                [Node::Tok(Tok::Ident(x), _)]
                    if follow && x.starts_with(|c: char| c.is_ascii_lowercase()) =>
                {
                    let mut out = Vec::new();
                    self.bindings(x, scope, scope, &mut out);
                    out
                }
                _ => Vec::new(),
            }
        }

        fn bindings(&self, x: &str, nodes: &[Node], scope: &[Node], out: &mut Vec<(String, usize)>) {
            for (i, n) in nodes.iter().enumerate() {
                if ident(Some(n)) == Some("let") {
                    let mut j = i + 1;
                    if ident(nodes.get(j)) == Some("mut") {
                        j += 1;
                    }
                    if ident(nodes.get(j)) == Some(x) && punct(nodes.get(j + 1), "=") {
                        let end = (j + 2..nodes.len())
                            .find(|&k| punct(nodes.get(k), ";"))
                            .unwrap_or(nodes.len());
                        let expr = &nodes[j + 2..end];
                        if ident(expr.first()) == Some("if") {
                            for branch in expr {
                                if let Node::Group('{', inner) = branch {
                                    out.extend(self.resolve(inner, scope, false));
                                }
                            }
                        } else {
                            out.extend(self.resolve(expr, scope, false));
                        }
                    }
                }
                if let Node::Group(_, inner) = n {
                    self.bindings(x, inner, scope, out);
                }
            }
        }

        /// The `reason` argument indices of the call whose argument group is at `nodes[i]`.
        fn reason_args(&self, nodes: &[Node], i: usize) -> Option<BTreeSet<usize>> {
            let name = ident(i.checked_sub(1).and_then(|k| nodes.get(k)))?;
            let before = |k: usize| i.checked_sub(k).and_then(|k| nodes.get(k));
            if punct(before(2), ".") {
                return self.defs.methods.get(name).cloned();
            }
            if punct(before(2), "::")
                && let Some(t) = ident(before(3)).filter(|t| t.starts_with(|c: char| c.is_ascii_uppercase()))
            {
                return self.defs.associated.get(&format!("{t}::{name}")).cloned();
            }
            let local = self.defs.free.get(self.file).and_then(|m| m.get(name));
            local
                .or_else(|| self.defs.free.values().find_map(|m| m.get(name)))
                .cloned()
        }

        fn walk(&mut self, nodes: &[Node], scope: &[Node], fn_name: &str, events: bool) {
            let mut pending_fn: Option<&str> = None;
            for (i, n) in nodes.iter().enumerate() {
                let prev = i.checked_sub(1).and_then(|k| nodes.get(k));
                match n {
                    Node::Tok(Tok::Ident(id), _) if id == "fn" => pending_fn = ident(nodes.get(i + 1)),
                    Node::Tok(Tok::Punct(p), _) if p == ";" => pending_fn = None,
                    Node::Tok(Tok::Str(s), line) if fn_name == "reason" && !events => {
                        self.add(vec![(s.clone(), *line)], "in fn reason");
                    }
                    Node::Tok(Tok::Ident(id), _)
                        if id == "reason" && punct(nodes.get(i + 1), ":") && !events =>
                    {
                        let rest = &nodes[(i + 2).min(nodes.len())..];
                        let value = split(rest, false).first().copied().unwrap_or_default();
                        let values = self.resolve(value, scope, true);
                        self.add(values, "reason: field");
                    }
                    Node::Group('{', inner) if pending_fn.is_some() => {
                        let name = pending_fn.take().unwrap_or_default();
                        self.walk(inner, inner, name, events);
                    }
                    Node::Group('(', inner) => {
                        let callee = ident(prev).filter(|c| {
                            !matches!(
                                *c,
                                "if" | "match" | "while" | "return" | "in" | "for" | "let" | "move" | "else"
                            )
                        });
                        let macro_call = punct(prev, "!");
                        let receiver = i.checked_sub(3).and_then(|k| ident(nodes.get(k)));
                        let dotted = i.checked_sub(2).is_some_and(|k| punct(nodes.get(k), "."));
                        let events_here = events
                            || callee.is_some_and(|c| EVENTS.contains(&c))
                            || (dotted && receiver == Some("done"));
                        if !events_here {
                            let args = split(inner, false);
                            for pair in args.windows(2) {
                                if is_status(pair[0]) {
                                    let values = self.resolve(pair[1], scope, true);
                                    self.add(values, "after a Status");
                                }
                            }
                            if callee.is_some() {
                                for k in self.reason_args(nodes, i).unwrap_or_default() {
                                    if let Some(arg) = args.get(k) {
                                        let values = self.resolve(arg, scope, true);
                                        self.add(values, "reason argument");
                                    }
                                }
                            }
                            let variant =
                                callee.is_some_and(|c| c.starts_with(|c: char| c.is_ascii_uppercase()));
                            if (variant || (callee.is_none() && !macro_call)) && args.len() == 2 {
                                let values = self.resolve(args[0], scope, true);
                                self.add(values, "(reason, message) pair");
                            }
                        }
                        self.walk(inner, scope, fn_name, events_here);
                    }
                    Node::Group(_, inner) => self.walk(inner, scope, fn_name, events),
                    _ => {}
                }
            }
        }
    }

    /// `Status::X` or `path::Status::X`.
    fn is_status(e: &[Node]) -> bool {
        e.len() >= 3
            && ident(e.get(e.len() - 3)) == Some("Status")
            && punct(e.get(e.len() - 2), "::")
            && e.iter().all(|n| ident(Some(n)).is_some() || punct(Some(n), "::"))
    }

    fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                sources(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs")
                && !path.to_string_lossy().ends_with("_tests.rs")
            {
                out.push(path);
            }
        }
    }

    /// Every reason literal in reason position in `src/`.
    fn scan() -> Vec<Found> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut paths = Vec::new();
        sources(&root.join("src"), &mut paths);
        paths.sort();
        let files: Vec<(String, Vec<Node>)> = paths
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).expect("a source file is readable");
                let name = p.strip_prefix(root).unwrap_or(p).display().to_string();
                (name, strip_tests(tree(lex(&text))))
            })
            .collect();
        let mut defs = Defs::default();
        for (file, nodes) in &files {
            collect(nodes, file, None, &mut defs);
        }
        let mut found = Vec::new();
        for (file, nodes) in &files {
            let mut scan = Scan {
                defs: &defs,
                file,
                found: Vec::new(),
            };
            scan.walk(nodes, nodes, "", false);
            found.extend(scan.found);
        }
        found
    }

    #[test]
    fn every_reason_written_in_src_is_registered() {
        let found = scan();
        let distinct: BTreeSet<&str> = found.iter().map(|f| f.reason.as_str()).collect();
        assert!(
            distinct.len() >= 60,
            "the scan found only {} distinct reasons ({distinct:?}); it has stopped seeing the source",
            distinct.len()
        );
        let unregistered: Vec<String> = found
            .iter()
            .filter(|f| !is_registered(&f.reason))
            .map(|f| format!("  {}:{}: {:?} ({})", f.file, f.line, f.reason, f.rule))
            .collect();
        assert!(
            unregistered.is_empty(),
            "condition reasons written in src/ but not registered in src/crd/reasons.rs (add each to REASONS with its Argo CD health and kinds, then to the kinds' health.lua tables):\n{}",
            unregistered.join("\n")
        );
    }

    #[test]
    fn every_registered_reason_is_still_written() {
        let found = scan();
        let written: BTreeSet<&str> = found.iter().map(|f| f.reason.as_str()).collect();
        let stale: Vec<&str> = REASONS
            .iter()
            .map(|r| r.name)
            .filter(|r| !written.contains(r))
            .collect();
        assert!(
            stale.is_empty(),
            "registered in src/crd/reasons.rs but no longer found in a reason position in src/ (remove them here and from the health.lua tables, or, if they are still written, write them where the scan in this module sees them): {stale:?}"
        );
    }

    #[test]
    fn registry_is_well_formed() {
        let mut seen = BTreeSet::new();
        for r in REASONS {
            assert!(seen.insert(r.name), "{} is registered twice", r.name);
            assert!(reason_like(r.name), "{:?} is not a CamelCase reason", r.name);
            assert!(!r.kinds.is_empty(), "{} is carried by no kind", r.name);
            assert!(!r.meaning.is_empty(), "{} has no meaning", r.name);
        }
        assert_eq!(
            find("OutsideVendorDomain").map(|r| r.health),
            Some(Health::Degraded)
        );
        assert!(!is_registered("NotAReason"));
        assert!(carried_by(Kind::VendorTenant).any(|r| r.name == "EngineerNotFound"));
        assert!(!carried_by(Kind::VendorTenant).any(|r| r.name == "NoSeats"));
    }

    #[test]
    fn the_scan_sees_every_kind_of_reason_position() {
        let src = r#"
            const TAKEN: &str = "ConstReason";
            fn refusal(reason: &'static str, message: String) -> Refusal { todo!() }
            fn f(b: &mut Builder) {
                b.set(types::READY, Status::False, "AfterStatus", "m");
                let _ = refusal("ReasonArgument", m);
                let _ = Refusal { reason: "FieldReason", message };
                problems.push(("PairReason", message));
                let reason = if x { TAKEN } else { "LetReason" };
                let _ = Halt::Refused(reason, m);
                ctx.event(obj, EventType::Normal, "EventOnly", "Action", note);
                done.push(("EventToo", note));
                let _ = ConditionUpdate::new(types::READY, Status::True, "r#Raw", "no");
                // ConditionUpdate::new(t, Status::True, "Commented", "m")
            }
            #[cfg(test)]
            mod tests { fn t() { b.set(k, Status::True, "TestOnly", "m"); } }
        "#;
        let nodes = strip_tests(tree(lex(src)));
        let mut defs = Defs::default();
        collect(&nodes, "x.rs", None, &mut defs);
        let mut scan = Scan {
            defs: &defs,
            file: "x.rs",
            found: Vec::new(),
        };
        scan.walk(&nodes, &nodes, "", false);
        let found: BTreeSet<&str> = scan.found.iter().map(|f| f.reason.as_str()).collect();
        let want: BTreeSet<&str> = [
            "AfterStatus",
            "ConstReason",
            "FieldReason",
            "LetReason",
            "PairReason",
            "ReasonArgument",
        ]
        .into();
        assert_eq!(found, want);
    }
}
