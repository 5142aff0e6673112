#!/bin/bash
# hack/remove-cgroup-parent.sh NAME [WHO]: removes the cgroup parent NAME that a run
# made under our own cgroups (<own cgroup>/NAME in every hierarchy, as listed by
# hack/cgroup-mounts.sh). The runtimes remove each container's cgroup below it;
# anything still there is a leak: reported on stderr as "WHO: LEFTOVER cgroup ...",
# removed, and the exit status is 1.
set -u
name=$1
who=${2:-remove-cgroup-parent}
left=0
while read -r _mp _fstype _opts own; do
	d="$own/$name"
	[ -d "$d" ] || continue
	while IFS= read -r sub; do
		echo "$who: LEFTOVER cgroup $sub" >&2
		rmdir "$sub" 2>/dev/null
		left=1
	done < <(find "$d" -mindepth 1 -depth -type d)
	rmdir "$d" 2>/dev/null || { echo "$who: cannot remove $d" >&2; left=1; }
done < <("$(dirname "$0")/cgroup-mounts.sh")
exit "$left"
