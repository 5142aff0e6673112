package seccomp

import (
	"fmt"
	"slices"

	"golang.org/x/sys/unix"
)

// Offsets in struct seccomp_data (little endian).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// retKillThread is the action for architectures not in the filter, as with
// libseccomp (SCMP_ACT_KILL).
const retKillThread = unix.SECCOMP_RET_KILL_THREAD

// generate builds the program: the -ENOSYS stub (if any), then the filter.
//
// The filter checks the architecture (AUDIT_ARCH_X86_64 for x86_64 and x32,
// AUDIT_ARCH_I386) and kills the thread for any other. For each ABI it then
// finds the syscall number's handler with a binary search over the ranges of
// numbers that share one (a return, the default action, or a tree of
// argument comparisons), which keeps both the program and the path through
// it short. On x86_64 without x32 in the filter, x32 numbers
// (>= 0x40000000, except -1) count as a bad architecture, as with
// libseccomp.
func generate(defAct uint32, dbs *[numABIs]*archDB, stub []*stubSection) ([]unix.SockFilter, error) {
	a := &assembler{}
	filter := &block{}
	if len(stub) > 0 {
		enosysStub(a, stub, filter)
	}
	a.place(filter)
	filter.ld(offArch)

	sec64 := &block{}
	var sec32 *block
	badarch := retBlock(retKillThread)
	next := badarch
	if dbs[abiI386] != nil {
		sec32 = &block{}
		next = &block{}
	}
	filter.jmp(unix.BPF_JEQ, unix.AUDIT_ARCH_X86_64, sec64, next)
	if sec32 != nil {
		a.place(next)
		next.jmp(unix.BPF_JEQ, unix.AUDIT_ARCH_I386, sec32, badarch)
	}
	a.place(badarch)

	a.place(sec64)
	if err := sectionGen(a, sec64, defAct, []*archDB{dbs[abiX86_64], dbs[abiX32]}, dbs[abiX32] == nil); err != nil {
		return nil, err
	}
	if sec32 != nil {
		a.place(sec32)
		if err := sectionGen(a, sec32, defAct, []*archDB{dbs[abiI386]}, false); err != nil {
			return nil, err
		}
	}
	return a.assemble()
}

// interval is a range of syscall numbers, from lo up to the next interval's
// lo, with one handler.
type interval struct {
	lo uint32
	h  *block
}

// retSet makes one return block per action, placed together later.
type retSet struct {
	byAction map[uint32]*block
	order    []*block
}

func (r *retSet) ret(k uint32) *block {
	if b := r.byAction[k]; b != nil {
		return b
	}
	if r.byAction == nil {
		r.byAction = map[uint32]*block{}
	}
	b := retBlock(k)
	r.byAction[k] = b
	r.order = append(r.order, b)
	return b
}

func (r *retSet) place(a *assembler) {
	for _, b := range r.order {
		a.place(b)
	}
}

// sectionGen generates the filter of one AUDIT_ARCH value, starting in the
// placed block entry. x32bad makes x32 syscall numbers a bad architecture.
func sectionGen(a *assembler, entry *block, defAct uint32, dbs []*archDB, x32bad bool) error {
	var rets retSet
	def := rets.ret(defAct)

	type tree struct {
		entry  *block
		s      *dbSys
		bits32 bool
	}
	var trees []tree
	n := 0
	for _, db := range dbs {
		if db != nil {
			n += len(db.sys)
		}
	}
	ivs := make([]interval, 1, 2*n+4)
	ivs[0] = interval{0, def}
	add := func(lo uint32, h *block) {
		if last := &ivs[len(ivs)-1]; last.lo == lo {
			last.h = h
			if len(ivs) > 1 && ivs[len(ivs)-2].h == h {
				ivs = ivs[:len(ivs)-1]
			}
			return
		}
		if ivs[len(ivs)-1].h != h {
			ivs = append(ivs, interval{lo, h})
		}
	}
	// in order of numbers: x86_64 numbers are all below x32 numbers
	for _, db := range dbs {
		if db == nil {
			continue
		}
		for _, s := range db.syscalls() {
			var h *block
			if s.chains == nil {
				h = rets.ret(s.action)
			} else {
				if cyclic(s.chains) {
					return fmt.Errorf("syscall %d: %w", s.num, errTooComplex)
				}
				h = &block{}
				trees = append(trees, tree{h, s, db.bits32})
			}
			add(s.num, h)
			add(s.num+1, def)
		}
	}
	if x32bad {
		// x32 numbers, except -1, on a filter without x32
		add(x32Bit, rets.ret(retKillThread))
		add(^uint32(0), def)
	}

	entry.ld(offNr)
	if len(ivs) == 1 {
		entry.ja(ivs[0].h)
	} else {
		searchGen(a, entry, ivs)
	}
	rets.place(a)
	for _, t := range trees {
		treeGen(a, t.entry, t.s, t.bits32, defAct)
	}
	return nil
}

