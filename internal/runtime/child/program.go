package child

import (
	"fmt"
	"syscall"
	"unsafe"
)

// Builder assembles a Program in the parent. It keeps every buffer an op points at alive; the
// parent must keep the Builder reachable until clone(2) has returned.
type Builder struct {
	ops  []Op
	desc []string
	keep []any
	slot int32
	exec *Exec
	// loudFrom is the first op whose failure is also printed on stderr (0: none)
	loudFrom int
}

// NewBuilder starts a program whose child-created fds are numbered from firstSlot up.
func NewBuilder(firstSlot int32, syncFD int) *Builder {
	return &Builder{slot: firstSlot, exec: &Exec{SyncFD: uintptr(syncFD)}}
}

// Slot reserves a fixed fd number for an fd the child will create.
func (b *Builder) Slot() int32 {
	s := b.slot
	b.slot++
	return s
}

// Str returns a pointer to a NUL-terminated copy of s, kept alive by the builder.
func (b *Builder) Str(s string) uintptr {
	p := append([]byte(s), 0)
	b.keep = append(b.keep, p)
	return uintptr(unsafe.Pointer(&p[0]))
}

// StrArray returns a pointer to a NULL-terminated array of C strings.
func (b *Builder) StrArray(ss []string) uintptr {
	arr := make([]uintptr, len(ss)+1)
	for i, s := range ss {
		arr[i] = b.Str(s)
	}
	b.keep = append(b.keep, arr)
	return uintptr(unsafe.Pointer(&arr[0]))
}

// Mem keeps p alive and returns its address. p must point to plain data (no Go pointers the
// kernel follows, other than those also kept alive).
func (b *Builder) Mem(p unsafe.Pointer, owner any) uintptr {
	b.keep = append(b.keep, owner)
	return uintptr(p)
}

// Buf returns a zeroed buffer of n bytes that the child may write into.
func (b *Builder) Buf(n int) uintptr {
	p := make([]byte, n)
	b.keep = append(b.keep, p)
	return uintptr(unsafe.Pointer(&p[0]))
}

// Add appends an op and returns its index.
func (b *Builder) Add(desc string, op Op) int {
	b.ops = append(b.ops, op)
	b.desc = append(b.desc, desc)
	return len(b.ops) - 1
}

// Sys appends a plain system call.
func (b *Builder) Sys(desc string, nr uintptr, args ...uintptr) int {
	op := Op{Kind: KindSyscall, Nr: nr, Out: -1}
	copy(op.Args[:], args)
	return b.Add(desc, op)
}

// SysFD appends a system call whose result is an fd moved to a fresh slot, returned.
func (b *Builder) SysFD(desc string, nr uintptr, args ...uintptr) (int, int32) {
	i := b.Sys(desc, nr, args...)
	s := b.Slot()
	b.ops[i].Out = s
	return i, s
}

// Ignore marks errnos of op i as non-failures; skipErr ops are skipped after one.
func (b *Builder) Ignore(i int, skipErr int, errnos ...syscall.Errno) {
	for k, e := range errnos {
		b.ops[i].Ignore[k] = uint16(e)
	}
	b.ops[i].SkipErr = uint16(skipErr)
}

// SkipOK makes op i skip n ops after success.
func (b *Builder) SkipOK(i, n int) { b.ops[i].SkipOK = uint16(n) }

// Special appends a non-syscall op.
func (b *Builder) Special(desc string, kind uint32, args ...uintptr) int {
	op := Op{Kind: kind, Out: -1}
	copy(op.Args[:], args)
	return b.Add(desc, op)
}

// Len is the number of ops so far.
func (b *Builder) Len() int { return len(b.ops) }

// SetSkip sets the skip count of a KindSkip or KindIfMode op at i to reach op index target.
func (b *Builder) SetSkip(i, target int) {
	switch b.ops[i].Kind {
	case KindSkip:
		b.ops[i].Args[0] = uintptr(target - i - 1)
	case KindIfMode:
		b.ops[i].Args[2] = uintptr(target - i - 1)
	default:
		b.ops[i].SkipErr = uint16(target - i - 1)
	}
}

// Close appends close(fd).
func (b *Builder) Close(fd int32) { b.Sys("close fd", syscall.SYS_CLOSE, uintptr(fd)) }

// LoudFromHere makes failures of the ops appended from now on also print to the process's
// stderr.
func (b *Builder) LoudFromHere() { b.loudFrom = len(b.ops) }

// Finish returns the program.
func (b *Builder) Finish() *Exec {
	b.exec.Ops = b.ops
	if b.loudFrom > 0 {
		b.exec.LoudFrom = b.loudFrom
		b.exec.Msgs = make([][]byte, len(b.ops))
		for i := b.loudFrom; i < len(b.ops); i++ {
			b.exec.Msgs[i] = []byte("berth-runtime: " + b.desc[i] + ": ")
		}
		b.exec.ErrText = make([][]byte, 134)
		for e := 1; e < len(b.exec.ErrText); e++ {
			b.exec.ErrText[e] = []byte(syscall.Errno(e).Error() + "\n")
		}
	}
	return b.exec
}

// Describe turns a failure record into an error.
func (b *Builder) Describe(r Record) error {
	desc := "container setup"
	if int(r.Op) < len(b.desc) {
		desc = b.desc[r.Op]
	}
	if r.Errno == 0 {
		return fmt.Errorf("%s: failed", desc)
	}
	return fmt.Errorf("%s: %w", desc, syscall.Errno(r.Errno))
}

// Ops exposes the ops for tests.
func (b *Builder) Ops() []Op { return b.ops }

// Descriptions exposes the op descriptions for tests.
func (b *Builder) Descriptions() []string { return b.desc }

// NextSlot is the next free fixed fd number.
func (b *Builder) NextSlot() int32 { return b.slot }

// AtFDCWD is AT_FDCWD as a syscall argument.
const AtFDCWD = ^uintptr(99) // -100
