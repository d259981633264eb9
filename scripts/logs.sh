#!/usr/bin/env bash
# `just logs [STAGE]`: the last LOG_LINES lines (default 3) of each log of the local stack, all
# of them or those of one stage (rng, hasher, worker) or service (nats, influxd, recorder,
# webui), in natural order (hasher-2 before hasher-10), then follows them all with tail -F.
# The files are the ones there when it starts: after `just scale` adds instances, run it again
# to see theirs.
#   LOG_LINES=20 just logs hasher     more of each log first
#   LOG_LINES=0 just logs             only what comes from now on
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

lines="${LOG_LINES:-3}"
[[ "$lines" =~ ^[0-9]+$ ]] || die "LOG_LINES must be a number of lines, not '$lines'"

filter="${1:-}"
case "$filter" in
  "") pattern='*' ;;
  rng | hasher | worker) pattern="$filter-*" ;;
  nats | influxd | recorder | webui) pattern="$filter" ;;
  *) die "unknown stage '$filter': use rng, hasher, worker, nats, influxd, recorder or webui" \
    "(or nothing for all)" ;;
esac

shopt -s nullglob
# shellcheck disable=SC2206  # $pattern is a glob on purpose
files=("$LOG_DIR"/$pattern.log)
[ "${#files[@]}" -gt 0 ] ||
  die "no logs in $LOG_DIR${filter:+ for $filter}: start the stack with \`just up\`"
# A glob sorts hasher-10 before hasher-2; sort -V puts the numbers in order.
mapfile -t files < <(printf '%s\n' "${files[@]}" | sort -V)
exec tail -n "$lines" -F "${files[@]}"
