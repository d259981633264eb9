#!/usr/bin/env python3
"""InfluxDB look-ups for scripts/test-containers.sh (standard library only).

Each subcommand prints one line and exits 0, or exits 1 with the reason on stderr:

  ready                      the database answers and has `worker` points and a `nugget` point
  verify-nuggets             every nugget so far: sha256(number) == digest, zero_bits leading
                             zero bits, at least the workers' difficulty; prints how many
  rate SECONDS               hashes/s summed over all workers, over the last SECONDS whole
                             seconds ending 2 s ago (a point comes up to a second late)
  instances STAGE SECONDS    distinct `instance` tags of STAGE that wrote in the last SECONDS
  alive SECONDS              the same for rng, hasher and worker: "RNG HASHER WORKER"
  bottleneck CHOCOMINER      the stage `CHOCOMINER status --json` names as the bottleneck
                             ("none" when it names none), a tab, its sentence, a tab, and
                             the lesson's next command in compose's spelling ("none": none)
  lost SECONDS               numbers/s rng and the hashers counted lost, in the window of `rate`
  losses SINCE_EPOCH_S       rng's lost numbers and the hashers'/workers' expired ones since then
  anonymous                  the HTTP status InfluxDB answers a query without credentials with
  points MEASUREMENT FROM TO how many MEASUREMENT points are stamped in [FROM, TO] (epoch s)
  stages-cannot-drop FILE    as user `stages` with FILE's password (the recorder's, which the
                             stages hold), InfluxDB refuses `DROP SERIES FROM worker` and `DELETE
                             FROM worker` with 401, and the worker points are all still there

It reads as INFLUX_USER with the password in INFLUX_PASSWORD_FILE (InfluxDB checks credentials).
"""

import base64
import hashlib
import json
import os
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

URL = os.environ.get("INFLUX_URL", "http://127.0.0.1:8086")
DB = os.environ.get("INFLUX_DB", "chocominer")


