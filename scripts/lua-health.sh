#!/usr/bin/env bash
# Runs the Argo CD health checks in deploy/argocd/resource_customizations/ against their captured
# fixtures with gopher-lua, set up the way Argo CD sets it up (tools/lua-health), and checks that
# deploy/argocd/argocd-cm.yaml carries the same scripts byte for byte.
#
#   scripts/lua-health.sh              run every case; verify the argocd-cm snippet
#   scripts/lua-health.sh --write-cm   regenerate deploy/argocd/argocd-cm.yaml, then the same
#
# The runner is built once into ~/.cache/remote-assist-operator/lua-health/bin/lua-health (Go and
# the Go module proxy on first use) and rebuilt only when tools/lua-health's sources change.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CACHE_ROOT="${REMOTEASSIST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/remote-assist-operator}"
BIN_DIR="$CACHE_ROOT/lua-health/bin"
BIN="$BIN_DIR/lua-health"
STAMP="$BIN_DIR/lua-health.sources.sha256"
CM=deploy/argocd/argocd-cm.yaml
DIR=deploy/argocd/resource_customizations

mode=(-cm "$CM")
case "${1:-}" in
  "") ;;
  --write-cm) mode=(-write-cm "$CM") ;;
  *) echo "usage: $0 [--write-cm]" >&2; exit 2 ;;
esac

sources_hash() {
  (cd tools/lua-health && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 |
    LC_ALL=C sort -z | xargs -0 sha256sum) | sha256sum | cut -d' ' -f1
}

if command -v gofmt >/dev/null; then
  unformatted="$(gofmt -l tools/lua-health)"
  [[ -z "$unformatted" ]] || { echo "lua-health: not gofmt-formatted: $unformatted" >&2; exit 1; }
fi

hash="$(sources_hash)"
if [[ ! -x "$BIN" || "$(cat "$STAMP" 2>/dev/null)" != "$hash" ]]; then
  command -v go >/dev/null || { echo "lua-health: go is required to build tools/lua-health" >&2; exit 1; }
  echo "lua-health: building tools/lua-health into $BIN" >&2
  mkdir -p "$BIN_DIR"
  tmp="$(mktemp "$BIN_DIR/lua-health.XXXXXX")"
  (cd tools/lua-health && GOWORK=off CGO_ENABLED=0 GOFLAGS=-mod=readonly GOTOOLCHAIN="${GOTOOLCHAIN:-local}" \
    go vet . && go build -trimpath -o "$tmp" .)
  mv "$tmp" "$BIN"
  printf '%s\n' "$hash" >"$STAMP"
fi

exec "$BIN" "${mode[@]}" "$DIR"
