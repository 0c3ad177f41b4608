#!/usr/bin/env bash
# The whole test suite: unit tests, then integration tests as root in
# network namespaces with real clients (cnitool, the reference plugins).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" != 0 ]; then
    echo "test.sh: run as root (the integration tests create network namespaces)" >&2
    exit 1
fi
# headless Chromium opens the policy report; podman and containerd run pods
hack/deps.sh chromium @runtimes
cargo build --release --workspace --bins
hack/build-cnitool.sh target/cnitool >/dev/null
cargo test --release --workspace "$@"
