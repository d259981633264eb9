#!/usr/bin/env bash
# `just ps`: what the local stack runs, one line per process (name, pid, uptime, memory), then
# how many instances of each stage run.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

mapfile -t tracked < <(tracked_names)
[ "${#tracked[@]}" -gt 0 ] || { say "nothing runs: the stack is not up (\`just up\`)"; exit 0; }

read -r now _ </proc/uptime
hz="$(getconf CLK_TCK)"
declare -A count=([rng]=0 [hasher]=0 [worker]=0)
printf '%-12s %8s %9s %9s  %s\n' NAME PID UPTIME RSS STATE
for n in "${tracked[@]}"; do # servers first, then the dashboard, then the stages
  if alive "$n"; then
    s=$((${now%.*} - STARTTIME / hz)) # seconds: the uptime minus its start (ticks since boot)
    if ((s < 60)); then up=${s}s
    elif ((s < 3600)); then printf -v up '%dm%02ds' $((s / 60)) $((s % 60))
    else printf -v up '%dh%02dm' $((s / 3600)) $((s % 3600 / 60)); fi
    rss="$(awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$PID/status" 2>/dev/null || true)"
    state=running
    ! is_stage "${n%-*}" || count[${n%-*}]=$((count[${n%-*}] + 1))
  else
    [ -n "$PID" ] || continue # its pid file is gone
    up=- rss=- state="exited (see $LOG_DIR/$n.log)"
  fi
  printf '%-12s %8s %9s %9s  %s\n' "$n" "$PID" "$up" "$rss" "$state"
done
say ""
say "running: rng ${count[rng]}, hasher ${count[hasher]}, worker ${count[worker]}"
if alive webui; then say "dashboard http://127.0.0.1:$WEBUI_PORT"; fi
