package cgroups

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Access bits, the same values the kernel passes to cgroup device programs.
const (
	accMknod = uint8(unix.BPF_DEVCG_ACC_MKNOD)
	accRead  = uint8(unix.BPF_DEVCG_ACC_READ)
	accWrite = uint8(unix.BPF_DEVCG_ACC_WRITE)
	accAll   = accMknod | accRead | accWrite
)

// DefaultDevice is one entry of DefaultAllowedDevices.
type DefaultDevice struct {
	// Path of the device node runc creates for it ("" for pure rules).
	Path string
	Rule specs.LinuxDeviceCgroup
}

func i64(v int64) *int64 { return &v }

// DefaultAllowedDevices are the device rules runc appends to the end of
// every container's linux.resources.devices (so a container can always use
// them; runc drops an entry whose Path is also listed in linux.devices, in
// favour of that device). The cgroups package applies exactly the rules it
// is given: appending these is the runtime core's decision.
var DefaultAllowedDevices = []DefaultDevice{
	{Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Access: "m"}},
	{Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "b", Access: "m"}},
	{Path: "/dev/null", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(3), Access: "rwm"}},
	{Path: "/dev/random", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(8), Access: "rwm"}},
	{Path: "/dev/full", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(7), Access: "rwm"}},
	{Path: "/dev/tty", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(0), Access: "rwm"}},
	{Path: "/dev/zero", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(5), Access: "rwm"}},
	{Path: "/dev/urandom", Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(1), Minor: i64(9), Access: "rwm"}},
	// /dev/pts/*
	{Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(136), Access: "rwm"}},
	// /dev/ptmx
	{Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(5), Minor: i64(2), Access: "rwm"}},
	// /dev/net/tun (kept by runc for backward compatibility)
	{Rule: specs.LinuxDeviceCgroup{Allow: true, Type: "c", Major: i64(10), Minor: i64(200), Access: "rwm"}},
}

// wildcard is the major/minor value meaning "any".
const wildcard = -1

// devRule is a validated OCI device rule.
type devRule struct {
	allow  bool
	typ    byte // 'a', 'c' or 'b'
	major  int64
	minor  int64
	access uint8
}

func parseAccess(s string) (uint8, error) {
	if s == "" {
		return 0, fmt.Errorf("device access cannot be empty")
	}
	var a uint8
	for _, c := range s {
		switch c {
		case 'r':
			a |= accRead
		case 'w':
			a |= accWrite
		case 'm':
			a |= accMknod
		default:
			return 0, fmt.Errorf("invalid device access %q (want a combination of r, w, m)", s)
		}
	}
	return a, nil
}

func accessString(a uint8) string {
	var b strings.Builder
	if a&accRead != 0 {
		b.WriteByte('r')
	}
	if a&accWrite != 0 {
		b.WriteByte('w')
	}
	if a&accMknod != 0 {
		b.WriteByte('m')
	}
	return b.String()
}

// parseDeviceRule validates an OCI rule: type "" means "a", a nil or -1
// major/minor means any, access must be non-empty (runc rejects empty).
func parseDeviceRule(r specs.LinuxDeviceCgroup) (devRule, error) {
	d := devRule{allow: r.Allow, major: wildcard, minor: wildcard}
	switch r.Type {
	case "", "a":
		d.typ = 'a'
	case "c", "b":
		d.typ = r.Type[0]
	default:
		return d, fmt.Errorf("invalid device rule type %q (want a, c or b)", r.Type)
	}
	for _, v := range []struct {
		p   *int64
		dst *int64
		n   string
	}{{r.Major, &d.major, "major"}, {r.Minor, &d.minor, "minor"}} {
		if v.p == nil || *v.p == wildcard {
			continue
		}
		if *v.p < 0 || *v.p > math.MaxUint32 {
			return d, fmt.Errorf("invalid device %s number %d", v.n, *v.p)
		}
		*v.dst = *v.p
	}
	var err error
	if d.access, err = parseAccess(r.Access); err != nil {
		return d, err
	}
	if d.typ == 'a' {
		// The kernel ignores everything after 'a': it means every device
		// with every access.
		d.major, d.minor, d.access = wildcard, wildcard, accAll
	}
	return d, nil
}

func (d devRule) String() string {
	num := func(n int64) string {
		if n == wildcard {
			return "*"
		}
		return strconv.FormatInt(n, 10)
	}
	return fmt.Sprintf("%c %s:%s %s", d.typ, num(d.major), num(d.minor), accessString(d.access))
}

