#!/usr/bin/env bash
# Captures the Argo CD health-check fixtures (deploy/argocd/resource_customizations/remoteassist.dev/
# <Kind>/testdata/*.yaml) from a real end-to-end run: a local kube-apiserver + etcd, the simulated
# Entra tenant (entra-sim) and the operator binary, driven through each health state with kubectl.
#
#   scripts/capture-argocd-fixtures.sh            capture into deploy/argocd/.../testdata/
#   CAPTURE_OUT=/tmp/x scripts/capture-argocd-fixtures.sh   capture somewhere else (to compare)
#
# Every object is labelled `capture: argo` and named `argo-…`; the operator runs with
# `--watch-selector capture=argo`, so it never touches anyone else's objects and no other
# operator without that selector is expected on the API server it uses.
#
# By default the API server is a private one (TESTENV_DIR=target/argocd-capture/testenv, started
# and stopped by this script), because `scripts/testenv.sh start` on the shared one would wipe
# everybody's state and operators started by others (without a selector) would also reconcile
# these objects against their own simulated tenants. Set CAPTURE_SHARED_TESTENV=1 to use the
# shared API server instead (it must already be running; it is left running).
#
# Each fixture is written from the very `kubectl get -o yaml` read that satisfied the state's
# predicate (no second read that could race the operator), without managedFields. Afterwards
# run scripts/lua-health.sh: the expected health of each fixture is in health_test.yaml.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO="$PWD"
WORK="$REPO/target/argocd-capture"
OUT="${CAPTURE_OUT:-$REPO/deploy/argocd/resource_customizations/remoteassist.dev}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator/cargo-target}"
mkdir -p "$WORK" "$OUT"/{VendorTenant,BarrierSegment,RemoteAssistLicense}/testdata

say() { printf '\n\033[1m# %s\033[0m\n' "$*" >&2; }

# --- the API server -----------------------------------------------------------------------------
if [[ "${CAPTURE_SHARED_TESTENV:-0}" == 1 ]]; then
  eval "$(scripts/testenv.sh env)"
  kubectl get --raw /readyz >/dev/null || { echo "the shared API server is not running" >&2; exit 1; }
  own_testenv=false
else
  export TESTENV_DIR="$WORK/testenv"
  say "Starting a private kube-apiserver + etcd in $TESTENV_DIR"
  scripts/testenv.sh start >/dev/null
  eval "$(scripts/testenv.sh env)"
  own_testenv=true
fi

# --- the operator and the simulated tenant --------------------------------------------------------
say "Building entra-sim and the operator"
cargo build --quiet -p entra-sim -p remote-assist-operator
# Private copies: others rebuild the shared target directory concurrently.
mkdir -p "$WORK/bin"
cp "$CARGO_TARGET_DIR/debug/entra-sim" "$CARGO_TARGET_DIR/debug/remote-assist-operator" "$WORK/bin/"

sim_pid="" op_pid=""
cleanup() {
  if [[ -n "$op_pid" ]]; then kill "$op_pid" 2>/dev/null || true; fi
  if [[ -n "$sim_pid" ]]; then kill "$sim_pid" 2>/dev/null || true; fi
  if $own_testenv; then scripts/testenv.sh stop || true; fi
}
trap cleanup EXIT

say "Installing the CRDs"
if $own_testenv || ! kubectl get crd vendortenants.remoteassist.dev >/dev/null 2>&1; then
  kubectl apply --server-side -f crds/ >/dev/null
fi
kubectl wait --for=condition=Established --timeout=60s crd/vendortenants.remoteassist.dev \
  crd/barriersegments.remoteassist.dev crd/remoteassistlicenses.remoteassist.dev >/dev/null

sim_port="$(scripts/testenv.sh free-port)"
SIM="http://127.0.0.1:$sim_port"
# shellcheck source=scripts/sim-ids.sh
. scripts/sim-ids.sh
TENANT="$SIM_TENANT_ID"
CLIENT="$SIM_OPERATOR_CLIENT_ID"
SECRET="$SIM_OPERATOR_SECRET"
"$WORK/bin/entra-sim" --listen "127.0.0.1:$sim_port" >"$WORK/entra-sim.log" 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do curl -fs "$SIM/_sim/counters" >/dev/null && break; sleep 0.1; done
# A real policy application starts after ~30 minutes; run the simulated clock 600 times faster.
curl -fs -X PUT -H 'Content-Type: application/json' -d '{"barrierTimeScale": 600}' "$SIM/_sim/settings" >/dev/null
printf '%s' "$SECRET" >"$WORK/client-secret"

