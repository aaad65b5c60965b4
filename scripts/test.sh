#!/usr/bin/env bash
# Runs every test of the project: formatting, lints, unit tests, and the tests against a real
# local kube-apiserver + etcd (built from the Go module proxy on first use and cached).
#
#   scripts/test.sh
#
# Caches: the control-plane binaries and cargo's target directory live under
# ~/.cache/remote-assist-operator, so a second run (even from a fresh clone) is fast.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_ROOT/cargo-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export RUST_BACKTRACE="${RUST_BACKTRACE:-1}"

step() { printf '\n==> %s (%ss)\n' "$*" "$SECONDS"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "shellcheck (every script)"
if ! command -v shellcheck >/dev/null; then
  echo "shellcheck is not installed: installing Debian's package" >&2
  { apt-get install -y -q shellcheck || { apt-get update -q && apt-get install -y -q shellcheck; }; } >/dev/null ||
    { echo "cannot install shellcheck (apt-get install shellcheck failed); install it and run again" >&2; exit 1; }
fi
shellcheck scripts/*.sh .ci/run

step "cargo clippy -D warnings"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Argo CD health checks (gopher-lua, captured fixtures, argocd-cm snippet)"
scripts/lua-health.sh

step "monitoring: the chart's alert rules (promtool check rules, promtool test rules, runbooks)"
scripts/monitoring.sh

step "build the tests"
cargo test --workspace --locked --no-run

step "the main command: scripts/demo.sh twice, then once with its operator killed; nothing left behind"
scripts/check-demo.sh

step "start the local API server"
scripts/testenv.sh start >/dev/null
trap 'scripts/testenv.sh stop' EXIT
eval "$(scripts/testenv.sh env)"
kubectl version 2>/dev/null | sed 's/^/    /'
# A second start must refuse to wipe the running cluster, and leave it answering.
if refusal="$(scripts/testenv.sh start 2>&1)"; then
  echo "testenv.sh start wiped a running cluster" >&2; exit 1
fi
grep -q "is in use" <<<"$refusal" || { echo "unexpected refusal: $refusal" >&2; exit 1; }
kubectl get --raw /readyz >/dev/null

step "deployment: Helm chart, values schema, RBAC, kustomize base (server dry-run)"
scripts/check-deploy.sh

step "least privilege: the chart's ServiceAccount and RBAC, a TokenRequest token for the e2e operators"
OPERATOR_KUBECONFIG="$(scripts/operator-kubeconfig.sh)"
export OPERATOR_KUBECONFIG

step "run every test (unit, simulated tenant, API server)"
cargo test --workspace --locked -- --include-ignored

step "all tests passed"
