#!/usr/bin/env bash
# `just ps`: what the local stack runs, one line per process (name, pid, uptime, memory), then
# how many instances of each stage run.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tracked_or_exit "nothing runs: the stack is not up (\`just up\`)"

# Servers first, then the dashboard, then the stages in pipeline order.
ordered=()
for n in "${INFRA[@]}" "${UI[@]}"; do [ -f "$(pidfile "$n")" ] && ordered+=("$n"); done
for n in "${TRACKED[@]}"; do case " ${INFRA[*]} ${UI[*]} " in *" $n "*) ;; *) ordered+=("$n") ;; esac; done

declare -A count=([rng]=0 [hasher]=0 [worker]=0)
printf '%-12s %8s %9s %9s  %s\n' NAME PID UPTIME RSS STATE
for n in "${ordered[@]}"; do
  read_pidfile "$n" || continue
  if alive "$n"; then
    up="$(human_duration "$(proc_uptime "$STARTTIME")")"
    rss="$(awk '/^VmRSS:/ { printf "%d MiB", $2 / 1024 }' "/proc/$PID/status" 2>/dev/null || true)"
    state=running
    stage=${n%-[0-9]*}
    is_stage "$stage" && count[$stage]=$((count[$stage] + 1))
  else
    up=- rss=- state="exited (see .run/logs/$n.log)"
  fi
  printf '%-12s %8s %9s %9s  %s\n' "$n" "$PID" "$up" "$rss" "$state"
done
say ""
say "running: rng ${count[rng]}, hasher ${count[hasher]}, worker ${count[worker]}"
if alive webui; then say "dashboard http://127.0.0.1:$WEBUI_PORT"; fi
