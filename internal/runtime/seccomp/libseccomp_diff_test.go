package seccomp

import (
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"

	"berth/internal/runtime/caps"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// The differential test: this package's programs must make the same
// decisions as the ones the libseccomp-based implementation it replaced made
// with libseccomp 2.5.4 (Debian 2.5.4-1+deb12u1, through libseccomp-golang
// 0.11.1).
//
// testdata/libseccomp-2.5.4.json.gz holds configurations (random ones with
// many overlapping rules, all operators and values at word boundaries, and
// hand-picked ones including Docker's default profile with several
// capability sets and default actions) together with what the old Compile
// returned for each: its program, flags, warnings or error, and libseccomp's
// pseudo filter code (its rule database printed as nested ifs). It was
// written by a harness that ran both implementations side by side (about
// 63,000 random configurations and 210 million samples, no mismatch); the
// harness and the old implementation went with the cgo code. Here each
// configuration is compiled again and the programs are run by the BPF
// interpreter on (arch, nr, args) samples: the syscall numbers the rules
// name and their neighbours, numbers around the x32 bit and -1, and
// argument values at and around every value of the configuration, in both
// 32-bit words. The new filter is also checked against the pseudo filter
// code, that is against libseccomp's rules.
//
// Differences that are known and intended are counted apart:
//   - i386 stub: the -ENOSYS stub now counts i386 socket and IPC calls with
//     their own numbers (socket = 359, ...); the old one resolved them with
//     libseccomp to its multiplexer pseudo numbers and left them out, so a
//     profile whose highest i386 syscall was one of them made that syscall
//     fail with ENOSYS although the profile allowed it.
//   - newer syscalls: names newer than that libseccomp (syscallsAddedByHand)
//     were skipped as unknown; now they have rules and count for the stub.
//   - libseccomp's BPF does not do what its rules say: with overlapping
//     argument rules for one syscall, when a sub-tree fails and evaluation
//     goes on to the next alternative, libseccomp 2.5.4 sometimes compares
//     the accumulator without loading the argument word again (it still
//     holds another argument). Here the program does what the rules say.
//   - other CPU architecture: libseccomp generated sections for the
//     architectures of other CPUs in the configuration; an x86_64 kernel
//     never reports them, and they are left out.
//   - errnoRet >= 4095 refused, other wording: both refuse SCMP_ACT_ERRNO
//     with errno 4095 and more; libseccomp-golang's messages were "two
//     checks on same syscall argument" and "could not create filter".
// Where libseccomp's seccomp_rule_add() never returns (it loops on some
// overlapping rules), Compile must fail with errTooComplex. Syscall numbers
// that libseccomp used for its negative pseudo syscalls (-2 to -19999)
// are not sampled: it put checks for them in the program (for rules naming
// syscalls that do not exist on an ABI), which the kernel never passes.

const goldenPath = "testdata/libseccomp-2.5.4.json.gz"

// libseccompLoops is the reference's "error" for the configurations on which
// libseccomp's seccomp_rule_add() never returns; Compile must refuse them
// with errTooComplex.
const libseccompLoops = "libseccomp does not terminate"

type goldenCase struct {
	Name     string
	Config   *specs.LinuxSeccomp
	Err      string `json:",omitempty"`
	Flags    uint   `json:",omitempty"`
	Listener bool   `json:",omitempty"`
	Warnings []string
	Filter   []byte `json:",omitempty"` // host byte order
	PFC      string `json:",omitempty"` // libseccomp's pseudo filter code
	Seed     uint64 // for the samples
}

func readGolden(t testing.TB) []goldenCase {
	f, err := os.Open(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	z, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.NewDecoder(z).Decode(&cases); err != nil {
		t.Fatal(err)
	}
	return cases
}

// diffStats counts compared decisions.
type diffStats struct {
	configs, errors, loops, samples, mismatches int
	ruleMismatches                              int // filter against libseccomp's rules (PFC)
	expected                                    map[string]int
	expectedIn                                  map[string]map[string]bool // class -> case names
	first                                       []string
}

func (s *diffStats) expect(class, name string) {
	s.expected[class]++
	if s.expectedIn == nil {
		s.expectedIn = map[string]map[string]bool{}
	}
	if s.expectedIn[class] == nil {
		s.expectedIn[class] = map[string]bool{}
	}
	s.expectedIn[class][name] = true
}

func (s *diffStats) String() string {
	var classes []string
	for class, names := range s.expectedIn {
		var docker []string
		for name := range names {
			if strings.HasPrefix(name, "docker") {
				docker = append(docker, name)
			}
		}
		slices.Sort(docker)
		classes = append(classes, fmt.Sprintf("%s: %d samples in %d configurations %v", class, s.expected[class], len(names), docker))
	}
	slices.Sort(classes)
	return fmt.Sprintf("%s\n\texpected differences:\n\t\t%s", s.summary(), strings.Join(classes, "\n\t\t"))
}

func (s *diffStats) summary() string {
	return fmt.Sprintf("%d configurations (%d refused by both, %d on which libseccomp loops forever), %d samples, %d mismatches (%d against libseccomp's rules)",
		s.configs, s.errors, s.loops, s.samples, s.mismatches, s.ruleMismatches)
}

// compareCase compiles c.Config and compares everything with the reference.
func compareCase(t testing.TB, s *diffStats, c goldenCase) {
	s.configs++
	p, err := Compile(c.Config)
	if c.Err == libseccompLoops {
		if !errors.Is(err, errTooComplex) {
			s.mismatches++
			s.note("%s: libseccomp loops, Compile returned %v", c.Name, err)
		} else {
			s.loops++
		}
		return
	}
	if c.Err != "" || err != nil {
		if err != nil && strings.Contains(err.Error(), "out of range for SCMP_ACT_ERRNO") &&
			(strings.HasSuffix(c.Err, ": two checks on same syscall argument") || strings.HasSuffix(c.Err, ": could not create filter")) {
			// libseccomp refuses errno >= 4095 (libseccomp-golang's
			// messages for that are misleading)
			s.errors++
			s.expect("errnoRet >= 4095 refused, other wording", c.Name)
			return
		}
		if err == nil || err.Error() != c.Err {
			s.mismatches++
			s.note("%s: error %v, libseccomp's %q", c.Name, err, c.Err)
		} else {
			s.errors++
		}
		return
	}
	if p.Flags != c.Flags || p.NeedsListener != c.Listener {
		s.mismatches++
		s.note("%s: flags %#x listener %v, libseccomp's %#x %v", c.Name, p.Flags, p.NeedsListener, c.Flags, c.Listener)
	}
	if want := expectedWarnings(c); !slices.Equal(p.Warnings, want) {
		s.mismatches++
		s.note("%s: warnings %q, want %q", c.Name, p.Warnings, want)
	}
	ref, err := decode(c.Filter)
	if err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
	lim := newStubLimits(c.Config)
	var pfc []*pfcStmt
	if c.PFC != "" {
		if pfc, err = parsePFC(c.PFC); err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
	}
	// The filter alone (the -ENOSYS stub is checked with the whole programs)
	filterOf := func(prog []unix.SockFilter) []unix.SockFilter {
		for i := range prog {
			if i+1 < len(prog) && prog[i] == (unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: retENOSYS}) &&
				prog[i+1] == (unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch}) {
				return prog[i+1:]
			}
		}
		return prog
	}
	newFilter := filterOf(p.Filter)
	r := rand.New(rand.NewPCG(c.Seed, 1))
	for _, d := range diffSamples(r, c.Config) {
		s.samples++
		want, err1 := runBPF(ref, d)
		got, err2 := runBPF(p.Filter, d)
		if err1 != nil || err2 != nil {
			t.Fatalf("%s: running the programs: %v, %v", c.Name, err1, err2)
		}
		if pfc != nil {
			// The rules as libseccomp means them against this package's
			// filter (without the stubs).
			rules := evalPFC(pfc, d)
			mine, _ := runBPF(newFilter, d)
			if why := lim.explain(d, rules, mine); mine != rules && why != "newer syscalls" && why != "other CPU architecture" {
				s.ruleMismatches++
				s.note("%s: arch %#x nr %#x args %#x: filter %#x, libseccomp's rules %#x", c.Name, d.arch, uint32(d.nr), d.args, mine, rules)
			}
			if got != want && got == rules && lim.explain(d, want, got) == "" {
				refFilter, _ := runBPF(filterOf(ref), d)
				if refFilter != rules {
					s.expect("libseccomp's BPF does not do what its rules say", c.Name)
					continue
				}
			}
		}
		if got == want {
			continue
		}
		if why := lim.explain(d, want, got); why != "" {
			s.expect(why, c.Name)
			continue
		}
		s.mismatches++
		s.note("%s: arch %#x nr %#x args %#x: got %#x, libseccomp %#x", c.Name, d.arch, uint32(d.nr), d.args, got, want)
	}
}

