// Package caps maps Linux capability names as written in an OCI runtime
// spec ("CAP_SYS_ADMIN", ...) to capability numbers and turns the spec's
// five capability sets into plain bit masks.
//
// Everything here is computed by the runtime parent: the container child (a
// raw clone that never re-enters the Go runtime) only receives the results,
// namely the capset(2) header and data words from [Sets.CapsetData] and
// [CapsetHeader] and the capability numbers to drop from the bounding set or
// raise in the ambient set ([Numbers]).
//
// A capability set is a uint64 whose bit n stands for capability number n.
// Unknown capability names, and capabilities above the running kernel's
// [LastCap], are ignored with a warning, as runc does.
package caps

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// byNumber lists every capability this package knows, indexed by number.
var byNumber = [...]string{
	unix.CAP_CHOWN:              "CAP_CHOWN",
	unix.CAP_DAC_OVERRIDE:       "CAP_DAC_OVERRIDE",
	unix.CAP_DAC_READ_SEARCH:    "CAP_DAC_READ_SEARCH",
	unix.CAP_FOWNER:             "CAP_FOWNER",
	unix.CAP_FSETID:             "CAP_FSETID",
	unix.CAP_KILL:               "CAP_KILL",
	unix.CAP_SETGID:             "CAP_SETGID",
	unix.CAP_SETUID:             "CAP_SETUID",
	unix.CAP_SETPCAP:            "CAP_SETPCAP",
	unix.CAP_LINUX_IMMUTABLE:    "CAP_LINUX_IMMUTABLE",
	unix.CAP_NET_BIND_SERVICE:   "CAP_NET_BIND_SERVICE",
	unix.CAP_NET_BROADCAST:      "CAP_NET_BROADCAST",
	unix.CAP_NET_ADMIN:          "CAP_NET_ADMIN",
	unix.CAP_NET_RAW:            "CAP_NET_RAW",
	unix.CAP_IPC_LOCK:           "CAP_IPC_LOCK",
	unix.CAP_IPC_OWNER:          "CAP_IPC_OWNER",
	unix.CAP_SYS_MODULE:         "CAP_SYS_MODULE",
	unix.CAP_SYS_RAWIO:          "CAP_SYS_RAWIO",
	unix.CAP_SYS_CHROOT:         "CAP_SYS_CHROOT",
	unix.CAP_SYS_PTRACE:         "CAP_SYS_PTRACE",
	unix.CAP_SYS_PACCT:          "CAP_SYS_PACCT",
	unix.CAP_SYS_ADMIN:          "CAP_SYS_ADMIN",
	unix.CAP_SYS_BOOT:           "CAP_SYS_BOOT",
	unix.CAP_SYS_NICE:           "CAP_SYS_NICE",
	unix.CAP_SYS_RESOURCE:       "CAP_SYS_RESOURCE",
	unix.CAP_SYS_TIME:           "CAP_SYS_TIME",
	unix.CAP_SYS_TTY_CONFIG:     "CAP_SYS_TTY_CONFIG",
	unix.CAP_MKNOD:              "CAP_MKNOD",
	unix.CAP_LEASE:              "CAP_LEASE",
	unix.CAP_AUDIT_WRITE:        "CAP_AUDIT_WRITE",
	unix.CAP_AUDIT_CONTROL:      "CAP_AUDIT_CONTROL",
	unix.CAP_SETFCAP:            "CAP_SETFCAP",
	unix.CAP_MAC_OVERRIDE:       "CAP_MAC_OVERRIDE",
	unix.CAP_MAC_ADMIN:          "CAP_MAC_ADMIN",
	unix.CAP_SYSLOG:             "CAP_SYSLOG",
	unix.CAP_WAKE_ALARM:         "CAP_WAKE_ALARM",
	unix.CAP_BLOCK_SUSPEND:      "CAP_BLOCK_SUSPEND",
	unix.CAP_AUDIT_READ:         "CAP_AUDIT_READ",
	unix.CAP_PERFMON:            "CAP_PERFMON",
	unix.CAP_BPF:                "CAP_BPF",
	unix.CAP_CHECKPOINT_RESTORE: "CAP_CHECKPOINT_RESTORE",
}

// MaxKnown is the highest capability number this package has a name for.
const MaxKnown = len(byNumber) - 1

var byName = func() map[string]int {
	m := make(map[string]int, len(byNumber))
	for n, name := range byNumber {
		m[name] = n
	}
	return m
}()

// dockerDefault is Docker's default capability list (moby's
// oci/caps.DefaultCapabilities).
var dockerDefault = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// DockerDefault returns Docker's default capability list for containers (a
// fresh slice the caller may modify).
func DockerDefault() []string {
	return append([]string(nil), dockerDefault...)
}

var lastCap = sync.OnceValue(func() int {
	return readLastCap("/proc/sys/kernel/cap_last_cap")
})

func readLastCap(path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return MaxKnown
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || n < 0 || n > 63 {
		return MaxKnown
	}
	return n
}

// LastCap returns the highest capability number the running kernel supports,
// read once from /proc/sys/kernel/cap_last_cap. If that file cannot be read
// it returns [MaxKnown].
func LastCap() int { return lastCap() }

