#!/usr/bin/env bash
# Scale benchmark (issue 7): N RemoteAssistLicenses across 10 vendors against the real local
# kube-apiserver and the simulated tenant at 50 ms per request, in both licence modes, batched
# and (up to --baseline-up-to) the baseline without batching and the shared Graph budget.
#
#   scripts/bench.sh [options for benches/scale.rs]
#   SIZES="100 1000" scripts/bench.sh --modes Direct --idle 15
#   SIZES=100 scripts/bench.sh --modes Direct --idle 15 --baseline-up-to 0   # a quick check
#
# SIZES (default "100 1000 5000"): one fresh API server per size, so runs do not share etcd.
# Options (see `cargo bench --bench scale -- --help`): --modes Direct,Group, --baseline-up-to N
# (default 1000), --baseline-flags '...', --idle SECS (60), --concurrency N (64),
# --timeout-per-run 45m.
#
# Each run prints a block as it finishes; at the end the table of every size, with the ratio
# baseline/batched. Results: target/bench/scale-<time>.jsonl (JSON lines) and .txt (stdout);
# operator logs: target/e2e/b<size>-*.log. Each batched run prints the scale targets (issue 18) with
# met or NOT MET, and the table ends with the targets that compare runs. Takes about 2 h with the
# default sizes.
#
# The API server runs under target/bench/testenv, apart from the one scripts/test.sh uses.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$CACHE_ROOT/cargo-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export TESTENV_DIR="$PWD/target/bench/testenv"
SIZES="${SIZES:-100 1000 5000}"

stamp="$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p target/bench
OUT="$PWD/target/bench/scale-$stamp.jsonl"
TXT="$PWD/target/bench/scale-$stamp.txt"

echo "==> build the control plane and the benchmark (release)" >&2
scripts/testenv.sh build
cargo bench --bench scale --no-run

trap 'scripts/testenv.sh stop' EXIT
for n in $SIZES; do
  echo "==> $n licences: a fresh local API server" >&2
  scripts/testenv.sh start >/dev/null
  eval "$(scripts/testenv.sh env)"
  cargo bench --bench scale -- --sizes "$n" --out "$OUT" "$@" | tee -a "$TXT"
  scripts/testenv.sh stop
done

echo
echo "==> all sizes ($OUT)"
cargo bench --bench scale -- --report "$OUT" | tee -a "$TXT"
