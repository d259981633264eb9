#!/usr/bin/env python3
"""The rules `just check-k8s` holds every kustomize build of k8s/ to, beyond its schemas.

Schemas say a manifest is well-formed; these say it would behave on a real cluster, each rule
written for the defect it once let through (k8s issue: startup probes waiting for NATS, an HPA
undoing the lesson's `kubectl scale`, a Job refused on re-apply, Secrets re-applied over
InfluxDB's passwords, open NATS routes, unqualified images, drifting versions):

  namespace     every namespaced object is in chocominer (an overlay that forgot `namespace:`);
  restricted    every pod meets the "restricted" Pod Security Standard the namespace enforces;
  variables     every variable given a ChocoMiner container is one docs/configuration.md's
                Configuration table lists, or of a family the binaries read (a list kept by hand; `just
                check-files` asks the binaries themselves);
  startup       a startup probe asks what liveness asks, never readiness where the two differ:
                readiness may wait for another service, start-up must not (a cold cluster
                would have the kubelet kill healthy pods);
  scaling       no HorizontalPodAutoscaler targets a Deployment the lesson scales by hand
                (README's `kubectl ... scale deployment/X`), except in overlays/hpa, which
                exists to hand that count to a machine;
  jobs          a Job's pod template is the same whatever the settings (built again with a
                changed settings ConfigMap), since Kubernetes refuses to change it on apply,
                and a Job deletes itself when finished (ttlSecondsAfterFinished), so a later
                apply runs it afresh;
  secrets       no build holds a Secret (`kubectl apply` would write it back over the one the
                cluster keeps); every Secret a pod names, with its key, is one
                scripts/k8s-secrets.sh makes;
  routes        every NATS cluster block makes routes log in (authorization with user and
                password) and every route URL, once the pod's variables are filled in,
                carries credentials;
  governing     a StatefulSet's serviceName is a headless Service of the same build;
  images        every image names its registry (no Docker Hub by default, no podman
                short-name prompt) and a tag other than latest; renaming an image in
                k8s/components/images renames it in every build (one place);
  nats version  the NATS image's version is the one scripts/install-deps.sh pins for the
                tests and the one docker-compose.yml runs;
  monitoring    no pod may reach NATS monitoring; InfluxDB's /debug asks admin credentials;
  write-only    no stage (rng, hasher, worker) holds InfluxDB's writer password (key
                writer-password of chocominer-influx: WRITE also lets it DELETE and DROP
                SERIES), by volume, secretKeyRef or envFrom, and a stage's INFLUX_URL names the
                recorder's Service: the stages write only through the recorder.

Each rule first proves it can fail: it is run on a doctored copy of a good build and must
complain. Usage: check-k8s-rules.py ROOT BUILD FILE [BUILD FILE ...]
"""

import copy
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile

import yaml

NAMESPACE = "chocominer"
CLUSTER_SCOPED = {"Namespace"}
KNOWN = {"HEALTH_LISTEN", "INSTANCE", "SUBJECT_PREFIX", "DIFFICULTY", "ACK_TIMEOUT_MS",
         "RUST_LOG", "WEBUI_LISTEN"}
KNOWN_PREFIXES = ("CHOCOMINER_", "RNG_", "HASHER_", "NATS_", "INFLUX_", "WORKER_")
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
OURS = re.compile(r"(?:.+/)?chocominer/([a-z0-9-]+)(?::(\S+))?")
STAGES = {"rng", "hasher", "worker"}
# InfluxDB's writer password: only the recorder may hold it (rule write-only).
WRITER_SECRET, WRITER_KEY = "chocominer-influx", "writer-password"
HPA_OVERLAY = "k8s/overlays/hpa"


def fail(message):
    sys.exit(f"[check-k8s] error: {message}")


