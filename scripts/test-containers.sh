#!/usr/bin/env bash
# `just test-containers`: the images and docker-compose.yml, tested for real on this machine.
#
#   1. a Docker engine: the running one, or /usr/sbin/dockerd started here (root only) and
#      stopped again at the end; no engine = failure, never a skip;
#   2. static release binaries (the Dockerfile's Rust stage builds the same way), stripped into
#      target/docker-bin/;
#   3. images without pulling anything: the base and server images the Dockerfile and the
#      compose file name are made here as stand-ins when they are not present (see below), then
#      chocominer/{rng,hasher,worker,webui,cli}:0.1.0 with BINARIES=prebuilt (the Dockerfile's
#      runtime stages as they are, its Rust stage skipped), each at most 30 MB;
#   4. `docker-compose -p chocominer-test up -d` of nats, influxdb, webui, rng, hasher, worker
#      (not chronograf: no stand-in for it, see below): `worker` and `nugget` points in
#      InfluxDB within 30 s, every nugget verified (sha256, leading zero bits);
#   5. --scale hasher=3: three hashers write stats and the rate rises ≥ 2.2× (demo pacing);
#   6. `docker kill` of one hasher: the pipeline goes on and rng counts what it lost;
#   7. `down -v`: no container, network or volume of the project left.
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
# Chronograf (chronograf:1.10.9) cannot be stood in: it is not started here.
#
# Needs: root or a running engine, docker.io (/usr/bin/docker, BuildKit), docker-compose (1.29),
# busybox-static and curl from apt, python3, and host ports 127.0.0.1:4222, 8222, 8086 and 8000 free (`just down`).
# Bounded: every wait has a deadline; about 3 minutes once the binaries are built.
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
LOOKUP=(python3 "$ROOT/scripts/test-containers.py")
export INFLUX_URL=http://127.0.0.1:8086 INFLUX_DB=chocominer NATS_URL=nats://127.0.0.1:4222
# `chocominer status` as the NATS user cli, with the password docker-compose.yml gives nats.
export NATS_USER=cli NATS_PASSWORD_FILE="${CHOCOMINER_SECRETS_DIR:-$ROOT/secrets/dev-only}/nats-cli.password"
# What the look-ups and `chocominer status` read InfluxDB as: its reader, with the password the
# compose file gives it.
export INFLUX_USER=reader INFLUX_PASSWORD_FILE="${CHOCOMINER_SECRETS_DIR:-$ROOT/secrets/dev-only}/influx-reader.password"

STARTED=$(date +%s)
DOCKERD_PID=""
STACK_UP=""

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
compose() { timeout 120 docker-compose -p "$PROJECT" "$@"; }
elapsed() { echo $(($(date +%s) - STARTED)); }
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
    say "docker-compose down -v"
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
docker-compose version --short | sed 's/^/docker-compose /'

# Nothing of an earlier run, and the host ports free.
if [ -n "$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")" ]; then
  say "removing what an earlier run left"
  compose down -v --remove-orphans >/dev/null
fi
for port in 4222 8222 8086 8000; do
  if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    fail "127.0.0.1:$port is taken (the local stack? \`just down\` first)"
  fi
done

# --- 2. binaries -------------------------------------------------------------------------------
say "static release binaries (scripts/static-bins.sh)"
STATIC_BIN=$(scripts/static-bins.sh)
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

# --- 4. up: points and nuggets in InfluxDB -----------------------------------------------------
docker-compose config -q
say "docker-compose -p $PROJECT up -d ${SERVICES[*]}  (not chronograf: no image for it here)"
STACK_UP=1
compose up -d --no-build "${SERVICES[@]}"
up_at=$(date +%s)
say "waiting for worker and nugget points in InfluxDB (≤ 30 s)"
wait_for 30 "worker and nugget points in InfluxDB" "${LOOKUP[@]}" ready
echo "  after $(($(date +%s) - up_at)) s"
anonymous=$("${LOOKUP[@]}" anonymous) || fail "asking InfluxDB without credentials: $anonymous"
[ "$anonymous" = 401 ] || fail "InfluxDB answered a query without credentials with HTTP $anonymous, not 401"
say "InfluxDB checks credentials: 401 without, the stages write as writer, the reader reads"
"${LOOKUP[@]}" verify-nuggets | sed 's/^/  /'
# all_healthy: every container of the project has a healthcheck and says healthy (else names
# those that do not).
all_healthy() {
  local ids bad
  mapfile -t ids < <("$DOCKER" ps -q --filter "label=com.docker.compose.project=$PROJECT")
  bad=$("$DOCKER" inspect --format '{{.Name}} {{if .State.Health}}{{.State.Health.Status}}{{else}}no-healthcheck{{end}}' \
    "${ids[@]}" | grep -v ' healthy$') || true
  [ -z "$bad" ] || { echo "$bad" | tr '\n' ' '; return 1; }
}
wait_for 60 "all services healthy" all_healthy >/dev/null
say "every service has a healthcheck and is healthy (${SERVICES[*]})"

