#!/usr/bin/env python3
"""The Docker build context, as a rule: what `docker build .` sends, computed from .dockerignore
with Docker 20.10's own matching, must hold no build output and stay under a size bound.

Two checks, both failing the script:
  1. probes: a made-up tree with every kind of build output at the places it appears (./target,
     fuzz/target, a crate's target/, node_modules at any depth, .tools, .run, .git, a venv,
     secrets) and the files a build needs (Cargo.toml, Cargo.lock, crates/*/src, nats/,
     influxdb/, target/docker-bin/*). Whatever this checkout happens to hold, each probe must be
     excluded or included as it should: a .dockerignore that lets fuzz/target in fails here even
     on a machine that never fuzzed.
  2. this checkout: the context .dockerignore gives, walked like the builder walks it; no path in
     it may be build output (a directory named target, other than target/docker-bin;
     node_modules, .tools, .run, .git, .venv, __pycache__; secrets/), and it must stay under
     --max-mb (default 150: the sources are ~3 MB, target/docker-bin's six static binaries
     ~70 MB).

The matching is Docker 20.10's (docker/docker pkg/fileutils, BuildKit's fsutil walker of that
release): patterns cleaned as dockerignore.ReadAll does; `*` and `?` stop at `/`, `**` spans
directories; a pattern also matches a file when it matches the file's first N parent
directories, N being the pattern's own number of components (so `**/target` does not exclude
target/release/x); the last matching pattern wins, `!` re-includes; an excluded directory is
skipped whole unless an exception pattern begins with that directory's path. Newer builders
(Docker 23+, buildx) match a pattern against every parent directory, so they exclude at least
what plain patterns exclude here.

  scripts/check-build-context.py [--dockerignore FILE] [--max-mb N] [--list]
"""

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Directory names that are build output or local state wherever they are.
FORBIDDEN_NAMES = {"target", "node_modules", ".tools", ".run", ".git", ".venv", "__pycache__"}
# Where build output may go in after all: BINARIES=prebuilt's binaries.
ALLOWED_PREFIXES = ("target/docker-bin/",)
# Top-level directories that must never be sent.
FORBIDDEN_TOP = {"secrets"}

# Paths that must stay out of the context / must be in it, whatever the checkout holds.
PROBES_OUT = [
    "target/release/rng",
    "target/debug/deps/libx.rlib",
    "target/x86_64-unknown-linux-gnu/release/hasher",
    "target/container-test/dockerd.log",
    "fuzz/target/x86_64-unknown-linux-gnu/release/decode",
    "crates/codec/target/debug/x",
    "node_modules/left-pad/index.js",
    "crates/webui/node_modules/x/index.js",
    ".tools/venv/bin/nats-server",
    ".run/nats.pid",
    ".git/HEAD",
    "secrets/dev-only/nats-cli.password",
]
PROBES_IN = [
    "Cargo.toml",
    "Cargo.lock",
    "crates/rng/Cargo.toml",
    "crates/rng/src/main.rs",
    "crates/webui/assets/index.html",
    "nats/nats-server.conf",
    "influxdb/influxdb.conf",
    "target/docker-bin/rng",
    "target/docker-bin/recorder",
    "target/docker-bin/chocominer",
]


def read_dockerignore(path):
    """Patterns as docker/docker builder/dockerignore.ReadAll (20.10) returns them."""
    patterns = []
    for line in Path(path).read_text().splitlines():
        if line.startswith("#"):
            continue
        pattern = line.strip()
        if not pattern:
            continue
        invert = pattern.startswith("!")
        if invert:
            pattern = pattern[1:].strip()
        if pattern:
            pattern = os.path.normpath(pattern)
            if len(pattern) > 1 and pattern.startswith("/"):
                pattern = pattern[1:]
        patterns.append("!" + pattern if invert else pattern)
    return patterns


class Pattern:
    """One pattern of fileutils.NewPatternMatcher: its regexp, components and exclusion flag."""

    def __init__(self, text):
        self.exclusion = text.startswith("!")
        if self.exclusion:
            text = text[1:]
        self.text = os.path.normpath(text) if text else text
        self.dirs = self.text.split("/")
        self.regexp = re.compile(self._compile(self.text))

    @staticmethod
    def _compile(pattern):
        out, i = "^", 0
        while i < len(pattern):
            ch = pattern[i]
            i += 1
            if ch == "*":
                if i < len(pattern) and pattern[i] == "*":
                    i += 1
                    if i < len(pattern) and pattern[i] == "/":  # `**/` is `**`
                        i += 1
                    out += ".*" if i == len(pattern) else "(.*/)?"
                else:
                    out += "[^/]*"
            elif ch == "?":
                out += "[^/]"
            elif ch in ".$":
                out += "\\" + ch
            elif ch == "\\":
                if i < len(pattern):
                    out += "\\" + pattern[i]
                    i += 1
                else:
                    out += "\\\\"
            else:
                out += ch  # as Go's regexp would take it ([...] classes included)
        return out + "$"

    def match(self, path):
        return self.regexp.match(path) is not None


