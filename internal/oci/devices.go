package oci

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func i64(v int64) *int64 { return &v }

// defaultDeviceRules are dockerd's default device cgroup rules (oci.DefaultLinuxSpec): deny
// everything, allow null, zero, urandom, random, tty and console, deny fuse. (berth-runtime,
// like runc, appends its own defaults: /dev/full, ptys, tun.)
func defaultDeviceRules() []specs.LinuxDeviceCgroup {
	allow := func(major, minor int64) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(major), Minor: i64(minor), Access: "rwm"}
	}
	return []specs.LinuxDeviceCgroup{
		{Allow: false, Access: "rwm"},
		allow(1, 5), allow(1, 3), allow(1, 9), allow(1, 8), allow(5, 0), allow(5, 1),
		{Allow: false, Type: "c", Major: i64(10), Minor: i64(229), Access: "rwm"},
	}
}

var deviceCgroupRuleRE = regexp.MustCompile(`^([acb]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})$`)

// parseDeviceCgroupRule parses a --device-cgroup-rule ("c 1:3 rwm", "b *:* m").
func parseDeviceCgroupRule(rule string) (specs.LinuxDeviceCgroup, error) {
	m := deviceCgroupRuleRE.FindStringSubmatch(rule)
	if m == nil {
		return specs.LinuxDeviceCgroup{}, fmt.Errorf("invalid device cgroup rule format: '%s'", rule)
	}
	d := specs.LinuxDeviceCgroup{Allow: true, Type: m[1], Access: m[4]}
	num := func(s, what string) (*int64, error) {
		if s == "*" {
			return i64(-1), nil
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("invalid %s value in device cgroup rule format: '%s'", what, rule)
		}
		return &n, nil
	}
	var err error
	if d.Major, err = num(m[2], "major"); err != nil {
		return d, err
	}
	if d.Minor, err = num(m[3], "minor"); err != nil {
		return d, err
	}
	return d, nil
}

// validDeviceMode reports whether mode is a combination of r, w and m, each at most once.
func validDeviceMode(mode string) bool {
	if mode == "" {
		return false
	}
	seen := map[rune]bool{}
	for _, c := range mode {
		if (c != 'r' && c != 'w' && c != 'm') || seen[c] {
			return false
		}
		seen[c] = true
	}
	return true
}

// validateDeviceMapping checks a --device mapping as the docker CLI and dockerd do, and that
// the path in the container is under /dev (berth-runtime makes device nodes only there).
func validateDeviceMapping(d container.DeviceMapping) error {
	if d.PathOnHost == "" {
		return fmt.Errorf("bad format for path: %s", d.PathOnHost)
	}
	if !path.IsAbs(d.PathOnHost) {
		return fmt.Errorf("%s is not an absolute path", d.PathOnHost)
	}
	inCtr := d.PathInContainer
	if inCtr == "" {
		inCtr = d.PathOnHost
	}
	if !path.IsAbs(inCtr) {
		return fmt.Errorf("%s is not an absolute path", inCtr)
	}
	if c := path.Clean(inCtr); !strings.HasPrefix(c, "/dev/") {
		return fmt.Errorf("invalid device path in container %s: devices must be under /dev", inCtr)
	}
	if d.CgroupPermissions != "" && !validDeviceMode(d.CgroupPermissions) {
		return fmt.Errorf("bad mode specified: %s", d.CgroupPermissions)
	}
	return nil
}

var errNotADevice = errors.New("not a device node")

// deviceFromPath describes the device node at host path p (not following a final symlink).
func deviceFromPath(p string) (*specs.LinuxDevice, error) {
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		return nil, err
	}
	var typ string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFCHR:
		typ = "c"
	case unix.S_IFBLK:
		typ = "b"
	default:
		return nil, errNotADevice
	}
	mode := os.FileMode(st.Mode &^ unix.S_IFMT)
	uid, gid := st.Uid, st.Gid
	return &specs.LinuxDevice{
		Path: p, Type: typ, Major: int64(unix.Major(st.Rdev)), Minor: int64(unix.Minor(st.Rdev)),
		FileMode: &mode, UID: &uid, GID: &gid,
	}, nil
}