start_operator() {
  "$WORK/bin/remote-assist-operator" run --graph-url "$SIM" --authority-host "$SIM" \
    --tenant-id "$TENANT" --client-id "$CLIENT" --client-secret-file "$WORK/client-secret" \
    --compliance-url "$SIM" --tenant-initial-domain "$SIM_INITIAL_DOMAIN" \
    --barrier-debounce 2s --barrier-poll-interval 1s --watch-selector capture=argo \
    >>"$WORK/operator.log" 2>&1 &
  op_pid=$!
}
stop_operator() {
  kill "$op_pid"
  while kill -0 "$op_pid" 2>/dev/null; do sleep 0.1; done
  op_pid=""
}
: >"$WORK/operator.log"
say "Starting the simulated tenant ($SIM) and the operator (log: $WORK/operator.log)"
start_operator

# A user that already exists in the tenant and was not created by the operator: a licence for
# this UPN is refused with Conflict under the default adoption policy (CreateOnly).
token="$(curl -fs -X POST "$SIM/$TENANT/oauth2/v2.0/token" \
  --data-urlencode grant_type=client_credentials --data-urlencode "client_id=$CLIENT" \
  --data-urlencode "client_secret=$SECRET" --data-urlencode scope=https://graph.microsoft.com/.default |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
curl -fs -X POST "$SIM/v1.0/users" -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  -d '{"accountEnabled": true, "displayName": "Argo Taken (created by hand)", "mailNickname": "argo-taken",
       "userPrincipalName": "argo-taken@vendors.abc.example", "usageLocation": "US",
       "passwordProfile": {"password": "Hand-Made-Passw0rd!", "forceChangePasswordNextSignIn": false}}' >/dev/null

# --- helpers ---------------------------------------------------------------------------------------
# capture KIND NAME NAMESPACE|- FILE TIMEOUT PYTHON-PREDICATE
# Polls `kubectl get -o yaml` until the predicate (a Python expression over `o`, the object, with
# helpers cond(type) and gen_current()) holds, then writes that exact read to FILE.
capture() {
  local kind="$1" name="$2" ns="$3" file="$4" timeout="$5" pred="$6"
  python3 - "$kind" "$name" "$ns" "$file" "$timeout" "$pred" <<'PY'
import subprocess, sys, time, yaml
kind, name, ns, file, timeout, pred = sys.argv[1:]
cmd = ["kubectl", "get", kind, name, "-o", "yaml", "--show-managed-fields=false"]
if ns != "-":
    cmd += ["-n", ns]
deadline = time.time() + float(timeout)
last = None
while True:
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode == 0:
        o = yaml.safe_load(p.stdout)
        last = o
        def cond(t):
            for c in (o.get("status") or {}).get("conditions") or []:
                if c.get("type") == t:
                    return c
            return {}
        def gen_current():
            st = o.get("status") or {}
            return st.get("observedGeneration") == o["metadata"].get("generation") and \
                cond("Ready").get("observedGeneration") == o["metadata"].get("generation")
        if eval(pred):
            if "managedFields" in o["metadata"]:
                sys.exit("managedFields present in " + file)
            open(file, "w").write(p.stdout)
            r = cond("Ready")
            print("captured %-60s Ready=%s/%s gen=%s" % (file.split("remoteassist.dev/")[-1],
                  r.get("status"), r.get("reason"), o["metadata"].get("generation")), file=sys.stderr)
            sys.exit(0)
    if time.time() > deadline:
        sys.exit("timed out waiting for %s %s: %s\nlast status: %s" % (kind, name, pred,
                 yaml.safe_dump((last or {}).get("status"))))
    time.sleep(0.05)
PY
}
# created FILE: the object exactly as the API server returned it from the create, before the
# operator has seen it (no status yet).
created() {
  kubectl create -o yaml --show-managed-fields=false -f - >"$1"
  grep -q '^status:' "$1" && { echo "unexpected status in $1" >&2; exit 1; }
  echo "captured ${1##*remoteassist.dev/} (as created, no status)" >&2
}

VT="$OUT/VendorTenant/testdata"
BS="$OUT/BarrierSegment/testdata"
RAL="$OUT/RemoteAssistLicense/testdata"

say "Namespaces: argo-vendor (allowed by the vendor) and argo-elsewhere (not allowed)"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: v1
kind: Namespace
metadata: {name: argo-vendor, labels: {capture: argo}}
---
apiVersion: v1
kind: Namespace
metadata: {name: argo-elsewhere, labels: {capture: argo}}
EOF

say "VendorTenant argo-v: generated barriers, required before accounts are enabled"
created "$VT/progressing-created.yaml" <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: VendorTenant
metadata:
  name: argo-v
  labels: {capture: argo}
  annotations: {argocd.argoproj.io/sync-wave: "0"}
