#!/usr/bin/env python3
"""Keeps docker-compose.yml, k8s/ and the Dockerfile true to the binaries, by asking the binaries.

For every ChocoMiner container that `docker-compose config` or `kubectl kustomize` (the overlay
with every component) produces:
  - its image `<registry>/chocominer/<name>:<tag>` is a target the Dockerfile builds, with the workspace's
    version as the tag;
  - every environment variable set on it (directly, or through envFrom of a ConfigMap or Secret)
    is one its binary reads: the `[env: NAME]` of its `--help` (and its subcommands'), plus
    RUST_LOG, which the log filter reads;
  - its health checks match what the binary serves: compose runs `<bin> --health-check`, which
    the binary must list, with HEALTH_LISTEN set; Kubernetes probes GET /healthz or /readyz on
    the port of HEALTH_LISTEN (or of WEBUI_LISTEN for the dashboard's own port).
And for every compose service that runs by default (not under a profile, like nats-box): it has
a healthcheck, and whatever it depends on it waits for with `condition: service_healthy`; every
service runs as a non-root user (or NO_USER_SET says why it sets none). And compose and
Kubernetes tell one story: each ChocoMiner service has the same image and the same variables
with the same values in both (ONE_STORY_EXCEPTIONS says where and why not).
And Chronograf's seed URL /sources/1/dashboards/1: chronograf/chocominer.src is source "1",
chocominer.dashboard dashboard 1, and the compose service mounts chronograf/ at its RESOURCES_PATH.
Before the real check it checks itself: a compose service given a variable no binary reads, and
one that waits for a dependency only to start, must be refused. Exit 1 with one line per problem.

Usage: scripts/check-files.py BIN_DIR   (BIN_DIR holds the release binaries)
"""

import copy
import json
import pathlib
import re
import subprocess
import sys

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
# Read by tracing's log filter (crates/process/src/telemetry.rs), not by a command-line flag.
NOT_FLAGS = {"RUST_LOG"}
PROBE_PATHS = {"/healthz", "/readyz"}


def run(*cmd):
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        sys.exit(f"check-files: {' '.join(cmd)} failed: {last}")
    return done.stdout


def binary_of(image_name):
    return "chocominer" if image_name == "cli" else image_name


class Binaries:
    """What each binary says of itself in its --help, asked once."""

    def __init__(self, bin_dir):
        self.bin_dir = pathlib.Path(bin_dir)
        self.helps = {}

    def help(self, binary):
        if binary not in self.helps:
            path = self.bin_dir / binary
            if not path.is_file():
                sys.exit(f"check-files: {path} is missing: build the release binaries first")
            text = run(str(path), "--help")
            commands = re.search(r"^Commands:\n((?:  \S.*\n)+)", text, re.M)
            for line in commands.group(1).splitlines() if commands else []:
                sub = line.split()[0]
                if sub != "help":
                    text += run(str(path), sub, "--help")
            self.helps[binary] = text
        return self.helps[binary]

    def variables(self, binary):
        return set(re.findall(r"\[env: ([A-Z0-9_]+)", self.help(binary))) | NOT_FLAGS


def workspace_version():
    cargo = (ROOT / "Cargo.toml").read_text()
    return re.search(r'^\[workspace\.package\][^\[]*?^version = "([^"]+)"', cargo, re.M | re.S).group(1)


def dockerfile_targets():
    text = (ROOT / "Dockerfile").read_text()
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", text, re.M | re.I))


def ours(image):
    """`<registry>/chocominer/<name>:<tag>` → (name, tag), or None for someone else's image."""
    m = re.fullmatch(r"(?:[^/]+/)*chocominer/([a-z0-9-]+):(\S+)", image or "")
    return (m.group(1), m.group(2)) if m else None


def check_image(where, image, errors):
    """The binary of an image of ours; None (and an error) when the Dockerfile does not build it."""
    name, tag = ours(image)
    if tag != VERSION:
        errors.append(f"{where}: image {image}: tag is not the workspace version {VERSION}")
    if name not in TARGETS:
        errors.append(f"{where}: image {image}: the Dockerfile has no target {name!r}")
        return None
    return binary_of(name)


def check_variables(where, binary, names, binaries, errors):
    unknown = sorted(set(names) - binaries.variables(binary))
    for name in unknown:
        errors.append(f"{where}: sets {name}, which {binary} does not read (not in its --help)")


