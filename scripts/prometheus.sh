#!/usr/bin/env bash
# Makes sure Prometheus and promtool are installed (Debian's package `prometheus`), installing
# them when missing; a failed install is an error, never a skip. Prints prometheus's path.
#
#   scripts/prometheus.sh
set -euo pipefail
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  echo "prometheus.sh: Prometheus is not installed: installing Debian's package prometheus" >&2
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q --no-install-recommends prometheus ||
    { apt-get update -q && apt-get install -y -q --no-install-recommends prometheus; }; } >/dev/null ||
    { echo "prometheus.sh: cannot install Prometheus (apt-get install prometheus failed); install it and run again" >&2; exit 1; }
  # The package starts a system service where there is an init system; the tests start their own.
  if command -v service >/dev/null; then service prometheus stop >/dev/null 2>&1 || true; fi
fi
command -v prometheus
