#!/usr/bin/env bash
# `just status`, `just ping` and `just sub`: run the `chocominer` command that `just up` built
# (target/release/chocominer). The release binaries are built first exactly as `up` builds
# them (build_release_quietly in lib.sh): after `up` that is a no-op and prints nothing, and
# after a change cargo shows what it compiles.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

build_release_quietly
# The servers `up` was given (INFLUX_URL, NATS_URL, ...; the environment wins).
load_settings
# As the NATS user `cli` of the local stack (its password from `up`), unless the environment
# gives credentials of its own.
if [ -f "$(nats_password_file cli)" ]; then
  while IFS= read -r setting; do export "${setting?}"; done < <(nats_client_env cli)
fi
# `status` and `ping` read the local InfluxDB as its reader (unless the environment says who to
# be), once `up` has made its password.
if { [ "${1:-}" = status ] || [ "${1:-}" = ping ]; } && [ -f "$(influx_password_file reader)" ]; then
  mapfile -t influx < <(influx_client_env reader)
  for setting in "${influx[@]}"; do export "${setting?}"; done
fi
exec "$BIN_DIR/chocominer" "$@"