def check_compose(services, binaries):
    errors = []
    for name, service in sorted(services.items()):
        if not ours(service.get("image")):
            continue
        where = f"docker-compose.yml service {name}"
        binary = check_image(where, service["image"], errors)
        if binary is None:
            continue
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        check_variables(where, binary, env, binaries, errors)
        test = (service.get("healthcheck") or {}).get("test") or []
        if "--health-check" in test:
            if "--health-check" not in binaries.help(binary):
                errors.append(f"{where}: healthcheck runs --health-check, which {binary} lacks")
            if not env.get("HEALTH_LISTEN"):
                errors.append(f"{where}: healthcheck runs --health-check without HEALTH_LISTEN")
        elif test:
            errors.append(f"{where}: healthcheck {test} is not `{binary} --health-check`")
    return errors


def check_compose_order(services):
    """Every service that `up` starts has a healthcheck; every dependency is waited for healthy."""
    errors = []
    for name, service in sorted(services.items()):
        where = f"docker-compose.yml service {name}"
        if not service.get("profiles") and not (service.get("healthcheck") or {}).get("test"):
            errors.append(f"{where}: no healthcheck")
        depends = service.get("depends_on") or {}
        if isinstance(depends, list):
            depends = {dep: {} for dep in depends}
        for dep, how in sorted(depends.items()):
            if (how or {}).get("condition") != "service_healthy":
                errors.append(f"{where}: depends on {dep} without condition: service_healthy")
            elif not (services.get(dep, {}).get("healthcheck") or {}).get("test"):
                errors.append(f"{where}: waits for {dep} to be healthy, which has no healthcheck")
    return errors


# Compose services that set no `user:`, each with why that is right. Everything else either runs
# one of our images (USER 65532 in the Dockerfile) or names a non-root user, as on Kubernetes.
NO_USER_SET = {
    "influxdb": "the official image's entrypoint runs as root on a volume it owns as root; "
    "Kubernetes runs it as 65532 with fsGroup, which compose has no equivalent of",
    "chronograf": "its image runs as its own non-root user since 1.10.5",
}


def check_compose_users(services):
    """Every service runs as a non-root user, as the same pod does on Kubernetes."""
    errors = []
    for name, service in sorted(services.items()):
        user = str(service.get("user", ""))
        if ours(service.get("image")) or name in NO_USER_SET:
            continue
        if not user or user.split(":")[0] in ("0", "root"):
            errors.append(f"docker-compose.yml service {name}: runs as {user or 'the image user (root for most images)'}; "
                          "set `user:` to a non-root uid (or say in NO_USER_SET why not)")
    return errors


def check_chronograf(services):
    """Chronograf's seed URL, /sources/1/dashboards/1: chronograf/chocominer.src is source "1"
    (Chronograf decodes the id as a string) and chocominer.dashboard dashboard 1; the compose
    service mounts chronograf/ where RESOURCES_PATH points, sets no INFLUXDB_URL (that would add a
    source of Chronograf's own ahead of ours) and publishes 8888."""
    errors = []
    resources = ROOT / "chronograf"
    src = json.loads((resources / "chocominer.src").read_text(encoding="utf-8"))
    if src.get("id") != "1":
        errors.append(f"chronograf/chocominer.src: id is {src.get('id')!r}, not \"1\" (/sources/1)")
    dashboard = json.loads((resources / "chocominer.dashboard").read_text(encoding="utf-8"))
    if dashboard.get("id") != 1:
        errors.append(f"chronograf/chocominer.dashboard: id is {dashboard.get('id')!r}, not 1 (/dashboards/1)")
    service = services.get("chronograf")
    where = "docker-compose.yml service chronograf"
    if service is None:
        return errors + [f"{where}: missing"]
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    path = env.get("RESOURCES_PATH")
    if not path:
        errors.append(f"{where}: no RESOURCES_PATH, so chronograf/ is not read")
    if "INFLUXDB_URL" in env:
        errors.append(f"{where}: INFLUXDB_URL adds a source of Chronograf's own ahead of chocominer.src")
    mounts = []
    for volume in service.get("volumes") or []:
        if isinstance(volume, str):
            source, _, rest = volume.partition(":")
            volume = {"source": source, "target": rest.split(":")[0]}
        mounts.append((pathlib.Path(volume.get("source", "")).resolve(), volume.get("target")))
    if (resources.resolve(), path) not in mounts:
        errors.append(f"{where}: chronograf/ is not mounted at RESOURCES_PATH ({path}): {mounts}")
    if not any(str(p).endswith(":8888/tcp") or str(p).endswith(":8888") for p in service.get("ports") or []):
        errors.append(f"{where}: does not publish 8888")
    return errors


