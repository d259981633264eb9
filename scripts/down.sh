#!/usr/bin/env bash
# `just down`: stops exactly what `just up` and `just scale` started, found through the pid
# files in .run/pids (a pid whose start time or command no longer matches is left alone).
# Order: the dashboard (webui), then rng, hasher, worker (upstream first, so each stage can
# finish what it holds and the worker can flush its last stats), then the recorder (which
# passes those stats on), then nats-server and influxd.
# Each group gets SIGTERM and STOP_TIMEOUT seconds (default 15) before SIGKILL. Safe to run any
# number of times.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t tracked < <(tracked_names)
[ "${#tracked[@]}" -gt 0 ] || { say "nothing to stop: the stack is not up"; exit 0; }

say "stopping ChocoMiner"
for group in "${UI[@]}" "${STAGES[@]}" recorder nats influxd; do
  mapfile -t names < <(instances "$group")
  stop_names "${names[@]}"
done
# Anything else with a pid file (there should be nothing).
mapfile -t names < <(tracked_names)
stop_names "${names[@]}"
rm -f "$ENV_FILE"
say "the stack is down (logs stay in $LOG_DIR, InfluxDB data in $INFLUX_DIR)"
