package cgroups

import (
	"fmt"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func rule(allow bool, typ string, major, minor int64, access string) specs.LinuxDeviceCgroup {
	r := specs.LinuxDeviceCgroup{Allow: allow, Type: typ, Access: access}
	if major != wildcard {
		r.Major = &major
	}
	if minor != wildcard {
		r.Minor = &minor
	}
	return r
}

func TestDeviceRuleString(t *testing.T) {
	neg := int64(-1)
	for _, c := range []struct {
		r    specs.LinuxDeviceCgroup
		want string
	}{
		{rule(true, "c", 1, 3, "rwm"), "c 1:3 rwm"},
		{rule(false, "b", 8, wildcard, "r"), "b 8:* r"},
		{rule(true, "c", wildcard, wildcard, "m"), "c *:* m"},
		{rule(true, "c", 136, wildcard, "wr"), "c 136:* rw"},
		{rule(false, "a", wildcard, wildcard, "rwm"), "a *:* rwm"},
		{rule(false, "", 1, 3, "r"), "a *:* rwm"}, // "" is "a"; the kernel ignores the rest
		{specs.LinuxDeviceCgroup{Type: "c", Major: &neg, Minor: &neg, Access: "mw"}, "c *:* wm"},
	} {
		got, err := DeviceRuleString(c.r)
		if err != nil || got != c.want {
			t.Errorf("DeviceRuleString(%+v) = %q, %v; want %q", c.r, got, err, c.want)
		}
	}
	big := int64(1) << 33
	for _, bad := range []specs.LinuxDeviceCgroup{
		rule(true, "p", 1, 3, "rwm"),
		rule(true, "c", 1, 3, ""),
		rule(true, "c", 1, 3, "rx"),
		{Type: "c", Major: &big, Access: "r"},
	} {
		if _, err := DeviceRuleString(bad); err == nil {
			t.Errorf("DeviceRuleString(%+v): want error", bad)
		}
	}
}

func TestEmulateDevices(t *testing.T) {
	// Default deny, then the usual allow list.
	s, err := emulateDevices([]specs.LinuxDeviceCgroup{
		rule(false, "a", wildcard, wildcard, "rwm"),
		rule(true, "c", 1, 3, "rwm"),
		rule(true, "c", 1, 5, "r"),
		rule(true, "c", 1, 5, "w"), // merges with the previous one
		rule(true, "c", 136, wildcard, "rwm"),
		rule(true, "c", wildcard, wildcard, "m"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.defaultAllow || len(s.exceptions) != 4 || s.exceptions[devKey{'c', 1, 5}] != accRead|accWrite {
		t.Fatalf("state: %+v", s)
	}
	checks := []struct {
		typ          byte
		major, minor uint32
		access       uint8
		want         bool
	}{
		{'c', 1, 3, accRead | accWrite, true},
		{'c', 1, 5, accRead | accWrite, true},
		{'c', 1, 5, accMknod, true}, // via c *:* m
		{'c', 1, 7, accRead, false},
		{'c', 136, 4, accWrite, true},
		{'b', 8, 0, accRead, false},
		{'b', 8, 0, accMknod, false},
	}
	for _, c := range checks {
		if got := s.allows(c.typ, c.major, c.minor, c.access); got != c.want {
			t.Errorf("allows(%c %d:%d %s) = %v", c.typ, c.major, c.minor, accessString(c.access), got)
		}
	}

	// An empty list denies everything.
	s, err = emulateDevices(nil)
	if err != nil || s.defaultAllow || s.allows('c', 1, 3, accRead) {
		t.Errorf("empty list: %+v %v", s, err)
	}

	// Allow all, then deny reads of /dev/null: a write is still allowed, a
	// read-write open is denied (any overlap with a deny exception denies).
	s, err = emulateDevices([]specs.LinuxDeviceCgroup{
		rule(true, "a", wildcard, wildcard, "rwm"),
		rule(false, "c", 1, 3, "r"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if !s.defaultAllow || s.allows('c', 1, 3, accRead) || !s.allows('c', 1, 3, accWrite) ||
		s.allows('c', 1, 3, accRead|accWrite) || !s.allows('c', 1, 5, accRead) {
		t.Errorf("allow-all with deny: %+v", s)
	}

	// A later "a" rule resets everything before it.
	s, err = emulateDevices([]specs.LinuxDeviceCgroup{
		rule(true, "c", 1, 3, "rwm"),
		rule(false, "a", wildcard, wildcard, "rwm"),
	})
	if err != nil || len(s.exceptions) != 0 || s.defaultAllow {
		t.Errorf("reset: %+v %v", s, err)
	}

	// Removing exactly what was added works; punching a hole in a wildcard
	// exception is refused (cgroup v1 would silently ignore it).
	s, err = emulateDevices([]specs.LinuxDeviceCgroup{
		rule(true, "c", 1, 3, "rwm"),
		rule(false, "c", 1, 3, "w"),
	})
	if err != nil || s.exceptions[devKey{'c', 1, 3}] != accRead|accMknod {
		t.Errorf("partial removal: %+v %v", s, err)
	}
	_, err = emulateDevices([]specs.LinuxDeviceCgroup{
		rule(true, "c", 1, wildcard, "rwm"),
		rule(false, "c", 1, 3, "r"),
	})
	if err == nil || !strings.Contains(err.Error(), "wildcard") {
		t.Errorf("hole punching: %v", err)
	}
}

// runDeviceProgram interprets the small eBPF subset deviceFilter emits, so
// the program's decisions can be checked without loading it.
func runDeviceProgram(t *testing.T, insts asm.Instructions, typ, access, major, minor uint32) bool {
	t.Helper()
	labels := make(map[string]int)
	for i, ins := range insts {
		if sym := ins.Symbol(); sym != "" {
			labels[sym] = i
		}
	}
	ctx := [3]uint32{access<<16 | typ, major, minor}
	var r [11]uint64
	for pc, steps := 0, 0; pc < len(insts); steps++ {
		if steps > 10000 {
			t.Fatal("program does not terminate")
		}
		ins := insts[pc]
		op := ins.OpCode
		cls := op.Class()
		src := func() uint64 {
			if op.Source() == asm.RegSource {
				return r[ins.Src]
			}
			return uint64(ins.Constant)
		}
		switch {
		case cls == asm.LdXClass:
			if ins.Src != asm.R1 || op.Size() != asm.Word || ins.Offset%4 != 0 {
				t.Fatalf("unexpected load %v", ins)
			}
			r[ins.Dst] = uint64(ctx[ins.Offset/4])
		case cls == asm.ALUClass: // 32-bit ALU, zero-extends
			a, b := uint32(r[ins.Dst]), uint32(src())
			switch op.ALUOp() {
			case asm.Mov:
				a = b
			case asm.And:
				a &= b
			case asm.RSh:
				a >>= b
			default:
				t.Fatalf("unexpected ALU op %v", ins)
			}
			r[ins.Dst] = uint64(a)
		case cls.IsJump():
			jop := op.JumpOp()
			if jop == asm.Exit {
				return r[asm.R0] == 1
			}
			a, b := r[ins.Dst], src()
			if cls == asm.Jump32Class {
				a, b = uint64(uint32(a)), uint64(uint32(b))
			}
			var taken bool
			switch jop {
			case asm.JNE:
				taken = a != b
			case asm.JEq:
				taken = a == b
			default:
				t.Fatalf("unexpected jump %v", ins)
			}
			if taken {
				target, ok := labels[ins.Reference()]
				if !ok {
					t.Fatalf("unknown label %q", ins.Reference())
				}
				pc = target
				continue
			}
		default:
			t.Fatalf("unexpected instruction %v", ins)
		}
		pc++
	}
	t.Fatal("fell off the end of the program")
	return false
}

// TestDeviceFilterMatchesEmulation checks the eBPF program against the
// cgroup v1 reference decision for many rule lists and every access.
func TestDeviceFilterMatchesEmulation(t *testing.T) {
	lists := [][]specs.LinuxDeviceCgroup{
		nil,
		{rule(true, "a", wildcard, wildcard, "rwm")},
		append([]specs.LinuxDeviceCgroup{rule(false, "a", wildcard, wildcard, "rwm")}, defaultRules()...),
		{rule(true, "a", wildcard, wildcard, "rwm"), rule(false, "c", 1, 3, "r")},
		{rule(true, "a", wildcard, wildcard, "rwm"), rule(false, "c", 1, wildcard, "w"), rule(false, "b", wildcard, wildcard, "m")},
		{rule(true, "c", 1, wildcard, "r"), rule(true, "c", wildcard, 3, "w"), rule(true, "b", 8, 0, "rw")},
		{rule(true, "c", 1, 3, "rwm"), rule(false, "c", 1, 3, "rw"), rule(true, "b", 8, 16, "rwm")},
		{rule(true, "c", 4294967295, 4294967295, "r")},
	}
	type dev struct {
		typ          byte
		major, minor uint32
	}
	devs := []dev{{'c', 1, 3}, {'c', 1, 5}, {'c', 1, 9}, {'c', 5, 3}, {'c', 136, 0}, {'c', 10, 200},
		{'b', 8, 0}, {'b', 8, 16}, {'b', 1, 3}, {'c', 4294967295, 4294967295}, {'c', 2147483648, 3}}
	for i, rules := range lists {
		s, err := emulateDevices(rules)
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		insts, err := deviceFilter(rules)
		if err != nil {
			t.Fatalf("list %d: %v", i, err)
		}
		for _, d := range devs {
			bpfType := uint32(2) // BPF_DEVCG_DEV_CHAR
			if d.typ == 'b' {
				bpfType = 1
			}
			for acc := uint8(1); acc <= accAll; acc++ {
				want := s.allows(d.typ, d.major, d.minor, acc)
				got := runDeviceProgram(t, insts, bpfType, uint32(acc), d.major, d.minor)
				if got != want {
					t.Errorf("list %d, %c %d:%d %s: program says %v, emulation %v\n%v", i, d.typ, d.major, d.minor, accessString(acc), got, want, insts)
				}
			}
		}
	}
}

func defaultRules() []specs.LinuxDeviceCgroup {
	out := make([]specs.LinuxDeviceCgroup, 0, len(DefaultAllowedDevices))
	for _, d := range DefaultAllowedDevices {
		out = append(out, d.Rule)
	}
	return out
}

func TestDefaultAllowedDevices(t *testing.T) {
	s, err := emulateDevices(defaultRules())
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct{ major, minor uint32 }{{1, 3}, {1, 5}, {1, 7}, {1, 8}, {1, 9}, {5, 0}, {5, 2}, {136, 7}, {10, 200}} {
		if !s.allows('c', d.major, d.minor, accRead|accWrite) {
			t.Errorf("c %d:%d rw not allowed by the defaults", d.major, d.minor)
		}
	}
	if s.allows('b', 8, 0, accRead) || !s.allows('b', 8, 0, accMknod) || s.allows('c', 4, 1, accWrite) {
		t.Error("defaults allow too much or too little")
	}
	for _, d := range DefaultAllowedDevices {
		if _, err := DeviceRuleString(d.Rule); err != nil {
			t.Error(fmt.Errorf("%s: %w", d.Path, err))
		}
	}
}