def kustomize(path):
    done = subprocess.run(["kubectl", "kustomize", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        fail(f"kubectl kustomize {path}: {done.stderr.strip()}")
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def pod_specs(doc):
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        yield spec
    elif doc["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec:
        yield spec["template"]["spec"]


def containers(doc):
    for pod in pod_specs(doc):
        for c in pod.get("initContainers", []) + pod.get("containers", []):
            yield pod, c


def name_of(doc):
    return f"{doc['kind']}/{doc['metadata']['name']}"


# --- the rules: each takes (build, docs, context) and returns a list of problems -------------

def rule_namespace(build, docs, ctx):
    problems = []
    for d in docs:
        ns = d["metadata"].get("namespace")
        if d["kind"] not in CLUSTER_SCOPED and ns != NAMESPACE:
            problems.append(f"{name_of(d)} is {'in namespace ' + ns if ns else 'in no namespace'}, not in {NAMESPACE}")
    return problems


def rule_restricted(build, docs, ctx):
    problems = []
    for d in docs:
        for pod in pod_specs(d):
            psc = pod.get("securityContext") or {}
            for host in ("hostNetwork", "hostPID", "hostIPC"):
                if pod.get(host):
                    problems.append(f"{name_of(d)}: {host} is set")
            for v in pod.get("volumes", []):
                kinds = set(v) - {"name"}
                if not kinds <= RESTRICTED_VOLUMES:
                    problems.append(f"{name_of(d)}: volume {v['name']} of a refused type {sorted(kinds)}")
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                csc = c.get("securityContext") or {}
                where = f"{name_of(d)} container {c['name']}"
                if csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is not True:
                    problems.append(f"{where}: runAsNonRoot is not true")
                if csc.get("runAsUser", psc.get("runAsUser")) == 0:
                    problems.append(f"{where}: runAsUser is 0")
                seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
                if seccomp not in ("RuntimeDefault", "Localhost"):
                    problems.append(f"{where}: seccompProfile is {seccomp or 'not set'}")
                if csc.get("allowPrivilegeEscalation") is not False:
                    problems.append(f"{where}: allowPrivilegeEscalation is not false")
                if csc.get("privileged"):
                    problems.append(f"{where}: privileged")
                caps = csc.get("capabilities") or {}
                if "ALL" not in caps.get("drop", []):
                    problems.append(f"{where}: capabilities do not drop ALL")
                if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
                    problems.append(f"{where}: adds capabilities {caps['add']}")
                if any(p.get("hostPort") for p in c.get("ports", [])):
                    problems.append(f"{where}: uses a hostPort")
    return problems


def rule_variables(build, docs, ctx):
    data = {(d["kind"], d["metadata"]["name"]): set(d.get("data") or {}) | set(d.get("stringData") or {})
            for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    problems = []
    for d in docs:
        for _, c in containers(d):
            if not OURS.fullmatch(c.get("image", "")):
                continue
            where = f"{name_of(d)} container {c['name']}"
            names = {e["name"] for e in c.get("env", [])}
            for source in c.get("envFrom", []):
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    if ("ConfigMap", ref) not in data:
                        problems.append(f"{where}: envFrom ConfigMap {ref} is not in the build")
                    names |= {source.get("prefix", "") + k for k in data.get(("ConfigMap", ref), ())}
            for name in sorted(names):
                if name not in ctx["documented"] and name not in KNOWN and not name.startswith(KNOWN_PREFIXES):
                    problems.append(f"{where}: {name} is neither in docs/configuration.md's "
                                    "table nor a known ChocoMiner variable")
    return problems


def handler(probe):
    probe = probe or {}
    for kind in ("httpGet", "tcpSocket", "exec", "grpc"):
        if kind in probe:
            return kind, yaml.safe_dump(probe[kind], sort_keys=True)
    return None


def rule_startup(build, docs, ctx):
    problems = []
    for d in docs:
        for _, c in containers(d):
            start, ready, alive = (handler(c.get(k)) for k in ("startupProbe", "readinessProbe", "livenessProbe"))
            if start and ready and alive and ready != alive and start != alive:
                what = "readiness's" if start == ready else "something other than liveness's"
                problems.append(f"{name_of(d)} container {c['name']}: its startupProbe asks "
                                f"{what} question; readiness may wait for other services, start-up must not")
    return problems


def rule_scaling(build, docs, ctx):
    if build == HPA_OVERLAY:
        return []
    problems = []
    for d in docs:
        if d["kind"] == "HorizontalPodAutoscaler":
            target = d["spec"]["scaleTargetRef"]
            if target.get("kind") == "Deployment" and target.get("name") in ctx["scaled_by_hand"]:
                problems.append(f"{name_of(d)} owns deployment/{target['name']}'s replicas, which "
                                "the lesson sets with kubectl scale: only overlays/hpa may have it")
    return problems


def job_templates(docs):
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] == "Job"}


def rule_jobs(build, docs, ctx):
    problems = []
    for d in docs:
        if d["kind"] == "Job" and "ttlSecondsAfterFinished" not in d["spec"]:
            problems.append(f"{name_of(d)}: no ttlSecondsAfterFinished: once finished it stays, "
                            "and the next apply with any change to it is refused")
    changed = ctx["settings_changed"].get(build)
    if changed is not None:
        for name, template in job_templates(docs).items():
            if changed.get(name) != template:
                problems.append(f"Job/{name}: its pod template changes with the settings "
                                "ConfigMap, so the next `kubectl apply` after a settings change is refused")
    return problems


def secret_volumes(doc):
    """(volume, Secret, keys) for every Secret a pod of `doc` mounts, whole or projected; keys
    are the items it names, none when it mounts every key."""
    for pod in pod_specs(doc):
        for v in pod.get("volumes", []):
            sources = [s["secret"] for s in (v.get("projected") or {}).get("sources", []) if "secret" in s]
            if "secret" in v:
                sources.append({"name": v["secret"]["secretName"], "items": v["secret"].get("items")})
            for s in sources:
                yield v["name"], s["name"], [i["key"] for i in s.get("items") or []]


def rule_secrets(build, docs, ctx):
    problems = [f"{name_of(d)}: a Secret in k8s/ is written back over the cluster's by every "
                "apply; scripts/k8s-secrets.sh makes them once" for d in docs if d["kind"] == "Secret"]
    made = ctx["made_secrets"]
    for d in docs:
        for _, c in containers(d):
            where = f"{name_of(d)} container {c['name']}"
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["key"] not in made.get(ref["name"], ()):
                    problems.append(f"{where}: {e['name']} from Secret {ref['name']} key "
                                    f"{ref['key']}, which scripts/k8s-secrets.sh does not make")
            for source in c.get("envFrom", []):
                if "secretRef" in source and source["secretRef"]["name"] not in made:
                    problems.append(f"{where}: envFrom Secret {source['secretRef']['name']}, "
                                    "which scripts/k8s-secrets.sh does not make")
        for volume, secret, keys in secret_volumes(d):
            for key in keys or ["(all keys)"]:
                if secret not in made or (keys and key not in made[secret]):
                    problems.append(f"{name_of(d)} volume {volume}: Secret {secret} key "
                                    f"{key}, which scripts/k8s-secrets.sh does not make")
    return problems


def block(text, name):
    """The body of the first `name { ... }` block of a NATS config, or None."""
    m = re.search(rf"^\s*{name}\s*[:=]?\s*\{{", text, re.M)
    if not m:
        return None
    depth, i = 1, m.end()
    while depth and i < len(text):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[m.end():i - 1]


def strip_comments(text):
    return "\n".join(re.sub(r"(^|\s)(#|//).*$", "", line) for line in text.splitlines())


def rule_routes(build, docs, ctx):
    problems = []
    for d in docs:
        if d["kind"] != "ConfigMap":
            continue
        for key, text in (d.get("data") or {}).items():
            cluster = block(strip_comments(text), "cluster")
            if cluster is None:
                continue
            where = f"{name_of(d)} {key}"
            auth = block(cluster, "authorization")
            if auth is None or not re.search(r"^\s*user\s*[:=]", auth, re.M) \
                    or not re.search(r"^\s*password\s*[:=]", auth, re.M):
                problems.append(f"{where}: the cluster block has no authorization with user and "
                                "password: anything reaching the route port bypasses every permission")
            routes = re.search(r"routes\s*[:=]?\s*\[(.*?)\]", cluster, re.S)
            for route in (routes.group(1).split() if routes else []):
                url = route.strip(",\"'")
                if url.startswith("$"):
                    url = ctx["nats_env"].get(url[1:], url)
                if not re.match(r"^[a-z-]+://[^@/]+:[^@/]+@", url):
                    problems.append(f"{where}: route {route} carries no credentials (it would be refused)")
    return problems


def rule_governing(build, docs, ctx):
    headless = {d["metadata"]["name"] for d in docs
                if d["kind"] == "Service" and d["spec"].get("clusterIP") == "None"}
    return [f"{name_of(d)}: serviceName {d['spec'].get('serviceName')!r} is not a headless Service of the build"
            for d in docs if d["kind"] == "StatefulSet" and d["spec"].get("serviceName") not in headless]


def qualified(image):
    first = image.split("/", 1)[0]
    return "/" in image and ("." in first or ":" in first or first == "localhost")


def rule_images(build, docs, ctx):
    problems = []
    for d in docs:
        for _, c in containers(d):
            image = c.get("image", "")
            where = f"{name_of(d)} container {c['name']}"
            tag = image.rsplit("/", 1)[-1].partition(":")[2]
            if not tag or tag == "latest":
                problems.append(f"{where}: image {image!r} is not pinned to a version")
            if not qualified(image):
                problems.append(f"{where}: image {image!r} names no registry (Docker Hub by "
                                "default, where no such image may be; podman refuses short names)")
    renamed = ctx["renamed"].get(build)
    if renamed is not None:
        ours = sorted({i for i in renamed if OURS.fullmatch(i)})
        stray = [i for i in ours if not i.startswith(ctx["renamed_prefix"])]
        if stray:
            problems.append(f"renaming ChocoMiner's images in k8s/components/images leaves {stray} as they were")
    return problems


def rule_nats_version(build, docs, ctx):
    problems = []
    for d in docs:
        for _, c in containers(d):
            m = re.fullmatch(r"(?:.*/)?nats:(\d+\.\d+\.\d+)(?:-.*)?", c.get("image", ""))
            if m and m.group(1) != ctx["nats_version"]:
                problems.append(f"{name_of(d)}: NATS {m.group(1)}, but the tests run "
                                f"{ctx['nats_version']} (scripts/install-deps.sh)")
    return problems


def rule_monitoring(build, docs, ctx):
    """What tells who is connected stays with the operators: no NetworkPolicy lets pods reach
    NATS's monitoring port (/connz?auth=1 lists users and inbox prefixes), and an InfluxDB
    with pprof on asks admin credentials for every /debug endpoint (1.8 serves /debug/vars and
    /debug/requests, user names with addresses, to anyone otherwise)."""
    problems = []
    for d in docs:
        if d["kind"] == "NetworkPolicy":
            selected = d["spec"].get("podSelector", {}).get("matchLabels", {})
            if selected.get("app.kubernetes.io/name") == "nats":
                for rule in d["spec"].get("ingress") or []:
                    if any(p.get("port") in (8222, "monitor") for p in rule.get("ports") or []):
                        problems.append(f"{name_of(d)}: lets pods reach NATS monitoring (8222)")
        for _, c in containers(d):
            env = {e["name"]: e.get("value") for e in c.get("env") or []}
            if env.get("INFLUXDB_HTTP_PPROF_ENABLED") == "true" \
                    and env.get("INFLUXDB_HTTP_PPROF_AUTH_ENABLED") != "true":
                problems.append(f"{name_of(d)} container {c['name']}: pprof on without "
                                "INFLUXDB_HTTP_PPROF_AUTH_ENABLED: /debug answers anyone")
    return problems


def is_stage(doc):
    labels = (((doc.get("spec") or {}).get("template") or {}).get("metadata") or {}).get("labels") or {}
    return doc["kind"] == "Deployment" and (doc["metadata"]["name"] in STAGES
                                            or labels.get("app.kubernetes.io/component") == "stage")


def rule_write_only(build, docs, ctx):
    """The stages write their stats through the recorder, never as InfluxDB's writer: a user
    with WRITE in InfluxDB 1.x may also DELETE and DROP SERIES, so a stage holding the writer's
    password (InfluxDB's, key writer-password of chocominer-influx) could erase the books. Only
    the recorder, which checks every line, holds it."""
    configmaps = {d["metadata"]["name"]: d.get("data") or {} for d in docs if d["kind"] == "ConfigMap"}
    recorder_services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"
                         and (d["spec"].get("selector") or {}).get("app.kubernetes.io/name") == "recorder"}
    writer = f"Secret {WRITER_SECRET} key {WRITER_KEY} (InfluxDB's writer password: WRITE also " \
             "lets it DELETE and DROP SERIES; only the recorder may hold it)"
    problems = []
    for d in docs:
        if not is_stage(d):
            continue
        for volume, secret, keys in secret_volumes(d):
            if secret == WRITER_SECRET and (not keys or WRITER_KEY in keys):
                problems.append(f"{name_of(d)} volume {volume}: mounts {writer}")
        for _, c in containers(d):
            where = f"{name_of(d)} container {c['name']}"
            env = {}
            for source in c.get("envFrom", []):
                if (source.get("secretRef") or {}).get("name") == WRITER_SECRET:
                    problems.append(f"{where}: envFrom takes every key of Secret {WRITER_SECRET}, {writer}")
                if "configMapRef" in source:
                    env.update({source.get("prefix", "") + k: v
                                for k, v in configmaps.get(source["configMapRef"]["name"], {}).items()})
            for e in c.get("env", []):
                ref = (e.get("valueFrom") or {}).get("secretKeyRef")
                if ref and ref["name"] == WRITER_SECRET and ref["key"] == WRITER_KEY:
                    problems.append(f"{where}: {e['name']} from {writer}")
                cm = (e.get("valueFrom") or {}).get("configMapKeyRef")
                if cm:
                    env[e["name"]] = configmaps.get(cm["name"], {}).get(cm["key"])
                elif "value" in e:
                    env[e["name"]] = e["value"]
            url = env.get("INFLUX_URL") or ""
            host = re.sub(r"^[a-z]+://", "", url).split("/")[0].split(":")[0].split(".")[0]
            if host not in recorder_services:
                problems.append(f"{where}: INFLUX_URL {url or '(unset)'} is not the recorder's Service "
                                f"({', '.join(sorted(recorder_services)) or 'none in the build'}): the "
                                "stages write only through the recorder")
    return problems


RULES = [("namespace", rule_namespace), ("restricted", rule_restricted),
         ("variables", rule_variables), ("startup", rule_startup), ("scaling", rule_scaling),
         ("jobs", rule_jobs), ("secrets", rule_secrets), ("routes", rule_routes),
         ("governing", rule_governing), ("images", rule_images), ("nats version", rule_nats_version),
         ("monitoring", rule_monitoring), ("write-only", rule_write_only)]


# --- what the rules compare against ----------------------------------------------------------

def readme_variables(root):
    text = (root / "docs/configuration.md").read_text(encoding="utf-8")
    section = re.search(r"^## Configuration\n(.*?)(?:^## |\Z)", text, re.S | re.M)
    if not section:
        fail("docs/configuration.md has no '## Configuration' section")
    names = set()
    for line in section.group(1).splitlines():
        if line.startswith("| `"):
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", line.split("|")[1]))
    return names


def made_secrets(root):
    out = subprocess.run([str(root / "scripts/k8s-secrets.sh"), "--print"], capture_output=True, text=True)
    if out.returncode != 0:
        fail(f"scripts/k8s-secrets.sh --print: {out.stderr.strip()}")
    return {d["metadata"]["name"]: set(d.get("data") or {}) for d in yaml.safe_load_all(out.stdout) if d}


def nats_version(root):
    pinned = re.search(r"^NATS_SERVER_VERSION=(\S+)", (root / "scripts/install-deps.sh").read_text(), re.M)
    if not pinned:
        fail("scripts/install-deps.sh pins no NATS_SERVER_VERSION")
    version = pinned.group(1)
    compose = subprocess.run(["docker-compose", "-f", str(root / "docker-compose.yml"), "config"],
                             capture_output=True, text=True, cwd=root)
    if compose.returncode == 0:
        image = yaml.safe_load(compose.stdout)["services"]["nats"]["image"]
        if not re.fullmatch(rf".*/nats:{re.escape(version)}(-.*)?", image):
            fail(f"docker-compose.yml runs {image}, not NATS {version} (scripts/install-deps.sh)")
        print(f"[check-k8s] nats version: docker-compose.yml runs {image}")
    else:
        fail("docker-compose config failed: cannot compare its NATS version "
             f"({compose.stderr.strip().splitlines()[-1:]})")
    return version


def statefulset_env(docs, name):
    for d in docs:
        if d["kind"] == "StatefulSet" and d["metadata"]["name"] == name:
            env = {}
            for e in d["spec"]["template"]["spec"]["containers"][0].get("env", []):
                value = e.get("value")
                if value is None and "secretKeyRef" in (e.get("valueFrom") or {}):
                    value = "secret"
                # Kubernetes fills in $(NAME) from the variables before it.
                env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), value or "")
            return env
    return {}


