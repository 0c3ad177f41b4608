#!/usr/bin/env bash
# Builds hack/cnitool against Debian's packaged libcni, offline.
# Output: target/cnitool (or $1).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-$here/../target/cnitool}
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")" # go build runs elsewhere
gopath=$(mktemp -d)
trap 'rm -rf "$gopath"' EXIT
mkdir -p "$gopath/src/weavice/cnitool"
cp "$here/cnitool/main.go" "$gopath/src/weavice/cnitool/"
cd "$gopath/src/weavice/cnitool"
GOPROXY=off GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode" GOCACHE="$gopath/cache" \
    go build -o "$out" .
echo "built $out"
