-- Argo CD health check for remoteassist.dev/v1alpha1 RemoteAssistLicense (one vendor service account).
-- Written for Argo CD's Lua (gopher-lua, Lua 5.1) with only the base and table libraries, which is
-- what Argo CD gives a script from argocd-cm unless useOpenLibs is set: no string, math, os or io.
--
-- The operator reports a Ready roll-up of the aspects AccountReady, LicensesAssigned, BarrierEnforced in
-- status.conditions, each with the metadata.generation it describes (observedGeneration).
--   Healthy      Ready is True and describes the current generation;
--   Progressing  no status yet, the operator has not observed the current generation, or Ready is
--                not True for a reason that resolves by itself (PROGRESSING: waiting, applying,
--                retrying), or for a reason this script does not know;
--   Degraded     Ready is not True for a reason that needs a person (TERMINAL: refused, conflict,
--                no seats);
--   Suspended    spec.suspended is true (or Ready's reason is in SUSPENDED: suspended, or plan or
--                observe mode holding changes back), once the operator has observed it;
-- the message is the Ready condition's message.

-- Reasons of a Ready condition that is not True, by health. Each lists exactly the reasons the
-- operator can write for this kind (src/crd/reasons.rs is the list; tests/argocd_health_reasons.rs
-- fails when a table and the list disagree). True needs no table: it is Healthy whatever the reason.
-- A reason in no table is one this script does not know (an operator newer than the script): it
-- falls through to Progressing, as every unlisted reason did before these tables existed.

-- Degraded: needs a person (refused, conflict, no seats); nothing resolves without a change in git
-- or in the tenant.
local TERMINAL = {
  -- refused before anything is read or written in the tenant
  VendorNotFound = true, NamespaceNotAllowed = true, LicenseOverrideRefused = true,
  OutsideVendorDomain = true, LicenseNotOffered = true, AccountLimitReached = true,
  AdoptionNotAllowed = true, UnknownLicense = true,
  -- the account cannot be bound, or a request is refused
  SecretConflict = true, UserNotFound = true, Conflict = true, PrivilegedUser = true,
  CredentialsNotManaged = true,
  -- licences and barrier
  NoSeats = true, GroupLicenseError = true, DirectoryRoleMissing = true, SegmentConflict = true, NotIsolating = true, ApplicationFailed = true,
  -- the tenant refuses the operator itself (reported as Events today; classified for conditions)
  AuthenticationFailed = true, PermissionDenied = true, GraphError = true,
}

-- Progressing: resolves by itself (waiting, applying, replicating, retrying, throttled, pending).
local PROGRESSING = {
  Pending = true, VendorNotReady = true, AdoptionCheckPending = true, RotationRateLimited = true,
  Creating = true, Replicating = true, JoiningGroup = true, Assigning = true, AwaitingGroupLicenses = true,
  NoSegment = true, SegmentNotApplied = true, AttributePending = true, Applying = true,
  AwaitingApplication = true, Enabling = true,
  -- retried by the operator (reported as Events today; classified for conditions)
  Throttled = true, TenantUnreachable = true, GraphUnavailable = true, ComplianceUnreachable = true,
  ComplianceError = true, KubernetesError = true, FinalizerUpdateFailed = true, Waiting = true,
}

-- Suspended: stopped on purpose: spec.suspended, or plan/observe mode holding changes back until a
-- person removes the remoteassist.dev/mode annotation.
local SUSPENDED = {
  Suspended = true, Released = true, Planned = true, DriftObserved = true,
}

local function result(status, message)
  return { status = status, message = message }
end

local function condition(status, conditionType)
  if status == nil or status.conditions == nil then
    return nil
  end
  for _, c in ipairs(status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local status = obj.status
local ready = condition(status, "Ready")
if ready == nil then
  return result("Progressing", "Waiting for the operator to report status")
end

-- The status must describe the spec as it is now; both generations are checked when present.
local generation = (obj.metadata or {}).generation
if generation ~= nil then
  local seen = ready.observedGeneration
  if seen == nil then
    seen = status.observedGeneration
  end
  if seen ~= generation or (status.observedGeneration ~= nil and status.observedGeneration ~= generation) then
    return result("Progressing", "Waiting for the operator to observe generation " .. generation ..
      " (status describes generation " .. tostring(seen) .. ")")
  end
end

local message = ready.message
if message == nil or message == "" then
  message = tostring(ready.reason)
end

if ready.status == "True" then
  return result("Healthy", message)
end

if TERMINAL[ready.reason] then
  return result("Degraded", message)
end

-- Suspended on purpose: sign-in blocked and licences released, or changes held back by plan or
-- observe mode. (A terminal error still wins above.)
if SUSPENDED[ready.reason] or (obj.spec ~= nil and obj.spec.suspended == true) then
  return result("Suspended", message)
end

if PROGRESSING[ready.reason] then
  return result("Progressing", message)
end

-- Not classified: a reason this script does not know. Progressing, as before.
return result("Progressing", message)
