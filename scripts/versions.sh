# Pinned versions for the kind backend, sourced by the other scripts. Override any of them in the
# environment (e.g. ISTIO_VERSION=1.26.4 scripts/kind-up.sh).
# shellcheck shell=bash
: "${KIND_VERSION:=v0.29.0}"
: "${KIND_NODE_IMAGE:=kindest/node:v1.33.1}"
: "${ISTIO_VERSION:=1.27.3}"
: "${CLUSTER_NAME:=egress-conformance}"
: "${TOOLS_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/egress-conformance/tools}"
export KIND_VERSION KIND_NODE_IMAGE ISTIO_VERSION CLUSTER_NAME TOOLS_DIR
