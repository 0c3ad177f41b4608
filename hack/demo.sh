#!/usr/bin/env bash
# weavice demo (root, Debian 12): builds weavice, installs what it needs,
# creates a test node and three pods in network namespaces through cnitool
# (a real libcni client), and shows connectivity, anti-spoofing, NAT, a
# security-function chain steering traffic through a firewall pod, the node
# journal of pods and flows recorded by the node daemon, CHECK/DEL, and
# NetworkPolicies and a flow graph generated from the journal.
# Everything happens inside namespaces it creates and removes.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root" >&2; exit 1; }
hack/deps.sh
echo "== build"
cargo build --release --workspace --bins -q
bin="$PWD/target/$(rustc -vV | sed -n 's/^host: //p')/release"
hack/build-cnitool.sh target/cnitool >/dev/null

tag="wvdemo$$"
node="$tag-node"; outside="$tag-out"; pods=("$tag-a" "$tag-b" "$tag-c")
work=$(mktemp -d)
daemon=""; server=""
cleanup() {
    for pid in $daemon $server; do kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true; done
    for p in "${pods[@]}"; do ip netns del "$p" 2>/dev/null || true; done
    ip netns del "$outside" 2>/dev/null || true
    ip netns del "$node" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
run() { echo "+ $*"; "$@"; }

echo "== a node namespace, an 'outside' host on 203.0.113.0/24, three pod namespaces"
ip netns add "$node"; ip -n "$node" link set lo up
ip netns add "$outside"; ip -n "$outside" link set lo up
ip -n "$node" link add uplink type veth peer name uplink netns "$outside"
ip -n "$node" addr add 203.0.113.1/24 dev uplink; ip -n "$node" link set uplink up
ip -n "$outside" addr add 203.0.113.2/24 dev uplink; ip -n "$outside" link set uplink up
for p in "${pods[@]}"; do ip netns add "$p"; done

mkdir -p "$work/net.d"
cat > "$work/net.d/10-podnet.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "podnet",
  "plugins": [{
    "type": "weavice",
    "stateDir": "$work/state",
    "logFile": "$work/weavice.log",
    "ipam": {"type": "weavice-ipam", "dataDir": "$work/ipam",
             "ranges": [[{"subnet": "10.22.0.0/24"}], [{"subnet": "fd22::/64"}]]}
  }]
}
JSON
echo "== conflist"; cat "$work/net.d/10-podnet.conflist"
cni() { ip netns exec "$node" env NETCONFPATH="$work/net.d" CNI_PATH="$bin:/usr/lib/cni" \
        CNI_CACHE_DIR="$work/cache" ${CNI_ARGS:+CNI_ARGS="$CNI_ARGS"} target/cnitool "$@"; }

echo "== cnitool add (one result per pod)"
# with the Kubernetes names a runtime passes (chains select pods by them)
names=(frontend-0 payments-0 fw-0)
for i in 0 1 2; do
    CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=shop;K8S_POD_NAME=${names[$i]}" \
        cni add podnet "/run/netns/${pods[$i]}" | tr -d '\n '; echo
done
ip4() { ip -n "$1" -o -4 addr show eth0 | awk '{print $4}' | cut -d/ -f1; }
agent() { ip netns exec "$node" "$bin/weavice-agent" "$@" --state-dir "$work/state"; }

echo "== the node daemon: weavice-agent run records the pods' flows into the node journal"
ip netns exec "$node" "$bin/weavice-agent" run --state-dir "$work/state" --log-file "$work/agent.log" 2>/dev/null &
daemon=$!
for _ in $(seq 50); do grep -q ready "$work/agent.log" 2>/dev/null && break; sleep 0.1; done
grep ready "$work/agent.log"
ip6() { ip -n "$1" -o -6 addr show eth0 scope global | awk '{print $4}' | cut -d/ -f1; }

echo "== pod a: addresses and routes (a /32 and /128, everything through the gateway)"
ip -n "${pods[0]}" -br addr show eth0; ip -n "${pods[0]}" route; ip -n "${pods[0]}" -6 route show default

echo "== connectivity: pod to pod crosses the node at L3 (ttl 63), v4 and v6"
run ip netns exec "${pods[0]}" ping -c1 -W1 "$(ip4 "${pods[1]}")" | grep ttl
run ip netns exec "${pods[0]}" ping -c1 -W1 "$(ip6 "${pods[2]}")" | grep ttl

