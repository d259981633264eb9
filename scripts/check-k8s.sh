#!/usr/bin/env bash
# Checks the Kubernetes files in k8s/ without a cluster (`just check-k8s`):
#
# 1. kustomize builds them: `kubectl kustomize` of k8s (the base) and of every overlay in
#    k8s/overlays/ (the base plus each component, and plus all of them); every component in
#    k8s/components/ must have its overlay, so none goes unbuilt.
# 2. Every document of every build is valid against the Kubernetes 1.30 API schemas:
#    `kubernetes-validate --strict` (unknown fields are errors too).
# 3. The rules of scripts/check-k8s-rules.py on every build (namespace, restricted pods,
#    variables, startup probes, scaling, Jobs, Secrets, NATS routes, governing Services, images,
#    the NATS version, monitoring, write-only: no stage holds InfluxDB's writer password), each
#    first shown to refuse a doctored build.
# 4. The policy scan: checkov on every build, each skipped check justified where it is skipped.
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

# Every optional component has an overlay of its own, so none goes unbuilt; `images` is not
# optional: k8s/ and every overlay include it, last.
for component in "$root"/k8s/components/*/; do
  name="$(basename "$component")"
  if [ "$name" = images ]; then
    for k in "$root"/k8s/kustomization.yaml "$root"/k8s/overlays/*/kustomization.yaml; do
      [ "$(grep -E '^  - .*components/[a-z-]+$' "$k" | tail -n 1 | sed 's#.*/##')" = images ] \
        || die "${k#"$root"/} does not include components/images last (its images would keep their default names)"
    done
    continue
  fi
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

# 3. The rules (scripts/check-k8s-rules.py says each, and proves each can fail), in the venv's
# Python (kubernetes-validate brings PyYAML).
args=()
for i in "${!builds[@]}"; do args+=("${builds[$i]}" "${files[$i]}"); done
"$venv/bin/python" "$root/scripts/check-k8s-rules.py" "$root" "${args[@]}"

# 4. The policy scan: checkov's Kubernetes checks on every build. A check that does not apply to
# one object is skipped on that object, with the reason, in its `checkov.io/skip<n>`
# annotation. Two are skipped for every object, for these reasons:
#   CKV_K8S_43 (image by digest): every image is pinned by version in k8s/components/images;
#     a digest is known only once a release is pushed, and belongs there (kustomize `digest:`)
#     in an overlay of your own, not in the template every release shares.
#   CKV_K8S_15 (imagePullPolicy Always): IfNotPresent is what lets `kind load docker-image` /
#     `minikube image load` of a local build work, and the tags never move once released.
checkov="$root/.tools/checkov/bin/checkov"
[ -x "$checkov" ] || die "checkov not found in .tools/checkov: run scripts/install-deps.sh --with-k8s"
scan=()
for file in "${files[@]}"; do scan+=(-f "$file"); done
"$checkov" --quiet --compact --skip-download --framework kubernetes \
  --skip-check CKV_K8S_43,CKV_K8S_15 "${scan[@]}" >"$out/checkov" 2>&1 \
  || { cat "$out/checkov" >&2; die "checkov found what the files should not do (above)"; }
say "checkov $("$checkov" --version): $(grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' "$out/checkov" | tail -n 1)"

say "all good: ${#builds[@]} builds"
