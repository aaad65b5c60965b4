#!/usr/bin/env bash
# Sourced by the other scripts: the simulated tenant's ids, read from its seed
# (entra-sim/seeds/default.yaml), the one file that writes them down. The Rust tests read the
# same seed through entra_sim::Seed.
#
#   . scripts/sim-ids.sh   sets SIM_TENANT_ID, SIM_INITIAL_DOMAIN, SIM_OPERATOR_CLIENT_ID,
#                          SIM_OPERATOR_SECRET, SIM_AUDITOR_CLIENT_ID
sim_seed="$(dirname "${BASH_SOURCE[0]}")/../entra-sim/seeds/default.yaml"

# The first clientId or secret after the app registration named $1.
sim_app_field() {
  awk -v app="$1" -v field="$2" '
    $0 ~ "displayName: " app "$" { found = 1; next }
    found && /displayName:/ { exit }
    found && field == "clientId" && /clientId:/ { print $2; exit }
    found && field == "secret" && /^ +- / && seen { print $2; exit }
    found && /secrets:/ { seen = 1 }
  ' "$sim_seed"
}

SIM_TENANT_ID="$(awk '/^tenantId:/ { print $2; exit }' "$sim_seed")"
SIM_INITIAL_DOMAIN="$(awk '/^initialDomain:/ { print $2; exit }' "$sim_seed")"
SIM_OPERATOR_CLIENT_ID="$(sim_app_field remote-assist-operator clientId)"
SIM_OPERATOR_SECRET="$(sim_app_field remote-assist-operator secret)"
SIM_AUDITOR_CLIENT_ID="$(sim_app_field remote-assist-auditor clientId)"
for v in SIM_TENANT_ID SIM_INITIAL_DOMAIN SIM_OPERATOR_CLIENT_ID SIM_OPERATOR_SECRET SIM_AUDITOR_CLIENT_ID; do
  [[ -n "${!v}" ]] || { echo "sim-ids.sh: $v not found in $sim_seed" >&2; return 1; }
done
export SIM_TENANT_ID SIM_INITIAL_DOMAIN SIM_OPERATOR_CLIENT_ID SIM_OPERATOR_SECRET SIM_AUDITOR_CLIENT_ID
