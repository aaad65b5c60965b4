#!/usr/bin/env bash
# Installs only the chart's ServiceAccount and RBAC into the local API server and writes a
# kubeconfig that authenticates as that ServiceAccount with a token from the TokenRequest API, so
# the end-to-end suite runs the operator with exactly the rights the chart grants. Prints the
# kubeconfig's path. Needs KUBECONFIG (an admin) as scripts/testenv.sh env sets it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ns=remote-assist-operator
sa=remote-assist-operator
out="${TESTENV_DIR:-$PWD/target/testenv}/operator.kubeconfig"
helm="$(scripts/helm.sh path)"
# shellcheck source=scripts/sim-ids.sh
. scripts/sim-ids.sh

kubectl create namespace "$ns" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
"$helm" template remote-assist-operator charts/remote-assist-operator --namespace "$ns" \
  --set azure.tenantId="$SIM_TENANT_ID" \
  --set azure.clientId="$SIM_OPERATOR_CLIENT_ID" \
  --show-only templates/serviceaccount.yaml --show-only templates/clusterrole.yaml \
  --show-only templates/clusterrolebinding.yaml --show-only templates/role.yaml \
  --show-only templates/rolebinding.yaml | kubectl apply -f - >/dev/null
token="$(kubectl create token "$sa" -n "$ns" --duration=6h)"
server="$(kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(mktemp)"
kubectl config view --raw --minify -o jsonpath='{.clusters[0].cluster.certificate-authority-data}' | base64 -d >"$ca"
rm -f "$out"
kubectl config --kubeconfig="$out" set-cluster testenv --server="$server" --certificate-authority="$ca" --embed-certs=true >/dev/null
kubectl config --kubeconfig="$out" set-credentials "$sa" --token="$token" >/dev/null
kubectl config --kubeconfig="$out" set-context operator --cluster=testenv --user="$sa" --namespace="$ns" >/dev/null
kubectl config --kubeconfig="$out" use-context operator >/dev/null
chmod 600 "$out"
rm -f "$ca"
echo "$out"
