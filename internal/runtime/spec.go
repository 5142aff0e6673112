package runtime

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// ErrInvalidConfig marks a config.json that cannot be run.
var ErrInvalidConfig = errors.New("invalid configuration")

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
}

// LoadSpec reads and validates bundle/config.json.
func LoadSpec(bundle string) (*specs.Spec, error) {
	path := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: no config.json in bundle %s", ErrInvalidConfig, bundle)
		}
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	spec, err := ParseSpec(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return spec, nil
}

// ParseSpec decodes a config.json with errors that point at the offending line.
func ParseSpec(data []byte) (*specs.Spec, error) {
	var spec specs.Spec
	if err := json.Unmarshal(data, &spec); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			line, col := lineCol(data, se.Offset)
			return nil, invalidf("malformed JSON at line %d, column %d: %v", line, col, err)
		case errors.As(err, &te):
			line, col := lineCol(data, te.Offset)
			return nil, invalidf("field %q at line %d, column %d: cannot use JSON %s as %s", te.Field, line, col, te.Value, te.Type)
		}
		return nil, invalidf("%v", err)
	}
	if err := Validate(&spec); err != nil {
		return nil, err
	}
	return &spec, nil
}

func lineCol(data []byte, off int64) (int, int) {
	if off > int64(len(data)) {
		off = int64(len(data))
	}
	before := data[:off]
	line := bytes.Count(before, []byte("\n")) + 1
	col := int(off) - bytes.LastIndexByte(before, '\n')
	return line, col
}

var nsTypes = map[specs.LinuxNamespaceType]bool{
	specs.PIDNamespace: true, specs.NetworkNamespace: true, specs.MountNamespace: true,
	specs.IPCNamespace: true, specs.UTSNamespace: true, specs.UserNamespace: true,
	specs.CgroupNamespace: true, specs.TimeNamespace: true,
}

// Validate checks the parts of a spec that berth relies on, with messages naming the field.
func Validate(s *specs.Spec) error {
	if s.Version == "" {
		return invalidf("ociVersion is missing")
	}
	if !strings.HasPrefix(s.Version, "1.") {
		return invalidf("ociVersion %q is not supported (want 1.x)", s.Version)
	}
	if s.Root == nil || s.Root.Path == "" {
		return invalidf("root.path is missing")
	}
	if s.Process != nil {
		if err := validateProcess(s.Process); err != nil {
			return err
		}
	}
	if s.Linux == nil {
		return invalidf("linux section is missing")
	}
	seen := map[specs.LinuxNamespaceType]bool{}
	for _, ns := range s.Linux.Namespaces {
		if !nsTypes[ns.Type] {
			return invalidf("linux.namespaces: unknown namespace type %q", ns.Type)
		}
		if seen[ns.Type] {
			return invalidf("linux.namespaces: namespace %q listed twice", ns.Type)
		}
		seen[ns.Type] = true
		if ns.Path != "" && !filepath.IsAbs(ns.Path) {
			return invalidf("linux.namespaces: %s path %q is not absolute", ns.Type, ns.Path)
		}
	}
	if s.Hostname != "" && !seen[specs.UTSNamespace] {
		return invalidf("hostname requires a new uts namespace")
	}
	if s.Domainname != "" && !seen[specs.UTSNamespace] {
		return invalidf("domainname requires a new uts namespace")
	}
	if (len(s.Linux.UIDMappings) > 0 || len(s.Linux.GIDMappings) > 0) && !seen[specs.UserNamespace] {
		return invalidf("uidMappings/gidMappings require a user namespace")
	}
	if seen[specs.UserNamespace] && nsPath(s, specs.UserNamespace) == "" && (len(s.Linux.UIDMappings) == 0 || len(s.Linux.GIDMappings) == 0) {
		return invalidf("a new user namespace needs uidMappings and gidMappings")
	}
	if len(s.Linux.TimeOffsets) > 0 && !seen[specs.TimeNamespace] {
		return invalidf("timeOffsets require a time namespace")
	}
	for i, m := range s.Mounts {
		if !filepath.IsAbs(m.Destination) {
			return invalidf("mounts[%d]: destination %q is not absolute", i, m.Destination)
		}
	}
	for i, d := range s.Linux.Devices {
		switch d.Type {
		case "c", "b", "u", "p":
		default:
			return invalidf("linux.devices[%d] %s: unknown device type %q", i, d.Path, d.Type)
		}
		if !filepath.IsAbs(d.Path) || !strings.HasPrefix(filepath.Clean(d.Path), "/dev/") {
			return invalidf("linux.devices[%d]: path %q must be under /dev", i, d.Path)
		}
	}
	for k := range s.Linux.Sysctl {
		if err := validateSysctl(k, seen); err != nil {
			return err
		}
	}
	if s.Linux.RootfsPropagation != "" {
		if _, ok := propagationFlags[s.Linux.RootfsPropagation]; !ok {
			return invalidf("linux.rootfsPropagation: unknown value %q", s.Linux.RootfsPropagation)
		}
	}
	return nil
}

func validateProcess(p *specs.Process) error {
	if len(p.Args) == 0 && p.CommandLine == "" {
		return invalidf("process.args must not be empty")
	}
	if p.Cwd == "" || !filepath.IsAbs(p.Cwd) {
		return invalidf("process.cwd %q must be an absolute path", p.Cwd)
	}
	for _, r := range p.Rlimits {
		if _, ok := rlimitNumbers[r.Type]; !ok {
			return invalidf("process.rlimits: unknown rlimit type %q", r.Type)
		}
		if r.Soft > r.Hard {
			return invalidf("process.rlimits: %s soft limit %d is above the hard limit %d", r.Type, r.Soft, r.Hard)
		}
	}
	for _, e := range p.Env {
		if !strings.Contains(e, "=") {
			return invalidf("process.env: %q is not KEY=value", e)
		}
	}
	return nil
}

func validateSysctl(k string, ns map[specs.LinuxNamespaceType]bool) error {
	ipc := map[string]bool{"kernel.msgmax": true, "kernel.msgmnb": true, "kernel.msgmni": true,
		"kernel.sem": true, "kernel.shmall": true, "kernel.shmmax": true, "kernel.shmmni": true,
		"kernel.shm_rmid_forced": true}
	switch {
	case ipc[k] || strings.HasPrefix(k, "fs.mqueue."):
		if !ns[specs.IPCNamespace] {
			return invalidf("sysctl %q needs a new ipc namespace", k)
		}
	case strings.HasPrefix(k, "net."):
		if !ns[specs.NetworkNamespace] {
			return invalidf("sysctl %q needs a new network namespace", k)
		}
	case k == "kernel.hostname" || k == "kernel.domainname":
		if !ns[specs.UTSNamespace] {
			return invalidf("sysctl %q needs a new uts namespace", k)
		}
	default:
		return invalidf("sysctl %q is not namespaced and cannot be set in a container", k)
	}
	if strings.Contains(k, "..") || strings.Contains(k, "/") && strings.Contains(k, ".") && strings.HasPrefix(k, "/") {
		return invalidf("sysctl %q is not a valid name", k)
	}
	return nil
}

// nsPath returns the path of namespace t if the spec joins it, or "".
func nsPath(s *specs.Spec, t specs.LinuxNamespaceType) string {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return ns.Path
		}
	}
	return ""
}

// hasNS reports whether the spec lists namespace t (new or joined).
func hasNS(s *specs.Spec, t specs.LinuxNamespaceType) bool {
	for _, ns := range s.Linux.Namespaces {
		if ns.Type == t {
			return true
		}
	}
	return false
}
