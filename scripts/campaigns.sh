#!/usr/bin/env bash
# The full reliability campaigns (longer than the test command's seeded short versions):
# 200 accounts across 4 vendors with 20 SIGKILLs, and a fault campaign with 10 % 5xx, a
# throttling storm, 10 s replication delay and a one-minute outage of the tenant.
#
#   scripts/campaigns.sh [seed]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/remote-assist-operator/cargo-target}"
scripts/testenv.sh start >/dev/null
trap 'scripts/testenv.sh stop' EXIT
eval "$(scripts/testenv.sh env)"
OPERATOR_KUBECONFIG="$(scripts/operator-kubeconfig.sh)"
export OPERATOR_KUBECONFIG
export CAMPAIGN_SEED="${1:-1}" CAMPAIGN_ACCOUNTS=200 CAMPAIGN_KILLS=20 CAMPAIGN_OUTAGE_SECS=60 \
  CAMPAIGN_REPLICATION_MS=10000 CAMPAIGN_STORM_SECS=30
cargo test --locked --test e2e -- campaigns:: --include-ignored --nocapture --test-threads=1
