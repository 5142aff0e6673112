package seccomp

import (
	"slices"
	"strings"
	"testing"

	"berth/internal/runtime/caps"
	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

const (
	retAllow = unix.SECCOMP_RET_ALLOW
	retEPERM = unix.SECCOMP_RET_ERRNO | uint32(unix.EPERM)
	retNOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)
	i386Read = 3 // read(2) on i386
)

func errnoRet(e uint32) uint32 { return unix.SECCOMP_RET_ERRNO | e }

func uintp(v uint) *uint { return &v }

func compile(t *testing.T, cfg *specs.LinuxSeccomp) *Program {
	t.Helper()
	p, err := Compile(cfg)
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	if len(p.Filter) == 0 || len(p.Filter) > bpfMaxInsns {
		t.Fatalf("filter has %d instructions", len(p.Filter))
	}
	return p
}

// check runs the filter on a syscall and compares the result.
func check(t *testing.T, p *Program, arch uint32, nr int32, args []uint64, want uint32) {
	t.Helper()
	d := seccompData{nr: nr, arch: arch}
	copy(d.args[:], args)
	got, err := runBPF(p.Filter, d)
	if err != nil {
		t.Fatalf("running filter: %v", err)
	}
	if got != want {
		t.Errorf("arch %#x nr %d args %v: filter returned %#x, want %#x", arch, nr, args, got, want)
	}
}

func x64(t *testing.T, p *Program, nr int, want uint32, args ...uint64) {
	t.Helper()
	check(t, p, unix.AUDIT_ARCH_X86_64, int32(nr), args, want)
}

func dockerDefault(t *testing.T, bounding []string) *Program {
	t.Helper()
	prof, err := DefaultProfile(bounding)
	if err != nil {
		t.Fatal(err)
	}
	return compile(t, prof)
}

func TestDockerDefaultProfile(t *testing.T) {
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		t.Fatal(err)
	}
	if prof.DefaultAction != specs.ActErrno || len(prof.Syscalls) == 0 {
		t.Fatalf("unexpected profile: %s, %d rules", prof.DefaultAction, len(prof.Syscalls))
	}
	if !slices.Equal(prof.Architectures, []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32}) {
		t.Fatalf("architectures %v", prof.Architectures)
	}
	p := compile(t, prof)
	t.Logf("%d instructions, flags %#x, warnings %q", len(p.Filter), p.Flags, p.Warnings)
	if p.Flags != 0 || p.NeedsListener {
		t.Errorf("flags %#x, listener %v", p.Flags, p.NeedsListener)
	}
	for _, w := range p.Warnings {
		if !strings.HasPrefix(w, "unknown syscall") {
			t.Errorf("unexpected warning %q", w)
		}
	}

	x64(t, p, unix.SYS_READ, retAllow)
	x64(t, p, unix.SYS_EXECVE, retAllow)
	x64(t, p, unix.SYS_CLONE3, retNOSYS) // Docker: ENOSYS without CAP_SYS_ADMIN
	x64(t, p, unix.SYS_SYSLOG, retEPERM) // needs CAP_SYSLOG
	x64(t, p, unix.SYS_MOUNT, retEPERM)  // needs CAP_SYS_ADMIN
	x64(t, p, unix.SYS_CLONE, retAllow, uint64(unix.SIGCHLD))
	x64(t, p, unix.SYS_CLONE, retEPERM, unix.CLONE_NEWNS|uint64(unix.SIGCHLD))
	x64(t, p, unix.SYS_PERSONALITY, retAllow, 0)
	x64(t, p, unix.SYS_PERSONALITY, retEPERM, 0x1234)
	// Newer than the profile: ENOSYS from the stub, not EPERM.
	x64(t, p, 1000, retNOSYS)
	x64(t, p, 0xffff, retNOSYS)

	check(t, p, unix.AUDIT_ARCH_I386, i386Read, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_I386, 1000, nil, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|unix.SYS_READ, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|unix.SYS_SYSLOG, nil, retEPERM)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|1000, nil, retNOSYS)
	// Architectures outside the filter get KILL_THREAD.
	check(t, p, unix.AUDIT_ARCH_AARCH64, 63, nil, unix.SECCOMP_RET_KILL_THREAD)

	// With CAP_SYS_ADMIN Docker allows mount, clone3 and namespace flags.
	admin := dockerDefault(t, append(caps.DockerDefault(), "CAP_SYS_ADMIN", "CAP_SYSLOG"))
	x64(t, admin, unix.SYS_MOUNT, retAllow)
	x64(t, admin, unix.SYS_CLONE3, retAllow)
	x64(t, admin, unix.SYS_SYSLOG, retAllow)
	x64(t, admin, unix.SYS_CLONE, retAllow, unix.CLONE_NEWNS|uint64(unix.SIGCHLD))
}

