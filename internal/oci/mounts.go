package oci

import (
	"fmt"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/moby/moby/api/types/mount"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/errdefs"
	"berth/internal/mountinfo"
)

// Mount is one mount the daemon resolved for a container: a bind of a host path (HostConfig
// binds and bind mounts, and volumes, whose source is the volume's directory) or a tmpfs
// (HostConfig.Mounts of type tmpfs; HostConfig.Tmpfs is read by Generate itself).
type Mount struct {
	// Type is "bind" or "tmpfs" (mount.TypeBind, mount.TypeTmpfs; mount.TypeVolume is taken
	// as a bind of the volume's directory).
	Type mount.Type
	// Source is the host path of a bind or volume; unused for tmpfs.
	Source string
	// Destination is the absolute path in the container.
	Destination string
	// ReadOnly mounts it read-only; a bind recursively so (ro and rro), unless
	// ReadOnlyNonRecursive (mount.BindOptions.ReadOnlyNonRecursive).
	ReadOnly             bool
	ReadOnlyNonRecursive bool
	// Propagation of a bind: "" means rprivate (Docker's default).
	Propagation mount.Propagation
	// NonRecursive binds only the source mount, not the mounts below it (bind instead of rbind).
	NonRecursive bool
	// Options are extra mount options: nosuid, nodev, noexec (and their opposites) for a bind;
	// tmpfs options such as size=64m, mode=1777, uid=, gid=, exec for a tmpfs (TmpfsData
	// converts a mount.TmpfsOptions).
	Options []string
}

// defaultMounts are dockerd's default mounts (oci.DefaultLinuxSpec), in its order.
func defaultMounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/sys/fs/cgroup", Type: "cgroup", Source: "cgroup", Options: []string{"ro", "nosuid", "noexec", "nodev"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777"}},
	}
}

// DefaultShmSize is the size of /dev/shm when HostConfig.ShmSize is 0: 64 MiB.
const DefaultShmSize = 64 << 20

// mountFlags are the mount options moby/sys/mount knows as flags, with the flag each sets or
// clears (MergeTmpfsOptions keeps one option per flag; -1 stands for the propagation).
var mountFlags = map[string]int{
	"ro": 1, "rw": 1, "suid": 2, "nosuid": 2, "dev": 3, "nodev": 3, "exec": 4, "noexec": 4,
	"sync": 5, "async": 5, "dirsync": 6, "remount": 7, "mand": 8, "nomand": 8,
	"atime": 9, "noatime": 9, "diratime": 10, "nodiratime": 10, "bind": 11, "rbind": 12,
	"relatime": 13, "norelatime": 13, "strictatime": 14, "nostrictatime": 14,
	"unbindable": -1, "runbindable": -1, "private": -1, "rprivate": -1,
	"shared": -1, "rshared": -1, "slave": -1, "rslave": -1,
}

// tmpfsDataKeys are the key=value options a tmpfs takes.
var tmpfsDataKeys = map[string]bool{"size": true, "mode": true, "uid": true, "gid": true, "nr_inodes": true, "nr_blocks": true, "mpol": true}

var (
	tmpfsSizeRE = regexp.MustCompile(`^[0-9]+[kKmMgGtTpPeE%]?$`)
	octalRE     = regexp.MustCompile(`^[0-7]{1,4}$`)
	numberRE    = regexp.MustCompile(`^[0-9]+$`)
)

// mergeTmpfsOptions merges tmpfs options as moby/sys/mount's MergeTmpfsOptions does: the last
// of the options setting the same flag (or the same key) wins, "defaults" is dropped, an
// unknown option is an error. It also checks the values of size, mode, uid, gid and nr_inodes,
// which the kernel would otherwise refuse only when the container starts.
func mergeTmpfsOptions(options []string) ([]string, error) {
	flagSeen := map[int]bool{}
	dataSeen := map[string]bool{}
	var out []string
	for i := len(options) - 1; i >= 0; i-- {
		opt := options[i]
		if opt == "defaults" {
			continue
		}
		if key, ok := mountFlags[opt]; ok {
			if !flagSeen[key] {
				out = append(out, opt)
				flagSeen[key] = true
			}
			continue
		}
		k, v, ok := strings.Cut(opt, "=")
		if !ok || !tmpfsDataKeys[k] {
			return nil, fmt.Errorf("invalid tmpfs option %q", strings.SplitN(opt, "=", 2))
		}
		var valid bool
		switch k {
		case "size", "nr_blocks":
			valid = tmpfsSizeRE.MatchString(v)
		case "nr_inodes":
			valid = tmpfsSizeRE.MatchString(v) && !strings.HasSuffix(v, "%")
		case "mode":
			valid = octalRE.MatchString(v)
		case "uid", "gid":
			valid = numberRE.MatchString(v)
		default:
			valid = v != ""
		}
		if !valid {
			return nil, fmt.Errorf("invalid tmpfs option %q: bad value for %s", opt, k)
		}
		if !dataSeen[k] {
			out = append(out, opt)
			dataSeen[k] = true
		}
	}
	slices.Reverse(out)
	return out, nil
}

// tmpfsOptions returns the options of a tmpfs mount: dockerd's defaults (noexec, nosuid,
// nodev, rprivate) overridden by the given ones.
func tmpfsOptions(extra []string) ([]string, error) {
	return mergeTmpfsOptions(append([]string{"noexec", "nosuid", "nodev", "rprivate"}, extra...))
}

