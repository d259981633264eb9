#!/usr/bin/env python3
"""The seed's lesson, played on a running stack and checked step by step (standard library only).

    scripts/lesson.py --spelling just|docker-compose|docker-compose-v2 --status 'COMMAND'

The stack must run one rng, hasher and worker with the demo pacing. Each step runs the scaling
command as a student types it (the spelling picks the commands: `just scale worker 2`,
`docker-compose up -d --scale worker=2`, `docker compose up -d --scale worker=2`, ...), waits
until the stages' instances write stats, then until the figures' window (5 s) lies wholly after
that, and reads the rate (hashes/s judged by the workers, from InfluxDB) and the bottleneck from
`chocominer status --json` (the --status command), twice a window apart. Then it asserts what
the lesson says, as ratios:

  1. one of each                 the worker is named
  2. worker=2                    rate >= 1.7 x step 1, the worker is named
  3. worker=10                   rate < 0.5 x (5 x step 2): a plateau; rng is named
  4. rng=3 (workers stay 10)     rate >= 1.7 x step 3; the hasher is named
  5. hasher=2                    rate >= 1.2 x step 4 (see RISE_WITH_TWO_HASHERS)
  and at every step nothing lost (rng's and the hashers' lost numbers/s are 0)

It prints the table the README shows, and exits 1 on the first step that does not hold. Every
wait has a deadline.
"""

import argparse
import json
import shlex
import subprocess
import sys
import time

# Two hashers against one: the rate rises by a fifth at least. Not more is asked: with both
# hashers' windows full, 32 batches are in flight to ten workers, each batch to one picked at
# random, so some queue while others idle; ten workers of 3.3/s then judge about
# 33.3 x 32 / (32 + 9) = 26/s (a closed queueing network with random routing), measured 25-29,
# against rng's 30/s. A check at 1.3 x ~20 = 26 sat on that figure: CI runs failed on 25.0
# (this test) and 25.5 (test-containers) against 19.7 and 20.1.
RISE_WITH_TWO_HASHERS = 1.2

# (step, stage scaled, replicas after it, counts after it).
STEPS = [
    ("one of each", None, None, {"rng": 1, "hasher": 1, "worker": 1}),
    ("worker=2", "worker", 2, {"rng": 1, "hasher": 1, "worker": 2}),
    ("worker=10", "worker", 10, {"rng": 1, "hasher": 1, "worker": 10}),
    ("rng=3", "rng", 3, {"rng": 3, "hasher": 1, "worker": 10}),
    ("hasher=2", "hasher", 2, {"rng": 3, "hasher": 2, "worker": 10}),
]
# The order compose's --scale flags are written in (the seed's: workers first).
COMPOSE_ORDER = ["worker", "rng", "hasher"]


def command(spelling, stage, n, counts):
    """The scaling command of a step as a student types it."""
    if spelling == "just":
        return f"just scale {stage} {n}"
    # `up --scale` sets every service it is not told about back to one replica: repeat the
    # stages already scaled.
    flags = " ".join(f"--scale {s}={counts[s]}" for s in COMPOSE_ORDER if counts[s] != 1 or s == stage)
    tool = "docker-compose" if spelling == "docker-compose" else "docker compose"
    return f"{tool} up -d {flags}"


def status(cmd):
    out = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=30)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd}: exit {out.returncode}: {out.stderr.strip()[-300:]}")
    return json.loads(out.stdout.splitlines()[-1])


def alive(look):
    return {s: look["stages"][s]["alive"] for s in ("rng", "hasher", "worker")}


def up_to_s(look):
    """End of the figures' window, in seconds since the epoch (0 when nothing runs)."""
    up_to = look.get("up_to")
    if not up_to:
        return 0.0
    # RFC 3339 with a Z or an offset; seconds are enough here.
    from datetime import datetime

    return datetime.fromisoformat(up_to.replace("Z", "+00:00")).timestamp()


def wait(what, seconds, probe):
    deadline = time.monotonic() + seconds
    last = None
    while time.monotonic() < deadline:
        try:
            done, last = probe()
            if done:
                return last
        except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
            last = str(e)
        time.sleep(1)
    raise SystemExit(f"FAIL: {what}: not within {seconds} s (last: {last})")


