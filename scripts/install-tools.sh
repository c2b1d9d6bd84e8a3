#!/usr/bin/env bash
# Fetch the pinned kind and istioctl into $TOOLS_DIR (unless already on PATH at the right version)
# and print the PATH line to use. Needs network access to GitHub; Docker must be running for kind.
# Each version gets its own directory ($TOOLS_DIR/kind-<version>, $TOOLS_DIR/istio-<version>), so
# changing a pin never reuses an older download, and each download is checked against the SHA-256
# its release publishes beside it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

case "$(uname -s)" in
  Linux) kind_os=linux istio_os=linux ;;
  Darwin) kind_os=darwin istio_os=osx ;;
  *) echo "unsupported system: $(uname -s)" >&2; exit 2 ;;
esac
case "$(uname -m)" in
  x86_64 | amd64) arch=amd64 ;;
  aarch64 | arm64) arch=arm64 ;;
  *) echo "unsupported machine: $(uname -m)" >&2; exit 2 ;;
esac

# `kind version` prints `kind v0.33.0 go1.27.1 linux/amd64`.
kind_version() { { "$1" version 2>/dev/null || true; } | awk '$1 == "kind" { print $2; exit }'; }
# `istioctl version --remote=false` prints `1.27.3`, or `client version: 1.27.3` in newer releases.
istioctl_version() {
  { "$1" version --remote=false 2>/dev/null || true; } | sed -n 's/^\(client version: \)\{0,1\}\([0-9][^ ]*\)$/\2/p' | head -n 1
}

# download URL FILE: fetch URL into FILE and check it against the SHA-256 published at URL.sha256
# (Istio) or URL.sha256sum (kind), both `<hex> <name>`.
download() {
  local url=$1 out=$2 suffix=$3 want got
  curl -fsSL --retry 3 -o "$out" "$url"
  want=$(curl -fsSL --retry 3 "$url$suffix" | awk '{ print $1; exit }')
  if command -v sha256sum >/dev/null 2>&1; then
    got=$(sha256sum "$out" | awk '{ print $1 }')
  else
    got=$(shasum -a 256 "$out" | awk '{ print $1 }')
  fi
  if ! [[ $want =~ ^[0-9a-f]{64}$ ]] || [ "$want" != "$got" ]; then
    echo "checksum mismatch for $url: published '${want}', downloaded $got" >&2
    rm -f "$out"
    exit 1
  fi
}

path_dirs=""

if [ "$(kind_version kind)" != "$KIND_VERSION" ]; then
  kind_dir="$TOOLS_DIR/kind-${KIND_VERSION}"
  if [ "$(kind_version "$kind_dir/kind")" != "$KIND_VERSION" ]; then
    echo "fetching kind ${KIND_VERSION}" >&2
    mkdir -p "$kind_dir"
    download "https://kind.sigs.k8s.io/dl/${KIND_VERSION}/kind-${kind_os}-${arch}" "$kind_dir/kind.part" .sha256sum
    chmod +x "$kind_dir/kind.part"
    mv "$kind_dir/kind.part" "$kind_dir/kind"
  fi
  path_dirs="$kind_dir:"
fi

if [ "$(istioctl_version istioctl)" != "$ISTIO_VERSION" ]; then
  istio_bin="$TOOLS_DIR/istio-${ISTIO_VERSION}/bin"
  if [ "$(istioctl_version "$istio_bin/istioctl")" != "$ISTIO_VERSION" ]; then
    echo "fetching istioctl ${ISTIO_VERSION}" >&2
    mkdir -p "$TOOLS_DIR"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' EXIT
    archive="istio-${ISTIO_VERSION}-${istio_os}-${arch}.tar.gz"
    download "https://github.com/istio/istio/releases/download/${ISTIO_VERSION}/${archive}" "$tmp/$archive" .sha256
    rm -rf "$TOOLS_DIR/istio-${ISTIO_VERSION}"
    tar -xzf "$tmp/$archive" -C "$TOOLS_DIR"
  fi
  path_dirs="$path_dirs$istio_bin:"
fi

echo "export PATH=\"$path_dirs\$PATH\""
