package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	units "github.com/docker/go-units"
)

// Config is berthd's configuration: its flags, and /etc/berth/daemon.json with dockerd's keys.
type Config struct {
	// Hosts are the addresses the API listens on ("unix:///run/berth/berth.sock").
	Hosts []string `json:"hosts,omitempty"`
	// DataRoot holds images, container records, logs and volumes.
	DataRoot string `json:"data-root,omitempty"`
	// ExecRoot holds runtime state, shims' directories and bundles (a tmpfs is right).
	ExecRoot string `json:"exec-root,omitempty"`
	Debug    bool   `json:"debug,omitempty"`
	// LogDriver is the default log driver: json-file or none.
	LogDriver string            `json:"log-driver,omitempty"`
	LogOpts   map[string]string `json:"log-opts,omitempty"`
	// CgroupParent is the default cgroup parent of containers; a relative path nests under
	// berthd's own cgroup. Default "berth".
	CgroupParent string `json:"cgroup-parent,omitempty"`
	// DefaultShmSize is /dev/shm's size when a container does not say ("64M").
	DefaultShmSize string `json:"default-shm-size,omitempty"`
	// ShutdownTimeout is not used to stop containers (they outlive berthd); it bounds how long
	// berthd waits for API requests in flight when it is told to exit, in seconds.
	ShutdownTimeout int `json:"shutdown-timeout,omitempty"`

	// Binaries, found next to berthd's own executable unless set (not in daemon.json).
	ShimBinary    string `json:"-"`
	RuntimeBinary string `json:"-"`
	InitBinary    string `json:"-"`
}

// Defaults of dockerd's flags, for berth.
const (
	DefaultDataRoot   = "/var/lib/berth"
	DefaultExecRoot   = "/run/berth"
	DefaultConfigFile = "/etc/berth/daemon.json"
)

// DefaultHost is the API's address when none is given.
func DefaultHost(execRoot string) string {
	return "unix://" + filepath.Join(execRoot, "berth.sock")
}

// LoadConfigFile reads a daemon.json. A missing file is not an error when optional (the
// default path); unknown keys are refused as dockerd refuses them.
func LoadConfigFile(path string, optional bool) (*Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) && optional {
		return &c, nil
	}
	if err != nil {
		return nil, fmt.Errorf("unable to configure the daemon: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return &c, nil
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	known := map[string]bool{}
	for _, k := range []string{"hosts", "data-root", "exec-root", "debug", "log-driver", "log-opts", "cgroup-parent", "default-shm-size", "shutdown-timeout"} {
		known[k] = true
	}
	var unknown []string
	for k := range raw {
		if !known[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return nil, fmt.Errorf("unable to configure the daemon with file %s: the following directives don't match any configuration option: %v", path, unknown)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("unable to configure the daemon with file %s: %w", path, err)
	}
	return &c, nil
}

// fill sets defaults and checks values.
func (c *Config) fill() error {
	if c.DataRoot == "" {
		c.DataRoot = DefaultDataRoot
	}
	if c.ExecRoot == "" {
		c.ExecRoot = DefaultExecRoot
	}
	var err error
	if c.DataRoot, err = filepath.Abs(c.DataRoot); err != nil {
		return err
	}
	if c.ExecRoot, err = filepath.Abs(c.ExecRoot); err != nil {
		return err
	}
	if c.LogDriver == "" {
		c.LogDriver = "json-file"
	}
	if err := checkLogConfig(c.LogDriver, c.LogOpts); err != nil {
		return err
	}
	if c.CgroupParent == "" {
		c.CgroupParent = "berth"
	}
	if c.DefaultShmSize != "" {
		if _, err := units.RAMInBytes(c.DefaultShmSize); err != nil {
			return fmt.Errorf("default-shm-size: %w", err)
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	dir := filepath.Dir(self)
	for _, b := range []struct {
		p    *string
		name string
	}{{&c.ShimBinary, "berth-shim"}, {&c.RuntimeBinary, "berth-runtime"}, {&c.InitBinary, "berth-init"}} {
		if *b.p == "" {
			*b.p = filepath.Join(dir, b.name)
		}
		if _, err := os.Stat(*b.p); err != nil {
			return fmt.Errorf("%s: %w (it ships next to berthd)", b.name, err)
		}
	}
	return nil
}

// checkLogConfig checks a log driver and its options as dockerd does at create.
func checkLogConfig(driver string, opts map[string]string) error {
	switch driver {
	case "json-file", "local":
	case "none":
		if len(opts) > 0 {
			return fmt.Errorf("the none log driver takes no options")
		}
		return nil
	default:
		return fmt.Errorf("logger: no log driver named '%s' is registered", driver)
	}
	for k, v := range opts {
		switch k {
		case "max-size":
			if _, err := units.RAMInBytes(v); err != nil {
				return fmt.Errorf("invalid max-size %q: %w", v, err)
			}
		case "max-file":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return fmt.Errorf("max-file %q: must be a number of at least 1", v)
			}
		case "compress":
			if v != "false" {
				return fmt.Errorf("log opt compress: berth does not compress rotated logs")
			}
		default:
			return fmt.Errorf("unknown log opt '%s' for %s log driver", k, driver)
		}
	}
	return nil
}
