#!/usr/bin/env bash
# Checks the Kubernetes files in k8s/ without a cluster (`just check-k8s`):
#
# 1. kustomize builds them: `kubectl kustomize` of k8s (the base) and of every overlay in
#    k8s/overlays/ (the base plus each component, and plus all of them); every component in
#    k8s/components/ must have its overlay, so none goes unbuilt.
# 2. Every document of every build is valid against the Kubernetes 1.30 API schemas:
#    `kubernetes-validate --strict` (unknown fields are errors too).
# 3. Static rules on every build:
#    - every namespaced object is in the namespace chocominer (an overlay that forgot its
#      `namespace:` would put a component's objects elsewhere);
#    - every container image names a tag other than `latest`;
#    - every pod meets the "restricted" Pod Security Standard that the namespace enforces
#      (non-root, RuntimeDefault seccomp, no privilege escalation, all capabilities dropped,
#      only the volume types it allows, no host namespaces or ports), which no schema checks
#      and a cluster would only tell by refusing the pods;
#    - every environment variable given to a ChocoMiner container (image chocominer/*: rng,
#      hasher, worker, webui, cli), by `env` or through `envFrom` a ConfigMap or Secret of the
#      build, is a variable of README.md's Configuration table, or one of the families the
#      binaries read: HEALTH_LISTEN, INSTANCE, SUBJECT_PREFIX, DIFFICULTY, ACK_TIMEOUT_MS,
#      RUST_LOG, WEBUI_LISTEN, CHOCOMINER_*, RNG_*, HASHER_*, NATS_*, INFLUX_*.
#      This is a list kept by hand, not the binaries' own word: a misspelt family name
#      (INFLUXDB_URL) fails, a made-up member of a family (NATS_FOO) passes. Checking against
#      each binary's `--help` would need the binaries built.
#
# It proves the files are well-formed, not that the pods run: nothing here starts a cluster.
# Needs kubectl on PATH and kubernetes-validate in .tools/venv
# (`scripts/install-deps.sh --with-k8s`). Exits non-zero on the first failing step.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$root/.tools/venv"
k8s_version=1.30.0
say() { printf '[check-k8s] %s\n' "$*"; }
die() { printf '[check-k8s] error: %s\n' "$*" >&2; exit 1; }

command -v kubectl >/dev/null 2>&1 || die "kubectl not found on PATH (it builds k8s/ with its kustomize)"
[ -x "$venv/bin/kubernetes-validate" ] \
  || die "kubernetes-validate not found in $venv: run scripts/install-deps.sh --with-k8s"

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

# Every component has an overlay of its own.
for component in "$root"/k8s/components/*/; do
  name="$(basename "$component")"
  [ -f "$root/k8s/overlays/$name/kustomization.yaml" ] \
    || die "component $name has no overlay k8s/overlays/$name (it would never be built)"
done

# 1. Build.
builds=(k8s)
for overlay in "$root"/k8s/overlays/*/; do
  builds+=("k8s/overlays/$(basename "$overlay")")
done
files=()
for build in "${builds[@]}"; do
  file="$out/$(echo "$build" | tr / _).yaml"
  kubectl kustomize "$root/$build" >"$file" 2>"$out/stderr" \
    || { cat "$out/stderr" >&2; die "kubectl kustomize $build failed"; }
  say "built $build: $(grep -c '^kind:' "$file") objects"
  files+=("$file")
done

# 2. Schemas. --quiet prints only the failures.
for i in "${!builds[@]}"; do
  "$venv/bin/kubernetes-validate" --strict --quiet --kubernetes-version "$k8s_version" "${files[$i]}" \
    || die "${builds[$i]} does not validate against Kubernetes $k8s_version (above)"
  say "valid for Kubernetes $k8s_version: ${builds[$i]}"
done

# 3. Static rules, in the venv's Python (kubernetes-validate brings PyYAML).
args=()
for i in "${!builds[@]}"; do args+=("${builds[$i]}" "${files[$i]}"); done
"$venv/bin/python" - "$root/README.md" "${args[@]}" <<'PY'
import re
import sys

import yaml

NAMESPACE = "chocominer"
CLUSTER_SCOPED = {"Namespace"}
KNOWN = {"HEALTH_LISTEN", "INSTANCE", "SUBJECT_PREFIX", "DIFFICULTY", "ACK_TIMEOUT_MS",
         "RUST_LOG", "WEBUI_LISTEN"}
KNOWN_PREFIXES = ("CHOCOMINER_", "RNG_", "HASHER_", "NATS_", "INFLUX_")
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}


