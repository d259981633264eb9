#!/usr/bin/env bash
# `just scale STAGE N`: makes exactly N instances of STAGE (rng, hasher or worker) run on the
# local stack. New instances get the next free numbers and the settings `just up` was given
# (variables set on this command line win); surplus ones are stopped newest first, gracefully.
set -euo pipefail
# shellcheck source=scripts/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

usage="usage: just scale rng|hasher|worker N"
[ "$#" -eq 2 ] || die "$usage"
stage=$1 want=$2 max=64
is_stage "$stage" || die "unknown stage '$stage'; $usage"
[[ "$want" =~ ^[0-9]+$ ]] || die "N must be a whole number, not '$want'; $usage"
want=$((10#$want))
# Each instance is a process with its own connections: past this the local stack measures the
# machine, not the pipeline.
[ "$want" -le "$max" ] || die "$want is more than $max instances, the local stack's limit per" \
  "stage (this machine has $(nproc) cores)"
alive nats || die "the stack is not up: run \`just up\` first"

mapfile -t names < <(instances "$stage")
forget_dead "${names[@]}"
names=("${LIVE[@]}") have=${#LIVE[@]}

if [ "$want" -gt "$have" ]; then
  trap 'INTERRUPTED=1' INT TERM   # finish starting the current instance first (see lib.sh)
  load_settings
  last=0
  [ "$have" -eq 0 ] || last="${names[-1]#"$stage"-}"
  new=()
  for ((n = last + 1; n <= last + want - have; n++)); do
    spawn_stage "$stage" "$n"
    new+=("$stage-$n")
  done
  sleep 0.5
  for n in "${new[@]}"; do
    alive "$n" || { log_tail "$n"; say "warning: $n exited right after starting" >&2; }
  done
  say "started ${new[*]}"
elif [ "$want" -lt "$have" ]; then
  mapfile -t surplus < <(printf '%s\n' "${names[@]:want}" | tac) # newest (highest number) first
  stop_names "${surplus[@]}"
fi

mapfile -t names < <(instances "$stage")
running=()
for n in "${names[@]}"; do alive "$n" && running+=("$n"); done
say "$stage: ${#running[@]} running${running[*]:+ (${running[*]})}"