def measure(args, counts):
    """Waits for `counts` alive, then for a window wholly after that; the rate over two windows."""
    look = wait(
        f"instances {counts}",
        args.instances_within,
        lambda: (lambda s: (alive(s) == counts, s))(status(args.status)),
    )
    seen_at = time.time()
    window = look["window_seconds"]
    # Let the queues of the new shape even out (--settle), then a full window.
    settled = seen_at + args.settle
    look = wait(
        "a window of figures after the change",
        window + args.settle + 15,
        lambda: (lambda s: (up_to_s(s) - window >= settled, s))(status(args.status)),
    )
    first = look
    target = up_to_s(first) + window
    second = wait(
        "the next window of figures",
        window + 15,
        lambda: (lambda s: (up_to_s(s) >= target, s))(status(args.status)),
    )
    # Both looks must still see the same instances (nothing restarted meanwhile).
    for s in (first, second):
        if alive(s) != counts:
            raise SystemExit(f"FAIL: instances changed while measuring: {alive(s)}, not {counts}")
    rate = (first["stages"]["worker"]["rate"] + second["stages"]["worker"]["rate"]) / 2
    # Numbers lost per second (batches not acknowledged in time), rng's and the hashers'.
    lost = sum((s["stages"][stage].get("lost") or 0) for s in (first, second) for stage in ("rng", "hasher"))
    return rate, second.get("bottleneck"), lost


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--spelling", choices=["just", "docker-compose", "docker-compose-v2"], required=True)
    parser.add_argument("--status", required=True, help="the command printing `chocominer status --json`")
    # After `scale worker 2` the new worker starts with an empty queue while the first holds
    # the hasher's whole window (16 batches); NATS's random choice evens them out only over
    # tens of seconds. Measured in the first 15 s: 5.5 and 5.6 hashes/s in two CI runs of
    # three (6.7 in the third), against 6.6 once even. The lesson's figures are the settled ones.
    parser.add_argument("--settle", type=float, default=20.0, help="seconds for the queues to even out after a change")
    parser.add_argument("--instances-within", type=float, default=90.0, help="seconds for a scale to show")
    args = parser.parse_args()

    rows = []
    started = time.monotonic()
    for name, stage, n, counts in STEPS:
        typed = "(already up)"
        if stage is not None:
            typed = command(args.spelling, stage, n, counts)
            print(f"==> {typed}", flush=True)
            run = subprocess.run(shlex.split(typed), capture_output=True, text=True, timeout=300)
            if run.returncode != 0:
                raise SystemExit(f"FAIL: {typed}: exit {run.returncode}: {run.stderr.strip()[-600:]}")
        rate, bottleneck, lost = measure(args, counts)
        rows.append((name, typed, rate, bottleneck, lost))
        print(f"    {name}: {rate:.1f} hashes/s, bottleneck {bottleneck}, lost {lost:.1f}/s", flush=True)

    rate = {name: r for name, _, r, _, _ in rows}
    named = {name: b for name, _, _, b, _ in rows}
    checks = [
        ("one of each: the worker is named", named["one of each"] == "worker"),
        ("worker=2: >= 1.7x one worker", rate["worker=2"] >= 1.7 * rate["one of each"]),
        ("worker=2: the worker is named", named["worker=2"] == "worker"),
        ("worker=10: a plateau, < 0.5x linear", rate["worker=10"] < 0.5 * 5 * rate["worker=2"]),
        ("worker=10: rng is named", named["worker=10"] == "rng"),
        ("rng=3: >= 1.7x the plateau", rate["rng=3"] >= 1.7 * rate["worker=10"]),
        ("rng=3: the hasher is named", named["rng=3"] == "hasher"),
        (
            f"hasher=2: >= {RISE_WITH_TWO_HASHERS}x rng=3",
            rate["hasher=2"] >= RISE_WITH_TWO_HASHERS * rate["rng=3"],
        ),
        ("nothing lost at any step", all(lost == 0 for *_, lost in rows)),
    ]
    print(f"\n| step | command ({args.spelling}) | hashes/s | bottleneck named |")
    print("| --- | --- | --- | --- |")
    for name, typed, r, b, _ in rows:
        print(f"| {name} | `{typed}` | {r:.1f} | {b or '-'} |")
    print()
    failed = [what for what, ok in checks if not ok]
    for what, ok in checks:
        print(f"  {'ok' if ok else 'FAILED'}: {what}")
    print(f"lesson ({args.spelling}): {len(checks) - len(failed)} passed, {len(failed)} failed "
          f"in {time.monotonic() - started:.0f} s")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
