#!/usr/bin/env bash
# Checks the deployment artefacts against a running API server: the Helm chart (lint, values
# schema, RBAC rules with Secrets cluster-wide and with rbac.secretNamespaces, server-side dry-run
# for each credentials mode and for rbac.secretNamespaces), the kustomize base (server
# dry-run, up to date with the chart) and the chart's CRDs (equal to crds/).
#
#   scripts/check-deploy.sh
#
# Needs KUBECONFIG and kubectl on PATH (scripts/test.sh sets both; by hand:
# `scripts/testenv.sh start && eval "$(scripts/testenv.sh env)"`). Builds helm on first use
# (scripts/helm.sh). Creates the namespace remote-assist-operator if it is missing, nothing else.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

CHART=charts/remote-assist-operator
NAMESPACE=remote-assist-operator
HELM="$(scripts/helm.sh path)"
: "${KUBECONFIG:?KUBECONFIG must point at the API server (see scripts/testenv.sh env)}"
command -v kubectl >/dev/null || { echo "check-deploy: kubectl is not on PATH" >&2; exit 1; }

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
IDS=(--set azure.tenantId=11111111-2222-3333-4444-555555555555 --set azure.clientId=66666666-7777-8888-9999-000000000000)
# The same ids as a values file, for renders whose bad values must not be overridden by --set.
printf 'azure:\n  tenantId: 11111111-2222-3333-4444-555555555555\n  clientId: 66666666-7777-8888-9999-000000000000\n' >"$TMP/ids.yaml"

failed=0
ok() { printf '    ok    %s\n' "$*"; }
fail() { printf '    FAIL  %s\n' "$*"; failed=1; }
# check DESCRIPTION COMMAND...: run it, print one line, show its output only when it fails.
check() {
  local what="$1"; shift
  if "$@" >"$TMP/out" 2>&1; then ok "$what"; else fail "$what"; sed 's/^/          /' "$TMP/out"; fi
}
template() { "$HELM" template remote-assist-operator "$CHART" --namespace "$NAMESPACE" "$@"; }

# 1. Lint.
check "helm lint --strict $CHART" "$HELM" lint --strict "$CHART"

# 2. The values schema rejects bad values: `helm template` must fail, and for the schema's reason.
bad() { # bad NAME YAML
  printf '%s\n' "$2" >"$TMP/bad-$1.yaml"
  if template -f "$TMP/ids.yaml" -f "$TMP/bad-$1.yaml" >"$TMP/out" 2>&1; then
    fail "schema rejects $1: helm template succeeded"
  elif grep -q "don't meet the specifications of the schema" "$TMP/out"; then
    ok "schema rejects $1 ($(grep -m1 -- '- at ' "$TMP/out" | sed 's/^ *- //'))"
  else
    fail "schema rejects $1: helm template failed, but not on the schema"; sed 's/^/          /' "$TMP/out"
  fi
}
bad "replicas: 0" "replicas: 0"
bad "credentials.mode: bogus" $'credentials:\n  mode: bogus'
bad "an unknown top-level key" "replica: 2"
bad "an unknown nested key" $'image:\n  repo: example/operator'
bad "a numeric image tag" $'image:\n  tag: 1.2'
bad "resources as a string" "resources: 500m"
bad "a bad resource quantity" $'resources:\n  limits:\n    memory: lots'
bad "a tenant id that is not a GUID" $'azure:\n  tenantId: contoso'
bad "compliance.auth: bogus" $'compliance:\n  auth: bogus'
check "missing azure.tenantId fails the render" \
  bash -c '! "$@" >/dev/null 2>&1' _ "$HELM" template x "$CHART" --set azure.clientId=66666666-7777-8888-9999-000000000000

# 3. RBAC: exactly the documented rules (charts/remote-assist-operator/README.md), nothing more.
cat >"$TMP/rbac.py" <<'PY'
import json, sys
# argv: the namespaces of rbac.secretNamespaces (none: the default, Secrets cluster-wide).
# stdin: the objects as JSON, one after another (kubectl create --dry-run=client -o json).
secret_namespaces = sys.argv[1:]
text, docs, pos = sys.stdin.read(), [], 0
while text[pos:].strip():
    obj, end = json.JSONDecoder().raw_decode(text, pos)
    docs.extend(obj.get("items", [obj]) if obj.get("kind") == "List" else [obj])
    pos = end
    while pos < len(text) and text[pos].isspace():
        pos += 1
problems = []
def rules(obj):
    return {(tuple(r.get("apiGroups", [])), tuple(r.get("resources", [])), tuple(r["verbs"]),
             tuple(r.get("resourceNames", [])), tuple(r.get("nonResourceURLs", []))) for r in obj["rules"]}
