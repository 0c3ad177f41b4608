#!/usr/bin/env python3
"""A synthetic weavice cluster for weavice-policy: node journals and the cluster file.

Usage: hack/synth-journal.py --out DIR --flows N [--nodes K] [--seed S]

Writes DIR/node-<i>/journal.jsonl for each of K nodes (default 3) and
DIR/cluster.json, what `kubectl get pods,namespaces,deployments,replicasets,
statefulsets,daemonsets,services -A -o json` prints for the cluster. The same
arguments write the same files. Standard library only.

The cluster: 10 namespaces with workloads (kube-system and nine of apps; plus
default, kube-public and kube-node-lease), 100 Deployments of 2 or 3
dual-stack pods (10.(21+i).0.0/16 and fd(21+i):: on node-i), a ReplicaSet
each, a ClusterIP Service for every server, kube-dns at 10.96.0.10, the API
server behind 10.96.0.1:443. A pod record (add) for every pod before the first
flow; at 40% and at 70% of the hour, two or three pods per node are deleted
and replaced, the replacements taking the freed addresses of other
workloads' pods (the cluster file shows the cluster at the end: without the
deleted pods).

The flows: about 1000 fixed (client workload, server, protocol, port)
combinations: calls between workloads (most through their Service: `via`),
DNS to kube-dns (UDP, some TCP), Prometheus scraping every pod's :9090, calls
to the API server, TCP 443 and UDP 123 to 203.0.113.x (masqueraded); a few
direct calls over IPv6. Each connection has a `new` and an `end` record on
its client's node and, when its server is a pod on another node, a `new` and
an `end` record there too (that node's own conntrack entry: no `via`, only
its own pod named), as the daemons write them. Exactly N flow records in
all; connections start over one hour from 2026-11-28T10:00:00Z, and each
node's records are in time order.
"""

import argparse
import bisect
import hashlib
import heapq
import itertools
import json
import math
import os
import random
import sys
import time
from datetime import datetime, timedelta, timezone

DAY = datetime(2026, 11, 28, tzinfo=timezone.utc)
S = 1_000_000_000  # ns
MS = 1_000_000
START = 10 * 3600 * S  # ns since DAY: the first connection
SPAN = 3600 * S
PODS_FROM = START - 30 * 60 * S  # pod ADDs
CHURN = (0.4, 0.7)  # pod replacements, as a fraction of the span
CHURN_GAP = 5 * S  # deleted at +0..1 s, replacements added at +1..5 s

APP_NAMESPACES = ["shop", "payments", "catalog", "search", "identity", "analytics", "messaging", "media", "monitoring"]
EMPTY_NAMESPACES = ["default", "kube-public", "kube-node-lease"]

# name: kind of server. http: Service 80 -> 8080; the others as named.
ROLES = {
    "frontend": "http", "api": "http", "gateway": "http", "auth": "grpc", "users": "grpc", "orders": "grpc",
    "cart": "http", "checkout": "http", "inventory": "grpc", "pricing": "grpc", "recommender": "grpc",
    "search": "http", "indexer": "http", "ingest": "http", "worker": "http", "scheduler": "http",
    "notifier": "http", "mailer": "http", "webhooks": "http", "reports": "http", "exporter": "http",
    "ledger": "grpc", "billing": "grpc", "invoices": "http", "sessions": "redis", "cache": "redis",
    "queue": "amqp", "kafka-proxy": "kafka", "postgres": "pg", "mysql": "mysql", "memcached": "memcached",
    "thumbnailer": "http", "transcoder": "grpc", "uploader": "http", "origin": "http", "geo": "grpc",
    "fraud": "grpc", "tokens": "grpc", "profile": "http", "feed": "http", "ranker": "grpc", "events": "http",
    "audit": "http", "config": "grpc", "translator": "grpc", "coupons": "http",
}
# kind: (Service port, target port, protocol)
PORTS = {
    "http": (80, 8080, "TCP"), "grpc": (50051, 50051, "TCP"), "redis": (6379, 6379, "TCP"),
    "amqp": (5672, 5672, "TCP"), "kafka": (9092, 9092, "TCP"), "pg": (5432, 5432, "TCP"),
    "mysql": (3306, 3306, "TCP"), "memcached": (11211, 11211, "TCP"), "statsd": (8125, 8125, "UDP"),
    "prometheus": (9090, 9090, "TCP"),
}
NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # what Kubernetes names pods with
API_SERVER = ("10.0.0.10", 6443)  # the control plane, behind 10.96.0.1:443
KUBE_DNS = "10.96.0.10"


