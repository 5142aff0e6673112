// Package seccomp compiles an OCI seccomp configuration into a classic BPF
// program that the container child loads with
//
//	seccomp(SECCOMP_SET_MODE_FILTER, Program.Flags, &sock_fprog{len(Filter), &Filter[0]})
//
// after setting no_new_privs (or while it still has CAP_SYS_ADMIN). The child
// is a raw clone that never re-enters the Go runtime, so all the work happens
// here in the parent, in pure Go (no cgo, no libseccomp): syscall names are
// resolved with a table generated from libseccomp (ztable.go, see
// hack/gen-syscalls.sh), the rules merged per syscall the way libseccomp 2.5
// merges them (db.go) and the BPF generated here (gen.go): a binary search
// on the syscall number, then the syscall's tree of argument comparisons.
// The programs make the decisions libseccomp 2.5.4's did (see
// libseccomp_diff_test.go for the few intended differences). The host must
// be x86_64; the filter covers the x86_64, i386 and x32 ABIs.
//
// Behaviour follows runc:
//   - SCMP_ACT_KILL means SCMP_ACT_KILL_THREAD; SCMP_ACT_ERRNO and
//     SCMP_ACT_TRACE return errnoRet, EPERM when it is not given.
//   - Syscall names that are not known are skipped and reported in
//     Program.Warnings; a rule whose action equals the default action is
//     redundant and skipped silently.
//   - Several conditions of one rule must all hold, each on a 64-bit argument
//     compared as its two 32-bit words (on i386 and x32, as libseccomp does,
//     only the low word); several conditions on the same argument index in
//     one rule are split into one rule per condition (libseccomp cannot AND
//     them), so they match when any of them does. Rules for one syscall are
//     merged as libseccomp merges them: an unconditional rule wins, rules
//     giving the same arguments different actions are refused (EEXIST), and
//     overlapping rules are tried in libseccomp's order. Rule sets on which
//     libseccomp 2.5 never returns are refused.
//   - SCMP_ACT_ERRNO takes errno values up to 4094, as with libseccomp.
//   - A rule for an i386 socket or SysV IPC call also applies to socketcall(2)
//     or ipc(2) with the call number as first argument.
//   - Syscalls from an architecture not in the filter get libseccomp's
//     bad-architecture action, SCMP_ACT_KILL_THREAD. The native architecture
//     is always in the filter. Architectures of other CPUs with the same byte
//     order are accepted but add nothing: an x86_64 kernel never reports them.
//   - Unless the default action lets syscalls through (ALLOW, LOG, TRACE) or
//     is already ERRNO(ENOSYS), an -ENOSYS stub is put in front of the
//     filter: on each ABI of the filter, a syscall number above the highest
//     one the profile names fails with ENOSYS instead of getting the default
//     action. Such syscalls are newer than the profile, and programs (glibc
//     probing clone3, faccessat2, ...) fall back to older ones on ENOSYS but
//     not on EPERM.
package seccomp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
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

var ops = map[specs.LinuxSeccompOperator]cmpOp{
	specs.OpNotEqual:     cmpNE,
	specs.OpLessThan:     cmpLT,
	specs.OpLessEqual:    cmpLE,
	specs.OpEqualTo:      cmpEQ,
	specs.OpGreaterEqual: cmpGE,
	specs.OpGreaterThan:  cmpGT,
	specs.OpMaskedEqual:  cmpMaskedEQ,
}

// action converts a spec action to its SECCOMP_RET_* value. errnoRet applies
// to ERRNO and TRACE only; for other actions ignoredErrno reports that it was
// given and ignored.
func action(a specs.LinuxSeccompAction, errnoRet *uint) (act uint32, ignoredErrno bool, err error) {
	ret := uint32(unix.EPERM)
	if errnoRet != nil {
		if *errnoRet > 0xffff {
			return 0, false, fmt.Errorf("errnoRet %d out of range (0-65535)", *errnoRet)
		}
		ret = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		act = unix.SECCOMP_RET_KILL_THREAD
	case specs.ActKillProcess:
		act = unix.SECCOMP_RET_KILL_PROCESS
	case specs.ActTrap:
		act = unix.SECCOMP_RET_TRAP
	case specs.ActErrno:
		return unix.SECCOMP_RET_ERRNO | ret, false, nil
	case specs.ActTrace:
		return unix.SECCOMP_RET_TRACE | ret, false, nil
	case specs.ActAllow:
		act = unix.SECCOMP_RET_ALLOW
	case specs.ActLog:
		act = unix.SECCOMP_RET_LOG
	case specs.ActNotify:
		act = unix.SECCOMP_RET_USER_NOTIF
	default:
		return 0, false, fmt.Errorf("unknown seccomp action %q", a)
	}
	return act, errnoRet != nil, nil
}

