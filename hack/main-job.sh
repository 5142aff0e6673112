#!/bin/bash
# hack/main-job.sh: the main job. Starts berthd, makes the base image locally (a
# busybox-static root filesystem imported as `busybox`), builds the example app
# (examples/web: a two-stage Dockerfile, `berth build`), runs it (busybox httpd)
# with `berth run -d -p $PORT:80` on berth's default bridge, fetches its page and
# CGI endpoint with curl through the published port (127.0.0.1 and the host's own
# address), then removes the container and the images, stops
# berthd and removes what it made in the host's network (its bridge, its
# nftables table, ip_forward as it was).
#
# It first installs missing dependencies (hack/install-deps.sh) and builds
# (make build), so on a fresh Debian 12 machine it is the one command to run.
#
# berthd runs with its own data root, exec root and socket in a temporary
# directory and its own bridge (berthmj0), so the job never touches an installed
# berth's containers or bridge; it refuses to run while berth's nftables table
# exists (an installed berthd is running), since the table is shared.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH
PORT=${PORT:-8080}

if [ "$(id -u)" != 0 ]; then
	echo "main-job: run as root" >&2
	exit 1
fi
hack/install-deps.sh
make -s build
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
	echo "main-job: something already listens on 127.0.0.1:$PORT (set PORT)" >&2
	exit 1
fi
if nft list table ip berth >/dev/null 2>&1; then
	echo "main-job: berth's nftables table exists (is a berthd running?); stop it first" >&2
	exit 1
fi
forward=$(cat /proc/sys/net/ipv4/ip_forward)

work=$(mktemp -d /var/tmp/berth-main-job.XXXXXX)
export BERTH_HOST="unix://$work/berth.sock"
berthd_pid=
cleanup() {
	if [ -n "$berthd_pid" ]; then
		bin/berth rm -f web >/dev/null 2>&1 || true
		bin/berth rmi -f main-job/web busybox >/dev/null 2>&1 || true
		kill "$berthd_pid" 2>/dev/null && wait "$berthd_pid" 2>/dev/null || true
		ip link delete berthmj0 2>/dev/null || true
		nft delete table ip berth 2>/dev/null || true
		echo "$forward" >/proc/sys/net/ipv4/ip_forward
	fi
	rm -rf "$work"
	# the runtime removes each container's cgroup; remove the parent berthd used
	while read -r _mp _t _o own; do rmdir "$own/berth-main-job" 2>/dev/null || true; done < <(hack/cgroup-mounts.sh)
}
trap cleanup EXIT

echo "+ berthd --data-root $work/data --exec-root $work/exec -H $BERTH_HOST"
echo '{"cgroup-parent": "berth-main-job", "bridge": "berthmj0"}' >"$work/daemon.json"
bin/berthd --data-root "$work/data" --exec-root "$work/exec" -H "$BERTH_HOST" \
	--config-file "$work/daemon.json" 2>"$work/berthd.log" &
berthd_pid=$!
for _ in $(seq 100); do
	bin/berth version >/dev/null 2>&1 && break
	sleep 0.1
done
bin/berth version --format 'berthd {{.Server.Version}} (API {{.Server.APIVersion}})'

# The base image: busybox-static's root filesystem, imported as busybox (no registry here).
go build -o "$work/mkbundle" ./hack/mkbundle
"$work/mkbundle" -dir "$work/img" -cgroups-path "" -- /bin/sh >/dev/null
echo "+ berth import rootfs.tar busybox"
tar -C "$work/img/rootfs" -cf - . | bin/berth import - busybox >/dev/null
# The app: examples/web, built from its Dockerfile.
echo "+ berth build -t main-job/web examples/web"
bin/berth build -t main-job/web examples/web
bin/berth images main-job/web

echo "+ berth run -d --name web -p $PORT:80 main-job/web"
bin/berth run -d --name web -p "$PORT:80" main-job/web
for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.1
done
bin/berth ps
bin/berth port web
echo "+ curl http://127.0.0.1:$PORT/"
curl -fsS "http://127.0.0.1:$PORT/"
echo "+ curl http://127.0.0.1:$PORT/cgi-bin/hello"
curl -fsS "http://127.0.0.1:$PORT/cgi-bin/hello"
# The host's own address (the source of its default route), when it has one.
addr=$(ip -4 route get 1.1.1.1 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p')
if [ -n "$addr" ]; then
	echo "+ curl http://$addr:$PORT/build.txt"
	curl -fsS "http://$addr:$PORT/build.txt"
fi
echo "+ berth logs web"
bin/berth logs web
echo "+ berth rm -f web"
bin/berth rm -f web
echo "main-job: ok"
