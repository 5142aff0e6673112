#!/bin/bash
# hack/test.sh: the project's test command (README, .ci/run, `make test`).
#
# Installs missing dependencies, builds everything (kubelet too, for the kubelet test:
# hack/build-kubelet.sh), runs `go test -count=1
# ./...` as root and prints go test's output, then a summary whose last line is
#   N passed, N failed, N skipped
# counting every test function including subtests (see hack/testsummary).
# Exits non-zero on any build error, test failure, or cgroup left behind by
# the tests. Extra arguments go to `go test` (e.g. -run TestX).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH

if [ "$(id -u)" != 0 ]; then
	echo "test.sh: the tests need root" >&2
	exit 1
fi
hack/install-deps.sh || exit 1

mkdir -p _output
if ! go build -o _output/testsummary ./hack/testsummary; then
	echo "0 passed, 1 failed, 0 skipped"
	exit 1
fi

status=0
if ! make -s build; then
	echo "test.sh: make build failed" >&2
	status=1
fi

export BERTH_TEST_CGROUP_PARENT="berth-test-run-$$"

# The kubelet test (test/integration/kubelet) runs a real kubelet: built here, before
# the tests, so that its few minutes of compiling do not load the machine under them.
if hack/build-kubelet.sh >_output/build-kubelet.log 2>&1; then
	export BERTH_KUBELET="$ROOT/_output/kubelet/bin/kubelet"
else
	tail -n 30 _output/build-kubelet.log >&2
	echo "test.sh: hack/build-kubelet.sh failed: the kubelet test cannot run" >&2
	status=1
fi

# /tmp is slow for metadata-heavy work on our VMs (a bundle's 270 symlinks
# take ~300 ms there, ~5 ms in /var/tmp); give the tests their own TMPDIR.
TMPDIR=$(mktemp -d /var/tmp/berth-test.XXXXXX)
export TMPDIR
trap 'rm -rf "$TMPDIR"' EXIT

# go test's own -timeout is per test binary; the outer timeout bounds the run.
# (The summary's last line is held back and printed at the very end.)
timeout -k 30 28m go test -count=1 -json -timeout 25m "$@" ./... 2>&1 |
	_output/testsummary | tee _output/test.log | head -n -1
tstatus=${PIPESTATUS[1]}
summary=$(tail -n 1 _output/test.log)
[ "$tstatus" = 0 ] || status=1

# Containers made by test/bundle go to <our cgroup>/$BERTH_TEST_CGROUP_PARENT/<id>
# (see bundle.CgroupParent): a parent unique to this run, so that only our own
# cgroups are checked and removed. The runtimes remove <id>; anything else
# left there is a leak.
hack/remove-cgroup-parent.sh "$BERTH_TEST_CGROUP_PARENT" test.sh || status=1

if [ "$status" != 0 ] && [ "$tstatus" = 0 ]; then
	# The tests passed but the build or the cleanup check did not.
	set -- $summary
	summary="$1 passed, $(($3 + 1)) failed, $5 skipped"
fi
echo "$summary"
exit $status