func (s *diffStats) note(format string, a ...any) {
	if len(s.first) < 20 {
		s.first = append(s.first, fmt.Sprintf(format, a...))
	}
}

// expectedWarnings is the reference's warnings without those about names
// that are known now.
func expectedWarnings(c goldenCase) []string {
	var w []string
	for _, s := range c.Warnings {
		drop := false
		for _, name := range syscallsAddedByHand {
			if s == fmt.Sprintf("unknown syscall %q skipped", name) {
				drop = true
			}
		}
		if !drop {
			w = append(w, s)
		}
	}
	return w
}

// stubLimits are the -ENOSYS stub limits of the old and the new program.
type stubLimits struct {
	stub              bool
	oldMax, newMax    [numABIs]uint32
	oldHas, newHas    [numABIs]bool
	muxMax            uint32          // i386, with the socket and IPC calls but no newer syscalls
	addedX86, added32 map[uint32]bool // numbers of the names added by hand
	foreign           map[uint32]bool // other CPUs' AUDIT_ARCH values in the configuration
}

// abiForeign stands for the architectures of other CPUs in explain.
const abiForeign = numABIs

func newStubLimits(cfg *specs.LinuxSeccomp) *stubLimits {
	l := &stubLimits{addedX86: map[uint32]bool{}, added32: map[uint32]bool{}, foreign: map[uint32]bool{}}
	for _, a := range cfg.Architectures {
		if info, ok := archs[a]; ok && info.kind == archForeign {
			l.foreign[info.audit] = true
		}
	}
	l.stub = !lets(cfg.DefaultAction) &&
		!(cfg.DefaultAction == specs.ActErrno && cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS))
	for _, rule := range cfg.Syscalls {
		for _, name := range rule.Names {
			e := lookupSyscall(name)
			if e == nil {
				continue
			}
			added := slices.Contains(syscallsAddedByHand[:], name)
			_, _, mux := i386Mux(name)
			for a := range numABIs {
				nr, ok := e.nr(a)
				if !ok {
					continue
				}
				if added {
					if a == abiI386 {
						l.added32[nr] = true
					} else {
						l.addedX86[nr] = true
					}
				}
				if !l.newHas[a] || nr > l.newMax[a] {
					l.newMax[a], l.newHas[a] = nr, true
				}
				if added {
					continue
				}
				if a == abiI386 && nr > l.muxMax {
					l.muxMax = nr
				}
				if a == abiI386 && mux {
					continue
				}
				if !l.oldHas[a] || nr > l.oldMax[a] {
					l.oldMax[a], l.oldHas[a] = nr, true
				}
			}
		}
	}
	return l
}