func TestNativeOnly(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActKillProcess,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "close", "chown32"}, Action: specs.ActAllow},
		},
	})
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings) // chown32 is known, just not on x86_64
	}
	x64(t, p, unix.SYS_READ, retAllow)
	x64(t, p, unix.SYS_CLOSE, retAllow)
	x64(t, p, unix.SYS_OPEN, unix.SECCOMP_RET_KILL_PROCESS)
	x64(t, p, unix.SYS_CLOSE+1, retNOSYS) // above the highest named syscall
	check(t, p, unix.AUDIT_ARCH_I386, i386Read, nil, unix.SECCOMP_RET_KILL_THREAD)
	// x32 numbers on a filter without x32 are a bad architecture.
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|unix.SYS_READ, nil, unix.SECCOMP_RET_KILL_THREAD)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|1000, nil, unix.SECCOMP_RET_KILL_THREAD)
}

func TestUnknownSyscallSkipped(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"no_such_syscall", "getpid"}, Action: specs.ActErrno},
			{Names: []string{"no_such_syscall"}, Action: specs.ActKill},
		},
	})
	if !slices.Equal(p.Warnings, []string{`unknown syscall "no_such_syscall" skipped`}) {
		t.Errorf("warnings %q", p.Warnings)
	}
	x64(t, p, unix.SYS_GETPID, retEPERM)
	x64(t, p, unix.SYS_READ, retAllow)
	x64(t, p, 1000, retAllow) // default ALLOW: no ENOSYS stub
}

func TestArguments(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Syscalls: []specs.LinuxSyscall{
			// Conditions on different arguments: all must hold.
			{Names: []string{"kill"}, Action: specs.ActErrno, ErrnoRet: uintp(70), Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpEqualTo, Value: 42},
				{Index: 1, Op: specs.OpEqualTo, Value: 9},
			}},
			// Two conditions on one argument: split into two rules (OR).
			{Names: []string{"getpriority"}, Action: specs.ActErrno, ErrnoRet: uintp(71), Args: []specs.LinuxSeccompArg{
				{Index: 1, Op: specs.OpEqualTo, Value: 11111},
				{Index: 1, Op: specs.OpEqualTo, Value: 22222},
			}},
			{Names: []string{"getpgid"}, Action: specs.ActErrno, ErrnoRet: uintp(72), Args: []specs.LinuxSeccompArg{
				{Index: 0, Op: specs.OpMaskedEqual, Value: 0xff00, ValueTwo: 0x1200},
			}},
			{Names: []string{"dup"}, Action: specs.ActErrno, ErrnoRet: uintp(73), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpNotEqual, Value: 5}}},
			{Names: []string{"dup2"}, Action: specs.ActErrno, ErrnoRet: uintp(74), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessThan, Value: 5}}},
			{Names: []string{"dup3"}, Action: specs.ActErrno, ErrnoRet: uintp(75), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpLessEqual, Value: 5}}},
			{Names: []string{"close"}, Action: specs.ActErrno, ErrnoRet: uintp(76), Args: []specs.LinuxSeccompArg{{Index: 0, Op: specs.OpGreaterEqual, Value: 1 << 40}}},
			{Names: []string{"fsync"}, Action: specs.ActErrno, ErrnoRet: uintp(77), Args: []specs.LinuxSeccompArg{{Index: 5, Op: specs.OpGreaterThan, Value: 5}}},
		},
	})
	x64(t, p, unix.SYS_KILL, errnoRet(70), 42, 9)
	x64(t, p, unix.SYS_KILL, retAllow, 42, 15)
	x64(t, p, unix.SYS_KILL, retAllow, 43, 9)
	x64(t, p, unix.SYS_GETPRIORITY, errnoRet(71), 0, 11111)
	x64(t, p, unix.SYS_GETPRIORITY, errnoRet(71), 0, 22222)
	x64(t, p, unix.SYS_GETPRIORITY, retAllow, 0, 0)
	x64(t, p, unix.SYS_GETPGID, errnoRet(72), 0x1234)
	x64(t, p, unix.SYS_GETPGID, errnoRet(72), 0xff12ff)
	x64(t, p, unix.SYS_GETPGID, retAllow, 0x1334)
	x64(t, p, unix.SYS_DUP, errnoRet(73), 4)
	x64(t, p, unix.SYS_DUP, retAllow, 5)
	x64(t, p, unix.SYS_DUP2, errnoRet(74), 4)
	x64(t, p, unix.SYS_DUP2, retAllow, 5)
	x64(t, p, unix.SYS_DUP3, errnoRet(75), 5)
	x64(t, p, unix.SYS_DUP3, retAllow, 6)
	x64(t, p, unix.SYS_CLOSE, errnoRet(76), 1<<40)
	x64(t, p, unix.SYS_CLOSE, retAllow, 1<<40-1)
	x64(t, p, unix.SYS_FSYNC, errnoRet(77), 0, 0, 0, 0, 0, 6)
	x64(t, p, unix.SYS_FSYNC, retAllow, 0, 0, 0, 0, 0, 5)
}

