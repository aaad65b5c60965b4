#!/usr/bin/env bash
# The README's main command, tested as a new user would run it: `scripts/demo.sh` twice in a
# row (the second run must pass too), and afterwards no process it started is still alive and
# no port it listened on still answers, by the pids and ports each run recorded. Then once more
# with its operator killed mid-run: it must fail at once, say why, and leave nothing behind.
#
#   scripts/check-demo.sh
#
# The demo gets its own API server state (TESTENV_DIR), so it never touches the test suite's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export TESTENV_DIR="$PWD/target/demo-testenv"
mkdir -p target

fail() { echo "check-demo: $*" >&2; exit 1; }
# A demo still running in the background when this script ends is stopped (it then stops
# everything it started).
demo=""
trap 'if [[ -n "$demo" ]] && kill -0 "$demo" 2>/dev/null; then kill -TERM "$demo"; wait "$demo" || true; fi' EXIT

left_behind() {
  local kind name value bad=0
  while read -r kind name value; do
    case "$kind" in
      pid) if kill -0 "$value" 2>/dev/null; then echo "  still running: $name (pid $value)"; bad=1; fi ;;
      port) if python3 -c 'import socket,sys; s=socket.socket(); s.settimeout(1); sys.exit(0 if s.connect_ex(("127.0.0.1", int(sys.argv[1]))) == 0 else 1)' "$value"; then
              echo "  still listening: $name (port $value)"; bad=1; fi ;;
    esac
  done <target/demo.pids
  return "$bad"
}

for run in 1 2; do
  log="target/demo-run-$run.log"
  start=$SECONDS
  if ! scripts/demo.sh >"$log" 2>&1; then
    tail -n 40 "$log" >&2
    fail "run $run of scripts/demo.sh failed (log: $log)"
  fi
  echo "run $run passed in $((SECONDS - start)) s; its last lines:"
  tail -n 3 "$log" | sed 's/^/    /'
  [[ -s target/demo.pids ]] || fail "run $run recorded nothing in target/demo.pids"
  echo "  it started: $(awk '$1 == "pid" {printf "%s (%s) ", $2, $3}' target/demo.pids)"
  echo "  it listened on: $(awk '$1 == "port" {printf "%s (%s) ", $2, $3}' target/demo.pids)"
  left_behind || fail "run $run left processes or ports behind"
  echo "  nothing left behind"
done
# Fail fast: the operator dies while the demo waits. The demo must stop at once, say which
# process exited and with what status, and still leave nothing behind.
log=target/demo-run-killed.log
start=$SECONDS
rm -f target/demo.pids # so the pid read below is this run's
scripts/demo.sh >"$log" 2>&1 &
demo=$!
for _ in $(seq 1 600); do
  op="$(awk '$1 == "pid" && $2 == "operator" {print $3}' target/demo.pids 2>/dev/null || true)"
  [[ -n "$op" ]] && break
  sleep 0.1
done
[[ -n "$op" ]] || fail "the demo never started its operator"
kill -9 "$op"
status=0
wait "$demo" || status=$?
[[ $status -ne 0 ]] || fail "the demo passed although its operator was killed"
grep -q "the operator (pid $op) exited with status" "$log" || { tail -n 20 "$log" >&2; fail "the demo did not say that its operator exited"; }
echo "killed operator: the demo stopped after $((SECONDS - start)) s with status $status:"
grep "exited with status" "$log" | sed 's/^/    /'
left_behind || fail "the failed run left processes or ports behind"
echo "  nothing left behind"
echo "check-demo: 3 passed, 0 failed"
