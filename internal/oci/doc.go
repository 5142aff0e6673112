// Package oci owns the runtime spec of a Docker container: what dockerd checks in a container's
// Config and HostConfig at create ([Validate], [Adapt]) and the config.json it hands the runtime
// at start ([Generate]), with Docker's defaults: the mounts of /proc, /dev, /sys and cgroups,
// masked and read-only paths, default devices and device cgroup rules, the 14 default
// capabilities, the default seccomp profile, namespaces from the network/pid/ipc/uts/cgroupns
// modes, user and group resolution from the image's /etc/passwd and /etc/group, and resources.
//
// Inputs are the Engine API's own types (github.com/moby/moby/api/types/container); the output
// is an OCI runtime spec that berth-runtime accepts. Everything the daemon resolves on the host
// (the mounted rootfs, volume and bind sources, the netns or the /proc/<pid>/ns paths of
// container:<id> modes, the hosts/hostname/resolv.conf files, the cgroups path, the init
// binary) comes in through [Input]: this package names no daemon paths and keeps no state.
//
// The only filesystem it touches is the container's rootfs, and only through file descriptors
// resolved inside it (openat2 with RESOLVE_IN_ROOT): reading /etc/passwd and /etc/group
// ([ResolveUser]) and making the working directory ([CreateWorkingDir]). It never mounts,
// starts or signals anything.
//
// Every error that the caller's input caused is of kind errdefs.ErrInvalid (HTTP 400), with
// dockerd's message where dockerd has one.
//
// Differences from dockerd, on purpose:
//   - security-opt apparmor=... and label=... (and "disable") are accepted and ignored: berth
//     runs without AppArmor and SELinux, as dockerd does on a host that has neither.
//   - There are no user namespaces (userns-remap) and no device requests (--gpus): UsernsMode
//     may only be "" or "host"; a DeviceRequest is refused as dockerd refuses one without a
//     driver.
//   - HostConfig.CgroupParent, Cgroup ("container:...") and the blkio/cpu-realtime settings of a
//     daemon are the daemon's business: the cgroups path comes in ready-made.
package oci
