#!/usr/bin/env bash
# Installs kubemind: `kubemind preflight` for the overlay, then `kubectl apply -k` of the
# overlay with the image set through kustomize's `images:`.
#   apiservice/deploy.sh OVERLAY IMAGE [--dry-run]   (make deploy / make undeploy)
# OVERLAY: default, custom-only (beside KEDA), external-only (beside prometheus-adapter),
# prometheus, cert-manager, generated (after make certs), per-process (hostPID). --dry-run prints exactly what would be
# applied, and touches no cluster. KUBEMIND (the binary) and KUBECTL may be overridden.
set -euo pipefail
overlay=${1:?overlay}
image=${2:?image}
mode=${3:-apply}
kubemind=${KUBEMIND:-target/debug/kubemind}
kubectl=${KUBECTL:-kubectl}
case "$overlay" in
  default) directory=apiservice; preflight=default ;;
  custom-only|external-only) directory=apiservice/$overlay; preflight=$overlay ;;
  prometheus|cert-manager|generated|per-process) directory=apiservice/$overlay; preflight=default ;;
  *) echo "deploy: unknown overlay $overlay" >&2; exit 64 ;;
esac
[ -f "$directory/kustomization.yaml" ] || { echo "deploy: $directory/kustomization.yaml missing (make certs for generated)" >&2; exit 64; }
name=${image%:*}
tag=${image##*:}
[ "$name" != "$image" ] || { echo "deploy: IMAGE must be NAME:TAG" >&2; exit 64; }
work=target/deploy
rm -rf "$work" && mkdir -p "$work"
cat > "$work/kustomization.yaml" <<YAML
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
- ../../$directory
images:
- name: ghcr.io/kubemind/kubemind
  newName: $name
  newTag: "$tag"
YAML
case "$mode" in
  --dry-run) "$kubectl" kustomize "$work" ;;
  apply)
    "$kubemind" preflight --overlay "$preflight"
    "$kubectl" apply -k "$work" ;;
  delete) "$kubectl" delete --ignore-not-found -k "$work" ;;
  *) echo "deploy: unknown mode $mode" >&2; exit 64 ;;
esac