// maxErrno is the highest errno libseccomp accepts for SCMP_ACT_ERRNO (it
// refuses MAX_ERRNO, 4095, and above).
const maxErrno = 4094

// checkErrno refuses SCMP_ACT_ERRNO with an errno libseccomp refuses.
func checkErrno(act uint32) error {
	if act&unix.SECCOMP_RET_ACTION_FULL == unix.SECCOMP_RET_ERRNO && act&unix.SECCOMP_RET_DATA > maxErrno {
		return fmt.Errorf("errnoRet %d out of range for SCMP_ACT_ERRNO (0-%d)", act&unix.SECCOMP_RET_DATA, maxErrno)
	}
	return nil
}

// lets reports whether a default action lets syscalls run (or hands them to
// a tracer that may), in which case no -ENOSYS stub is wanted.
func lets(a specs.LinuxSeccompAction) bool {
	return a == specs.ActAllow || a == specs.ActLog || a == specs.ActTrace
}

// Compile builds the BPF program for cfg. Errors name the offending value;
// what is skipped is listed in Program.Warnings.
func Compile(cfg *specs.LinuxSeccomp) (*Program, error) {
	p, _, err := compileAll(cfg)
	return p, err
}

// compiled is what compileAll built the program from, for tests.
type compiled struct {
	defAct uint32
	dbs    [numABIs]*archDB
	stub   []*stubSection
}