// explain names the intended difference behind a different decision, if
// there is one: want is the reference's, got the new program's.
func (l *stubLimits) explain(d seccompData, want, got uint32) string {
	nr := uint32(d.nr)
	var a abi
	switch {
	case d.arch == unix.AUDIT_ARCH_I386:
		a = abiI386
	case d.arch == unix.AUDIT_ARCH_X86_64 && nr&x32Bit != 0:
		a = abiX32
	case d.arch == unix.AUDIT_ARCH_X86_64:
		a = abiX86_64
	case l.foreign[d.arch]:
		a = abiForeign
	default:
		return ""
	}
	if a == abiForeign {
		return "other CPU architecture"
	}
	if a == abiI386 && l.added32[nr] || a != abiI386 && l.addedX86[nr] {
		return "newer syscalls"
	}
	if !l.stub || !l.newHas[a] {
		return ""
	}
	switch {
	case want == retENOSYS && l.oldHas[a] && nr > l.oldMax[a] && nr <= l.newMax[a]:
		// the old stub sent nr to ENOSYS, the new one does not
		if a == abiI386 && nr <= l.muxMax {
			return "i386 stub"
		}
		return "newer syscalls"
	case got == retENOSYS && !l.oldHas[a] && nr > l.newMax[a]:
		// the new stub has a section for a, the old one had none
		if a == abiI386 {
			return "i386 stub"
		}
		return "newer syscalls"
	}
	return ""
}

