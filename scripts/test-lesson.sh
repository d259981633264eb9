#!/usr/bin/env bash
# `just test-lesson`: the seed's lesson on the native stack, as a student types it: `just up`,
# then `just scale worker 2`, `just scale worker 10`, `just scale rng 3`, `just scale hasher 2`,
# each step's rate and named bottleneck read back with `just status --json` and checked by
# scripts/lesson.py (the same checks as the compose lesson in scripts/test-containers.sh).
# A stack of its own (a temporary run directory, ports 14222/18222/18086/18088/18000: below
# Linux's ephemeral range, 32768 and up, where a client's socket once held 38000 as the
# dashboard came to listen there), on the
# dev build, default (demo) settings. Run by `just test`; fails, never skips, when a tool is
# missing. About 2 minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh # SETTING_RE, port_open

fail() { printf 'FAILED: %s\n' "$*" >&2; exit 1; }
for tool in just cargo nats-server influxd curl python3 timeout; do
  command -v "$tool" >/dev/null || fail "$tool not found on PATH (scripts/install-deps.sh installs what the stack needs)"
done

# The lesson's pacing is the default one: no setting of the developer's shell leaks in.
for v in $(compgen -e | grep -E "$SETTING_RE" || true); do unset "$v"; done
unset CHOCOMINER_PROFILE CHOCOMINER_DISCOVERY
export CHOCOMINER_NATS_PORT=14222 CHOCOMINER_NATS_MONITOR_PORT=18222 CHOCOMINER_INFLUX_PORT=18086 \
  CHOCOMINER_INFLUX_RPC_PORT=18088 CHOCOMINER_WEBUI_PORT=18000 CHOCOMINER_RECORDER_PORT=18087
for port in 14222 18222 18086 18088 18000 18087; do
  ! port_open "$port" || fail "port $port is taken: this test runs its stack on 14222/18222/18086/18088/18000/18087"
done
CHOCOMINER_RUN_DIR="$(mktemp -d "${TMPDIR:-/tmp}/chocominer-lesson.XXXXXX")"
export CHOCOMINER_RUN_DIR

finish() {
  local rc=$?
  timeout 120 just down >/dev/null 2>&1 || true
  if [ "$rc" = 0 ]; then rm -rf "$CHOCOMINER_RUN_DIR"; else
    printf 'logs kept in %s/logs\n' "$CHOCOMINER_RUN_DIR" >&2
  fi
  exit "$rc"
}
trap finish EXIT

# The dev build, as scripts/test-local-stack.sh uses: after `cargo test` nothing is left to build.
echo "==> cargo build --bins (the dev build, run by \`just up\` through CHOCOMINER_BIN_DIR)"
cargo build --bins
export CHOCOMINER_BIN_DIR="${CARGO_TARGET_DIR:-target}/debug"

echo "==> just up"
timeout 180 just up || fail "just up failed"
python3 scripts/lesson.py --spelling just --status "timeout 20 just status --json"
