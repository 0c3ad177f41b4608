#!/usr/bin/env bash
# Benchmark weavice against the reference plugins (root). Prints markdown tables.
# Usage: hack/bench.sh [--samples N] [--pods 1,100,250] [--hostport] [--backend B]
#        hack/bench.sh --chains [--samples N] [--seconds S]   (security-function chains, iperf3)
#        hack/bench.sh --flows [--seconds S]   (flow records: weavice-agent run under new connections, conntrack -E)
#        hack/bench.sh --runtimes [--samples N]   (podman run/rm and containerd's CRI pod calls, weavice
#            against bridge + host-local + portmap)
#        hack/bench.sh --policy [--records N] [--small N] [--runs R]   (weavice-policy generate from a synthetic
#            journal of 1,000,000 flow records, hack/synth-journal.py: wall time and peak RSS; no root needed)
set -euo pipefail
cd "$(dirname "$0")/.."
# --policy needs no root, nor the datapath's packages (hack/deps.sh): only weavice-policy is built
if [ "${1:-}" = "--policy" ]; then
    shift
    if [ ! -x /usr/bin/time ]; then
        echo "bench: installing time"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends time >/dev/null
    fi
    cargo build --release -p weavice-policy -q
    exec hack/policy-bench.py --bin "target/$(rustc -vV | sed -n 's/^host: //p')/release/weavice-policy" "$@"
fi
if [ "${1:-}" = "--runtimes" ]; then
    hack/deps.sh @runtimes
else
    hack/deps.sh
fi
cargo build --release --workspace --bins -q
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release"
if [ "${1:-}" = "--chains" ]; then
    shift
    if ! command -v iperf3 >/dev/null; then
        echo "bench: installing iperf3"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iperf3 >/dev/null
    fi
    exec "$bin/weavice-chain-bench" "$@"
fi
if [ "${1:-}" = "--runtimes" ]; then
    shift
    exec "$bin/weavice-runtime-bench" "$@"
fi
if [ "${1:-}" = "--flows" ]; then
    shift
    exec "$bin/weavice-flow-bench" "$@"
fi
hack/build-cnitool.sh target/cnitool >/dev/null
exec "$bin/weavice-bench" "$@"