// cyclic reports whether a tree has a cycle (which the rule database does
// not make, but the code generation must not rely on that).
func cyclic(tree *node) bool {
	const (
		visiting = 1
		done     = 2
	)
	state := map[*node]int{}
	var level func(n *node) bool
	level = func(n *node) bool {
		for steps := 0; n.lvlPrv != nil; steps++ {
			if steps > 1<<20 {
				return true
			}
			n = n.lvlPrv
		}
		switch state[n] {
		case done:
			return false
		case visiting:
			return true
		}
		var nodes []*node
		for m := n; m != nil; m = m.lvlNxt {
			if state[m] != 0 {
				return true
			}
			state[m] = visiting
			nodes = append(nodes, m)
		}
		for _, m := range nodes {
			if m.nxtT != nil && level(m.nxtT) || m.nxtF != nil && level(m.nxtF) {
				return true
			}
		}
		for _, m := range nodes {
			state[m] = done
		}
		return false
	}
	return level(tree)
}

// searchGen ends block b with a binary search of ivs (at least two
// intervals) on the syscall number in the accumulator.
func searchGen(a *assembler, b *block, ivs []interval) {
	mid := len(ivs) / 2
	target := func(part []interval) (*block, bool) {
		if len(part) == 1 {
			return part[0].h, false
		}
		return &block{}, true
	}
	hi, newHi := target(ivs[mid:])
	lo, newLo := target(ivs[:mid])
	b.jmp(unix.BPF_JGE, ivs[mid].lo, hi, lo)
	if newLo {
		a.place(lo)
		searchGen(a, lo, ivs[:mid])
	}
	if newHi {
		a.place(hi)
		searchGen(a, hi, ivs[mid:])
	}
}

// nodeCode is the comparison of one tree node with the branches it takes.
type nodeCode struct {
	off, mask, k uint32
	op           uint16
	jt, jf       *block
	reload       bool
}

// treeGen generates the argument tree of syscall s into the unplaced block
// entry (which the binary search jumps to), followed by its own return
// blocks. The tree is evaluated as libseccomp's BPF does: the nodes of a
// level are tried in order; a branch with a sub-level continues there, one
// with an action returns it, one with neither goes on to the next node of
// the level; when a level is exhausted, evaluation goes on to the node after
// the one that led to it, and in the end to the default action.
func treeGen(a *assembler, entry *block, s *dbSys, bits32 bool, defAct uint32) {
	var rets retSet
	type key struct {
		n    *node
		fail *block
	}
	memo := map[key]*block{}
	code := map[*block]*nodeCode{}

	var nodeBlock func(n *node, fail *block) *block
	level := func(n *node, fail *block) *block {
		for n.lvlPrv != nil {
			n = n.lvlPrv
		}
		return nodeBlock(n, fail)
	}
	// A branch continues on its sub-level, returns its action, or goes on
	// to next.
	branch := func(sub *node, hasAct bool, act uint32, next *block) *block {
		switch {
		case sub != nil:
			return level(sub, next)
		case hasAct:
			return rets.ret(act)
		}
		return next
	}
	nodeBlock = func(n *node, fail *block) *block {
		if b := memo[key{n, fail}]; b != nil {
			return b
		}
		next := fail
		if n.lvlNxt != nil {
			next = nodeBlock(n.lvlNxt, fail)
		}
		c := &nodeCode{off: argOffset(n, bits32), mask: n.mask, k: n.datum}
		switch n.op {
		case cmpGT:
			c.op = unix.BPF_JGT
		case cmpGE:
			c.op = unix.BPF_JGE
		default: // EQ, MASKED_EQ
			c.op = unix.BPF_JEQ
		}
		c.jt = branch(n.nxtT, n.actTFlg, n.actT, next)
		c.jf = branch(n.nxtF, n.actFFlg, n.actF, next)
		b := &block{}
		memo[key{n, fail}] = b
		code[b] = c
		return b
	}
	root := level(s.chains, rets.ret(defAct))

	// Order the node blocks so that every jump goes forward: reverse
	// post-order of a depth-first walk from the root.
	var post []*block
	seen := map[*block]bool{}
	var walk func(b *block)
	walk = func(b *block) {
		c := code[b]
		if c == nil || seen[b] {
			return
		}
		seen[b] = true
		walk(c.jt)
		walk(c.jf)
		post = append(post, b)
	}
	walk(root)
	slices.Reverse(post)

	// A node needs to load its argument word unless every way into it comes
	// from a node that left that word, masked the same way, in the
	// accumulator. The root is entered from the binary search.
	code[root].reload = true
	for _, b := range post {
		c := code[b]
		for _, t := range []*block{c.jt, c.jf} {
			if tc := code[t]; tc != nil {
				if tc.off != c.off || tc.mask != c.mask {
					tc.reload = true
				}
			}
		}
	}
	for i, b := range post {
		c := code[b]
		if i == 0 {
			// The root: nothing in the tree jumps back to it, so the
			// binary search's entry block stands for it.
			b = entry
		}
		if c.reload {
			b.ld(c.off)
			if c.mask != 0xffffffff {
				b.and(c.mask)
			}
		}
		b.jmp(c.op, c.k, c.jt, c.jf)
		a.place(b)
	}
	rets.place(a)
}

