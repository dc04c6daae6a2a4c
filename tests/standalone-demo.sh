#!/usr/bin/env bash
# Starts the standalone adapter on a free port with tests/data/standalone-values.yaml, reads it
# with kubectl as a user would, and stops it. What `make demo` runs until `kubemind demo` exists.
set -euo pipefail
bin=${KUBEMIND:-target/debug/kubemind}
values=${VALUES:-tests/data/standalone-values.yaml}
dir=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
"$bin" adapter --standalone --static-metrics "$values" --secure-port 0 \
  --kubeconfig-out "$dir/kubeconfig" 2>"$dir/adapter.log" &
pid=$!
for _ in $(seq 100); do [ -s "$dir/kubeconfig" ] && break; sleep 0.1; done
if [ ! -s "$dir/kubeconfig" ]; then cat "$dir/adapter.log"; exit 1; fi
server=$(grep 'server:' "$dir/kubeconfig" | awk '{print $2}')
echo "kubemind adapter (standalone) serving $values on $server"
echo
# one line per entry: discovery names, or object / labels, value and sample time
summary='
import json, sys
doc = json.load(sys.stdin)
kind = doc.get("kind")
print("  " + kind)
if kind == "APIResourceList":
    for r in doc["resources"]:
        print("    " + r["name"])
for item in doc.get("items", []):
    if "describedObject" in item:
        o = item["describedObject"]
        who = o.get("kind", "?") + " " + "/".join(x for x in (o.get("namespace"), o["name"]) if x)
    else:
        who = ",".join(k + "=" + v for k, v in sorted(item["metricLabels"].items())) or "(no labels)"
    print("    %-32s %10s   %s" % (who, item["value"], item["timestamp"]))
'
show() {
  echo "\$ kubectl get --raw '$1'"
  kubectl --kubeconfig "$dir/kubeconfig" get --raw "$1" | python3 -c "$summary" || true
  echo
}
show /apis/custom.metrics.k8s.io/v1beta2
show "/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/triton_queue_time_ms?labelSelector=app%3Dtriton"
show /apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/deployments.apps/triton/request_imbalance_ratio
show "/apis/external.metrics.k8s.io/v1beta1/namespaces/demo/kafka_consumergroup_lag?labelSelector=topic%3Dcv-jobs"
echo "\$ kubectl get --raw /apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/http_requests"
kubectl --kubeconfig "$dir/kubeconfig" get --raw '/apis/custom.metrics.k8s.io/v1beta2/namespaces/demo/pods/*/http_requests' 2>&1 | sed 's/^/  /' || true
echo
echo "Whole answers: add | python3 -m json.tool. Serve your own values:"
echo "  $bin adapter --standalone --static-metrics FILE \\"
echo "    --secure-port 6443 --kubeconfig-out ./kubeconfig"
