#!/bin/bash
# hack/main-job.sh: the main job. Runs `busybox httpd` from a busybox-static
# bundle in a berth-runtime container that shares the host's network
# namespace (no "network" namespace in config.json), fetches a page from it
# with curl, then stops and deletes the container.
#
# It first installs missing dependencies (hack/install-deps.sh) and builds
# (make build), so on a fresh Debian 12 machine it is the one command to run.
#
# Environment: RUNTIME (default bin/berth-runtime; runc works too), PORT
# (default 8080; httpd listens on 127.0.0.1 only).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
export PATH=/usr/local/go/bin:$PATH
PORT=${PORT:-8080}
RUNTIME=${RUNTIME:-$ROOT/bin/berth-runtime}

if [ "$(id -u)" != 0 ]; then
	echo "main-job: run as root" >&2
	exit 1
fi
hack/install-deps.sh
if ! make -s build; then
	# With another RUNTIME (e.g. runc) the job can still run.
	[ "$RUNTIME" != "$ROOT/bin/berth-runtime" ] || exit 1
	echo "main-job: make build failed; continuing with $RUNTIME" >&2
fi
command -v "$RUNTIME" >/dev/null || { echo "main-job: $RUNTIME not found" >&2; exit 1; }
if curl -s -o /dev/null "http://127.0.0.1:$PORT/"; then
	echo "main-job: something already listens on 127.0.0.1:$PORT (set PORT)" >&2
	exit 1
fi

work=$(mktemp -d /var/tmp/berth-main-job.XXXXXX)
state="$work/state"
id="main-job-$$"
mkdir -p "$state"
cleanup() {
	"$RUNTIME" --root "$state" delete --force "$id" >/dev/null 2>&1 || true
	rm -rf "$work"
	# the runtime removes the container's cgroup; remove the parent we named
	while read -r _mp _t _o own; do rmdir "$own/berth-main-job" 2>/dev/null || true; done < <(hack/cgroup-mounts.sh)
}
trap cleanup EXIT

go build -o "$work/mkbundle" ./hack/mkbundle
"$work/mkbundle" -dir "$work/bundle" -id "$id" -cgroups-path "berth-main-job/$id" -no-netns \
	-file "www/index.html=<h1>hello from berth</h1>" \
	-- /bin/httpd -f -v -p "127.0.0.1:$PORT" -h /www >/dev/null

echo "+ $RUNTIME create --bundle $work/bundle $id"
"$RUNTIME" --root "$state" create --bundle "$work/bundle" --pid-file "$work/pid" "$id" \
	</dev/null >"$work/httpd.log" 2>&1
echo "+ $RUNTIME start $id"
"$RUNTIME" --root "$state" start "$id"
"$RUNTIME" --root "$state" state "$id"
echo

for _ in $(seq 50); do
	curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
	sleep 0.1
done
echo "+ curl http://127.0.0.1:$PORT/"
curl -fsS "http://127.0.0.1:$PORT/"
echo

stop() { # stop SIGNAL TRIES: signal the container, wait up to TRIES*0.1s
	echo "+ $RUNTIME kill $id $1"
	"$RUNTIME" --root "$state" kill "$id" "$1"
	for _ in $(seq "$2"); do
		"$RUNTIME" --root "$state" state "$id" | grep -q '"status": *"stopped"' && return 0
		sleep 0.1
	done
	return 1
}
# httpd is the container's PID 1, which ignores SIGTERM unless it handles it.
stop TERM 20 || stop KILL 50
"$RUNTIME" --root "$state" state "$id" | grep '"status"'
echo "+ $RUNTIME delete $id"
"$RUNTIME" --root "$state" delete "$id"
echo "httpd log:"
sed 's/^/  /' "$work/httpd.log"
echo "main-job: ok"
