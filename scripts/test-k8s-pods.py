#!/usr/bin/env python3
"""The Kubernetes side of scripts/test-k8s-pods.sh: k8s/ as rendered, translated for podman 4.3's
`kube play` only where it cannot play it, and the checks a kubelet and a user would make.

  plan RENDERED SECRETS OUT SUBNET
                               reads `kubectl kustomize k8s` (RENDERED) and the Secrets YAML;
                               writes OUT/secrets/<name>.json (the form podman 4.3's
                               secretKeyRef reads), OUT/pods/<nn>-<pod>.yaml (one pod each, with
                               the ConfigMaps it uses) and OUT/plan.json; prints what it
                               translated, one line each
  probes PLAN SECONDS          every startup, readiness and liveness probe of every container,
                               called as a kubelet calls it (see probe_all); one line each
  routez PLAN SECONDS          each NATS pod's /routez names the other two servers (polls)
  recorder PLAN SECRETS        the stages write through the recorder only (see recorder_checks):
                               their played files and environments, the recorder's answers
                               to the stages' and to InfluxDB's writer's passwords;
                               SECRETS is OUT/secrets of `plan`; one line each
  get PLAN KEY...              a value of the plan (e.g. `get PLAN ip nats-0`)

Translation (each item is printed by `plan`, and nothing else is changed):
  - Namespace, Service, PodDisruptionBudget: not played (no API server, no kube-proxy). Each
    Service becomes host names instead: hostAliases in every pod map the Service's name (short
    and FQDN) to the IP of one pod it selects (a fixed IP per pod on a network of the test's
    own), pods spread round-robin over the backends; a headless Service's pods are also named
    <pod>.<service>. Refused when a Service's port differs from its target port.
  - StatefulSet: a Pod per replica, named <set>-<i>, hostname and subdomain as the controller
    sets them; volumeClaimTemplates become a claim <template>-<set>-<i> (a podman volume that
    the shell prepares with the pod's fsGroup, which podman 4.3 ignores).
  - Deployment: played as it is (podman names its pod <name>-pod-0).
  - Secrets: not played (podman 4.3 stores a played Secret in a form its own secretKeyRef then
    refuses); each becomes `podman secret create` of a JSON map key -> base64 value.
  - projected volumes (ConfigMaps, Secrets) and secret volumes (podman 4.3 mounts neither): one
    ConfigMap each, its keys the files' names (items' paths), mounted where the volume was.
  - emptyDir volumes: renamed <pod>-<volume> (podman 4.3 makes a named volume of each, shared by
    every pod using the same volume name).
  - containers' ports: dropped (podman 4.3 publishes every containerPort on the host's 0.0.0.0;
    Kubernetes publishes none); the probes' named ports are resolved from the manifest here.
  - $(VAR) in env values, command and args: expanded as the kubelet does (podman 4.3 leaves it).
"""

import base64
import copy
import http.client
import urllib.parse
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

import yaml

NOT_PLAYED = {"Namespace", "Service", "PodDisruptionBudget", "Secret", "ConfigMap"}


def fail(message):
    print(f"test-k8s-pods.py: {message}", file=sys.stderr)
    sys.exit(1)


# --- secrets ---------------------------------------------------------------------------------

def secret_values(doc):
    values = {k: base64.b64decode(v).decode() for k, v in (doc.get("data") or {}).items()}
    values.update(doc.get("stringData") or {})
    return values


# --- plan ------------------------------------------------------------------------------------

def labels_match(selector, labels):
    return all(labels.get(k) == v for k, v in (selector or {}).items())


def expand(text, known):
    """$(NAME) as the kubelet expands it: a defined NAME is replaced, $$ is a literal $, an
    undefined one stays as written."""
    def one(m):
        if m.group(0) == "$$":
            return "$"
        return known.get(m.group(1), m.group(0))
    return re.sub(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)", one, text)