def objects(kind):  # {(namespace, name): object}
    out = {}
    for d in docs:
        if d["kind"] == kind:
            key = (d["metadata"].get("namespace", ""), d["metadata"]["name"])
            if key in out:
                problems.append(f"{kind} {key} rendered twice")
            out[key] = d
    return out
RA = ("remoteassist.dev",)
SECRETS = (("",), ("secrets",), ("get", "create", "patch", "delete"), (), ())
CLUSTER = {
    (RA, ("vendortenants", "barriersegments", "remoteassistlicenses"), ("get", "list", "watch", "patch", "update"), (), ()),
    (RA, ("barriersegments",), ("create", "delete"), (), ()),
    (RA, ("vendortenants/status", "barriersegments/status", "remoteassistlicenses/status"), ("get", "patch", "update"), (), ()),
    (RA, ("vendortenants/finalizers", "remoteassistlicenses/finalizers"), ("update",), (), ()),
    (("",), ("namespaces",), ("get",), (), ()),
    (("events.k8s.io",), ("events",), ("create", "patch"), (), ()),
}
NAME = NS = "remote-assist-operator"
SUBJECTS = [{"kind": "ServiceAccount", "name": NAME, "namespace": NS}]
# kind -> {(namespace, name): rules}; RoleBinding -> {(namespace, name): the Role it binds}
WANT = {
    "ClusterRole": {("", NAME): CLUSTER if secret_namespaces else CLUSTER | {SECRETS}},
    "Role": {(NS, f"{NAME}-leader-election"): {(("coordination.k8s.io",), ("leases",), ("get", "create", "update"), (), ())}},
}
BINDINGS = {(NS, f"{NAME}-leader-election"): f"{NAME}-leader-election"}
for ns in secret_namespaces:
    WANT["Role"][(ns, f"{NAME}-secrets")] = {SECRETS}
    BINDINGS[(ns, f"{NAME}-secrets")] = f"{NAME}-secrets"
for kind, want in WANT.items():
    have = objects(kind)
    for key in sorted(set(have) - set(want)):
        problems.append(f"unexpected {kind} {key}")
    for key, want_rules in want.items():
        if key not in have:
            problems.append(f"missing {kind} {key}")
            continue
        got = rules(have[key])
        for rule in sorted(got - want_rules):
            problems.append(f"{kind} {key}: unexpected rule {rule}")
        for rule in sorted(want_rules - got):
            problems.append(f"{kind} {key}: missing rule {rule}")
have = objects("RoleBinding")
for key in sorted(set(have) - set(BINDINGS)):
    problems.append(f"unexpected RoleBinding {key}")
for key, role in BINDINGS.items():
    b = have.get(key)
    if b is None:
        problems.append(f"missing RoleBinding {key}")
    elif (b["roleRef"]["kind"], b["roleRef"]["name"]) != ("Role", role) or b.get("subjects") != SUBJECTS:
        problems.append(f"RoleBinding {key}: binds {b['roleRef']} to {b.get('subjects')}, want Role {role} to {SUBJECTS}")
for p in problems:
    print(p)
