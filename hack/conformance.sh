#!/bin/bash
# hack/conformance.sh: the OCI distribution-spec conformance suite against
# berth's registry server (`make conformance`).
#
# Fetches github.com/opencontainers/distribution-spec/conformance (pinned
# version) from the Go module proxy, builds it with `go test -c` in a
# writable copy at _output/conformance (its own module: not a dependency of
# berth), starts `bin/berth registry serve` on a free loopback port with a
# temporary root under /var/tmp, runs the suite with OCI_REGISTRY,
# OCI_TLS=disabled and OCI_RESULTS_DIR (every OCI_API_* / OCI_DATA_* switch
# at its default: pull, push, content discovery and content management all
# on; export any OCI_* variable to change them, e.g. OCI_VERSION=dev), prints
# the summary, stops the server by its PID and removes the root.
#
# Results (results.yaml, report.html, junit.xml) are kept in
# ${CONFORMANCE_RESULTS:-_output/conformance-results}; the server's access
# log in server.log there.
# Exit status: 0 when the suite reports no FAIL (and no Error), 1 otherwise.
# `hack/conformance.sh --build-only` only fetches and builds the suite (the
# registry integration test calls it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PATH=/usr/local/go/bin:$PATH
MOD=github.com/opencontainers/distribution-spec/conformance
# The module has no release tags of its own on the proxy; this is the
# newest version it serves (spec v1.1 + the referrers/sha512 checks).
VER=${CONFORMANCE_VERSION:-v0.0.0-20260831232431-97274622c111}
DST=${CONFORMANCE_DIR:-$ROOT/_output/conformance}
RESULTS=${CONFORMANCE_RESULTS:-$ROOT/_output/conformance-results}
BERTH=${BERTH:-$ROOT/bin/berth}

build_suite() {
	if [ -x "$DST/conformance.test" ] && [ -f "$DST/.built-$VER" ]; then
		return 0
	fi
	GOFLAGS=-mod=mod GONOSUMDB="$MOD" GOTOOLCHAIN=local "$ROOT/hack/fetch-module.sh" "$MOD@$VER" "$DST" || return 1
	echo "conformance: building $MOD@$VER in $DST" >&2
	(cd "$DST" && GOFLAGS=-mod=mod GOTOOLCHAIN=local go test -c -o conformance.test .)
	touch "$DST/.built-$VER"
}

build_suite
[ "${1:-}" = --build-only ] && exit 0
[ -x "$BERTH" ] || { echo "conformance: $BERTH missing (make build)" >&2; exit 1; }

mkdir -p /var/tmp
tmp=$(mktemp -d /var/tmp/berth-conformance.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
		kill -TERM "$pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT

rm -rf "$RESULTS"
mkdir -p "$RESULTS"
"$BERTH" registry serve --addr 127.0.0.1:0 --root "$tmp/root" --gc-interval 0 2>"$RESULTS/server.log" &
pid=$!
addr=
for _ in $(seq 100); do
	addr=$(sed -n 's/.*msg="registry listening" addr=\([^ ]*\).*/\1/p' "$RESULTS/server.log" | head -1)
	[ -n "$addr" ] && break
	kill -0 "$pid" 2>/dev/null || { cat "$RESULTS/server.log" >&2; echo "conformance: the registry did not start" >&2; exit 1; }
	sleep 0.1
done
[ -n "$addr" ] || { echo "conformance: the registry did not say where it listens" >&2; exit 1; }
echo "conformance: berth registry (pid $pid) at $addr" >&2

rc=0
(cd "$tmp" && OCI_REGISTRY="$addr" OCI_TLS=disabled OCI_RESULTS_DIR="$RESULTS" \
	"$DST/conformance.test" >"$RESULTS/output.txt" 2>&1) || rc=$?

# The summary: the counts and every API and data type that did not pass.
sed -n '/^OCI Conformance Result/,/^  Total/p' "$RESULTS/output.txt"
sed -n '/^API conformance:/,$p' "$RESULTS/output.txt" | grep -E 'FAIL|Error|Unknown' || true
count() { sed -n "s/^  $1\.*: *\([0-9]*\)$/\1/p" "$RESULTS/output.txt" | head -1; }
pass=$(count Pass); fail=$(count FAIL); skip=$(count Skip); err=$(count Error); dis=$(count Disabled)
echo "conformance: ${pass:-?} passed, ${fail:-?} failed, ${skip:-?} skipped, ${dis:-?} disabled, ${err:-?} errors (details: $RESULTS)"
if [ "$rc" -ne 0 ] || [ "${fail:-1}" != 0 ] || [ "${err:-1}" != 0 ]; then
	grep -B2 -A8 -- '- FAIL\|FAIL:' "$RESULTS/output.txt" | head -80 >&2 || true
	exit 1
fi