class Planner:
    def __init__(self, rendered, secret_docs, out, subnet):
        self.docs = [d for d in rendered if d]
        self.secret_docs = [d for d in secret_docs if d and d.get("kind") == "Secret"]
        self.out = out
        self.net = ipaddress.ip_network(subnet)
        self.translated = []
        self.configmaps = {d["metadata"]["name"]: d for d in self.docs if d["kind"] == "ConfigMap"}
        self.services = [d for d in self.docs if d["kind"] == "Service"]
        self.secret_values = {d["metadata"]["name"]: secret_values(d) for d in self.secret_docs}
        self.expanded = set()
        self.projected = {}

    def note(self, text):
        if text not in self.translated:
            self.translated.append(text)

    def pods(self):
        """(pod name, podman pod name, kind, labels, the object to play, fixed hostname)."""
        out = []
        for d in self.docs:
            kind, name = d["kind"], d["metadata"]["name"]
            if kind == "StatefulSet":
                spec = d["spec"]
                for i in range(spec.get("replicas", 1)):
                    pod_name = f"{name}-{i}"
                    pod_spec = copy.deepcopy(spec["template"]["spec"])
                    pod_spec["hostname"] = pod_name
                    pod_spec["subdomain"] = spec["serviceName"]
                    labels = dict(spec["template"]["metadata"].get("labels", {}))
                    labels["statefulset.kubernetes.io/pod-name"] = pod_name
                    claims = []
                    for t in spec.get("volumeClaimTemplates", []):
                        claim = f"{t['metadata']['name']}-{pod_name}"
                        pod_spec.setdefault("volumes", []).append(
                            {"name": t["metadata"]["name"], "persistentVolumeClaim": {"claimName": claim}})
                        claims.append(claim)
                    pod = {"apiVersion": "v1", "kind": "Pod",
                           "metadata": {"name": pod_name, "namespace": d["metadata"].get("namespace"),
                                        "labels": labels},
                           "spec": pod_spec}
                    out.append((pod_name, pod_name, "StatefulSet", labels, pod, claims))
                claims_note = ""
                if spec.get("volumeClaimTemplates"):
                    claims_note = (f"; volumeClaimTemplates -> podman volumes <template>-{name}-<i>, "
                                   "made with the group and mode fsGroup gives (podman 4.3 ignores fsGroup)")
                self.note(f"StatefulSet {name} -> Pods {name}-0..{spec.get('replicas', 1) - 1} (hostname, "
                          f"subdomain {spec['serviceName']}){claims_note}")
            elif kind == "Deployment":
                if d["spec"].get("replicas", 1) != 1:
                    fail(f"Deployment {name} has {d['spec']['replicas']} replicas; podman 4.3 plays one")
                labels = dict(d["spec"]["template"]["metadata"].get("labels", {}))
                out.append((name, f"{name}-pod-0", "Deployment", labels, copy.deepcopy(d), []))
            elif kind == "Pod":
                out.append((name, name, "Pod", d["metadata"].get("labels", {}), copy.deepcopy(d), []))
            elif kind not in NOT_PLAYED:
                fail(f"{kind} {name}: podman 4.3 cannot play it and this test has no translation for it")
        # The servers (StatefulSets) first, as a user would wait for them; then the rest.
        return sorted(out, key=lambda p: p[2] != "StatefulSet")

    def build(self):
        pods = self.pods()
        hosts = list(self.net.hosts())
        ips = {p[0]: str(hosts[10 + i]) for i, p in enumerate(pods)}
        ports_of = {}  # pod -> {port name or number: number}
        for pod_name, _, _, _, obj, _ in pods:
            spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
            ports = {}
            for c in spec["containers"]:
                for p in c.get("ports", []):
                    ports[str(p["containerPort"])] = p["containerPort"]
                    if "name" in p:
                        ports[p["name"]] = p["containerPort"]
            ports_of[pod_name] = ports

        # Services -> host names: backends and port check.
        backends = {}
        for s in self.services:
            sname = s["metadata"]["name"]
            chosen = [p for p in pods if labels_match(s["spec"].get("selector"), p[3])]
            if not chosen:
                fail(f"Service {sname} selects no pod")
            for port in s["spec"]["ports"]:
                target = str(port.get("targetPort", port["port"]))
                for p in chosen:
                    number = ports_of[p[0]].get(target)
                    if number != port["port"]:
                        fail(f"Service {sname} port {port['port']} -> {target} ({number}) on {p[0]}: a host "
                             "name cannot translate a port that differs")
            backends[sname] = (s, [p[0] for p in chosen])
        self.note("Services -> hostAliases in every pod: each Service's name (short and "
                  "<name>.<namespace>.svc.cluster.local) -> one pod it selects, the pods naming it in their settings "
                  "spread round-robin; "
                  "<pod>.<headless service> -> that pod (not played: Namespace, Services, PodDisruptionBudget)")

        plan = {"network": str(self.net), "pods": [], "secrets": [], "services": {}}
        os.makedirs(f"{self.out}/pods", exist_ok=True)
        os.makedirs(f"{self.out}/secrets", exist_ok=True)
        turn = {}
        for index, (pod_name, podman_pod, kind, labels, obj, claims) in enumerate(pods):
            spec = obj["spec"] if obj["kind"] == "Pod" else obj["spec"]["template"]["spec"]
            namespace = obj["metadata"].get("namespace") or "default"
            # hostAliases. The pods that name a Service in their settings (env, the ConfigMaps
            # they take env from) take its backends in turn, so that rng, hasher and worker land
            # on different NATS servers and every message crosses a route; the others get the
            # first backend.
            settings = json.dumps([c.get("env", []) for c in spec["containers"]]) + json.dumps(
                [self.configmaps.get(r["configMapRef"]["name"], {}).get("data", {})
                 for c in spec["containers"] for r in c.get("envFrom", []) if "configMapRef" in r])
            aliases = {}
            for sname, (s, names) in backends.items():
                headless = s["spec"].get("clusterIP") == "None"
                if pod_name in names and not headless:
                    target = pod_name  # a pod reaching its own Service: itself
                elif re.search(rf"(//|@|\"){re.escape(sname)}[:/\"]", settings):
                    i = turn.get(sname, 0)
                    turn[sname] = i + 1
                    target = names[i % len(names)]
                else:
                    target = names[0]
                ip = ips[target]
                aliases.setdefault(ip, []).extend(
                    [sname, f"{sname}.{namespace}", f"{sname}.{namespace}.svc",
                     f"{sname}.{namespace}.svc.cluster.local"])
                plan["services"].setdefault(sname, {})[pod_name] = target
                if headless:
                    for member in names:
                        aliases.setdefault(ips[member], []).extend(
                            [f"{member}.{sname}", f"{member}.{sname}.{namespace}.svc.cluster.local"])
            spec["hostAliases"] = (spec.get("hostAliases") or []) + [
                {"ip": ip, "hostnames": names} for ip, names in sorted(aliases.items())]

            # volumes
            empty_dirs, configmap_volumes = [], []
            used_configmaps = set()
            renamed = {}
            for v in spec.get("volumes", []):
                if "emptyDir" in v:
                    new = f"{pod_name}-{v['name']}"
                    renamed[v["name"]] = new
                    v["name"] = new
                    empty_dirs.append(new)
                    self.note("emptyDir volumes -> named <pod>-<volume> (podman 4.3 shares one named "
                              "volume between pods using the same name)")
                elif "projected" in v or "secret" in v:
                    # Files from ConfigMaps and Secrets: one ConfigMap whose keys are the files'
                    # names, mounted where the volume was (podman 4.3 mounts neither projected nor
                    # secret volumes).
                    if "secret" in v:
                        sources = [{"secret": {"name": v["secret"]["secretName"],
                                               **({"items": v["secret"]["items"]} if "items" in v["secret"] else {})}}]
                    else:
                        sources = v["projected"]["sources"]
                    merged, whence = {}, []
                    for src in sources:
                        (what, ref), = src.items()
                        if what == "configMap":
                            data = self.configmaps[ref["name"]].get("data", {})
                        elif what == "secret":
                            data = self.secret_values.get(ref["name"])
                            if data is None:
                                fail(f"{pod_name}: volume {v['name']}: no Secret {ref['name']} was made")
                        else:
                            fail(f"{pod_name}: volume {v['name']}: a {what} source cannot be translated")
                        items = ref.get("items") or [{"key": k, "path": k} for k in data]
                        for item in items:
                            if "/" in item["path"]:
                                fail(f"{pod_name}: volume {v['name']}: path {item['path']} has a directory")
                            if item["path"] in merged:
                                fail(f"{pod_name}: volume {v['name']}: {item['path']} twice")
                            merged[item["path"]] = data[item["key"]]
                        whence.append(f"{what} {ref['name']}" + (f" ({len(ref['items'])} key(s))" if ref.get("items") else ""))
                    name = f"{pod_name}-{v['name']}-projected"
                    self.configmaps[name] = {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": name}, "data": merged}
                    kind_ = "projected" if "projected" in v else "secret"
                    v.pop("projected", None)
                    v.pop("secret", None)
                    v["configMap"] = {"name": name}
                    owner = obj["metadata"]["name"] if kind == "Deployment" else pod_name.rsplit("-", 1)[0]
                    self.projected.setdefault(f"{kind_} {v['name']}", set()).add(owner)
                if "configMap" in v:
                    used_configmaps.add(v["configMap"]["name"])
                    configmap_volumes.append(v["configMap"]["name"])
                unknown = set(v) - {"name", "emptyDir", "configMap", "persistentVolumeClaim"}
                if unknown:
                    fail(f"{pod_name}: volume {v['name']} is {unknown}: podman 4.3 cannot mount it")

            containers = []
            for c in spec.get("initContainers", []) + spec["containers"]:
                for m in c.get("volumeMounts", []):
                    m["name"] = renamed.get(m["name"], m["name"])
                # $(VAR) expansion, as the kubelet does it: from the variables defined before.
                known = {}
                for e in c.get("env", []):
                    source = e.get("valueFrom", {})
                    if "value" in e:
                        new = expand(e["value"], known)
                        if new != e["value"]:
                            self.expanded.add(f"{e['name']}={e['value']}")
                            e["value"] = new
                        known[e["name"]] = new
                    elif source.get("fieldRef", {}).get("fieldPath") == "metadata.name":
                        known[e["name"]] = podman_pod
                    elif "secretKeyRef" in source:
                        ref = source["secretKeyRef"]
                        value = self.secret_values.get(ref["name"], {}).get(ref["key"])
                        if value is not None:
                            known[e["name"]] = value
                    elif "configMapKeyRef" in source:
                        ref = source["configMapKeyRef"]
                        value = self.configmaps.get(ref["name"], {}).get("data", {}).get(ref["key"])
                        if value is not None:
                            known[e["name"]] = value
                for key in ("command", "args"):
                    if key in c:
                        new = [expand(a, known) for a in c[key]]
                        if new != c[key]:
                            self.expanded.add(f"{c['name']} {key}")
                            c[key] = new
                for e in c.get("env", []):
                    ref = e.get("valueFrom", {}).get("configMapKeyRef")
                    if ref:
                        used_configmaps.add(ref["name"])
                for ref in c.get("envFrom", []):
                    if "configMapRef" in ref:
                        used_configmaps.add(ref["configMapRef"]["name"])
                    if "secretRef" in ref:
                        fail(f"{pod_name}: envFrom secretRef: podman 4.3 cannot read it")
                ports = {}
                for p in c.get("ports", []):
                    ports[str(p["containerPort"])] = p["containerPort"]
                    if "name" in p:
                        ports[p["name"]] = p["containerPort"]
                if "ports" in c:
                    del c["ports"]
                    self.note("containers' ports dropped (podman 4.3 publishes each on the host's "
                              "0.0.0.0; the probes' named ports are resolved from the manifest)")
                probes = {}
                for kind_ in ("startupProbe", "readinessProbe", "livenessProbe"):
                    if kind_ in c:
                        probe = copy.deepcopy(c[kind_])
                        for handler in ("httpGet", "tcpSocket"):
                            if handler in probe:
                                port = str(probe[handler]["port"])
                                if port not in ports:
                                    fail(f"{pod_name}/{c['name']}: {kind_} names port {port}, which it does not declare")
                                probe[handler]["port"] = ports[port]
                        probes[kind_] = probe
                pre_stop = ((c.get("lifecycle") or {}).get("preStop") or {}).get("exec", {}).get("command")
                containers.append({"name": c["name"], "podman": f"{podman_pod}-{c['name']}",
                                   "image": c["image"], "probes": probes, "ports": ports,
                                   "preStop": pre_stop})

            # the file: the ConfigMaps it uses, then the pod
            missing = used_configmaps - set(self.configmaps)
            if missing:
                fail(f"{pod_name} uses ConfigMaps that are not rendered: {sorted(missing)}")
            docs = [self.configmaps[n] for n in sorted(used_configmaps)] + [obj]
            path = f"{self.out}/pods/{index:02d}-{pod_name}.yaml"
            # 0600: an expanded $(VAR) may hold a password, as the container's environment does.
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
                yaml.safe_dump_all(docs, f, sort_keys=False)
            sc = spec.get("securityContext") or {}
            plan["pods"].append({"name": pod_name, "podman": podman_pod, "kind": kind, "ip": ips[pod_name],
                                 "file": path, "claims": claims, "fsGroup": sc.get("fsGroup"),
                                 "emptyDirs": empty_dirs, "configMapVolumes": configmap_volumes,
                                 "containers": containers})

        if self.projected:
            self.note("projected and secret volumes -> one ConfigMap volume each, holding the same files "
                      "(names and contents; mode podman's 0644, not defaultMode; on disk until the test "
                      "removes it, not tmpfs), as podman 4.3 mounts neither: "
                      + "; ".join(f"{k} of {', '.join(sorted(v))}" for k, v in sorted(self.projected.items())))
        if self.expanded:
            self.note("$(VAR) references expanded as the kubelet does, from the variables defined before "
                      "(fieldRef, Secret and ConfigMap values included; podman 4.3 leaves them as written): "
                      + "; ".join(sorted(self.expanded)))
        # Secrets: the JSON map podman 4.3's secretKeyRef reads.
        if any(d["kind"] == "Secret" for d in self.docs):
            self.note("the rendered base still has Secret objects: not played; the user-made ones are used")
        for d in self.secret_docs:
            name = d["metadata"]["name"]
            values = secret_values(d)
            path = f"{self.out}/secrets/{name}.json"
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w", encoding="utf-8") as f:
                json.dump({k: base64.b64encode(v.encode()).decode() for k, v in values.items()}, f)
            plan["secrets"].append({"name": name, "file": path, "keys": sorted(values)})
            for k, v in values.items():  # for the checks that log in (InfluxDB's reader, ...)
                with open(os.open(f"{self.out}/secrets/{name}.{k}", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600),
                          "w", encoding="utf-8") as f:
                    f.write(v + "\n")
        self.note("Secrets -> `podman secret create` of a JSON map key -> base64 value (podman 4.3 "
                  "cannot read the Secret objects it plays itself)")
        plan["images"] = sorted({c["image"] for p in plan["pods"] for c in p["containers"]})
        plan["translated"] = self.translated
        with open(f"{self.out}/plan.json", "w", encoding="utf-8") as f:
            json.dump(plan, f, indent=1)
        for line in self.translated:
            print(line)


# --- probes ----------------------------------------------------------------------------------

def call_probe(probe, ip, container):
    """One call, as the kubelet makes it: (ok, what it got)."""
    timeout = probe.get("timeoutSeconds", 1)
    if "httpGet" in probe:
        h = probe["httpGet"]
        try:
            conn = http.client.HTTPConnection(ip, h["port"], timeout=timeout)
            conn.request("GET", h.get("path", "/"), headers={"User-Agent": "kube-probe/1.30", "Accept": "*/*"})
            status = conn.getresponse().status
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            return False, f"{type(e).__name__}: {e}"
        return 200 <= status < 400, f"HTTP {status}"
    if "tcpSocket" in probe:
        try:
            socket.create_connection((ip, probe["tcpSocket"]["port"]), timeout=timeout).close()
        except OSError as e:
            return False, str(e)
        return True, "connected"
    if "exec" in probe:
        try:
            done = subprocess.run(["podman", "exec", container, *probe["exec"]["command"]],
                                  capture_output=True, text=True, timeout=timeout + 5)
        except subprocess.TimeoutExpired:
            return False, "timed out"
        return done.returncode == 0, f"exit {done.returncode}"
    return False, f"unsupported probe {sorted(probe)}"


def describe(probe):
    if "httpGet" in probe:
        return f"GET :{probe['httpGet']['port']}{probe['httpGet'].get('path', '/')}"
    if "tcpSocket" in probe:
        return f"tcp :{probe['tcpSocket']['port']}"
    if "exec" in probe:
        return "exec " + " ".join(probe["exec"]["command"])
    return str(probe)


def probe_container(pod, c, deadline, results):
    """startupProbe first, every periodSeconds after initialDelaySeconds until it succeeds or
    fails failureThreshold times; only then readiness (until its first success: the pod turns
    Ready) and liveness (which must not fail failureThreshold times running). All bounded by
    `deadline` too."""
    started = time.monotonic()
    order = [k for k in ("startupProbe", "readinessProbe", "livenessProbe") if k in c["probes"]]
    for kind in order:
        probe = c["probes"][kind]
        period = probe.get("periodSeconds", 10)
        threshold = probe.get("failureThreshold", 3)
        if kind == "startupProbe":
            time.sleep(max(0, probe.get("initialDelaySeconds", 0) - (time.monotonic() - started)))
        failures, attempts = 0, 0
        while True:
            attempts += 1
            t0 = time.monotonic()
            ok, got = call_probe(probe, pod["ip"], c["podman"])
            ms = (time.monotonic() - t0) * 1000
            if ok:
                results.append((pod["name"], c["name"], kind, describe(probe), True,
                                f"{got} in {ms:.0f} ms, attempt {attempts}, {time.monotonic() - started:.0f} s after probing began"))
                break
            failures += 1
            give_up = (kind != "readinessProbe" and failures >= threshold) or time.monotonic() + period > deadline
            if give_up:
                results.append((pod["name"], c["name"], kind, describe(probe), False,
                                f"{got} (attempt {attempts}, {failures} failure(s), threshold {threshold})"))
                return
            time.sleep(period)


def probe_all(plan, seconds):
    deadline = time.monotonic() + seconds
    results, threads = [], []
    for pod in plan["pods"]:
        for c in pod["containers"]:
            t = threading.Thread(target=probe_container, args=(pod, c, deadline, results))
            t.start()
            threads.append(t)
    for t in threads:
        t.join()
    order = {"startupProbe": 0, "readinessProbe": 1, "livenessProbe": 2}
    results.sort(key=lambda r: (r[0], r[1], order[r[2]]))
    for pod, c, kind, what, ok, got in results:
        print(f"{'ok  ' if ok else 'FAIL'} {pod:<12} {c:<11} {kind:<15} {what:<22} {got}")
    expected = sum(len(c["probes"]) for p in plan["pods"] for c in p["containers"])
    bad = [r for r in results if not r[4]]
    if bad or len(results) != expected:
        fail(f"{len(bad)} probe(s) failed, {expected - len(results)} not run")
    print(f"all {expected} probes succeeded")


# --- NATS ------------------------------------------------------------------------------------

def routez(plan, seconds):
    nats = [p for p in plan["pods"] if any(c["name"] == "nats" for c in p["containers"])]
    names = {p["name"] for p in nats}
    deadline = time.monotonic() + seconds
    while True:
        missing, lines = [], []
        for p in nats:
            port = next(c for c in p["containers"] if c["name"] == "nats")["ports"]["monitor"]
            try:
                conn = http.client.HTTPConnection(p["ip"], port, timeout=2)
                conn.request("GET", "/routez")
                body = json.loads(conn.getresponse().read())
                conn.close()
            except (OSError, ValueError, http.client.HTTPException) as e:
                missing.append(f"{p['name']}: {e}")
                continue
            remotes = sorted({r.get("remote_name", "?") for r in body.get("routes", [])})
            want = sorted(names - {p["name"]})
            try:  # who is connected here: the Service `nats` spread the clients (hostAliases)
                conn = http.client.HTTPConnection(p["ip"], port, timeout=2)
                conn.request("GET", "/connz?auth=1")
                clients = sorted(c.get("authorized_user") or c.get("name") or "?"
                                 for c in json.loads(conn.getresponse().read()).get("connections", []))
                conn.close()
            except (OSError, ValueError, http.client.HTTPException) as e:
                clients = [f"/connz: {e}"]
            lines.append(f"{p['name']} ({p['ip']}): {body.get('num_routes')} routes to {', '.join(remotes)}; "
                         f"clients: {', '.join(clients) or 'none'}")
            if not set(want) <= set(remotes):
                missing.append(f"{p['name']} routes to {remotes}, not {want}")
        if not missing:
            print("\n".join(lines))
            return
        if time.monotonic() > deadline:
            fail("; ".join(missing))
        time.sleep(1)


# --- the recorder ----------------------------------------------------------------------------

STAGES = ("rng", "hasher", "worker")


def http_call(ip, port, method, path, user=None, password=None, body=None):
    """(status, the first 200 bytes of the body) of one request, basic auth when user is given."""
    headers = {}
    if user is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    if body is not None:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    conn = http.client.HTTPConnection(ip, port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()[:200].decode(errors="replace")
    finally:
        conn.close()


def password(secrets, secret, key):
    with open(f"{secrets}/{secret}.{key}", encoding="utf-8") as f:
        return f.read().removesuffix("\n")


def recorder_checks(plan, secrets):
    """The stages write through the recorder and nowhere else, with a password that opens
    nothing but the recorder's /write:

    - the played files: no stage's holds InfluxDB's writer password (its volumes and variables
      as played), each holds the stages' password; the recorder's holds both;
    - the running stages' environment: INFLUX_URL the recorder's Service, INFLUX_USER stages,
      INFLUX_PASSWORD_FILE the stages' password file;
    - the recorder: /ping 204; /write without credentials 401, as InfluxDB's writer 401 (it
      knows the stages' user only); /query (DROP SERIES) as the stages not taken.
    InfluxDB's refusal of the stages' password is test-containers.py's stages-cannot-drop."""
    pods = {p["name"]: p for p in plan["pods"]}
    for name in ("recorder", *STAGES):
        if name not in pods:
            fail(f"no pod {name} in the plan")
    writer = password(secrets, "chocominer-influx", "writer-password")
    stages = password(secrets, "chocominer-recorder", "stages-password")
    recorder = pods["recorder"]
    out = []

    for stage in STAGES:
        with open(pods[stage]["file"], encoding="utf-8") as f:
            played = f.read()
        if writer in played:
            fail(f"{stage}'s played pod holds InfluxDB's writer password")
        if stages not in played:
            fail(f"{stage}'s played pod does not hold the stages' password")
    with open(recorder["file"], encoding="utf-8") as f:
        played = f.read()
    if writer not in played or stages not in played:
        fail("the recorder's played pod does not hold both InfluxDB's writer password and the stages'")
    out.append("played files: no stage holds InfluxDB's writer password, each the stages'; "
               "the recorder both")

    for stage in STAGES:
        container = next(c for c in pods[stage]["containers"] if c["name"] == stage)["podman"]
        done = subprocess.run(["podman", "inspect", "--format", "{{range .Config.Env}}{{println .}}{{end}}",
                               container], capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            fail(f"podman inspect {container}: {done.stderr.strip()}")
        env = dict(line.split("=", 1) for line in done.stdout.splitlines() if "=" in line)
        want = {"INFLUX_URL": "http://recorder:8087", "INFLUX_USER": "stages",
                "INFLUX_PASSWORD_FILE": "/run/secrets/recorder-stages-password"}
        got = {k: env.get(k) for k in want}
        if got != want:
            fail(f"{container}'s environment: {got}, not {want}")
        if writer in done.stdout:
            fail(f"{container}'s environment holds InfluxDB's writer password")
    out.append("rng, hasher, worker run with INFLUX_URL=http://recorder:8087 INFLUX_USER=stages "
               "INFLUX_PASSWORD_FILE=/run/secrets/recorder-stages-password")

    port = next(c for c in recorder["containers"] if c["name"] == "recorder")["ports"]["http"]
    ip = recorder["ip"]
    status, body = http_call(ip, port, "GET", "/ping")
    if status != 204:
        fail(f"the recorder's /ping: HTTP {status} {body!r}, not 204")
    write = "/write?db=chocominer"
    status, body = http_call(ip, port, "POST", write, body="")
    if status != 401:
        fail(f"the recorder answered /write without credentials with HTTP {status} {body!r}, not 401")
    status_writer, body = http_call(ip, port, "POST", write, "writer", writer, body="")
    if status_writer != 401:
        fail(f"the recorder answered /write as InfluxDB's writer with HTTP {status_writer} {body!r}, not 401")
    drop = "/query?" + urllib.parse.urlencode({"db": "chocominer", "q": "DROP SERIES FROM worker"})
    status_drop, body = http_call(ip, port, "POST", drop, "stages", stages, body="")
    if status_drop < 400:
        fail(f"the recorder answered DROP SERIES as the stages with HTTP {status_drop} {body!r}")
    out.append(f"recorder {ip}:{port}: /ping 204; /write without credentials 401, as InfluxDB's "
               f"writer {status_writer}; /query DROP SERIES as the stages {status_drop}")

    print("\n".join(out))


def main(argv):
    if len(argv) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    cmd = argv[1]
    if cmd == "plan":
        with open(argv[2], encoding="utf-8") as f:
            rendered = list(yaml.safe_load_all(f))
        with open(argv[3], encoding="utf-8") as f:
            secret_docs = list(yaml.safe_load_all(f))
        Planner(rendered, secret_docs, argv[4], argv[5]).build()
    elif cmd in ("probes", "routez", "get", "recorder"):
        with open(argv[2], encoding="utf-8") as f:
            plan = json.load(f)
        if cmd == "probes":
            probe_all(plan, int(argv[3]))
        elif cmd == "routez":
            routez(plan, int(argv[3]))
        elif cmd == "recorder":
            recorder_checks(plan, argv[3])
        else:
            what, pod = argv[3], argv[4]
            print(next(p for p in plan["pods"] if p["name"] == pod)[what])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