// All returns the mask of every capability the running kernel supports
// (numbers 0 through [LastCap]).
func All() uint64 {
	lc := LastCap()
	if lc >= 63 {
		return ^uint64(0)
	}
	return 1<<(uint(lc)+1) - 1
}

// Number returns the number of the capability called name ("CAP_SYS_ADMIN"),
// or false if the name is unknown. It does not consult [LastCap].
func Number(name string) (int, bool) {
	n, ok := byName[name]
	return n, ok
}

// Name returns the spec name of capability number n, or "CAP_<n>" for a
// number this package has no name for.
func Name(n int) string {
	if n >= 0 && n < len(byNumber) {
		return byNumber[n]
	}
	return "CAP_" + strconv.Itoa(n)
}

// Parse turns capability names into a set. Names it does not know, and
// capabilities the running kernel does not support (above [LastCap]), are
// left out of bits and returned in unknown, in input order, so the caller can
// warn about them.
func Parse(names []string) (bits uint64, unknown []string) {
	lc := LastCap()
	for _, name := range names {
		n, ok := byName[name]
		if !ok || n > lc {
			unknown = append(unknown, name)
			continue
		}
		bits |= 1 << uint(n)
	}
	return bits, unknown
}

// Names returns the names of the capabilities in bits, sorted by number.
func Names(bits uint64) []string {
	var out []string
	for _, n := range Numbers(bits) {
		out = append(out, Name(n))
	}
	return out
}

// Numbers returns the capability numbers in bits, in ascending order.
func Numbers(bits uint64) []int {
	var out []int
	for n := 0; n < 64; n++ {
		if bits&(1<<uint(n)) != 0 {
			out = append(out, n)
		}
	}
	return out
}

// Sets holds the five capability sets of a process as bit masks.
type Sets struct {
	Bounding, Effective, Permitted, Inheritable, Ambient uint64
}

// FromSpec converts the spec's capability lists to [Sets]. A nil c yields
// empty sets (the process gets no capabilities at all).
//
// The returned warnings name every capability that was ignored: unknown
// names, capabilities the kernel does not support, and ambient capabilities
// that are not in both the permitted and inheritable sets (the kernel refuses
// to raise those, so they are dropped here rather than failing in the
// child).
func FromSpec(c *specs.LinuxCapabilities) (Sets, []string) {
	var s Sets
	if c == nil {
		return s, nil
	}
	var warnings []string
	parse := func(set string, names []string) uint64 {
		bits, unknown := Parse(names)
		for _, name := range unknown {
			if _, ok := byName[name]; ok {
				warnings = append(warnings, fmt.Sprintf("capability %s in the %s set is not supported by the kernel (cap_last_cap %d), ignored", name, set, LastCap()))
			} else {
				warnings = append(warnings, fmt.Sprintf("unknown capability %q in the %s set, ignored", name, set))
			}
		}
		return bits
	}
	s.Bounding = parse("bounding", c.Bounding)
	s.Effective = parse("effective", c.Effective)
	s.Permitted = parse("permitted", c.Permitted)
	s.Inheritable = parse("inheritable", c.Inheritable)
	s.Ambient = parse("ambient", c.Ambient)
	if bad := s.Ambient &^ (s.Permitted & s.Inheritable); bad != 0 {
		for _, name := range Names(bad) {
			warnings = append(warnings, fmt.Sprintf("ambient capability %s is not in both the permitted and inheritable sets, ignored", name))
		}
		s.Ambient &^= bad
	}
	return s, warnings
}

// CapsetHeader returns the capset(2) header: version
// _LINUX_CAPABILITY_VERSION_3, pid 0 (the calling thread).
func CapsetHeader() unix.CapUserHeader {
	return unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
}

// CapsetData returns the two capset(2) data words for
// _LINUX_CAPABILITY_VERSION_3: element 0 holds capabilities 0-31, element 1
// capabilities 32-63 of the effective, permitted and inheritable sets.
func (s Sets) CapsetData() [2]unix.CapUserData {
	return [2]unix.CapUserData{
		{
			Effective:   uint32(s.Effective),
			Permitted:   uint32(s.Permitted),
			Inheritable: uint32(s.Inheritable),
		},
		{
			Effective:   uint32(s.Effective >> 32),
			Permitted:   uint32(s.Permitted >> 32),
			Inheritable: uint32(s.Inheritable >> 32),
		},
	}
}

// BoundingDrop returns the capability numbers to drop from the bounding set
// with prctl(PR_CAPBSET_DROP): every capability up to [LastCap] that is not
// in s.Bounding, in ascending order.
func (s Sets) BoundingDrop() []int {
	return Numbers(All() &^ s.Bounding)
}

// String describes the sets with capability names, for logs and errors.
func (s Sets) String() string {
	f := func(b uint64) string { return "[" + strings.Join(Names(b), " ") + "]" }
	return fmt.Sprintf("bounding=%s effective=%s permitted=%s inheritable=%s ambient=%s",
		f(s.Bounding), f(s.Effective), f(s.Permitted), f(s.Inheritable), f(s.Ambient))
}
