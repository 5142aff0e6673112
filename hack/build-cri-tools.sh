#!/bin/bash
# hack/build-cri-tools.sh: crictl and critest from cri-tools (pinned), for the
# CRI endpoint of berthd (docs/cri-notes.md).
#
# Fetches sigs.k8s.io/cri-tools (its canonical module path; the proxy also
# serves v1.36.0 as github.com/kubernetes-sigs/cri-tools, but that zip's
# go.mod still says sigs.k8s.io/cri-tools) from the Go module proxy into a
# writable copy at _output/cri-tools (its own module: not a dependency of
# berth) and builds, into _output/cri-tools/bin:
#   crictl   go build ./cmd/crictl
#   critest  go test -c ./cmd/critest (the validation and benchmark suite)
#   ginkgo   the ginkgo CLI of the version cri-tools pins: `critest
#            -parallel N` (N > 1) runs it from PATH
# each with pkg/version.Version set as cri-tools' Makefile does, statically
# (CGO_ENABLED=0, as upstream builds them). Idempotent: does nothing when the
# binaries for that version are there. Prints their versions at the end.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/local/go/bin:$PATH
MOD=sigs.k8s.io/cri-tools
# The proxy serves v1.34.0 and v1.36.0 only (v1.35.x and older are refused).
VER=${CRI_TOOLS_VERSION:-v1.36.0}
DST=${CRI_TOOLS_DIR:-$ROOT/_output/cri-tools}
BIN=$DST/bin

# The module zip has no vendor/ (upstream's Makefile builds with
# -mod=vendor when it has one), so -mod=mod against its go.sum. GONOSUMDB
# for the module itself, as hack/conformance.sh does.
export GOFLAGS="-mod=mod -trimpath" GONOSUMDB="$MOD" GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=on

built() {
	[ -f "$DST/.built-$VER" ] && [ -x "$BIN/crictl" ] && [ -x "$BIN/critest" ] && [ -x "$BIN/ginkgo" ]
}

build_tools() {
	local ldflags
	"$ROOT/hack/fetch-module.sh" "$MOD@$VER" "$DST" || return 1
	mkdir -p "$BIN"
	ldflags="-X $MOD/pkg/version.Version=${VER#v}"
	echo "build-cri-tools: building crictl, critest and ginkgo for $MOD@$VER in $DST" >&2
	(
		cd "$DST"
		go build -ldflags "$ldflags" -o "$BIN/crictl" ./cmd/crictl
		go test -c -ldflags "$ldflags" -o "$BIN/critest" ./cmd/critest
		go build -o "$BIN/ginkgo" github.com/onsi/ginkgo/v2/ginkgo
	)
	touch "$DST/.built-$VER"
}

built || build_tools
echo "build-cri-tools: $("$BIN/crictl" --version)" >&2
echo "build-cri-tools: $("$BIN/critest" -version 2>&1 | sed -n 's/^critest version: /critest version /p')" >&2
echo "build-cri-tools: ginkgo $("$BIN/ginkgo" version 2>&1 | sed 's/^Ginkgo Version //')" >&2