// diffSamples returns the (arch, nr, args) samples for cfg.
func diffSamples(r *rand.Rand, cfg *specs.LinuxSeccomp) []seccompData {
	// argument values around those of the configuration
	base := []uint64{0, 1, 2, 5, 38, 0xff, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 32, 1<<32 | 5,
		0xffffffff00000000, 0x7fffffffffffffff, 1 << 63, ^uint64(0)}
	for _, rule := range cfg.Syscalls {
		for _, a := range rule.Args {
			base = append(base, a.Value, a.ValueTwo, a.Value&a.ValueTwo, a.ValueTwo&^a.Value, a.Value|a.ValueTwo)
		}
	}
	var vals []uint64
	for _, v := range base {
		lo, hi := v&0xffffffff, v>>32
		for _, d := range []uint64{0, 1, ^uint64(0)} { // +0, +1, -1
			vals = append(vals, v+d, hi<<32|(lo+d)&0xffffffff, (hi+d)<<32|lo)
		}
	}
	slices.Sort(vals)
	vals = slices.Compact(vals)
	argVec := func() [6]uint64 {
		var args [6]uint64
		for i := range args {
			switch r.IntN(8) {
			case 0:
				args[i] = r.Uint64()
			case 1:
				args[i] = vals[r.IntN(len(vals))] ^ 1<<r.IntN(64)
			default:
				args[i] = vals[r.IntN(len(vals))]
			}
		}
		return args
	}

	// syscall numbers: those of the rules' names and their neighbours
	nrs := map[uint32]map[uint32]bool{unix.AUDIT_ARCH_X86_64: {}, unix.AUDIT_ARCH_I386: {}}
	add := func(arch, nr uint32) {
		nrs[arch][nr] = true
		nrs[arch][nr+1] = true
		nrs[arch][nr-1] = true
	}
	for _, rule := range cfg.Syscalls {
		for _, name := range rule.Names {
			e := lookupSyscall(name)
			if e == nil {
				continue
			}
			for a := range numABIs {
				if nr, ok := e.nr(a); ok {
					arch := uint32(unix.AUDIT_ARCH_X86_64)
					if a == abiI386 {
						arch = unix.AUDIT_ARCH_I386
					}
					add(arch, nr)
				}
			}
			if mux, _, ok := i386Mux(name); ok {
				add(unix.AUDIT_ARCH_I386, mux)
			}
		}
	}
	for _, arch := range []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386} {
		for _, nr := range []uint32{0, 1000, x32Bit - 1, x32Bit, x32Bit + 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff} {
			nrs[arch][nr] = true
		}
		for range 20 {
			nrs[arch][uint32(r.IntN(600))] = true
			nrs[arch][x32Bit|uint32(r.IntN(600))] = true
		}
	}

	var out []seccompData
	for _, arch := range []uint32{unix.AUDIT_ARCH_X86_64, unix.AUDIT_ARCH_I386} {
		list := make([]uint32, 0, len(nrs[arch]))
		for nr := range nrs[arch] {
			if int32(nr) < -1 && int32(nr) > -20000 {
				continue // libseccomp's pseudo syscall numbers
			}
			list = append(list, nr)
		}
		slices.Sort(list)
		for _, nr := range list {
			n := 3
			if hasArgs(cfg) {
				n = 40
			}
			for range n {
				out = append(out, seccompData{nr: int32(nr), arch: arch, args: argVec()})
			}
		}
	}
	out = append(out, seccompData{nr: 0, arch: unix.AUDIT_ARCH_AARCH64}, seccompData{nr: 3, arch: unix.AUDIT_ARCH_PPC64LE})
	return out
}