// argOffset is the offset in seccomp_data of the word a node compares.
func argOffset(n *node, bits32 bool) uint32 {
	off := uint32(offArgs + 8*n.arg)
	if n.hi && !bits32 {
		off += 4
	}
	return off
}

// stubSection is the -ENOSYS check of one AUDIT_ARCH value. On x86_64 the
// native ABI and x32 share the AUDIT_ARCH value and are told apart by
// x32Bit.
type stubSection struct {
	audit         uint32
	max           uint32 // i386
	max64, maxX32 uint32 // x86_64: the limits of the two ABIs
	has64, hasX32 bool   // x86_64: which ABIs are checked
}

// retENOSYS is SECCOMP_RET_ERRNO with errno ENOSYS.
const retENOSYS = unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)

// enosysStub adds the blocks that, for each section, make syscall numbers
// above the highest one the profile names fail with ENOSYS, and send
// everything else on to filter (where the filter loads the architecture
// again).
func enosysStub(a *assembler, sections []*stubSection, filter *block) {
	enosys := retBlock(retENOSYS)
	b := a.newBlock()
	b.ld(offArch)
	secs := make([]*block, len(sections))
	for i := range sections {
		secs[i] = &block{}
		next := filter
		if i+1 < len(sections) {
			next = &block{}
		}
		b.jmp(unix.BPF_JEQ, sections[i].audit, secs[i], next)
		if next != filter {
			a.place(next)
			b = next
		}
	}
	for i, s := range sections {
		sb := secs[i]
		a.place(sb)
		sb.ld(offNr)
		switch {
		case s.audit != unix.AUDIT_ARCH_X86_64:
			sb.jmp(unix.BPF_JGT, s.max, enosys, filter)
		case s.has64 && s.hasX32:
			c64, cx32 := &block{}, &block{}
			sb.jmp(unix.BPF_JSET, x32Bit, cx32, c64)
			a.place(c64)
			c64.jmp(unix.BPF_JGT, s.max64, enosys, filter)
			a.place(cx32)
			cx32.jmp(unix.BPF_JGT, s.maxX32, enosys, filter)
		case s.has64:
			c64 := &block{}
			sb.jmp(unix.BPF_JSET, x32Bit, filter, c64)
			a.place(c64)
			c64.jmp(unix.BPF_JGT, s.max64, enosys, filter)
		default:
			cx32 := &block{}
			sb.jmp(unix.BPF_JSET, x32Bit, cx32, filter)
			a.place(cx32)
			cx32.jmp(unix.BPF_JGT, s.maxX32, enosys, filter)
		}
	}
	a.place(enosys)
}
