#!/usr/bin/env bash
# Renders every kustomization in apiservice/ with the real kubectl, and validates the result and
# the examples with kubernetes-validate (PyPI), strictly, for each Kubernetes version supported.
# Custom resources (cert-manager, ServiceMonitor) have no official schema and are not checked.
set -euo pipefail
versions=${KUBERNETES_VERSIONS:-1.33.0 1.34.0 1.35.0 1.36.0 1.37.0}
venv=target/manifest-venv
if [ ! -x "$venv/bin/kubernetes-validate" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'kubernetes-validate==1.37.*'
fi
rendered=target/manifests
rm -rf "$rendered" && mkdir -p "$rendered"
apiservice/certs.sh "$rendered/generated" >/dev/null
cp -r apiservice/. "$rendered/apiservice"
rm -rf "$rendered/apiservice/generated"
mv "$rendered/generated" "$rendered/apiservice/generated"
for overlay in "" cert-manager generated prometheus custom-only external-only per-process; do
  name=${overlay:-default}
  kubectl kustomize "$rendered/apiservice/$overlay" > "$rendered/$name.yaml"
done
grep -q 'caBundle: Q0FfQlVORExFX05PVF9TRVQ=' "$rendered/generated.yaml" && { echo "make certs did not set caBundle"; exit 1; }
# the coexistence overlays register only their half
apiservices() { grep -A4 '^kind: APIService' "$1" | sed -n 's/^  name: //p' | sort | tr '\n' ' '; }
[ "$(apiservices "$rendered/custom-only.yaml")" = "v1beta1.custom.metrics.k8s.io v1beta2.custom.metrics.k8s.io " ] \
  || { echo "custom-only registers: $(apiservices "$rendered/custom-only.yaml")"; exit 1; }
[ "$(apiservices "$rendered/external-only.yaml")" = "v1beta1.external.metrics.k8s.io " ] \
  || { echo "external-only registers: $(apiservices "$rendered/external-only.yaml")"; exit 1; }
# the per-process overlay shares the host's PID namespace and turns attribution on
grep -q 'hostPID: true' "$rendered/per-process.yaml" && grep -q -- '- --per-process' "$rendered/per-process.yaml" \
  || { echo "per-process overlay: no hostPID or --per-process"; exit 1; }
# the manifests name the image make deploy defaults to (the crate's version), and make deploy
# sets another everywhere
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
for image in $(grep -h 'image: ' apiservice/base/*.yaml | awk '{print $2}'); do
  [ "$image" = "ghcr.io/kubemind/kubemind:$version" ] || { echo "manifests name $image, not ghcr.io/kubemind/kubemind:$version"; exit 1; }
done
apiservice/deploy.sh external-only registry.example/kubemind:test --dry-run > "$rendered/deploy.yaml"
grep -q 'image: registry.example/kubemind:test' "$rendered/deploy.yaml" || { echo "deploy did not set the image"; exit 1; }
grep -q 'image: ghcr.io/kubemind' "$rendered/deploy.yaml" && { echo "deploy left the default image"; exit 1; }
for version in $versions; do
  "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" \
    "$rendered"/default.yaml "$rendered"/cert-manager.yaml "$rendered"/generated.yaml "$rendered"/prometheus.yaml \
    "$rendered"/custom-only.yaml "$rendered"/external-only.yaml "$rendered"/per-process.yaml \
    apiservice/examples/*.yaml
  echo "manifests valid for Kubernetes $version"
done