func hasArgs(cfg *specs.LinuxSeccomp) bool {
	for _, rule := range cfg.Syscalls {
		if len(rule.Args) > 0 {
			return true
		}
	}
	return false
}

func TestLibseccompDifferential(t *testing.T) {
	cases := readGolden(t)
	s := &diffStats{expected: map[string]int{}}
	for _, c := range cases {
		compareCase(t, s, c)
	}
	t.Log(s)
	for _, m := range s.first {
		t.Error(m)
	}
	if s.mismatches > 0 || s.ruleMismatches > 0 {
		t.Errorf("%d mismatches, %d against libseccomp's rules", s.mismatches, s.ruleMismatches)
	}
	if s.configs < 100 || s.samples < 100000 {
		t.Errorf("too few cases: %v", s)
	}
}

// randomConfig returns a random configuration: few syscall names, so that
// rules overlap, and argument values that meet at word boundaries.
func randomConfig(r *rand.Rand) *specs.LinuxSeccomp {
	hot := []string{"getpid", "read", "kill", "socket", "accept4", "semop", "shmctl", "socketcall", "ipc",
		"chown32", "clone", "personality", "send", "open", "rt_sigaction", "preadv", "arm_fadvise64_64",
		"mmap2", "_llseek", "ioctl", "futex_waitv", "cachestat", "sendmsg", "setsockopt", "recv"}
	var all []string
	for _, e := range syscallTable {
		if !slices.Contains(syscallsAddedByHand[:], e.name) {
			all = append(all, e.name)
		}
	}
	values := []uint64{0, 1, 2, 5, 38, 0xff, 0xff00, 0x7fffffff, 0x80000000, 0xffffffff, 1 << 32, 1<<32 | 5,
		0x500000000, 0xffffffff00000000, 0x7fffffffffffffff, 1 << 63, ^uint64(0)}
	value := func() uint64 {
		if r.IntN(6) == 0 {
			return r.Uint64() >> r.IntN(64)
		}
		return values[r.IntN(len(values))]
	}
	opsList := []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
		specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	actions := []specs.LinuxSeccompAction{specs.ActAllow, specs.ActErrno, specs.ActErrno, specs.ActKill, specs.ActKillProcess,
		specs.ActTrap, specs.ActTrace, specs.ActLog, specs.ActKillThread, specs.ActNotify}
	errnos := []uint{1, 38, 77, 0, 0xffff}
	errno := func() *uint {
		if r.IntN(2) == 0 {
			return nil
		}
		v := errnos[r.IntN(len(errnos))]
		return &v
	}

	cfg := &specs.LinuxSeccomp{DefaultAction: actions[r.IntN(len(actions)-1)]}
	if cfg.DefaultAction == specs.ActErrno || cfg.DefaultAction == specs.ActTrace {
		cfg.DefaultErrnoRet = errno()
	}
	for _, a := range []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32, specs.ArchAARCH64} {
		if r.IntN(3) > 0 {
			cfg.Architectures = append(cfg.Architectures, a)
		}
	}
	r.Shuffle(len(cfg.Architectures), func(i, j int) {
		cfg.Architectures[i], cfg.Architectures[j] = cfg.Architectures[j], cfg.Architectures[i]
	})
	if r.IntN(8) == 0 {
		cfg.Flags = []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagLog}
	}
	nameCount := 2 + r.IntN(8)
	pool := make([]string, nameCount)
	for i := range pool {
		if r.IntN(4) == 0 {
			pool[i] = all[r.IntN(len(all))]
		} else {
			pool[i] = hot[r.IntN(len(hot))]
		}
	}
	// A third of the configurations give each name one action (as real
	// profiles do): their rules merge without conflicts.
	consistent := r.IntN(3) == 0
	for range r.IntN(16) {
		rule := specs.LinuxSyscall{Action: actions[r.IntN(len(actions))]}
		if consistent {
			i := r.IntN(len(pool))
			rule.Names = []string{pool[i]}
			rule.Action = actions[int(uint(len(pool[i])+i))%len(actions)]
		} else {
			for range 1 + r.IntN(3) {
				rule.Names = append(rule.Names, pool[r.IntN(len(pool))])
			}
		}
		if r.IntN(30) == 0 {
			rule.Names = append(rule.Names, "no_such_syscall")
		}
		if rule.Action == specs.ActNotify && slices.Contains(rule.Names, "write") {
			rule.Action = specs.ActAllow
		}
		if !consistent && (rule.Action == specs.ActErrno || rule.Action == specs.ActTrace || r.IntN(20) == 0) {
			rule.ErrnoRet = errno()
		}
		nargs := []int{0, 0, 1, 1, 1, 2, 2, 3}[r.IntN(8)]
		for range nargs {
			idx := uint(r.IntN(3))
			if r.IntN(4) == 0 {
				idx = uint(r.IntN(6))
			}
			rule.Args = append(rule.Args, specs.LinuxSeccompArg{Index: idx, Op: opsList[r.IntN(len(opsList))], Value: value(), ValueTwo: value()})
		}
		cfg.Syscalls = append(cfg.Syscalls, rule)
	}
	return cfg
}

