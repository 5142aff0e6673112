package seccomp

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"berth/internal/runtime/caps"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// evalTree evaluates a level of an argument tree the way the generated BPF
// must: nodes in order; a branch with a sub-level goes on there, one with an
// action returns it, one with neither goes on to the next node; an
// exhausted level goes back to the node after the one that led to it.
func evalTree(n *node, d seccompData, bits32 bool) (uint32, bool) {
	for n.lvlPrv != nil {
		n = n.lvlPrv
	}
	for ; n != nil; n = n.lvlNxt {
		v := d.args[n.arg]
		w := uint32(v)
		if n.hi && !bits32 {
			w = uint32(v >> 32)
		}
		w &= n.mask
		var t bool
		switch n.op {
		case cmpGT:
			t = w > n.datum
		case cmpGE:
			t = w >= n.datum
		default:
			t = w == n.datum
		}
		next, act, actFlg := n.nxtF, n.actF, n.actFFlg
		if t {
			next, act, actFlg = n.nxtT, n.actT, n.actTFlg
		}
		if next != nil {
			if a, ok := evalTree(next, d, bits32); ok {
				return a, true
			}
		} else if actFlg {
			return act, true
		}
	}
	return 0, false
}

// evalCompiled evaluates the rule database and the stub directly.
func evalCompiled(c *compiled, d seccompData) uint32 {
	nr := uint32(d.nr)
	for _, s := range c.stub {
		if s.audit != d.arch {
			continue
		}
		switch {
		case s.audit != unix.AUDIT_ARCH_X86_64:
			if nr > s.max {
				return retENOSYS
			}
		case nr&x32Bit != 0:
			if s.hasX32 && nr > s.maxX32 {
				return retENOSYS
			}
		default:
			if s.has64 && nr > s.max64 {
				return retENOSYS
			}
		}
	}
	var db *archDB
	switch d.arch {
	case unix.AUDIT_ARCH_X86_64:
		db = c.dbs[abiX86_64]
		if nr >= x32Bit {
			switch {
			case c.dbs[abiX32] != nil:
				db = c.dbs[abiX32]
			case nr != ^uint32(0):
				return retKillThread // x32 not in the filter
			}
		}
	case unix.AUDIT_ARCH_I386:
		if db = c.dbs[abiI386]; db == nil {
			return retKillThread
		}
	default:
		return retKillThread
	}
	if nr&x32Bit != 0 && db.abi != abiX32 || nr&x32Bit == 0 && db.abi == abiX32 {
		return c.defAct
	}
	s := db.lookup(nr &^ x32Bit)
	switch {
	case s == nil:
		return c.defAct
	case s.chains == nil:
		return s.action
	}
	if a, ok := evalTree(s.chains, d, db.bits32); ok {
		return a
	}
	return c.defAct
}

// TestGeneratedCode checks the generated BPF (binary search, trees,
// accumulator reloads, trampolines, stub) against a direct evaluation of the
// rule database, on random configurations, large ones included.
func TestGeneratedCode(t *testing.T) {
	r := rand.New(rand.NewPCG(42, 42))
	var cfgs []*specs.LinuxSeccomp
	for range 1500 {
		cfgs = append(cfgs, randomConfig(r))
	}
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		t.Fatal(err)
	}
	cfgs = append(cfgs, prof, bigConfig(r, 60, 3), bigConfig(r, 300, 1))
	samples, compiledN := 0, 0
	for i, cfg := range cfgs {
		p, c, err := compileAll(cfg)
		if err != nil {
			continue
		}
		compiledN++
		for _, d := range diffSamples(r, cfg) {
			got, err := runBPF(p.Filter, d)
			if err != nil {
				t.Fatalf("config %d: %v", i, err)
			}
			samples++
			if want := evalCompiled(c, d); got != want {
				t.Fatalf("config %d: arch %#x nr %#x args %#x: program %#x, rules %#x", i, d.arch, uint32(d.nr), d.args, got, want)
			}
		}
	}
	t.Logf("%d configurations compiled, %d samples", compiledN, samples)
}