def credentials():
    """The Authorization header of INFLUX_USER and INFLUX_PASSWORD_FILE (its line break dropped)."""
    with open(os.environ["INFLUX_PASSWORD_FILE"], encoding="utf-8") as f:
        password = f.read().removesuffix("\n").removesuffix("\r")
    user = os.environ["INFLUX_USER"]
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def query(q, headers=None):
    params = urllib.parse.urlencode({"db": DB, "q": q, "epoch": "s"})
    request = urllib.request.Request(
        f"{URL}/query?{params}", headers=credentials() if headers is None else headers
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        body = json.load(response)
    result = body["results"][0]
    if "error" in result:
        raise RuntimeError(f"{q}: {result['error']}")
    return result.get("series", [])


def rows(q):
    """Every row of every series as a dict (column -> value), tags included."""
    out = []
    for series in query(q):
        for values in series["values"]:
            row = dict(zip(series["columns"], values))
            row.update(series.get("tags", {}))
            out.append(row)
    return out


def scalar(q, default=0):
    found = rows(q)
    value = found[0][list(found[0])[1]] if found else None
    return default if value is None else value


def leading_zero_bits(digest):
    bits = 0
    for byte in digest:
        if byte == 0:
            bits += 8
            continue
        bits += 8 - byte.bit_length()
        break
    return bits


def ready():
    hashes = scalar("SELECT count(hashes) FROM worker")
    nuggets = scalar("SELECT count(zero_bits) FROM nugget")
    if not hashes or not nuggets:
        raise RuntimeError(f"{hashes} worker points, {nuggets} nugget points so far")
    return f"{hashes} worker points, {nuggets} nugget points"


def verify_nuggets():
    difficulty = scalar("SELECT max(difficulty) FROM worker")
    nuggets = rows("SELECT number, digest, zero_bits FROM nugget")
    if not nuggets:
        raise RuntimeError("no nugget point")
    for n in nuggets:
        digest = hashlib.sha256(bytes.fromhex(n["number"])).digest()
        if digest.hex() != n["digest"]:
            raise RuntimeError(f"nugget {n['number']}: sha256 is {digest.hex()}, not {n['digest']}")
        zeros = leading_zero_bits(digest)
        if zeros != n["zero_bits"] or zeros < difficulty:
            raise RuntimeError(
                f"nugget {n['digest']}: {zeros} leading zero bits, point says "
                f"{n['zero_bits']}, difficulty {difficulty}"
            )
    first = nuggets[0]
    return (
        f"{len(nuggets)} nuggets verified (difficulty {difficulty}), e.g. sha256({first['number']})"
        f" = {first['digest']}, {first['zero_bits']} zero bits"
    )


def rate(seconds):
    total = scalar(f"SELECT sum(hashes) FROM worker WHERE time > now() - {seconds + 2}s AND time <= now() - 2s")
    return f"{total / seconds:.1f}"


def instances(stage, seconds):
    found = rows(f"SELECT count(*) FROM {stage} WHERE time > now() - {seconds}s GROUP BY instance")
    return str(len({r["instance"] for r in found}))


def lost(seconds):
    window = f"time > now() - {seconds + 2}s AND time <= now() - 2s"
    total = scalar(f"SELECT sum(lost) FROM rng WHERE {window}") + scalar(
        f"SELECT sum(lost) FROM hasher WHERE {window}"
    )
    return f"{total / seconds:.1f}"


def alive(seconds):
    return " ".join(instances(stage, seconds) for stage in ("rng", "hasher", "worker"))


def bottleneck(chocominer):
    """What `chocominer status --json` (one look, as the user NATS_USER, InfluxDB's INFLUX_USER)
    names as the bottleneck: the JSON's `bottleneck` (a stage, or null) and `summary`; and the
    command it says comes next in the lesson, `lesson.next.compose`."""
    done = subprocess.run(
        [chocominer, "status", "--json"], capture_output=True, text=True, timeout=30
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"chocominer status --json exited {done.returncode}: {last}")
    status = json.loads(done.stdout.strip().splitlines()[-1])
    if "bottleneck" not in status or "summary" not in status:
        raise RuntimeError(f"no bottleneck or summary in {done.stdout.strip()}")
    following = ((status.get("lesson") or {}).get("next") or {}).get("compose") or "none"
    return f"{status['bottleneck'] or 'none'}\t{status['summary']}\t{following}"


def losses(since):
    since_ns = int(since) * 10**9
    lost = scalar(f"SELECT sum(lost) FROM rng WHERE time >= {since_ns}")
    hasher_lost = scalar(f"SELECT sum(lost) FROM hasher WHERE time >= {since_ns}")
    expired = scalar(f"SELECT sum(expired) FROM hasher WHERE time >= {since_ns}") + scalar(
        f"SELECT sum(expired) FROM worker WHERE time >= {since_ns}"
    )
    return f"{lost} {hasher_lost} {expired}"


def anonymous():
    try:
        query("SELECT count(hashes) FROM worker", headers={})
    except urllib.error.HTTPError as e:
        return str(e.code)
    return "200"


def points(measurement, since, until):
    return str(scalar(f"SELECT count(*) FROM {measurement} "
                      f"WHERE time >= {int(since) * 10**9} AND time <= {int(until) * 10**9}"))


def stages_cannot_drop(password_file):
    """The stages' password is the recorder's, not InfluxDB's: InfluxDB must refuse it (401)
    for the statements a WRITE user could run, and nothing may go missing."""
    with open(password_file, encoding="utf-8") as f:
        password = f.read().removesuffix("\n").removesuffix("\r")
    stages = {"Authorization": "Basic " + base64.b64encode(f"stages:{password}".encode()).decode()}
    before = scalar("SELECT count(hashes) FROM worker")
    answers = []
    for q in ("DROP SERIES FROM worker", "DELETE FROM worker"):
        body = urllib.parse.urlencode({"db": DB, "q": q}).encode()
        request = urllib.request.Request(f"{URL}/query", data=body, headers=stages, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                said = response.read()[:200]
                raise RuntimeError(f"InfluxDB answered {q!r} as stages with HTTP {response.status}: {said!r}")
        except urllib.error.HTTPError as e:
            if e.code != 401:
                raise RuntimeError(f"InfluxDB answered {q!r} as stages with HTTP {e.code}, not 401") from e
        answers.append(f"{q}: 401")
    after = scalar("SELECT count(hashes) FROM worker")
    if not before or after < before:
        raise RuntimeError(f"worker points: {before} before, {after} after")
    return f"{'; '.join(answers)}; worker points {before} before, {after} after"


def main(argv):
    commands = {
        "ready": lambda: ready(),
        "verify-nuggets": lambda: verify_nuggets(),
        "rate": lambda: rate(int(argv[2])),
        "instances": lambda: instances(argv[2], int(argv[3])),
        "alive": lambda: alive(int(argv[2])),
        "lost": lambda: lost(int(argv[2])),
        "bottleneck": lambda: bottleneck(argv[2]),
        "losses": lambda: losses(argv[2]),
        "anonymous": lambda: anonymous(),
        "points": lambda: points(argv[2], argv[3], argv[4]),
        "stages-cannot-drop": lambda: stages_cannot_drop(argv[2]),
    }
    if len(argv) < 2 or argv[1] not in commands:
        print(__doc__, file=sys.stderr)
        return 2
    try:
        print(commands[argv[1]]())
    except Exception as e:  # noqa: BLE001 - one line for the shell, whatever went wrong
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
