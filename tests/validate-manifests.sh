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
for overlay in "" cert-manager generated prometheus; do
  name=${overlay:-default}
  kubectl kustomize "$rendered/apiservice/$overlay" > "$rendered/$name.yaml"
done
grep -q 'caBundle: Q0FfQlVORExFX05PVF9TRVQ=' "$rendered/generated.yaml" && { echo "make certs did not set caBundle"; exit 1; }
for version in $versions; do
  "$venv/bin/kubernetes-validate" --strict --quiet --no-warn -k "$version" \
    "$rendered"/default.yaml "$rendered"/cert-manager.yaml "$rendered"/generated.yaml "$rendered"/prometheus.yaml \
    apiservice/examples/*.yaml
  echo "manifests valid for Kubernetes $version"
done
