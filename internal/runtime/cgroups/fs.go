package cgroups

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

const (
	cgroupRoot        = "/sys/fs/cgroup"
	unifiedMountpoint = cgroupRoot
	hybridMountpoint  = cgroupRoot + "/unified"
	procsFile         = "cgroup.procs"
)

// bareErr strips *fs.PathError so the path is not repeated when the caller
// wraps the error with its own context.
func bareErr(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// writeFile writes data to dir/file with a single write(2), as cgroupfs
// wants, retrying on EINTR.
func writeFile(dir, file, data string) error {
	f, err := openWrite(dir, file)
	if err != nil {
		return err
	}
	defer f.close()
	return f.write(data)
}

// cgroupFile is a cgroupfs file open for writing. Each write is one
// write(2), which the kernel takes as one value or rule.
type cgroupFile struct {
	fd   int
	path string
}

func openWrite(dir, file string) (*cgroupFile, error) {
	if dir == "" {
		return nil, fmt.Errorf("write %s: no cgroup directory for it", file)
	}
	p := filepath.Join(dir, file)
	fd, err := openRetry(p, unix.O_WRONLY|unix.O_TRUNC|unix.O_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	return &cgroupFile{fd, p}, nil
}

// write writes data with a single write(2), retrying on EINTR.
func (f *cgroupFile) write(data string) error {
	var err error
	for {
		_, err = unix.Write(f.fd, []byte(data))
		if err != unix.EINTR {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("write %q to %s: %w", data, f.path, err)
	}
	return nil
}

func (f *cgroupFile) close() { unix.Close(f.fd) }

func openRetry(p string, flags int) (int, error) {
	for {
		fd, err := unix.Open(p, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}

// readFile returns the content of dir/file. Like writeFile it makes the
// syscalls itself: an *os.File would register the descriptor with the Go
// runtime's poller (cgroupfs files can be polled), five more syscalls a read.
func readFile(dir, file string) (string, error) {
	p := filepath.Join(dir, file)
	fd, err := openRetry(p, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", p, err)
	}
	defer unix.Close(fd)
	// A seq_file read returns at most a page; read until EOF.
	buf := make([]byte, 0, 4096)
	for {
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, cap(buf))
		}
		n, err := unix.Read(fd, buf[len(buf):cap(buf)])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return "", fmt.Errorf("read %s: %w", p, err)
		case n == 0:
			return string(buf), nil
		}
		buf = buf[:len(buf)+n]
	}
}

// readUint reads a single unsigned value; "max" reads as MaxUint64.
func readUint(dir, file string) (uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return 0, err
	}
	return parseUint(strings.TrimSpace(s), filepath.Join(dir, file))
}

func parseUint(s, where string) (uint64, error) {
	if s == "max" {
		return ^uint64(0), nil
	}
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		// Some v1 counters can go negative transiently; treat as 0.
		if i, ierr := strconv.ParseInt(s, 10, 64); ierr == nil && i < 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("parse %q in %s: %w", s, where, err)
	}
	return v, nil
}

// readKeyValues parses a flat-keyed file ("key value" per line).
func readKeyValues(dir, file string) (map[string]uint64, error) {
	s, err := readFile(dir, file)
	if err != nil {
		return nil, err
	}
	return parseKeyValues(s, filepath.Join(dir, file))
}

func parseKeyValues(s, where string) (map[string]uint64, error) {
	out := make(map[string]uint64)
	for _, line := range strings.Split(s, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("parse %s: unexpected line %q", where, line)
		}
		v, err := parseUint(f[1], where)
		if err != nil {
			return nil, err
		}
		out[f[0]] = v
	}
	return out, nil
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func isNotExist(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.ENODEV)
}

// writePid writes pid into dir/cgroup.procs. EINVAL can mean the task is
// still being created (TASK_NEW); retry a few times like runc.
func writePid(dir string, pid int) error {
	var err error
	for range 5 {
		err = writeFile(dir, procsFile, strconv.Itoa(pid))
		if err == nil || !errors.Is(err, unix.EINVAL) {
			return err
		}
		time.Sleep(30 * time.Millisecond)
	}
	return err
}

// readPids reads cgroup.procs of dir (cgroup.threads for threaded v2
// cgroups, whose cgroup.procs read fails with EOPNOTSUPP).
func readPids(dir string) ([]int, error) {
	s, err := readFile(dir, procsFile)
	if err != nil && errors.Is(err, unix.EOPNOTSUPP) {
		s, err = readFile(dir, "cgroup.threads")
	}
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(s) {
		pid, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("parse pid %q in %s: %w", f, filepath.Join(dir, procsFile), err)
		}
		out = append(out, pid)
	}
	return out, nil
}

