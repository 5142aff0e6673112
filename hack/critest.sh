#!/bin/bash
# hack/critest.sh [CRITEST-FLAG...]: `make critest`, the CRI validation suite
# (critest of cri-tools v1.36.0) against berthd, offline.
#
# Installs missing dependencies, builds bin/ (make build) and cri-tools
# (hack/build-cri-tools.sh), then, in a sandbox of its own (hack/sandbox.sh: a
# private mount namespace and a cgroup namespace rooted at a new cgroup under ours;
# plus new network, IPC and UTS namespaces with only lo, up, so that nothing
# touches the host's network, its System V IPC or its hostname):
#   1. runs `bin/berth registry serve` on 127.0.0.1:$CRITEST_REGISTRY_PORT (5000),
#   2. writes a CNI network (bridge cni0 on 10.88.0.0/16 with host-local IPAM and
#      portmap; Debian's plugins in /usr/lib/cni),
#   3. starts a berthd with its own data root, exec root, socket and daemon.json in a
#      temporary directory, its containers' cgroups under the sandbox's, the CNI
#      network for its pods and mirrors for registry.k8s.io, k8s.gcr.io and gcr.io
#      on the loopback registry ("registry-hosts": pulling registry.k8s.io/pause:3.9
#      fetches the registry's repository registry.k8s.io/pause),
#   4. builds the stand-ins of critest's images and pushes them there under their
#      original paths (hack/critest-images/build.sh),
#   5. runs critest on berthd's CRI socket, skipping only "public image with
#      digest" (its digest cannot be rebuilt), with the given flags added (e.g.
#      -ginkgo.focus=Streaming); critest's own temporary files go to the work
#      directory (TMPDIR), its output to _output/critest/critest.log (and a JSON
#      report, spec by spec, to critest.json),
#   6. prints the summary and cleans up: the CRI's pods and containers, berthd, the
#      registry, mounts left behind (critest leaves its test*/mnt binds when a
#      propagation spec fails), the cgroups, the temporary directory; the network
#      namespace, and the nftables tables and bridges in it, end with the sandbox.
# berthd's and the registry's logs are kept in _output/critest/.
#
# Environment: CRITEST_REGISTRY_PORT (5000; the port is the sandbox's, never the host's).
# Exit status: critest's (non-zero if any spec failed), or 1 if the set-up failed.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH
OUT=$ROOT/_output/critest

if [ "${1:-}" != --inner ]; then
	if [ "$(id -u)" != 0 ]; then
		echo "critest: run as root" >&2
		exit 1
	fi
	hack/install-deps.sh || exit 1
	make -s build || exit 1
	hack/build-cri-tools.sh || exit 1
	# The one file the image stand-ins need from the network (Debian's busybox .deb),
	# fetched before the private network namespace.
	hack/critest-images/build.sh --fetch || exit 1
	mkdir -p "$OUT"
	work=$(mktemp -d /var/tmp/berth-critest.XXXXXX)
	trap 'rm -rf "$work"' EXIT
	# slave: the sandbox receives the host's mounts but sends none back; inside, / is made
	# shared again so that the propagation specs see rshared binds propagate.
	SANDBOX_PROPAGATION=slave hack/sandbox.sh critest \
		unshare --net --ipc --uts -- "$ROOT/hack/critest.sh" --inner "$work" "$@"
	exit $?
fi

# Inside the sandbox and the new namespaces.
shift
work=$1
shift
set -e
mount --make-rshared /
ip link set lo up

PORT=${CRITEST_REGISTRY_PORT:-5000}
REG=127.0.0.1:$PORT
SOCK=$work/berth.sock
CRI=unix://$work/exec/cri.sock
CGROUP_PARENT=berth-critest
CRICTL=(_output/cri-tools/bin/crictl -r "$CRI" -i "$CRI" --timeout 60s)
export BERTH_HOST=unix://$SOCK
export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=$work/cli
mkdir -p "$work/registry" "$work/cni" "$work/cni-ipam" "$work/tmp" "$OUT"

