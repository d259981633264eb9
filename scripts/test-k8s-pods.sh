#!/usr/bin/env bash
# `just test-k8s-pods`: the pods of the Kubernetes manifests run for real, in a container
# runtime, without a cluster: Debian's podman 4.3 plays `kubectl kustomize k8s` (the base, what
# a student applies) with the Secrets a user makes (`scripts/k8s-secrets.sh --print`), and the
# pipeline must mine. What podman 4.3 cannot play is translated by scripts/test-k8s-pods.py, in
# the smallest way that keeps the meaning, and printed item by item; everything else is played
# as it is written (env from Secrets and ConfigMaps, fieldRef, runAsUser, readOnlyRootFilesystem,
# capabilities, resources, the images and their commands). docs/kubernetes-pods.md says what
# this proves and what it cannot (no API server: Services' load balancing, NetworkPolicy, PDB,
# HPA, Jobs, rolling updates, readiness gating, real PersistentVolumes).
#
#   1. render k8s/ and make the Secrets as a user does (scripts/k8s-secrets.sh --print: random
#      passwords, no cluster needed);
#   2. the images without pulling anything (scripts/images.sh, as test-containers.sh makes them:
#      Docker, static binaries, stand-ins for the server images), then `docker save | podman
#      load` of every image the manifests name (skipped when podman has that image already);
#   3. a podman network of the test's own (fixed subnet, no DNS), the Secrets as podman secrets,
#      the claims as volumes, every pod played with its fixed IP;
#   4. every startup, readiness and liveness probe called as the kubelet calls it (HTTP GET
#      podIP:port/path, 200-399 within timeoutSeconds; periodSeconds, failureThreshold and
#      initialDelaySeconds kept); NATS: each server's /routez names the other two, POD_NAME
#      from fieldRef is the pod's name, and (when the manifests give the routes a password) a
#      fourth nats-server routing to nats-0 without it gets no route; InfluxDB answers 401
#      without credentials, and read as its reader: worker hashes and nugget points, every
#      nugget verified; rng, hasher and worker each write stats; they write them through the
#      recorder only (test-k8s-pods.py recorder: no stage holds InfluxDB's writer password,
#      their INFLUX_URL is the recorder's, the recorder refuses other credentials; and
#      test-containers.py stages-cannot-drop: InfluxDB refuses the stages'), and with the
#      recorder's pod stopped no stats arrive, started again they do, those held meanwhile
#      too; the chronograf stand-in (NOT Chronograf, scripts/images.sh) finds its resources
#      provisioned; the nats preStop hook (lame duck mode) run as the kubelet would on delete;
#   5. everything it made removed (pods, volumes, secrets, network; dockerd if it started it),
#      on failure too.
# Bounded: every wait has a deadline; about 2 minutes once the images exist.
#
# Needs: root, podman and catatonit (scripts/install-deps.sh --with-containers), kubectl (for
# `kubectl kustomize`), and what scripts/images.sh needs. A missing tool fails.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh # ROOT, PATH with .tools/venv (its say and die are redefined below)
# shellcheck source=scripts/images.sh
. scripts/images.sh # DOCKER, the engine, the binaries and the images

WORK="$ROOT/target/k8s-pods-test"
NETWORK=chocominer-k8s-pods
# A subnet of the test's own: each pod gets .11, .12, ... in the order the plan lists them.
SUBNET=${CHOCOMINER_K8S_TEST_SUBNET:-10.250.121.0/24}
INTRUDER=chocominer-k8s-pods-intruder
HELPER=(python3 "$ROOT/scripts/test-k8s-pods.py")
LOOKUP=(python3 "$ROOT/scripts/test-containers.py") # InfluxDB look-ups (ready, verify-nuggets, ...)
STARTED=$(date +%s)
PLAYED=""

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
elapsed() { echo $(($(date +%s) - STARTED)); }
plan() { "${HELPER[@]}" get "$WORK/plan.json" "$@"; }

