#!/bin/bash
# hack/validate.sh [RUNTIME...]
#
# Runs the OCI runtime-tools validation suite (all validation/*/*.t programs,
# pinned version, built by hack/build-runtime-tools.sh) against each RUNTIME
# (a path or a command name; default: bin/berth-runtime runc crun) and prints
# a side-by-side table: program | <runtime> ... with the totals.
#
# Every program runs with RUNTIME=<path>, under `timeout`, inside
# hack/sandbox.sh: a private mount namespace with cgroup2 unmounted (crun 1.8
# refuses hybrid cgroups) and the v1 hierarchies re-mounted in a cgroup
# namespace rooted at a fresh cgroup under ours, so the suite's absolute
# "/cgrouptest" cgroups stay nested under our own cgroups.
#
# A program passes when it exits 0 and prints no "not ok" TAP line, but
# not when it prints nothing at all, nor when it reports no test result and
# an "error" diagnostic (see tap_pass).
# Cells: ok | FAIL | TIME (timed out) | n/a (runtime missing); a trailing "!"
# means the program left a container, a process or a cgroup behind (see
# <out>/<runtime>/<prog>.leftovers); it was cleaned up. Empty parents of the
# suite's relative cgroupsPath and the suite's own temporary bundles are
# removed and listed apart, not marked.
#
# Environment:
#   VALIDATE_TIMEOUT  seconds per program (default 120)
#   VALIDATE_ONLY     extended regex; run only matching programs
#   VALIDATE_OUT      output directory (default _output/validate)
#   VALIDATE_STATE_DIRS  more default --root directories to hide (each program
#                     gets private, empty /run/runc, /run/crun and
#                     /run/berth-runtime in its mount namespace)
# Exit status: 0 if the suite ran and everything the programs left behind
# could be removed, 1 otherwise. Test failures and (removed) leftovers do not
# fail the script: read the table and the summary lines.
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HACK=$ROOT/hack
RT_DIR=${RUNTIME_TOOLS_DIR:-$ROOT/_output/runtime-tools}
OUT=${VALIDATE_OUT:-$ROOT/_output/validate}
T=${VALIDATE_TIMEOUT:-120}

# ---- inside the sandbox: one program, one runtime ----
if [ "${1:-}" = "--one" ]; then
	rt=$2 prog=$3 log=$4
	# The suite runs the runtime without --root, so it uses its default
	# state directory, which other users of the machine (podman, a
	# developer's runc) share. Give this mount namespace private, empty ones:
	# the containers listed (and force-deleted) below are then only ours.
	for d in /run/runc /run/crun /run/berth-runtime ${VALIDATE_STATE_DIRS:-}; do
		mkdir -p "$d" && mount -t tmpfs -o mode=0700 berth-validate-state "$d" || exit 125
	done
	list() { "$rt" list -q 2>/dev/null | sort; }
	before=$(list)
	cd "$RT_DIR" || exit 125
	RUNTIME=$rt timeout -k 10 "$T" "./validation/$prog/$prog.t" >"$log" 2>&1 </dev/null
	rc=$?
	after=$(list)
	for id in $(comm -13 <(echo "$before") <(echo "$after")); do
		echo "LEFTOVER: container $id: $("$rt" state "$id" 2>&1 | tr -s ' \n' ' ' | cut -c1-200)" >&2
		[ -n "${SANDBOX_LEFTOVERS:-}" ] && echo "container $id" >>"$SANDBOX_LEFTOVERS"
		"$rt" delete --force "$id" >/dev/null 2>&1 || "$rt" kill "$id" KILL >/dev/null 2>&1
		"$rt" delete --force "$id" >/dev/null 2>&1
	done
	exit $rc
fi

if [ "$(id -u)" != 0 ]; then
	echo "validate: must run as root" >&2
	exit 1
fi
"$HACK/build-runtime-tools.sh" || exit 1

