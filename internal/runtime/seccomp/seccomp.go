// Package seccomp compiles an OCI seccomp configuration into a classic BPF
// program that the container child loads with
//
//	seccomp(SECCOMP_SET_MODE_FILTER, Program.Flags, &sock_fprog{len(Filter), &Filter[0]})
//
// after setting no_new_privs (or while it still has CAP_SYS_ADMIN). The child
// is a raw clone that never re-enters the Go runtime, so all the work happens
// here in the parent: the filter is built with libseccomp (through cgo and
// github.com/seccomp/libseccomp-golang), exported as BPF, and handed back as
// plain []unix.SockFilter words plus the seccomp(2) flags.
//
// Behaviour follows runc:
//   - SCMP_ACT_KILL means SCMP_ACT_KILL_THREAD; SCMP_ACT_ERRNO and
//     SCMP_ACT_TRACE return errnoRet, EPERM when it is not given.
//   - Syscall names libseccomp does not know are skipped and reported in
//     Program.Warnings; a rule whose action equals the default action is
//     redundant and skipped silently.
//   - Several conditions on the same argument index in one rule are split
//     into one rule per condition (libseccomp cannot AND them), so they match
//     when any of them does.
//   - Syscalls from an architecture not in the filter get libseccomp's
//     bad-architecture action, SCMP_ACT_KILL_THREAD. The native architecture
//     is always in the filter.
//   - Unless the default action lets syscalls through (ALLOW, LOG, TRACE) or
//     is already ERRNO(ENOSYS), an -ENOSYS stub is put in front of the
//     libseccomp program: on each architecture of the filter, a syscall number
//     above the highest one the profile names fails with ENOSYS instead of
//     getting the default action. Such syscalls are newer than the profile,
//     and programs (glibc probing clone3, faccessat2, ...) fall back to older
//     ones on ENOSYS but not on EPERM.
package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// Program is a compiled seccomp filter, ready for seccomp(2).
type Program struct {
	// Filter is the BPF program (at most BPF_MAXINSNS = 4096 instructions).
	Filter []unix.SockFilter
	// Flags are the SECCOMP_FILTER_FLAG_* bits for seccomp(2). They include
	// SECCOMP_FILTER_FLAG_NEW_LISTENER when NeedsListener is set.
	Flags uint
	// NeedsListener is set when a rule uses SCMP_ACT_NOTIFY: seccomp(2) then
	// returns a user notification fd, which the runtime must pass on to the
	// seccomp agent at the spec's listenerPath.
	NeedsListener bool
	// Warnings describe what was ignored: unknown syscall names, flags or
	// errnoRet values that do not apply.
	Warnings []string
}

// Fprog returns the sock_fprog that points at p.Filter, for seccomp(2). It
// stays valid as long as p.Filter is neither modified nor collected.
func (p *Program) Fprog() unix.SockFprog {
	if len(p.Filter) == 0 {
		return unix.SockFprog{}
	}
	return unix.SockFprog{Len: uint16(len(p.Filter)), Filter: &p.Filter[0]}
}

// bpfMaxInsns is the kernel's BPF_MAXINSNS limit for a classic BPF program.
const bpfMaxInsns = 4096

// maxArgs is the number of syscall arguments a condition may test.
const maxArgs = 6

// Filter flags accepted in the spec's flags list.
var specFlags = map[specs.LinuxSeccompFlag]uint{
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
	"SECCOMP_FILTER_FLAG_TSYNC":            unix.SECCOMP_FILTER_FLAG_TSYNC,
}

type archInfo struct {
	scmp  libseccomp.ScmpArch
	audit uint32 // AUDIT_ARCH_* value the kernel puts in seccomp_data.arch
}