sys.exit(1 if problems else 0)
PY
rbac() { # rbac [SECRET_NAMESPACE...]: render the RBAC objects with rbac.secretNamespaces = them, compare
  local set=() show=(--show-only templates/clusterrole.yaml --show-only templates/role.yaml
    --show-only templates/rolebinding.yaml)
  if (( $# )); then
    set=(--set "rbac.secretNamespaces={$(IFS=,; echo "$*")}")
    show+=(--show-only templates/secrets-role.yaml)
  fi
  template "${IDS[@]}" "${set[@]}" "${show[@]}" | kubectl create --dry-run=client -o json -f - | python3 "$TMP/rbac.py" "$@"
}
check "RBAC: the ClusterRole (Secrets in every namespace) and the leader-election Role and binding hold exactly the documented rules" \
  rbac
check "RBAC, rbac.secretNamespaces=[ns-a, ns-b]: no secrets rule in the ClusterRole; a secrets Role and a RoleBinding to the ServiceAccount in each of ns-a, ns-b, nowhere else" \
  rbac ns-a ns-b
bad "a secretNamespaces entry that is not a namespace name" $'rbac:\n  secretNamespaces: [Vendor_A]'
bad "a namespace listed twice in rbac.secretNamespaces" $'rbac:\n  secretNamespaces: [ns-a, ns-a]'

# 4. Server-side dry-run of the chart, once per credentials mode (the namespace must exist for
#    namespaced objects to pass a server dry-run).
kubectl create namespace "$NAMESPACE" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
for mode in clientSecret certificate workloadIdentity; do
  extra=() desc="credentials.mode=$mode"
  if [[ "$mode" == certificate ]]; then
    extra=(--set networkPolicy.enabled=true --set 'networkPolicy.extraEgressPorts[0].port=6443')
    desc+=", networkPolicy.enabled=true"
  elif [[ "$mode" == workloadIdentity ]]; then
    extra=(--set replicas=1 --set operator.watchSelector=shard=a)
    desc+=", replicas=1, operator.watchSelector=shard=a"
  fi
  check "helm template --include-crds ($desc) | kubectl apply --dry-run=server" \
    bash -c 'set -o pipefail; "$@" | kubectl apply --dry-run=server -f -' _ \
    "$HELM" template remote-assist-operator "$CHART" --namespace "$NAMESPACE" --include-crds \
    "${IDS[@]}" --set "credentials.mode=$mode" "${extra[@]}"
done
check "helm template (rbac.secretNamespaces=[default, $NAMESPACE]) | kubectl apply --dry-run=server" \
  bash -c 'set -o pipefail; "$@" | kubectl apply --dry-run=server -f -' _ \
  "$HELM" template remote-assist-operator "$CHART" --namespace "$NAMESPACE" "${IDS[@]}" \
  --set "rbac.secretNamespaces={default,$NAMESPACE}"
# The delegated compliance credential: its flags reach the container and the Role names its Secret only.
delegated_chart_ok() {
  local out
  out="$(template "${IDS[@]}" --set compliance.auth=delegated)" || return 1
  grep -q -- "--compliance-auth=delegated" <<<"$out" &&
    grep -q -- "--compliance-refresh-token-secret=$NAMESPACE/remote-assist-operator-compliance-login" <<<"$out" &&
    grep -q 'resourceNames: \["remote-assist-operator-compliance-login"\]' <<<"$out" &&
    kubectl apply --dry-run=server -f - <<<"$out" >/dev/null
}
check "helm template (compliance.auth=delegated) | kubectl apply --dry-run=server, with its flags and Role rule" \
  delegated_chart_ok
check "the chart renders a ServiceMonitor when metrics.serviceMonitor.enabled (CRD not installed: render only)" \
  bash -c '"$@" | grep -q "^kind: ServiceMonitor$"' _ \
  "$HELM" template remote-assist-operator "$CHART" --namespace "$NAMESPACE" "${IDS[@]}" --set metrics.serviceMonitor.enabled=true

# The dashboard ConfigMap is applied for real (dry run); the PrometheusRule is checked by
# scripts/monitoring.sh (promtool), its CRD is not installed here.
dashboard_ok() {
  local out
  out="$(template "${IDS[@]}" --set metrics.dashboard.enabled=true --show-only templates/dashboard.yaml)" &&
    grep -q 'grafana_dashboard: "1"' <<<"$out" &&
    kubectl apply --dry-run=server -f - <<<"$out" >/dev/null
}
check "the dashboard ConfigMap (metrics.dashboard.enabled) carries the Grafana sidecar's label | kubectl apply --dry-run=server" \
  dashboard_ok
bad "metrics.prometheusRule.seatsBelow as a string" $'metrics:\n  prometheusRule:\n    seatsBelow: few'
bad "a metrics.prometheusRule.for duration without a unit" $'metrics:\n  prometheusRule:\n    for:\n      seats: 15'

# 5. The kustomize base.
check "kubectl apply -k deploy/kustomize --dry-run=server" kubectl apply -k deploy/kustomize --dry-run=server

# 6. Copies that must not drift.
if diff -r crds "$CHART/crds" >"$TMP/out" 2>&1; then
  ok "$CHART/crds equals crds/"
else
  fail "$CHART/crds differs from crds/; run: rm -f $CHART/crds/*.yaml && cp crds/*.yaml $CHART/crds/ && scripts/render-kustomize.sh"
  sed 's/^/          /' "$TMP/out" | head -40
fi
if scripts/render-kustomize.sh "$TMP/kustomize" >"$TMP/out" 2>&1 && diff -r deploy/kustomize "$TMP/kustomize" >"$TMP/diff" 2>&1; then
  ok "deploy/kustomize is up to date with the chart"
else
  fail "deploy/kustomize is not what scripts/render-kustomize.sh renders from the chart; regenerate it: scripts/render-kustomize.sh"
  cat "$TMP/out" "$TMP/diff" | sed 's/^/          /' | head -60
fi

if (( failed )); then
  echo "check-deploy: FAILED" >&2
  exit 1
fi
echo "check-deploy: all deployment checks passed"