// handCases are configurations picked by hand for the golden file: Docker's
// default profile with several capability sets, and profiles that exercise
// one feature each.
//
//lint:ignore U1000 kept to regenerate testdata/ with the libseccomp reference harness (git history)
func handCases(t testing.TB) map[string]*specs.LinuxSeccomp {
	cases := map[string]*specs.LinuxSeccomp{}
	for name, extra := range map[string][]string{
		"docker-default":     nil,
		"docker-sys-admin":   {"CAP_SYS_ADMIN"},
		"docker-all-special": {"CAP_SYS_ADMIN", "CAP_SYS_PTRACE", "CAP_SYSLOG", "CAP_SYS_BOOT", "CAP_SYS_MODULE", "CAP_SYS_NICE", "CAP_SYS_PACCT", "CAP_SYS_RAWIO", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_SYS_CHROOT", "CAP_BPF", "CAP_PERFMON", "CAP_DAC_READ_SEARCH"},
	} {
		prof, err := DefaultProfile(append(caps.DockerDefault(), extra...))
		if err != nil {
			t.Fatal(err)
		}
		cases[name] = prof
		for _, def := range []specs.LinuxSeccompAction{specs.ActKillProcess, specs.ActLog} {
			p := *prof
			p.DefaultAction, p.DefaultErrnoRet = def, nil
			cases[name+"-"+string(def)] = &p
		}
	}
	u := func(v uint) *uint { return &v }
	arg := func(i uint, op specs.LinuxSeccompOperator, v, v2 uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Op: op, Value: v, ValueTwo: v2}
	}
	x86 := []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}
	cases["arguments"] = &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: x86,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"kill"}, Action: specs.ActErrno, ErrnoRet: u(70), Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 42, 0), arg(1, specs.OpEqualTo, 9, 0)}},
			{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: u(71), Args: []specs.LinuxSeccompArg{arg(1, specs.OpEqualTo, 11111, 0), arg(1, specs.OpEqualTo, 22222, 0)}},
			{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: u(72), Args: []specs.LinuxSeccompArg{arg(0, specs.OpMaskedEqual, 0xff00, 0x1200)}},
			{Names: []string{"dup"}, Action: specs.ActErrno, ErrnoRet: u(73), Args: []specs.LinuxSeccompArg{arg(0, specs.OpNotEqual, 5, 0)}},
			{Names: []string{"dup2"}, Action: specs.ActErrno, ErrnoRet: u(74), Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessThan, 5, 0)}},
			{Names: []string{"dup3"}, Action: specs.ActErrno, ErrnoRet: u(75), Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessEqual, 5, 0)}},
			{Names: []string{"close"}, Action: specs.ActErrno, ErrnoRet: u(76), Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterEqual, 1<<40, 0)}},
			{Names: []string{"fsync"}, Action: specs.ActErrno, ErrnoRet: u(77), Args: []specs.LinuxSeccompArg{arg(5, specs.OpGreaterThan, 5, 0)}},
			{Names: []string{"socket", "semop"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 2, 0), arg(1, specs.OpGreaterThan, 0x100000001, 0)}},
			{Names: []string{"mmap", "mmap2"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(2, specs.OpMaskedEqual, 0x100000004, 0x100000004)}},
			{Names: []string{"mprotect"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(2, specs.OpMaskedEqual, 0x100000000, 0)}},
		},
	}
	// Overlapping rules with different actions, in both orders.
	over := []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: u(10), Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterThan, 5, 0)}},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: u(20), Args: []specs.LinuxSeccompArg{arg(0, specs.OpGreaterThan, 1<<32|10, 0)}},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: u(30), Args: []specs.LinuxSeccompArg{arg(1, specs.OpEqualTo, 2, 0)}},
		{Names: []string{"getpid"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessThan, 3, 0), arg(2, specs.OpNotEqual, 7, 0)}},
		{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: u(40)},
		{Names: []string{"read"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 1, 0)}},
		{Names: []string{"write"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 1, 0)}},
		{Names: []string{"write"}, Action: specs.ActErrno, ErrnoRet: u(50)},
	}
	cases["overlap"] = &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Architectures: x86, Syscalls: over}
	rev := slices.Clone(over)
	slices.Reverse(rev)
	cases["overlap-reversed"] = &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Architectures: x86, Syscalls: rev}
	cases["conflict"] = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 1, 0)}},
		{Names: []string{"getpid"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{arg(0, specs.OpEqualTo, 1, 0)}},
	}}
	cases["i386-socket-only"] = &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"socket", "bind", "semop"}, Action: specs.ActAllow}}}
	cases["notify-flags"] = &specs.LinuxSeccomp{DefaultAction: specs.ActAllow,
		Flags:    []specs.LinuxSeccompFlag{specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC", specs.LinuxSeccompFlagLog},
		Syscalls: []specs.LinuxSyscall{{Names: []string{"getppid"}, Action: specs.ActNotify}, {Names: []string{"getpid"}, Action: specs.ActLog, ErrnoRet: u(3)}}}
	// libseccomp 2.5.4 never returns from adding the second rule.
	cases["libseccomp-loops"] = &specs.LinuxSeccomp{DefaultAction: specs.ActTrap, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"clone"}, Action: specs.ActNotify, Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessEqual, 0xffffffff00000000, 0), arg(1, specs.OpGreaterThan, 0xff00, 0)}},
		{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessEqual, 0xffffffff00000000, 0), arg(1, specs.OpGreaterThan, 0x500000000, 0)}},
	}}
	cases["native-only"] = &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess,
		Syscalls: []specs.LinuxSyscall{{Names: []string{"read", "close", "chown32"}, Action: specs.ActAllow}}}
	return cases
}