# remove_all: what this test makes in podman, by name (those of an earlier run too); nothing
# else is touched.
remove_all() {
  local name pid removing=()
  podman rm -f -t 5 "$INTRUDER" >/dev/null 2>&1 || true
  if [ -f "$WORK/plan.json" ]; then
    # One `podman pod rm` each, all at once: one command removes them one after the other, and
    # two stop no sooner than the SIGKILL 10 s after SIGTERM (the chronograf stand-in's httpd,
    # pid 1 without a handler; the hasher, finishing batches while the worker is the
    # bottleneck), 76 s in all; together about 10 s.
    for name in $(python3 -c 'import json, sys; print(" ".join(p["podman"] for p in json.load(open(sys.argv[1]))["pods"]))' "$WORK/plan.json"); do
      if podman pod exists "$name"; then
        podman pod rm -f -t 10 "$name" >/dev/null 2>&1 &
        removing+=($!)
      fi
    done
    # Only those: a dockerd started here is a background job too.
    for pid in "${removing[@]}"; do wait "$pid" || true; done
    for name in $(python3 -c '
import json, sys
plan = json.load(open(sys.argv[1]))
print(" ".join(v for p in plan["pods"] for v in p["claims"] + p["emptyDirs"] + p["configMapVolumes"]))' "$WORK/plan.json"); do
      podman volume rm -f "$name" >/dev/null 2>&1 || true
    done
    for name in $(python3 -c 'import json, sys; print(" ".join(s["name"] for s in json.load(open(sys.argv[1]))["secrets"]))' "$WORK/plan.json"); do
      ! podman secret inspect "$name" >/dev/null 2>&1 || podman secret rm "$name" >/dev/null
    done
  fi
  podman network rm -f "$NETWORK" >/dev/null 2>&1 || true
}

cleanup() {
  local status=$? c
  trap - EXIT INT TERM
  if [ -n "$PLAYED" ]; then
    if ((status != 0)); then
      for c in $(python3 -c 'import json, sys; print(" ".join(c["podman"] for p in json.load(open(sys.argv[1]))["pods"] for c in p["containers"]))' "$WORK/plan.json"); do
        podman container exists "$c" || continue
        echo "--- last log lines of $c ($(podman inspect --format '{{.State.Status}} exit {{.State.ExitCode}}' "$c" 2>/dev/null)) ---" >&2
        podman logs --tail 8 "$c" 2>&1 | sed 's/^/  /' >&2 || true
      done
    fi
    say "removing the pods, volumes, secrets and network"
    local removing
    removing=$(date +%s)
    remove_all
    say "removed in $(($(date +%s) - removing)) s"
    leftovers=$(podman ps -aq --filter "network=$NETWORK" 2>/dev/null || true)
    [ -z "$leftovers" ] || echo "warning: containers left on $NETWORK: $leftovers" >&2
  fi
  # The passwords of this run (random, but passwords).
  rm -rf "$WORK/secrets" "$WORK/pods" "$WORK/secrets.yaml"
  docker_engine_down
  ((status == 0)) || echo "test-k8s-pods failed after $(elapsed) s" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || fail "root only: podman plays the pods on a network of the test's own (and dockerd)"
command -v podman >/dev/null || fail "podman missing: scripts/install-deps.sh --with-containers (apt-get install podman catatonit)"
command -v catatonit >/dev/null || fail "catatonit missing (podman's pod pause process): apt-get install catatonit"
command -v kubectl >/dev/null || fail "kubectl missing (for \`kubectl kustomize\`): scripts/install-deps.sh --with-k8s"
command -v docker-compose >/dev/null || fail "docker-compose missing: scripts/install-deps.sh --with-containers"
python3 -c 'import yaml' 2>/dev/null || fail "python3 has no yaml module (apt-get install python3-yaml)"
podman_version=$(podman version --format '{{.Client.Version}}')
say "podman $podman_version"
mkdir -p "$WORK"

# podman as root asks runc for 1048576 open files and as many processes as it may; a sandbox
# without CAP_SYS_RESOURCE (this machine) refuses that, and no container starts. The test's
# own containers.conf (CONTAINERS_CONF: nothing global changes) asks for limits runc may set.
nproc=$(ulimit -Hu)
if [ "$nproc" = unlimited ] || ((nproc > 32768)); then nproc=32768; fi # runc was refused more here
printf '[containers]\ndefault_ulimits = ["nofile=%s:%s", "nproc=%s:%s"]\n' \
  "$(ulimit -Hn)" "$(ulimit -Hn)" "$nproc" "$nproc" >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"

# --- 1. the manifests and the Secrets --------------------------------------------------------
say "kubectl kustomize k8s"
kubectl kustomize "$ROOT/k8s" >"$WORK/rendered.yaml" || fail "kubectl kustomize k8s failed"
say "the Secrets as a user makes them: scripts/k8s-secrets.sh --print"
(umask 077 && scripts/k8s-secrets.sh --print >"$WORK/secrets.yaml") || fail "scripts/k8s-secrets.sh --print failed"
remove_all # an earlier run's, by the names of its plan
rm -rf "$WORK/pods" "$WORK/secrets"
say "translating what podman $podman_version cannot play (scripts/test-k8s-pods.py plan):"
"${HELPER[@]}" plan "$WORK/rendered.yaml" "$WORK/secrets.yaml" "$WORK" "$SUBNET" | sed 's/^/  - /'
remove_all # anything of this plan's names an interrupted run may have left
mapfile -t IMAGES < <(python3 -c 'import json, sys; print("\n".join(json.load(open(sys.argv[1]))["images"]))' "$WORK/plan.json")

# --- 2. images -------------------------------------------------------------------------------------
docker_engine_up "$WORK/dockerd.log"
compose_images
static_binaries
t_images=$(date +%s)
build_images "$WORK"
for image in "${IMAGES[@]}"; do
  have_image "$image" || fail "k8s/ names $image, which neither docker-compose.yml nor the Dockerfile makes (built: ${BUILT_IMAGES[*]})"
  docker_id=$("$DOCKER" image inspect --format '{{.Id}}' "$image")
  if [ "$(podman image inspect --format '{{.Id}}' "$image" 2>/dev/null)" = "${docker_id#sha256:}" ]; then
    echo "  podman has $image already"
    continue
  fi
  say "docker save $image | podman load"
  out=$("$DOCKER" save "$image" | podman load 2>&1) || fail "podman load of $image failed: $out"
  # docker saves docker.io/library/x as x, which podman 4.3 loads as localhost/x: the image is
  # named as the manifests name it, and the other name dropped.
  loaded=$(sed -n 's/^Loaded image[^:]*: //p' <<<"$out" | head -n 1)
  if [ -n "$loaded" ] && [ "$loaded" != "$image" ]; then
    podman tag "${docker_id#sha256:}" "$image"
    podman untag "${docker_id#sha256:}" "$loaded"
  fi
  podman image exists "$image" || fail "podman does not find $image after loading it (loaded as ${loaded:-?})"
done
images_seconds=$(($(date +%s) - t_images))

# --- 3. play ---------------------------------------------------------------------------------------
PLAYED=1
say "podman network $NETWORK ($SUBNET, no DNS: the Services are hostAliases)"
podman network create --subnet "$SUBNET" "$NETWORK" >/dev/null
python3 -c '
import json, sys
for s in json.load(open(sys.argv[1]))["secrets"]:
    print(s["name"], s["file"], ",".join(s["keys"]))' "$WORK/plan.json" |
  while read -r name file keys; do
    podman secret create "$name" "$file" >/dev/null
    echo "  podman secret $name: $keys"
  done
python3 -c '
import json, sys
for p in json.load(open(sys.argv[1]))["pods"]:
    for c in p["claims"]:
        print(c, p["fsGroup"] or "")' "$WORK/plan.json" |
  while read -r claim group; do
    # What the kubelet does with fsGroup on a new volume: group-owned, group-writable, setgid.
    podman volume create ${group:+--opt "o=uid=0,gid=$group"} "$claim" >/dev/null
    [ -z "$group" ] || chmod 2775 "$(podman volume inspect --format '{{.Mountpoint}}' "$claim")"
    echo "  claim $claim: a podman volume${group:+, group $group, mode 2775 (fsGroup)}"
  done
t_play=$(date +%s)
for file in "$WORK"/pods/*.yaml; do
  pod=$(basename "$file" .yaml)
  pod=${pod#*-}
  ip=$(plan ip "$pod")
  say "podman kube play --network $NETWORK --ip $ip pods/$(basename "$file")"
  out=$(timeout 120 podman kube play --network "$NETWORK" --ip "$ip" "$file" 2>&1) \
    || { printf '%s\n' "$out" >&2; fail "podman kube play of $pod failed"; }
  # Not shown: podman 4.3 warns that it cannot time the liveness probes it makes healthchecks
  # of (no systemd here: they never run; the test calls the probes itself, step 4), and that
  # it gives a pod with --ip a random MAC address.
  printf '%s\n' "$out" | grep -iE 'error|warn' | grep -vE 'healthcheck|static macs' | sed 's/^/  /' || true
done

# --- 4. checks -------------------------------------------------------------------------------------
say "every probe, as the kubelet calls it (≤ 150 s)"
"${HELPER[@]}" probes "$WORK/plan.json" 150 | sed 's/^/  /' || fail "a probe failed (above)"
ready_seconds=$(($(date +%s) - t_play))
say "every pod started, ready and live $ready_seconds s after the first was played"

for pod in nats-0 nats-1 nats-2; do
  env=$(podman inspect --format '{{range .Config.Env}}{{println .}}{{end}}' "$pod-nats")
  grep -qx "POD_NAME=$pod" <<<"$env" || fail "$pod: POD_NAME (fieldRef metadata.name) is not $pod: $(grep POD_NAME <<<"$env")"
  name=$(curl -sf --max-time 3 "http://$(plan ip "$pod"):8222/varz" | python3 -c 'import json, sys; print(json.load(sys.stdin)["server_name"])')
  [ "$name" = "$pod" ] || fail "$pod's nats-server calls itself $name"
done
say "POD_NAME from fieldRef is the pod's name and each server is named after it (nats-0, nats-1, nats-2)"
say "the NATS cluster: each server's /routez (≤ 30 s)"
"${HELPER[@]}" routez "$WORK/plan.json" 30 | sed 's/^/  /' || fail "the NATS cluster is not a full mesh"

# A route without the routes' credentials: a fourth nats-server, same cluster name, routing to
# nats-0, must get no route (when the manifests set route authorization).
ROUTE_AUTH="not set in the manifests: not tested"
if grep -q 'route-password' "$WORK/rendered.yaml"; then
  nats_image=$(python3 -c 'import json, sys; print(next(c["image"] for p in json.load(open(sys.argv[1]))["pods"] for c in p["containers"] if c["name"] == "nats"))' "$WORK/plan.json")
  intruder_ip=$(python3 -c 'import ipaddress, sys; print(list(ipaddress.ip_network(sys.argv[1]).hosts())[99])' "$SUBNET")
  # The cluster's name, from the rendered config (a route to another cluster's name is refused
  # for that alone).
  cluster_name=$(python3 -c 'import re, sys; print(re.search(r"cluster\s*\{[^}]*?\bname:\s*(\S+)", open(sys.argv[1]).read()).group(1))' "$WORK/rendered.yaml")
  say "a nats-server without the route password, cluster $cluster_name, routes to nats-0 ($intruder_ip)"
  podman run -d --name "$INTRUDER" --network "$NETWORK" --ip "$intruder_ip" --user 65532 "$nats_image" \
    nats-server -n intruder -p 4222 -m 8222 --cluster_name "$cluster_name" --cluster "nats://0.0.0.0:6222" \
    --routes "nats://$(plan ip nats-0):6222" >/dev/null
  refused() {
    grep -q 'Authorization Violation' <<<"$(podman logs "$INTRUDER" 2>&1)" || { echo "no refusal in its log yet"; return 1; }
  }
  wait_for 20 "nats-0 refusing the route without credentials" refused >/dev/null
  routes=$(curl -sf --max-time 3 "http://$intruder_ip:8222/routez" | python3 -c 'import json, sys; print(json.load(sys.stdin)["num_routes"])')
  on_nats0=$(curl -sf --max-time 3 "http://$(plan ip nats-0):8222/routez" | grep -c '"intruder"' || true)
  if [ "$routes" != 0 ] || [ "$on_nats0" != 0 ]; then
    fail "a route without credentials was accepted ($routes routes; nats-0 lists it $on_nats0 times)"
  fi
  # The log is read whole first: a grep that stops at its first match would cut `podman logs`
  # off (SIGPIPE, status 141 under pipefail).
  intruder_log=$(podman logs "$INTRUDER" 2>&1)
  ROUTE_AUTH="refused: $(grep -m 1 'Authorization Violation' <<<"$intruder_log" | sed 's/^.*\] //')"
  say "route without credentials $ROUTE_AUTH"
  podman rm -f -t 2 "$INTRUDER" >/dev/null
fi

influx_ip=$(plan ip influxdb-0)
export INFLUX_URL="http://$influx_ip:8086" INFLUX_DB=chocominer
export INFLUX_USER=reader INFLUX_PASSWORD_FILE="$WORK/secrets/chocominer-influx.reader-password"
anonymous=$("${LOOKUP[@]}" anonymous) || fail "asking InfluxDB without credentials: $anonymous"
[ "$anonymous" = 401 ] || fail "InfluxDB answered a query without credentials with HTTP $anonymous, not 401"
say "InfluxDB answers 401 without credentials; the reader (from the Secret) reads"
say "worker hashes and a nugget point in InfluxDB (≤ 120 s)"
wait_for 120 "worker and nugget points in InfluxDB" "${LOOKUP[@]}" ready | sed 's/^/  /'
first_nugget_seconds=$(($(date +%s) - t_play))
alive=$(wait_for 30 "rng, hasher and worker writing stats" "${LOOKUP[@]}" alive 5)
[ "$alive" = "1 1 1" ] || fail "rng hasher worker instances writing stats: $alive, not 1 1 1"
say "rng, hasher and worker each write stats (instances: $alive)"
rate=$("${LOOKUP[@]}" rate 10) || fail "reading the rate: $rate"
say "rate: $rate hashes/s (the last 10 s, as worker wrote it)"
"${LOOKUP[@]}" verify-nuggets | sed 's/^/  /' || fail "a nugget does not verify"
nuggets=$("${LOOKUP[@]}" ready | sed 's/.*, //')

# The stages' stats go through the recorder and nowhere else.
say "the stages write through the recorder only"
"${HELPER[@]}" recorder "$WORK/plan.json" "$WORK/secrets" | sed 's/^/  /' || fail "the stages' way to InfluxDB (above)"
out=$("${LOOKUP[@]}" stages-cannot-drop "$WORK/secrets/chocominer-recorder.stages-password") || fail "$out"
say "the stages' password at InfluxDB: $out"
recorder_pod=$(plan podman recorder)
say "the recorder's pod stopped: no stage's stats may arrive"
podman pod stop -t 10 "$recorder_pod" >/dev/null || fail "podman pod stop $recorder_pod failed"
stopped=$(date +%s)
sleep 8
during=$("${LOOKUP[@]}" alive 5) || fail "reading the stats: $during"
[ "$during" = "0 0 0" ] || fail "with the recorder stopped, rng hasher worker instances still writing stats: $during (a way around the recorder)"
say "none for 8 s (rng hasher worker instances writing in the last 5 s: $during); the recorder's pod started again"
podman pod start "$recorder_pod" >/dev/null || fail "podman pod start $recorder_pod failed"
restarted=$(date +%s)
writing_again() {
  local a
  a=$("${LOOKUP[@]}" alive 3) || { echo "$a"; return 1; }
  echo "$a"
  [ "$a" = "1 1 1" ]
}
again=$(wait_for 60 "rng, hasher and worker stats through the restarted recorder" writing_again)
back_seconds=$(($(date +%s) - restarted))
held=$("${LOOKUP[@]}" points worker $((stopped + 1)) $((restarted - 1))) \
  || fail "counting the worker points of the outage: $held"
[ "$held" -gt 0 ] || fail "no worker points stamped while the recorder was stopped: the points the stages held did not arrive"
RECORDER="stopped $((restarted - stopped)) s: no stats; started again: stats in $back_seconds s (instances $again), $held worker points of the outage written late"
say "recorder $RECORDER"

page=$(curl -sfL --max-time 5 "http://$(plan ip chronograf):8888/sources/1/dashboards/1") \
  || fail "the chronograf pod's /sources/1/dashboards/1 did not answer"
case "$page" in
  *"not Chronograf"*"source id 1"*"dashboard id 1"*) say "the chronograf pod (the stand-in, NOT Chronograf) found source 1 and dashboard 1 in its ConfigMap volume" ;;
  *) fail "the chronograf pod says: $page" ;;
esac

# nats's preStop hook, as the kubelet runs it when the pod is deleted: lame duck mode.
prestop=$(python3 -c 'import json, sys; print(" ".join(next(c["preStop"] for p in json.load(open(sys.argv[1]))["pods"] for c in p["containers"] if c["name"] == "nats") or []))' "$WORK/plan.json")
if [ -n "$prestop" ]; then
  say "nats-2's preStop hook: podman exec nats-2-nats $prestop"
  # shellcheck disable=SC2086 # the hook's words
  timeout 20 podman exec nats-2-nats $prestop || fail "nats-2's preStop hook failed"
  lame() { grep -q 'lame duck' <<<"$(podman logs nats-2-nats 2>&1)" || { echo "no lame duck mode in its log"; return 1; }; }
  wait_for 10 "nats-2 entering lame duck mode" lame >/dev/null
  say "nats-2 entered lame duck mode (its pid file on the emptyDir, the root file system read-only)"
fi

cat <<EOF

test-k8s-pods passed in $(elapsed) s: podman $podman_version played $(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))["pods"]))' "$WORK/plan.json") pods of \`kubectl kustomize k8s\`
  images: built or found and loaded into podman in $images_seconds s
  played to every probe passing: $ready_seconds s; to worker hashes and a nugget in InfluxDB: $first_nugget_seconds s
  rate: $rate hashes/s; $nuggets
  stats through the recorder only: $RECORDER
  route without credentials: $ROUTE_AUTH
EOF