// readPidsRecursive returns the pids of dir and every cgroup below it,
// sorted and without duplicates.
func readPidsRecursive(dir string) ([]int, error) {
	seen := make(map[int]bool)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && isNotExist(err) {
				return nil // a sub-cgroup vanished under us
			}
			return fmt.Errorf("walk %s: %w", p, bareErr(err))
		}
		if !d.IsDir() {
			return nil
		}
		pids, err := readPids(p)
		if err != nil {
			if p != dir && isNotExist(err) {
				return nil
			}
			return err
		}
		for _, pid := range pids {
			seen[pid] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]int, 0, len(seen))
	for pid := range seen {
		out = append(out, pid)
	}
	sort.Ints(out)
	return out, nil
}

// mkdirTracked creates dir and missing parents down from the first existing
// ancestor, appending each directory it created (parents first) to created.
func mkdirTracked(dir string, created *[]string) error {
	var missing []string
	for d := dir; ; d = filepath.Dir(d) {
		// statfs both finds the first existing ancestor and tells its
		// filesystem.
		var st unix.Statfs_t
		if err := unix.Statfs(d, &st); err == nil {
			// Never create directories outside a cgroup filesystem (for
			// example when a hierarchy was unmounted meanwhile).
			if st.Type != unix.CGROUP_SUPER_MAGIC && st.Type != unix.CGROUP2_SUPER_MAGIC {
				return fmt.Errorf("mkdir %s: %s is not on a cgroup filesystem", dir, d)
			}
			break
		} else if err != unix.ENOENT {
			return fmt.Errorf("stat %s: %w", d, err)
		}
		missing = append(missing, d)
		if d == "/" || d == "." {
			break
		}
	}
	for i := len(missing) - 1; i >= 0; i-- {
		d := missing[i]
		if err := unix.Mkdir(d, 0o755); err != nil {
			if err == unix.EEXIST {
				continue
			}
			return fmt.Errorf("mkdir %s: %w", d, err)
		}
		*created = append(*created, d)
	}
	return nil
}

// rmdirRetry removes a cgroup directory, retrying on EBUSY while the last
// processes exit. A missing directory is not an error.
func rmdirRetry(dir string) error {
	delay := 2 * time.Millisecond
	for try := 0; ; try++ {
		err := unix.Rmdir(dir)
		switch {
		case err == nil, err == unix.ENOENT:
			return nil
		case err == unix.EINTR:
			continue
		case err == unix.EBUSY && try < 12:
			time.Sleep(delay)
			delay = min(delay*2, 200*time.Millisecond)
			continue
		}
		return fmt.Errorf("rmdir %s: %w", dir, err)
	}
}

// removeCgroup removes dir and any cgroups the container created below it
// (children first). Missing is fine.
func removeCgroup(dir string) error {
	if err := unix.Rmdir(dir); err == nil || err == unix.ENOENT {
		return nil
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("read %s: %w", dir, bareErr(err))
	}
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroup(filepath.Join(dir, e.Name())); err != nil {
				return err
			}
		}
	}
	return rmdirRetry(dir)
}

// keepCreated ends a Create: on success the directories it made join the
// manager's list (into), on failure they are removed again, deepest first.
func keepCreated(into *[]string, created []string, err error) {
	if err == nil {
		*into = append(*into, created...)
		return
	}
	for i := len(created) - 1; i >= 0; i-- {
		_ = unix.Rmdir(created[i])
	}
}

// removeCreatedParents removes, deepest first, the intermediate directories
// this manager created, leaving any that are still in use by others.
func removeCreatedParents(created []string, leaves map[string]bool) {
	for i := len(created) - 1; i >= 0; i-- {
		d := created[i]
		if leaves[d] {
			continue
		}
		_ = unix.Rmdir(d) // ENOTEMPTY/EBUSY: someone else uses it now
	}
}

// mountPoint returns the mount point of the cgroup (v2 false) or cgroup2
// hierarchy holding dir: mount when known (managers made by New), otherwise
// found by walking up while the parent is on that filesystem.
func mountPoint(dir, mount string, v2 bool) string {
	if mount != "" {
		return mount
	}
	for d := dir; ; {
		p := filepath.Dir(d)
		if p == d {
			return d
		}
		if pv1, pv2 := isCgroupFS(p); !v2 && !pv1 || v2 && !pv2 {
			return d
		}
		d = p
	}
}

// isCgroupFS reports whether dir is on a cgroup or cgroup2 filesystem.
func isCgroupFS(dir string) (v1, v2 bool) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return false, false
	}
	return st.Type == unix.CGROUP_SUPER_MAGIC, st.Type == unix.CGROUP2_SUPER_MAGIC
}