def readme_variables(path):
    """The variables named in the first column of README.md's Configuration table."""
    text = open(path, encoding="utf-8").read()
    section = re.search(r"^## Configuration\n(.*?)^## ", text, re.S | re.M)
    if not section:
        sys.exit("[check-k8s] error: README.md has no '## Configuration' section")
    names = set()
    for line in section.group(1).splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Z][A-Z0-9_]*)`", first_cell))
    if not names:
        sys.exit("[check-k8s] error: no variable found in README.md's Configuration table")
    return names


def pod_specs(doc):
    """The pod spec(s) of a workload object."""
    spec = doc.get("spec") or {}
    if doc["kind"] == "Pod":
        yield spec
    elif doc["kind"] == "CronJob":
        yield spec["jobTemplate"]["spec"]["template"]["spec"]
    elif "template" in spec:
        yield spec["template"]["spec"]


def restricted(pod):
    """What keeps a pod spec from the "restricted" Pod Security Standard."""
    problems = []
    psc = pod.get("securityContext") or {}
    containers = pod.get("initContainers", []) + pod.get("containers", [])
    for host in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(host):
            problems.append(f"{host} is set")
    for v in pod.get("volumes", []):
        kinds = set(v) - {"name"}
        if not kinds <= RESTRICTED_VOLUMES:
            problems.append(f"volume {v['name']} is of a type it refuses: {sorted(kinds)}")
    for c in containers:
        csc = c.get("securityContext") or {}
        name = f"container {c['name']}"
        if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            problems.append(f"{name}: runAsNonRoot is not true")
        if csc.get("runAsUser", psc.get("runAsUser")) == 0:
            problems.append(f"{name}: runAsUser is 0")
        seccomp = (csc.get("seccompProfile") or psc.get("seccompProfile") or {}).get("type")
        if seccomp not in ("RuntimeDefault", "Localhost"):
            problems.append(f"{name}: seccompProfile is {seccomp or 'not set'}")
        if csc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if csc.get("privileged"):
            problems.append(f"{name}: privileged")
        caps = csc.get("capabilities") or {}
        if "ALL" not in caps.get("drop", []):
            problems.append(f"{name}: capabilities do not drop ALL")
        if set(caps.get("add", [])) - {"NET_BIND_SERVICE"}:
            problems.append(f"{name}: adds capabilities {caps['add']}")
        if any(p.get("hostPort") for p in c.get("ports", [])):
            problems.append(f"{name}: uses a hostPort")
    return problems


def check(build, path, documented):
    docs = [d for d in yaml.safe_load_all(open(path, encoding="utf-8")) if d]
    data = {}  # (kind, name) -> keys, for envFrom
    for d in docs:
        if d["kind"] in ("ConfigMap", "Secret"):
            keys = set(d.get("data") or {}) | set(d.get("stringData") or {})
            data[(d["kind"], d["metadata"]["name"])] = keys
    problems = []
    for d in docs:
        what = f"{d['kind']}/{d['metadata']['name']}"
        namespace = d["metadata"].get("namespace")
        if d["kind"] not in CLUSTER_SCOPED and namespace != NAMESPACE:
            where = f"in namespace {namespace}" if namespace else "in no namespace"
            problems.append(f"{what} is {where}, not in {NAMESPACE}")
        for pod in pod_specs(d):
            problems += [f"{what}: not restricted: {p}" for p in restricted(pod)]
            for c in pod.get("initContainers", []) + pod.get("containers", []):
                where = f"{what} container {c['name']}"
                image = c.get("image", "")
                tag = image.rsplit("/", 1)[-1].partition(":")[2]
                if not tag or tag == "latest":
                    problems.append(f"{where}: image {image!r} is not pinned to a version")
                if not image.startswith("chocominer/"):
                    continue
                names = {e["name"] for e in c.get("env", [])}
                for source in c.get("envFrom", []):
                    for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                        if key in source:
                            ref = source[key]["name"]
                            if (kind, ref) not in data:
                                problems.append(f"{where}: envFrom {kind} {ref} is not in the build")
                            names |= {source.get("prefix", "") + k for k in data.get((kind, ref), ())}
                for name in sorted(names):
                    if name not in documented and name not in KNOWN \
                            and not name.startswith(KNOWN_PREFIXES):
                        problems.append(f"{where}: {name} is neither in README.md's "
                                        "Configuration table nor a known ChocoMiner variable")
    return problems


documented = readme_variables(sys.argv[1])
pairs = sys.argv[2:]
failed = False
for build, path in zip(pairs[::2], pairs[1::2]):
    problems = check(build, path, documented)
    for p in problems:
        print(f"[check-k8s] {build}: {p}", file=sys.stderr)
    if problems:
        failed = True
    else:
        print(f"[check-k8s] namespace, image tags, restricted pods, variables ok: {build}")
if failed:
    sys.exit("[check-k8s] error: the static rules failed (above)")
PY
say "all good: ${#builds[@]} builds"
