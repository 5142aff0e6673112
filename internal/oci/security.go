package oci

import (
	"fmt"
	"strconv"
	"strings"

	mobyseccomp "github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"

	"berth/internal/runtime/caps"
	"berth/internal/runtime/seccomp"
)

// Seccomp profile names with a meaning of their own in security-opt seccomp=... and in a
// daemon's default profile.
const (
	// SeccompUnconfined runs the container without a seccomp filter.
	SeccompUnconfined = "unconfined"
	// SeccompBuiltin is Docker's default profile, whatever the daemon's default is.
	SeccompBuiltin = "builtin"
)

// SecurityOptions is what a container's security-opt list asks for.
type SecurityOptions struct {
	// NoNewPrivileges is set by "no-new-privileges" or "no-new-privileges=<bool>"; nil when
	// the list does not mention it (the daemon's default applies).
	NoNewPrivileges *bool
	// Seccomp is "" (the daemon's default), SeccompUnconfined, SeccompBuiltin, or a profile's
	// JSON (the docker CLI sends the file's contents).
	Seccomp string
	// WritableCgroups is set by "writable-cgroups=<bool>": /sys/fs/cgroup read-write.
	WritableCgroups *bool
	// AppArmor and Labels are accepted and kept for inspection, but ignored: berth runs no LSM.
	AppArmor string
	Labels   []string
}

// ParseSecurityOpt parses HostConfig.SecurityOpt as dockerd does (key=value, or the
// deprecated key:value), with dockerd's messages.
func ParseSecurityOpt(list []string) (*SecurityOptions, error) {
	so := &SecurityOptions{}
	for _, opt := range list {
		if opt == "no-new-privileges" {
			t := true
			so.NoNewPrivileges = &t
			continue
		}
		if opt == "disable" {
			so.Labels = append(so.Labels, "disable")
			continue
		}
		var k, v string
		var ok bool
		if strings.Contains(opt, "=") {
			k, v, ok = strings.Cut(opt, "=")
		} else if strings.Contains(opt, ":") {
			k, v, ok = strings.Cut(opt, ":")
		}
		if !ok {
			return nil, fmt.Errorf("invalid --security-opt 1: %q", opt)
		}
		switch k {
		case "label":
			so.Labels = append(so.Labels, v)
		case "apparmor":
			so.AppArmor = v
		case "seccomp":
			so.Seccomp = v
		case "no-new-privileges", "writable-cgroups":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("invalid --security-opt 2: %q", opt)
			}
			if k == "no-new-privileges" {
				so.NoNewPrivileges = &b
			} else {
				so.WritableCgroups = &b
			}
		default:
			return nil, fmt.Errorf("invalid --security-opt 2: %q", opt)
		}
	}
	return so, nil
}

// seccompProfile returns the container's seccomp configuration, or nil for none, as dockerd's
// WithSeccomp decides: none when privileged or unconfined; the container's own profile
// (JSON); else the daemon's default (daemonDefault: JSON, SeccompUnconfined, or "" for
// Docker's). bounding is the container's bounding capability set: rules of the default
// profile tied to a capability are kept only when the container has it.
func seccompProfile(own, daemonDefault string, privileged bool, bounding []string) (*specs.LinuxSeccomp, error) {
	if own == SeccompUnconfined || privileged {
		return nil, nil
	}
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
	switch {
	case own == SeccompBuiltin:
		return seccomp.DefaultProfile(bounding)
	case own != "":
		p, err := mobyseccomp.LoadProfile(own, rs)
		if err != nil {
			return nil, fmt.Errorf("seccomp profile: %w", err)
		}
		return p, nil
	case daemonDefault == SeccompUnconfined:
		return nil, nil
	case daemonDefault != "":
		p, err := mobyseccomp.LoadProfile(daemonDefault, rs)
		if err != nil {
			return nil, fmt.Errorf("daemon's default seccomp profile: %w", err)
		}
		return p, nil
	}
	return seccomp.DefaultProfile(bounding)
}

// validateSeccompJSON checks that a container's own profile decodes and applies.
func validateSeccompJSON(profile string) error {
	if profile == "" || profile == SeccompUnconfined || profile == SeccompBuiltin {
		return nil
	}
	_, err := seccompProfile(profile, "", false, caps.DockerDefault())
	return err
}
