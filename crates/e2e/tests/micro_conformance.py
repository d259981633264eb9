"""Checks the NATS service-protocol answers of running ChocoMiner stages with an official NATS
client's own service types (nats-py's `nats.micro`), both ways: every `$SRV.PING|INFO|STATS`
response parses into the client's type, and that type gives back every field, with the same
value (`started` as the same instant). Run by crates/e2e/tests/micro_conformance.rs.

Usage: micro_conformance.py NATS_URL STAGE...   Exit 0 if all conform, 1 otherwise.
Connects as $NATS_USER with $NATS_PASSWORD when set.
"""

import asyncio
import datetime
import json
import os
import sys

import nats
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

KINDS = [("PING", ServicePing), ("INFO", ServiceInfo), ("STATS", ServiceStats)]


def instant(text):
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


def differences(ours, theirs, where):
    """What differs between our JSON and the client's rendering of it, one line each."""
    found = []
    if isinstance(ours, dict) and isinstance(theirs, dict):
        for key in sorted(set(ours) | set(theirs)):
            if key not in theirs:
                found.append(f"{where}.{key}: dropped by nats.micro")
            elif key not in ours:
                found.append(f"{where}.{key}: nats.micro adds it, we do not send it")
            elif key == "started":
                if instant(ours[key]) != instant(theirs[key]):
                    found.append(f"{where}.started: {ours[key]} became {theirs[key]}")
            else:
                found += differences(ours[key], theirs[key], f"{where}.{key}")
    elif isinstance(ours, list) and isinstance(theirs, list) and len(ours) == len(theirs):
        for i, (a, b) in enumerate(zip(ours, theirs)):
            found += differences(a, b, f"{where}[{i}]")
    elif ours != theirs:
        found.append(f"{where}: {json.dumps(ours)} became {json.dumps(theirs)}")
    return found


async def main(url, stages):
    nc = await nats.connect(
        url, user=os.environ.get("NATS_USER"), password=os.environ.get("NATS_PASSWORD")
    )
    problems, checked = [], 0
    for stage in stages:
        for verb, kind in KINDS:
            msg = await nc.request(f"$SRV.{verb}.{stage}", b"", timeout=5)
            ours = json.loads(msg.data)
            try:
                theirs = kind.from_dict(ours).to_dict()
            except Exception as error:  # what the client refuses, and why
                problems.append(f"{stage} {verb}: nats.micro refuses it: {error!r}")
                continue
            problems += differences(ours, theirs, f"{stage} {verb}")
            checked += 1
    await nc.close()
    for problem in problems:
        print(problem)
    print(f"{checked} responses parsed by nats.micro, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2:])))