berthd_pid= registry_pid=
cleanup() {
	local status=$? ids mp left=0
	set +e
	trap - EXIT INT TERM
	if [ -n "$berthd_pid" ]; then
		# Pods and containers first: they outlive a stopped berthd.
		"${CRICTL[@]}" rmp -fa >/dev/null 2>&1
		"${CRICTL[@]}" rm -fa >/dev/null 2>&1
		for ns in "" k8s; do
			ids=$(bin/berth --namespace="$ns" ps -aq 2>/dev/null)
			if [ -n "$ids" ]; then
				echo "critest: LEFTOVER containers (namespace '$ns'):" $ids >&2
				bin/berth --namespace="$ns" rm -f -v $ids >/dev/null 2>&1
				left=1
			fi
		done
		kill "$berthd_pid" 2>/dev/null
		for _ in $(seq 300); do kill -0 "$berthd_pid" 2>/dev/null || break; sleep 0.1; done
		if kill -0 "$berthd_pid" 2>/dev/null; then
			echo "critest: berthd did not stop within 30 s of SIGTERM" >&2
			kill -9 "$berthd_pid" 2>/dev/null
			left=1
		fi
		wait "$berthd_pid" 2>/dev/null
	fi
	if [ -n "$registry_pid" ]; then
		kill "$registry_pid" 2>/dev/null
		wait "$registry_pid" 2>/dev/null
	fi
	cp "$work/berthd.log" "$work/registry.log" "$OUT/" 2>/dev/null
	# Mounts left under the work directory, deepest first: critest's test*/mnt binds
	# (its TMPDIR is $work/tmp) when a propagation spec failed, or a container's.
	while read -r mp; do
		case "$mp" in
		"$work/tmp/test"*/mnt*) ;; # critest's own, not berthd's
		*) echo "critest: LEFTOVER mount $mp" >&2; left=1 ;;
		esac
		umount -l "$mp" 2>/dev/null
	done < <(awk -v w="$work/" 'index($5, w) == 1 { print $5 }' /proc/self/mountinfo | sort -r)
	# berthd's cgroup parent: the runtime removes each container's cgroup, not the parent.
	hack/remove-cgroup-parent.sh "$CGROUP_PARENT" critest || left=1
	if [ "$status" = 0 ] && [ "$left" = 1 ]; then status=1; fi
	exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "+ berth registry serve --addr $REG --root $work/registry"
bin/berth registry serve --addr "$REG" --root "$work/registry" --gc-interval 0 >"$work/registry.log" 2>&1 &
registry_pid=$!

# The pods' network: the first configuration file in cni-conf-dir.
cat >"$work/cni/10-berth-critest.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "berth-critest",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": "10.88.0.0/16"}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": "$work/cni-ipam"
      }
    },
    {
      "type": "portmap",
      "capabilities": {"portMappings": true}
    }
  ]
}
EOF

cat >"$work/daemon.json" <<EOF
{
  "cgroup-parent": "$CGROUP_PARENT",
  "registry-hosts": {
    "registry.k8s.io": ["http://$REG/v2/registry.k8s.io"],
    "k8s.gcr.io": ["http://$REG/v2/k8s.gcr.io"],
    "gcr.io": ["http://$REG/v2/gcr.io"]
  },
  "cni-conf-dir": "$work/cni",
  "cni-bin-dirs": ["/usr/lib/cni"]
}
EOF
echo "+ berthd --data-root $work/data --exec-root $work/exec -H $BERTH_HOST --config-file $work/daemon.json"
bin/berthd --debug --data-root "$work/data" --exec-root "$work/exec" -H "$BERTH_HOST" \
	--config-file "$work/daemon.json" >"$work/berthd.log" 2>&1 &
berthd_pid=$!
for _ in $(seq 300); do
	bin/berth version >/dev/null 2>&1 && [ -S "$work/exec/cri.sock" ] && break
	if ! kill -0 "$berthd_pid" 2>/dev/null; then
		tail -n 30 "$work/berthd.log" >&2
		echo "critest: berthd exited at start" >&2
		exit 1
	fi
	sleep 0.1
done
bin/berth version --format 'berthd {{.Server.Version}} (API {{.Server.APIVersion}})'
for _ in $(seq 100); do
	curl -fsS -o /dev/null "http://$REG/v2/" 2>/dev/null && break
	sleep 0.1
done

echo "+ hack/critest-images/build.sh $REG"
start=$SECONDS
hack/critest-images/build.sh "$REG"
echo "critest: stand-ins built and pushed in $((SECONDS - start)) s"

echo "+ critest -runtime-endpoint $CRI -ginkgo.skip='public image with digest' $*"
set +e
TMPDIR=$work/tmp _output/cri-tools/bin/critest -runtime-endpoint "$CRI" -image-endpoint "$CRI" \
	-ginkgo.skip='public image with digest' -ginkgo.no-color -ginkgo.json-report="$OUT/critest.json" \
	"$@" 2>&1 | tee "$OUT/critest.log"
status=${PIPESTATUS[0]}
set -e
echo
echo "critest: summary (log: _output/critest/critest.log; berthd's: _output/critest/berthd.log)"
sed -n '/^Summarizing [0-9]* Failure/,$p' "$OUT/critest.log" | grep -E '^\s*\[(FAIL|PANICKED|TIMEDOUT|INTERRUPTED)\]' || true
grep -E '^Ran [0-9]+ of [0-9]+ Specs|^(SUCCESS|FAIL)! --' "$OUT/critest.log" || true
exit "$status"