spec:
  displayName: Argo Capture Vendor
  domain: vendors.abc.example
  accountsGroup: {displayName: ARGO_RemoteAssistUser}
  supportEngineers:
    groupDisplayName: ARGO_SupportEngineer
    members: [alice.engineer@abc.example]
  licenses:
    - skuPartNumber: MICROSOFT_REMOTE_ASSIST
    - skuPartNumber: Microsoft_Teams_Enterprise_New
    - skuPartNumber: SPE_E5
  allowedNamespaces: {names: [argo-vendor]}
  barriers: {required: true, generateSegments: true}
EOF
# The generated segments' first policy application runs while the vendor converges.
capture barriersegment argo-v-accounts - "$BS/progressing-applying.yaml" 60 \
  'cond("Ready").get("status") != "True" and cond("PolicyApplied").get("reason") == "Applying" and gen_current()' &
bs_capture=$!
capture vendortenant argo-v - "$VT/healthy.yaml" 60 \
  'cond("Ready").get("status") == "True" and gen_current()'
wait "$bs_capture"

say "VendorTenant argo-v-unknown-engineer: a support engineer who does not exist in the tenant"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: VendorTenant
metadata:
  name: argo-v-unknown-engineer
  labels: {capture: argo}
spec:
  displayName: Argo Capture Vendor With A Typo
  domain: vendors.abc.example
  supportEngineers:
    members: [nobody.engineer@abc.example]
  licenses:
    - skuPartNumber: MICROSOFT_REMOTE_ASSIST
  allowedNamespaces: {names: [argo-vendor]}
  barriers: {required: false, generateSegments: false}
EOF
capture vendortenant argo-v-unknown-engineer - "$VT/degraded-engineer-not-found.yaml" 60 \
  'cond("Ready").get("status") == "False" and cond("Ready").get("reason") == "EngineerNotFound" and gen_current()'

say "RemoteAssistLicense argo-tech-01: created, then waiting for its barrier, then Ready"
created "$RAL/progressing-created.yaml" <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: RemoteAssistLicense
metadata:
  name: argo-tech-01
  namespace: argo-vendor
  labels: {capture: argo}
  annotations: {argocd.argoproj.io/sync-wave: "2"}
spec:
  vendorRef: {name: argo-v}
  displayName: Argo Capture Technician 01
  mailNickname: argo-tech-01
  usageLocation: US
EOF
capture remoteassistlicense argo-tech-01 argo-vendor "$RAL/progressing-barrier.yaml" 60 \
  'cond("Ready").get("status") == "False" and cond("BarrierEnforced").get("reason") in ("Applying", "AwaitingApplication") and cond("AccountReady").get("status") == "True" and cond("LicensesAssigned").get("status") == "True" and gen_current()'
capture barriersegment argo-v-accounts - "$BS/healthy.yaml" 120 \
  'cond("Ready").get("status") == "True" and gen_current()'
capture remoteassistlicense argo-tech-01 argo-vendor "$RAL/healthy.yaml" 120 \
  'cond("Ready").get("status") == "True" and gen_current()'

say "RemoteAssistLicense argo-tech-02: suspended"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: RemoteAssistLicense
metadata:
  name: argo-tech-02
  namespace: argo-vendor
  labels: {capture: argo}
spec:
  vendorRef: {name: argo-v}
  displayName: Argo Capture Technician 02
  mailNickname: argo-tech-02
  usageLocation: DE
  suspended: true
EOF
capture remoteassistlicense argo-tech-02 argo-vendor "$RAL/suspended.yaml" 120 \
  'cond("Ready").get("reason") == "Suspended" and cond("AccountReady").get("status") == "True" and gen_current()'

say "RemoteAssistLicense argo-misplaced: in a namespace the vendor does not allow"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: RemoteAssistLicense
metadata:
  name: argo-misplaced
  namespace: argo-elsewhere
  labels: {capture: argo}
spec:
  vendorRef: {name: argo-v}
  displayName: Argo Capture Misplaced
  mailNickname: argo-misplaced
  usageLocation: US
EOF
capture remoteassistlicense argo-misplaced argo-elsewhere "$RAL/degraded-namespace-not-allowed.yaml" 60 \
  'cond("Ready").get("reason") == "NamespaceNotAllowed" and gen_current()'

say "RemoteAssistLicense argo-taken: the UPN belongs to a user the operator did not create"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: RemoteAssistLicense
metadata:
  name: argo-taken
  namespace: argo-vendor
  labels: {capture: argo}
spec:
  vendorRef: {name: argo-v}
  displayName: Argo Capture Taken
  mailNickname: argo-taken
  usageLocation: US
