package volume

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"berth/internal/errdefs"
	"berth/internal/mountinfo"
)

// Mount makes the volume name ready for a container and returns its host
// path (the Mountpoint). A volume with mount options is mounted on its
// first user and stays mounted while it has users; ref names the user (a
// container ID), and mounting twice for the same ref counts once.
func (s *Store) Mount(ctx context.Context, name, ref string) (string, error) {
	s.mu.Lock()
	v, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return "", errdefs.NotFound("get %s: %s", name, errNoSuchVolume)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.removed {
		return "", errdefs.NotFound("get %s: %s", name, errNoSuchVolume)
	}
	if v.needsMount() && v.mounted && len(v.refs) == 0 {
		// Taken over from a previous run: check it is still there.
		if mps, err := mountPoints(); err == nil && !mps[v.path()] {
			v.mounted = false
		}
	}
	if v.needsMount() && !v.mounted {
		o := v.rec.Options
		if err := mountDevice(o["device"], v.path(), o["type"], o["o"]); err != nil {
			return "", fmt.Errorf("mount volume %s: %w", name, err)
		}
		v.mounted = true
	}
	v.refs[ref] = struct{}{}
	return v.path(), nil
}

// Unmount ends ref's use of the volume name; the last user unmounts it.
// Unmounting for a ref that does not hold the volume does nothing.
func (s *Store) Unmount(ctx context.Context, name, ref string) error {
	s.mu.Lock()
	v, ok := s.vols[name]
	s.mu.Unlock()
	if !ok {
		return errdefs.NotFound("get %s: %s", name, errNoSuchVolume)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if _, held := v.refs[ref]; !held {
		return nil
	}
	delete(v.refs, ref)
	if len(v.refs) > 0 {
		return nil
	}
	if err := v.unmount(); err != nil {
		v.refs[ref] = struct{}{} // still mounted: still held
		return fmt.Errorf("unmount volume %s: %w", name, err)
	}
	return nil
}

// unmount unmounts _data if the volume mounted it. v.mu is held.
func (v *vol) unmount() error {
	if !v.mounted {
		return nil
	}
	if err := unix.Unmount(v.path(), 0); err != nil && err != unix.EINVAL && err != unix.ENOENT {
		return &fs.PathError{Op: "umount", Path: v.path(), Err: err}
	}
	v.mounted = false
	return nil
}

// Mount flags by option name, as mount(8) and moby's mount package know
// them: a clear flag removes the bit instead of setting it.
var mountFlags = map[string]struct {
	clear bool
	flag  uintptr
}{
	"defaults":      {false, 0},
	"ro":            {false, unix.MS_RDONLY},
	"rw":            {true, unix.MS_RDONLY},
	"suid":          {true, unix.MS_NOSUID},
	"nosuid":        {false, unix.MS_NOSUID},
	"dev":           {true, unix.MS_NODEV},
	"nodev":         {false, unix.MS_NODEV},
	"exec":          {true, unix.MS_NOEXEC},
	"noexec":        {false, unix.MS_NOEXEC},
	"sync":          {false, unix.MS_SYNCHRONOUS},
	"async":         {true, unix.MS_SYNCHRONOUS},
	"dirsync":       {false, unix.MS_DIRSYNC},
	"remount":       {false, unix.MS_REMOUNT},
	"mand":          {false, unix.MS_MANDLOCK},
	"nomand":        {true, unix.MS_MANDLOCK},
	"atime":         {true, unix.MS_NOATIME},
	"noatime":       {false, unix.MS_NOATIME},
	"diratime":      {true, unix.MS_NODIRATIME},
	"nodiratime":    {false, unix.MS_NODIRATIME},
	"bind":          {false, unix.MS_BIND},
	"rbind":         {false, unix.MS_BIND | unix.MS_REC},
	"relatime":      {false, unix.MS_RELATIME},
	"norelatime":    {true, unix.MS_RELATIME},
	"strictatime":   {false, unix.MS_STRICTATIME},
	"nostrictatime": {true, unix.MS_STRICTATIME},
	"unbindable":    {false, unix.MS_UNBINDABLE},
	"runbindable":   {false, unix.MS_UNBINDABLE | unix.MS_REC},
	"private":       {false, unix.MS_PRIVATE},
	"rprivate":      {false, unix.MS_PRIVATE | unix.MS_REC},
	"shared":        {false, unix.MS_SHARED},
	"rshared":       {false, unix.MS_SHARED | unix.MS_REC},
	"slave":         {false, unix.MS_SLAVE},
	"rslave":        {false, unix.MS_SLAVE | unix.MS_REC},
}

const propagationFlags = unix.MS_SHARED | unix.MS_PRIVATE | unix.MS_SLAVE | unix.MS_UNBINDABLE

// parseMountOptions splits o ("size=10m,ro,uid=1000") into mount flags
// and the file system's data.
func parseMountOptions(o string) (uintptr, string) {
	var flags uintptr
	var data []string
	for _, opt := range strings.Split(o, ",") {
		if opt == "" {
			continue
		}
		if f, ok := mountFlags[opt]; ok {
			if f.clear {
				flags &^= f.flag
			} else {
				flags |= f.flag
			}
			continue
		}
		data = append(data, opt)
	}
	return flags, strings.Join(data, ",")
}

// mountDevice mounts device on target as dockerd's local driver does:
// the flags and data of o, the propagation set apart, and a read-only bind
// mount remounted read-only. Passwords in o do not appear in errors.
func mountDevice(device, target, fstype, o string) error {
	if device == "" {
		return errors.New("missing device in volume options")
	}
	flags, data := parseMountOptions(o)
	fail := func(op string, f uintptr, d string, err error) error {
		msg := fmt.Sprintf("%s %s:%s, flags: %#x, data: %s: %v", op, device, target, f, d, err)
		if pw := optionValue(o, "password"); pw != "" {
			msg = strings.ReplaceAll(msg, "password="+pw, "password=********")
		}
		return errors.New("failed to mount local volume: " + msg)
	}
	oflags := flags &^ propagationFlags
	if oflags&unix.MS_REMOUNT == 0 || data != "" {
		if err := unix.Mount(device, target, fstype, oflags, data); err != nil {
			return fail("mount", oflags, data, err)
		}
	}
	if p := flags & (propagationFlags | unix.MS_REC); p&propagationFlags != 0 {
		if err := unix.Mount("", target, "", p, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fail("mount", p, "", err)
		}
	}
	if oflags&(unix.MS_BIND|unix.MS_RDONLY) == unix.MS_BIND|unix.MS_RDONLY {
		if err := unix.Mount("", target, "", oflags|unix.MS_REMOUNT, ""); err != nil {
			unix.Unmount(target, unix.MNT_DETACH)
			return fail("remount", oflags|unix.MS_REMOUNT, "", err)
		}
	}
	return nil
}

// optionValue returns the value of key=value in a comma-separated list.
func optionValue(o, key string) string {
	for _, opt := range strings.Split(o, ",") {
		if v, ok := strings.CutPrefix(opt, key+"="); ok {
			return v
		}
	}
	return ""
}

// mountPoints returns the mount points of this mount namespace (the
// calling thread's: /proc/self is the main thread's, which may have been
// given another one).
func mountPoints() (map[string]bool, error) {
	f, err := os.Open("/proc/thread-self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	mps := make(map[string]bool)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mps[mountinfo.Unescape(fields[4])] = true
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	return mps, nil
}

func sysStat(fi fs.FileInfo) (*syscall.Stat_t, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	return st, ok
}
