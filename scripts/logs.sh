#!/usr/bin/env bash
# `just logs [STAGE]`: follows the local stack's logs with tail -F, all of them or those of one
# stage (rng, hasher, worker) or service (nats, influxd, webui). The files are the ones there when it starts:
# after `just scale` adds instances, run it again to see theirs.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

filter="${1:-}"
case "$filter" in
  "") pattern='*' ;;
  rng | hasher | worker) pattern="$filter-*" ;;
  nats | influxd | webui) pattern="$filter" ;;
  *) die "unknown stage '$filter': use rng, hasher, worker, nats, influxd or webui (or nothing for all)" ;;
esac

shopt -s nullglob
# shellcheck disable=SC2206  # $pattern is a glob on purpose
files=("$LOG_DIR"/$pattern.log)
[ "${#files[@]}" -gt 0 ] || die "no logs in $LOG_DIR${filter:+ for $filter}: start the stack with \`just up\`"
exec tail -n 20 -F "${files[@]}"