class Pod:
    __slots__ = ("ns", "name", "uid", "node", "v4", "v6", "ep", "w", "added", "deleted", "cid", "netns", "mac",
                 "veth")


class Workload:
    __slots__ = ("i", "ns", "name", "kind", "replicas", "hash", "uid", "rs_uid", "pods", "svc_ip", "svc_uid")


class Stamp:
    """Record times: RFC 3339 UTC, nine fractional digits."""

    def __init__(self):
        self.cache = {}

    def __call__(self, ns):
        sec, frac = divmod(ns, S)
        p = self.cache.get(sec)
        if p is None:
            p = (DAY + timedelta(seconds=sec)).strftime("%Y-%m-%dT%H:%M:%S.")
            self.cache[sec] = p
        return "%s%09dZ" % (p, frac)


def main():
    ap = argparse.ArgumentParser(description="Writes a synthetic weavice cluster: node journals and cluster.json.")
    ap.add_argument("--out", required=True, help="the directory to write (created; existing files replaced)")
    ap.add_argument("--flows", required=True, type=int, help="flow records in all, across the nodes")
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if a.flows < 0 or not 1 <= a.nodes <= 200:
        ap.error("--flows must be >= 0 and --nodes 1 to 200")
    began = time.monotonic()
    rng = random.Random(a.seed)
    stamp = Stamp()
    nodes = ["node-%d" % (i + 1) for i in range(a.nodes)]
    node_ip = {n: "10.0.0.%d" % (11 + i) for i, n in enumerate(nodes)}

    def uid():
        h = "%032x" % rng.getrandbits(128)
        return "%s-%s-4%s-%s%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) % 4], h[17:20], h[20:])

    def suffix(n):
        return "".join(rng.choice(NAME_CHARS) for _ in range(n))

    # addresses per node, handed out in order
    next_host = {n: 2 for n in nodes}

    def address(node):
        i, h = nodes.index(node), next_host[node]
        next_host[node] += 1
        return "10.%d.%d.%d" % (22 + i, h // 256, h % 256), "fd%d::%x" % (22 + i, h)

    # workloads
    workloads = []

    def workload(ns, name, kind, replicas):
        w = Workload()
        w.i, w.ns, w.name, w.kind, w.replicas = len(workloads), ns, name, kind, replicas
        w.hash, w.uid, w.rs_uid, w.pods, w.svc_ip, w.svc_uid = suffix(rng.choice((9, 10))), uid(), uid(), [], None, uid()
        workloads.append(w)
        return w

    coredns = workload("kube-system", "coredns", "dns", 2)
    workload("kube-system", "metrics-server", "http", 2)
    prometheus = workload("monitoring", "prometheus", "prometheus", 2)
    workload("monitoring", "statsd", "statsd", 2)
    per_ns = {ns: [] for ns in APP_NAMESPACES}
    per_ns["monitoring"] = ["prometheus", "statsd"]
    names = list(ROLES)
    left = 100 - len(workloads)
    k = 0
    while left > 0:
        ns = APP_NAMESPACES[k % len(APP_NAMESPACES)]
        k += 1
        name = rng.choice([n for n in names if n not in per_ns[ns]])
        per_ns[ns].append(name)
        workload(ns, name, ROLES[name], rng.choice((2, 2, 3)))
        left -= 1

    # pods, spread over the nodes
    pods = []
    seq = itertools.count()

    def new_pod(w, node, ips, added):
        p = Pod()
        p.ns, p.w, p.node, p.added, p.deleted = w.ns, w, node, added, None
        p.name = "%s-%s-%s" % (w.name, w.hash, suffix(5))
        p.uid = uid()
        p.v4, p.v6 = ips
        p.ep = '{"namespace":"%s","pod_name":"%s","uid":"%s"}' % (p.ns, p.name, p.uid)
        p.cid = "%064x" % rng.getrandbits(256)
        p.netns = "/var/run/netns/cni-" + uid()
        p.mac = "02:" + ":".join("%02x" % rng.getrandbits(8) for _ in range(5))
        p.veth = "wv" + hashlib.sha256(("podnet\0%s\0eth0" % p.cid).encode()).hexdigest()[:12]
        w.pods.append(p)
        pods.append(p)
        return p

    t = PODS_FROM
    for w in workloads:
        first = rng.randrange(len(nodes))
        for r in range(w.replicas):
            node = nodes[(first + r) % len(nodes)]
            t += rng.randint(300 * MS, 3 * S)
            new_pod(w, node, address(node), t)

    # churn: a few pods per node deleted, replaced by pods of their workloads
    # on the same node, each replacement on another deleted pod's address
    boundaries = []
    for frac in CHURN:
        at = START + int(SPAN * frac)
        boundaries += [at, at + CHURN_GAP]
        used = set()  # one pod per workload at a time: every workload keeps one serving
        for node in nodes:
            live = [p for p in pods if p.node == node and p.deleted is None and p.added < at]
            rng.shuffle(live)
            chosen, want = [], rng.choice((2, 3))
            for p in live:
                alive = [q for q in p.w.pods if q.deleted is None]
                if p.w.i not in used and len(alive) >= 2 and p.w is not coredns:
                    chosen.append(p)
                    used.add(p.w.i)
                if len(chosen) == want:
                    break
            freed = [(p.v4, p.v6) for p in chosen]
            freed = freed[1:] + freed[:1]
            for p, ips in zip(chosen, freed):
                p.deleted = at + rng.randint(0, S - 1)
                new_pod(p.w, node, ips, at + S + rng.randint(0, CHURN_GAP - S - 1))

    # which pods serve in each interval between boundaries
    edges = [START] + boundaries + [START + 10 * SPAN]
    live_in = []
    for lo, hi in zip(edges, edges[1:]):
        live_in.append([[p for p in w.pods if p.added <= lo and (p.deleted is None or p.deleted >= hi)]
                        for w in workloads])

    assert all(all(ws) for ws in live_in), "a workload without a serving pod"
    used_ips = {KUBE_DNS, "10.96.0.1"}
    coredns.svc_ip = KUBE_DNS
    for w in workloads:
        if w.svc_ip is None and w is not prometheus:
            while True:
                ip = "10.%d.%d.%d" % (rng.randint(96, 111), rng.randint(0, 255), rng.randint(1, 254))
                if ip not in used_ips:
                    break
            used_ips.add(ip)
            w.svc_ip = ip

    # the combinations: (client workload, server workload or None, outside ip or None,
    # protocol, target port, via (ip, port) or None, v6, weight)
    combos = []
    callers = [w for w in workloads if w.kind != "dns" and w is not prometheus]
    servers = [w for w in workloads if w.kind not in ("dns", "prometheus")]
    for c in callers:
        own = [s for s in servers if s.ns == c.ns and s is not c]
        other = [s for s in servers if s.ns != c.ns]
        picked = set()
        total = 0.0
        for _ in range(rng.randint(6, 10)):
            pool = own if own and rng.random() < 0.7 else other
            s = rng.choice(pool)
            if s.i in picked:
                continue
            picked.add(s.i)
            svc_port, target, proto = PORTS[s.kind]
            direct = rng.random() < 0.2
            v6 = direct and proto == "TCP" and rng.random() < 0.25
            via = None if direct else (s.svc_ip, svc_port)
            wgt = rng.lognormvariate(0, 1.2)
            total += wgt
            combos.append((c, s, None, proto, target, via, v6, wgt))
        # DNS before calls: UDP always, TCP for some
        combos.append((c, coredns, None, "UDP", 53, (KUBE_DNS, 53), False, 0.6 * total + 0.2))
        if rng.random() < 0.15:
            combos.append((c, coredns, None, "TCP", 53, (KUBE_DNS, 53), False, 0.02))
    for s in workloads:
        if s is not prometheus:
            combos.append((prometheus, s, None, "TCP", 9090, None, False, 0.15))
    combos.append((prometheus, coredns, None, "TCP", 9153, None, False, 0.15))
    # the API server, through the kubernetes Service
    for c in [prometheus, workloads[1]] + rng.sample(callers, 4):
        combos.append((c, None, API_SERVER[0], "TCP", API_SERVER[1], ("10.96.0.1", 443), False, 0.3))
    # the outside, masqueraded
    outside = ["203.0.113.%d" % rng.randint(1, 254) for _ in range(40)]
    for c in rng.sample(callers, 45):
        for ip in rng.sample(outside, rng.randint(1, 3)):
            combos.append((c, None, ip, "TCP", 443, None, False, rng.lognormvariate(-0.5, 1)))
    for c in rng.sample(callers, 6):
        combos.append((c, None, "203.0.113.123", "UDP", 123, None, False, 0.05))
    outside_combos = [i for i, c in enumerate(combos) if c[1] is None]

    cum = list(itertools.accumulate(c[7] for c in combos))
    # records per connection on average: 2, and 2 more when the server is a pod on another node
    per_conn = 0.0
    for (c, s, _o, _p, _t, _v, _6, wgt) in combos:
        cross = 0.0
        if s is not None:
            cross = sum(a.node != b.node for a in live_in[0][c.i] for b in live_in[0][s.i])
            cross /= len(live_in[0][c.i]) * len(live_in[0][s.i])
        per_conn += wgt * (2 + 2 * cross)
    per_conn /= cum[-1]
    mean_gap = SPAN / max(1.0, a.flows / per_conn)

    # the journals
    os.makedirs(a.out, exist_ok=True)
    files, bufs, heaps = {}, {}, {}
    for n in nodes:
        os.makedirs(os.path.join(a.out, n), exist_ok=True)
        for old in os.listdir(os.path.join(a.out, n)):
            if old.endswith(".jsonl"):
                os.remove(os.path.join(a.out, n, old))
        files[n] = open(os.path.join(a.out, n, "journal.jsonl"), "w", buffering=1 << 20)
        bufs[n] = []
        heaps[n] = []

    pod_line = ('{"v":1,"time":"%s","kind":"pod","event":"%s","node":"%s","network":"podnet","container_id":"%s",'
                '"ifname":"eth0","netns":"%s","pod":%s,"ips":["%s","%s"],"mac":"%s","host_veth":"%s"}\n')
    for p in pods:
        heapq.heappush(heaps[p.node], (p.added, next(seq), pod_line % (
            stamp(p.added), "add", p.node, p.cid, p.netns, p.ep, p.v4, p.v6, p.mac, p.veth)))
        if p.deleted is not None:
            heapq.heappush(heaps[p.node], (p.deleted, next(seq), pod_line % (
                stamp(p.deleted), "del", p.node, p.cid, p.netns, p.ep, p.v4, p.v6, p.mac, p.veth)))

    head = '{"v":1,"time":"%s","kind":"flow","event":"%s","node":"%s","conntrack_id":%d,'
    addrs = ('"IP":{"source":"%s","destination":"%s","ipVersion":"%s"},"l4":{"%s":{"source_port":%d,'
             '"destination_port":%d}},')
    tuples = ('"is_reply":false,"original":{"source":"%s","destination":"%s","source_port":%d,"destination_port":%d},'
              '"reply":{"source":"%s","destination":"%s","source_port":%d,"destination_port":%d}')
    end_tail = ',"first_seen":"%s","last_seen":"%s","packets":%d,"bytes":%d,"reply_packets":%d,"reply_bytes":%d'

    def records(node, t_new, t_first, t_end, cid, proto, src, dst, v, sport, dport, srcep, dstep, via, o_dst,
                o_dport, r_dst, r_dport, counters, closed):
        """The `new` and (unless t_end is None) `end` records of one conntrack entry, onto node's heap."""
        mid = addrs % (src, dst, v, proto, sport, dport)
        if srcep:
            mid += '"source":%s,' % srcep
        if dstep:
            mid += '"destination":%s,' % dstep
        if via:
            mid += '"via":{"ip":"%s","port":%d},' % via
        mid += tuples % (src, o_dst, sport, o_dport, dst, r_dst, dport, r_dport)
        h = heaps[node]
        tcp = proto == "TCP"
        line = head % (stamp(t_new), "new", node, cid) + mid + (',"tcp_state":"SYN_SENT"}\n' if tcp else "}\n")
        heapq.heappush(h, (t_new, next(seq), line))
        if t_end is None:
            return
        te = stamp(t_end)
        line = (head % (te, "end", node, cid) + mid + end_tail % ((stamp(t_first), te) + counters)
                + (',"tcp_state":"%s"}\n' % closed if tcp else "}\n"))
        heapq.heappush(h, (t_end, next(seq), line))

    def flush(upto):
        for n in nodes:
            h, b = heaps[n], bufs[n]
            while h and h[0][0] < upto:
                b.append(heapq.heappop(h)[2])
            if len(b) > 20000:
                files[n].write("".join(b))
                b.clear()

    written = 0
    conns = 0
    t = START
    randint, rand, choice = rng.randint, rng.random, rng.choice
    batch = []
    while written < a.flows:
        if not batch:
            batch = rng.choices(range(len(combos)), cum_weights=cum, k=10000)
            batch.reverse()
        ci = batch.pop()
        left = a.flows - written
        if left < 4:
            ci = choice(outside_combos)
        c, s, out_ip, proto, port, via, v6, _w = combos[ci]
        t += int(rng.expovariate(1.0) * mean_gap) + 1
        flush(t)
        interval = bisect.bisect_right(boundaries, t)
        cp = choice(live_in[interval][c.i])
        sport = randint(32768, 60999)
        cid = rng.getrandbits(32)
        t_new = t + randint(200_000, 8 * MS)
        if proto == "TCP":
            dur = min(int(rng.lognormvariate(math.log(25 * MS), 1.3)), 120 * S)
            t_end = t + dur + randint(50_000, 2 * MS)
            t_end = max(t_end, t_new + 1)
            pk, rpk = randint(5, 40), randint(4, 36)
            counters = (pk, pk * randint(60, 900), rpk, rpk * randint(60, 1400))
            closed = "TIME_WAIT" if rand() < 0.9 else "CLOSE"
        else:
            t_end = t + randint(1 * MS, 20 * MS) + 30 * S + randint(0, 900 * MS)
            counters = (1, randint(56, 90), 1, randint(90, 480))
            closed = None
        if left == 1:
            t_end = None  # still open when the journal was copied
        if s is None:
            # outside (masqueraded: the reply comes back to the node) or the API server (via the Service)
            dst = out_ip
            if via:
                records(cp.node, t_new, t, t_end, cid, proto, cp.v4, dst, "IPv4", sport, port, cp.ep, None, via,
                        via[0], via[1], cp.v4, sport, counters, closed)
            else:
                records(cp.node, t_new, t, t_end, cid, proto, cp.v4, dst, "IPv4", sport, port, cp.ep, None, None,
                        dst, port, node_ip[cp.node], sport, counters, closed)
            written += 2 if t_end is not None else 1
            conns += 1
            continue
        sp = choice(live_in[interval][s.i])
        src, dst, v = (cp.v6, sp.v6, "IPv6") if v6 else (cp.v4, sp.v4, "IPv4")
        same = sp.node == cp.node
        o_dst, o_dport = via if via else (dst, port)
        records(cp.node, t_new, t, t_end, cid, proto, src, dst, v, sport, port, cp.ep, sp.ep if same else None, via,
                o_dst, o_dport, src, sport, counters, closed)
        written += 2
        conns += 1
        if not same:
            # the server's node: its own conntrack entry, after the client's DNAT
            lat = randint(80_000, 400_000)
            records(sp.node, t_new + lat, t + lat, t_end + lat, rng.getrandbits(32), proto, src, dst, v, sport, port,
                    None, sp.ep, None, dst, port, src, sport, counters, closed)
            written += 2
    flush(1 << 62)
    size = 0
    for n in nodes:
        files[n].write("".join(bufs[n]))
        files[n].close()
        size += os.path.getsize(os.path.join(a.out, n, "journal.jsonl"))

    write_cluster(a.out, workloads, [p for p in pods if p.deleted is None], node_ip, stamp, uid, rng)
    deleted = sum(p.deleted is not None for p in pods)
    print("synth-journal: %d flow records (%d connections, %d combinations), %d pods (%d deleted and replaced), "
          "%d workloads, %d nodes, %.1f MiB, in %.1f s"
          % (written, conns, len(combos), len(pods), deleted, len(workloads), len(nodes), size / 2**20,
             time.monotonic() - began), file=sys.stderr)


def write_cluster(out, workloads, pods, node_ip, stamp, uid, rng):
    """DIR/cluster.json: the kubectl List, at the end of the journals (deleted pods gone)."""
    created = stamp(PODS_FROM - 3600 * S)[:19] + "Z"
    rv = itertools.count(1000)

    def meta(name, ns=None, **more):
        m = {"creationTimestamp": created, "name": name}
        if ns is not None:
            m["namespace"] = ns
        m["resourceVersion"] = str(next(rv))
        m["uid"] = uid()
        m.update(more)
        return m

    def owner(kind, name, u):
        return [{"apiVersion": "apps/v1", "blockOwnerDeletion": True, "controller": True, "kind": kind, "name": name,
                 "uid": u}]

    def ports_of(w):
        if w.kind == "dns":
            return [{"containerPort": 53, "name": "dns", "protocol": "UDP"},
                    {"containerPort": 53, "name": "dns-tcp", "protocol": "TCP"},
                    {"containerPort": 9153, "name": "metrics", "protocol": "TCP"}]
        _svc, target, proto = PORTS[w.kind]
        ps = [{"containerPort": target, "name": "main", "protocol": proto}]
        if target != 9090:
            ps.append({"containerPort": 9090, "name": "metrics", "protocol": "TCP"})
        return ps

    def template(w, labels):
        return {"metadata": {"creationTimestamp": None, "labels": labels},
                "spec": {"containers": [{"image": "registry.example.com/%s/%s:1.4.2" % (w.ns, w.name),
                                         "imagePullPolicy": "IfNotPresent", "name": w.name, "ports": ports_of(w),
                                         "resources": {}}],
                         "dnsPolicy": "ClusterFirst", "restartPolicy": "Always", "schedulerName": "default-scheduler",
                         "terminationGracePeriodSeconds": 30}}

    items = []
    for p in pods:
        w = p.w
        labels = {"app": w.name, "pod-template-hash": w.hash}
        rs = "%s-%s" % (w.name, w.hash)
        m = meta(p.name, p.ns, generateName=rs + "-", labels=labels, ownerReferences=owner("ReplicaSet", rs, w.rs_uid))
        m["uid"] = p.uid
        spec = template(w, labels)["spec"]
        spec["nodeName"] = p.node
        started = stamp(p.added)[:19] + "Z"
        items.append({"apiVersion": "v1", "kind": "Pod", "metadata": m, "spec": spec, "status": {
            "conditions": [{"lastProbeTime": None, "lastTransitionTime": started, "status": "True", "type": "Ready"}],
            "hostIP": node_ip[p.node], "hostIPs": [{"ip": node_ip[p.node]}], "phase": "Running",
            "podIP": p.v4, "podIPs": [{"ip": p.v4}, {"ip": p.v6}], "qosClass": "BestEffort", "startTime": started}})
    for ns in ["default", "kube-node-lease", "kube-public", "kube-system"] + APP_NAMESPACES:
        items.append({"apiVersion": "v1", "kind": "Namespace",
                      "metadata": meta(ns, labels={"kubernetes.io/metadata.name": ns}),
                      "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}})
    for w in workloads:
        m = meta(w.name, w.ns, annotations={"deployment.kubernetes.io/revision": "1"}, generation=1,
                 labels={"app": w.name})
        m["uid"] = w.uid
        items.append({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": m, "spec": {
            "progressDeadlineSeconds": 600, "replicas": w.replicas, "revisionHistoryLimit": 10,
            "selector": {"matchLabels": {"app": w.name}},
            "strategy": {"rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}, "type": "RollingUpdate"},
            "template": template(w, {"app": w.name})},
            "status": {"availableReplicas": w.replicas, "observedGeneration": 1, "readyReplicas": w.replicas,
                       "replicas": w.replicas, "updatedReplicas": w.replicas}})
    for w in workloads:
        labels = {"app": w.name, "pod-template-hash": w.hash}
        rs = "%s-%s" % (w.name, w.hash)
        m = meta(rs, w.ns, annotations={"deployment.kubernetes.io/desired-replicas": str(w.replicas),
                                        "deployment.kubernetes.io/max-replicas": str(w.replicas + 1),
                                        "deployment.kubernetes.io/revision": "1"},
                 generation=1, labels=labels, ownerReferences=owner("Deployment", w.name, w.uid))
        m["uid"] = w.rs_uid
        items.append({"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": m, "spec": {
            "replicas": w.replicas, "selector": {"matchLabels": labels}, "template": template(w, labels)},
            "status": {"availableReplicas": w.replicas, "fullyLabeledReplicas": w.replicas, "observedGeneration": 1,
                       "readyReplicas": w.replicas, "replicas": w.replicas}})

    def service(ns, name, ip, ports, selector):
        s = {"clusterIP": ip, "clusterIPs": [ip], "internalTrafficPolicy": "Cluster", "ipFamilies": ["IPv4"],
             "ipFamilyPolicy": "SingleStack", "ports": ports}
        if selector:
            s["selector"] = selector
        s.update({"sessionAffinity": "None", "type": "ClusterIP"})
        return {"apiVersion": "v1", "kind": "Service", "metadata": meta(name, ns, labels={"app": name} if selector
                                                                                 else {"component": "apiserver"}),
                "spec": s, "status": {"loadBalancer": {}}}

    items.append(service("default", "kubernetes", "10.96.0.1",
                         [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": API_SERVER[1]}], None))
    for w in workloads:
        if w.svc_ip is None:
            continue
        if w.kind == "dns":
            ports = [{"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
                     {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
                     {"name": "metrics", "port": 9153, "protocol": "TCP", "targetPort": 9153}]
            items.append(service("kube-system", "kube-dns", w.svc_ip, ports, {"app": w.name}))
            continue
        port, target, proto = PORTS[w.kind]
        ports = [{"name": w.kind, "port": port, "protocol": proto, "targetPort": target}]
        items.append(service(w.ns, w.name, w.svc_ip, ports, {"app": w.name}))
    with open(os.path.join(out, "cluster.json"), "w") as f:
        json.dump({"apiVersion": "v1", "items": items, "kind": "List", "metadata": {"resourceVersion": ""}}, f,
                  indent=4)
        f.write("\n")


if __name__ == "__main__":
    main()
