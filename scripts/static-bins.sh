#!/usr/bin/env bash
# Builds the release binaries the container images carry: glibc linked in statically, so that
# the runtime base needs no C library (the Dockerfile's Rust stage builds them the same way).
# --target keeps RUSTFLAGS off the build scripts and proc-macros, which cannot be static; the
# binaries land in target/<host triple>/release/, apart from `just up`'s target/release/.
# Prints that directory on stdout (cargo's progress goes to stderr). Used by
# scripts/test-containers.sh and `just check-files`.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
triple=$(rustc -vV | sed -n 's/^host: //p')
RUSTFLAGS="-C target-feature=+crt-static" cargo build --release --locked --bins --target "$triple" >&2
echo "${CARGO_TARGET_DIR:-$PWD/target}/$triple/release"