// bigConfig has n syscalls with rules of conds conditions each, on all ABIs,
// so that jumps need trampolines.
func bigConfig(r *rand.Rand, n, conds int) *specs.LinuxSeccomp {
	cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}}
	ops := []specs.LinuxSeccompOperator{specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo, specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual}
	for i := range n {
		e := &syscallTable[(i*7)%len(syscallTable)]
		for j := range 1 + r.IntN(3) {
			rule := specs.LinuxSyscall{Names: []string{e.name}, Action: specs.ActAllow}
			if j > 0 {
				rule.Action = specs.ActTrace
			}
			for k := range conds {
				rule.Args = append(rule.Args, specs.LinuxSeccompArg{Index: uint(k + j), Op: ops[r.IntN(len(ops))], Value: r.Uint64() >> r.IntN(64), ValueTwo: r.Uint64() >> r.IntN(64)})
			}
			cfg.Syscalls = append(cfg.Syscalls, rule)
		}
	}
	return cfg
}

func TestDockerDefaultSizes(t *testing.T) {
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		t.Fatal(err)
	}
	for _, archs := range [][]specs.Arch{
		{specs.ArchX86_64},
		{specs.ArchX86_64, specs.ArchX86},
		{specs.ArchX86_64, specs.ArchX32},
		{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
	} {
		cfg := *prof
		cfg.Architectures = archs
		p := compile(t, &cfg)
		t.Logf("%v: %d instructions", archs, len(p.Filter))
		if len(p.Filter) > 1000 {
			t.Errorf("%v: %d instructions", archs, len(p.Filter))
		}
	}
}

func TestSyscallTable(t *testing.T) {
	if !slices.IsSortedFunc(syscallTable[:], func(a, b sysEntry) int { return strings.Compare(a.name, b.name) }) {
		t.Fatal("table not sorted by name")
	}
	for i, e := range syscallTable {
		if i > 0 && syscallTable[i-1].name == e.name {
			t.Errorf("%s twice", e.name)
		}
		for _, n := range []int32{e.x86_64, e.i386, e.x32} {
			if n >= maxSyscallNr || n < -1 {
				t.Errorf("%s: number %d", e.name, n)
			}
		}
		if lookupSyscall(e.name) != &syscallTable[i] {
			t.Errorf("lookup %s", e.name)
		}
	}
	if lookupSyscall("no_such_syscall") != nil || lookupSyscall("") != nil {
		t.Error("unknown name found")
	}
	// x86_64 numbers against golang.org/x/sys/unix (from the kernel headers)
	for name, nr := range map[string]int{
		"read": unix.SYS_READ, "openat": unix.SYS_OPENAT, "clone3": unix.SYS_CLONE3, "rseq": unix.SYS_RSEQ,
		"uretprobe": unix.SYS_URETPROBE, "uprobe": unix.SYS_UPROBE, "futex_waitv": unix.SYS_FUTEX_WAITV,
		"set_mempolicy_home_node": unix.SYS_SET_MEMPOLICY_HOME_NODE, "cachestat": unix.SYS_CACHESTAT,
		"fchmodat2": unix.SYS_FCHMODAT2, "map_shadow_stack": unix.SYS_MAP_SHADOW_STACK,
		"futex_wake": unix.SYS_FUTEX_WAKE, "futex_wait": unix.SYS_FUTEX_WAIT, "futex_requeue": unix.SYS_FUTEX_REQUEUE,
		"statmount": unix.SYS_STATMOUNT, "listmount": unix.SYS_LISTMOUNT, "lsm_get_self_attr": unix.SYS_LSM_GET_SELF_ATTR,
		"lsm_set_self_attr": unix.SYS_LSM_SET_SELF_ATTR, "lsm_list_modules": unix.SYS_LSM_LIST_MODULES,
		"mseal": unix.SYS_MSEAL, "setxattrat": unix.SYS_SETXATTRAT, "getxattrat": unix.SYS_GETXATTRAT,
		"listxattrat": unix.SYS_LISTXATTRAT, "removexattrat": unix.SYS_REMOVEXATTRAT,
		"open_tree_attr": unix.SYS_OPEN_TREE_ATTR, "file_getattr": unix.SYS_FILE_GETATTR, "file_setattr": unix.SYS_FILE_SETATTR,
	} {
		if e := lookupSyscall(name); e == nil || int(e.x86_64) != nr {
			t.Errorf("%s: %+v, want x86_64 %d", name, e, nr)
		}
	}
	// Newer syscalls (451 and up) have the same number on all three ABIs.
	for _, name := range syscallsAddedByHand {
		e := lookupSyscall(name)
		if e.x86_64 >= 451 && (e.i386 != e.x86_64 || e.x32 != e.x86_64) {
			t.Errorf("%s: %+v", name, e)
		}
	}
	for _, c := range []struct {
		name              string
		x86_64, i386, x32 int32
	}{
		{"socket", 41, 359, 41}, {"socketcall", -1, 102, -1}, {"ipc", -1, 117, -1}, {"semop", 65, -1, 65},
		{"rt_sigaction", 13, 174, 512}, {"chown32", -1, 212, -1}, {"arm_fadvise64_64", -1, -1, -1},
		{"uretprobe", 335, -1, 335}, {"file_setattr", 469, 469, 469},
	} {
		if e := lookupSyscall(c.name); e == nil || e.x86_64 != c.x86_64 || e.i386 != c.i386 || e.x32 != c.x32 {
			t.Errorf("%s: %+v", c.name, e)
		}
	}
}