def job_waits(root):
    """Every documented `kubectl wait` for a Job's completion that does not also end on failure."""
    found = []
    paths = [root / "README.md", *sorted((root / "docs").glob("*.md")), *sorted((root / "k8s").rglob("*.yaml"))]
    for path in paths:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if re.search(r"kubectl\b.*\bwait\b.*--for[= ]condition=complete", line, re.I) \
                    and not re.search(r"condition=failed", line, re.I):
                found.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return found


def doctored_copy(root, tmp):
    """A copy of what k8s/ builds from (k8s/ and the folders its base names as ../../<folder>),
    for building it again with one thing changed."""
    base = yaml.safe_load((root / "k8s/base/kustomization.yaml").read_text())
    outside = [r.removeprefix("../../") for r in base["resources"] if r.startswith("../../")]
    for folder in ["k8s", *outside]:
        shutil.copytree(root / folder, tmp / folder)
    return tmp


def builds_with(root, builds, change):
    with tempfile.TemporaryDirectory() as tmp:
        copy_root = doctored_copy(root, pathlib.Path(tmp))
        change(copy_root)
        return {b: kustomize(copy_root / b) for b in builds}


def main():
    root = pathlib.Path(sys.argv[1])
    pairs = sys.argv[2:]
    builds = {b: [d for d in yaml.safe_load_all(open(f, encoding="utf-8")) if d]
              for b, f in zip(pairs[::2], pairs[1::2])}

    def change_settings(copy_root):
        p = copy_root / "k8s/base/kustomization.yaml"
        p.write_text(p.read_text().replace("      - CHOCOMINER_PROFILE=demo", "      - CHOCOMINER_PROFILE=full"))

    prefix = "registry.example.com/check-k8s/"

    def rename_images(copy_root):
        p = copy_root / "k8s/components/images/kustomization.yaml"
        p.write_text(re.sub(r"newName: ghcr\.io/chocominer/", "newName: " + prefix, p.read_text()))

    changed = builds_with(root, builds, change_settings)
    renamed = builds_with(root, builds, rename_images)
    lesson = (root / "README.md").read_text(encoding="utf-8")
    scaled_by_hand = set(re.findall(r"kubectl(?: -n \S+)? scale deployment/([a-z-]+)", lesson))
    if not scaled_by_hand:
        fail("README.md scales no deployment with kubectl: the scaling rule has nothing to hold to")
    all_docs = next(iter(builds.values()))
    ctx = {
        "documented": readme_variables(root),
        "scaled_by_hand": scaled_by_hand,
        "settings_changed": {b: job_templates(docs) for b, docs in changed.items()},
        "made_secrets": made_secrets(root),
        "nats_env": statefulset_env(all_docs, "nats"),
        "renamed": {b: [c.get("image", "") for d in docs for _, c in containers(d)] for b, docs in renamed.items()},
        "renamed_prefix": prefix,
        "nats_version": nats_version(root),
    }

    # Every rule must be able to fail: a doctored good build, one defect per rule.
    self_test(builds, ctx)
    waits = job_waits(root)
    for w in waits:
        print(f"[check-k8s] {w}", file=sys.stderr)
    if waits:
        fail("waiting on a Job's completion alone sits out the whole timeout when it fails: "
             "scripts/k8s-smoke.sh waits for either")

    failed = False
    for build, docs in builds.items():
        problems = [(rule, p) for rule, check in RULES for p in check(build, docs, ctx)]
        for rule, p in problems:
            print(f"[check-k8s] {build}: {rule}: {p}", file=sys.stderr)
        failed |= bool(problems)
        if not problems:
            print(f"[check-k8s] rules ok ({', '.join(r for r, _ in RULES)}): {build}")
    if failed:
        fail("the rules failed (above)")


