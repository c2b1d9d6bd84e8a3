#!/usr/bin/env bash
# Remove what kind-up.sh (or a killed `egress-conformance run --backend kind`) left: the kind
# cluster, and with it Istio and the sleep sample.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"
eval "$("$here/install-tools.sh")"
if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  kind delete cluster --name "$CLUSTER_NAME"
else
  echo "no kind cluster named $CLUSTER_NAME" >&2
fi
