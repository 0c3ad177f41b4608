#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests as root in
# network namespaces with real clients (cnitool, the reference plugins).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (the integration tests create network namespaces)" >&2
    exit 1
fi
hack/deps.sh chromium   # the policy report is opened in headless Chromium
cargo build --release --workspace --bins
hack/build-cnitool.sh target/cnitool >/dev/null
cargo test --release --workspace "$@"
