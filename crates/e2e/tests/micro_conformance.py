"""Checks the NATS service-protocol answers of running ChocoMiner stages two ways:

- against the rules of the service API's JSON schemas (ADR-32; nats-io/jsm.go
  schemas/micro/v1/{ping,info,stats}_response.json), restated here as checks: the schemas
  themselves are packaged nowhere this machine can install from;
- with an official NATS client's own service types (nats-py's `nats.micro`), both ways: every
  `$SRV.PING|INFO|STATS` response parses into the client's type, and that type gives back every
  field, with the same value (`started` as the same instant).

Run by crates/e2e/tests/micro_conformance.rs.

Usage: micro_conformance.py NATS_URL STAGE...   Exit 0 if all conform, 1 otherwise.
Connects as $NATS_USER with $NATS_PASSWORD when set.
"""

import asyncio
import datetime
import json
import os
import re
import sys

import nats
from nats.micro.service import ServiceInfo, ServicePing, ServiceStats

KINDS = [("PING", ServicePing), ("INFO", ServiceInfo), ("STATS", ServiceStats)]


# What the service API's schemas require of each response, as checks.
NAME = re.compile(r"[A-Za-z0-9_-]+")
NUMBER = r"(?:0|[1-9][0-9]*)"
IDENT = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
SEMVER = re.compile(
    rf"{NUMBER}\.{NUMBER}\.{NUMBER}(?:-{IDENT}(?:\.{IDENT})*)?(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)
INT64 = (-(2**63) + 1, 2**63 - 1)
REQUIRED = {
    "PING": ["type", "name", "id", "version"],
    "INFO": ["type", "name", "id", "version", "description"],
    "STATS": ["type", "name", "id", "version", "started", "endpoints"],
}
STATS_ENDPOINT = [
    "name", "subject", "num_requests", "num_errors", "last_error", "processing_time",
    "average_processing_time",
]


def is_int64(value):
    return isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]


def metadata_problems(value, where):
    if value is None:
        return []
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        return [f"{where}: metadata must be an object of strings, or null: {value!r}"]
    return []


def schema_problems(verb, ours, where):
    """How a response breaks the rules of its ADR-32 schema, one line each."""
    found = [f"{where}: {key} is required" for key in REQUIRED[verb] if key not in ours]
    kind = f"io.nats.micro.v1.{verb.lower()}_response"
    if ours.get("type") != kind:
        found.append(f"{where}: type must be {kind}: {ours.get('type')!r}")
    if not (isinstance(ours.get("name"), str) and NAME.fullmatch(ours["name"])):
        found.append(f"{where}: name must be letters, digits, _ or -: {ours.get('name')!r}")
    if not (isinstance(ours.get("id"), str) and ours["id"]):
        found.append(f"{where}: id must be a non-empty string")
    if not (isinstance(ours.get("version"), str) and SEMVER.fullmatch(ours["version"])):
        found.append(f"{where}: version must be semantic: {ours.get('version')!r}")
    found += metadata_problems(ours.get("metadata"), where)
    if verb == "INFO":
        if not isinstance(ours.get("description"), str):
            found.append(f"{where}: description must be a string")
        for i, endpoint in enumerate(ours.get("endpoints") or []):
            at = f"{where}.endpoints[{i}]"
            if not (isinstance(endpoint.get("name"), str) and NAME.fullmatch(endpoint["name"])):
                found.append(f"{at}: name must be letters, digits, _ or -")
            if not (isinstance(endpoint.get("subject"), str) and endpoint["subject"]):
                found.append(f"{at}: subject must be a non-empty string")
            found += metadata_problems(endpoint.get("metadata"), at)
    if verb == "STATS":
        if not (isinstance(ours.get("started"), str) and RFC3339.fullmatch(ours["started"])):
            found.append(f"{where}: started must be an RFC 3339 date-time: {ours.get('started')!r}")
        if not isinstance(ours.get("endpoints"), list):
            found.append(f"{where}: endpoints must be an array")
        for i, endpoint in enumerate(ours.get("endpoints") or []):
            at = f"{where}.endpoints[{i}]"
            found += [f"{at}: {key} is required" for key in STATS_ENDPOINT if key not in endpoint]
            if not (isinstance(endpoint.get("name"), str) and NAME.fullmatch(endpoint["name"])):
                found.append(f"{at}: name must be letters, digits, _ or -")
            if not (isinstance(endpoint.get("subject"), str) and endpoint["subject"]):
                found.append(f"{at}: subject must be a non-empty string")
            for key in STATS_ENDPOINT[2:4] + STATS_ENDPOINT[5:]:
                if key in endpoint and not is_int64(endpoint[key]):
                    found.append(f"{at}: {key} must be a 64-bit integer: {endpoint[key]!r}")
            if "last_error" in endpoint and not isinstance(endpoint["last_error"], str):
                found.append(f"{at}: last_error must be a string: {endpoint['last_error']!r}")
            if "data" in endpoint and not isinstance(endpoint["data"], dict):
                found.append(f"{at}: data must be an object: {endpoint['data']!r}")
    return found


def check_the_checks():
    """The rules must catch a response that breaks them, or their passing means nothing."""
    bad = {
        "type": "io.nats.micro.v1.stats_response", "name": "a b", "id": "", "version": "1.0",
        "started": "yesterday", "endpoints": [{"name": "x", "subject": "s", "num_requests": 1.5}],
    }
    found = schema_problems("STATS", bad, "self-check")
    assert len(found) == 9, found


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
    check_the_checks()
    nc = await nats.connect(
        url,
        user=os.environ.get("NATS_USER"),
        password=os.environ.get("NATS_PASSWORD"),
        # The debug user reads replies on its own inboxes only (nats/nats-server.conf).
        inbox_prefix="_INBOX.debug",
    )
    problems, checked = [], 0
    for stage in stages:
        for verb, kind in KINDS:
            msg = await nc.request(f"$SRV.{verb}.{stage}", b"", timeout=5)
            ours = json.loads(msg.data)
            problems += schema_problems(verb, ours, f"{stage} {verb}")
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
    print(
        f"{checked} responses checked against the ADR-32 schemas' rules and parsed by nats.micro, "
        f"{len(problems)} problems"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2:])))