func compileAll(cfg *specs.LinuxSeccomp) (*Program, *compiled, error) {
	if cfg == nil {
		return nil, nil, errors.New("seccomp: no configuration")
	}
	p := &Program{}
	warnf := func(format string, a ...any) { p.Warnings = append(p.Warnings, fmt.Sprintf(format, a...)) }

	defAct, ignored, err := action(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	if ignored {
		warnf("defaultErrnoRet is ignored with defaultAction %s", cfg.DefaultAction)
	}
	if cfg.DefaultAction == specs.ActNotify {
		return nil, nil, errors.New("seccomp: SCMP_ACT_NOTIFY cannot be the default action")
	}

	for _, f := range cfg.Flags {
		bit, ok := specFlags[f]
		if !ok {
			return nil, nil, fmt.Errorf("seccomp: unknown or unsupported flag %q", f)
		}
		p.Flags |= bit
	}
	if err := checkErrno(defAct); err != nil {
		return nil, nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}

	if runtime.GOARCH != "amd64" {
		return nil, nil, fmt.Errorf("seccomp: native architecture: %s is not supported", runtime.GOARCH)
	}
	names := 16
	for _, rule := range cfg.Syscalls {
		names += len(rule.Names)
	}
	var dbs [numABIs]*archDB
	dbs[abiX86_64] = newArchDB(abiX86_64, names)
	for _, name := range cfg.Architectures {
		a, ok := archs[name]
		if !ok {
			return nil, nil, fmt.Errorf("seccomp: unknown architecture %q", name)
		}
		switch a.kind {
		case archBigEndian:
			// As libseccomp: one filter has one byte order.
			return nil, nil, fmt.Errorf("seccomp: adding architecture %s: %w", name, unix.EDOM)
		case archABI:
			if dbs[a.abi] == nil {
				dbs[a.abi] = newArchDB(a.abi, names)
			}
		}
	}

	unknown := map[string]bool{}
	var known []*sysEntry // every syscall used by a rule, for the ENOSYS stub
	for i, rule := range cfg.Syscalls {
		act, ignored, err := action(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, rule.Names, err)
		}
		if ignored {
			warnf("syscalls[%d] %v: errnoRet is ignored with action %s", i, rule.Names, rule.Action)
		}
		conds, split, err := conditions(rule.Args)
		if err != nil {
			return nil, nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, rule.Names, err)
		}
		if rule.Action == specs.ActNotify {
			if slices.Contains(rule.Names, "write") {
				// As in runc: the container process may still have to write
				// to the runtime after loading the filter, before anything
				// can answer notifications.
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: SCMP_ACT_NOTIFY cannot be used for the write syscall", i)
			}
			p.NeedsListener = true
		}
		for _, name := range rule.Names {
			if name == "" {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: empty syscall name", i)
			}
			e := lookupSyscall(name)
			if e == nil {
				if !unknown[name] {
					unknown[name] = true
					warnf("unknown syscall %q skipped", name)
				}
				continue
			}
			known = append(known, e)
			if act == defAct {
				continue // redundant (libseccomp refuses it)
			}
			if err := checkErrno(act); err != nil {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: adding rule for %s: %w", i, name, err)
			}
			if err := addRule(&dbs, e, act, conds, split); err != nil {
				return nil, nil, fmt.Errorf("seccomp: syscalls[%d]: adding rule for %s: %w", i, name, err)
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

	var stub []*stubSection
	if !lets(cfg.DefaultAction) &&
		!(cfg.DefaultAction == specs.ActErrno && cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS)) {
		stub = stubSections(&dbs, known)
	}
	prog, err := generate(defAct, &dbs, stub)
	if err != nil {
		return nil, nil, fmt.Errorf("seccomp: generating BPF: %w", err)
	}
	if len(prog) > bpfMaxInsns {
		return nil, nil, fmt.Errorf("seccomp: filter has %d BPF instructions, the kernel allows %d", len(prog), bpfMaxInsns)
	}
	p.Filter = prog
	return p, &compiled{defAct, dbs, stub}, nil
}

// cond is an argument condition of a rule.
type cond struct {
	arg int
	cmp argCmp
}

// conditions converts a rule's argument conditions. split is set when two
// conditions test the same argument: libseccomp cannot AND those, so each
// becomes a rule of its own (runc's behaviour).
func conditions(args []specs.LinuxSeccompArg) (conds []cond, split bool, err error) {
	var seen [maxArgs]bool
	for j, a := range args {
		if a.Index >= maxArgs {
			return nil, false, fmt.Errorf("args[%d]: argument index %d out of range (0-%d)", j, a.Index, maxArgs-1)
		}
		op, ok := ops[a.Op]
		if !ok {
			return nil, false, fmt.Errorf("args[%d]: unknown operator %q", j, a.Op)
		}
		c := argCmp{valid: true, op: op, mask: ^uint64(0), datum: a.Value}
		if op == cmpMaskedEQ {
			// (arg & value) == valueTwo
			c.mask, c.datum = a.Value, a.ValueTwo
		}
		if seen[a.Index] {
			split = true
		}
		seen[a.Index] = true
		conds = append(conds, cond{int(a.Index), c})
	}
	return conds, split, nil
}

// addRule adds a rule (or, when split, one rule per condition) for syscall e
// to each ABI of the filter. A syscall that does not exist on an ABI adds no
// code there (see archDB.byPseudo).
func addRule(dbs *[numABIs]*archDB, e *sysEntry, act uint32, conds []cond, split bool) error {
	if !split {
		return addOne(dbs, e, act, conds)
	}
	for _, c := range conds {
		if err := addOne(dbs, e, act, []cond{c}); err != nil {
			return err
		}
	}
	return nil
}

// addOne adds one rule with conditions conds for syscall e.
func addOne(dbs *[numABIs]*archDB, e *sysEntry, act uint32, conds []cond) error {
	r := dbRule{action: act}
	for _, c := range conds {
		r.args[c.arg] = c.cmp
	}
	for a, db := range dbs {
		if db == nil {
			continue
		}
		nr, ok := e.nr(abi(a))
		r.syscall, r.pseudo = nr, 0
		if !ok {
			r.pseudo = 1 + e.index()
		}
		if abi(a) == abiI386 {
			mux, call, isMux := i386Mux(e.name)
			if isMux {
				rm := r
				rm.syscall, rm.pseudo = mux, 0
				rm.args[0] = argCmp{valid: true, op: cmpEQ, mask: ^uint64(0), datum: uint64(call)}
				if err := db.add(&rm); err != nil {
					return err
				}
			} else if !ok {
				continue // libseccomp's i386 code drops these
			}
		}
		if err := db.add(&r); err != nil {
			return err
		}
	}
	return nil
}

// stubSections computes the -ENOSYS stub's limits: for each ABI of the
// filter, the highest number of the syscalls in known.
func stubSections(dbs *[numABIs]*archDB, known []*sysEntry) []*stubSection {
	var max [numABIs]uint32
	var found [numABIs]bool
	for a, db := range dbs {
		if db == nil {
			continue
		}
		for _, e := range known {
			if nr, ok := e.nr(abi(a)); ok && (!found[a] || nr > max[a]) {
				max[a], found[a] = nr, true
			}
		}
	}
	var secs []*stubSection
	if found[abiX86_64] || found[abiX32] {
		secs = append(secs, &stubSection{audit: unix.AUDIT_ARCH_X86_64,
			max64: max[abiX86_64], has64: found[abiX86_64],
			maxX32: max[abiX32], hasX32: found[abiX32]})
	}
	if found[abiI386] {
		secs = append(secs, &stubSection{audit: unix.AUDIT_ARCH_I386, max: max[abiI386]})
	}
	return secs
}

// decode turns raw struct sock_filter bytes (host byte order) into
// instructions.
func decode(raw []byte) ([]unix.SockFilter, error) {
	const size = int(unsafe.Sizeof(unix.SockFilter{}))
	if len(raw)%size != 0 {
		return nil, fmt.Errorf("BPF is %d bytes, not a multiple of %d", len(raw), size)
	}
	if len(raw) == 0 {
		return nil, errors.New("empty BPF program")
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
