#!/usr/bin/env bash
# Renders the chart's alert rules and Grafana dashboard as Prometheus and Grafana read them:
# OUT_DIR/rules.yaml (the PrometheusRule's spec: rule groups) and OUT_DIR/dashboard.json (the
# dashboard ConfigMap's data). Extra arguments go to `helm template` (e.g. `--set
# metrics.prometheusRule.for.seats=0s`), so tests render exactly what a user would install.
#
#   scripts/render-monitoring.sh OUT_DIR [HELM_ARGS...]
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: scripts/render-monitoring.sh OUT_DIR [HELM_ARGS...]}"
shift
mkdir -p "$out"
helm="$("$REPO_ROOT/scripts/helm.sh" path)"
render() { # render TEMPLATE [HELM_ARGS...]
  local template="$1"
  shift
  "$helm" template remote-assist-operator "$REPO_ROOT/charts/remote-assist-operator" \
    --set azure.tenantId=11111111-2222-3333-4444-555555555555 \
    --set azure.clientId=66666666-7777-8888-9999-000000000000 \
    --set metrics.prometheusRule.enabled=true --set metrics.dashboard.enabled=true \
    --show-only "templates/$template" "$@"
}
# The YAML is read by Python's yaml module (PyYAML), which the machine's Python carries.
render prometheusrule.yaml "$@" |
  python3 -c 'import sys, yaml; yaml.safe_dump(yaml.safe_load(sys.stdin)["spec"], sys.stdout, sort_keys=False, width=10000)' >"$out/rules.yaml"
render dashboard.yaml "$@" |
  python3 -c 'import sys, yaml; sys.stdout.write(yaml.safe_load(sys.stdin)["data"]["remote-assist-operator.json"])' >"$out/dashboard.json"
