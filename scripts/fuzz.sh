#!/usr/bin/env bash
# Runs every fuzz target of fuzz/ (cargo fuzz, nightly) for a bounded time each (`just fuzz`):
# FUZZ_SECONDS each (default 30), starting from the corpus kept in fuzz/corpus/<target>/.
# What a run finds new goes to a temporary directory, not into the repository: to grow the
# kept corpus, see README.md ("Fuzzing"). FUZZ_TARGETS="a b" runs only those.
#
# Prints libFuzzer's last status line per target (executions, cov, ft, corpus, exec/s, rss).
# Fails if a target crashes, panics, exceeds the memory bound of fuzz/src/lib.rs (an abort),
# hangs on one input longer than -timeout, or if nightly or cargo-fuzz is missing: one line
# says which, never a silent pass.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"
seconds="${FUZZ_SECONDS:-30}"
die() { printf 'fuzz: error: %s\n' "$*" >&2; exit 1; }

[[ "$seconds" =~ ^[1-9][0-9]*$ ]] || die "FUZZ_SECONDS must be a whole number of seconds, got '$seconds'"
cargo +nightly --version >/dev/null 2>&1 ||
  die "no nightly toolchain (cargo fuzz needs one): rustup toolchain install nightly"
cargo fuzz --version >/dev/null 2>&1 ||
  die "cargo-fuzz is missing: scripts/install-deps.sh --with-fuzz"

targets="${FUZZ_TARGETS:-$(cargo +nightly fuzz list)}"
[ -n "$targets" ] || die "no fuzz target found in fuzz/"

printf 'fuzz: building %s\n' "$(echo $targets)"
cargo +nightly fuzz build

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
failed=()
for target in $targets; do
  [ -d "corpus/$target" ] || die "no corpus for $target: fuzz/corpus/$target/ (a few seed inputs)"
  mkdir -p "$work/$target"
  log="$work/$target.log"
  # The memory bound proper is the counting allocator's (fuzz/src/lib.rs); libFuzzer's limits
  # are a coarse backstop for what it does not see (C++ malloc, the sanitizer's own).
  # -timeout: one input taking longer is a hang, reported as a failure.
  if cargo +nightly fuzz run "$target" "$work/$target" "corpus/$target" -- \
      -max_total_time="$seconds" -timeout=10 -rss_limit_mb=1024 -malloc_limit_mb=64 \
      -print_final_stats=1 >"$log" 2>&1; then
    status="$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -n 1 | sed -E 's/[[:space:]]+/ /g' || true)"
    printf '%-16s %s\n' "$target" "${status:-(no final status line)}"
  else
    failed+=("$target")
    printf '%-16s FAILED; the end of its log:\n' "$target"
    tail -n 40 "$log" | sed 's/^/    /'
  fi
done

if [ "${#failed[@]}" -gt 0 ]; then
  die "${failed[*]} failed; the inputs that failed are in fuzz/artifacts/<target>/"
fi