def self_test(builds, ctx):
    """Each rule, on a build with the defect it guards against, must complain."""
    build = "k8s/overlays/all" if "k8s/overlays/all" in builds else next(iter(builds))
    good = builds[build]

    def stage(docs, name):
        return next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == name)

    def first_container(d):
        return d["spec"]["template"]["spec"]["containers"][0]

    def with_startup_on_readiness(docs):
        c = first_container(stage(docs, "hasher"))
        c["startupProbe"] = copy.deepcopy(c["readinessProbe"])

    def with_hpa(docs):
        docs.append({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                     "metadata": {"name": "x", "namespace": NAMESPACE},
                     "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                                 "name": sorted(ctx["scaled_by_hand"])[0]}}})

    def with_secret(docs):
        docs.append({"apiVersion": "v1", "kind": "Secret",
                     "metadata": {"name": "chocominer-nats", "namespace": NAMESPACE}})

    def with_open_routes(docs):
        for d in docs:
            for key, text in (d.get("data") or {}).items() if d["kind"] == "ConfigMap" else ():
                if block(strip_comments(text), "cluster") is not None:
                    d["data"][key] = re.sub(r"authorization\s*\{[^}]*\}", "", text)

    def with_short_image(docs):
        first_container(stage(docs, "rng"))["image"] = "chocominer/rng:0.1.0"

    def with_clusterip_governor(docs):
        for d in docs:
            if d["kind"] == "StatefulSet" and d["metadata"]["name"] == "influxdb":
                d["spec"]["serviceName"] = "influxdb"

    def with_old_nats(docs):
        for d in docs:
            for _, c in containers(d):
                c["image"] = re.sub(r"(^|/)nats:[\d.]+", r"\1nats:2.10.29", c.get("image", ""))

    def with_open_monitoring(docs):
        for d in docs:
            for _, c in containers(d):
                c["env"] = [e for e in c.get("env") or []
                            if e["name"] != "INFLUXDB_HTTP_PPROF_AUTH_ENABLED"]

    def with_stage_as_writer(docs):
        # The stage's InfluxDB password as it was before the recorder: the writer's.
        for v in stage(docs, "worker")["spec"]["template"]["spec"]["volumes"]:
            for s in (v.get("projected") or {}).get("sources", []):
                if "secret" in s and any(i.get("path", "").startswith("recorder-") for i in s["secret"].get("items") or []):
                    s["secret"] = {"name": WRITER_SECRET,
                                   "items": [{"key": WRITER_KEY, "path": "influx-writer-password"}]}

    def with_root(docs):
        first_container(stage(docs, "worker")).setdefault("securityContext", {})["runAsNonRoot"] = False

    doctors = {"startup": with_startup_on_readiness, "scaling": with_hpa, "secrets": with_secret,
               "routes": with_open_routes, "images": with_short_image,
               "governing": with_clusterip_governor, "nats version": with_old_nats,
               "restricted": with_root, "monitoring": with_open_monitoring,
               "write-only": with_stage_as_writer}
    checks = dict(RULES)
    for rule, doctor in doctors.items():
        docs = copy.deepcopy(good)
        doctor(docs)
        if not checks[rule](build, docs, ctx):
            fail(f"self-test: the {rule} rule did not notice its defect ({doctor.__name__})")
    # write-only, its other ways in: the writer's key by secretKeyRef, the whole Secret by
    # envFrom, and a stage writing to InfluxDB itself.
    def with_writer_env(docs):
        first_container(stage(docs, "rng")).setdefault("env", []).append(
            {"name": "INFLUX_PASSWORD", "valueFrom": {"secretKeyRef": {"name": WRITER_SECRET, "key": WRITER_KEY}}})

    def with_writer_envfrom(docs):
        first_container(stage(docs, "hasher")).setdefault("envFrom", []).append({"secretRef": {"name": WRITER_SECRET}})

    def with_stage_to_influxdb(docs):
        first_container(stage(docs, "hasher")).setdefault("env", []).append(
            {"name": "INFLUX_URL", "value": "http://influxdb:8086"})

    for doctor in (with_writer_env, with_writer_envfrom, with_stage_to_influxdb):
        docs = copy.deepcopy(good)
        doctor(docs)
        if not rule_write_only(build, docs, ctx):
            fail(f"self-test: the write-only rule did not notice its defect ({doctor.__name__})")
    # jobs: a template that follows the settings, and one that never goes away.
    jobs_ctx = dict(ctx, settings_changed={build: {n: {"changed": True} for n in job_templates(good)}})
    if job_templates(good) and not rule_jobs(build, good, jobs_ctx):
        fail("self-test: the jobs rule did not notice a template that follows the settings")
    print(f"[check-k8s] self-test: each rule refuses its defect on a doctored {build} "
          f"({', '.join(sorted(doctors))}, jobs; write-only also by secretKeyRef, envFrom, INFLUX_URL)")


if __name__ == "__main__":
    main()