class Matcher:
    def __init__(self, patterns):
        self.patterns = [Pattern(p) for p in patterns if p not in ("", "!")]
        self.exclusions = any(p.exclusion for p in self.patterns)

    def matches(self, path):
        """fileutils.PatternMatcher.Matches: the last matching pattern decides."""
        matched = False
        parent = os.path.dirname(path) or "."
        parent_dirs = parent.split("/")
        for p in self.patterns:
            match = p.match(path)
            if not match and parent != "." and len(p.dirs) <= len(parent_dirs):
                match = p.match("/".join(parent_dirs[: len(p.dirs)]))
            if match:
                matched = not p.exclusion
        return matched

    def descend_excluded(self, directory):
        """fsutil's walker: an excluded directory is still walked when an exception pattern
        starts with its path; otherwise it is skipped whole."""
        if not self.exclusions:
            return False
        prefix = directory + "/"
        return any(p.exclusion and (p.text + "/").startswith(prefix) for p in self.patterns)


def context(root, matcher):
    """(path, size) of every file the builder sends, walked as fsutil walks."""
    files = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir + "/"
        keep = []
        for d in sorted(dirnames):
            rel = rel_dir + d
            if os.path.islink(os.path.join(dirpath, d)):
                if not matcher.matches(rel):
                    files.append((rel, 0))
                continue
            if not matcher.matches(rel) or matcher.descend_excluded(rel):
                keep.append(d)
        dirnames[:] = keep
        for f in sorted(filenames):
            rel = rel_dir + f
            if not matcher.matches(rel):
                full = os.path.join(dirpath, f)
                files.append((rel, os.lstat(full).st_size))
    return files


def forbidden(path):
    if path.startswith(ALLOWED_PREFIXES):
        return None
    parts = path.split("/")
    if parts[0] in FORBIDDEN_TOP and len(parts) > 1:
        return parts[0]
    for i, part in enumerate(parts[:-1]):
        if part in FORBIDDEN_NAMES:
            return "/".join(parts[: i + 1])
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dockerignore", default=str(ROOT / ".dockerignore"))
    ap.add_argument("--max-mb", type=float, default=150)
    ap.add_argument("--list", action="store_true", help="print every file of the context")
    args = ap.parse_args()
    matcher = Matcher(read_dockerignore(args.dockerignore))
    errors = []

    # 1. the probes, in a tree of their own.
    with tempfile.TemporaryDirectory() as tmp:
        for rel in PROBES_OUT + PROBES_IN:
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text("probe\n")
        sent = {path for path, _ in context(tmp, matcher)}
    for rel in PROBES_OUT:
        if rel in sent:
            errors.append(f"probe {rel}: would be in the build context")
    for rel in PROBES_IN:
        if rel not in sent:
            errors.append(f"probe {rel}: would be left out of the build context (the build needs it)")
    print(f"check-build-context: probes: {len(PROBES_OUT)} kept out, {len(PROBES_IN)} let in "
          f"({len([e for e in errors if e.startswith('probe')])} wrong)")

    # 2. this checkout.
    files = context(ROOT, matcher)
    total = sum(size for _, size in files)
    by_top = {}
    for path, size in files:
        top = path.split("/")[0] if "/" in path else "."
        by_top[top] = by_top.get(top, 0) + size
    bad = {}
    for path, size in files:
        where = forbidden(path)
        if where:
            count, sz = bad.get(where, (0, 0))
            bad[where] = (count + 1, sz + size)
    for where, (count, size) in sorted(bad.items()):
        errors.append(f"{where}/: {count} files, {size / 1e6:.1f} MB of build output or local state in the context")
    if args.list:
        for path, size in files:
            print(f"{size:>12} {path}")
    biggest = ", ".join(f"{top} {size / 1e6:.1f} MB" for top, size in sorted(by_top.items(), key=lambda kv: -kv[1])[:5])
    print(f"check-build-context: this checkout's context: {len(files)} files, {total / 1e6:.1f} MB "
          f"(bound {args.max_mb:g} MB; largest: {biggest})")
    if total > args.max_mb * 1e6:
        errors.append(f"the context is {total / 1e6:.1f} MB, over the bound of {args.max_mb:g} MB")

    for error in errors:
        print(f"FAIL: {error}", file=sys.stderr)
    if errors:
        print(f"check-build-context: {args.dockerignore} fails ({len(errors)} problems)", file=sys.stderr)
        return 1
    print(f"check-build-context: {args.dockerignore} ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
