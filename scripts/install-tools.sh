#!/usr/bin/env bash
# Fetch the pinned kind and istioctl into $TOOLS_DIR (unless already on PATH at the right version)
# and print the PATH line to use. Needs network access to GitHub; Docker must be running for kind.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

os=$(uname -s | tr '[:upper:]' '[:lower:]')
case "$(uname -m)" in
  x86_64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "unsupported machine: $(uname -m)" >&2; exit 2 ;;
esac
mkdir -p "$TOOLS_DIR"

if ! command -v kind >/dev/null 2>&1 || ! kind version | grep -q "kind ${KIND_VERSION}"; then
  if [ ! -x "$TOOLS_DIR/kind" ]; then
    echo "fetching kind ${KIND_VERSION}" >&2
    curl -fsSL -o "$TOOLS_DIR/kind" "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-${os}-${arch}"
    chmod +x "$TOOLS_DIR/kind"
  fi
fi

if ! command -v istioctl >/dev/null 2>&1 || [ "$(istioctl version --remote=false 2>/dev/null)" != "$ISTIO_VERSION" ]; then
  if [ ! -x "$TOOLS_DIR/istio-${ISTIO_VERSION}/bin/istioctl" ]; then
    echo "fetching istioctl ${ISTIO_VERSION}" >&2
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    curl -fsSL -o "$tmp/istio.tar.gz" \
      "https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/istio-${ISTIO_VERSION}-${os}-${arch}.tar.gz"
    tar -xzf "$tmp/istio.tar.gz" -C "$TOOLS_DIR"
  fi
fi

echo "export PATH=\"$TOOLS_DIR:$TOOLS_DIR/istio-${ISTIO_VERSION}/bin:\$PATH\""
