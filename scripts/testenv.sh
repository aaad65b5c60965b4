#!/usr/bin/env bash
# A real, local Kubernetes control plane (etcd + kube-apiserver) for the operator's tests.
#
#   scripts/testenv.sh build   build etcd and kube-apiserver from the Go module proxy (cached)
#   scripts/testenv.sh start   start both on 127.0.0.1 with free ports; prints KUBECONFIG path
#   scripts/testenv.sh stop    stop exactly the processes that `start` recorded
#   scripts/testenv.sh env     print the exports (KUBECONFIG, PATH with the matching kubectl)
#   scripts/testenv.sh free-port   print a free TCP port on 127.0.0.1
#
# The binaries are build outputs: they live under ${XDG_CACHE_HOME:-~/.cache}, never in git.
# Run state (certificates, etcd data, logs, pids, kubeconfig) lives under target/testenv/.
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"          # k8s-openapi's `v1_37` feature matches this
CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
BIN_DIR="$CACHE_ROOT/kube-$KUBE_VERSION/bin"
KUBECTL="$BIN_DIR/kubectl"
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${TESTENV_DIR:-$REPO_ROOT/target/testenv}"

log() { echo "testenv: $*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

build() {
  if [[ -x "$BIN_DIR/kube-apiserver" && -x "$BIN_DIR/etcd" && -x "$BIN_DIR/kubectl" ]]; then
    log "using cached binaries in $BIN_DIR"
    return 0
  fi
  command -v go >/dev/null || { log "go is required to build the control plane"; exit 1; }
  local wrap="$CACHE_ROOT/kube-$KUBE_VERSION/wrapper"
  rm -rf "$wrap" && mkdir -p "$wrap" "$BIN_DIR"
  export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  local minor="${KUBE_VERSION#v1.}"; minor="${minor%%.*}"
  local staging="v0.${KUBE_VERSION#v1.}"
  log "building kube-apiserver, etcd and kubectl $KUBE_VERSION (first run only; ~15-25 min on 2 cores)"
  (
    cd "$wrap"
    go mod init remoteassist.dev/testenv-wrapper >/dev/null 2>&1
    # k8s.io/kubernetes requires its staging modules at v0.0.0 with local replaces, which the
    # proxy cannot serve. Pin each one to its published tag instead (v1.Y.Z <-> v0.Y.Z).
    local gomod; gomod="$(go list -m -f '{{.GoMod}}' "k8s.io/kubernetes@$KUBE_VERSION")"
    local mods; mods="$(awk '$2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}' "$gomod" | sort -u)"
    [[ -n "$mods" ]] || { log "no staging modules found in $gomod"; exit 1; }
    for m in $mods; do go mod edit -replace="$m=$m@$staging"; done
    go get "k8s.io/kubernetes@$KUBE_VERSION"
    local etcd_version; etcd_version="$(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2; exit}' "$gomod")"
    go get "go.etcd.io/etcd/server/v3@$etcd_version"
    local ld="-s -w -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION"
    ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
    ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
    go build -trimpath -ldflags "$ld" -o "$BIN_DIR/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    go build -trimpath -ldflags "-s -w" -o "$BIN_DIR/etcd.tmp" go.etcd.io/etcd/server/v3
    # kubectl of the same version, so tests see no version-skew warnings.
    go build -trimpath -ldflags "$ld" -o "$BIN_DIR/kubectl.tmp" k8s.io/kubernetes/cmd/kubectl
    for b in kube-apiserver etcd kubectl; do mv "$BIN_DIR/$b.tmp" "$BIN_DIR/$b"; done
  )
  # The wrapper module is only needed for the build; Go's own module and build caches stay,
  # so a rebuild for another version reuses them.
  rm -rf "$wrap"
  log "built $(cd "$BIN_DIR" && printf '%s ' *)"
}

wait_for() { # wait_for SECONDS PIDFILE DESCRIPTION COMMAND...: poll, failing fast if the process died
  local deadline=$((SECONDS + $1)) pidfile="$2" what="$3"; shift 3
  until "$@" >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then log "process exited while waiting for $what"; return 1; fi
    if (( SECONDS >= deadline )); then log "timed out waiting for $what"; return 1; fi
    sleep 0.5
  done
}

# Starts kube-apiserver on the ports recorded by `start`, against the same etcd and certificates,
# so `restart-apiserver` brings back the same cluster (tests of an API server restart).
launch_apiserver() {
  local etcd_port api_port
  read -r etcd_port api_port <"$RUN_DIR/ports"
  "$BIN_DIR/kube-apiserver" \
    --etcd-servers="http://127.0.0.1:$etcd_port" \
    --cert-dir="$RUN_DIR/certs" \
    --secure-port="$api_port" --bind-address=127.0.0.1 --advertise-address=127.0.0.1 \
    --service-cluster-ip-range=10.0.0.0/24 --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --authorization-mode=RBAC --disable-admission-plugins=ServiceAccount \
    --enable-admission-plugins=OwnerReferencesPermissionEnforcement \
    --token-auth-file="$RUN_DIR/certs/tokens.csv" \
    --service-account-issuer="https://127.0.0.1:$api_port/" \
    --service-account-key-file="$RUN_DIR/certs/sa.key" \
    --service-account-signing-key-file="$RUN_DIR/certs/sa.key" \
    >>"$RUN_DIR/kube-apiserver.log" 2>&1 &
  echo $! >"$RUN_DIR/kube-apiserver.pid"
}

restart_apiserver() {
  stop_pid "$RUN_DIR/kube-apiserver.pid"
  # The old process may hold its port for a moment after it exits: try a few times.
  for attempt in 1 2 3 4 5; do
    launch_apiserver
    if wait_for 120 "$RUN_DIR/kube-apiserver.pid" "kube-apiserver /readyz" \
      "$KUBECTL" --kubeconfig="$RUN_DIR/kubeconfig" get --raw /readyz; then
      log "restarted kube-apiserver"
      return 0
    fi
    log "kube-apiserver did not come back (attempt $attempt)"
    sleep 2
  done
  tail -30 "$RUN_DIR/kube-apiserver.log"
  exit 1
}

# The processes a run directory recorded that are still alive, as "name pid" words.
alive() {
  local name file pid
  for name in etcd kube-apiserver; do
    file="$RUN_DIR/$name.pid"
    [[ -f "$file" ]] || continue
    pid="$(cat "$file")"
    if kill -0 "$pid" 2>/dev/null; then printf '%s %s ' "$name" "$pid"; fi
  done
}

start() {
  build
  # Never wipe a run directory whose cluster is alive: another run (the test suite, a demo, a
  # benchmark) may be using it. Each has its own TESTENV_DIR; stop this one on purpose.
  local running
  running="$(alive)"
  if [[ -n "$running" ]]; then
    echo "testenv: $RUN_DIR is in use (${running% }); stop it first: TESTENV_DIR=$RUN_DIR $0 stop" >&2
    exit 1
  fi
  rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR/certs" "$RUN_DIR/etcd"
  local etcd_port peer_port api_port
  etcd_port="$(free_port)"; peer_port="$(free_port)"; api_port="$(free_port)"

  "$BIN_DIR/etcd" --data-dir="$RUN_DIR/etcd" \
    --listen-client-urls="http://127.0.0.1:$etcd_port" --advertise-client-urls="http://127.0.0.1:$etcd_port" \
    --listen-peer-urls="http://127.0.0.1:$peer_port" --initial-advertise-peer-urls="http://127.0.0.1:$peer_port" \
    --initial-cluster="default=http://127.0.0.1:$peer_port" \
    --unsafe-no-fsync=true >"$RUN_DIR/etcd.log" 2>&1 &
  echo $! >"$RUN_DIR/etcd.pid"
  wait_for 30 "$RUN_DIR/etcd.pid" "etcd /health" curl -fsS "http://127.0.0.1:$etcd_port/health" || { tail -20 "$RUN_DIR/etcd.log"; exit 1; }

  openssl genrsa -out "$RUN_DIR/certs/sa.key" 2048 2>/dev/null
  local admin_token user_token
  admin_token="$(openssl rand -hex 24)"; user_token="$(openssl rand -hex 24)"
  # token,user,uid,"groups": the admin is a superuser; `tester` has no rights until RBAC grants them.
  printf '%s,test-admin,test-admin,"system:masters"\n%s,tester,tester,"testers"\n' \
    "$admin_token" "$user_token" >"$RUN_DIR/certs/tokens.csv"

  echo "$etcd_port $api_port" >"$RUN_DIR/ports"
  launch_apiserver
  wait_for 60 "$RUN_DIR/kube-apiserver.pid" "the serving certificate" test -s "$RUN_DIR/certs/apiserver.crt" \
    || { tail -30 "$RUN_DIR/kube-apiserver.log"; exit 1; }

  local kc="$RUN_DIR/kubeconfig"
  "$KUBECTL" config --kubeconfig="$kc" set-cluster testenv --server="https://127.0.0.1:$api_port" \
    --certificate-authority="$RUN_DIR/certs/apiserver.crt" --embed-certs=true >/dev/null
  "$KUBECTL" config --kubeconfig="$kc" set-credentials test-admin --token="$admin_token" >/dev/null
  "$KUBECTL" config --kubeconfig="$kc" set-credentials tester --token="$user_token" >/dev/null
  "$KUBECTL" config --kubeconfig="$kc" set-context admin --cluster=testenv --user=test-admin >/dev/null
  "$KUBECTL" config --kubeconfig="$kc" set-context tester --cluster=testenv --user=tester >/dev/null
  "$KUBECTL" config --kubeconfig="$kc" use-context admin >/dev/null
  chmod 600 "$kc"
  wait_for 120 "$RUN_DIR/kube-apiserver.pid" "kube-apiserver /readyz" "$KUBECTL" --kubeconfig="$kc" get --raw /readyz \
    || { log "see $RUN_DIR/kube-apiserver.log"; tail -30 "$RUN_DIR/kube-apiserver.log"; exit 1; }
  log "ready: kube-apiserver $KUBE_VERSION on https://127.0.0.1:$api_port"
  echo "$kc"
}

stop_pid() { # stop_pid FILE: end exactly the recorded process and wait for it to exit
  local file="$1" pid
  [[ -f "$file" ]] || return 0
  pid="$(cat "$file")"
  if kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$file"
}

stop() {
  stop_pid "$RUN_DIR/kube-apiserver.pid"
  stop_pid "$RUN_DIR/etcd.pid"
}

case "${1:-}" in
  build) build ;;
  start) start ;;
  stop) stop ;;
  restart-apiserver) restart_apiserver ;;
  free-port) free_port ;;
  env)
    # shellcheck disable=SC2016 # $PATH is for the shell that evaluates this output
    printf 'export KUBECONFIG=%s\nexport PATH=%s:$PATH\n' "$RUN_DIR/kubeconfig" "$BIN_DIR" ;;
  *) echo "usage: $0 build|start|stop|restart-apiserver|env|free-port" >&2; exit 2 ;;
esac