// DeviceRuleString formats an OCI device rule the way cgroup v1
// devices.allow / devices.deny expect it: "c 1:3 rwm", "b 8:* r", and
// "a *:* rwm" for the all-devices rule. It also validates the rule.
func DeviceRuleString(r specs.LinuxDeviceCgroup) (string, error) {
	d, err := parseDeviceRule(r)
	if err != nil {
		return "", err
	}
	return d.String(), nil
}

// devKey identifies an exception entry (type c or b, majors/minors may be
// wildcard).
type devKey struct {
	typ   byte
	major int64
	minor int64
}

// deviceState is the result of applying a device rule list in order, with
// the semantics of the cgroup v1 devices controller: a default policy and a
// list of exceptions that have the opposite effect.
type deviceState struct {
	defaultAllow bool
	exceptions   map[devKey]uint8
}

// emulateDevices applies rules in order starting from "deny everything"
// (the state of a fresh container) and returns the resulting policy. Like
// runc's emulator it refuses rules that would punch a hole in a wildcard
// exception, which cgroup v1 would silently ignore.
func emulateDevices(rules []specs.LinuxDeviceCgroup) (*deviceState, error) {
	s := &deviceState{exceptions: make(map[devKey]uint8)}
	for i, r := range rules {
		d, err := parseDeviceRule(r)
		if err != nil {
			return nil, fmt.Errorf("device rule %d: %w", i, err)
		}
		if err := s.apply(d); err != nil {
			return nil, fmt.Errorf("device rule %d (%s %s): %w", i, allowWord(d.allow), d, err)
		}
	}
	return s, nil
}

func allowWord(allow bool) string {
	if allow {
		return "allow"
	}
	return "deny"
}

func (s *deviceState) apply(d devRule) error {
	if d.typ == 'a' {
		s.defaultAllow = d.allow
		clear(s.exceptions)
		return nil
	}
	k := devKey{d.typ, d.major, d.minor}
	if d.allow != s.defaultAllow {
		// Adds an exception (allow in deny-all mode, deny in allow-all mode).
		s.exceptions[k] |= d.access
		return nil
	}
	// Same effect as the default: remove the matching exception bits. Only
	// an exact match is removed (as the kernel does); refuse if a wildcard
	// exception that covers this device keeps some of these bits.
	for _, w := range []devKey{{d.typ, wildcard, d.minor}, {d.typ, d.major, wildcard}, {d.typ, wildcard, wildcard}} {
		if w == k {
			continue
		}
		if a := s.exceptions[w] & d.access; a != 0 {
			return fmt.Errorf("cannot %s part of the wildcard exception %s (cgroup v1 would ignore it)",
				allowWord(d.allow), devRule{typ: w.typ, major: w.major, minor: w.minor, access: s.exceptions[w]})
		}
	}
	if left := s.exceptions[k] &^ d.access; left != 0 {
		s.exceptions[k] = left
	} else {
		delete(s.exceptions, k)
	}
	return nil
}

// sortedExceptions returns the exceptions in a deterministic order.
func (s *deviceState) sortedExceptions() []devRule {
	out := make([]devRule, 0, len(s.exceptions))
	for k, a := range s.exceptions {
		out = append(out, devRule{allow: !s.defaultAllow, typ: k.typ, major: k.major, minor: k.minor, access: a})
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.typ != b.typ {
			return a.typ < b.typ
		}
		if a.major != b.major {
			return a.major < b.major
		}
		if a.minor != b.minor {
			return a.minor < b.minor
		}
		return a.access < b.access
	})
	return out
}

// allows is the reference decision of the cgroup v1 devices controller for
// a device access (typ 'c' or 'b', access a non-empty set of acc* bits).
// The eBPF program built by deviceFilter must decide the same way.
func (s *deviceState) allows(typ byte, major, minor uint32, access uint8) bool {
	for k, a := range s.exceptions {
		if k.typ != typ || (k.major != wildcard && k.major != int64(major)) || (k.minor != wildcard && k.minor != int64(minor)) {
			continue
		}
		if s.defaultAllow {
			// Deny exception: any overlap denies.
			if a&access != 0 {
				return false
			}
		} else if access&^a == 0 {
			// Allow exception: it must grant every requested bit.
			return true
		}
	}
	return s.defaultAllow
}
