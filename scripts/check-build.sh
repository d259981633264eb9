#!/usr/bin/env bash
# `just check-build`: the files that build and publish the images, checked in seconds, with no
# Docker engine:
#   1. actionlint on .github/workflows/ (shellcheck on their `run:` scripts);
#   2. scripts/check-build-context.py: the build context .dockerignore gives, with Docker's
#      matching: no build output (nested target/, node_modules, .tools, ...), under a size bound;
#   3. hadolint on the Dockerfile, any finding failing (each rule it ignores says why inline).
# Every check runs; the script fails if one did. A missing tool fails too (never a skip), naming
# the command that installs it.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PWD/.tools/venv/bin:$PATH"

need() {
  command -v "$1" >/dev/null 2>&1 || { echo "check-build: $1 missing: run $2" >&2; exit 1; }
}
need actionlint "scripts/install-deps.sh --with-k8s"
need hadolint "scripts/install-deps.sh --with-k8s"
need shellcheck "scripts/install-deps.sh --with-k8s (apt-get install shellcheck)"
need python3 "apt-get install python3"

failed=()
check() {
  local name=$1
  shift
  echo "==> $name: $*"
  if "$@"; then echo "    ok"; else failed+=("$name"); fi
}

# -shellcheck names it: actionlint otherwise skips the scripts quietly when it finds none.
# No file named: actionlint finds every workflow of the repository (.yml and .yaml).
check actionlint actionlint -shellcheck "$(command -v shellcheck)"
check build-context python3 scripts/check-build-context.py
check hadolint hadolint --no-color --failure-threshold style Dockerfile

if ((${#failed[@]})); then
  echo "check-build: FAILED: ${failed[*]}" >&2
  exit 1
fi
echo "check-build: actionlint, build context and hadolint ok"
