#!/usr/bin/env python3
"""Generation benchmark of weavice-policy: wall time and peak RSS from synthetic journals.

Usage: hack/policy-bench.py --bin PATH [--records N] [--small N] [--runs R] [--nodes K]
(hack/bench.sh --policy builds weavice-policy and runs this.)

Writes a journal of N flow records (default 1,000,000) with hack/synth-journal.py
into a temporary directory, runs `weavice-policy generate --journal DIR --cluster
DIR/cluster.json --out OUT` R times (default 5, a fresh OUT each time) under
`/usr/bin/time -f '%e %M'`, then once on a journal of --small records (default
100,000) to show that memory does not grow with records, and prints a markdown
table against the targets: under 5 s and under 256 MiB. The journals are
removed at the end. Runs read the journals from the page cache (just written).
"""

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

TARGET_S = 5.0
TARGET_MIB = 256.0
HERE = os.path.dirname(os.path.abspath(__file__))


def synth(out, records, nodes):
    subprocess.run([os.path.join(HERE, "synth-journal.py"), "--out", out, "--flows", str(records),
                    "--nodes", str(nodes)], check=True)
    size = 0
    for root, _dirs, files in os.walk(out):
        size += sum(os.path.getsize(os.path.join(root, f)) for f in files if f.endswith(".jsonl"))
    return size


def generate(binary, journal, work, i):
    """One timed run: (wall s, peak RSS KiB, policies written, digest of the files, stderr)."""
    out = os.path.join(work, "out-%d" % i)
    times = os.path.join(work, "time-%d" % i)
    p = subprocess.run(["/usr/bin/time", "-f", "%e %M", "-o", times, binary, "generate", "--journal", journal,
                        "--cluster", os.path.join(journal, "cluster.json"), "--out", out],
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        sys.exit("policy-bench: weavice-policy generate exited %d:\n%s" % (p.returncode, p.stderr))
    with open(times) as f:
        wall, rss = f.read().split()[-2:]
    names = sorted(os.listdir(out))
    digest = hashlib.sha256()
    for n in names:
        with open(os.path.join(out, n), "rb") as f:
            digest.update(n.encode() + b"\0" + f.read())
    shutil.rmtree(out)
    return float(wall), int(rss), len(names), digest.hexdigest(), p.stderr


def connections(binary, journal):
    p = subprocess.run([binary, "list", "--journal", journal, "--cluster", os.path.join(journal, "cluster.json"),
                        "--output", "json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=True)
    listed = json.loads(p.stdout)
    return len(listed), sum(1 for c in listed if c["flows"] == 0)


def p95(xs):
    """Nearest rank: of 5 runs, the slowest."""
    xs = sorted(xs)
    return xs[max(0, math.ceil(0.95 * len(xs)) - 1)]


def main():
    ap = argparse.ArgumentParser(description="weavice-policy generation benchmark")
    ap.add_argument("--bin", required=True, help="the weavice-policy binary")
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--small", type=int, default=100_000, help="flow records of the second journal (0: none)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--nodes", type=int, default=3)
    a = ap.parse_args()
    binary = os.path.abspath(a.bin)
    work = tempfile.mkdtemp(prefix="weavice-policy-bench-")
    try:
        rows, notes = [], []
        for records, runs in [(a.records, a.runs)] + ([(a.small, 1)] if a.small else []):
            journal = os.path.join(work, "journal-%d" % records)
            size = synth(journal, records, a.nodes)
            n_conn, n_zero = connections(binary, journal)
            walls, rsss, policies, digests = [], [], set(), set()
            for i in range(runs):
                wall, rss, n, digest, err = generate(binary, journal, work, i)
                walls.append(wall)
                rsss.append(rss)
                policies.add(n)
                digests.add(digest)
                for line in err.splitlines():
                    note = "{:,} records: {}".format(records, line)
                    if not line.startswith("weavice-policy: wrote ") and note not in notes:
                        notes.append(note)
                print("policy-bench: %d records, run %d: %.2f s, %.1f MiB" % (records, i + 1, wall, rss / 1024),
                      file=sys.stderr)
            rows.append((records, n_conn, n_zero, size, runs, walls, rsss, policies, digests))
            shutil.rmtree(journal)
        print()
        print("| records | connections | journal MiB | runs | wall median (s) | wall p95 (s) | peak RSS median (MiB) "
              "| policies written | target (< %g s, < %g MiB) |" % (TARGET_S, TARGET_MIB))
        print("|---|---|---|---|---|---|---|---|---|")
        for records, n_conn, _z, size, runs, walls, rsss, policies, _d in rows:
            wall_med, wall_p95, rss_med = statistics.median(walls), p95(walls), statistics.median(rsss) / 1024
            met = wall_p95 < TARGET_S and max(rsss) / 1024 < TARGET_MIB
            print("| {:,} | {:,} | {:.0f} | {} | {:.2f} | {:.2f} | {:.1f} | {} | {} |".format(
                records, n_conn, size / 2**20, runs, wall_med, wall_p95, rss_med,
                ", ".join(str(p) for p in sorted(policies)), "met" if met else "MISSED"))
        print()
        print("p95: nearest rank (of 5 runs, the slowest). Journals of %d nodes from hack/synth-journal.py, read "
              "from the page cache; %d cores." % (a.nodes, os.cpu_count()))
        for records, n_conn, n_zero, _s, runs, _w, _r, _p, digests in rows:
            same = "" if runs < 2 else "; the %d runs wrote %s" % (
                runs, "identical files" if len(digests) == 1 else "DIFFERENT files")
            print("{:,} records: {} of the {} listed connections have 0 flows{}.".format(records, n_zero, n_conn, same))
        if len(rows) == 2:
            big, small = rows[0], rows[1]
            print("Peak RSS: %.1f MiB at %s records, %.1f MiB at %s (x%.0f the records, x%.2f the memory)." % (
                statistics.median(small[6]) / 1024, "{:,}".format(small[0]),
                statistics.median(big[6]) / 1024, "{:,}".format(big[0]), big[0] / max(1, small[0]),
                statistics.median(big[6]) / max(1, statistics.median(small[6]))))
        for n in notes:
            print("stderr of generate, " + n)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