func TestActions(t *testing.T) {
	cases := []struct {
		act      specs.LinuxSeccompAction
		errnoRet *uint
		want     uint32
	}{
		{specs.ActKill, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillThread, nil, unix.SECCOMP_RET_KILL_THREAD},
		{specs.ActKillProcess, nil, unix.SECCOMP_RET_KILL_PROCESS},
		{specs.ActTrap, nil, unix.SECCOMP_RET_TRAP},
		{specs.ActErrno, nil, retEPERM},
		{specs.ActErrno, uintp(38), retNOSYS},
		{specs.ActErrno, uintp(0), unix.SECCOMP_RET_ERRNO},
		{specs.ActTrace, nil, unix.SECCOMP_RET_TRACE | uint32(unix.EPERM)},
		{specs.ActTrace, uintp(1234), unix.SECCOMP_RET_TRACE | 1234},
		{specs.ActLog, nil, unix.SECCOMP_RET_LOG},
		{specs.ActNotify, nil, unix.SECCOMP_RET_USER_NOTIF},
		{specs.ActAllow, nil, retAllow},
	}
	for _, c := range cases {
		t.Run(string(c.act), func(t *testing.T) {
			def := specs.ActErrno
			if c.act == specs.ActErrno {
				def = specs.ActAllow
			}
			p := compile(t, &specs.LinuxSeccomp{
				DefaultAction: def,
				Architectures: []specs.Arch{specs.ArchX86_64, specs.ArchX86},
				Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpid", "getppid"}, Action: c.act, ErrnoRet: c.errnoRet}},
			})
			x64(t, p, unix.SYS_GETPID, c.want)
			x64(t, p, unix.SYS_GETPPID, c.want)
			check(t, p, unix.AUDIT_ARCH_I386, 20 /* getpid */, nil, c.want)
			other := retEPERM
			if def == specs.ActAllow {
				other = retAllow
			}
			x64(t, p, unix.SYS_READ, other)
			if p.NeedsListener != (c.act == specs.ActNotify) {
				t.Errorf("NeedsListener = %v", p.NeedsListener)
			}
			if c.act == specs.ActNotify && p.Flags != unix.SECCOMP_FILTER_FLAG_NEW_LISTENER {
				t.Errorf("flags %#x", p.Flags)
			}
		})
	}
	// Every action as the default action.
	for _, c := range cases {
		if c.act == specs.ActNotify {
			continue
		}
		p := compile(t, &specs.LinuxSeccomp{
			DefaultAction:   c.act,
			DefaultErrnoRet: c.errnoRet,
			Syscalls:        []specs.LinuxSyscall{{Names: []string{"write"}, Action: specs.ActKillProcess}},
		})
		x64(t, p, unix.SYS_READ, c.want)
		x64(t, p, unix.SYS_WRITE, unix.SECCOMP_RET_KILL_PROCESS)
		wantHigh := retNOSYS
		if lets(c.act) {
			wantHigh = c.want
		}
		x64(t, p, 1000, wantHigh)
	}
}

