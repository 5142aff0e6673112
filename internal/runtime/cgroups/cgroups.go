package cgroups

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Mode is the cgroup layout of the host.
type Mode int

const (
	// Legacy: cgroup v1 controllers only.
	Legacy Mode = iota + 1
	// Hybrid: v1 controllers, plus cgroup2 (usually without controllers)
	// at /sys/fs/cgroup/unified.
	Hybrid
	// Unified: pure cgroup v2 at /sys/fs/cgroup.
	Unified
)

func (m Mode) String() string {
	switch m {
	case Legacy:
		return "legacy"
	case Hybrid:
		return "hybrid"
	case Unified:
		return "unified"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

var detectMode = sync.OnceValue(func() Mode {
	if _, v2 := isCgroupFS(unifiedMountpoint); v2 {
		return Unified
	}
	if _, v2 := isCgroupFS(hybridMountpoint); v2 {
		return Hybrid
	}
	return Legacy
})

// DetectMode reports the host's cgroup layout by looking at what is mounted
// at /sys/fs/cgroup and /sys/fs/cgroup/unified (the result is cached).
func DetectMode() Mode { return detectMode() }

// ErrV1NoUnified is returned when linux.resources.unified is used on a host
// whose controllers are cgroup v1 (runc refuses it too).
var ErrV1NoUnified = errors.New("invalid configuration: linux.resources.unified cannot be used on cgroup v1")

// ErrNotUnified is returned by OpenDirFD on v1 and hybrid hosts, where
// CLONE_INTO_CGROUP cannot place a process into the v1 hierarchies.
var ErrNotUnified = errors.New("CLONE_INTO_CGROUP needs a pure cgroup v2 host")

// Manager manages the cgroups of one container.
type Manager interface {
	// Create makes the cgroup directories and writes the resources
	// (before any process joins). A nil res is the same as an empty one.
	// Device rules are always applied: the list given (nil = none) on top
	// of "deny everything".
	Create(res *specs.LinuxResources) error
	// Apply moves pid into the cgroup(s) (cgroup.procs in every hierarchy).
	Apply(pid int) error
	// Set writes resources again (runc update). nil fields are left alone;
	// a non-nil Devices slice replaces the whole device policy.
	Set(res *specs.LinuxResources) error
	// Freeze freezes every process and waits until the kernel reports
	// the cgroup frozen.
	Freeze() error
	// Thaw undoes Freeze and waits until the cgroup reports thawed.
	Thaw() error
	// Frozen reports whether the cgroup is frozen.
	Frozen() (bool, error)
	// Pids lists every process in the cgroup and its sub-cgroups, sorted.
	Pids() ([]int, error)
	// Stats reads the resource usage.
	Stats() (*Stats, error)
	// OOMKillCount is the number of processes the OOM killer killed in the
	// cgroup (memory.oom_control / memory.events "oom_kill").
	OOMKillCount() (uint64, error)
	// Destroy removes the container's cgroups (the leaf directories, any
	// sub-cgroups the container made, and intermediate directories this
	// manager created itself). Retries on EBUSY while processes exit;
	// idempotent; missing directories are fine.
	Destroy() error
	// Paths returns controller -> absolute directory (v2: key "" -> dir;
	// hybrid: the v1 controllers plus "" for the unified hierarchy), for
	// the runtime's state file.
	Paths() map[string]string
	// Version is 1 (v1 and hybrid) or 2.
	Version() int
	// OpenDirFD opens the v2 cgroup directory (O_PATH|O_DIRECTORY) for
	// clone3 CLONE_INTO_CGROUP; the caller closes it. Returns -1 and
	// ErrNotUnified on v1 and hybrid hosts.
	OpenDirFD() (int, error)
}

// New decides the paths for a container. cgroupsPath comes from
// config.json: "" means "<own cgroup>/<id>", a relative path is nested under
// the calling process's own cgroup (per hierarchy, from /proc/self/cgroup)
// and cannot climb out of it, an absolute path is taken from the hierarchy
// root. Nothing is created until Create.
func New(cgroupsPath, id string) (Manager, error) {
	h, err := probeHost(DetectMode())
	if err != nil {
		return nil, err
	}
	return newManager(h, cgroupsPath, id)
}

func probeHost(mode Mode) (*host, error) {
	cg, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/cgroup: %w", bareErr(err))
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, fmt.Errorf("read /proc/self/mountinfo: %w", bareErr(err))
	}
	return newHost(mode, string(cg), string(mi))
}

func newManager(h *host, cgroupsPath, id string) (Manager, error) {
	paths, mounts, err := h.resolve(cgroupsPath, id)
	if err != nil {
		return nil, err
	}
	if h.mode == Unified {
		return &v2Manager{dir: paths[""], mount: mounts[""]}, nil
	}
	return newV1Manager(paths, mounts), nil
}

// newV1Manager makes a v1 manager from controller -> directory (the hybrid
// unified directory under "") and, if known, controller -> mount point.
func newV1Manager(paths, mounts map[string]string) *v1Manager {
	m := &v1Manager{paths: make(map[string]string), mounts: make(map[string]string)}
	for k, d := range paths {
		if k == "" {
			m.unified, m.unifiedMount = d, mounts[k]
			continue
		}
		m.paths[k], m.mounts[k] = d, mounts[k]
	}
	return m
}

// Load rebuilds a manager from Paths() saved earlier. A manager made by Load
// removes only the leaf directories (and their sub-cgroups) on Destroy.
func Load(paths map[string]string) (Manager, error) {
	if len(paths) == 0 {
		return nil, errors.New("no cgroup paths to load")
	}
	for k, p := range paths {
		if !filepath.IsAbs(p) || filepath.Clean(p) != p || p == "/" {
			return nil, fmt.Errorf("invalid cgroup path %q for %q", p, displayKey(k))
		}
	}
	if d, ok := paths[""]; ok && len(paths) == 1 {
		return &v2Manager{dir: d}, nil
	}
	return newV1Manager(paths, nil), nil
}

// ---- shared helpers ----

// missingController builds the error for a resource whose controller is not
// available.
func missingController(what, controller string) error {
	return fmt.Errorf("%s requested but the %s cgroup controller is not mounted", what, controller)
}

// notEnabled rewrites ENOENT from writing a controller file into a clear
// error (v2: the controller is not enabled for the cgroup).
func notEnabled(err error, what, controller, dir string) error {
	if err != nil && errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("%s requested but the %s controller is not available in %s: %w", what, controller, dir, err)
	}
	return err
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// validateUnifiedKey checks a linux.resources.unified key: a plain file
// name, "controller.parameter".
func validateUnifiedKey(k string) error {
	if k == "" || strings.Contains(k, "/") || k == "." || k == ".." {
		return fmt.Errorf("unified resource %q must be a file name (no slashes)", k)
	}
	if !strings.Contains(k, ".") {
		return fmt.Errorf("unified resource %q must be in the form CONTROLLER.PARAMETER", k)
	}
	return nil
}
