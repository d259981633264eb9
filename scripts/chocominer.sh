#!/usr/bin/env bash
# `just status`, `just ping` and `just sub`: run the `chocominer` command that `just up` built
# (target/release/chocominer). The release binaries are built first exactly as `up` builds
# them (build_release in lib.sh, QUIETLY): after `up` that is a no-op and prints nothing, and
# after a change cargo shows what it compiles.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

QUIETLY=1 build_release
# The servers `up` was given (INFLUX_URL, NATS_URL, ...; the environment wins).
load_settings
# As the NATS user `cli` of the local stack and, for `status` and `ping`, InfluxDB's reader,
# once `up` has made their passwords, unless the environment gives credentials of its own.
settings=()
[ ! -f "$SECRETS_DIR/nats-cli.password" ] || mapfile -t settings < <(nats_client_env cli)
if [[ "${1:-}" =~ ^(status|ping)$ ]] && [ -f "$SECRETS_DIR/influx-reader.password" ]; then
  mapfile -t -O "${#settings[@]}" settings < <(influx_client_env reader)
fi
for setting in "${settings[@]}"; do export "${setting?}"; done
exec "$BIN_DIR/chocominer" "$@"