func TestRedundantRuleSkipped(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"getpid"}, Action: specs.ActErrno},
			{Names: []string{"getppid"}, Action: specs.ActErrno, ErrnoRet: uintp(1)},
			{Names: []string{"read"}, Action: specs.ActAllow},
		},
	})
	if len(p.Warnings) != 0 {
		t.Errorf("warnings %q", p.Warnings)
	}
	x64(t, p, unix.SYS_GETPID, retEPERM)
	x64(t, p, unix.SYS_GETPPID, retEPERM)
	x64(t, p, unix.SYS_READ, retAllow)
	x64(t, p, unix.SYS_GETPPID+1, retNOSYS) // getppid (110) is the highest named
}

func TestDefaultErrnoENOSYSNeedsNoStub(t *testing.T) {
	cfg := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.ENOSYS)),
		Syscalls:        []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow}},
	}
	p := compile(t, cfg)
	if p.Filter[0] != (unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: offArch}) ||
		p.Filter[1].K != unix.AUDIT_ARCH_X86_64 {
		t.Errorf("unexpected start %+v", p.Filter[:2])
	}
	x64(t, p, 1000, retNOSYS)
	cfg.DefaultErrnoRet = nil
	withStub := compile(t, cfg)
	if len(withStub.Filter) <= len(p.Filter) {
		t.Errorf("no stub: %d <= %d instructions", len(withStub.Filter), len(p.Filter))
	}
}

func TestForeignArchitectures(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchAARCH64, specs.ArchARM, specs.ArchX32, specs.ArchRISCV64, specs.ArchLOONGARCH64},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "getpid"}, Action: specs.ActAllow}},
	})
	x64(t, p, unix.SYS_GETPID, retAllow)
	x64(t, p, unix.SYS_GETPID+1, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|unix.SYS_GETPID, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|(unix.SYS_GETPID+1), nil, retNOSYS)
	// An x86_64 kernel never reports other CPUs' architectures: they are
	// accepted (same byte order) but need no code.
	check(t, p, unix.AUDIT_ARCH_AARCH64, 172 /* getpid */, nil, unix.SECCOMP_RET_KILL_THREAD)
	check(t, p, unix.AUDIT_ARCH_ARM, 3 /* read */, nil, unix.SECCOMP_RET_KILL_THREAD)
	check(t, p, unix.AUDIT_ARCH_I386, 3, nil, unix.SECCOMP_RET_KILL_THREAD)
	same := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX32},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "getpid"}, Action: specs.ActAllow}},
	})
	if !slices.Equal(p.Filter, same.Filter) {
		t.Errorf("foreign architectures changed the program")
	}

	// As with libseccomp, one filter has one byte order.
	for _, arch := range []specs.Arch{specs.ArchS390X, specs.ArchPPC64, specs.ArchMIPS} {
		_, err := Compile(&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, Architectures: []specs.Arch{arch}})
		if err == nil || !strings.Contains(err.Error(), "adding architecture "+string(arch)+": numerical argument out of domain") {
			t.Errorf("%s on x86_64: %v", arch, err)
		}
	}
}