# Where compose and Kubernetes may differ for a ChocoMiner container, and why.
ONE_STORY_EXCEPTIONS = {
    "INSTANCE": "Kubernetes names each replica after its pod; compose leaves it to the "
    "container's host name, which the binaries take when INSTANCE is unset",
}


def k8s_maps(documents):
    """Every ConfigMap's and Secret's keys and values, by (kind, name)."""
    return {
        (d["kind"], d["metadata"]["name"]): {**d.get("data", {}), **d.get("stringData", {})}
        for d in documents
        if d and d.get("kind") in ("ConfigMap", "Secret")
    }


def container_env(container, maps, missing=None):
    """A container's variables as Kubernetes sets them: envFrom first, then env, which wins; a
    value from a ConfigMap key is looked up, one from a Secret is None. The names of envFrom
    sources not in `maps` are added to `missing` when it is given."""
    env = {}
    for source in container.get("envFrom", []):
        for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if key in source:
                ref = source[key]["name"]
                if (kind, ref) not in maps and missing is not None:
                    missing.append(f"{kind} {ref}")
                env.update(maps.get((kind, ref), {}))
    for e in container.get("env", []):
        ref = (e.get("valueFrom") or {}).get("configMapKeyRef")
        env[e["name"]] = maps.get(("ConfigMap", ref["name"]), {}).get(ref["key"]) if ref else e.get("value")
    return env


def check_one_story(services, documents):
    """Compose and Kubernetes run each ChocoMiner service alike: the same image (registry aside),
    the same variables with the same values, readiness asked of /readyz (compose's healthcheck,
    `--health-check`, asks /readyz too) where the image serves it."""
    errors = []
    maps = k8s_maps(documents)
    pods = {
        doc["metadata"]["name"]: (c, container_env(c, maps))
        for doc in documents
        if doc and doc.get("kind") in ("Deployment", "StatefulSet")
        for c in doc["spec"]["template"]["spec"]["containers"]
        if ours(c.get("image"))
    }
    for name, service in sorted(services.items()):
        if not ours(service.get("image")):
            continue
        where = f"service {name}"
        if name not in pods:
            errors.append(f"{where}: docker-compose.yml runs it, k8s/overlays/all has no such workload")
            continue
        container, k8s_env = pods[name]
        if ours(service["image"]) != ours(container["image"]):
            errors.append(f"{where}: compose runs {service['image']}, Kubernetes {container['image']}")
        env = service.get("environment") or {}
        if isinstance(env, list):
            env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
        for var in sorted((set(env) | set(k8s_env)) - set(ONE_STORY_EXCEPTIONS)):
            if str(env.get(var)) != str(k8s_env.get(var)):
                errors.append(f"{where}: {var} is {env.get(var)!r} in compose, {k8s_env.get(var)!r} on Kubernetes")
    return errors


def port_of(address):
    return int(address.rsplit(":", 1)[1]) if address and ":" in address else None


