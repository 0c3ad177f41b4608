#!/usr/bin/env bash
# Installs what weavice's build, demo and tests need, only when missing.
# Debian 12, as root. Safe to run again. Arguments: more Debian packages (the
# tests add chromium), pip:NAME==VERSION for target/venv, or @runtimes: podman,
# containerd and what their tests and benchmark use (busybox-static images,
# the CRI client from PyPI: Debian has no crictl; a containerd already
# installed, such as Docker's, is used as it is).
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(iproute2 nftables iptables iputils-ping conntrack socat golang-go golang-github-appc-cni-dev containernetworking-plugins)
pips=()
for a in "$@"; do
    case "$a" in
        pip:*) pips+=("${a#pip:}") ;;
        @runtimes)
            pkgs+=(podman crun busybox-static)
            command -v containerd >/dev/null || pkgs+=(containerd)
            pips+=(container-runtime-interface-api==2.0.1)
            ;;
        *) pkgs+=("$a") ;;
    esac
done
((${#pips[@]})) && pkgs+=(python3 python3-venv)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    echo "deps: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    # --no-remove: never at the cost of what is installed (Docker's containerd.io)
    apt-get install -y -qq --no-install-recommends --no-remove "${missing[@]}" >/dev/null
fi
if ((${#pips[@]})); then
    venv=target/venv
    [ -x "$venv/bin/python" ] || /usr/bin/python3 -m venv "$venv"
    # does nothing when the pinned version is there
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pips[@]}"
fi
if ! command -v cargo >/dev/null; then
    echo "deps: cargo (Rust toolchain) is required" >&2
    exit 1
fi
