package seccomp

import (
	"fmt"

	libseccomp "github.com/seccomp/libseccomp-golang"
	"golang.org/x/sys/unix"
)

// x32Bit marks x32 syscall numbers on x86_64 (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// retENOSYS is SECCOMP_RET_ERRNO with errno ENOSYS.
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// Offsets in struct seccomp_data.
const (
	offNr   = 0
	offArch = 4
)

// auditArch returns the AUDIT_ARCH_* value of a libseccomp architecture.
func auditArch(a libseccomp.ScmpArch) (uint32, bool) {
	for _, info := range archs {
		if info.scmp == a {
			return info.audit, true
		}
	}
	return 0, false
}

// stubSection is the -ENOSYS check of one AUDIT_ARCH value. On x86_64 the
// native ABI and x32 share the AUDIT_ARCH value and are told apart by
// x32Bit.
type stubSection struct {
	audit         uint32
	max           uint32 // every other architecture
	max64, maxX32 uint32 // x86_64: the limits of the two ABIs
	has64, hasX32 bool   // x86_64: which ABIs are checked
	s390          bool   // also return ENOSYS for syscall 0 (see below)
}

// enosysStub returns BPF that, for each architecture in filterArchs, makes
// syscall numbers above the highest one of the names in known fail with
// ENOSYS, and sends everything else on to the instruction after the stub
// (where the libseccomp program starts by loading the architecture again).
func enosysStub(filterArchs []libseccomp.ScmpArch, known []string) ([]unix.SockFilter, error) {
	var sections []*stubSection
	byAudit := map[uint32]*stubSection{}
	for _, arch := range filterArchs {
		audit, ok := auditArch(arch)
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
			s = &stubSection{audit: audit}
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

	var a assembler
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

// assembler builds a small classic BPF program with symbolic jump targets.
// An empty target means the next instruction.
type assembler struct {
	insns  []asmInsn
	labels map[string]int
}

type asmInsn struct {
	unix.SockFilter
	jt, jf string // conditional jump targets
	ja     string // unconditional jump target
}

func (a *assembler) label(name string) {
	if a.labels == nil {
		a.labels = map[string]int{}
	}
	a.labels[name] = len(a.insns)
}

func (a *assembler) emit(code uint16, k uint32, jt, jf, ja string) {
	a.insns = append(a.insns, asmInsn{SockFilter: unix.SockFilter{Code: code, K: k}, jt: jt, jf: jf, ja: ja})
}

func (a *assembler) ld(off uint32) { a.emit(unix.BPF_LD|unix.BPF_W|unix.BPF_ABS, off, "", "", "") }
func (a *assembler) ret(k uint32)  { a.emit(unix.BPF_RET|unix.BPF_K, k, "", "", "") }
func (a *assembler) ja(to string)  { a.emit(unix.BPF_JMP|unix.BPF_JA, 0, "", "", to) }
func (a *assembler) jeq(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JEQ|unix.BPF_K, k, jt, jf, "")
}
func (a *assembler) jgt(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JGT|unix.BPF_K, k, jt, jf, "")
}
func (a *assembler) jset(k uint32, jt, jf string) {
	a.emit(unix.BPF_JMP|unix.BPF_JSET|unix.BPF_K, k, jt, jf, "")
}

func (a *assembler) assemble() ([]unix.SockFilter, error) {
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
