// Package cgroups owns everything berth-runtime does with cgroupfs: it decides
// where a container's cgroups live (cgroupsPath from config.json resolved
// against /proc/self/cgroup and /proc/self/mountinfo), creates the
// directories, writes the OCI linux.resources into the cgroup v1 controllers
// or the cgroup v2 unified hierarchy (including the v2 eBPF device filter),
// moves processes in, freezes and thaws them, reports statistics in the
// shape `runc events --stats` prints, and removes the cgroups it made.
//
// Three host layouts are handled (see DetectMode): Legacy (v1 controllers
// only), Hybrid (v1 controllers plus cgroup2 at /sys/fs/cgroup/unified, which
// is joined as well so the container's view is consistent) and Unified (pure
// v2). The package never talks to systemd: it is berth's cgroupfs driver.
//
// The package does not know about containers beyond the cgroupsPath and id
// it is given; translating the rest of config.json (default device rules,
// linux.devices nodes) is the runtime core's job. DefaultAllowedDevices holds
// the rules runc appends to every container's device list.
package cgroups
