#!/usr/bin/env bash
# Benchmark weavice against the reference plugins (root). Prints markdown tables.
# Usage: hack/bench.sh [--samples N] [--pods 1,100,250]
set -euo pipefail
cd "$(dirname "$0")/.."
hack/deps.sh
cargo build --release --workspace --bins -q
hack/build-cnitool.sh target/cnitool >/dev/null
exec "target/$(rustc -vV | sed -n 's/^host: //p')/release/weavice-bench" "$@"
