package seccomp

import (
	"github.com/opencontainers/runtime-spec/specs-go"

	mobyseccomp "github.com/moby/profiles/seccomp"
)

// DefaultProfile returns Docker's default seccomp profile (the one in
// github.com/moby/profiles/seccomp) as an OCI configuration for a container
// whose bounding capability set is bounding: rules that Docker enables only
// with a capability (CAP_SYS_ADMIN's mount, unshare, ...; CAP_SYS_PTRACE's
// ptrace, ...) are kept only when bounding has it, and rules tied to the
// host's kernel version and architecture are resolved for this machine.
// Pass caps.DockerDefault() for Docker's default capabilities.
func DefaultProfile(bounding []string) (*specs.LinuxSeccomp, error) {
	rs := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: bounding}}}
	return mobyseccomp.GetDefaultProfile(rs)
}