// archs maps the spec's architecture names to libseccomp's.
var archs = map[specs.Arch]archInfo{
	specs.ArchX86:         {libseccomp.ArchX86, unix.AUDIT_ARCH_I386},
	specs.ArchX86_64:      {libseccomp.ArchAMD64, unix.AUDIT_ARCH_X86_64},
	specs.ArchX32:         {libseccomp.ArchX32, unix.AUDIT_ARCH_X86_64},
	specs.ArchARM:         {libseccomp.ArchARM, unix.AUDIT_ARCH_ARM},
	specs.ArchAARCH64:     {libseccomp.ArchARM64, unix.AUDIT_ARCH_AARCH64},
	specs.ArchMIPS:        {libseccomp.ArchMIPS, unix.AUDIT_ARCH_MIPS},
	specs.ArchMIPS64:      {libseccomp.ArchMIPS64, unix.AUDIT_ARCH_MIPS64},
	specs.ArchMIPS64N32:   {libseccomp.ArchMIPS64N32, unix.AUDIT_ARCH_MIPS64N32},
	specs.ArchMIPSEL:      {libseccomp.ArchMIPSEL, unix.AUDIT_ARCH_MIPSEL},
	specs.ArchMIPSEL64:    {libseccomp.ArchMIPSEL64, unix.AUDIT_ARCH_MIPSEL64},
	specs.ArchMIPSEL64N32: {libseccomp.ArchMIPSEL64N32, unix.AUDIT_ARCH_MIPSEL64N32},
	specs.ArchPPC:         {libseccomp.ArchPPC, unix.AUDIT_ARCH_PPC},
	specs.ArchPPC64:       {libseccomp.ArchPPC64, unix.AUDIT_ARCH_PPC64},
	specs.ArchPPC64LE:     {libseccomp.ArchPPC64LE, unix.AUDIT_ARCH_PPC64LE},
	specs.ArchS390:        {libseccomp.ArchS390, unix.AUDIT_ARCH_S390},
	specs.ArchS390X:       {libseccomp.ArchS390X, unix.AUDIT_ARCH_S390X},
	specs.ArchPARISC:      {libseccomp.ArchPARISC, unix.AUDIT_ARCH_PARISC},
	specs.ArchPARISC64:    {libseccomp.ArchPARISC64, unix.AUDIT_ARCH_PARISC64},
	specs.ArchRISCV64:     {libseccomp.ArchRISCV64, unix.AUDIT_ARCH_RISCV64},
	specs.ArchLOONGARCH64: {libseccomp.ArchLOONGARCH64, unix.AUDIT_ARCH_LOONGARCH64},
	specs.ArchM68K:        {libseccomp.ArchM68K, unix.AUDIT_ARCH_M68K},
	specs.ArchSH:          {libseccomp.ArchSH, unix.AUDIT_ARCH_SHEL},
	specs.ArchSHEB:        {libseccomp.ArchSHEB, unix.AUDIT_ARCH_SH},
}

var ops = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// action converts a spec action. errnoRet applies to ERRNO and TRACE only;
// for other actions ignoredErrno reports that it was given and ignored.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (act libseccomp.ScmpAction, ignoredErrno bool, err error) {
	ret := int16(unix.EPERM)
	if errnoRet != nil {
		if *errnoRet > 0xffff {
			return 0, false, fmt.Errorf("errnoRet %d out of range (0-65535)", *errnoRet)
		}
		ret = int16(uint16(*errnoRet))
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		act = libseccomp.ActKillThread
	case specs.ActKillProcess:
		act = libseccomp.ActKillProcess
	case specs.ActTrap:
		act = libseccomp.ActTrap
	case specs.ActErrno:
		return libseccomp.ActErrno.SetReturnCode(ret), false, nil
	case specs.ActTrace:
		return libseccomp.ActTrace.SetReturnCode(ret), false, nil
	case specs.ActAllow:
		act = libseccomp.ActAllow
	case specs.ActLog:
		act = libseccomp.ActLog
	case specs.ActNotify:
		act = libseccomp.ActNotify
	default:
		return 0, false, fmt.Errorf("unknown seccomp action %q", a)
	}
	return act, errnoRet != nil, nil
}

// lets reports whether a default action lets syscalls run (or hands them to
// a tracer that may), in which case no -ENOSYS stub is wanted.
func lets(a specs.LinuxSeccompAction) bool {
	return a == specs.ActAllow || a == specs.ActLog || a == specs.ActTrace
}

