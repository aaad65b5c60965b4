#!/usr/bin/env bash
# Helm, built from the Go module proxy and cached (like scripts/testenv.sh does for the API server).
#
#   scripts/helm.sh build       build helm $HELM_VERSION once (cached; later runs reuse it)
#   scripts/helm.sh path        print the binary's path (building it if needed)
#   scripts/helm.sh ARGS...     run helm with ARGS (building it if needed)
#
# The binary is a build output: it lives under ${XDG_CACHE_HOME:-~/.cache}, never in git.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
BIN_DIR="$CACHE_ROOT/helm-$HELM_VERSION/bin"
HELM="$BIN_DIR/helm"

log() { echo "helm.sh: $*" >&2; }

build() {
  if [[ -x "$HELM" ]]; then
    return 0
  fi
  command -v go >/dev/null || { log "go is required to build helm"; exit 1; }
  local wrap="$CACHE_ROOT/helm-$HELM_VERSION/wrapper"
  rm -rf "$wrap" && mkdir -p "$wrap" "$BIN_DIR"
  export GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
  log "building helm $HELM_VERSION from the Go module proxy (first run only)"
  (
    cd "$wrap"
    go mod init remoteassist.dev/helm-wrapper >/dev/null 2>&1
    go get "helm.sh/helm/v3@$HELM_VERSION"
    # The ldflags of helm's Makefile: its own version, and the Kubernetes version that
    # `helm template`/`helm lint` assume (client-go v0.Y -> v1.Y; otherwise it would be v1.20).
    local kver; kver="$(go list -m -f '{{.Version}}' k8s.io/client-go)"
    local kminor="${kver#v0.}"; kminor="${kminor%%.*}"
    local ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
    ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
    for pkg in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
      ld+=" -X $pkg.k8sVersionMajor=1 -X $pkg.k8sVersionMinor=$kminor"
    done
    go build -trimpath -ldflags "$ld" -o "$HELM.tmp" helm.sh/helm/v3/cmd/helm
    mv "$HELM.tmp" "$HELM"
  )
  # The wrapper module is only needed for the build; Go's module and build caches stay.
  rm -rf "$wrap"
  log "built $HELM"
}

case "${1:-}" in
  build) build ;;
  path) build; echo "$HELM" ;;
  "") echo "usage: $0 build|path|HELM-ARGS..." >&2; exit 2 ;;
  *) build; exec "$HELM" "$@" ;;
esac
