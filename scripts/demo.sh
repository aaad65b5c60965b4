#!/usr/bin/env bash
# The project's main job on an embedded default, end to end on this machine:
# a real local kube-apiserver, the operator's CRDs, and the seed scenario (two vendors, their
# barrier segments and service accounts) applied with kubectl.
#
#   scripts/demo.sh          run the demo, then stop everything it started
#   scripts/demo.sh --keep   leave it all running (prints how to use it and how to stop it)
#
# The simulated Entra tenant (entra-sim, seeded as the host company ABC: SKUs with seats, support
# engineers) stands in for Microsoft; the operator reaches it over HTTP exactly as it would reach
# Graph. The demo waits until the operator has converged the tenant, then prints the resources
# and the tenant they produced.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# The same cargo target directory as scripts/test.sh: whoever runs both compiles once.
CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_ROOT/cargo-target}"
keep=false
[[ "${1:-}" == "--keep" ]] && keep=true

say() { printf '\n\033[1m# %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

# Everything the demo starts is recorded (name and pid, and every port it listens on) in
# target/demo.pids, and stopped when the demo ends: on success, on failure and on Ctrl-C.
# `--keep` leaves it running after a successful run and prints how to stop it.
run_dir="${TESTENV_DIR:-target/testenv}"
record=target/demo.pids
mkdir -p target && : >"$record"
pids=()
started() { pids+=("$2"); echo "pid $1 $2" >>"$record"; }
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if $keep && [[ $rc -eq 0 ]]; then return; fi
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  scripts/testenv.sh stop >/dev/null 2>&1 || true
  [[ $rc -eq 0 ]] || echo "demo: failed (exit $rc); everything it started is stopped" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Fail fast: a process the demo started that has exited ends the demo with its status and log.
check_alive() {
  local name log pid
  for entry in "simulated-tenant:target/demo-entra-sim.log:${sim_pid:-}" "operator:target/demo-operator.log:${op_pid:-}"; do
    IFS=: read -r name log pid <<<"$entry"
    [[ -n "$pid" ]] || continue
    if ! kill -0 "$pid" 2>/dev/null; then
      local status=0
      wait "$pid" || status=$?
      echo "demo: the $name (pid $pid) exited with status $status; the last lines of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
  done
  if ! kill -0 "$(cat "$run_dir/kube-apiserver.pid" 2>/dev/null)" 2>/dev/null; then
    echo "demo: the local kube-apiserver exited; the last lines of its log:" >&2
    tail -n 20 "$run_dir/kube-apiserver.log" >&2
    exit 1
  fi
}

# `kubectl wait`, a few seconds at a time, watching the demo's processes in between.
wait_for() {
  local deadline=$((SECONDS + $1)) out=target/demo-wait.out; shift
  printf '$ kubectl wait %s\n' "$*"
  while true; do
    check_alive
    if kubectl wait --timeout=3s "$@" >"$out" 2>&1; then cat "$out"; return 0; fi
    if ((SECONDS >= deadline)); then cat "$out" >&2; echo "demo: timed out waiting for $*" >&2; exit 1; fi
  done
}

say "Starting a local kube-apiserver + etcd (built from the Go module proxy on first use)"
scripts/testenv.sh start >/dev/null
for p in etcd kube-apiserver; do echo "pid $p $(cat "$run_dir/$p.pid")" >>"$record"; done
read -r etcd_port api_port <"$run_dir/ports"
echo "port etcd $etcd_port" >>"$record"
echo "port kube-apiserver $api_port" >>"$record"
eval "$(scripts/testenv.sh env)"

say "Installing the CRDs generated from the Rust types"
run cargo run --quiet -- crdgen --out-dir target/demo-crds
run kubectl apply --server-side -f target/demo-crds/
run kubectl wait --for=condition=Established --timeout=60s \
  crd/vendortenants.remoteassist.dev crd/barriersegments.remoteassist.dev crd/remoteassistlicenses.remoteassist.dev

say "Starting the simulated Entra tenant (entra-sim) and the operator"
cargo build --quiet -p entra-sim -p remote-assist-operator
bin="$CARGO_TARGET_DIR/debug"
sim_port="$(scripts/testenv.sh free-port)"
metrics_port="$(scripts/testenv.sh free-port)"
echo "port simulated-tenant $sim_port" >>"$record"
echo "port operator-metrics $metrics_port" >>"$record"
sim="http://127.0.0.1:$sim_port"
"$bin/entra-sim" --listen "127.0.0.1:$sim_port" >target/demo-entra-sim.log 2>&1 &
sim_pid=$!
started simulated-tenant "$sim_pid"
for _ in $(seq 1 100); do curl -fs "$sim/_sim/counters" >/dev/null && break; check_alive; sleep 0.1; done
# Policy applications take about 30 minutes to start in a real tenant; the simulated clock runs
# them 600 times faster here.
curl -fs -X PUT -H 'Content-Type: application/json' -d '{"barrierTimeScale": 600}' "$sim/_sim/settings" >/dev/null
# shellcheck source=scripts/sim-ids.sh
. scripts/sim-ids.sh
printf '%s' "$SIM_OPERATOR_SECRET" >target/demo-client-secret
operator=("$bin/remote-assist-operator" run --graph-url "$sim" --authority-host "$sim"
  --tenant-id "$SIM_TENANT_ID" --client-id "$SIM_OPERATOR_CLIENT_ID"
  --client-secret-file target/demo-client-secret --compliance-url "$sim"
  --tenant-initial-domain "$SIM_INITIAL_DOMAIN" --barrier-debounce 2s --barrier-poll-interval 1s
  --metrics-addr "127.0.0.1:$metrics_port" --resync-period 15s)
printf '$ %s\n' "${operator[*]}"
# Started directly (not through a function or subshell), so $! is the operator's own pid. It
# resyncs every 15 s (default 5 min), so the demo never waits minutes on a missed wake-up.
"${operator[@]}" >target/demo-operator.log 2>&1 &
op_pid=$!
started operator "$op_pid"
echo "    (operator log: target/demo-operator.log; metrics and health on 127.0.0.1:$metrics_port)"

say "Applying the seed scenario: vendors V1 and V2, V2's barrier segments, three service accounts"
run kubectl apply --server-side -f deploy/examples/

say "Waiting for the operator to converge the tenant"
wait_for 120 --for=condition=Ready vendortenant --all
wait_for 180 --for=condition=Ready barriersegment v1-accounts v1-engineers v2-accounts v2-engineers abc-staff
wait_for 180 --for=condition=Ready remoteassistlicense v1-tech-01 v1-tech-02 -n vendor-v1
wait_for 60 --for=jsonpath='{.status.accounts.summary}'=2/2 vendortenant v1

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
echo "  (alice and bob are V1's engineers, carol is V2's, dave works in Finance: host staff)"
for pair in "v1-tech-01@vendors.abc.example alice.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example bob.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example carol.engineer@abc.example" \
            "v1-tech-01@vendors.abc.example v2-tech-01@vendors.abc.example" \
            "v1-tech-01@vendors.abc.example dave.finance@abc.example" \
            "alice.engineer@abc.example dave.finance@abc.example" \
            "alice.engineer@abc.example carol.engineer@abc.example"; do
  read -r from to <<<"$pair"
  set -- "$from" "$to"
  printf '    %-32s -> %-32s %s\n' "$1" "$2" \
    "$(curl -fs "$sim/_sim/barriers/reachable?from=$1&to=$2" | python3 -c 'import json,sys; print("allowed" if json.load(sys.stdin)["allowed"] else "blocked")')"
done
curl -fs "$sim/_sim/barriers" | python3 -c '
import json, sys
b = json.load(sys.stdin)
print("  %d policy application(s); in effect: %s" % (len(b["applications"]), (b.get("applied") or {}).get("applicationId")))'
echo "  (dave is host staff through the abc-staff segment: engineers keep their colleagues, accounts never reach them)"

say "The reachability matrix of the applied policies (audit, read-only)"
printf '$ remote-assist-operator audit ...\n'
# audit exits 1 when it has findings; the demo shows the matrix either way.
"$bin/remote-assist-operator" audit --graph-url "$sim" --authority-host "$sim" \
  --tenant-id "$SIM_TENANT_ID" --client-id "$SIM_OPERATOR_CLIENT_ID" \
  --client-secret-file target/demo-client-secret --compliance-url "$sim" \
  --tenant-initial-domain "$SIM_INITIAL_DOMAIN" >target/demo-audit.txt 2>&1 || true
sed -n '/^Under the applied policies/,/^Seats:/p' target/demo-audit.txt | sed '$d'
grep -q '^Under the applied policies' target/demo-audit.txt || { cat target/demo-audit.txt >&2; echo "demo: audit printed no reachability matrix" >&2; exit 1; }


if $keep; then
  say "Everything keeps running. Use the API server with:"
  scripts/testenv.sh env
  echo "The simulated tenant: $sim (Graph at /v1.0, admin API at /_sim), pid $sim_pid; the operator: pid $op_pid"
  echo "Stop them all with:"
  echo "  kill $op_pid $sim_pid; TESTENV_DIR=$run_dir scripts/testenv.sh stop"
fi
