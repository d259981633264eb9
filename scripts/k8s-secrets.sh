#!/usr/bin/env bash
# ChocoMiner's passwords on Kubernetes, made once in the cluster: run it before the first
# `kubectl apply -k k8s`, and again whenever you like (it never changes a password it finds).
#
#   scripts/k8s-secrets.sh                 # create what is missing in namespace chocominer
#   scripts/k8s-secrets.sh --print         # the same Secrets as YAML on stdout, no cluster needed
#
# Why not Secrets in k8s/: whatever k8s/ holds is written back by every `kubectl apply -k`,
# and InfluxDB takes its users' passwords on its first start only, so a Secret that changed
# after that (replaced by hand, then re-applied) no longer matches and the recorder's writes
# (the stages' stats) are refused. Made here, in the cluster only, a password is random, made
# once, and survives every re-apply. A key a newer release needs (say route-password, or
# chocominer-recorder's stages-password) is added beside the others; the existing ones are
# left as they are.
#
# The keys are the one list below; `just check-k8s` checks that every secretKeyRef in k8s/
# names one of them. Passwords are `n` + 32 hex digits: nats-server wants letters, digits, `-`
# or `_`, starting with a letter (nats/nats-server.conf), and Chronograf's source template
# wants nothing HTML would escape.
set -euo pipefail

NAMESPACE=${CHOCOMINER_NAMESPACE:-chocominer}
# Secret name, then its keys: one password per NATS user (nats/nats-server.conf; route is the
# servers' own, for the cluster routes), per InfluxDB user, and the stages' password for the
# recorder (the stages write their stats through it, never as InfluxDB's writer).
SECRETS=(
  "chocominer-nats rng-password hasher-password worker-password cli-password debug-password route-password"
  "chocominer-influx admin-password writer-password reader-password"
  "chocominer-recorder stages-password"
)

usage() {
  cat <<EOF
usage: $0 [--print] [--namespace NS]
  (default)        create the Secrets missing in the namespace (and the namespace), add keys
                   missing from existing ones; never changes an existing password
  --print          print the Secrets as YAML with new random passwords, touch no cluster
  --namespace NS   the namespace (env CHOCOMINER_NAMESPACE, default chocominer)
EOF
}

print=0
while [ $# -gt 0 ]; do
  case $1 in
    --print) print=1 ;;
    --namespace) NAMESPACE=${2:?--namespace needs a value}; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; exit 2 ;;
  esac
  shift
done

say() { echo "[k8s-secrets] $*" >&2; }
password() { printf 'n%s' "$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"; }

# secret_yaml NAME KEY...: the Secret with a new password per key.
secret_yaml() {
  local name=$1 key args=()
  shift
  for key in "$@"; do args+=("--from-literal=$key=$(password)"); done
  kubectl create secret generic "$name" --namespace "$NAMESPACE" "${args[@]}" \
    --dry-run=client -o yaml \
    | kubectl label --local -f - -o yaml \
      app.kubernetes.io/instance=chocominer app.kubernetes.io/part-of=chocominer
}

if ((print)); then
  first=1
  for entry in "${SECRETS[@]}"; do
    ((first)) || echo ---
    first=0
    # shellcheck disable=SC2086 # the entry is a name and its keys, split on purpose
    secret_yaml $entry
  done
  exit 0
fi

command -v kubectl >/dev/null || { echo "error: kubectl not found" >&2; exit 1; }
if ! kubectl get namespace "$NAMESPACE" >/dev/null 2>&1; then
  kubectl create namespace "$NAMESPACE" >/dev/null
  say "namespace $NAMESPACE created"
fi
for entry in "${SECRETS[@]}"; do
  read -r name keys <<<"$entry"
  # shellcheck disable=SC2086,SC2016 # keys split on purpose; the template is kubectl's
  if ! have=$(kubectl -n "$NAMESPACE" get secret "$name" -o go-template='{{range $k, $v := .data}}{{$k}} {{end}}' 2>/dev/null); then
    secret_yaml "$name" $keys | kubectl create -f - >/dev/null
    say "secret $name created: $keys"
    continue
  fi
  missing=()
  for key in $keys; do
    [[ " $have " == *" $key "* ]] || missing+=("$key")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    say "secret $name kept as it is"
    continue
  fi
  patch=$(for key in "${missing[@]}"; do printf '"%s":"%s",' "$key" "$(password)"; done)
  kubectl -n "$NAMESPACE" patch secret "$name" --type merge -p "{\"stringData\":{${patch%,}}}" >/dev/null
  say "secret $name: added ${missing[*]} (the others kept)"
done
