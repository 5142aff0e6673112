#!/bin/bash
# Prints one line per mounted cgroup hierarchy visible to this process:
#   <mountpoint> <fstype> <super options> <own cgroup directory>
# where the own cgroup directory is where this process sits in that hierarchy.
# Used by hack/sandbox.sh and hack/test.sh.
awk '
  FNR == NR { # /proc/self/cgroup: id:controllers:path
    split($0, f, ":")
    n++; id[n] = f[1]; ctrls[n] = f[2]; path[n] = substr($0, length(f[1]) + length(f[2]) + 3)
    next
  }
  {
    for (i = 7; i <= NF; i++) if ($i == "-") break
    fstype = $(i+1)
    if (fstype != "cgroup" && fstype != "cgroup2") next
    root = $4; mp = $5; super = $(i+3)
    split(super, so, ",")
    for (k = 1; k <= n; k++) {
      if (fstype == "cgroup2") { if (id[k] != "0" || ctrls[k] != "") continue }
      else {
        if (ctrls[k] == "") continue
        m = split(ctrls[k], cs, ","); ok = 1
        for (j = 1; j <= m; j++) { hit = 0; for (s in so) if (so[s] == cs[j]) hit = 1; if (!hit) ok = 0 }
        if (!ok) continue
      }
      own = path[k]
      if (root != "/") { if (index(own, root) == 1) own = substr(own, length(root) + 1); else continue }
      if (own == "/") own = ""
      print mp, fstype, super, mp own
      break
    }
  }
' /proc/self/cgroup /proc/self/mountinfo
