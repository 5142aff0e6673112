package runtime

import (
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func i64p(v int64) *int64 { return &v }

// defaultDeviceRules are allowed on top of the spec's device cgroup rules, as runc does: the
// default device nodes, any mknod, and ptys.
var defaultDeviceRules = []specs.LinuxDeviceCgroup{
	{Allow: true, Type: "c", Access: "m"},
	{Allow: true, Type: "b", Access: "m"},
	{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(3), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(8), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(7), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(5), Minor: i64p(0), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(5), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(1), Minor: i64p(9), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(5), Minor: i64p(1), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(136), Access: "rwm"},
	{Allow: true, Type: "c", Major: i64p(5), Minor: i64p(2), Access: "rwm"},
}

// cgroupResources is the spec's resources with the implicit device rules added.
func cgroupResources(s *specs.Spec) *specs.LinuxResources {
	var res specs.LinuxResources
	if s.Linux.Resources != nil {
		res = *s.Linux.Resources
	}
	if s.Linux.Resources == nil || s.Linux.Resources.Devices == nil {
		// no device rules at all: runc still confines to the defaults
		res.Devices = []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}}
	}
	res.Devices = append(append([]specs.LinuxDeviceCgroup{}, res.Devices...), defaultDeviceRules...)
	for _, d := range s.Linux.Devices {
		t := d.Type
		if t == "u" {
			t = "c"
		}
		if t == "p" {
			continue
		}
		res.Devices = append(res.Devices, specs.LinuxDeviceCgroup{Allow: true, Type: t, Major: i64p(d.Major), Minor: i64p(d.Minor), Access: "rwm"})
	}
	return &res
}

// mergeResources records an update in the saved spec.
func mergeResources(s *specs.Spec, u *specs.LinuxResources) {
	if s.Linux.Resources == nil {
		s.Linux.Resources = &specs.LinuxResources{}
	}
	r := s.Linux.Resources
	if u.Memory != nil {
		if r.Memory == nil {
			r.Memory = &specs.LinuxMemory{}
		}
		m := u.Memory
		if m.Limit != nil {
			r.Memory.Limit = m.Limit
		}
		if m.Reservation != nil {
			r.Memory.Reservation = m.Reservation
		}
		if m.Swap != nil {
			r.Memory.Swap = m.Swap
		}
	}
	if u.CPU != nil {
		if r.CPU == nil {
			r.CPU = &specs.LinuxCPU{}
		}
		c := u.CPU
		if c.Shares != nil {
			r.CPU.Shares = c.Shares
		}
		if c.Quota != nil {
			r.CPU.Quota = c.Quota
		}
		if c.Period != nil {
			r.CPU.Period = c.Period
		}
		if c.Cpus != "" {
			r.CPU.Cpus = c.Cpus
		}
		if c.Mems != "" {
			r.CPU.Mems = c.Mems
		}
	}
	if u.Pids != nil {
		r.Pids = u.Pids
	}
	if u.BlockIO != nil {
		r.BlockIO = u.BlockIO
	}
	if u.Unified != nil {
		r.Unified = u.Unified
	}
}
