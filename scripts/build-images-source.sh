#!/usr/bin/env bash
# `just build-images-source`: the six images built from source, as a user without host-built
# binaries builds them: the Dockerfile as it is, its default BINARIES=source, so its Rust stage
# compiles the workspace in the rust image it names (rust:1.95-bookworm), then
#
#   DOCKER_BUILDKIT=1 /usr/bin/docker build --target <t> -t <registry>/<t>:<version> .
#
# for rng, hasher, worker, webui, recorder and cli (registry: CHOCOMINER_REGISTRY, default
# ghcr.io/chocominer; version: the workspace's, Cargo.toml). The first target compiles
# everything (12 minutes on 2 cores, docs/images.md), the others reuse that stage from
# BuildKit's cache.
# Then each image runs `--version` and `--help` (the runtime base has no C library: a binary
# that runs there is static, and readelf checks it too), and the sizes and times are printed
# (and written to target/build-images-source/report.md; docs/images.md keeps a measured run).
# Too slow for CI: a recipe, not a test.
#
#   --no-cache   compile from nothing: drop BuildKit's cache mounts (the whole engine's) and
#                build the first target with --no-cache
#
# Stand-ins (this machine reaches no image registry): images under the tags the Dockerfile names
# are made here when missing (or when they are our stand-ins: labelled
# org.chocominer.stand-in=true), never over a real image:
#   rust:1.95-bookworm   a Debian bookworm rootfs (debootstrap minbase with gcc, g++, libc6-dev,
#                        binutils, make, ca-certificates; kept in target/build-images-source/
#                        bookworm between runs) plus this host's Rust toolchain of that version
#                        (bin/ and lib/, no docs) at /usr/local/rustup, cargo and rustc on PATH
#                        in /usr/local/cargo/bin, CARGO_HOME=/usr/local/cargo as the official
#                        image has. The build container reaches no crate registry either, so the
#                        image also holds `cargo vendor` of Cargo.lock at /usr/local/cargo-vendor
#                        and a source replacement in /usr/local/cargo/config.toml (the
#                        Dockerfile mounts a cache over /usr/local/cargo/registry, not there).
#                        Remade when Cargo.lock changes (a label holds its hash).
#   the runtime base (gcr.io/distroless/static-debian12:nonroot): scripts/images.sh's
#                        stand_in_base (CA certificates, time zones, nonroot 65532, no libc).
# The Dockerfile knows nothing of these: with the real images (a machine that reaches Docker Hub
# and crates.io) this script builds the same way.
#
# Needs: root or a running engine, Debian's docker.io (/usr/bin/docker 20.10: BuildKit without
# buildx), debootstrap (apt) for the rust stand-in, rustup with the toolchain the Dockerfile's
# tag names. A missing tool fails, naming its install command.
# The whole script is one block, read before any of it runs: an edit to this file during its
# 12 minutes cannot change what the running copy does next.
{
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

say() { printf '==> %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }
# shellcheck source=scripts/images.sh
. scripts/images.sh # DOCKER (BuildKit), IMAGE_TARGETS, IMAGE_BINS, the engine, the stand-in helpers

REGISTRY=${CHOCOMINER_REGISTRY:-ghcr.io/chocominer}
WORK=$ROOT/target/build-images-source
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
STARTED=$(date +%s)
elapsed() { echo $(($(date +%s) - STARTED)); }

no_cache=0
for arg in "$@"; do
  case "$arg" in
    --no-cache) no_cache=1 ;;
    *) echo "usage: $0 [--no-cache]" >&2; exit 2 ;;
  esac
done

