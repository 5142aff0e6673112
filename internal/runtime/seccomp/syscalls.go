package seccomp

import (
	"unsafe"

	"github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

//go:generate ../../../hack/gen-syscalls.sh

// abi is a system call ABI the filter can check: the x86_64 kernel reports
// syscalls of native, i386 and x32 processes.
type abi int

const (
	abiX86_64 abi = iota
	abiI386
	abiX32
	numABIs
)

// x32Bit marks x32 syscall numbers on x86_64 (__X32_SYSCALL_BIT).
const x32Bit = 0x40000000

// sysEntry is a syscall name and its numbers (-1: none). x32 numbers are
// without x32Bit.
type sysEntry struct {
	name              string
	x86_64, i386, x32 int32
}

// nr returns the syscall's number on a, as the kernel puts it in
// seccomp_data.nr.
func (e *sysEntry) nr(a abi) (uint32, bool) {
	var n int32
	switch a {
	case abiX86_64:
		n = e.x86_64
	case abiI386:
		n = e.i386
	case abiX32:
		n = e.x32
	}
	if n < 0 {
		return 0, false
	}
	if a == abiX32 {
		return uint32(n) | x32Bit, true
	}
	return uint32(n), true
}

// index returns e's index in syscallTable.
func (e *sysEntry) index() int {
	return int((uintptr(unsafe.Pointer(e)) - uintptr(unsafe.Pointer(&syscallTable[0]))) / unsafe.Sizeof(*e))
}

// lookupSyscall finds a syscall by name. Every name libseccomp 2.5.4 knows is
// in the table, also those of other architectures only.
func lookupSyscall(name string) *sysEntry {
	lo, hi := 0, len(syscallTable)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if syscallTable[m].name < name {
			lo = m + 1
		} else {
			hi = m
		}
	}
	if lo < len(syscallTable) && syscallTable[lo].name == name {
		return &syscallTable[lo]
	}
	return nil
}

// i386 multiplexers: the socket calls can be made through socketcall(2) and
// the SysV IPC calls through ipc(2), with the call number as the first
// argument.
const (
	i386Socketcall = 102
	i386IPC        = 117
)

// i386Mux returns the multiplexer and call number of a socket or IPC
// syscall on i386. A rule for such a syscall also applies to the
// multiplexer with the first argument equal to the call number (replacing
// any condition on the first argument), as libseccomp does.
func i386Mux(name string) (mux, call uint32, ok bool) {
	switch name {
	case "socket":
		return i386Socketcall, 1, true
	case "bind":
		return i386Socketcall, 2, true
	case "connect":
		return i386Socketcall, 3, true
	case "listen":
		return i386Socketcall, 4, true
	case "accept":
		return i386Socketcall, 5, true
	case "getsockname":
		return i386Socketcall, 6, true
	case "getpeername":
		return i386Socketcall, 7, true
	case "socketpair":
		return i386Socketcall, 8, true
	case "send":
		return i386Socketcall, 9, true
	case "recv":
		return i386Socketcall, 10, true
	case "sendto":
		return i386Socketcall, 11, true
	case "recvfrom":
		return i386Socketcall, 12, true
	case "shutdown":
		return i386Socketcall, 13, true
	case "setsockopt":
		return i386Socketcall, 14, true
	case "getsockopt":
		return i386Socketcall, 15, true
	case "sendmsg":
		return i386Socketcall, 16, true
	case "recvmsg":
		return i386Socketcall, 17, true
	case "accept4":
		return i386Socketcall, 18, true
	case "recvmmsg":
		return i386Socketcall, 19, true
	case "sendmmsg":
		return i386Socketcall, 20, true
	case "semop":
		return i386IPC, 1, true
	case "semget":
		return i386IPC, 2, true
	case "semctl":
		return i386IPC, 3, true
	case "semtimedop":
		return i386IPC, 4, true
	case "msgsnd":
		return i386IPC, 11, true
	case "msgrcv":
		return i386IPC, 12, true
	case "msgget":
		return i386IPC, 13, true
	case "msgctl":
		return i386IPC, 14, true
	case "shmat":
		return i386IPC, 21, true
	case "shmdt":
		return i386IPC, 22, true
	case "shmget":
		return i386IPC, 23, true
	case "shmctl":
		return i386IPC, 24, true
	}
	return 0, 0, false
}

// archKind says what the filter does with an architecture of the spec.
type archKind int

const (
	archABI     archKind = iota // one of the ABIs an x86_64 kernel reports
	archForeign                 // same byte order; the kernel never reports it here
	archBigEndian
)

type archInfo struct {
	kind  archKind
	abi   abi    // for archABI
	audit uint32 // AUDIT_ARCH_* value
}

// archs describes the spec's architecture names for an x86_64 host.
// Architectures of other CPUs are accepted as libseccomp accepts them (same
// byte order only) but add nothing to the program: an x86_64 kernel only
// ever reports AUDIT_ARCH_X86_64 (native and x32) and AUDIT_ARCH_I386.
var archs = map[specs.Arch]archInfo{
	specs.ArchX86_64:      {archABI, abiX86_64, unix.AUDIT_ARCH_X86_64},
	specs.ArchX86:         {archABI, abiI386, unix.AUDIT_ARCH_I386},
	specs.ArchX32:         {archABI, abiX32, unix.AUDIT_ARCH_X86_64},
	specs.ArchARM:         {archForeign, 0, unix.AUDIT_ARCH_ARM},
	specs.ArchAARCH64:     {archForeign, 0, unix.AUDIT_ARCH_AARCH64},
	specs.ArchMIPSEL:      {archForeign, 0, unix.AUDIT_ARCH_MIPSEL},
	specs.ArchMIPSEL64:    {archForeign, 0, unix.AUDIT_ARCH_MIPSEL64},
	specs.ArchMIPSEL64N32: {archForeign, 0, unix.AUDIT_ARCH_MIPSEL64N32},
	specs.ArchPPC64LE:     {archForeign, 0, unix.AUDIT_ARCH_PPC64LE},
	specs.ArchRISCV64:     {archForeign, 0, unix.AUDIT_ARCH_RISCV64},
	specs.ArchLOONGARCH64: {archForeign, 0, unix.AUDIT_ARCH_LOONGARCH64},
	specs.ArchSH:          {archForeign, 0, unix.AUDIT_ARCH_SHEL},
	specs.ArchMIPS:        {archBigEndian, 0, unix.AUDIT_ARCH_MIPS},
	specs.ArchMIPS64:      {archBigEndian, 0, unix.AUDIT_ARCH_MIPS64},
	specs.ArchMIPS64N32:   {archBigEndian, 0, unix.AUDIT_ARCH_MIPS64N32},
	specs.ArchPPC:         {archBigEndian, 0, unix.AUDIT_ARCH_PPC},
	specs.ArchPPC64:       {archBigEndian, 0, unix.AUDIT_ARCH_PPC64},
	specs.ArchS390:        {archBigEndian, 0, unix.AUDIT_ARCH_S390},
	specs.ArchS390X:       {archBigEndian, 0, unix.AUDIT_ARCH_S390X},
	specs.ArchPARISC:      {archBigEndian, 0, unix.AUDIT_ARCH_PARISC},
	specs.ArchPARISC64:    {archBigEndian, 0, unix.AUDIT_ARCH_PARISC64},
	specs.ArchM68K:        {archBigEndian, 0, unix.AUDIT_ARCH_M68K},
	specs.ArchSHEB:        {archBigEndian, 0, unix.AUDIT_ARCH_SH},
}
