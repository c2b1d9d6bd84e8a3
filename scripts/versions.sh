# Pinned versions for the kind backend and the workflow lint, sourced by the other scripts.
# Override any of them in the environment (e.g. ISTIO_VERSION=1.31.4 scripts/kind-up.sh).
# Where each pin comes from:
#   KIND_VERSION       newest sigs.k8s.io/kind the Go module proxy serves
#   KIND_NODE_IMAGE    the `Image` constant of pkg/apis/config/defaults/image.go in that module
#   ISTIO_VERSION      newest Istio release: newest istio.io/api and istio.io/client-go tag, which
#                      Istio's release robot creates with every Istio release
#   ACTIONLINT_VERSION newest github.com/rhysd/actionlint the Go module proxy serves
# shellcheck shell=bash
: "${KIND_VERSION:=v0.33.0}"
: "${KIND_NODE_IMAGE:=kindest/node:v1.37.0@sha256:a1ed56cfb0e7b93589bdf97c8cd566405a265939e3620fc4f5de89adff580ae5}"
: "${ISTIO_VERSION:=1.32.0}"
: "${ACTIONLINT_VERSION:=v1.7.12}"
: "${CLUSTER_NAME:=egress-conformance}"
: "${TOOLS_DIR:=${XDG_CACHE_HOME:-$HOME/.cache}/egress-conformance/tools}"
export KIND_VERSION KIND_NODE_IMAGE ISTIO_VERSION ACTIONLINT_VERSION CLUSTER_NAME TOOLS_DIR