func TestStub(t *testing.T) {
	// Stand-in for the filter that follows the stub.
	allow := func(stub []*stubSection) *Program {
		var a assembler
		filter := retBlock(retAllow)
		enosysStub(&a, stub, filter)
		a.place(filter)
		prog, err := a.assemble()
		if err != nil {
			t.Fatal(err)
		}
		return &Program{Filter: prog}
	}
	p := allow([]*stubSection{
		{audit: unix.AUDIT_ARCH_X86_64, max64: 39, has64: true, maxX32: x32Bit | 20, hasX32: true},
		{audit: unix.AUDIT_ARCH_I386, max: 20},
	})
	check(t, p, unix.AUDIT_ARCH_X86_64, 39, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_X86_64, 40, nil, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|20, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|21, nil, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_I386, 20, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_I386, 21, nil, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_AARCH64, 1000, nil, retAllow)

	p = allow([]*stubSection{{audit: unix.AUDIT_ARCH_X86_64, max64: 39, has64: true}})
	check(t, p, unix.AUDIT_ARCH_X86_64, 40, nil, retNOSYS)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|1000, nil, retAllow) // left to the filter
	check(t, p, unix.AUDIT_ARCH_I386, 1000, nil, retAllow)
	p = allow([]*stubSection{{audit: unix.AUDIT_ARCH_X86_64, maxX32: x32Bit | 20, hasX32: true}})
	check(t, p, unix.AUDIT_ARCH_X86_64, 1000, nil, retAllow)
	check(t, p, unix.AUDIT_ARCH_X86_64, x32Bit|21, nil, retNOSYS)

	// i386 socket calls count with their own numbers (socket is 359),
	// although a rule for them also covers socketcall(2).
	prof := compile(t, &specs.LinuxSeccomp{
		DefaultAction: specs.ActErrno,
		Architectures: []specs.Arch{specs.ArchX86},
		Syscalls:      []specs.LinuxSyscall{{Names: []string{"read", "socket"}, Action: specs.ActAllow}},
	})
	check(t, prof, unix.AUDIT_ARCH_I386, 359, nil, retAllow)
	check(t, prof, unix.AUDIT_ARCH_I386, 360, nil, retNOSYS)
	check(t, prof, unix.AUDIT_ARCH_I386, i386Socketcall, []uint64{1}, retAllow)
	check(t, prof, unix.AUDIT_ARCH_I386, i386Socketcall, []uint64{2}, retEPERM)
}

func TestFlags(t *testing.T) {
	base := func(flags ...specs.LinuxSeccompFlag) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{
			DefaultAction: specs.ActAllow,
			Flags:         flags,
			Syscalls:      []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActErrno}},
		}
	}
	p := compile(t, base(specs.LinuxSeccompFlagLog, specs.LinuxSeccompFlagSpecAllow, "SECCOMP_FILTER_FLAG_TSYNC"))
	if want := uint(unix.SECCOMP_FILTER_FLAG_LOG | unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW | unix.SECCOMP_FILTER_FLAG_TSYNC); p.Flags != want || len(p.Warnings) != 0 {
		t.Errorf("flags %#x want %#x, warnings %q", p.Flags, want, p.Warnings)
	}
	p = compile(t, base(specs.LinuxSeccompFlagWaitKillableRecv))
	if p.Flags != 0 || len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "WAIT_KILLABLE_RECV dropped") {
		t.Errorf("flags %#x, warnings %q", p.Flags, p.Warnings)
	}
	cfg := base(specs.LinuxSeccompFlagWaitKillableRecv, "SECCOMP_FILTER_FLAG_TSYNC")
	cfg.Syscalls[0].Action = specs.ActNotify
	p = compile(t, cfg)
	if want := uint(unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV | unix.SECCOMP_FILTER_FLAG_NEW_LISTENER); p.Flags != want || !p.NeedsListener {
		t.Errorf("flags %#x want %#x", p.Flags, want)
	}
	if len(p.Warnings) != 1 || !strings.Contains(p.Warnings[0], "TSYNC dropped") {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestErrors(t *testing.T) {
	rule := func(r specs.LinuxSyscall) *specs.LinuxSeccomp {
		return &specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Syscalls: []specs.LinuxSyscall{r}}
	}
	cases := []struct {
		cfg  *specs.LinuxSeccomp
		want string
	}{
		{nil, "no configuration"},
		{&specs.LinuxSeccomp{DefaultAction: "SCMP_ACT_NOPE"}, `defaultAction: unknown seccomp action "SCMP_ACT_NOPE"`},
		{&specs.LinuxSeccomp{DefaultAction: ""}, `unknown seccomp action ""`},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActNotify}, "cannot be the default action"},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActErrno, DefaultErrnoRet: uintp(70000)}, "errnoRet 70000 out of range"},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"SCMP_ARCH_VAX"}}, `unknown architecture "SCMP_ARCH_VAX"`},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Architectures: []specs.Arch{"x86_64"}}, `unknown architecture "x86_64"`},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_BOGUS"}}, `unknown or unsupported flag "SECCOMP_FILTER_FLAG_BOGUS"`},
		{&specs.LinuxSeccomp{DefaultAction: specs.ActAllow, Flags: []specs.LinuxSeccompFlag{"SECCOMP_FILTER_FLAG_NEW_LISTENER"}}, `unknown or unsupported flag "SECCOMP_FILTER_FLAG_NEW_LISTENER"`},
		{rule(specs.LinuxSyscall{Names: []string{"getpid"}, Action: "SCMP_ACT_BOGUS"}), `syscalls[0] [getpid]: unknown seccomp action "SCMP_ACT_BOGUS"`},
		{rule(specs.LinuxSyscall{Names: []string{"getpid"}, Action: specs.ActErrno, ErrnoRet: uintp(1 << 16)}), "errnoRet 65536 out of range"},
		{rule(specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_APPROX", Value: 1}}}), `args[0]: unknown operator "SCMP_CMP_APPROX"`},
		{rule(specs.LinuxSyscall{Names: []string{"kill"}, Action: specs.ActErrno, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}), "argument index 6 out of range"},
		{rule(specs.LinuxSyscall{Names: []string{"write"}, Action: specs.ActNotify}), "cannot be used for the write syscall"},
		{rule(specs.LinuxSyscall{Names: []string{""}, Action: specs.ActErrno}), "empty syscall name"},
	}
	for _, c := range cases {
		p, err := Compile(c.cfg)
		if err == nil {
			t.Errorf("%+v: no error (program %d insns)", c.cfg, len(p.Filter))
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("error %q does not contain %q", err, c.want)
		}
	}
}

