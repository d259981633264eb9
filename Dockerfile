# ChocoMiner images: one per binary, all from this file, each a target:
#
#   target   image (published by .github/workflows/release.yml)   entrypoint
#   rng      ghcr.io/chocominer/rng:0.1.0                         /usr/local/bin/rng
#   hasher   ghcr.io/chocominer/hasher:0.1.0                      /usr/local/bin/hasher
#   worker   ghcr.io/chocominer/worker:0.1.0                      /usr/local/bin/worker
#   webui    ghcr.io/chocominer/webui:0.1.0                       /usr/local/bin/webui
#   recorder ghcr.io/chocominer/recorder:0.1.0                    /usr/local/bin/recorder
#   cli      ghcr.io/chocominer/cli:0.1.0                         /usr/local/bin/chocominer
#
# From source (the default; BuildKit; the Rust stage compiles everything once, its cache mounts
# keep the crates and target/ between builds; 12 minutes on 2 cores, docs/images.md):
#
#   DOCKER_BUILDKIT=1 docker build --target hasher -t ghcr.io/chocominer/hasher:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 --target hasher \
#     -t <registry>/<owner>/hasher:0.1.0 --push .
#
# Prebuilt (scripts/test-containers.sh, fast): the same static binaries built on the host
# (`RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --bins --target <host>`),
# stripped into target/docker-bin/, and
#
#   DOCKER_BUILDKIT=1 docker build --build-arg BINARIES=prebuilt --target hasher ...
#
# BuildKit builds only the stages the target needs, so with BINARIES=prebuilt the Rust stage
# (and its base image) is never touched. The runtime stages are the same either way.
#
# No `# syntax=` line on purpose: it makes BuildKit pull the Dockerfile frontend image; the
# frontend built into Docker ≥ 20.10 already knows RUN --mount=type=cache.

# source (default): compile in the rust stage. prebuilt: take target/docker-bin/ from the context.
ARG BINARIES=source

# --- binaries, compiled here -----------------------------------------------------------------
FROM rust:1.95-bookworm AS binaries-source
WORKDIR /src
COPY . .
# Linked statically (glibc's crt-static: libc.a comes with the image's libc6-dev), so the
# runtime base needs no C library at all. glibc rather than musl: its allocator keeps up with
# many threads (musl's does not), and since glibc 2.34 its "files" and "dns" name lookups are
# built in, so a static binary resolves compose and Kubernetes service names without NSS
# modules. --target makes RUSTFLAGS skip the build scripts and proc-macros, which cannot be
# static; with buildx and QEMU this stage runs on the target's architecture, so the host triple
# is the target.
# The registry, git checkouts and target/ live in cache mounts: a rebuild after a code change
# recompiles only our crates. target/ is a cache, not part of the image, so the binaries are
# copied out (stripped: the release profile keeps line tables for backtraces, ~4x the size).
# target/ is locked while a build uses it: two builds on one builder at once (both platforms of
# a QEMU buildx build, say) take turns instead of writing the same build-script outputs.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/usr/local/cargo/git \
    --mount=type=cache,target=/src/target,sharing=locked \
    triple="$(rustc --print host-tuple)" \
 && RUSTFLAGS="-C target-feature=+crt-static" \
    cargo build --release --locked --bins --target "$triple" \
 && mkdir -p /out \
 && for bin in rng hasher worker webui recorder chocominer; do \
      strip -o "/out/$bin" "target/$triple/release/$bin"; \
    done

# --- binaries, built on the host -------------------------------------------------------------
# target/docker-bin/ holds the stripped static binaries (.dockerignore lets only that part of
# target/ into the context).
FROM scratch AS binaries-prebuilt
COPY target/docker-bin/ /out/

# A stage of this file, not an image from a registry: nothing to tag.
# hadolint ignore=DL3006
FROM binaries-${BINARIES} AS binaries

# --- runtime ---------------------------------------------------------------------------------
# distroless static: CA certificates, time zones, /etc/passwd with user nonroot (65532),
# nsswitch.conf, /tmp; no C library, no shell, no package manager (about 2 MB; the binaries are
# static). Pinned by tag; pin by digest too where you pull it (`...:nonroot@sha256:...`).
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
USER 65532:65532

# The services (not the CLI) serve /healthz and /readyz on HEALTH_LISTEN and check themselves
# with `<bin> --health-check` (there is no curl to do it). Every other setting comes from the
# environment (docs/configuration.md); the binaries' defaults are the demo profile.
FROM runtime AS service
ENV HEALTH_LISTEN=0.0.0.0:8081
EXPOSE 8081

FROM service AS rng
COPY --from=binaries /out/rng /usr/local/bin/rng
ENTRYPOINT ["/usr/local/bin/rng"]

FROM service AS hasher
COPY --from=binaries /out/hasher /usr/local/bin/hasher
ENTRYPOINT ["/usr/local/bin/hasher"]

FROM service AS worker
COPY --from=binaries /out/worker /usr/local/bin/worker
ENTRYPOINT ["/usr/local/bin/worker"]

FROM service AS webui
COPY --from=binaries /out/webui /usr/local/bin/webui
# Its own default is loopback only; in a container it serves the container's address.
ENV WEBUI_LISTEN=0.0.0.0:8000
EXPOSE 8000
ENTRYPOINT ["/usr/local/bin/webui"]

# The stages' write-only path to InfluxDB: it takes their points, checks them and writes them
# as InfluxDB's writer, so the stages never hold a password that may DELETE or DROP SERIES.
FROM service AS recorder
COPY --from=binaries /out/recorder /usr/local/bin/recorder
# Its own default is loopback only; in a container the stages reach it on its address.
ENV RECORDER_LISTEN=0.0.0.0:8087
EXPOSE 8087
ENTRYPOINT ["/usr/local/bin/recorder"]

# The CLI: `docker run --rm --network <net> -e NATS_URL=nats://nats:4222 ghcr.io/chocominer/cli:0.1.0 sub nuggets`
FROM runtime AS cli
COPY --from=binaries /out/chocominer /usr/local/bin/chocominer
ENTRYPOINT ["/usr/local/bin/chocominer"]