// TestLibseccompLoops: libseccomp 2.5.4 never returns from adding the second
// rule (it links a tree level into a cycle); Compile refuses the profile.
func TestLibseccompLoops(t *testing.T) {
	arg := func(i uint, op specs.LinuxSeccompOperator, v uint64) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Op: op, Value: v}
	}
	_, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActTrap, Syscalls: []specs.LinuxSyscall{
		{Names: []string{"clone"}, Action: specs.ActNotify, Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessEqual, 0xffffffff00000000), arg(1, specs.OpGreaterThan, 0xff00)}},
		{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, specs.OpLessEqual, 0xffffffff00000000), arg(1, specs.OpGreaterThan, 0x500000000)}},
	}})
	if !errors.Is(err, errTooComplex) || !strings.HasPrefix(err.Error(), "seccomp: syscalls[1]: adding rule for clone: ") {
		t.Errorf("err = %v", err)
	}
}

func TestErrnoLimits(t *testing.T) {
	for _, c := range []struct {
		act    specs.LinuxSeccompAction
		errno  uint
		defErr bool
		ok     bool
	}{
		{specs.ActErrno, 4094, false, true},
		{specs.ActErrno, 4095, false, false},
		{specs.ActErrno, 4094, true, true},
		{specs.ActErrno, 65535, true, false},
		{specs.ActTrace, 65535, false, true},
		{specs.ActTrace, 65535, true, true},
	} {
		cfg := &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: c.act, ErrnoRet: &c.errno}}}
		want := "seccomp: syscalls[0]: adding rule for getpid: errnoRet 4095 out of range for SCMP_ACT_ERRNO (0-4094)"
		if c.defErr {
			cfg = &specs.LinuxSeccomp{DefaultAction: c.act, DefaultErrnoRet: &c.errno}
			want = "seccomp: defaultAction: errnoRet 65535 out of range for SCMP_ACT_ERRNO (0-4094)"
		}
		_, err := Compile(cfg)
		if c.ok != (err == nil) || err != nil && err.Error() != want {
			t.Errorf("%s %d (default %v): %v", c.act, c.errno, c.defErr, err)
		}
	}
}

// TestI386Multiplexers: on i386 a rule for a socket or IPC call also covers
// socketcall(2) or ipc(2) with the call number as first argument (any
// condition on the first argument gives way to it), as with libseccomp.
func TestI386Multiplexers(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"socket"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 40}, {Index: 1, Op: specs.OpEqualTo, Value: 7}}},
			{Names: []string{"semop"}, Action: specs.ActErrno, ErrnoRet: uintp(5)},
		},
	})
	i386 := func(nr int32, want uint32, args ...uint64) {
		t.Helper()
		check(t, p, unix.AUDIT_ARCH_I386, nr, args, want)
	}
	i386(359, retEPERM, 40, 7) // socket
	i386(359, retAllow, 41, 7)
	i386(i386Socketcall, retEPERM, 1, 7) // socketcall(SYS_SOCKET, args...)
	i386(i386Socketcall, retAllow, 1, 8)
	i386(i386Socketcall, retAllow, 2, 7)
	i386(i386IPC, errnoRet(5), 1) // ipc(SEMOP, ...)
	i386(i386IPC, retAllow, 2)
	x64(t, p, unix.SYS_SOCKET, retEPERM, 40, 7)
	x64(t, p, unix.SYS_SEMOP, errnoRet(5))
}

