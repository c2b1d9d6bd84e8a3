#!/usr/bin/env bash
# Bring up a kind cluster with Istio (demo profile, which has istio-egressgateway) and the sleep
# sample, by hand. `egress-conformance run --backend kind --context kind-$CLUSTER_NAME` then uses
# it and creates nothing. scripts/kind-down.sh removes it all.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"
eval "$("$here/install-tools.sh")"

if kind get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
  echo "kind cluster $CLUSTER_NAME exists; reusing it" >&2
else
  echo "creating kind cluster $CLUSTER_NAME ($KIND_NODE_IMAGE)" >&2
  kind create cluster --name "$CLUSTER_NAME" --image "$KIND_NODE_IMAGE" --wait 2m
fi
context="kind-$CLUSTER_NAME"

echo "installing Istio $ISTIO_VERSION (demo profile)" >&2
# The suite's traffic checks read each outbound cluster's counters, which Istio does not record
# by default. Images come from Docker Hub: Istio 1.30 defaults to registry.istio.io, which Istio
# retires in December 2026 (1.31 and later publish to docker.io/istio only).
istioctl --context "$context" install -y --set profile=demo --set hub=docker.io/istio \
  --set 'meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[0]=cluster.outbound' \
  --set 'meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[1]=cluster.PassthroughCluster' \
  --set 'meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[2]=cluster.BlackHoleCluster' \
  --set 'meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[3]=tcp.outbound' \
  --set 'meshConfig.defaultConfig.proxyStatsMatcher.inclusionPrefixes[4]=http.outbound'
kubectl --context "$context" label namespace default istio-injection=enabled --overwrite
kubectl --context "$context" apply -f "$here/../fixtures/sleep.yaml"
kubectl --context "$context" rollout status deployment/sleep --timeout=3m
kubectl --context "$context" -n istio-system rollout status deployment/istio-egressgateway --timeout=3m
echo "ready: egress-conformance run --backend kind --context $context" >&2
