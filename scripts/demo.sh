#!/usr/bin/env bash
# The project's main job on an embedded default, end to end on this machine:
# a real local kube-apiserver, the operator's CRDs, and the seed scenario (two vendors, their
# barrier segments and service accounts) applied with kubectl.
#
#   scripts/demo.sh          run the demo, then stop the local API server
#   scripts/demo.sh --keep   leave the API server running (prints how to use it)
#
# The simulated Entra tenant (entra-sim, seeded as the host company ABC: SKUs with seats, support
# engineers) stands in for Microsoft; the operator reaches it over HTTP exactly as it would reach
# Graph. The demo waits until the operator has converged the tenant, then prints the resources
# and the tenant they produced.
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

say "Starting the simulated Entra tenant (entra-sim) and the operator"
cargo build --quiet -p entra-sim -p remote-assist-operator
bin="${CARGO_TARGET_DIR:-target}/debug"
sim_port="$(scripts/testenv.sh free-port)"
sim="http://127.0.0.1:$sim_port"
"$bin/entra-sim" --listen "127.0.0.1:$sim_port" >target/demo-entra-sim.log 2>&1 &
sim_pid=$!
for _ in $(seq 1 100); do curl -fs "$sim/_sim/counters" >/dev/null && break; sleep 0.1; done
# Policy applications take about 30 minutes to start in a real tenant; the simulated clock runs
# them 600 times faster here.
curl -fs -X PUT -H 'Content-Type: application/json' -d '{"barrierTimeScale": 600}' "$sim/_sim/settings" >/dev/null
printf '%s' sim-operator-secret-change-me >target/demo-client-secret
run "$bin/remote-assist-operator" run --graph-url "$sim" --authority-host "$sim" \
  --tenant-id 3f2b8c1e-7d4a-4e6b-9a1f-5c0d2e8b7a64 --client-id 5b7e2f0c-1a3d-4c8e-9f6b-2d4a8c0e1f37 \
  --client-secret-file target/demo-client-secret --compliance-url "$sim" \
  --tenant-initial-domain abcsim.onmicrosoft.com --barrier-debounce 2s --barrier-poll-interval 1s \
  >target/demo-operator.log 2>&1 &
op_pid=$!
$keep || trap 'kill $op_pid $sim_pid 2>/dev/null; scripts/testenv.sh stop' EXIT
echo "    (operator log: target/demo-operator.log)"

say "Applying the seed scenario: vendors V1 and V2, V2's barrier segments, three service accounts"
run kubectl apply --server-side -f deploy/examples/

say "Waiting for the operator to converge the tenant"
run kubectl wait --for=condition=Ready --timeout=120s vendortenant --all
run kubectl wait --for=condition=Ready --timeout=180s barriersegment v1-accounts v1-engineers v2-accounts v2-engineers
run kubectl wait --for=condition=Ready --timeout=180s remoteassistlicense v1-tech-01 v1-tech-02 -n vendor-v1
run kubectl wait --for=jsonpath='{.status.accounts.summary}'=2/2 --timeout=60s vendortenant v1

say "Everything the operator manages, in one category"
run kubectl get remoteassist -A
printf '\n$ kubectl get remoteassistlicense -A -o custom-columns=...\n'
kubectl get remoteassistlicense -A -o custom-columns='NAME:.metadata.name,ACCOUNT:.status.conditions[?(@.type=="AccountReady")].reason,LICENCES:.status.conditions[?(@.type=="LicensesAssigned")].reason,BARRIER:.status.conditions[?(@.type=="BarrierEnforced")].reason'

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

say "The tenant they produced (read from the simulated tenant)"
curl -fs "$sim/_sim/state" | python3 -c '
import json, sys
s = json.load(sys.stdin)
skus = {k["skuId"]: k["skuPartNumber"] for k in s["skus"]}
groups = {g["id"]: g for g in s["groups"]}
print("  Groups:")
for g in sorted(s["groups"], key=lambda g: g["displayName"]):
    lic = ", ".join(skus.get(l["skuId"], l["skuId"]) for l in g.get("assignedLicenses", []))
    print("    %-22s %d member(s)%s" % (g["displayName"], len(g["members"]), ("; licences: " + lic) if lic else ""))
print("  Vendor service accounts (marked as managed by the operator):")
for u in sorted(s["users"], key=lambda u: u["userPrincipalName"]):
    if not (u.get("employeeType") or "").startswith("remoteassist.dev/"):
        continue
    lic = ", ".join(skus.get(l["skuId"], l["skuId"]) for l in u["assignedLicenses"]) or "none"
    grp = ", ".join(groups[g]["displayName"] for g in u["groups"] if g in groups)
    print("    %s  %s, usage location %s, groups: %s, licences: %s" % (u["userPrincipalName"],
          "enabled" if u["accountEnabled"] else "disabled", u.get("usageLocation"), grp, lic))
print("  Seats:")
for k in s["skus"]:
    print("    %-34s %5d of %5d used" % (k["skuPartNumber"], k["consumedUnits"], k["prepaidUnits"]))
'
printf '\n  Graph requests the operator made: '
curl -fs "$sim/_sim/counters" | python3 -c 'import json,sys; c=json.load(sys.stdin); print("%d HTTP requests, %d writes, %d token requests" % (c["httpRequests"], c["writes"], c["tokenRequests"]))'
echo
echo "  V2's account is suspended in its manifest: sign-in is blocked and it leaves the licensed group."

say "Who can reach whom, from the information barriers the tenant applied"
echo "  (alice and bob are V1's engineers, carol is V2's, dave works in Finance)"
for pair in "v1-tech-01@vendors.abc.example alice.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example bob.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example carol.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example v2-tech-01@vendors.abc.example" \
            "v1-tech-01@vendors.abc.example dave.finance@abc.example"; do
  set -- $pair
  printf '    %-32s -> %-32s %s\n' "$1" "$2" \
    "$(curl -fs "$sim/_sim/barriers/reachable?from=$1&to=$2" | python3 -c 'import json,sys; print("allowed" if json.load(sys.stdin)["allowed"] else "blocked")')"
done
curl -fs "$sim/_sim/barriers" | python3 -c '
import json, sys
b = json.load(sys.stdin)
print("  %d policy application(s); in effect: %s" % (len(b["applications"]), (b.get("applied") or {}).get("applicationId")))'



if $keep; then
  say "The API server keeps running. Use it with:"
  scripts/testenv.sh env
  echo "The simulated tenant: $sim (Graph at /v1.0, admin API at /_sim), pid $sim_pid; the operator: pid $op_pid"
  echo "Stop them with: kill $op_pid $sim_pid; scripts/testenv.sh stop"
fi
