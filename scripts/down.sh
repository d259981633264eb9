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

tracked_or_exit "nothing to stop: the stack is not up"

say "stopping ChocoMiner"
stop_names "${UI[@]}"
for stage in "${STAGES[@]}"; do
  mapfile -t group < <(instances "$stage")
  stop_names "${group[@]}"
done
stop_names recorder
stop_names nats
stop_names influxd
# Anything else with a pid file (there should be nothing).
mapfile -t rest < <(tracked_names)
stop_names "${rest[@]}"
rm -f "$ENV_FILE"
say "the stack is down (logs stay in $LOG_DIR, InfluxDB data in $INFLUX_DIR)"
