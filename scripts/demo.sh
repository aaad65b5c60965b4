#!/usr/bin/env bash
# The project's main job on an embedded default, end to end on this machine:
# a real local kube-apiserver, the operator's CRDs, and the seed scenario (two vendors, their
# barrier segments and service accounts) applied with kubectl.
#
#   scripts/demo.sh          run the demo, then stop the local API server
#   scripts/demo.sh --keep   leave the API server running (prints how to use it)
#
# It also starts the simulated Entra tenant (entra-sim) and reads it through Graph. The
# reconcilers that converge that tenant from these objects are being built (issues 4-5); until
# then the demo shows the API (admission, printer columns, field docs) and the tenant side by side.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

say "Starting a local kube-apiserver + etcd (built from the Go module proxy on first use)"
scripts/testenv.sh start >/dev/null
$keep || trap 'scripts/testenv.sh stop' EXIT
eval "$(scripts/testenv.sh env)"

say "Installing the CRDs generated from the Rust types"
run cargo run --quiet -- crdgen --out-dir target/demo-crds
run kubectl apply --server-side -f target/demo-crds/
run kubectl wait --for=condition=Established --timeout=60s \
  crd/vendortenants.remoteassist.dev crd/barriersegments.remoteassist.dev crd/remoteassistlicenses.remoteassist.dev

say "Applying the seed scenario: vendors V1 and V2, V2's barrier segments, three service accounts"
run kubectl apply --server-side -f deploy/examples/

say "Everything the operator manages, in one category"
run kubectl get remoteassist -A

say "Bad input is refused at admission, with a reason"
printf '%s\n' "apiVersion: remoteassist.dev/v1alpha1" "kind: RemoteAssistLicense" \
  "metadata: {name: typo, namespace: vendor-v1}" \
  "spec: {vendorRef: {name: v1}, displayName: Typo, mailNickname: typo, usageLocation: UK}" \
  >target/demo-invalid.yaml
printf '$ kubectl apply -f target/demo-invalid.yaml\n'
kubectl apply -f target/demo-invalid.yaml 2>&1 | cut -c1-200 || true
printf '$ kubectl patch vt v1 --type=merge -p {"spec":{"domain":"other.abc.example"}}\n'
kubectl patch vt v1 --type=merge -p '{"spec":{"domain":"other.abc.example"}}' 2>&1 || true

say "The API documents itself"
run kubectl explain remoteassistlicense.spec.deletionPolicy

say "The simulated Entra tenant the operator will converge (entra-sim, embedded seed of company ABC)"
cargo build --quiet -p entra-sim
sim_port="$(scripts/testenv.sh free-port)"
target/debug/entra-sim --listen "127.0.0.1:$sim_port" >target/demo-entra-sim.log 2>&1 &
sim_pid=$!
$keep || trap 'kill $sim_pid 2>/dev/null; scripts/testenv.sh stop' EXIT
for _ in $(seq 1 100); do curl -fs "http://127.0.0.1:$sim_port/_sim/counters" >/dev/null && break; sleep 0.1; done
tenant=3f2b8c1e-7d4a-4e6b-9a1f-5c0d2e8b7a64
token="$(curl -fs "http://127.0.0.1:$sim_port/$tenant/oauth2/v2.0/token" \
  -d client_id=5b7e2f0c-1a3d-4c8e-9f6b-2d4a8c0e1f37 -d client_secret=sim-operator-secret-change-me \
  -d scope=https://graph.microsoft.com/.default -d grant_type=client_credentials |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')"
printf '$ GET http://127.0.0.1:%s/v1.0/subscribedSkus   (seats per SKU)\n' "$sim_port"
curl -fs -H "Authorization: Bearer $token" "http://127.0.0.1:$sim_port/v1.0/subscribedSkus" | python3 -c '
import json, sys
for s in json.load(sys.stdin)["value"]:
    print("    %-34s %5d of %5d seats used" % (s["skuPartNumber"], s["consumedUnits"], s["prepaidUnits"]["enabled"]))'
printf '$ GET http://127.0.0.1:%s/v1.0/users?$filter=department eq %s\n' "$sim_port" "'Support'"
curl -fs -G -H "Authorization: Bearer $token" "http://127.0.0.1:$sim_port/v1.0/users" \
  --data-urlencode "\$filter=department eq 'Support'" | python3 -c '
import json, sys
for u in json.load(sys.stdin)["value"]:
    print("    %s (%s)" % (u["userPrincipalName"], u["displayName"]))'

if $keep; then
  say "The API server keeps running. Use it with:"
  scripts/testenv.sh env
  echo "The simulated tenant: http://127.0.0.1:$sim_port (Graph at /v1.0, admin API at /_sim), pid $sim_pid"
  echo "Stop them with: scripts/testenv.sh stop; kill $sim_pid"
fi