echo "== pods meet only through the node: pod c forges an on-link entry for pod a, and gets nothing"
a4=$(ip4 "${pods[0]}"); amac=$(ip -n "${pods[0]}" -br link show eth0 | awk '{print $3}')
run ip -n "${pods[2]}" neigh replace "$a4" lladdr "$amac" dev eth0 nud permanent
run ip -n "${pods[2]}" route replace "$a4/32" dev eth0
ip netns exec "${pods[2]}" ping -c1 -W1 "$a4" >/dev/null && echo "reached at L2: unexpected" || echo "dropped at the bridge"
ip -n "${pods[2]}" route del "$a4/32" dev eth0; ip -n "${pods[2]}" neigh del "$a4" dev eth0

echo "== anti-spoofing: pod c takes pod a's address and pings the outside from it; the bridge drops it"
run ip -n "${pods[2]}" addr add "$a4/32" dev eth0
ip netns exec "${pods[2]}" ping -c1 -W1 -I "$a4" 203.0.113.2 >/dev/null && echo "spoof got out: unexpected" || echo "dropped (the counters: its ARP from the stolen address, or the packet)"
ip netns exec "$node" nft list chain bridge weavice antispoof | grep -E "(arp|ip) saddr ip|ip saddr"
ip -n "${pods[2]}" addr del "$a4/32" dev eth0

echo "== NAT: pod a pings the outside; conntrack shows the masquerade to the node's 203.0.113.1"
run ip netns exec "${pods[0]}" ping -c1 -W1 203.0.113.2 | grep ttl
ip netns exec "$node" conntrack -L -p icmp 2>/dev/null | grep 203.0.113.2 || true
echo "== the node's netfilter state: rules per network; per pod only set and map elements"
ip netns exec "$node" nft list table inet weavice
ip netns exec "$node" nft list table bridge weavice

echo "== a security-function chain: a firewall pod (c, shop/fw-0) inserted between running pods a and b"
# the function forwards what it gets back to its gateway, and counts it
ip netns exec "${pods[2]}" sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.send_redirects=0
printf 'table inet fw {\n chain forward {\n type filter hook forward priority 0;\n counter\n }\n}\n' > "$work/fw.nft"
ip netns exec "${pods[2]}" nft -f "$work/fw.nft"
b4=$(ip4 "${pods[1]}"); c4=$(ip4 "${pods[2]}")
fw_packets() { ip netns exec "${pods[2]}" nft list chain inet fw forward | grep -o 'packets [0-9]*'; }
echo "before: a to b straight through the node (ttl 63); the firewall forwarded: $(fw_packets)"
run ip netns exec "${pods[0]}" ping -c2 -W1 "$b4" | grep ttl
cat > "$work/chain.yaml" <<YAML
apiVersion: weavice.io/v1alpha1
kind: SecurityFunctionChain
metadata: {name: shop-guard}
spec:
  network: podnet
  from: {namespace: shop, pods: "frontend-*"}
  to:   {namespace: shop, pods: "payments-*"}
  functions:
    - {name: fw, mode: route, pod: {namespace: shop, name: fw-0}}
YAML
cat "$work/chain.yaml"
run agent chain apply -f "$work/chain.yaml"
run agent chain list
echo "with the chain: a to b through the firewall (ttl 61: two passes through the node), both ways"
run ip netns exec "${pods[0]}" ping -c2 -W1 "$b4" | grep ttl
echo "the firewall forwarded: $(fw_packets) (two requests, two replies)"
echo "the steering: one rule per chain, pods are set elements, the hop is an ip rule and a table"
# (awk reads to the end: with pipefail, a reader that stops early fails the pipe)
ip netns exec "$node" nft list chain inet weavice steer | awk '/ct mark set/ && n < 2 { print; n++ }'
ip netns exec "$node" nft list set inet weavice c1_from_v4 | grep elements
ip -n "$node" rule | awk '/^1000:/ && n < 2 { print; n++ }'
run agent chain delete shop-guard
echo "chain deleted: straight again (ttl 63); the firewall count stays"
run ip netns exec "${pods[0]}" ping -c2 -W1 "$b4" | grep ttl
echo "the firewall forwarded: $(fw_packets)"
sed 's/mode: route/mode: bounce/' "$work/chain.yaml" > "$work/bad.yaml"
echo "a bad spec is refused (exit 2) and changes nothing:"
agent chain apply -f "$work/bad.yaml" 2>&1 | head -3 || true

