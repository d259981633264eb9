#!/usr/bin/env bash
# `just status` and `just sub`: run the `chocominer` command that `just up` built
# (target/release/chocominer). The release binaries are built first exactly as `up` builds
# them (build_release in lib.sh): after `up` that is a no-op, and after a change cargo shows
# what it compiles.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_release
exec "$BIN_DIR/chocominer" "$@"
