#!/usr/bin/env bash
# weavice in a kind cluster: creates the cluster (hack/kind/cluster.yaml, no
# default CNI), builds and loads the image, deploys deploy/weavice.yaml,
# checks pod-to-pod connectivity across nodes, applies a chain through a
# firewall pod, reads the flows back and generates policies. Needs Docker
# and the kind binary; where they are missing it says so and exits 0.
# Usage: hack/kind/run.sh [--keep]
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in docker kind kubectl; do
    if ! command -v "$tool" >/dev/null; then
        echo "kind: $tool is not installed here; nothing to do (install docker, kind and kubectl to run this)"
        exit 0
    fi
done
if ! docker info >/dev/null 2>&1; then
    echo "kind: the Docker daemon is not reachable; nothing to do"
    exit 0
fi
cluster=weavice
keep=${1:-}
cleanup() { [ "$keep" = --keep ] || kind delete cluster --name "$cluster" >/dev/null 2>&1 || true; }
trap cleanup EXIT

echo "== build the binaries and the image"
cargo build --release --bins -q
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
docker build -q -f deploy/Dockerfile -t weavice:latest "$bin"

echo "== a kind cluster without its default CNI"
kind create cluster --name "$cluster" --config hack/kind/cluster.yaml --wait 0s
kind load docker-image weavice:latest --name "$cluster"

echo "== weavice on every node"
kubectl apply -f deploy/weavice.yaml
kubectl -n kube-system rollout status daemonset/weavice --timeout 180s
kubectl wait --for=condition=Ready nodes --all --timeout 180s

echo "== pods on different nodes reach each other"
kubectl create namespace shop --dry-run=client -o yaml | kubectl apply -f -
kubectl -n shop create deployment api --image=registry.k8s.io/e2e-test-images/agnhost:2.52 --replicas=2 -- /agnhost netexec --http-port=8080
kubectl -n shop expose deployment api --port 80 --target-port 8080
kubectl -n shop create deployment frontend --image=registry.k8s.io/e2e-test-images/agnhost:2.52 -- /agnhost pause
kubectl -n shop rollout status deployment/api --timeout 180s
kubectl -n shop rollout status deployment/frontend --timeout 180s
kubectl -n shop get pods -o wide
frontend=$(kubectl -n shop get pod -l app=frontend -o jsonpath='{.items[0].metadata.name}')
fail() { echo "kind: $*" >&2; exit 1; }
reach() { kubectl -n shop exec "$frontend" -- /agnhost connect "$1" --timeout 5s || fail "frontend -> $1 failed"; echo "frontend -> $1 ok"; }
for ip in $(kubectl -n shop get pods -l app=api -o jsonpath='{.items[*].status.podIP}'); do
    reach "$ip:8080"
done
reach api.shop:80

echo "== a chain: frontend -> api:8080 through a firewall pod on the frontend's node"
# chains are per node: the function serves the pods of its own node
fnode=$(kubectl -n shop get pod "$frontend" -o jsonpath='{.spec.nodeName}')
agent=$(kubectl -n kube-system get pod -l app.kubernetes.io/name=weavice \
    --field-selector "spec.nodeName=$fnode" -o jsonpath='{.items[0].metadata.name}')
kubectl create namespace sec --dry-run=client -o yaml | kubectl apply -f -
kubectl -n sec apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: fw-0}
spec:
  nodeName: $fnode
  containers:
    - name: fw
      image: registry.k8s.io/e2e-test-images/busybox:1.36.1-1
      # a route function forwards and sends back to its gateway (docs/chains.md)
      command: [sh, -c, "sysctl -w net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1 net.ipv4.conf.all.send_redirects=0 && exec sleep 2147483647"]
      securityContext: {privileged: true}
EOF
# an API pod on that node too: a chain steers the pods of its own node
kubectl -n shop apply -f - <<EOF
apiVersion: v1
kind: Pod
metadata: {name: api-near, labels: {app: api}}
spec:
  nodeName: $fnode
  containers:
    - name: api
      image: registry.k8s.io/e2e-test-images/agnhost:2.52
      args: [netexec, --http-port=8080]
EOF
kubectl -n sec wait --for=condition=Ready pod/fw-0 --timeout 180s
kubectl -n shop wait --for=condition=Ready pod/api-near --timeout 180s
cat > target/kind-chain.yaml <<EOF
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: shop-guard}
spec:
  network: weavice
  from: {namespace: shop, pods: "frontend-*"}
  to: {namespace: shop, pods: "api-*"}
  ports: [{protocol: TCP, port: 8080}]
  functions:
    - {name: fw, mode: route, pod: {namespace: sec, name: fw-0}}
EOF
kubectl -n kube-system cp target/kind-chain.yaml "$agent:/tmp/kind-chain.yaml" -c agent
kubectl -n kube-system exec "$agent" -c agent -- weavice-agent chain apply -f /tmp/kind-chain.yaml
# the packets fw sent back, counted by the chain (docs/chains.md, chain list)
through_fw() {
    kubectl -n kube-system exec "$agent" -c agent -- weavice-agent chain list --output json |
        python3 -c 'import json, sys; print(sum(f["packets"] or 0 for c in json.load(sys.stdin) for f in c["functions"]))'
}
before=$(through_fw)
reach "$(kubectl -n shop get pod api-near -o jsonpath='{.status.podIP}'):8080"
after=$(through_fw)
[ "$after" -gt "$before" ] || fail "no packet went through fw ($before before, $after after)"
kubectl -n kube-system exec "$agent" -c agent -- weavice-agent chain list

echo "== the flows recorded, and policies generated from them"
mkdir -p target/kind-journals
for node in $(kind get nodes --name "$cluster"); do
    docker cp "$node:/var/lib/weavice/journal" "target/kind-journals/$node" >/dev/null
done
kubectl get pods,namespaces,deployments,replicasets,statefulsets,daemonsets,services -A -o json > target/kind-journals/cluster.json
"$bin/weavice-policy" list --journal target/kind-journals --cluster target/kind-journals/cluster.json --namespace shop
rm -rf target/kind-policies
"$bin/weavice-policy" generate --journal target/kind-journals --cluster target/kind-journals/cluster.json --namespace shop --out target/kind-policies
kubectl apply -f target/kind-policies
echo "kind: done (policies in target/kind-policies)"
