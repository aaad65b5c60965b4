#!/usr/bin/env bash
# The project's main job on an embedded default, end to end on this machine:
# a real local kube-apiserver, the operator's CRDs, and the seed scenario (two vendors, their
# barrier segments and service accounts) applied with kubectl.
#
#   scripts/demo.sh          run the demo, then stop the local API server
#   scripts/demo.sh --keep   leave the API server running (prints how to use it)
#
# The reconcilers that converge a (simulated) Entra tenant from these objects are being built
# (issues 3-5); until then the demo shows the API: admission, printer columns and field docs.
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

if $keep; then
  say "The API server keeps running. Use it with:"
  scripts/testenv.sh env
  echo "Stop it with: scripts/testenv.sh stop"
fi
