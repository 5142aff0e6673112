#!/bin/bash
# hack/build-kubelet.sh: a real kubelet (pinned), for `make kubelet-test`
# (test/integration/kubelet: kubelet standalone on berthd's CRI endpoint).
#
# Fetches k8s.io/kubernetes from the Go module proxy into a writable copy at
# _output/kubelet (its own module: not a dependency of berth). Its go.mod
# replaces every k8s.io/* staging module by ./staging/src/k8s.io/* and
# requires them at v0.0.0; the module zip has no staging/src/k8s.io/* (each
# has a go.mod of its own, so the zip leaves it out), so the replace
# directives are dropped and the requirements pinned to the published
# k8s.io/*@v0.<minor>.<patch> of the same release (STAGING_VERSION, default
# v0.36.3 for v1.36.3). Builds ./cmd/kubelet into _output/kubelet/bin/kubelet,
# statically (CGO_ENABLED=0: kubelet builds without cgo), with the version
# stamped as upstream's hack/lib/version.sh does. Idempotent: does nothing
# when the binary for that version is there. Prints its version at the end.
# Cold (empty module and build caches) about 4 minutes on the 2-core machine.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/local/go/bin:$PATH
MOD=k8s.io/kubernetes
VER=${KUBELET_VERSION:-v1.36.3}
# The staging modules are published as v0.<minor>.<patch> of the same release.
STAGING_VER=${STAGING_VERSION:-v0.${VER#v1.}}
DST=${KUBELET_DIR:-$ROOT/_output/kubelet}
BIN=$DST/bin

# The module zip has no vendor/ (upstream builds with -mod=vendor from a git
# checkout): -mod=mod against its go.sum, which gains the sums of the
# published staging modules. GONOSUMDB for the module itself (a v1.x of
# k8s.io/kubernetes is published for `go get` of the code, with a go.mod
# that is not meant to be built), as hack/conformance.sh does.
export GOFLAGS="-mod=mod -trimpath" GONOSUMDB="$MOD" GOTOOLCHAIN=local CGO_ENABLED=0 GO111MODULE=on

built() {
	[ -f "$DST/.built-$VER" ] && [ -x "$BIN/kubelet" ]
}

build_kubelet() {
	local start staging reqs m ldflags
	start=$(date +%s)
	"$ROOT/hack/fetch-module.sh" "$MOD@$VER" "$DST" || return 1
	mkdir -p "$BIN"
	(
		cd "$DST"
		# Every `k8s.io/X => ./staging/src/k8s.io/X` replace: drop it, and
		# require k8s.io/X at the published version where go.mod requires it
		# (at v0.0.0; a few staging modules are replaced but not required).
		# The module zip has no staging/src/k8s.io/*: each has its own go.mod,
		# so it is a module of its own, left out of k8s.io/kubernetes's zip.
		staging=$(go mod edit -print | sed -n 's|^[[:space:]]*\(k8s\.io/[^[:space:]]*\) => \./staging/src/\1$|\1|p')
		[ -n "$staging" ] || { echo "build-kubelet: no ./staging replace directives in go.mod" >&2; exit 1; }
		reqs=()
		n=0
		for m in $staging; do
			reqs+=(-dropreplace="$m")
			n=$((n + 1))
			if go mod edit -print | grep -qE "^[[:space:]]+${m//./\\.} v0\.0\.0([[:space:]]|$)"; then
				reqs+=(-require="$m@$STAGING_VER")
			fi
		done
		go mod edit "${reqs[@]}"
		# go.work (if any) would bring the staging directories back.
		rm -f go.work go.work.sum
		echo "build-kubelet: dropped $n ./staging replace directives for k8s.io/*@$STAGING_VER" >&2
	)
	ldflags="-s -w"
	for m in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
		ldflags+=" -X $m.gitVersion=$VER -X $m.gitTreeState=clean -X $m.gitMajor=1 -X $m.gitMinor=$(echo "$VER" | cut -d. -f2)"
	done
	echo "build-kubelet: building kubelet for $MOD@$VER in $DST" >&2
	(
		cd "$DST"
		go build -ldflags "$ldflags" -o "$BIN/kubelet" ./cmd/kubelet
	)
	touch "$DST/.built-$VER"
	echo "build-kubelet: built in $(($(date +%s) - start)) s" >&2
}

built || build_kubelet
echo "build-kubelet: $("$BIN/kubelet" --version)" >&2
