#!/bin/bash
# hack/sandbox.sh NAME CMD [ARG...]
#
# Runs CMD in a private mount namespace in which every cgroup v1 hierarchy is
# re-mounted inside a fresh cgroup namespace rooted at a new cgroup
# "berth-NAME-<pid>" nested under the caller's own cgroups, and the cgroup2
# mount (/sys/fs/cgroup/unified on hybrid hosts) is absent (crun 1.8 refuses
# hybrid hierarchies). So:
#   - containers with an absolute cgroupsPath such as "/cgrouptest" (the OCI
#     validation suite) land in <own cgroup>/berth-NAME-<pid>/cgrouptest, never
#     outside the cgroups we were given;
#   - nothing the command mounts is visible outside;
#   - afterwards, anything left in the sandbox cgroups is reported on stderr as
#     "LEFTOVER: ..." (and appended to $SANDBOX_LEFTOVERS if set), processes
#     left there are killed (they are descendants of this script), and the
#     cgroups are removed.
# On a cgroup-v2-only host only the mount namespace is private (cgroup2 stays
# mounted; crun supports pure v2). SANDBOX_KEEP_CGROUP2=1 on a hybrid host
# keeps (re-mounts) the cgroup2 hierarchy too, with its own sandbox cgroup,
# to compare a runtime's behaviour with and without it. SANDBOX_PROPAGATION
# (default private; slave is also safe) sets the mount namespace's propagation.
# Exit status: CMD's.
set -u

if [ "${1:-}" = "--inner" ]; then
	# In the new mount (+cgroup) namespace. $SANDBOX_REMOUNT: "mountpoint fstype options" lines.
	shift
	while read -r mp fstype _super _own; do
		[ -n "$mp" ] || continue
		if [ "$fstype" = cgroup2 ] && [ -z "${SANDBOX_REMOUNT}" ]; then
			continue # v2-only host: keep it
		fi
		umount -l "$mp" || exit 125
	done <<<"$SANDBOX_ALLMOUNTS"
	while read -r mp fstype super; do
		[ -n "$mp" ] || continue
		mount -t "$fstype" -o "$super" "$fstype" "$mp" || exit 125
	done <<<"$SANDBOX_REMOUNT"
	unset SANDBOX_ALLMOUNTS SANDBOX_REMOUNT
	exec "$@"
fi

if [ $# -lt 2 ]; then
	echo "usage: $0 NAME CMD [ARG...]" >&2
	exit 2
fi
HACK=$(cd "$(dirname "$0")" && pwd)
name="berth-$1-$$"
shift

allmounts=$("$HACK/cgroup-mounts.sh")
created=()
remount=""
leftover() {
	echo "LEFTOVER: $*" >&2
	if [ -n "${SANDBOX_LEFTOVERS:-}" ]; then echo "$*" >>"$SANDBOX_LEFTOVERS"; fi
}
cleanup() {
	local d pids pid f
	# Thaw, then kill whatever is still in the sandbox (our descendants).
	for d in "${created[@]}"; do
		[ -d "$d" ] || continue
		while IFS= read -r f; do echo THAWED >"$f" 2>/dev/null; done < <(find "$d" -name freezer.state 2>/dev/null)
	done
	for try in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(for d in "${created[@]}"; do [ -d "$d" ] && find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
		[ -z "$pids" ] && break
		for pid in $pids; do
			[ "$try" = 1 ] && leftover "process $pid $(tr '\0' ' ' </proc/$pid/cmdline 2>/dev/null)"
			kill -9 "$pid" 2>/dev/null
		done
		sleep 0.2
	done
	for d in "${created[@]}"; do
		[ -d "$d" ] || continue
		while IFS= read -r sub; do
			leftover "cgroup $sub"
			rmdir "$sub" || echo "sandbox: cannot remove $sub" >&2
		done < <(find "$d" -mindepth 1 -depth -type d 2>/dev/null)
		rmdir "$d" || echo "sandbox: cannot remove $d" >&2
	done
	created=()
}
trap 'cleanup; exit 130' INT TERM

while read -r mp fstype super own; do
	[ -n "$mp" ] || continue
	if [ "$fstype" = cgroup2 ] && [ "${SANDBOX_KEEP_CGROUP2:-}" != 1 ]; then continue; fi
	d="$own/$name"
	mkdir "$d" || { cleanup; exit 125; }
	created+=("$d")
	if [[ ,$super, == *,cpuset,* ]]; then
		cat "$own/cpuset.cpus" >"$d/cpuset.cpus" && cat "$own/cpuset.mems" >"$d/cpuset.mems" || { cleanup; exit 125; }
	fi
	remount+="$mp $fstype $super"$'\n'
done <<<"$allmounts"
if ! grep -q " cgroup " <<<"$allmounts"; then
	# cgroup v2 only: nothing to re-mount (see above).
	for d in "${created[@]}"; do rmdir "$d"; done
	created=() remount=""
fi

nsflags=(--mount --propagation "${SANDBOX_PROPAGATION:-private}")
if [ -n "$remount" ]; then nsflags+=(--cgroup); fi
exec 3<&0 # background jobs would get /dev/null as stdin
(
	exec 0<&3 3<&-
	for d in "${created[@]}"; do echo "$BASHPID" >"$d/cgroup.procs" || exit 125; done
	SANDBOX_ALLMOUNTS="$allmounts" SANDBOX_REMOUNT="$remount" exec unshare "${nsflags[@]}" -- "$HACK/sandbox.sh" --inner "$@"
) &
# (in the background, so that the INT/TERM trap runs at once: its cleanup
# kills everything in the sandbox cgroups, the command included)
wait $!
rc=$?
cleanup
exit $rc