# The rate with one hasher, once steady (the first seconds include the start).
sleep $((up_at + 15 - $(date +%s) > 0 ? up_at + 15 - $(date +%s) : 0))
rate1=$("${LOOKUP[@]}" rate 10)
say "1 hasher: $rate1 hashes/s (sum over the workers, 10 s)"

# --- 5. three hashers ---------------------------------------------------------------------------
say "docker-compose up -d --scale hasher=3"
compose up -d --no-build --scale hasher=3 "${SERVICES[@]}"
scaled_at=$(date +%s)
three_hashers() {
  local n
  n=$("${LOOKUP[@]}" instances hasher 3) || return 1
  [ "$n" = 3 ] || { echo "$n hashers"; return 1; }
}
wait_for 30 "3 hashers writing stats" three_hashers >/dev/null
say "3 hasher instances write stats ($(($(date +%s) - scaled_at)) s after)"
sleep $((scaled_at + 15 - $(date +%s) > 0 ? scaled_at + 15 - $(date +%s) : 0))
rate3=$("${LOOKUP[@]}" rate 10)
ratio=$(awk -v a="$rate3" -v b="$rate1" 'BEGIN { print (b > 0 ? a / b : 0) }')
say "3 hashers: $rate3 hashes/s, $(printf '%.2f' "$ratio")× the rate of one"
awk -v r="$ratio" 'BEGIN { exit !(r >= 2.2) }' || fail "3 hashers give $rate3 hashes/s, less than 2.2 × $rate1"
if [ -x "$STATIC_BIN/chocominer" ]; then
  timeout 20 "$STATIC_BIN/chocominer" status | sed 's/^/  /' || echo "  (chocominer status failed)"
fi

# --- 6. one hasher killed -----------------------------------------------------------------------
victim=$("$DOCKER" ps -q --filter "label=com.docker.compose.project=$PROJECT" \
  --filter "label=com.docker.compose.service=hasher" | head -n 1)
[ -n "$victim" ] || fail "no hasher container to kill"
# A hasher that happens to be idle at the kill (its share of rng's window empty: the hashers
# are ~90 % busy) would lose nothing. So it hangs first (SIGSTOP, which a container's pid 1
# cannot ignore) while NATS keeps handing it batches, as a stuck replica would, then dies.
say "docker kill --signal STOP, then SIGKILL 2 s later: $("$DOCKER" inspect --format '{{.Name}}' "$victim")"
"$DOCKER" kill --signal STOP "$victim" >/dev/null
sleep 2
killed_at=$(date +%s)
"$DOCKER" kill "$victim" >/dev/null
# rng counts a batch lost when it is not acknowledged within ACK_TIMEOUT_MS (10 s in demo).
losses_counted() {
  local figures lost_ _hasher_lost expired_
  figures=$("${LOOKUP[@]}" losses "$killed_at") || return 1
  read -r lost_ _hasher_lost expired_ <<<"$figures"
  echo "$figures"
  ((lost_ > 0 || expired_ > 0))
}
losses=$(wait_for 40 "rng counting the killed hasher's batches as lost" losses_counted)
read -r lost hasher_lost expired <<<"$losses"
say "after the kill: rng lost $lost numbers, hashers lost $hasher_lost, expired $expired ($(($(date +%s) - killed_at)) s after)"
sleep 3
rate_after=$("${LOOKUP[@]}" rate 5)
awk -v r="$rate_after" 'BEGIN { exit !(r > 0) }' || fail "nothing hashed in the 5 s after the kill"
state=$("$DOCKER" inspect --format '{{.State.Status}}' "$victim")
say "the other hashers go on: $rate_after hashes/s (the killed container is $state)"

# --- 7. down -v ---------------------------------------------------------------------------------
say "docker-compose down -v"
compose down -v --remove-orphans >/dev/null 2>&1
STACK_UP=""
leftovers=$("$DOCKER" ps -aq --filter "label=com.docker.compose.project=$PROJECT")
leftovers+=$("$DOCKER" network ls -q --filter "label=com.docker.compose.project=$PROJECT")
leftovers+=$("$DOCKER" volume ls -q --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$leftovers" ] || fail "left after down -v: $leftovers"
say "no container, network or volume of $PROJECT left"

cat <<EOF

test-containers passed in $(elapsed) s
$sizes  hashes/s (demo): 1 hasher $rate1, 3 hashers $rate3 ($(printf '%.2f' "$ratio")×), after killing one $rate_after
  killed hasher: rng lost $lost numbers, hashers lost $hasher_lost, expired $expired
EOF
