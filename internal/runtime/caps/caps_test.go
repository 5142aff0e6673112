package caps

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

func TestTable(t *testing.T) {
	if MaxKnown != unix.CAP_CHECKPOINT_RESTORE {
		t.Fatalf("MaxKnown = %d, want %d", MaxKnown, unix.CAP_CHECKPOINT_RESTORE)
	}
	for n, name := range byNumber {
		if name == "" {
			t.Fatalf("capability %d has no name", n)
		}
		if got, ok := Number(name); !ok || got != n {
			t.Errorf("Number(%q) = %d, %v; want %d", name, got, ok, n)
		}
		if Name(n) != name {
			t.Errorf("Name(%d) = %q, want %q", n, Name(n), name)
		}
	}
	if n, ok := Number("CAP_SYS_ADMIN"); !ok || n != 21 {
		t.Errorf("CAP_SYS_ADMIN = %d, %v", n, ok)
	}
	if Name(55) != "CAP_55" {
		t.Errorf("Name(55) = %q", Name(55))
	}
}

func TestLastCap(t *testing.T) {
	lc := LastCap()
	if lc < 36 || lc > 63 {
		t.Fatalf("LastCap() = %d", lc)
	}
	if All() != 1<<(uint(lc)+1)-1 {
		t.Fatalf("All() = %#x", All())
	}
	dir := t.TempDir()
	p := filepath.Join(dir, "cap_last_cap")
	if err := os.WriteFile(p, []byte("37\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readLastCap(p); got != 37 {
		t.Errorf("readLastCap = %d, want 37", got)
	}
	if got := readLastCap(filepath.Join(dir, "missing")); got != MaxKnown {
		t.Errorf("readLastCap(missing) = %d, want %d", got, MaxKnown)
	}
	if err := os.WriteFile(p, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := readLastCap(p); got != MaxKnown {
		t.Errorf("readLastCap(garbage) = %d, want %d", got, MaxKnown)
	}
}

func TestParse(t *testing.T) {
	bits, unknown := Parse([]string{"CAP_CHOWN", "CAP_FOO", "CAP_SYS_ADMIN", "cap_kill", "CAP_CHOWN"})
	if want := uint64(1<<unix.CAP_CHOWN | 1<<unix.CAP_SYS_ADMIN); bits != want {
		t.Errorf("bits = %#x, want %#x", bits, want)
	}
	if !reflect.DeepEqual(unknown, []string{"CAP_FOO", "cap_kill"}) {
		t.Errorf("unknown = %q", unknown)
	}
	bits, unknown = Parse(nil)
	if bits != 0 || unknown != nil {
		t.Errorf("Parse(nil) = %#x, %q", bits, unknown)
	}
	// Every known name parses when the kernel supports it.
	all, unknown := Parse(byNumber[:])
	if LastCap() >= MaxKnown {
		if len(unknown) != 0 || all != 1<<(MaxKnown+1)-1 {
			t.Errorf("Parse(all) = %#x, %q", all, unknown)
		}
	}
}

func TestParseAboveLastCap(t *testing.T) {
	old := lastCap
	defer func() { lastCap = old }()
	lastCap = func() int { return 37 }
	bits, unknown := Parse([]string{"CAP_AUDIT_READ", "CAP_PERFMON", "CAP_BPF"})
	if bits != 1<<unix.CAP_AUDIT_READ {
		t.Errorf("bits = %#x", bits)
	}
	if !reflect.DeepEqual(unknown, []string{"CAP_PERFMON", "CAP_BPF"}) {
		t.Errorf("unknown = %q", unknown)
	}
	if All() != 1<<38-1 {
		t.Errorf("All() = %#x", All())
	}
	s, warnings := FromSpec(&specs.LinuxCapabilities{Bounding: []string{"CAP_BPF"}})
	if s.Bounding != 0 || len(warnings) != 1 || !strings.Contains(warnings[0], "not supported by the kernel") {
		t.Errorf("FromSpec: %+v %q", s, warnings)
	}
}

func TestNames(t *testing.T) {
	bits := uint64(1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_CHOWN | 1<<unix.CAP_CHECKPOINT_RESTORE | 1<<50)
	want := []string{"CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_CHECKPOINT_RESTORE", "CAP_50"}
	if got := Names(bits); !reflect.DeepEqual(got, want) {
		t.Errorf("Names = %q, want %q", got, want)
	}
	if got := Names(0); got != nil {
		t.Errorf("Names(0) = %q", got)
	}
	if got := Numbers(1 | 1<<63); !reflect.DeepEqual(got, []int{0, 63}) {
		t.Errorf("Numbers = %v", got)
	}
	// Names and Parse round-trip.
	d, unknown := Parse(DockerDefault())
	if len(unknown) != 0 {
		t.Fatalf("docker default caps unknown: %q", unknown)
	}
	back, _ := Parse(Names(d))
	if back != d || len(Names(d)) != 14 {
		t.Errorf("round trip %#x != %#x", back, d)
	}
}

func TestFromSpec(t *testing.T) {
	s, warnings := FromSpec(nil)
	if s != (Sets{}) || warnings != nil {
		t.Fatalf("FromSpec(nil) = %+v, %q", s, warnings)
	}
	s, warnings = FromSpec(&specs.LinuxCapabilities{
		Bounding:    []string{"CAP_CHOWN", "CAP_NET_RAW", "CAP_BPF", "CAP_NOPE"},
		Effective:   []string{"CAP_CHOWN", "CAP_BPF"},
		Permitted:   []string{"CAP_CHOWN", "CAP_NET_RAW", "CAP_BPF"},
		Inheritable: []string{"CAP_NET_RAW", "CAP_BPF"},
		Ambient:     []string{"CAP_NET_RAW", "CAP_CHOWN", "CAP_BPF"},
	})
	c := func(n ...int) (b uint64) {
		for _, x := range n {
			b |= 1 << uint(x)
		}
		return b
	}
	want := Sets{
		Bounding:    c(unix.CAP_CHOWN, unix.CAP_NET_RAW, unix.CAP_BPF),
		Effective:   c(unix.CAP_CHOWN, unix.CAP_BPF),
		Permitted:   c(unix.CAP_CHOWN, unix.CAP_NET_RAW, unix.CAP_BPF),
		Inheritable: c(unix.CAP_NET_RAW, unix.CAP_BPF),
		Ambient:     c(unix.CAP_NET_RAW, unix.CAP_BPF),
	}
	if s != want {
		t.Errorf("FromSpec = %v\nwant %v", s, want)
	}
	if len(warnings) != 2 ||
		!strings.Contains(warnings[0], `unknown capability "CAP_NOPE" in the bounding set`) ||
		!strings.Contains(warnings[1], "ambient capability CAP_CHOWN") {
		t.Errorf("warnings = %q", warnings)
	}
	if !strings.Contains(s.String(), "ambient=[CAP_NET_RAW CAP_BPF]") {
		t.Errorf("String() = %q", s.String())
	}
}

func TestCapsetData(t *testing.T) {
	s := Sets{
		Effective:   1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_BPF,
		Permitted:   1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_BPF | 1<<unix.CAP_CHECKPOINT_RESTORE,
		Inheritable: 1 << unix.CAP_CHOWN,
		Bounding:    ^uint64(0),
		Ambient:     1 << unix.CAP_CHOWN,
	}
	d := s.CapsetData()
	want := [2]unix.CapUserData{
		{Effective: 1 << 21, Permitted: 1 << 21, Inheritable: 1},
		{Effective: 1 << (39 - 32), Permitted: 1<<(39-32) | 1<<(40-32)},
	}
	if d != want {
		t.Errorf("CapsetData = %+v, want %+v", d, want)
	}
	if h := CapsetHeader(); h.Version != 0x20080522 || h.Pid != 0 {
		t.Errorf("CapsetHeader = %+v", h)
	}
}

func TestBoundingDrop(t *testing.T) {
	s := Sets{Bounding: All() &^ (1<<unix.CAP_SYS_ADMIN | 1<<unix.CAP_CHOWN)}
	if got := s.BoundingDrop(); !reflect.DeepEqual(got, []int{unix.CAP_CHOWN, unix.CAP_SYS_ADMIN}) {
		t.Errorf("BoundingDrop = %v", got)
	}
	if got := (Sets{}).BoundingDrop(); len(got) != LastCap()+1 {
		t.Errorf("BoundingDrop(empty) has %d entries", len(got))
	}
}

// TestCapgetLayout reads the test process's own capabilities with capget
// using the same header, checking the data layout against the kernel.
func TestCapgetLayout(t *testing.T) {
	h := CapsetHeader()
	var d [2]unix.CapUserData
	if err := unix.Capget(&h, &d[0]); err != nil {
		t.Fatal(err)
	}
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	var eff uint64
	for _, line := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(line, "CapEff:\t"); ok {
			for _, ch := range v {
				eff = eff<<4 | uint64(strings.IndexRune("0123456789abcdef", ch))
			}
		}
	}
	if got := uint64(d[0].Effective) | uint64(d[1].Effective)<<32; got != eff {
		t.Errorf("capget effective %#x, /proc says %#x", got, eff)
	}
}