echo "== the node journal: pod b serves on 8080, also behind a Service address 10.96.0.10:80 (DNAT, as kube-proxy does)"
printf 'table ip svc {\n chain pre {\n type nat hook prerouting priority dstnat;\n ip daddr 10.96.0.10 tcp dport 80 dnat to %s:8080\n }\n}\n' "$b4" > "$work/svc.nft"
ip netns exec "$node" nft -f "$work/svc.nft"
ip netns exec "${pods[1]}" socat TCP-LISTEN:8080,fork,reuseaddr EXEC:"echo hello from payments-0" &
server=$!
sleep 0.3
run ip netns exec "${pods[0]}" socat - "TCP:$b4:8080"
run ip netns exec "${pods[0]}" socat - TCP:10.96.0.10:80
sleep 0.3
echo "every pod and flow, one line each (pods by name; a Service by what it was made to):"
run agent journal tail
echo "the Service flow as a record (JSON Lines, Hubble's field names):"
agent journal tail --output json | awk '/"via"/ && /"event":"end"/ { print; exit }'
echo "what each pod listens on, read with sock_diag inside its namespace (no nsenter, no netstat):"
run "$bin/weavice-agent" sockets --state-dir "$work/state"

echo "== cnitool check, then a route goes missing and CHECK says so"
run cni check podnet "/run/netns/${pods[0]}" && echo "check: ok"
ip -n "${pods[0]}" route del default
cni check podnet "/run/netns/${pods[0]}" || true

echo "== cnitool del for every pod; the node keeps only lo, uplink and the bridge"
for p in "${pods[@]}"; do cni del podnet "/run/netns/$p"; done
sleep 0.2
ip -n "$node" -br link
echo "== the daemon stops on SIGTERM: the journal ends with the pods' DEL records and the flows still open"
kill "$daemon"; wait "$daemon" || true; daemon=""
agent journal tail | tail -n 9
echo "== log ($work/weavice.log)"; tail -n 5 "$work/weavice.log"
echo "== NetworkPolicies from the journal (weavice-policy: no root, reads journal files)"
# what kubectl get pods,namespaces,...,services -A -o json would print for these pods
pod_json() { # name app ip
    printf '{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%s","namespace":"shop","labels":{"app":"%s","controller-revision-hash":"%s-7c6"},"ownerReferences":[{"kind":"StatefulSet","name":"%s","controller":true}]},"status":{"podIP":"%s"}},' "$1" "$2" "$2" "$2" "$3"
    printf '{"apiVersion":"apps/v1","kind":"StatefulSet","metadata":{"name":"%s","namespace":"shop"},"spec":{"selector":{"matchLabels":{"app":"%s"}}}},' "$2" "$2"
}
{
    printf '{"apiVersion":"v1","kind":"List","items":['
    printf '{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"shop","labels":{"kubernetes.io/metadata.name":"shop"}}},'
    pod_json frontend-0 frontend "$a4"; pod_json payments-0 payments "$b4"; pod_json fw-0 fw "$c4"
    printf '{"apiVersion":"v1","kind":"Service","metadata":{"name":"payments","namespace":"shop"},"spec":{"clusterIP":"10.96.0.10","ports":[{"port":80,"targetPort":8080}]}}]}\n'
} > "$work/cluster.json"
policy() { "$bin/weavice-policy" "$@"; }
run policy list --journal "$work/state/journal" --cluster "$work/cluster.json"
run policy generate --journal "$work/state/journal" --cluster "$work/cluster.json" --out "$work/policies"
ls "$work/policies"
run cat "$work/policies/shop.weavice-statefulset-payments.yaml"
echo "replayed against every recorded flow, the policies deny none (exit 0); explain one verdict that denies:"
run policy validate --journal "$work/state/journal" --cluster "$work/cluster.json" --policies "$work/policies"
run policy explain --policies "$work/policies" --cluster "$work/cluster.json" --from shop/payments-0 --to shop/frontend-0 --port 8080 || true
report="$PWD/target/weavice-demo-report.html"
run policy graph --journal "$work/state/journal" --cluster "$work/cluster.json" --out "$report"
echo "the HTML report (graph, connections, policies; opens offline): $report"
echo "demo: done"