if [ $# -eq 0 ]; then set -- "$ROOT/bin/berth-runtime" runc crun; fi
names=() paths=()
for r in "$@"; do
	if [[ $r == */* ]]; then
		p=$(realpath -m "$r")
		[ -x "$p" ] || p=""
	else
		p=$(command -v "$r" || true)
	fi
	n=$(basename "$r")
	[ "$n" = berth-runtime ] && n=berth
	names+=("$n")
	paths+=("$p")
	if [ -z "$p" ]; then echo "validate: $r: not found, column $n will be n/a" >&2; fi
done

mapfile -t progs < <(cd "$RT_DIR/validation" && ls -d */ | tr -d / | grep -vx util | grep -E "${VALIDATE_ONLY:-.}")

rm -rf "$OUT"
mkdir -p "$OUT"
for n in "${names[@]}"; do mkdir -p "$OUT/$n"; done

# ---- global leftover snapshot (host mount namespace, cgroups, processes) ----
own_parents=$("$HACK/cgroup-mounts.sh" | awk '{ print $4 }')
snapshot() {
	echo "## mounts"
	awk '{ print $5 }' /proc/self/mountinfo | sort
	echo "## cgroups"
	# Skip the cgroups of our siblings (other sessions of whoever owns our
	# parent cgroup): they come and go on their own.
	find /sys/fs/cgroup -mindepth 1 -type d 2>/dev/null | awk -v owns="$own_parents" '
		BEGIN { n = split(owns, o, "\n") }
		{
			for (i = 1; i <= n; i++) {
				own = o[i]; parent = own; sub("/[^/]*$", "", parent)
				if (parent == "" || own ~ "^/sys/fs/cgroup/[^/]*$") continue
				if (index($0, parent "/") == 1 && $0 != own && index($0, own "/") != 1) next
			}
			print
		}' | sort
	echo "## processes"
	# (zombies are skipped: orphans are reparented to init, which reaps them)
	ps -eo stat=,args= | awk '$1 !~ /^Z/' | grep -E '(runtimetest|runc|crun|berth-runtime|ocitest)' |
		grep -vE 'grep|validate.sh' | sort
	echo "## runtime state"
	for p in "${paths[@]}"; do [ -n "$p" ] && "$p" list -q 2>/dev/null | sed "s|^|$p: |"; done
	echo "## temp"
	ls -d "$OUT/tmp"/* 2>/dev/null
}
snapshot >"$OUT/before.txt"

# tap_pass LOG (the program's stdout+stderr; it exited 0): no "not ok" line;
# some output (a program prints nothing when runtimetest printed nothing in
# the container: nothing was validated); and a program that reports no test
# result at all (the hooks, prestart, poststart, poststop programs print plan
# "1..0" and report failures only as a YAML diagnostic) has no "error"
# diagnostic. The *_fail programs pass by exiting 0 without TAP output once
# the runtime has refused the config.
tap_pass() {
	[ -s "$1" ] || return 1
	grep -q '^not ok' "$1" && return 1
	grep -q '^ok' "$1" && return 0
	! grep -q '"error":' "$1"
}

child="" interrupted=""
trap 'interrupted=1; [ -n "$child" ] && kill -TERM "$child" 2>/dev/null' INT TERM

printf '%-36s' program
for n in "${names[@]}"; do printf ' %-8s' "$n"; done
echo
declare -A pass=()
declare -A left=()
for prog in "${progs[@]}"; do
	printf '%-36s' "$prog"
	row="$prog"
	for i in "${!names[@]}"; do
		n=${names[$i]} p=${paths[$i]}
		if [ -z "$p" ]; then
			cell=n/a
		else
			log="$OUT/$n/$prog.log"
			lf="$OUT/$n/$prog.leftovers"
			mkdir -p "$OUT/tmp"
			start=$EPOCHREALTIME
			TMPDIR="$OUT/tmp" SANDBOX_LEFTOVERS="$lf" "$HACK/sandbox.sh" validate \
				"$HACK/validate.sh" --one "$p" "$prog" "$log" 2>>"$OUT/$n/$prog.stderr" &
			child=$!
			wait "$child"
			rc=$?
			if [ -n "$interrupted" ]; then
				wait "$child" # sandbox.sh cleans up on TERM
				echo
				echo "validate: interrupted" >&2
				exit 130
			fi
			child=""
			echo "exit status $rc, $(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }") s" >>"$OUT/$n/$prog.stderr"
			if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
				cell=TIME
			elif [ $rc -eq 0 ] && tap_pass "$log"; then
				cell=ok
				pass[$n]=$((${pass[$n]:-0} + 1))
			else
				cell=FAIL
			fi
			# The suite itself does not always remove its bundles: count
			# those apart, they are not the runtime's doing.
			for t in "$OUT/tmp"/*; do
				[ -e "$t" ] || continue
				echo "$n $prog $t" >>"$OUT/suite-temp-leftovers.txt"
				rm -rf "$t"
			done
			# Runtimes create the parents of a relative cgroupsPath
			# (testdir/cgrouptest/container) and, like runc and crun, need
			# not remove them: not a leak.
			if [ -s "$lf" ]; then
				grep -E '^cgroup .*/berth-validate-[0-9]+/testdir(/cgrouptest)?$' "$lf" >"$lf.parents"
				grep -vE '^cgroup .*/berth-validate-[0-9]+/testdir(/cgrouptest)?$' "$lf" >"$lf.tmp"
				mv "$lf.tmp" "$lf"
				[ -s "$lf.parents" ] || rm -f "$lf.parents"
			fi
			if [ -s "$lf" ]; then
				cell="$cell!"
				left[$n]=$((${left[$n]:-0} + 1))
			else
				rm -f "$lf"
			fi
		fi
		printf ' %-8s' "$cell"
		row+=$'\t'"$cell"
	done
	echo
	echo "$row" >>"$OUT/results.tsv"
done
printf '%-36s' "TOTAL passed (of ${#progs[@]})"
for n in "${names[@]}"; do printf ' %-8s' "${pass[$n]:-0}"; done
echo

snapshot >"$OUT/after.txt"
if ! diff -u "$OUT/before.txt" "$OUT/after.txt" >"$OUT/host-changes.diff"; then
	# Informational: other users of the machine may have changed things too;
	# the per-program sandbox checks above are the precise ones.
	echo "validate: note: the host changed during the run (mounts/cgroups/processes/runtime state); see $OUT/host-changes.diff:" >&2
	grep '^[-+][^-+]' "$OUT/host-changes.diff" | head -20 >&2
fi
rmdir "$OUT/tmp" 2>/dev/null
echo "logs: $OUT/<runtime>/<program>.log"
if [ -s "$OUT/suite-temp-leftovers.txt" ]; then
	echo "bundles the suite left in \$TMPDIR (removed): $(wc -l <"$OUT/suite-temp-leftovers.txt"), see $OUT/suite-temp-leftovers.txt"
fi
summary=""
for n in "${names[@]}"; do summary+=" $n ${left[$n]:-0},"; done
echo "programs that left containers, processes or cgroups behind (cleaned up, marked !):${summary%,}"
# Anything the sandbox could not remove is still there: that fails the run.
if grep -qs '^sandbox: cannot remove' "$OUT"/*/*.stderr; then
	echo "validate: some leftovers could not be removed:" >&2
	grep -hs '^sandbox: cannot remove' "$OUT"/*/*.stderr >&2
	exit 1
fi
