#!/usr/bin/env bash
# Lint .github/workflows with actionlint at the pinned version, shellcheck included for the `run:`
# scripts. Installs actionlint once from the Go module proxy into
# $TOOLS_DIR/actionlint-<version> (needs `go`); needs `shellcheck` on PATH.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/versions.sh
. "$here/versions.sh"

bin_dir="$TOOLS_DIR/actionlint-${ACTIONLINT_VERSION}"
actionlint="$bin_dir/actionlint"
if ! [ -x "$actionlint" ] || ! "$actionlint" -version 2>/dev/null | grep -qx "$ACTIONLINT_VERSION"; then
  if ! command -v go >/dev/null 2>&1; then
    echo "actionlint ${ACTIONLINT_VERSION} needs installing and there is no \`go\` on PATH" >&2
    exit 2
  fi
  echo "installing actionlint ${ACTIONLINT_VERSION} into $bin_dir" >&2
  mkdir -p "$bin_dir"
  GOBIN="$bin_dir" go install "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
fi

if ! shellcheck=$(command -v shellcheck); then
  echo "actionlint checks the workflows' run: scripts with shellcheck, which is not on PATH" \
    "(Debian/Ubuntu: apt-get install shellcheck)" >&2
  exit 2
fi

cd "$here/.."
"$actionlint" -shellcheck="$shellcheck" .github/workflows/*.yml
echo "actionlint ${ACTIONLINT_VERSION}: .github/workflows clean" >&2