// TestOverlappingRules: rules for one syscall are merged into one tree and
// tried in libseccomp's order (argument, operator, value; larger values
// first), not in the order of the profile.
func TestOverlappingRules(t *testing.T) {
	arg := func(i uint, op specs.LinuxSeccompOperator, v uint64) []specs.LinuxSeccompArg {
		return []specs.LinuxSeccompArg{{Index: i, Op: op, Value: v}}
	}
	rules := []specs.LinuxSyscall{
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(10), Args: arg(0, specs.OpGreaterThan, 5)},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(20), Args: arg(0, specs.OpGreaterThan, 1<<32|10)},
		{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(30), Args: arg(1, specs.OpEqualTo, 2)},
		{Names: []string{"getpid"}, Action: specs.ActTrap, Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessThan, Value: 3}, {Index: 2, Op: specs.OpNotEqual, Value: 7}}},
		{Names: []string{"read"}, Action: specs.ActErrno, ErrnoRet: uintp(40)},
		{Names: []string{"read"}, Action: specs.ActTrap, Args: arg(0, specs.OpEqualTo, 1)},
		{Names: []string{"write"}, Action: specs.ActTrap, Args: arg(0, specs.OpEqualTo, 1)},
		{Names: []string{"write"}, Action: specs.ActErrno, ErrnoRet: uintp(50)},
	}
	for _, reversed := range []bool{false, true} {
		rs := slices.Clone(rules)
		if reversed {
			slices.Reverse(rs)
		}
		p := compile(t, &specs.LinuxSeccomp{DefaultAction: specs.ActKillProcess, Syscalls: rs})
		// Merging can depend on the order of the rules (as in libseccomp):
		// added last, "a0 > 5" shares its high-word node with "a0 < 3",
		// which comes before "a0 > 1<<32|10".
		if !reversed {
			x64(t, p, unix.SYS_GETPID, errnoRet(20), 1<<32|20, 0)
		} else {
			x64(t, p, unix.SYS_GETPID, errnoRet(10), 1<<32|20, 0)
		}
		x64(t, p, unix.SYS_GETPID, errnoRet(30), 6, 2) // a1 is tried before a0
		x64(t, p, unix.SYS_GETPID, errnoRet(10), 6, 0)
		x64(t, p, unix.SYS_GETPID, unix.SECCOMP_RET_TRAP, 2, 0, 8)
		x64(t, p, unix.SYS_GETPID, unix.SECCOMP_RET_KILL_PROCESS, 2, 0, 7)
		// In the first order libseccomp 2.5.4's BPF returns ERRNO(20) here:
		// after the a2 test fails it compares a0's high word with 1 without
		// loading it again (the accumulator holds a2's low word). The
		// program does what the rules say.
		x64(t, p, unix.SYS_GETPID, errnoRet(10), 6, 0x27, 0xffffffff7fffffff)
		// An unconditional rule wins over conditional ones, before or after.
		x64(t, p, unix.SYS_READ, errnoRet(40), 1)
		x64(t, p, unix.SYS_WRITE, errnoRet(50), 1)
	}
}

func TestCyclic(t *testing.T) {
	a, b, c := &node{}, &node{}, &node{}
	a.lvlNxt, b.lvlPrv = b, a
	a.nxtT = c
	if cyclic(a) || cyclic(b) {
		t.Error("tree reported cyclic")
	}
	c.nxtF = b // back into the level above
	if !cyclic(a) {
		t.Error("cycle through a sub-level missed")
	}
	c.nxtF = nil
	b.lvlNxt = a // level loop
	if !cyclic(a) {
		t.Error("level cycle missed")
	}
	a.lvlPrv = b
	if !cyclic(b) {
		t.Error("level cycle (backwards) missed")
	}
}