// Compile builds the BPF program for cfg. Errors name the offending value;
// what is skipped is listed in Program.Warnings.
func Compile(cfg *specs.LinuxSeccomp) (*Program, error) {
	if cfg == nil {
		return nil, errors.New("seccomp: no configuration")
	}
	p := &Program{}
	warnf := func(format string, a ...any) { p.Warnings = append(p.Warnings, fmt.Sprintf(format, a...)) }

	defAct, ignored, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	if ignored {
		warnf("defaultErrnoRet is ignored with defaultAction %s", cfg.DefaultAction)
	}
	if cfg.DefaultAction == specs.ActNotify {
		return nil, errors.New("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
	}

	for _, f := range cfg.Flags {
		bit, ok := specFlags[f]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown or unsupported flag %q", f)
		}
		p.Flags |= bit
	}

	filter, err := libseccomp.NewFilter(defAct)
	if err != nil {
		return nil, fmt.Errorf("seccomp: creating filter: %w", err)
	}
	defer filter.Release()
	// The runtime sets no_new_privs itself when the spec asks for it.
	if err := filter.SetNoNewPrivsBit(false); err != nil {
		return nil, fmt.Errorf("seccomp: clearing the no_new_privs attribute: %w", err)
	}

	native, err := libseccomp.GetNativeArch()
	if err != nil {
		return nil, fmt.Errorf("seccomp: native architecture: %w", err)
	}
	filterArchs := []libseccomp.ScmpArch{native}
	for _, name := range cfg.Architectures {
		a, ok := archs[name]
		if !ok {
			return nil, fmt.Errorf("seccomp: unknown architecture %q", name)
		}
		if err := filter.AddArch(a.scmp); err != nil {
			return nil, fmt.Errorf("seccomp: adding architecture %s: %w", name, err)
		}
		if !slices.Contains(filterArchs, a.scmp) {
			filterArchs = append(filterArchs, a.scmp)
		}
	}

	// As runc does: libseccomp's binary tree layout for long rule sets
	// (libseccomp <= 2.5.4 misbehaves with it on empty filters).
	nrules := 0
	for _, rule := range cfg.Syscalls {
		nrules += len(rule.Names)
	}
	if nrules > 32 {
		if err := filter.SetOptimize(2); err != nil {
			warnf("libseccomp binary tree optimization unavailable: %v", err)
		}
	}

	unknown := map[string]bool{}
	var known []string // every resolvable name used by a rule, for the ENOSYS stub
	for i, rule := range cfg.Syscalls {
		act, ignored, err := action(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, rule.Names, err)
		}
		if ignored {
			warnf("syscalls[%d] %v: errnoRet is ignored with action %s", i, rule.Names, rule.Action)
		}
		conds, split, err := conditions(rule.Args)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, rule.Names, err)
		}
		if rule.Action == specs.ActNotify {
			if slices.Contains(rule.Names, "write") {
				// As in runc: the container process may still have to write
				// to the runtime after loading the filter, before anything
				// can answer notifications.
				return nil, fmt.Errorf("seccomp: syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for the write syscall", i)
			}
			p.NeedsListener = true
		}
		for _, name := range rule.Names {
			if name == "" {
				return nil, fmt.Errorf("seccomp: syscalls[%d]: empty syscall name", i)
			}
			nr, err := libseccomp.GetSyscallFromName(name)
			if err != nil {
				if !unknown[name] {
					unknown[name] = true
					warnf("unknown syscall %q skipped", name)
				}
				continue
			}
			known = append(known, name)
			if act == defAct {
				continue // redundant; libseccomp refuses it
			}
			if err := addRule(filter, nr, act, conds, split); err != nil {
				return nil, fmt.Errorf("seccomp: syscalls[%d]: adding rule for %s: %w", i, name, err)
			}
		}
	}

	if p.NeedsListener {
		p.Flags |= unix.SECCOMP_FILTER_FLAG_NEW_LISTENER
		if p.Flags&unix.SECCOMP_FILTER_FLAG_TSYNC != 0 {
			// The kernel refuses TSYNC with NEW_LISTENER (unless TSYNC_ESRCH);
			// the child is single-threaded, so TSYNC has nothing to do.
			p.Flags &^= unix.SECCOMP_FILTER_FLAG_TSYNC
			warnf("flag SECCOMP_FILTER_FLAG_TSYNC dropped: it cannot be combined with SCMP_ACT_NOTIFY and the container process is single-threaded")
		}
	} else if p.Flags&unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV != 0 {
		p.Flags &^= unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
		warnf("flag SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV dropped: no rule uses SCMP_ACT_NOTIFY")
	}

	prog, err := exportBPF(filter)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	enosys := !lets(cfg.DefaultAction) &&
		!(cfg.DefaultAction == specs.ActErrno && cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS))
	if enosys {
		stub, err := enosysStub(filterArchs, known)
		if err != nil {
			return nil, fmt.Errorf("seccomp: -ENOSYS stub: %w", err)
		}
		prog = append(stub, prog...)
	}
	if len(prog) > bpfMaxInsns {
		return nil, fmt.Errorf("seccomp: filter has %d BPF instructions, the kernel allows %d", len(prog), bpfMaxInsns)
	}
	p.Filter = prog
	return p, nil
}