// resolveDevicePath follows a symlink at p only if it leads to a node under /dev (so that a
// symlink such as /dev/disk/by-uuid/... works, and nothing else is reached through one).
func resolveDevicePath(p string) string {
	p = filepath.Clean(p)
	fi, err := os.Lstat(p)
	if err != nil || fi.Mode()&os.ModeSymlink == 0 {
		return p
	}
	target, err := filepath.EvalSymlinks(p)
	if err != nil || !strings.HasPrefix(target, "/dev/") {
		return p
	}
	return target
}

// devicesFromMapping returns the device nodes and cgroup rules of a --device mapping: one node,
// or every node below a directory (dockerd's DevicesFromPath).
func devicesFromMapping(d container.DeviceMapping) ([]specs.LinuxDevice, []specs.LinuxDeviceCgroup, error) {
	inCtr := d.PathInContainer
	if inCtr == "" {
		inCtr = d.PathOnHost
	}
	perms := d.CgroupPermissions
	if perms == "" {
		perms = "rwm"
	}
	rule := func(dev *specs.LinuxDevice) specs.LinuxDeviceCgroup {
		return specs.LinuxDeviceCgroup{Allow: true, Type: dev.Type, Major: i64(dev.Major), Minor: i64(dev.Minor), Access: perms}
	}
	host := resolveDevicePath(d.PathOnHost)
	dev, err := deviceFromPath(host)
	if err == nil {
		dev.Path = inCtr
		return []specs.LinuxDevice{*dev}, []specs.LinuxDeviceCgroup{rule(dev)}, nil
	}
	var devs []specs.LinuxDevice
	var rules []specs.LinuxDeviceCgroup
	if errors.Is(err, errNotADevice) {
		if fi, serr := os.Stat(host); serr == nil && fi.IsDir() {
			_ = filepath.WalkDir(host, func(p string, _ fs.DirEntry, _ error) error {
				cd, err := deviceFromPath(resolveDevicePath(p))
				if err != nil {
					return nil
				}
				cd.Path = path.Join(inCtr, strings.TrimPrefix(p, host))
				devs = append(devs, *cd)
				rules = append(rules, rule(cd))
				return nil
			})
		}
	}
	if len(devs) > 0 {
		return devs, rules, nil
	}
	return nil, nil, fmt.Errorf("error gathering device information while adding custom device %q: %v", d.PathOnHost, err)
}

// hostDevices lists the host's device nodes under /dev, as containerd's HostDevices does for a
// privileged container (skipping pts, shm, fd, mqueue and /dev/console).
func hostDevices() ([]specs.LinuxDevice, error) {
	var out []specs.LinuxDevice
	var walk func(dir string) error
	walk = func(dir string) error {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range ents {
			p := filepath.Join(dir, e.Name())
			if e.IsDir() {
				switch e.Name() {
				case "pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev":
					continue
				}
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			if p == "/dev/console" {
				continue
			}
			d, err := deviceFromPath(p)
			if err != nil {
				if errors.Is(err, errNotADevice) || errors.Is(err, fs.ErrNotExist) {
					continue
				}
				return err
			}
			out = append(out, *d)
		}
		return nil
	}
	if err := walk("/dev"); err != nil {
		return nil, fmt.Errorf("list host devices: %w", err)
	}
	return out, nil
}

// deviceNumbers stats each path of a blkio per-device setting for its major:minor.
func deviceNumbers(p string) (int64, int64, error) {
	var st unix.Stat_t
	if err := unix.Stat(p, &st); err != nil {
		return 0, 0, fmt.Errorf("stat %s: %w", p, err)
	}
	return int64(unix.Major(st.Rdev)), int64(unix.Minor(st.Rdev)), nil
}
