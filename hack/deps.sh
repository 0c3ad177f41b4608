#!/usr/bin/env bash
# Installs what weavice's build, demo and tests need, only when missing.
# Debian 12, as root. Safe to run again. Arguments: more packages (the tests add chromium).
set -euo pipefail
pkgs=(iproute2 nftables iptables iputils-ping conntrack socat golang-go golang-github-appc-cni-dev containernetworking-plugins "$@")
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null; then
    echo "deps: cargo (Rust toolchain) is required" >&2
    exit 1
fi
