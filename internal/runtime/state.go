package runtime

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/atomicfile"
)

// Status values, as the runtime spec names them.
const (
	StatusCreating = "creating"
	StatusCreated  = "created"
	StatusRunning  = "running"
	StatusStopped  = "stopped"
	StatusPaused   = "paused"
)

// ErrNotExist is returned for an unknown container id.
var ErrNotExist = errors.New("container does not exist")

// ErrExist is returned when a container id is taken.
var ErrExist = errors.New("container already exists")

// Container is what berth-runtime records about a container in <root>/<id>/state.json.
type Container struct {
	ID          string            `json:"id"`
	Bundle      string            `json:"bundle"`
	Rootfs      string            `json:"rootfs"`
	Pid         int               `json:"init_process_pid"`
	PidStart    uint64            `json:"init_process_start"`
	Created     time.Time         `json:"created"`
	Owner       string            `json:"owner"`
	CgroupPaths map[string]string `json:"cgroup_paths"`
	// Config is the container's spec (config.json, with updates), decoded by Spec on first
	// use: start, delete, state and kill need only its hooks and annotations (meta), and
	// decoding a whole spec costs a fresh runtime process 1-2 ms.
	Config json.RawMessage `json:"config"`

	spec *specs.Spec // Config decoded; set from the start for a container being created
	meta specMeta
	dir  string
}

// specMeta is the part of a container's spec that Load decodes.
type specMeta struct {
	Hooks       *specs.Hooks      `json:"hooks"`
	Annotations map[string]string `json:"annotations"`
}

// Spec returns the container's spec, decoding Config on first use.
func (c *Container) Spec() (*specs.Spec, error) {
	if c.spec == nil {
		var s specs.Spec
		if err := json.Unmarshal(c.Config, &s); err != nil {
			return nil, fmt.Errorf("state of %s is corrupt: %w", c.ID, err)
		}
		c.spec = &s
	}
	return c.spec, nil
}

// hooks returns the spec's hooks (nil if none) without decoding the rest of it.
func (c *Container) hooks() *specs.Hooks {
	if c.spec != nil {
		return c.spec.Hooks
	}
	return c.meta.Hooks
}

// annotations returns the spec's annotations without decoding the rest of it.
func (c *Container) annotations() map[string]string {
	if c.spec != nil {
		return c.spec.Annotations
	}
	return c.meta.Annotations
}

var validID = regexp.MustCompile(`^[\w+\-.]+$`)

// ValidateID checks a container id as runc does.
func ValidateID(id string) error {
	if id == "" || id == "." || id == ".." || !validID.MatchString(id) {
		return fmt.Errorf("invalid container id %q: use letters, digits, '_', '+', '-' and '.'", id)
	}
	return nil
}

func (r *Runtime) dir(id string) string { return filepath.Join(r.Root, id) }

// Load reads a container's state.
func (r *Runtime) Load(id string) (*Container, error) {
	if err := ValidateID(id); err != nil {
		return nil, err
	}
	dir := r.dir(id)
	data, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("container %s: %w", id, ErrNotExist)
		}
		return nil, fmt.Errorf("read state of %s: %w", id, err)
	}
	c := &Container{dir: dir}
	if err := json.Unmarshal(data, c); err != nil {
		return nil, fmt.Errorf("state of %s is corrupt: %w", id, err)
	}
	if len(c.Config) > 0 {
		if err := json.Unmarshal(c.Config, &c.meta); err != nil {
			return nil, fmt.Errorf("state of %s is corrupt: %w", id, err)
		}
	}
	return c, nil
}

func (c *Container) save() error {
	if c.spec != nil {
		cfg, err := json.Marshal(c.spec)
		if err != nil {
			return err
		}
		c.Config = cfg
	}
	data, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return atomicfile.WriteFile(filepath.Join(c.dir, "state.json"), data, 0o600, atomicfile.Renamed)
}

// procStat returns the state letter and start time (clock ticks since boot) of pid.
func procStat(pid int) (byte, uint64, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, 0, err
	}
	return fields[0][0], start, nil
}

// alive reports whether the container's init still runs (not a zombie, not a reused pid).
func (c *Container) alive() bool {
	if c.Pid <= 0 {
		return false
	}
	st, start, err := procStat(c.Pid)
	if err != nil || start != c.PidStart {
		return false
	}
	return st != 'Z' && st != 'X'
}

// Status works the container's status out from the system.
func (r *Runtime) Status(c *Container) string {
	if !c.alive() {
		return StatusStopped
	}
	if _, err := os.Stat(filepath.Join(c.dir, execFifo)); err == nil {
		return StatusCreated
	}
	if cg, err := r.cgroup(c); err == nil {
		if frozen, err := cg.Frozen(); err == nil && frozen {
			return StatusPaused
		}
	}
	return StatusRunning
}

// State is the runtime-spec state plus the fields runc adds.
type State struct {
	specs.State
	Rootfs  string    `json:"rootfs"`
	Created time.Time `json:"created"`
	Owner   string    `json:"owner"`
}

// StateOf returns the spec state of a container, its status worked out from the system.
func (r *Runtime) StateOf(c *Container) State {
	status := r.Status(c)
	pid := c.Pid
	if status == StatusStopped {
		pid = 0
	}
	return c.stateAs(status, pid)
}

// stateAs is the spec state of a container whose status and pid the caller knows (the hooks and
// the seccomp agent of a container being made or removed).
func (c *Container) stateAs(status string, pid int) State {
	st := State{State: specs.State{Version: specs.Version, ID: c.ID, Bundle: c.Bundle, Status: specs.ContainerState(status), Pid: pid},
		Rootfs: c.Rootfs, Created: c.Created, Owner: c.Owner}
	st.Annotations = c.annotations()
	return st
}

// List returns every container under the root.
func (r *Runtime) List() ([]*Container, error) {
	ents, err := os.ReadDir(r.Root)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var out []*Container
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		c, err := r.Load(e.Name())
		if err != nil {
			continue
		}
		out = append(out, c)
	}
	return out, nil
}
