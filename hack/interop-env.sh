#!/bin/bash
# hack/interop-env.sh: a private podman store and dockerd that use a runtime through a wrapper
# logging every invocation's argv (for reproducing what test/integration/interop does by hand).
#
#   hack/interop-env.sh start DIR [RUNTIME]   # RUNTIME defaults to bin/berth-runtime
#   . DIR/env                                 # defines `pm` (podman) and DOCKER_HOST
#   pm run --rm $PM_RUN localhost/bb echo hi
#   docker run --rm --runtime berth --network none bb echo hi
#   cat DIR/runtime.log                       # argv of each runtime call
#   hack/interop-env.sh stop DIR
#
# Cgroups go under a parent nested in our own cgroups; no network (dockerd without bridge or
# iptables, containers with --network none). Needs root, podman, dockerd, busybox-static.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cmd=${1:-}; dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { sed -n '2,12p' "$0"; exit 2; }

# The deepest of our own cgroups (v1 controllers may sit at different depths).
base=$(awk -F: '{ if (length($3) > length(b)) b = $3 } END { print b }' /proc/self/cgroup)
cgname="berth-interop-env-$(basename "$dir")"

case "$cmd" in
start)
	rt=$(readlink -f "${3:-$ROOT/bin/berth-runtime}")
	mkdir -p "$dir" && dir=$(cd "$dir" && pwd)
	mkdir -p "$dir/rootfs/bin" "$dir/rootfs/etc" "$dir/rootfs/tmp" "$dir/podman" "$dir/docker"
	cp "$(command -v busybox)" "$dir/rootfs/bin/busybox"
	for a in $(busybox --list); do [ "$a" = busybox ] || ln -sf busybox "$dir/rootfs/bin/$a"; done
	echo 'root:x:0:0:root:/root:/bin/sh' >"$dir/rootfs/etc/passwd"
	echo 'root:x:0:' >"$dir/rootfs/etc/group"
	tar -C "$dir/rootfs" -cf "$dir/rootfs.tar" .
	cat >"$dir/runtime-wrapper" <<-EOF
	#!/bin/sh
	{ printf '%s pid %s ppid %s cwd %s:' "\$(date +%T.%N)" "\$\$" "\$PPID" "\$PWD"; printf ' [%s]' "\$@"; echo; } >>'$dir/runtime.log'
	exec '$rt' "\$@"
	EOF
	chmod +x "$dir/runtime-wrapper"
	p="$dir/podman"
	cat >"$dir/env" <<-EOF
	export DOCKER_HOST=unix://$dir/docker/docker.sock DOCKER_CONFIG=$dir/docker/cli
	PM_RUN="--network none --cgroup-parent $base/$cgname --ulimit nofile=20000:20000 --ulimit nproc=32768:32768"
	pm() { podman --root $p/root --runroot $p/runroot --tmpdir $p/tmp --network-config-dir $p/networks --events-backend file --cgroup-manager cgroupfs --storage-driver overlay --runtime $dir/runtime-wrapper "\$@"; }
	EOF
	# Fixed host paths the engines write to: remove on stop those that do not exist yet.
	for h in /etc/docker /etc/docker/key.json /run/docker /run/docker/plugins /run/containerd /run/containerd/s \
		/run/containers /run/containers/networks /var/lib/containers /var/lib/containers/cache \
		/var/lib/containers/cache/blob-info-cache-v1.boltdb; do
		[ -e "$h" ] || echo "$h" >>"$dir/host-created"
	done
	mkdir -p "$dir/docker/cli" && echo '{}' >"$dir/docker/cli/config.json"
	# Cgroup directories on the way to our parent that do not exist yet (the engines make them;
	# stop removes them).
	: >"$dir/cgroups-created"
	for mp in $(awk '$0 ~ / - cgroup2? / { print $5 }' /proc/self/mountinfo); do
		d="$mp$base/$cgname"
		while [ "$d" != "$mp" ] && [ ! -d "$d" ]; do echo "$d" >>"$dir/cgroups-created"; d=$(dirname "$d"); done
	done
	# shellcheck disable=SC1091
	. "$dir/env"
	pm import -q "$dir/rootfs.tar" localhost/bb >/dev/null
	echo '{}' >"$dir/docker/daemon.json"
	(cd "$dir/docker" && setsid dockerd --config-file "$dir/docker/daemon.json" --data-root "$dir/docker/data" \
		--exec-root "$dir/docker/exec" -H "unix://$dir/docker/docker.sock" --pidfile "$dir/docker/docker.pid" \
		--bridge=none --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false \
		--exec-opt native.cgroupdriver=cgroupfs --cgroup-parent "$base/$cgname" \
		--add-runtime berth="$dir/runtime-wrapper" >"$dir/docker/dockerd.log" 2>&1 &)
	for _ in $(seq 100); do docker info >/dev/null 2>&1 && break; sleep 0.2; done
	docker import "$dir/rootfs.tar" bb >/dev/null
	echo "ready: . $dir/env; runtime calls are logged to $dir/runtime.log"
	;;
stop)
	dir=$(cd "$dir" && pwd)
	# shellcheck disable=SC1091
	. "$dir/env"
	ids=$(docker ps -aq 2>/dev/null || true)
	[ -z "$ids" ] || docker rm -f $ids >/dev/null || true
	[ -f "$dir/docker/docker.pid" ] && kill "$(cat "$dir/docker/docker.pid")" 2>/dev/null || true
	pm rm -a -f -t 0 >/dev/null 2>&1 || true
	for _ in $(seq 100); do [ -e "$dir/docker/docker.pid" ] || break; sleep 0.2; done
	awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r |
		while read -r m; do umount -l "$m" || true; done
	# Our cgroup parent in every hierarchy, and the directories on the way that start recorded.
	for mp in $(awk '$0 ~ / - cgroup2? / { print $5 }' /proc/self/mountinfo); do
		d="$mp$base/$cgname"
		[ ! -d "$d" ] || find "$d" -depth -type d -exec rmdir {} \; || echo "left cgroups under $d" >&2
	done
	awk '{ print length($0), $0 }' "$dir/cgroups-created" | sort -rn | cut -d' ' -f2- |
		while read -r d; do [ ! -d "$d" ] || rmdir "$d" 2>/dev/null || echo "left cgroup $d" >&2; done
	[ ! -f "$dir/host-created" ] || tac "$dir/host-created" | while read -r h; do
		if [ -d "$h" ]; then rmdir "$h" 2>/dev/null || echo "left $h (not empty)" >&2; else rm -f "$h"; fi
	done
	rm -rf "$dir"
	echo "stopped and removed $dir"
	;;
*)
	sed -n '2,12p' "$0"
	exit 2
	;;
esac
