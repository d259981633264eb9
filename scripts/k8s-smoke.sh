#!/usr/bin/env bash
# Waits for the smoke Job (k8s/components/smoke) to complete or to fail, whichever comes
# first, then prints its log and exits 0 (a nugget came through the whole pipeline) or 1.
#
#   kubectl apply -k k8s/overlays/smoke     # or overlays/all
#   scripts/k8s-smoke.sh                    # [--timeout SECONDS], default 150
#
# Why not `kubectl wait --for=condition=complete job/smoke`: when the Job fails, that sits out
# its whole timeout and then says only "timed out". This polls both conditions.
set -euo pipefail

NAMESPACE=${CHOCOMINER_NAMESPACE:-chocominer}
TIMEOUT=${CHOCOMINER_SMOKE_TIMEOUT:-150}
case ${1:-} in
  --timeout) TIMEOUT=${2:?--timeout needs seconds} ;;
  -h|--help)
    echo "usage: $0 [--timeout SECONDS]  (env CHOCOMINER_SMOKE_TIMEOUT, default 150; CHOCOMINER_NAMESPACE)"
    exit 0 ;;
  "") ;;
  *) echo "usage: $0 [--timeout SECONDS]" >&2; exit 2 ;;
esac

say() { echo "[k8s-smoke] $*" >&2; }
conditions() {
  kubectl -n "$NAMESPACE" get job smoke \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type} {end}'
}

deadline=$((SECONDS + TIMEOUT))
say "waiting up to ${TIMEOUT}s for job/smoke in $NAMESPACE to complete or fail"
while :; do
  if ! state=$(conditions 2>/dev/null); then
    say "no job/smoke in $NAMESPACE: apply k8s/overlays/smoke (a finished one deletes itself after 10 min)"
    exit 1
  fi
  case " $state " in
    *" Complete "*)
      kubectl -n "$NAMESPACE" logs job/smoke
      say "passed: a nugget came through rng -> hasher -> worker"
      exit 0 ;;
    *" Failed "*)
      kubectl -n "$NAMESPACE" logs job/smoke --tail=20 || true
      kubectl -n "$NAMESPACE" get job smoke \
        -o jsonpath='{range .status.conditions[?(@.type=="Failed")]}{.reason}: {.message}{"\n"}{end}' >&2
      say "failed (above); the pods: kubectl -n $NAMESPACE get pods"
      exit 1 ;;
  esac
  if ((SECONDS >= deadline)); then
    say "neither complete nor failed after ${TIMEOUT}s; kubectl -n $NAMESPACE describe job smoke"
    exit 1
  fi
  sleep 2
done