func TestIgnoredErrnoRetWarns(t *testing.T) {
	p := compile(t, &specs.LinuxSeccomp{
		DefaultAction:   specs.ActAllow,
		DefaultErrnoRet: uintp(5),
		Syscalls:        []specs.LinuxSyscall{{Names: []string{"getpid"}, Action: specs.ActKillProcess, ErrnoRet: uintp(5)}},
	})
	if len(p.Warnings) != 2 {
		t.Errorf("warnings %q", p.Warnings)
	}
}

func TestAssemblerLongJumps(t *testing.T) {
	// A conditional jump farther than 255 instructions goes through a
	// trampoline: a copy of a return, or a jump.
	for _, far := range []int{0, 1} {
		var a assembler
		b := a.newBlock()
		b.ld(offNr)
		target := retBlock(7)
		var t8, t9 *block
		if far == 1 {
			t8, t9 = retBlock(8), retBlock(9)
			target = &block{}
			target.ld(offArgs)
			target.jmp(unix.BPF_JEQ, 1, t8, t9)
		}
		near := retBlock(5)
		b.jmp(unix.BPF_JEQ, 3, target, near)
		a.place(near)
		for range 300 {
			a.place(retBlock(6))
		}
		a.place(target)
		if far == 1 {
			a.place(t8)
			a.place(t9)
		}
		prog, err := a.assemble()
		if err != nil {
			t.Fatal(err)
		}
		p := &Program{Filter: prog}
		want := uint32(7)
		if far == 1 {
			want = 9
		}
		check(t, p, 0, 3, nil, want)
		check(t, p, 0, 4, nil, 5)
		// ld, jeq, trampoline, near, 300 returns, target (+ its two returns)
		if wantLen := 2 + 1 + 1 + 300 + 1 + 3*far; len(prog) != wantLen {
			t.Errorf("far %d: %d instructions, want %d", far, len(prog), wantLen)
		}
	}

	var b assembler
	x := b.newBlock()
	x.ja(x)
	if _, err := b.assemble(); err == nil || !strings.Contains(err.Error(), "backward") {
		t.Errorf("backward jump: %v", err)
	}
}

func TestDecode(t *testing.T) {
	if _, err := decode(make([]byte, 7)); err == nil {
		t.Error("odd length accepted")
	}
	if _, err := decode(nil); err == nil {
		t.Error("empty program accepted")
	}
	got, err := decode([]byte{0x20, 0, 1, 2, 4, 0, 0, 0})
	if err != nil || len(got) != 1 || got[0] != (unix.SockFilter{Code: 0x20, Jt: 1, Jf: 2, K: 4}) {
		t.Errorf("decode = %+v, %v", got, err)
	}
}

func BenchmarkCompileDockerDefault(b *testing.B) {
	prof, err := DefaultProfile(caps.DockerDefault())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := Compile(prof); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDefaultProfileAndCompile(b *testing.B) {
	for b.Loop() {
		prof, err := DefaultProfile(caps.DockerDefault())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Compile(prof); err != nil {
			b.Fatal(err)
		}
	}
}
