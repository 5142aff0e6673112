package seccomp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// assembler lays out a classic BPF program made of blocks: straight-line
// instructions whose only jumps, at the end, name their target blocks
// explicitly (there is no fall-through between blocks). Blocks are placed in
// the order they were added; every jump must go forward. A conditional jump
// reaches at most 255 instructions ahead, so where a target is farther the
// assembler puts a trampoline right after the jumping block: a copy of the
// target if that is a single return, else an unconditional jump (32-bit
// offset) to it.
type assembler struct {
	blocks []*block
}

type block struct {
	insns []insn
	pos   int // first instruction, during assemble
	ret   bool
	buf   [3]insn // room for the usual ld, and, jump
}

type insn struct {
	unix.SockFilter
	jt, jf *block // conditional jump targets
	ja     *block // unconditional jump target
}

// newBlock adds a new block at the end of the program.
func (a *assembler) newBlock() *block {
	b := &block{}
	a.blocks = append(a.blocks, b)
	return b
}

// place adds a block created earlier (as a jump target) at the end of the
// program.
func (a *assembler) place(b *block) {
	a.blocks = append(a.blocks, b)
}

// retBlock returns an unplaced block that returns k.
func retBlock(k uint32) *block {
	b := &block{ret: true}
	b.add(insn{SockFilter: unix.SockFilter{Code: unix.BPF_RET | unix.BPF_K, K: k}})
	return b
}

func (b *block) add(in insn) {
	if b.insns == nil {
		b.insns = b.buf[:0]
	}
	b.insns = append(b.insns, in)
}

func (b *block) ld(off uint32) {
	b.add(insn{SockFilter: unix.SockFilter{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: off}})
}

func (b *block) and(k uint32) {
	b.add(insn{SockFilter: unix.SockFilter{Code: unix.BPF_ALU | unix.BPF_AND | unix.BPF_K, K: k}})
}

// jmp ends the block with a conditional jump (op is BPF_JEQ, BPF_JGT,
// BPF_JGE or BPF_JSET).
func (b *block) jmp(op uint16, k uint32, jt, jf *block) {
	b.add(insn{SockFilter: unix.SockFilter{Code: unix.BPF_JMP | op | unix.BPF_K, K: k}, jt: jt, jf: jf})
}

// ja ends the block with an unconditional jump.
func (b *block) ja(to *block) {
	b.add(insn{SockFilter: unix.SockFilter{Code: unix.BPF_JMP | unix.BPF_JA}, ja: to})
}

// single returns the block's only jump target if it is a single jump.
func (b *block) single() *block {
	if len(b.insns) == 1 && b.insns[0].ja != nil {
		return b.insns[0].ja
	}
	return nil
}

func (a *assembler) layout() int {
	n := 0
	for _, b := range a.blocks {
		b.pos = n
		n += len(b.insns)
	}
	return n
}

// assemble resolves the jumps, adding trampolines where needed, and returns
// the program.
func (a *assembler) assemble() ([]unix.SockFilter, error) {
	for i, b := range a.blocks {
		if len(b.insns) == 0 {
			return nil, fmt.Errorf("empty block %d", i)
		}
	}
	for {
		n := a.layout()
		if n > 4*bpfMaxInsns {
			return nil, fmt.Errorf("program too long (%d instructions)", n)
		}
		inserted, err := a.trampolines()
		if err != nil {
			return nil, err
		}
		if !inserted {
			break
		}
	}
	n := a.layout()
	out := make([]unix.SockFilter, 0, n)
	for _, b := range a.blocks {
		for j, in := range b.insns {
			at := b.pos + j
			f := in.SockFilter
			switch {
			case in.ja != nil:
				f.K = uint32(in.ja.pos - at - 1)
			case in.jt != nil:
				f.Jt = uint8(in.jt.pos - at - 1)
				f.Jf = uint8(in.jf.pos - at - 1)
			}
			out = append(out, f)
		}
	}
	return out, nil
}

// trampolines checks every jump of the current layout and, for the first
// block with a conditional jump that is too long, inserts trampolines after
// it. It reports whether it changed the layout.
func (a *assembler) trampolines() (bool, error) {
	for i, b := range a.blocks {
		for j := range b.insns {
			in := &b.insns[j]
			at := b.pos + j
			if in.ja != nil {
				if in.ja.pos <= at {
					return false, fmt.Errorf("backward jump at instruction %d", at)
				}
				continue
			}
			if in.jt == nil {
				continue
			}
			if in.jt.pos <= at || in.jf.pos <= at {
				return false, fmt.Errorf("backward jump at instruction %d", at)
			}
			if j != len(b.insns)-1 {
				return false, fmt.Errorf("conditional jump inside a block at instruction %d", at)
			}
			var add []*block
			for _, tp := range []**block{&in.jt, &in.jf} {
				if (*tp).pos-at-1 <= 255 {
					continue
				}
				if t := a.near(i, at, *tp); t != nil {
					*tp = t
					continue
				}
				t := &block{}
				if (*tp).ret {
					t.ret = true
					t.add((*tp).insns[0])
				} else {
					t.ja(*tp)
				}
				*tp = t
				add = append(add, t)
			}
			if len(add) > 0 {
				a.blocks = append(a.blocks[:i+1], append(add, a.blocks[i+1:]...)...)
				return true, nil
			}
		}
	}
	return false, nil
}

// near finds, among the blocks after block i that a conditional jump at
// instruction at can reach, one that does what target does: a copy of a
// return, or a jump to target.
func (a *assembler) near(i, at int, target *block) *block {
	for _, c := range a.blocks[i+1:] {
		if c.pos-at-1 > 255 {
			break
		}
		if c.single() == target || target.ret && c.ret && c.insns[0].SockFilter == target.insns[0].SockFilter {
			return c
		}
	}
	return nil
}
