//go:build libseccomp_ref

package seccomp

// The libseccomp-based implementation this package had before it became pure
// Go, kept (for the differential test only) as the reference.

import (
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/runtime-spec/specs-go"
	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

type refArchInfo struct {
	scmp  libseccomp.ScmpArch
	audit uint32 // AUDIT_ARCH_* value the kernel puts in seccomp_data.arch
}

// refArchs maps the spec's architecture names to libseccomp's.
var refArchs = map[specs.Arch]refArchInfo{
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

var refOps = map[specs.LinuxSeccompOperator]libseccomp.ScmpCompareOp{
	specs.OpNotEqual:     libseccomp.CompareNotEqual,
	specs.OpLessThan:     libseccomp.CompareLess,
	specs.OpLessEqual:    libseccomp.CompareLessOrEqual,
	specs.OpEqualTo:      libseccomp.CompareEqual,
	specs.OpGreaterEqual: libseccomp.CompareGreaterEqual,
	specs.OpGreaterThan:  libseccomp.CompareGreater,
	specs.OpMaskedEqual:  libseccomp.CompareMaskedEqual,
}

// refAction converts a spec refAction. errnoRet applies to ERRNO and TRACE only;
// for other actions ignoredErrno reports that it was given and ignored.
func refAction(a specs.LinuxSeccompAction, errnoRet *uint) (act libseccomp.ScmpAction, ignoredErrno bool, err error) {
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
		return 0, false, fmt.Errorf("unknown seccomp refAction %q", a)
	}
	return act, errnoRet != nil, nil
}

// refCompile builds the BPF program for cfg. Errors name the offending value;
// what is skipped is listed in Program.Warnings.
func refCompile(cfg *specs.LinuxSeccomp) (*Program, error) {
	if cfg == nil {
		return nil, errors.New("seccomp: no configuration")
	}
	p := &Program{}
	warnf := func(format string, a ...any) { p.Warnings = append(p.Warnings, fmt.Sprintf(format, a...)) }

	defAct, ignored, err := refAction(cfg.DefaultAction, cfg.DefaultErrnoRet)
	if err != nil {
		return nil, fmt.Errorf("seccomp: defaultAction: %w", err)
	}
	if ignored {
		warnf("defaultErrnoRet is ignored with defaultAction %s", cfg.DefaultAction)
	}
	if cfg.DefaultAction == specs.ActNotify {
		return nil, errors.New("seccomp: SCMP_ACT_NOTIFY cannot be the default refAction")
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
		a, ok := refArchs[name]
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
		act, ignored, err := refAction(rule.Action, rule.ErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("seccomp: syscalls[%d] %v: %w", i, rule.Names, err)
		}
		if ignored {
			warnf("syscalls[%d] %v: errnoRet is ignored with action %s", i, rule.Names, rule.Action)
		}
		conds, split, err := refConditions(rule.Args)
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
			if err := refAddRule(filter, nr, act, conds, split); err != nil {
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

	if refPFC != nil {
		filter.ExportPFC(refPFC)
	}
	prog, err := refExportBPF(filter)
	if err != nil {
		return nil, fmt.Errorf("seccomp: %w", err)
	}
	enosys := !lets(cfg.DefaultAction) &&
		!(cfg.DefaultAction == specs.ActErrno && cfg.DefaultErrnoRet != nil && *cfg.DefaultErrnoRet == uint(unix.ENOSYS))
	if enosys {
		stub, err := refEnosysStub(filterArchs, known)
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

// refConditions converts a rule's argument refConditions. split is set when two
// refConditions test the same argument: libseccomp cannot AND those, so each
// becomes a rule of its own (runc's behaviour).
func refConditions(args []specs.LinuxSeccompArg) (conds []libseccomp.ScmpCondition, split bool, err error) {
	var seen [maxArgs]bool
	for j, a := range args {
		if a.Index >= maxArgs {
			return nil, false, fmt.Errorf("args[%d]: argument index %d out of range (0-%d)", j, a.Index, maxArgs-1)
		}
		op, ok := refOps[a.Op]
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

func refAddRule(f *libseccomp.ScmpFilter, nr libseccomp.ScmpSyscall, act libseccomp.ScmpAction, conds []libseccomp.ScmpCondition, split bool) error {
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

// refExportBPF has libseccomp write the filter's BPF to a memfd and reads it
// back as instructions (libseccomp writes them in host byte order).
func refExportBPF(filter *libseccomp.ScmpFilter) ([]unix.SockFilter, error) {
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

// refAuditArch returns the AUDIT_ARCH_* value of a libseccomp architecture.
func refAuditArch(a libseccomp.ScmpArch) (uint32, bool) {
	for _, info := range refArchs {
		if info.scmp == a {
			return info.audit, true
		}
	}
	return 0, false
}

// refStubSection is the -ENOSYS check of one AUDIT_ARCH value. On x86_64 the
// native ABI and x32 share the AUDIT_ARCH value and are told apart by
// x32Bit.
type refStubSection struct {
	audit         uint32
	max           uint32 // every other architecture
	max64, maxX32 uint32 // x86_64: the limits of the two ABIs
	has64, hasX32 bool   // x86_64: which ABIs are checked
	s390          bool   // also return ENOSYS for syscall 0 (see below)
}

// refEnosysStub returns BPF that, for each architecture in filterArchs, makes
// syscall numbers above the highest one of the names in known fail with
// ENOSYS, and sends everything else on to the instruction after the stub
// (where the libseccomp program starts by loading the architecture again).
func refEnosysStub(filterArchs []libseccomp.ScmpArch, known []string) ([]unix.SockFilter, error) {
	var sections []*refStubSection
	byAudit := map[uint32]*refStubSection{}
	for _, arch := range filterArchs {
		audit, ok := refAuditArch(arch)
		if !ok {
			return nil, fmt.Errorf("no AUDIT_ARCH value for architecture %v", arch)
		}
		var max uint32
		found := false
		for _, name := range known {
			nr, err := libseccomp.GetSyscallFromNameByArch(name, arch)
			if err != nil || nr < 0 { // unknown, or a pseudo-syscall on this arch
				continue
			}
			if !found || uint32(nr) > max {
				max, found = uint32(nr), true
			}
		}
		if !found {
			continue // nothing to compare with; leave it to the filter
		}
		s := byAudit[audit]
		if s == nil {
			s = &refStubSection{audit: audit}
			byAudit[audit] = s
			sections = append(sections, s)
		}
		switch arch {
		case libseccomp.ArchAMD64:
			s.max64, s.has64 = max, true
		case libseccomp.ArchX32:
			s.maxX32, s.hasX32 = max, true
		case libseccomp.ArchS390, libseccomp.ArchS390X:
			// On s390(x) syscall numbers the kernel does not know reach
			// seccomp as 0 (the long-gone setup(2), used for multiplexing),
			// so 0 must fail with ENOSYS too, as in runc.
			s.s390 = true
			s.max = max
		default:
			s.max = max
		}
	}
	if len(sections) == 0 {
		return nil, nil
	}

	var a refAssembler
	a.ld(offArch)
	for i, s := range sections {
		a.jeq(s.audit, fmt.Sprint("sec", i), "")
	}
	a.ja("filter")
	for i, s := range sections {
		out := fmt.Sprint("out", i)
		a.label(fmt.Sprint("sec", i))
		a.ld(offNr)
		if s.s390 {
			a.jeq(0, "enosys", "")
		}
		switch {
		case s.audit != unix.AUDIT_ARCH_X86_64:
			a.jgt(s.max, "enosys", "")
		case s.has64 && s.hasX32:
			x32 := fmt.Sprint("x32_", i)
			a.jset(x32Bit, x32, "")
			a.jgt(s.max64, "enosys", out)
			a.label(x32)
			a.jgt(s.maxX32, "enosys", "")
		case s.has64:
			a.jset(x32Bit, out, "")
			a.jgt(s.max64, "enosys", "")
		default:
			a.jset(x32Bit, "", out)
			a.jgt(s.maxX32, "enosys", "")
		}
		a.label(out)
		a.ja("filter")
	}
	a.label("enosys")
	a.ret(retENOSYS)
	a.label("filter")
	return a.assemble()
}

// refAssembler builds a small classic BPF program with symbolic jump targets.
// An empty target means the next instruction.
type refAssembler struct {
	insns  []refAsmInsn
	labels map[string]int
}

type refAsmInsn struct {
	unix.SockFilter
	jt, jf string // conditional jump targets
	ja     string // unconditional jump target
}

func (a *refAssembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

func (a *refAssembler) emit(code uint16, k uint32, jt, jf, ja string) {
	a.insns = append(a.insns, refAsmInsn{SockFilter: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf, ja: ja})
}

func (a *refAssembler) ld(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off, "", "", "") }
func (a *refAssembler) ret(k uint32)  { a.emit(unix.BPF_RET|unix.BPF_K, k, "", "", "") }
func (a *refAssembler) ja(to string)  { a.emit(unix.BPF_JMP|unix.BPF_JA, 0, "", "", to) }
func (a *refAssembler) jeq(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, jf, "")
}
func (a *refAssembler) jgt(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JGT|unix.BPF_K, k, jt, jf, "")
}
func (a *refAssembler) jset(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, k, jt, jf, "")
}

func (a *refAssembler) assemble() ([]unix.SockFilter, error) {
	out := make([]unix.SockFilter, len(a.insns))
	offset := func(i int, label string) (uint32, error) {
		if label == "" {
			return 0, nil
		}
		t, ok := a.labels[label]
		if !ok || t <= i {
			return 0, fmt.Errorf("bad jump target %q at instruction %d", label, i)
		}
		return uint32(t - i - 1), nil
	}
	for i, in := range a.insns {
		out[i] = in.SockFilter
		jt, err := offset(i, in.jt)
		if err != nil {
			return nil, err
		}
		jf, err := offset(i, in.jf)
		if err != nil {
			return nil, err
		}
		if jt > 255 || jf > 255 {
			return nil, fmt.Errorf("conditional jump too long at instruction %d", i)
		}
		out[i].Jt, out[i].Jf = uint8(jt), uint8(jf)
		if in.ja != "" {
			if out[i].K, err = offset(i, in.ja); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// refPFC, if set, receives libseccomp's pseudo filter code.
var refPFC *os.File

// refCase compiles cfg with the reference implementation. Where this
// package finds that libseccomp would loop forever, the reference runs in a
// subprocess with a timeout to confirm it; otherwise in a goroutine with a
// watchdog.
func refCase(t testing.TB, name string, cfg *specs.LinuxSeccomp, seed uint64) goldenCase {
	c := goldenCase{Name: name, Config: cfg, Seed: seed}
	if os.Getenv("BERTH_DIFF_TRACE") != "" {
		fmt.Fprintln(os.Stderr, "case", name)
	}
	if _, err := Compile(cfg); errors.Is(err, errTooComplex) {
		if refLoops(t, cfg) {
			c.Err = libseccompLoops
		} else {
			c.Err = "libseccomp terminates"
		}
		return c
	}
	type result struct {
		p   *Program
		err error
	}
	done := make(chan result, 1)
	go func() {
		p, err := refCompile(cfg)
		done <- result{p, err}
	}()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		c.Err = "libseccomp does not terminate (but berth does)"
		return c
	}
	if res.err != nil {
		c.Err = res.err.Error()
		return c
	}
	p := res.p
	c.Flags, c.Listener, c.Warnings, c.Filter = p.Flags, p.NeedsListener, p.Warnings, encode(p.Filter)
	return c
}

// refLoops reports whether refCompile(cfg) runs for more than 5 seconds, in
// a subprocess.
func refLoops(t testing.TB, cfg *specs.LinuxSeccomp) bool {
	b, _ := json.Marshal(cfg)
	f := filepath.Join(t.TempDir(), "cfg.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	exe, _ := os.Executable()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestRefCompileFile$")
	cmd.Env = append(os.Environ(), "BERTH_REF_CFG="+f)
	err := cmd.Run()
	return ctx.Err() != nil || err != nil
}

// TestRefCompileFile is refLoops's subprocess.
func TestRefCompileFile(t *testing.T) {
	f := os.Getenv("BERTH_REF_CFG")
	if f == "" {
		t.Skip("BERTH_REF_CFG not set")
	}
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	var cfg specs.LinuxSeccomp
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	refCompile(&cfg)
}

// diffCases returns n random configurations and the hand-picked ones, with
// the reference's results.
func diffCases(t testing.TB, seed uint64, n int) []goldenCase {
	var cases []goldenCase
	for name, cfg := range handCases(t) {
		cases = append(cases, refCase(t, name, cfg, seed))
	}
	slices.SortFunc(cases, func(a, b goldenCase) int { return strings.Compare(a.Name, b.Name) })
	r := rand.New(rand.NewPCG(seed, 2))
	for i := range n {
		cases = append(cases, refCase(t, fmt.Sprintf("random-%d", i), randomConfig(r), r.Uint64()))
	}
	return cases
}

// TestLibseccompLive compares with libseccomp directly, on many more random
// configurations than the golden file holds (BERTH_DIFF_N, BERTH_DIFF_SEED).
func TestLibseccompLive(t *testing.T) {
	n, seed := 2000, uint64(1)
	if v := os.Getenv("BERTH_DIFF_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	if v := os.Getenv("BERTH_DIFF_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 0, 64)
	}
	s := &diffStats{expected: map[string]int{}}
	for _, c := range diffCases(t, seed, n) {
		compareCase(t, s, c)
	}
	t.Log(s)
	for _, m := range s.first {
		t.Error(m)
	}
}

// TestWriteGolden writes the golden file (BERTH_WRITE_GOLDEN=1).
func TestWriteGolden(t *testing.T) {
	if os.Getenv("BERTH_WRITE_GOLDEN") == "" {
		t.Skip("BERTH_WRITE_GOLDEN not set")
	}
	cases := diffCases(t, 20251123, 400)
	f, err := os.Create(goldenPath)
	if err != nil {
		t.Fatal(err)
	}
	z, _ := gzip.NewWriterLevel(f, gzip.BestCompression)
	enc := json.NewEncoder(z)
	if err := enc.Encode(cases); err != nil {
		t.Fatal(err)
	}
	if err := z.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