def check_k8s(documents, binaries, checked):
    errors = []
    maps = k8s_maps(documents)
    for doc in documents:
        if not doc or doc.get("kind") not in ("Deployment", "StatefulSet", "Job", "DaemonSet"):
            continue
        pod = doc["spec"]["template"]["spec"]
        for container in pod.get("containers", []) + pod.get("initContainers", []):
            if not ours(container.get("image")):
                continue
            where = f"k8s {doc['kind']}/{doc['metadata']['name']} container {container['name']}"
            checked.append(where)
            binary = check_image(where, container["image"], errors)
            if binary is None:
                continue
            missing = []
            env = container_env(container, maps, missing)
            errors += [f"{where}: envFrom {ref} is not in the build" for ref in missing]
            check_variables(where, binary, env, binaries, errors)
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports", [])}
            served = {port_of(env.get("HEALTH_LISTEN")), port_of(env.get("WEBUI_LISTEN"))} - {None}
            for kind in ("startupProbe", "readinessProbe", "livenessProbe"):
                probe = (container.get(kind) or {}).get("httpGet")
                if not probe:
                    continue
                port = probe["port"]
                port = ports.get(port) if isinstance(port, str) else port
                if probe.get("path") not in PROBE_PATHS:
                    errors.append(f"{where}: {kind} GETs {probe.get('path')}, not /healthz or /readyz")
                if port not in served:
                    errors.append(
                        f"{where}: {kind} on port {probe['port']} ({port}), which it does not "
                        f"serve (HEALTH_LISTEN/WEBUI_LISTEN ports: {sorted(served) or 'none'})"
                    )
    return errors


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[-1])
    binaries = Binaries(sys.argv[1])
    services = yaml.safe_load(run("docker-compose", "-f", "docker-compose.yml", "config"))["services"]
    documents = list(yaml.safe_load_all(run("kubectl", "kustomize", "k8s/overlays/all")))

    # The check must be able to fail: a variable no binary reads is refused.
    doctored = copy.deepcopy(services)
    victim = next(name for name, s in sorted(doctored.items()) if ours(s.get("image")))
    doctored[victim].setdefault("environment", {})["NOT_A_CHOCOMINER_SETTING"] = "1"
    if not any("NOT_A_CHOCOMINER_SETTING" in e for e in check_compose(doctored, binaries)):
        sys.exit("check-files: self-test failed: an unknown variable went unnoticed")
    print(f"[check-files] self-test: NOT_A_CHOCOMINER_SETTING on {victim} is refused")
    # ... and so is a dependency only waited for to be started.
    doctored = copy.deepcopy(services)
    waiter = next(name for name, s in sorted(doctored.items()) if s.get("depends_on"))
    dep = sorted(doctored[waiter]["depends_on"])[0]
    doctored[waiter]["depends_on"] = {dep: {"condition": "service_started"}}
    if not check_compose_order(doctored):
        sys.exit("check-files: self-test failed: a dependency not waited for went unnoticed")
    print(f"[check-files] self-test: {waiter} waiting for {dep} only to start is refused")

    # ... and so is Chronograf's resources mounted elsewhere than RESOURCES_PATH.
    doctored = copy.deepcopy(services)
    doctored["chronograf"]["environment"]["RESOURCES_PATH"] = "/elsewhere"
    if not check_chronograf(doctored):
        sys.exit("check-files: self-test failed: chronograf/ mounted off RESOURCES_PATH went unnoticed")
    print("[check-files] self-test: chronograf/ mounted elsewhere than RESOURCES_PATH is refused")

    # ... and so is a service left to run as root.
    doctored = copy.deepcopy(services)
    doctored["nats-box"].pop("user", None)
    if not check_compose_users(doctored):
        sys.exit("check-files: self-test failed: nats-box running as root went unnoticed")
    print("[check-files] self-test: nats-box without `user:` (root) is refused")

    # ... and so is a stage configured differently in compose and on Kubernetes.
    doctored = copy.deepcopy(services)
    doctored["hasher"]["environment"]["NATS_USER"] = "worker"
    if not check_one_story(doctored, documents):
        sys.exit("check-files: self-test failed: a hasher that is NATS user worker in compose went unnoticed")
    print("[check-files] self-test: a compose hasher configured unlike the Kubernetes one is refused")

    containers = []
    errors = (
        check_compose(services, binaries)
        + check_one_story(services, documents)
        + check_compose_users(services)
        + check_compose_order(services)
        + check_chronograf(services)
        + check_k8s(documents, binaries, containers)
    )
    for error in errors:
        print(f"[check-files] {error}", file=sys.stderr)
    if errors:
        sys.exit(1)
    counted = sum(1 for s in services.values() if ours(s.get("image")))
    print(
        f"[check-files] docker-compose.yml ({counted} ChocoMiner services) and k8s/overlays/all "
        f"({len(containers)} ChocoMiner containers): images, variables and health checks agree "
        f"with the Dockerfile and the binaries; every compose service that `up` starts has a "
        f"healthcheck and waits for its dependencies to be healthy; every compose service runs "
        f"non-root (or says why not); compose and Kubernetes configure each ChocoMiner service "
        f"alike; chronograf/ is mounted at "
        f"Chronograf's RESOURCES_PATH with source 1 and dashboard 1 (/sources/1/dashboards/1)"
    )


VERSION = workspace_version()
TARGETS = dockerfile_targets()

if __name__ == "__main__":
    main()