// TmpfsData converts the tmpfs options of a mount.Mount to mount options, as dockerd's
// ConvertTmpfsOptions does ("ro", "mode=1770", "size=64m", then the free-form options).
func TmpfsData(opt *mount.TmpfsOptions, readOnly bool) []string {
	var out []string
	if readOnly {
		out = append(out, "ro")
	}
	if opt == nil {
		return out
	}
	if opt.Mode != 0 {
		out = append(out, fmt.Sprintf("mode=%o", uint32(opt.Mode)))
	}
	if opt.SizeBytes != 0 {
		size, suffix := opt.SizeBytes, ""
		for _, r := range []struct {
			suffix  string
			divisor int64
		}{{"g", 1 << 30}, {"m", 1 << 20}, {"k", 1 << 10}} {
			if size%r.divisor == 0 {
				size, suffix = size/r.divisor, r.suffix
				break
			}
		}
		out = append(out, fmt.Sprintf("size=%d%s", size, suffix))
	}
	for _, o := range opt.Options {
		out = append(out, strings.Join(o, "="))
	}
	return out
}

// validateMountDestination checks a mount's destination as dockerd's parser does, and what
// berth-runtime refuses: nothing may be mounted over /proc or below it but a tmpfs or one of
// the few /proc files a bind may replace.
func validateMountDestination(dest string, typ mount.Type) error {
	if !path.IsAbs(dest) {
		return fmt.Errorf("invalid mount path: '%s' mount path must be absolute", dest)
	}
	clean := path.Clean(dest)
	if clean == "/" {
		return fmt.Errorf("invalid specification: destination can't be '/'")
	}
	if clean == "/proc" || strings.HasPrefix(clean, "/proc/") {
		if typ == mount.TypeTmpfs && clean != "/proc" {
			return nil
		}
		if typ != mount.TypeTmpfs && allowedProcBinds[clean] {
			return nil
		}
		return fmt.Errorf("invalid mount destination %s: mounts on /proc are not allowed", dest)
	}
	return nil
}

// allowedProcBinds are the /proc files a bind may replace (lxcfs and friends), as runc.
var allowedProcBinds = map[string]bool{
	"/proc/cpuinfo": true, "/proc/diskstats": true, "/proc/meminfo": true, "/proc/stat": true,
	"/proc/swaps": true, "/proc/uptime": true, "/proc/loadavg": true, "/proc/slabinfo": true,
	"/proc/net/dev": true, "/proc/sys/kernel/ns_last_pid": true,
}

// bindMountOptions are a bind's options: rbind (bind when non-recursive), ro, propagation
// (rprivate by default), then the extra ones.
func bindMountOptions(m Mount) ([]string, error) {
	opts := []string{"rbind"}
	if m.NonRecursive {
		opts[0] = "bind"
	}
	if m.ReadOnly {
		opts = append(opts, "ro")
		if !m.ReadOnlyNonRecursive && !m.NonRecursive {
			opts = append(opts, "rro")
		}
	}
	prop := m.Propagation
	if prop == "" {
		prop = mount.PropagationRPrivate
	}
	if _, ok := propagations[prop]; !ok {
		return nil, fmt.Errorf("invalid propagation mode: %s", prop)
	}
	opts = append(opts, string(prop))
	for _, o := range m.Options {
		switch o {
		case "nosuid", "suid", "nodev", "dev", "noexec", "exec", "ro", "rw", "noatime", "atime",
			"nodiratime", "diratime", "relatime", "strictatime", "rro", "rrw", "rnosuid", "rnodev",
			"rnoexec", "nosymfollow":
			opts = append(opts, o)
		default:
			return nil, fmt.Errorf("invalid bind mount option %q for %s", o, m.Destination)
		}
	}
	return opts, nil
}

var propagations = map[mount.Propagation]bool{
	mount.PropagationPrivate: true, mount.PropagationRPrivate: true,
	mount.PropagationShared: true, mount.PropagationRShared: true,
	mount.PropagationSlave: true, mount.PropagationRSlave: true,
}

// sourceMount returns the mount point holding the host path p and its optional fields.
func sourceMount(p string) (point, optional string, err error) {
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", "", err
	}
	mounts, err := mountinfo.Read()
	if err != nil {
		return "", "", err
	}
	m, ok := mountinfo.Containing(mounts, real)
	if !ok {
		return "", "", fmt.Errorf("can't find mount point of %s", p)
	}
	return m.Point, m.Optional, nil
}

// checkSourcePropagation makes sure that a bind asking for shared (or slave) propagation has a
// source on a shared (or shared or slave) mount, as dockerd does.
func checkSourcePropagation(src string, prop mount.Propagation) error {
	var want []string
	var what string
	switch prop {
	case mount.PropagationShared, mount.PropagationRShared:
		want, what = []string{"shared:"}, "a shared mount"
	case mount.PropagationSlave, mount.PropagationRSlave:
		want, what = []string{"shared:", "master:"}, "a shared or slave mount"
	default:
		return nil
	}
	point, optional, err := sourceMount(src)
	if err != nil {
		return errdefs.InvalidWrap(err, "bind source %s", src)
	}
	for _, f := range strings.Fields(optional) {
		for _, w := range want {
			if strings.HasPrefix(f, w) {
				return nil
			}
		}
	}
	return errdefs.Invalid("path %s is mounted on %s but it is not %s", src, point, what)
}

// mountDepth orders mounts as dockerd does: parents before children.
func mountDepth(dest string) int {
	return len(strings.Split(filepath.Clean(dest), string(filepath.Separator)))
}
