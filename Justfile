# ChocoMiner tasks. `just` alone lists them; the long shell logic lives in scripts/.

set shell := ["bash", "-euo", "pipefail", "-c"]
set positional-arguments

# nats-server and just are installed into the project venv by scripts/install-deps.sh;
# tests and the local stack find them (and the apt-installed influxd) on this PATH.
export PATH := justfile_directory() / ".tools/venv/bin" + ":" + env("PATH")

# List the recipes
[private]
default:
    @"{{ just_executable() }}" --justfile "{{ justfile() }}" --list --unsorted

# Build, then start nats-server, influxd and one rng, hasher and worker in the background
[no-exit-message]
up:
    @scripts/up.sh

# Stop everything `up` and `scale` started (services first, then nats-server and influxd)
[no-exit-message]
down:
    @scripts/down.sh

# Run exactly N instances of STAGE (rng, hasher or worker), e.g. `just scale hasher 5`
[no-exit-message]
scale STAGE N:
    @scripts/scale.sh "$@"

# Follow the logs of the local stack, or of one part (rng|hasher|worker|nats|influxd|recorder|webui)
[no-exit-message]
logs STAGE="":
    @scripts/logs.sh "$@"

# List the running processes with their pid and uptime
[no-exit-message]
ps:
    @scripts/ps.sh

# Needs nats-server and influxd (scripts/install-deps.sh). --no-fail-fast: every test binary
# runs even when one fails, and cargo lists all that failed.
# What CI runs: the whole test suite, then the local stack and the lesson played for real
test:
    cargo fmt --all --check
    cargo test --workspace --no-fail-fast
    scripts/test-local-stack.sh
    scripts/test-lesson.sh

# Release binaries, each stage a process, on a nats-server and an influxd of their own (free
# ports); progress every 10 s; result (Markdown, JSON) in soak/results/; `--duration 90s` for a
# short run (also SOAK_DURATION), `target/release/soak --help` for the rest.
# Run the full profile for 10 minutes; fails on lost batches, broken conservation or growing memory
[no-exit-message]
soak *ARGS:
    cargo build --release --bins
    target/release/soak "$@"

# Release binaries on a nats-server of its own (influxd with --with-influx); progress every few
# seconds; result (Markdown, JSON) in bench/results/; `target/release/bench --help` for the rest.
# Measure the hashing limit, the full profile per encoding and the demo's scaling, against the targets
[no-exit-message]
bench *ARGS:
    cargo build --release --bins
    target/release/bench "$@"

# ARGS go to criterion, e.g. `just bench-micro DigestBatch` for one group, or
# `--save-baseline before` then `--baseline before` to compare a change. About a minute.
# Micro-benchmarks (criterion): encode/decode of each batch kind, seeded expansion, SHA-256
[no-exit-message]
bench-micro *ARGS:
    cargo bench -p chocominer-codec -p hasher --bench codec --bench hashing -- "$@"

# Needs nightly and cargo-fuzz (`scripts/install-deps.sh --with-fuzz`); FUZZ_SECONDS=600 for longer.
# Run every fuzz target of fuzz/ for FUZZ_SECONDS each (default 30); fails if one crashes
[no-exit-message]
fuzz:
    @scripts/fuzz.sh

# Test up/ps/scale/logs/down for real on a stack of its own (other ports, a temporary .run)
[no-exit-message]
test-local-stack:
    @scripts/test-local-stack.sh

# Play the seed's lesson on a stack of its own (just up, just scale worker 2, ...) and check each step
[no-exit-message]
test-lesson:
    @scripts/test-lesson.sh

# Build the release binaries into target/release (as `up`, `status` and `sub` do)
build:
    cargo build --release --bins

# Format the code
fmt:
    cargo fmt --all
    cargo fmt --all --manifest-path fuzz/Cargo.toml

# Check formatting and clippy lints (warnings are errors)
lint:
    cargo fmt --all --check
    cargo fmt --all --check --manifest-path fuzz/Cargo.toml
    cargo clippy --workspace --all-targets -- -D warnings

# Build the API documentation of every crate (warnings are errors): target/doc/
doc:
    RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps

# kubectl, kubernetes-validate and checkov (`scripts/install-deps.sh --with-k8s`) are needed; no cluster.
# Build k8s/ and its overlays; check schemas, the rules a cluster would enforce, and checkov
[no-exit-message]
check-k8s:
    @scripts/check-k8s.sh

# The binaries asked are the images' static build (scripts/static-bins.sh).
# Check that compose and k8s name only images the Dockerfile builds, variables the binaries read and health checks they serve
check-files:
    python3 scripts/check-files.py "$(scripts/static-bins.sh)"

# actionlint, hadolint and shellcheck are needed (`scripts/install-deps.sh --with-k8s`); seconds.
# Lint the release workflow and the Dockerfile; check .dockerignore keeps build output out
[no-exit-message]
check-build:
    @scripts/check-build.sh

# Needs root (or a running engine), apt's docker.io and debootstrap; pulls nothing (stand-ins);
# ~12 min on 2 cores. `--no-cache` compiles from nothing. Measured run: docs/images.md.
# Build the six images from source (BINARIES=source, the Rust stage) and run each one
[no-exit-message]
build-images-source *ARGS:
    @scripts/build-images-source.sh "$@"

# Needs root (or a running engine), apt's docker.io and docker-compose, Compose v2 (all from
# `scripts/install-deps.sh --with-containers`); pulls nothing (stand-ins); ~5 min once built.
# Build the images and play the scaling lesson on docker-compose.yml, Compose v1 then v2; down -v
[no-exit-message]
test-containers:
    @scripts/test-containers.sh

# Needs root, apt's podman and catatonit besides test-containers' tools (`scripts/install-deps.sh
# --with-containers`), kubectl; pulls nothing (the same images); ~2 min once built.
# Play the pods of `kubectl kustomize k8s` on podman; probes, NATS cluster, hashes and nuggets
[no-exit-message]
test-k8s-pods:
    @scripts/test-k8s-pods.sh

# `sub` and `status` run target/release/chocominer, built the way `up` builds it (scripts/lib.sh
# build_release), so there is nothing to compile after `up`.

# Print the messages flowing between the stages, decoded, e.g. `just sub nuggets` (Ctrl-C stops)
[no-exit-message]
sub *ARGS:
    @scripts/chocominer.sh sub "$@"

# Each stage's instances, rate, busy share and batches in flight, and the bottleneck (`--watch`)
[no-exit-message]
status *ARGS:
    @scripts/chocominer.sh status "$@"

# The lesson's httping: how busy STAGE (rng, hasher or worker) is and its time per item, 3 probes
[no-exit-message]
ping STAGE *ARGS:
    @scripts/chocominer.sh ping "$@"
