-- Argo CD health check for remoteassist.dev/v1alpha1 BarrierSegment (an information-barrier segment and its policy).
-- Written for Argo CD's Lua (gopher-lua, Lua 5.1) with only the base and table libraries, which is
-- what Argo CD gives a script from argocd-cm unless useOpenLibs is set: no string, math, os or io.
--
-- The operator reports a Ready roll-up of the aspects SegmentReady, PolicyApplied in
-- status.conditions, each with the metadata.generation it describes (observedGeneration).
--   Healthy      Ready is True and describes the current generation;
--   Progressing  no status yet, the operator has not observed the current generation, or Ready is
--                not True for a reason that resolves by itself (waiting, applying, retrying);
--   Degraded     Ready is not True for a reason that needs a person (refused, conflict, no seats);
-- the message is the Ready condition's message.

local TERMINAL = {
  AuthenticationFailed = true, PermissionDenied = true, Conflict = true, SecretConflict = true,
  NamespaceNotAllowed = true, VendorNotFound = true, LicenseOverrideRefused = true,
  UnknownLicense = true, UserNotFound = true, NoSeats = true, InsufficientSeats = true,
  GroupLicenseRefused = true, EngineerNotFound = true, EngineerShared = true,
  Asymmetric = true, ApplicationFailed = true, Refused = true, MembersUnresolved = true,
  UnknownSegment = true, SegmentNameTaken = true,
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

return result("Progressing", message)