// conditions converts a rule's argument conditions. split is set when two
// conditions test the same argument: libseccomp cannot AND those, so each
// becomes a rule of its own (runc's behaviour).
func conditions(args []specs.LinuxSeccompArg) (conds []libseccomp.ScmpCondition, split bool, err error) {
	var seen [maxArgs]bool
	for j, a := range args {
		if a.Index >= maxArgs {
			return nil, false, fmt.Errorf("args[%d]: argument index %d out of range (0-%d)", j, a.Index, maxArgs-1)
		}
		op, ok := ops[a.Op]
		if !ok {
			return nil, false, fmt.Errorf("args[%d]: unknown operator %q", j, a.Op)
		}
		c, err := libseccomp.MakeCondition(a.Index, op, a.Value, a.ValueTwo)
		if err != nil {
			return nil, false, fmt.Errorf("args[%d]: %w", j, err)
		}
		if seen[a.Index] {
			split = true
		}
		seen[a.Index] = true
		conds = append(conds, c)
	}
	return conds, split, nil
}

func addRule(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition, split bool) error {
	switch {
	case len(conds) == 0:
		return f.AddRule(nr, act)
	case split:
		for _, c := range conds {
			if err := f.AddRuleConditional(nr, act, []libseccomp.ScmpCondition{c}); err != nil {
				return err
			}
		}
		return nil
	default:
		return f.AddRuleConditional(nr, act, conds)
	}
}

// exportBPF has libseccomp write the filter's BPF to a memfd and reads it
// back as instructions (libseccomp writes them in host byte order).
func exportBPF(filter *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
	fd, err := unix.MemfdCreate("berth-seccomp-bpf", unix.MFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("memfd_create: %w", err)
	}
	f := os.NewFile(uintptr(fd), "berth-seccomp-bpf")
	defer f.Close()
	if err := filter.ExportBPF(f); err != nil {
		return nil, fmt.Errorf("exporting BPF: %w", err)
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("reading exported BPF: %w", err)
	}
	return decode(raw)
}

// decode turns raw struct sock_filter bytes into instructions.
func decode(raw []byte) ([]unix.SockFilter, error) {
	const size = int(unsafe.Sizeof(unix.SockFilter{}))
	if len(raw)%size != 0 {
		return nil, fmt.Errorf("exported BPF is %d bytes, not a multiple of %d", len(raw), size)
	}
	if len(raw) == 0 {
		return nil, errors.New("libseccomp exported an empty BPF program")
	}
	prog := make([]unix.SockFilter, len(raw)/size)
	for i := range prog {
		b := raw[i*size:]
		prog[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(b[0:]),
			Jt:   b[2],
			Jf:   b[3],
			K:    binary.NativeEndian.Uint32(b[4:]),
		}
	}
	return prog, nil
}