EOF
capture remoteassistlicense argo-taken argo-vendor "$RAL/degraded-conflict.yaml" 60 \
  'cond("Ready").get("reason") == "Conflict" and gen_current()'

say "BarrierSegments argo-sym-a and argo-sym-b: hand-written, allow lists mirrored"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: BarrierSegment
metadata: {name: argo-sym-a, labels: {capture: argo}, annotations: {argocd.argoproj.io/sync-wave: "1"}}
spec:
  members: {userAttribute: {attribute: Department, value: ArgoSymA}}
  allowedSegments: [argo-sym-b]
---
apiVersion: remoteassist.dev/v1alpha1
kind: BarrierSegment
metadata: {name: argo-sym-b, labels: {capture: argo}, annotations: {argocd.argoproj.io/sync-wave: "1"}}
spec:
  members: {userAttribute: {attribute: Department, value: ArgoSymB}}
  allowedSegments: [argo-sym-a]
EOF
capture barriersegment argo-sym-b - /dev/null 180 \
  'cond("Ready").get("status") == "True" and gen_current()'

say "Generation lag: the operator is stopped while specs change"
# Wait until all three are Ready: any policy application (here argo-sym-*'s) makes the operator
# disable and re-enable barrier-required accounts until it completes.
capture vendortenant argo-v - /dev/null 60 'cond("Ready").get("status") == "True" and gen_current()'
capture barriersegment argo-sym-b - /dev/null 60 'cond("Ready").get("status") == "True" and gen_current()'
capture remoteassistlicense argo-tech-01 argo-vendor /dev/null 60 \
  'cond("Ready").get("status") == "True" and gen_current()'
stop_operator
kubectl patch vendortenant argo-v --type=merge \
  -p '{"spec":{"supportEngineers":{"members":["alice.engineer@abc.example","bob.engineer@abc.example"]}}}' >/dev/null
kubectl patch remoteassistlicense argo-tech-01 -n argo-vendor --type=merge \
  -p '{"spec":{"displayName":"Argo Capture Technician 01 (renamed)"}}' >/dev/null
kubectl patch barriersegment argo-sym-b --type=merge -p '{"spec":{"policyState":"Inactive"}}' >/dev/null
capture vendortenant argo-v - "$VT/progressing-generation-lag.yaml" 10 \
  'cond("Ready").get("status") == "True" and not gen_current()'
capture remoteassistlicense argo-tech-01 argo-vendor "$RAL/progressing-generation-lag.yaml" 10 \
  'cond("Ready").get("status") == "True" and not gen_current()'
capture barriersegment argo-sym-b - "$BS/progressing-generation-lag.yaml" 10 \
  'cond("Ready").get("status") == "True" and not gen_current()'
start_operator
kubectl patch barriersegment argo-sym-b --type=merge -p '{"spec":{"policyState":"Active"}}' >/dev/null
capture vendortenant argo-v - /dev/null 60 'cond("Ready").get("status") == "True" and gen_current()'
capture barriersegment argo-sym-b - /dev/null 60 'cond("Ready").get("status") == "True" and gen_current()'

say "BarrierSegments argo-asym-a allows argo-asym-b, which does not allow it back"
kubectl apply -f - >/dev/null <<'EOF'
apiVersion: remoteassist.dev/v1alpha1
kind: BarrierSegment
metadata: {name: argo-asym-a, labels: {capture: argo}}
spec:
  members: {userAttribute: {attribute: Department, value: ArgoAsymA}}
  allowedSegments: [argo-asym-b]
---
apiVersion: remoteassist.dev/v1alpha1
kind: BarrierSegment
metadata: {name: argo-asym-b, labels: {capture: argo}}
spec:
  members: {userAttribute: {attribute: Department, value: ArgoAsymB}}
EOF
capture barriersegment argo-asym-a - "$BS/degraded-asymmetric.yaml" 60 \
  'cond("Ready").get("reason") == "Asymmetric" and gen_current()'

if $own_testenv; then
  say "Done: fixtures in $OUT/*/testdata (the private API server and its objects go away now)"
  exit 0
fi
say "Deleting the captured objects while the operator runs (it removes its finalizers)"
for what in "remoteassistlicense -A" barriersegment vendortenant; do
  # shellcheck disable=SC2086
  kubectl delete $what -l capture=argo --wait=true --timeout=120s >/dev/null ||
    echo "warning: some $what objects labelled capture=argo are still being deleted" >&2
done
kubectl delete namespace -l capture=argo --wait=false >/dev/null
say "Done: fixtures in $OUT/*/testdata; run scripts/lua-health.sh"