# The workspace's version ([workspace.package] is the first `version =` of Cargo.toml), and the
# rust image and toolchain the Dockerfile's Rust stage names.
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
[ -n "$VERSION" ] || fail "no version in Cargo.toml"
RUST_IMAGE=$(sed -n 's/^FROM \(rust:[^ ]*\) AS binaries-source$/\1/p' Dockerfile)
[ -n "$RUST_IMAGE" ] || fail "no 'FROM rust:<tag> AS binaries-source' in the Dockerfile"
rust_version=${RUST_IMAGE#rust:}
rust_version=${rust_version%%-*}
# rust:1.95 is the newest 1.95.x; here the host's 1.95.0.
[[ $rust_version == *.*.* ]] || rust_version=$rust_version.0
BASE=$(dockerfile_base)
[ -n "$BASE" ] || fail "no 'FROM <image> AS runtime' in the Dockerfile"

# shellcheck disable=SC2317 # runs from the EXIT trap
cleanup() {
  local status=$?
  trap - EXIT INT TERM
  local holders=("${HOLDER_OF[@]}")
  ((${#holders[@]} == 0)) || "$DOCKER" rm -f "${holders[@]}" >/dev/null 2>&1 || true
  docker_engine_down
  ((status == 0)) || echo "build-images-source failed after $(elapsed) s" >&2
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
declare -A HOLDER_OF=()
mkdir -p "$WORK"

# --- stand-ins ----------------------------------------------------------------------------------
docker_engine_up "$WORK/dockerd.log"
label_of() { "$DOCKER" image inspect --format "{{index .Config.Labels \"$2\"}}" "$1" 2>/dev/null || true; }
stand_in_base "$BASE" "$WORK"

lock_hash=$(sha256sum Cargo.lock | cut -c1-16)
if have_image "$RUST_IMAGE" && ! is_stand_in "$RUST_IMAGE"; then
  say "$RUST_IMAGE: the real image"
elif [ "$(label_of "$RUST_IMAGE" org.chocominer.stand-in.cargo-lock)" = "$lock_hash" ]; then
  say "$RUST_IMAGE: stand-in present, for this Cargo.lock"
else
  sysroot=$(rustc "+$rust_version" --print sysroot 2>/dev/null) \
    || fail "no Rust $rust_version toolchain for the $RUST_IMAGE stand-in (rustup toolchain install $rust_version)"
  triple=$(rustc "+$rust_version" -vV | sed -n 's/^host: //p')
  bookworm=$WORK/bookworm
  if [ ! -e "$bookworm/.chocominer-complete" ]; then
    command -v debootstrap >/dev/null || fail "debootstrap missing: apt-get install debootstrap"
    say "debootstrap bookworm from $MIRROR into $bookworm (about 2 minutes; kept for the next run)"
    rm -rf "$bookworm"
    debootstrap --variant=minbase --include=gcc,g++,libc6-dev,binutils,make,ca-certificates \
      bookworm "$bookworm" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -n 20 "$WORK/debootstrap.log" >&2; fail "debootstrap failed (log above, $WORK/debootstrap.log)"; }
    touch "$bookworm/.chocominer-complete"
  fi
  say "cargo vendor of Cargo.lock into $WORK/vendor"
  rm -rf "$WORK/vendor"
  cargo "+$rust_version" vendor --locked --quiet "$WORK/vendor" >/dev/null
  say "stand-in $RUST_IMAGE: bookworm + Rust $rust_version ($sysroot) + the vendored crates"
  rootfs=$WORK/rust
  rm -rf "$rootfs"
  cp -al "$bookworm" "$rootfs" # hard links: the rootfs is only added to
  rm -rf "$rootfs/.chocominer-complete" "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  toolchain=/usr/local/rustup/toolchains/$rust_version-$triple
  mkdir -p "$rootfs$toolchain/bin" "$rootfs/usr/local/cargo/bin"
  cp -a "$sysroot/lib" "$rootfs$toolchain/"
  for tool in cargo rustc rustdoc; do
    cp -a "$sysroot/bin/$tool" "$rootfs$toolchain/bin/"
    ln -s "$toolchain/bin/$tool" "$rootfs/usr/local/cargo/bin/$tool"
  done
  cp -al "$WORK/vendor" "$rootfs/usr/local/cargo-vendor"
  cat >"$rootfs/usr/local/cargo/config.toml" <<'EOF'
# Stand-in only (scripts/build-images-source.sh): crates.io's crates come from the image.
[source.crates-io]
replace-with = "stand-in-vendor"

[source.stand-in-vendor]
directory = "/usr/local/cargo-vendor"
EOF
  import_rootfs "$rootfs" "$RUST_IMAGE" \
    'ENV RUSTUP_HOME=/usr/local/rustup' 'ENV CARGO_HOME=/usr/local/cargo' \
    'ENV PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "ENV RUST_VERSION=$rust_version" "LABEL org.chocominer.stand-in.cargo-lock=$lock_hash" \
    'CMD ["bash"]'
  rm -rf "$rootfs"
  "$DOCKER" run --rm "$RUST_IMAGE" sh -c 'cargo --version && rustc --version && cc --version | head -n 1' \
    || fail "the $RUST_IMAGE stand-in cannot run cargo, rustc or cc"
fi

# --- the images ---------------------------------------------------------------------------------
if ((no_cache)); then
  say "--no-cache: dropping BuildKit's cache mounts"
  "$DOCKER" builder prune --force --filter type=exec.cachemount >/dev/null
fi
# Each image is checked by the ID its build wrote (--iidfile), not by its tag: another script
# may retag the same names meanwhile (scripts/images.sh builds them with BINARIES=prebuilt, then
# prunes the dangling ones of ours). A container created from each image right away (HOLDER_OF,
# removed at the end) keeps it from that prune until it is checked.
declare -A SECONDS_OF=() SIZE_OF=() ID_OF=()
for target in "${IMAGE_TARGETS[@]}"; do
  image=$REGISTRY/$target:$VERSION
  log=$WORK/build-$target.log
  args=(build --progress=plain --target "$target" -t "$image" --iidfile "$WORK/$target.iid")
  if ((no_cache)) && [ "$target" = "${IMAGE_TARGETS[0]}" ]; then args+=(--no-cache); fi
  say "docker ${args[*]} . (log: $log)"
  at=$(date +%s)
  if ! "$DOCKER" "${args[@]}" . >"$log" 2>&1; then
    tail -n 30 "$log" >&2
    fail "building $image failed (log above, $log)"
  fi
  SECONDS_OF[$target]=$(($(date +%s) - at))
  ID_OF[$target]=$(cat "$WORK/$target.iid")
  HOLDER_OF[$target]=$("$DOCKER" create "${ID_OF[$target]}")
  context=$(grep -o 'transferring context: [0-9.]* *[kMG]*B' "$log" | tail -n 1 || true)
  say "$image: ${SECONDS_OF[$target]} s${context:+ ($context)}"
done

# --- each image runs ----------------------------------------------------------------------------
for i in "${!IMAGE_TARGETS[@]}"; do
  target=${IMAGE_TARGETS[$i]} bin=${IMAGE_BINS[$i]}
  image=$REGISTRY/$target:$VERSION id=${ID_OF[$target]}
  out=$("$DOCKER" run --rm "$id" --version 2>&1) || fail "$image --version: $out"
  [ "$out" = "$bin $VERSION" ] || fail "$image --version says '$out', not '$bin $VERSION'"
  help=$("$DOCKER" run --rm "$id" --help 2>&1) || fail "$image --help: $help"
  grep -q '^Usage: ' <<<"$help" || fail "$image --help has no Usage line: $help"
  # Static: no NEEDED entry (the base has no C library, so it could not have run otherwise).
  "$DOCKER" cp "${HOLDER_OF[$target]}:/usr/local/bin/$bin" "$WORK/$bin" >/dev/null
  is_static "$WORK/$bin" || fail "$image: /usr/local/bin/$bin is not static"
  SIZE_OF[$target]=$("$DOCKER" image inspect --format '{{.Size}}' "$id")
  say "$image: '$out', --help ok, static ($(stat -c %s "$WORK/$bin") bytes), image $((SIZE_OF[$target] / 1000000)) MB"
  rm -f "$WORK/$bin"
done

# --- the report ---------------------------------------------------------------------------------
{
  echo "build-images-source: $(date -u +'%Y-%m-%d %H:%M UTC'), $(elapsed) s in all, $(nproc) cores, $(uname -m)"
  echo "Rust stage base: $RUST_IMAGE ($(is_stand_in "$RUST_IMAGE" && echo "stand-in, Rust $rust_version" || echo real))"
  echo
  echo "| image | build (s) | size (MB) |"
  echo "| --- | --- | --- |"
  for target in "${IMAGE_TARGETS[@]}"; do
    echo "| $REGISTRY/$target:$VERSION | ${SECONDS_OF[$target]} | $((SIZE_OF[$target] / 1000000)) |"
  done
} | tee "$WORK/report.md"
exit 0
}
